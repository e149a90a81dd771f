//! SMTP mailer for password-setup: writes the set-password email from templates and sends it
//! through an SMTP server with lettre.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use password_setup_smtp::{Locale, SmtpMailer};
//!
//! let mailer = SmtpMailer::builder("smtp://user:secret@mail.example.com?tls=required")
//!     .from("Example Accounts <accounts@example.com>")
//!     .reply_to("support@example.com")
//!     .site_name("Example")
//!     .default_locale(Locale::german())
//!     .build()?;
//! // password_setup_core::PasswordSetup::builder().mailer(Arc::new(mailer))...
//! # let _ = Arc::new(mailer);
//! # Ok(())
//! # }
//! ```
//!
//! # The email
//!
//! A `multipart/alternative` message with a plain-text part (enough on its own to finish the
//! flow) and a simple HTML part (inline styles, no remote content, a button and the same link
//! written out), both UTF-8. It says until when the link works, in UTC and in words ("24
//! hours"), and that a newer request replaces the link. `Date` is the instant the link was
//! issued, from the service's clock; `Message-ID` is random at the sender's domain.
//!
//! Words come from [`EmailTemplates`]: English and German ship with the crate, and any locale
//! can be added or replaced with a [`TemplateSet`]. A [`LocaleResolver`] picks each user's
//! locale; without one, every email uses the default locale. Values inserted into the HTML part
//! are HTML-escaped.
//!
//! # Addresses
//!
//! `From`, `Reply-To` and the recipient are parsed as mailboxes and addresses, never pasted
//! into headers: anything with a line break or another control character is refused, and so is
//! anything that does not parse. The only recipient is the address on record,
//! `SetupEmail::account.email`.
//!
//! # When a send fails
//!
//! Connection refused, TLS or authentication failures, a server that does not answer in time,
//! and 4xx/5xx replies all become a [`password_setup_core::MailError`], whose message never
//! holds the link or the token. The service then answers 501 and withdraws the new link, so
//! after a failed send the user has no working link (an older one was superseded when the new
//! one was issued), no cooldown runs and the failed send counts toward no cap: the user simply
//! asks again. If the server took the message but its reply was lost (a timeout after the
//! final dot), an email may still arrive whose link no longer works; a new request sends one
//! that does. A connection on which anything failed is closed, never reused.
//!
//! # Logging
//!
//! This crate logs outcomes at `debug` and failures at `warn`, never the link, the token or the
//! SMTP password. Do not enable lettre's `tracing` feature anywhere in the build: lettre then
//! logs every line it writes, message bodies and so setup links included (the crate's log
//! test fails if it is on).
//!
//! # Connections
//!
//! The mailer keeps at most [`SmtpMailerBuilder::pool_size`] connections open, reuses idle
//! ones after a `NOOP` check, and opens each with `TCP_NODELAY`. Every step has a time limit
//! ([`SmtpMailerBuilder::connect_timeout`], [`SmtpMailerBuilder::send_timeout`]). lettre 0.11.23
//! leaves Nagle's algorithm on for its own connections, which costs every message about 40 ms
//! against a server that delays its ACKs; see the `transport` module's source for the details
//! and the FIXME to drop this once lettre releases its fix.

mod error;
mod locale;
mod mailer;
mod templates;
mod transport;

pub use error::{Error, Result, SmtpFailure};
pub use locale::{DefaultLocaleOnly, Locale, LocaleResolver};
pub use mailer::{SmtpMailer, SmtpMailerBuilder};
pub use templates::{EmailTemplates, TemplateSet};
