//! The SMTP mailer: renders the set-password email for a user and hands it to the SMTP server.

use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use password_setup_core::{MailError, Mailer, SetupEmail};
use rand::Rng as _;

use crate::error::{Error, Result};
use crate::locale::{DefaultLocaleOnly, Locale, LocaleResolver};
use crate::templates::{EmailTemplates, EmailValues};
use crate::transport::{Endpoint, Pool, PoolSettings};

/// Sends set-password emails through an SMTP server. Build one with [`SmtpMailer::builder`] and
/// share it (it is meant to live as `Arc<dyn Mailer>` in the service).
pub struct SmtpMailer {
    pool: Pool,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    templates: EmailTemplates,
    default_locale: Locale,
    locale_resolver: Arc<dyn LocaleResolver>,
    site_name: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("pool", &self.pool)
            .field("from", &self.from.to_string())
            .field("default_locale", &self.default_locale)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Starts configuring a mailer that sends through the server at `url`.
    ///
    /// The URL has lettre's format: `smtp://host:port` (plain), `smtp://host?tls=required` or
    /// `?tls=opportunistic` (STARTTLS, port 587 by default), `smtps://host` (TLS from the first
    /// byte, port 465 by default); `user:password@` before the host for authentication
    /// (percent-encoded; without TLS the password crosses the network in the clear), and
    /// `/name` as path for the EHLO name (default `[127.0.0.1]`). No other query parameter is
    /// accepted.
    pub fn builder(url: impl Into<String>) -> SmtpMailerBuilder {
        SmtpMailerBuilder {
            url: url.into(),
            from: None,
            reply_to: None,
            site_name: String::new(),
            templates: None,
            default_locale: Locale::english(),
            locale_resolver: Arc::new(DefaultLocaleOnly),
            settings: PoolSettings {
                max_connections: 4,
                idle_timeout: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(10),
                send_timeout: Duration::from_secs(30),
                nodelay: true,
            },
        }
    }

    /// Renders `email` and sends it to `email.account.email`, with this crate's own error.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] if the address on record cannot be a recipient;
    /// [`Error::Template`] if rendering fails; [`Error::Connect`], [`Error::Tls`],
    /// [`Error::Timeout`] and [`Error::Smtp`] if the server cannot be reached or refuses.
    pub async fn deliver(&self, email: &SetupEmail) -> Result<()> {
        let recipient = parse_address("recipient", email.account.email.as_str())?;
        let wanted = self.locale_resolver.locale_for(&email.account).await;
        let locale = self.templates.choose(wanted.as_ref(), &self.default_locale);
        let rendered = self.templates.render(
            &locale,
            &EmailValues {
                link: email.link.expose_secret(),
                token: email.token.expose_secret(),
                expires_at: email.expires_at,
                valid_for: email.valid_for,
                recipient: recipient.as_ref(),
                site_name: &self.site_name,
                sender_name: self.from.name.as_deref().unwrap_or_default(),
            },
        )?;

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, recipient.clone()))
            .subject(rendered.subject)
            // The instant the link was issued: the service's clock, not this machine's.
            .date(SystemTime::from(email.expires_at - email.valid_for))
            .message_id(Some(message_id(&self.from.email)));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|error| Error::Template {
                template: "message".into(),
                reason: error.to_string(),
            })?;

        self.pool
            .send(&self.from.email, &recipient, &message.formatted())
            .await
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(name = "smtp.send", skip_all)]
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError> {
        match self.deliver(email).await {
            Ok(()) => {
                tracing::debug!("setup email accepted by the SMTP server");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(error = %error, "setup email not accepted by the SMTP server");
                Err(MailError::new(error))
            }
        }
    }
}

/// Configures an [`SmtpMailer`]. Only `From` is required besides the URL.
pub struct SmtpMailerBuilder {
    url: String,
    from: Option<String>,
    reply_to: Option<String>,
    site_name: String,
    templates: Option<EmailTemplates>,
    default_locale: Locale,
    locale_resolver: Arc<dyn LocaleResolver>,
    settings: PoolSettings,
}

