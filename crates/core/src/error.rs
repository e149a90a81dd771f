//! Everything the service can refuse or fail with, and how each maps to HTTP.
//!
//! The mapping lives here, once: status, a stable machine-readable code, a fixed title per
//! code, and a detail sentence. No detail ever names a user, an address, a token or an expiry.

use time::Duration;

use crate::hashing::HashingError;
use crate::policy::PolicyViolation;
use crate::ports::{IdentityError, MailError, StoreError};

/// Result of the service's operations.
pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// Why a request or a confirm did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No bearer credential was sent.
    #[error("no access token was sent")]
    MissingCredential,
    /// The bearer credential was not accepted.
    #[error("the access token is invalid")]
    InvalidCredential,
    /// The user must first link a third-party identity.
    #[error("the user has no linked identity")]
    LinkedIdentityMissing,
    /// The identity provider could not be asked.
    #[error("the identity provider is unavailable")]
    IdentityUnavailable(#[source] IdentityError),
    /// The credential names a user the store does not have.
    #[error("the user does not exist")]
    UserNotFound,
    /// The user already has a password.
    #[error("the user already has a password")]
    PasswordAlreadySet,
    /// Too many setup emails were sent to this user recently.
    #[error("too many setup emails were requested")]
    TooManyRequests {
        /// How long until one more email may be sent.
        retry_after: Duration,
    },
    /// The token is unknown, superseded, already used, or malformed. These are deliberately
    /// indistinguishable.
    #[error("the setup token is invalid")]
    TokenInvalid,
    /// The token was valid but its lifetime is over.
    #[error("the setup token has expired")]
    TokenExpired,
    /// The new password breaks the password policy.
    #[error("the password was refused: {0}")]
    PasswordRejected(PolicyViolation),
    /// The user store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The email could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// Password hashing failed.
    #[error(transparent)]
    Hashing(#[from] HashingError),
    /// Concurrent requests for the same user kept overtaking this one.
    #[error("the user's setup data kept changing concurrently")]
    Contention,
}

impl From<IdentityError> for SetupError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidCredential => Self::InvalidCredential,
            IdentityError::LinkedIdentityMissing => Self::LinkedIdentityMissing,
            other => Self::IdentityUnavailable(other),
        }
    }
}

/// JSON Pointer to the password in a confirm request document.
pub const PASSWORD_POINTER: &str = "/data/attributes/password";

/// JSON Pointer to the token in a confirm request document.
pub const TOKEN_POINTER: &str = "/data/attributes/token";

