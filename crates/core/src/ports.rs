//! The ports: what the service needs from the world, as object-safe async traits.
//!
//! Adapters implement these for a database, a mail transport, an identity system. The service
//! holds each as `Arc<dyn Port>`. The store contract below is what keeps the flow correct under
//! concurrency on any backend; an implementation that honours it needs no other coordination.

use std::error::Error as StdError;
use std::fmt;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::hashing::{HashingError, PasswordHash};
use crate::model::{Account, MailHistory, PendingSetup, Revision, SetupRecord, UserId};
use crate::policy::NormalizedPassword;
use crate::secret::{SetupLink, SetupToken, TokenDigest};

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The source of the current time. Nothing else in the library reads the system clock.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;
}

/// A bearer credential exactly as the client sent it (the part after `Bearer `).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerCredential(String);

impl BearerCredential {
    /// Wraps a credential.
    pub fn new(credential: impl Into<String>) -> Self {
        Self(credential.into())
    }

    /// The credential's text, for the identity provider.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerCredential(<redacted>)")
    }
}

/// Why an identity provider did not name a user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The credential is unknown, expired, malformed or badly signed.
    #[error("the access token is invalid")]
    InvalidCredential,
    /// The credential is valid, but the user has not linked the required third-party identity.
    #[error("the user has no linked identity")]
    LinkedIdentityMissing,
    /// The provider could not decide (its backend is down, say).
    #[error("the identity provider is unavailable")]
    Unavailable(#[source] BoxError),
}

/// Turns a bearer credential into the user it authenticates.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The user `credential` belongs to.
    ///
    /// # Errors
    /// An [`IdentityError`] saying why no user is named.
    async fn identify(&self, credential: &BearerCredential) -> Result<UserId, IdentityError>;
}

/// The store failed (connection lost, timeout, constraint the schema should have prevented).
///
/// A failed call must leave the user's data as it was before the call.
#[derive(Debug, thiserror::Error)]
#[error("user store failure: {source}")]
pub struct StoreError {
    #[source]
    source: BoxError,
}

impl StoreError {
    /// Wraps the adapter's own error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

/// The new state a request writes: the fresh pending token and the mail history including the
/// send about to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueUpdate {
    /// The new outstanding link, superseding any earlier one.
    pub pending: PendingSetup,
    /// The history to store, already trimmed to the cap window and including the new send
    /// (at `pending.issued_at`).
    pub history: MailHistory,
}

/// Result of [`UserStore::issue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The update was written.
    Issued,
    /// Something changed since the read (another request, a confirm, a password set
    /// elsewhere); nothing was written. The service reads again and decides anew.
    Conflict,
}

/// Result of [`UserStore::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// The password was stored and the token consumed.
    Completed,
    /// The token is no longer the user's outstanding one (used, superseded, withdrawn).
    TokenGone,
    /// The user got a password meanwhile; it was left untouched.
    PasswordAlreadySet,
}

/// Where users, their outstanding tokens and their mail history live.
///
/// # Contract
///
/// Each method is one atomic step against the backing store. Together they guarantee, however
/// calls from any number of service instances interleave:
///
/// - **One live token per user.** [`issue`](Self::issue) replaces the previous pending token;
///   the old digest stops matching at once.
/// - **A token completes at most once.** Of any number of concurrent
///   [`complete`](Self::complete) calls with the same digest, at most one returns
///   [`CompleteOutcome::Completed`].
/// - **A password is never overwritten.** `complete` stores the hash only if the user still has
///   no password, checked in the same atomic step as the write.
/// - **No usable token survives a password.** Once a user has a password, `find_by_token`
///   reports [`SetupState::PasswordSet`](crate::SetupState::PasswordSet) for any token row
///   still lying around, and `complete` refuses it, so a request racing a confirm cannot leave
///   a token that works.
/// - **Every write moves the revision.** `issue`, `withdraw` and `complete` each change the
///   user's [`Revision`] when they write, so an `issue` decided on an older read fails rather
///   than overwriting what happened since (a withdrawn send, a consumed token).
/// - **Failures change nothing.** A call that returns `Err` has written nothing.
///
/// A password written by another flow of the backend should also drop the user's pending
/// token where the store can arrange it (the in-memory store does). Where it cannot, because
/// other code writes the users table directly, the rules above still make the token useless
/// for as long as the password exists.
///
/// Users are never created or deleted through this trait: they belong to the embedding
/// backend. A user whose stored hash is NULL or empty has no password.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Reads the user's account, setup state, mail history and revision, or `None` if no such
    /// user exists.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    async fn load(&self, user: &UserId) -> Result<Option<SetupRecord>, StoreError>;

    /// Writes a new pending token and mail history, if and only if the user's revision is
    /// still `expected` and the user still has no password. Any successful write changes the
    /// revision.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be written; nothing was written then.
    async fn issue(
        &self,
        user: &UserId,
        expected: Revision,
        update: IssueUpdate,
    ) -> Result<IssueOutcome, StoreError>;

    /// Takes back a token whose email could not be sent: if `digest` is still the user's
    /// outstanding token, removes it and the send recorded at its `issued_at` from the
    /// history, so the failed send neither blocks a retry nor counts toward the cap.
    /// Otherwise does nothing.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be written.
    async fn withdraw(&self, user: &UserId, digest: &TokenDigest) -> Result<(), StoreError>;

    /// Finds the user whose outstanding token has this digest. Their state is
    /// [`SetupState::Pending`](crate::SetupState::Pending) with that digest, or
    /// [`SetupState::PasswordSet`](crate::SetupState::PasswordSet) if they got a password
    /// meanwhile. `None` if no outstanding token has this digest.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<SetupRecord>, StoreError>;

    /// Stores `hash` as the user's password and consumes the token, in one atomic step, if
    /// `digest` is still the user's outstanding token and the user has no password. Checks
    /// nothing about expiry: the service has done that.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be written; nothing was written then.
    async fn complete(
        &self,
        user: &UserId,
        digest: &TokenDigest,
        hash: &PasswordHash,
    ) -> Result<CompleteOutcome, StoreError>;
}

/// Everything a mailer needs to write the set-password email.
#[derive(Debug, Clone)]
pub struct SetupEmail {
    /// The user, with the address on record: the only recipient there ever is.
    pub account: Account,
    /// The full link, `{public base URL}/set-password?token=...`.
    pub link: SetupLink,
    /// The token alone, for templates that build their own link.
    pub token: SetupToken,
    /// When the link stops working.
    pub expires_at: OffsetDateTime,
    /// How long the link works from now, for wording such as "24 hours".
    pub valid_for: Duration,
}

/// Sending the email failed. The service answers 501 and takes the token back, so the user
/// can simply ask again.
#[derive(Debug, thiserror::Error)]
#[error("sending the setup email failed: {source}")]
pub struct MailError {
    #[source]
    source: BoxError,
}

impl MailError {
    /// Wraps the adapter's own error. It must not contain the link or the token.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

/// Delivers set-password emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email` to `email.account.email`. Returns once the mail system has accepted it.
    ///
    /// # Errors
    /// [`MailError`] if it was not accepted.
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError>;
}

/// Turns a normalised password into a stored hash.
///
/// A port of its own because hashing is deliberately slow: a server decides where it runs
/// (threads kept for it, off the async executor), how many run at once and how many may wait.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes `password`.
    ///
    /// # Errors
    /// [`HashingError`] if hashing failed.
    async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError>;
}
