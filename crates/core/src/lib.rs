//! The password-setup state machine: lets a user who has no password get one through an
//! emailed, expiring link.
//!
//! This crate is the pure domain. It performs no I/O of its own, starts no runtime and knows
//! no web framework, database or mail transport: those sit behind the ports in [`ports`].
//!
//! # Vocabulary
//!
//! - **Request**: a user without a password asks for one (`PUT /user/password`). The service
//!   issues a **setup token**, stores only its **digest** (SHA-256), and mails a **link**
//!   carrying the token.
//! - **Pending**: the state of a user with an outstanding link. A newer request **supersedes**
//!   the older link, so at most one token per user ever works.
//! - **Confirm**: the user submits the token and a new password; the password is normalised
//!   (NFKC), checked against the [`PasswordPolicy`], hashed with Argon2id and stored, and the
//!   token is **consumed**.
//! - **Cooldown**: within [`SetupPolicy::resend_cooldown`] after an email, a repeated request is
//!   accepted but sends nothing. **Cap**: at most [`SetupPolicy::email_cap`] emails per user in
//!   a rolling [`SetupPolicy::cap_window`]; past it, requests are refused with a retry-after.
//!
//! ```text
//! NoPassword --request--> Pending(token, expiry) --confirm--> PasswordSet
//!                          |  ^
//!                          +--+ request again: a new token supersedes the old one
//! ```
//!
//! # Using it
//!
//! Build a [`PasswordSetup`] from implementations of the ports, then call
//! [`PasswordSetup::request`] and [`PasswordSetup::confirm`] from your HTTP handlers and turn
//! errors into answers with [`ErrorResponse::from_error`]. Check passwords at login with
//! [`verify_password`], which applies the same normalisation.

mod error;
mod hashing;
mod jsonapi;
mod model;
mod policy;
pub mod ports;
mod secret;
mod service;

pub use error::{PASSWORD_POINTER, Result, SetupError, TOKEN_POINTER};
pub use hashing::{
    Argon2idHasher, HashingError, HashingMemory, HashingParams, PasswordHash, hash_password,
    hash_password_in, verify_password,
};
pub use jsonapi::{ErrorDocument, ErrorLinks, ErrorObject, ErrorResponse, ErrorSource, MEDIA_TYPE};
pub use model::{
    Account, EmailAddress, MailHistory, PendingSetup, Revision, SetupRecord, SetupState, UserId,
};
pub use policy::{NormalizedPassword, PasswordPolicy, PolicyViolation, SetupPolicy};
pub use ports::{
    BearerCredential, Clock, CompleteOutcome, IdentityError, IdentityProvider, IssueOutcome,
    IssueUpdate, MailError, Mailer, PasswordHasher, SetupEmail, StoreError, UserStore,
};
pub use secret::{NewPassword, SetupLink, SetupToken, TokenDigest};
pub use service::{
    BuildError, PasswordSetup, PasswordSetupBuilder, RequestAccepted, SET_PASSWORD_PATH,
    SetupCompleted,
};

/// Normalises a password the way setting and verifying do (NFKC). Exposed for backends that
/// hash passwords themselves and must stay compatible.
pub fn normalize_password(password: &str) -> NormalizedPassword {
    policy::normalize(password)
}