impl SetupError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingCredential | Self::InvalidCredential | Self::LinkedIdentityMissing => 401,
            Self::UserNotFound => 404,
            Self::PasswordAlreadySet => 409,
            Self::TooManyRequests { .. } => 429,
            Self::TokenInvalid | Self::TokenExpired => 400,
            Self::PasswordRejected(_) => 422,
            // The API contract documents 501 for every server-side failure.
            Self::IdentityUnavailable(_)
            | Self::Store(_)
            | Self::Mail(_)
            | Self::Hashing(_)
            | Self::Contention => 501,
        }
    }

    /// The stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredential => "missing-credentials",
            Self::InvalidCredential => "invalid-credentials",
            Self::LinkedIdentityMissing => "missing-linked-identity",
            Self::IdentityUnavailable(_) => "identity-unavailable",
            Self::UserNotFound => "user-not-found",
            Self::PasswordAlreadySet => "password-already-set",
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::TokenInvalid => "token-invalid",
            Self::TokenExpired => "token-expired",
            Self::PasswordRejected(violation) => match violation {
                PolicyViolation::TooShort { .. } => "password-too-short",
                PolicyViolation::TooLong { .. } => "password-too-long",
                PolicyViolation::MatchesEmail => "password-matches-email",
                PolicyViolation::MatchesUserId => "password-matches-user-id",
                PolicyViolation::TooCommon => "password-too-common",
            },
            Self::Store(_) => "store-unavailable",
            Self::Mail(_) => "mail-not-sent",
            Self::Hashing(HashingError::Busy { .. }) => "server-busy",
            Self::Hashing(_) => "hashing-failed",
            Self::Contention => "concurrent-modification",
        }
    }

    /// A short summary that is the same for every occurrence of this code.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MissingCredential => "OAuth token missing",
            Self::InvalidCredential => "OAuth token invalid",
            Self::LinkedIdentityMissing => "Missing linked identity for authorized access",
            Self::IdentityUnavailable(_) => "Identity provider unavailable",
            Self::UserNotFound => "User not found",
            Self::PasswordAlreadySet => "Password is already set",
            Self::TooManyRequests { .. } => "Too many password setup requests",
            Self::TokenInvalid => "Invalid password setup link",
            Self::TokenExpired => "Expired password setup link",
            Self::PasswordRejected(violation) => match violation {
                PolicyViolation::TooShort { .. } => "Password too short",
                PolicyViolation::TooLong { .. } => "Password too long",
                PolicyViolation::MatchesEmail => "Password matches the email address",
                PolicyViolation::MatchesUserId => "Password matches the user name",
                PolicyViolation::TooCommon => "Password too common",
            },
            Self::Hashing(HashingError::Busy { .. }) => "Server busy",
            Self::Store(_) | Self::Hashing(_) | Self::Contention => "Internal server error",
            Self::Mail(_) => "Email could not be sent",
        }
    }

    /// A sentence for this occurrence, safe to show to the client.
    pub fn detail(&self) -> String {
        match self {
            Self::MissingCredential => "Send an OAuth access token as a Bearer credential.".into(),
            Self::InvalidCredential => "The OAuth access token was not accepted.".into(),
            Self::LinkedIdentityMissing => "Linked identity is needed to access this resource, \
                please check why the user does not have a linked identity"
                .into(),
            Self::IdentityUnavailable(_) => {
                "The access token could not be checked right now; please try again.".into()
            }
            Self::UserNotFound => "The user of this access token does not exist.".into(),
            Self::PasswordAlreadySet => {
                "A password is already set; use the password change or reset flow instead.".into()
            }
            Self::TooManyRequests { retry_after } => format!(
                "Too many setup emails were sent recently; try again in {}.",
                seconds_phrase(retry_after_seconds(*retry_after))
            ),
            Self::TokenInvalid => {
                "This link is not valid (it may have been used or replaced by a newer one); \
                 request a new one."
                    .into()
            }
            Self::TokenExpired => "This link has expired; request a new one.".into(),
            Self::PasswordRejected(violation) => {
                let mut sentence = violation.to_string();
                if let Some(first) = sentence.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                sentence.push('.');
                sentence
            }
            Self::Hashing(HashingError::Busy { retry_after }) => format!(
                "Too many passwords are being set right now; the link still works, \
                 try again in {}.",
                seconds_phrase(retry_after_seconds(*retry_after))
            ),
            Self::Store(_) | Self::Hashing(_) | Self::Contention => {
                "The request could not be completed; please try again.".into()
            }
            Self::Mail(_) => "The email could not be sent; please request it again.".into(),
        }
    }

    /// The JSON Pointer of the request member at fault, if any.
    pub fn pointer(&self) -> Option<&'static str> {
        match self {
            Self::PasswordRejected(_) => Some(PASSWORD_POINTER),
            Self::TokenInvalid | Self::TokenExpired => Some(TOKEN_POINTER),
            _ => None,
        }
    }

    /// For a rate-limit refusal or a busy server, whole seconds until the client may retry.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests { retry_after }
            | Self::Hashing(HashingError::Busy { retry_after }) => {
                Some(retry_after_seconds(*retry_after))
            }
            _ => None,
        }
    }

    /// Whether the server refused the work because it is overloaded, not because anything
    /// failed: the same request can succeed a moment later.
    pub fn is_overload(&self) -> bool {
        matches!(self, Self::Hashing(HashingError::Busy { .. }))
    }

    /// Whether the fault lies on the server side (and is logged as an error).
    pub fn is_server_failure(&self) -> bool {
        self.status() >= 500
    }
}

fn seconds_phrase(seconds: u64) -> String {
    if seconds == 1 {
        "1 second".to_owned()
    } else {
        format!("{seconds} seconds")
    }
}

/// Rounds up, so a client that waits the advertised time is never early.
fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.whole_seconds().max(0).unsigned_abs();
    if wait.subsec_nanoseconds() > 0 {
        whole + 1
    } else {
        whole.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::seconds(30)), 30);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn policy_details_are_sentences() {
        let error = SetupError::PasswordRejected(PolicyViolation::TooShort { min_chars: 8 });
        assert_eq!(
            error.detail(),
            "The password must have at least 8 characters."
        );
        assert_eq!(error.pointer(), Some(PASSWORD_POINTER));
        assert_eq!(error.status(), 422);
    }

    #[test]
    fn a_busy_hasher_answers_501_with_a_retry_time() {
        let error = SetupError::from(HashingError::Busy {
            retry_after: Duration::milliseconds(2_300),
        });
        assert_eq!(error.status(), 501);
        assert_eq!(error.code(), "server-busy");
        assert_eq!(error.retry_after_seconds(), Some(3));
        assert!(error.is_overload());
        assert!(error.detail().contains("try again in 3 seconds"));
        assert_eq!(
            SetupError::from(HashingError::Failed).retry_after_seconds(),
            None
        );
        assert!(!SetupError::from(HashingError::Failed).is_overload());
        let soon = SetupError::from(HashingError::Busy {
            retry_after: Duration::milliseconds(200),
        });
        assert!(
            soon.detail().ends_with("try again in 1 second."),
            "{}",
            soon.detail()
        );
    }
}
