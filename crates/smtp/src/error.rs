//! The one error type of this crate: why a mailer could not be built, or why a send failed.
//!
//! No message of these errors carries a setup link, a token or an SMTP password: they end up in
//! the service's logs and in the `MailError` it returns.

use std::fmt;
use std::time::Duration;

/// Result of this crate's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an SMTP mailer could not be built or could not send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SMTP URL is malformed or names something this mailer does not support.
    #[error("invalid SMTP URL: {0}")]
    InvalidUrl(String),
    /// A configured address (`From`, `Reply-To`) or the recipient on record cannot be used in a
    /// header as it is.
    #[error("invalid {role} address: {reason}")]
    InvalidAddress {
        /// Which address: "From", "Reply-To" or "recipient".
        role: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A template does not compile, does not render, or renders something unusable.
    #[error("email template {template}: {reason}")]
    Template {
        /// The template's name, such as `de/body.html`.
        template: String,
        /// What went wrong.
        reason: String,
    },
    /// The default locale has no templates.
    #[error("no templates for the default locale {0:?}")]
    DefaultLocaleMissing(String),
    /// The TLS configuration or handshake failed.
    #[error("TLS with the SMTP server failed: {0}")]
    Tls(String),
    /// No TCP connection to the SMTP server could be opened.
    #[error("could not connect to the SMTP server {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The network error.
        #[source]
        source: std::io::Error,
    },
    /// The SMTP server did not complete a step in time.
    #[error("the SMTP server did not answer within {after:?} while {stage}")]
    Timeout {
        /// What the mailer was waiting for.
        stage: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The SMTP server refused, or the conversation with it failed.
    #[error(transparent)]
    Smtp(#[from] SmtpFailure),
}

/// A failed SMTP exchange: a negative reply (4xx, 5xx), a broken connection or a protocol
/// error, as reported by the SMTP client.
pub struct SmtpFailure(lettre::transport::smtp::Error);

impl SmtpFailure {
    pub(crate) fn new(error: lettre::transport::smtp::Error) -> Self {
        Self(error)
    }

    /// The server's reply code (such as 550), if the server answered negatively.
    pub fn reply_code(&self) -> Option<u16> {
        self.0.status().map(|code| {
            let text = code.to_string();
            text.parse().unwrap_or_default()
        })
    }

    /// Whether the server refused permanently (a 5xx reply): trying again will not help.
    pub fn is_permanent(&self) -> bool {
        self.0.is_permanent()
    }

    /// Whether the server refused for now (a 4xx reply): a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        self.0.is_transient()
    }
}

impl fmt::Debug for SmtpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SmtpFailure").field(&self.0).finish()
    }
}

impl fmt::Display for SmtpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SMTP failure: {}", self.0)
    }
}

impl std::error::Error for SmtpFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