impl fmt::Debug for SmtpMailerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry the SMTP password.
        f.debug_struct("SmtpMailerBuilder")
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("default_locale", &self.default_locale)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SmtpMailerBuilder {
    /// The sender, as `Name <address>` or a bare address. Required.
    #[must_use]
    pub fn from(mut self, mailbox: impl Into<String>) -> Self {
        self.from = Some(mailbox.into());
        self
    }

    /// Where replies go, as `Name <address>` or a bare address. Default: no `Reply-To`.
    #[must_use]
    pub fn reply_to(mut self, mailbox: impl Into<String>) -> Self {
        self.reply_to = Some(mailbox.into());
        self
    }

    /// The product or site name the templates mention, such as "Example Cloud". Default: none.
    #[must_use]
    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    /// The templates. Default: [`EmailTemplates::builtin`] (English and German).
    #[must_use]
    pub fn templates(mut self, templates: EmailTemplates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// The locale used when the resolver has no preference or no templates match it.
    /// Default: English.
    #[must_use]
    pub fn default_locale(mut self, locale: Locale) -> Self {
        self.default_locale = locale;
        self
    }

    /// Picks each user's locale. Default: [`DefaultLocaleOnly`].
    #[must_use]
    pub fn locale_resolver(mut self, resolver: Arc<dyn LocaleResolver>) -> Self {
        self.locale_resolver = resolver;
        self
    }

    /// Most connections open to the server at once, busy or idle (at least 1). Further sends
    /// wait for a free connection, at most the send timeout. Default: 4.
    #[must_use]
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.settings.max_connections = connections;
        self
    }

    /// How long an unused connection is kept. Default: 60 s, below the usual server limit.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Limit for opening a connection (TCP, greeting, EHLO, TLS, authentication) or checking
    /// an idle one. Default: 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Limit for sending one message over an open connection. Default: 30 s.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.settings.send_timeout = timeout;
        self
    }

    /// Whether connections disable Nagle's algorithm. Default: `true`. Turning it off makes
    /// every message wait for the server's delayed ACK; it exists to measure that.
    #[must_use]
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.settings.nodelay = nodelay;
        self
    }

    /// Checks the configuration and builds the mailer. Opens no connection yet.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::InvalidAddress`] for `From` or `Reply-To`,
    /// [`Error::DefaultLocaleMissing`], [`Error::Template`] or [`Error::Tls`].
    pub fn build(self) -> Result<SmtpMailer> {
        let endpoint = Endpoint::parse(&self.url)?;
        let from = parse_mailbox(
            "From",
            self.from.as_deref().ok_or(Error::InvalidAddress {
                role: "From",
                reason: "no sender was configured".into(),
            })?,
        )?;
        let reply_to = self
            .reply_to
            .as_deref()
            .map(|text| parse_mailbox("Reply-To", text))
            .transpose()?;
        if self.site_name.chars().any(char::is_control) {
            return Err(Error::Template {
                template: "site name".into(),
                reason: "it must not contain line breaks or control characters".into(),
            });
        }
        let templates = match self.templates {
            Some(templates) => templates,
            None => EmailTemplates::builtin()?,
        };
        if !templates.has_locale(&self.default_locale) {
            return Err(Error::DefaultLocaleMissing(
                self.default_locale.as_str().to_owned(),
            ));
        }

        Ok(SmtpMailer {
            pool: Pool::new(endpoint, self.settings)?,
            from,
            reply_to,
            templates,
            default_locale: self.default_locale,
            locale_resolver: self.locale_resolver,
            site_name: self.site_name,
        })
    }
}

/// Why a header value is refused before any parser sees it: line breaks would start new
/// headers, and other control characters have no business in an address.
const CONTROL_CHARACTERS: &str = "it contains a line break or another control character";

fn parse_mailbox(role: &'static str, text: &str) -> Result<Mailbox> {
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidAddress {
            role,
            reason: CONTROL_CHARACTERS.into(),
        });
    }
    Mailbox::from_str(text.trim()).map_err(|error| Error::InvalidAddress {
        role,
        reason: error.to_string(),
    })
}

fn parse_address(role: &'static str, text: &str) -> Result<Address> {
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidAddress {
            role,
            reason: CONTROL_CHARACTERS.into(),
        });
    }
    // The reason names the fault, never the address: it is personal data.
    Address::from_str(text).map_err(|error| Error::InvalidAddress {
        role,
        reason: error.to_string(),
    })
}

/// A fresh `Message-ID`: 128 random bits at the sender's domain.
fn message_id(from: &Address) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let unique: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("<{unique}@{}>", from.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_injection_in_configured_addresses_is_refused() {
        for (from, reply_to) in [
            (
                "Evil\r\nBcc: victim@example.test <a@example.test>",
                "b@example.test",
            ),
            (
                "a@example.test",
                "b@example.test\r\nBcc: victim@example.test",
            ),
            ("Evil\n <a@example.test>", "b@example.test"),
            ("a@example.test\0", "b@example.test"),
            ("not an address", "b@example.test"),
        ] {
            let result = SmtpMailer::builder("smtp://127.0.0.1:25")
                .from(from)
                .reply_to(reply_to)
                .build();
            assert!(
                matches!(result, Err(Error::InvalidAddress { .. })),
                "{from:?} / {reply_to:?}"
            );
        }
    }

    #[test]
    fn a_sender_is_required_and_a_default_locale_needs_templates() {
        assert!(SmtpMailer::builder("smtp://127.0.0.1:25").build().is_err());
        let result = SmtpMailer::builder("smtp://127.0.0.1:25")
            .from("a@example.test")
            .default_locale(Locale::parse("fr").unwrap())
            .build();
        assert!(matches!(result, Err(Error::DefaultLocaleMissing(_))));
    }

    #[test]
    fn recipients_with_control_characters_are_refused_without_echoing_them() {
        let error = parse_address("recipient", "alice@example.test\r\nBcc: x@y.test").unwrap_err();
        assert!(!error.to_string().contains("alice"), "{error}");
        assert!(parse_address("recipient", "alice@example.test").is_ok());
    }
}
