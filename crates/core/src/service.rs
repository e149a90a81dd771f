//! The service: the two operations of the flow, request and confirm, over the ports.
//!
//! The service decides everything (cooldown, cap, expiry, policy); stores only carry out
//! conditional writes, so the same rules hold whatever the backend.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tracing::{Span, field};
use url::Url;

use crate::error::{Result, SetupError};
use crate::hashing::{Argon2idHasher, HashingError, HashingParams};
use crate::model::{MailHistory, PendingSetup, SetupRecord, SetupState, UserId};
use crate::policy::{PasswordPolicy, SetupPolicy};
use crate::ports::{
    BearerCredential, Clock, CompleteOutcome, IdentityProvider, IssueOutcome, IssueUpdate, Mailer,
    PasswordHasher, SetupEmail, UserStore,
};
use crate::secret::{NewPassword, SetupLink, SetupToken};

/// How often a request re-reads and retries after a concurrent write overtook it. One retry
/// normally suffices, since the write that won starts a cooldown the retry then observes; more
/// are needed only when the cooldown is zero or sends keep failing, and then every retry is
/// one more email toward the cap, which ends the contest.
const MAX_ISSUE_ATTEMPTS: usize = 16;

/// The path, below the public base URL, of the page a setup link opens.
pub const SET_PASSWORD_PATH: &str = "set-password";

/// A request that was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAccepted {
    /// When the user's current link stops working.
    pub expires_at: OffsetDateTime,
    /// Whether this request sent an email, or found one sent within the resend cooldown.
    pub email_sent: bool,
}

/// A completed setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupCompleted {
    /// The user who now has a password.
    pub user_id: UserId,
}

/// Why [`PasswordSetupBuilder::build`] refused the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required port was not given. There are no silent fallbacks: in particular, a service
    /// without a mailer is an error, never one that logs links instead.
    #[error("no {0} was configured")]
    Missing(&'static str),
    /// The public base URL is not an absolute `http` or `https` URL without query or fragment.
    #[error("invalid public base URL: {0}")]
    InvalidBaseUrl(String),
    /// The limits contradict each other or are out of range.
    #[error("invalid setup policy: {0}")]
    InvalidPolicy(&'static str),
    /// The password length limits contradict each other or are out of range.
    #[error("invalid password policy: {0}")]
    InvalidPasswordPolicy(&'static str),
    /// Argon2 refuses the hashing parameters.
    #[error("invalid hashing parameters: {0}")]
    InvalidHashingParams(#[source] HashingError),
}

/// Outcome of looking at a user's record at one instant.
enum Decision {
    AlreadySet,
    /// An email went out within the cooldown; its link still works.
    CoolingDown(PendingSetup),
    Capped {
        retry_after: Duration,
    },
    /// Issue a new link; the history is what remains inside the cap window.
    Issue(MailHistory),
}

fn decide(record: &SetupRecord, now: OffsetDateTime, policy: &SetupPolicy) -> Decision {
    match record.state {
        SetupState::PasswordSet => return Decision::AlreadySet,
        SetupState::Pending(pending)
            if pending.is_live_at(now) && now < pending.issued_at + policy.resend_cooldown =>
        {
            return Decision::CoolingDown(pending);
        }
        SetupState::Pending(_) | SetupState::NoPassword => {}
    }

    let recent = record.history.since(now - policy.cap_window);
    let sends = recent.sends();
    let cap = policy.email_cap as usize;
    match sends
        .len()
        .checked_sub(cap)
        .and_then(|surplus| sends.get(surplus))
    {
        // One more email may go out once the send that keeps the count at the cap has left
        // the window; with a lowered cap, that is not the oldest send.
        Some(blocking) => Decision::Capped {
            retry_after: *blocking + policy.cap_window - now,
        },
        None => Decision::Issue(recent),
    }
}

/// The password-setup service. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct PasswordSetup {
    store: Arc<dyn UserStore>,
    mailer: Arc<dyn Mailer>,
    identity: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    hasher: Arc<dyn PasswordHasher>,
    base_url: Url,
    /// The set-password page's address up to the token's value, built once from `base_url`.
    link_prefix: String,
    policy: SetupPolicy,
    password_policy: PasswordPolicy,
}

impl std::fmt::Debug for PasswordSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSetup")
            .field("base_url", &self.base_url.as_str())
            .field("policy", &self.policy)
            .field("password_policy", &self.password_policy)
            .finish_non_exhaustive()
    }
}

impl PasswordSetup {
    /// Starts configuring a service.
    pub fn builder() -> PasswordSetupBuilder {
        PasswordSetupBuilder::default()
    }

    /// The limits on links and emails.
    pub fn policy(&self) -> &SetupPolicy {
        &self.policy
    }

    /// The rules for new passwords (for showing them on a form).
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.password_policy
    }

    /// Handles `PUT /user/password`: authenticates the caller, then asks for a password to be
    /// set for them (see [`Self::request_for`]).
    ///
    /// # Errors
    /// [`SetupError::MissingCredential`] without a credential; the identity provider's refusals
    /// as their [`SetupError`] variants; otherwise those of [`Self::request_for`].
    #[tracing::instrument(name = "password_setup.request", skip_all, fields(user_id = field::Empty))]
    pub async fn request(&self, credential: Option<&BearerCredential>) -> Result<RequestAccepted> {
        let credential = credential.ok_or(SetupError::MissingCredential)?;
        let user = self.identity.identify(credential).await?;
        Span::current().record("user_id", user.as_str());
        // Not through `request_for`, whose span would repeat this one's.
        self.issue_link(&user).await
    }

    /// Asks for a password to be set for an already authenticated user: mails a fresh link
    /// (superseding any earlier one), or, within the resend cooldown, keeps the current link
    /// and sends nothing.
    ///
    /// If the email cannot be sent, the new link is taken back: the failure starts no cooldown
    /// and counts toward no cap, so an immediate retry sends a working link.
    ///
    /// # Errors
    /// [`SetupError::UserNotFound`], [`SetupError::PasswordAlreadySet`],
    /// [`SetupError::TooManyRequests`] past the email cap; [`SetupError::Store`] and
    /// [`SetupError::Mail`] on failures.
    #[tracing::instrument(name = "password_setup.request_for", skip_all, fields(user_id = %user))]
    pub async fn request_for(&self, user: &UserId) -> Result<RequestAccepted> {
        self.issue_link(user).await
    }

    async fn issue_link(&self, user: &UserId) -> Result<RequestAccepted> {
        for _ in 0..MAX_ISSUE_ATTEMPTS {
            let now = self.clock.now();
            let record = self
                .store
                .load(user)
                .await?
                .ok_or(SetupError::UserNotFound)?;

            let recent = match decide(&record, now, &self.policy) {
                Decision::AlreadySet => return Err(SetupError::PasswordAlreadySet),
                Decision::Capped { retry_after } => {
                    return Err(SetupError::TooManyRequests { retry_after });
                }
                Decision::CoolingDown(pending) => {
                    // FIXME: a link whose email is still being sent counts as sent, so a repeat
                    // arriving during a slow send that then fails is told 202 although the link
                    // is taken back and no email comes (a retry after that works at once).
                    // Telling the two apart needs a "sending" mark in the store contract.
                    tracing::info!("setup email sent recently; not sending another");
                    return Ok(RequestAccepted {
                        expires_at: pending.expires_at,
                        email_sent: false,
                    });
                }
                Decision::Issue(recent) => recent,
            };

            let (token, digest) = SetupToken::generate();
            let pending = PendingSetup {
                digest,
                issued_at: now,
                expires_at: now + self.policy.token_ttl,
            };
            let update = IssueUpdate {
                pending,
                history: recent.with_send(now),
            };
            if self.store.issue(user, record.revision, update).await? == IssueOutcome::Conflict {
                tracing::debug!("setup data changed concurrently; deciding again");
                continue;
            }

            let email = SetupEmail {
                account: record.account,
                link: self.link_for(&token),
                token,
                expires_at: pending.expires_at,
                valid_for: self.policy.token_ttl,
            };
            if let Err(error) = self.mailer.send(&email).await {
                if let Err(withdraw_error) = self.store.withdraw(user, &digest).await {
                    // The undelivered token stays stored: harmless, since nobody has it, but
                    // its send keeps counting until it leaves the cooldown and the window.
                    tracing::error!(error = %withdraw_error, "could not take back an unsent link");
                }
                return Err(error.into());
            }

            tracing::info!(expires_at = %pending.expires_at, "setup email sent");
            return Ok(RequestAccepted {
                expires_at: pending.expires_at,
                email_sent: true,
            });
        }
        Err(SetupError::Contention)
    }

    /// Completes the flow: checks the token and the password, hashes the password with
    /// Argon2id and stores it, consuming the token.
    ///
    /// Nothing is hashed unless the token is valid and the password passes the policy, and a
    /// refused password leaves the token usable.
    ///
    /// # Errors
    /// [`SetupError::TokenInvalid`] for a malformed, unknown, superseded or used token;
    /// [`SetupError::TokenExpired`]; [`SetupError::PasswordAlreadySet`] if the user got a
    /// password meanwhile; [`SetupError::PasswordRejected`] for a policy violation;
    /// [`SetupError::Store`] and [`SetupError::Hashing`] on failures.
    #[tracing::instrument(name = "password_setup.confirm", skip_all, fields(user_id = field::Empty))]
    pub async fn confirm(
        &self,
        token: &SetupToken,
        password: &NewPassword,
    ) -> Result<SetupCompleted> {
        // A huge input is refused before anything else touches it.
        self.password_policy
            .precheck(password)
            .map_err(SetupError::PasswordRejected)?;

        let digest = token.digest().ok_or(SetupError::TokenInvalid)?;
        let record = self
            .store
            .find_by_token(&digest)
            .await?
            .ok_or(SetupError::TokenInvalid)?;
        Span::current().record("user_id", record.account.id.as_str());

        let pending = match record.state {
            SetupState::PasswordSet => return Err(SetupError::PasswordAlreadySet),
            SetupState::Pending(pending) if pending.digest == digest => pending,
            // A store that answers with another token's record breaks its contract; refusing
            // is the only safe reading.
            SetupState::Pending(_) | SetupState::NoPassword => {
                return Err(SetupError::TokenInvalid);
            }
        };
        if !pending.is_live_at(self.clock.now()) {
            return Err(SetupError::TokenExpired);
        }

        let normalized = self
            .password_policy
            .check(password, &record.account)
            .map_err(SetupError::PasswordRejected)?;
        let hash = self.hasher.hash(normalized).await?;

        let user_id = record.account.id;
        match self.store.complete(&user_id, &digest, &hash).await? {
            CompleteOutcome::Completed => {
                tracing::info!("password set");
                Ok(SetupCompleted { user_id })
            }
            CompleteOutcome::TokenGone => Err(SetupError::TokenInvalid),
            CompleteOutcome::PasswordAlreadySet => Err(SetupError::PasswordAlreadySet),
        }
    }

    fn link_for(&self, token: &SetupToken) -> SetupLink {
        // The token's alphabet is URL-safe, so it needs no encoding after the prefix.
        let token = token.expose_secret();
        let mut link = String::with_capacity(self.link_prefix.len() + token.len());
        link.push_str(&self.link_prefix);
        link.push_str(token);
        SetupLink::new(link)
    }
}

/// Configures a [`PasswordSetup`]. Store, mailer, identity provider, clock and public base URL
/// are required; the rest have safe defaults.
#[derive(Default)]
pub struct PasswordSetupBuilder {
    store: Option<Arc<dyn UserStore>>,
    mailer: Option<Arc<dyn Mailer>>,
    identity: Option<Arc<dyn IdentityProvider>>,
    clock: Option<Arc<dyn Clock>>,
    hasher: Option<Arc<dyn PasswordHasher>>,
    hashing_params: HashingParams,
    base_url: Option<String>,
    policy: SetupPolicy,
    password_policy: PasswordPolicy,
}

impl PasswordSetupBuilder {
    /// Where users and tokens live.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn UserStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How setup emails are sent.
    #[must_use]
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// How bearer credentials become users.
    #[must_use]
    pub fn identity_provider(mut self, identity: Arc<dyn IdentityProvider>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Where the current time comes from.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where and how passwords are hashed. Default: Argon2id on the calling thread with
    /// [`Self::hashing_params`].
    #[must_use]
    pub fn hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Argon2id parameters for the default hasher. Default: [`HashingParams::OWASP`].
    #[must_use]
    pub fn hashing_params(mut self, params: HashingParams) -> Self {
        self.hashing_params = params;
        self
    }

    /// The public URL the set-password page is served under, such as
    /// `https://accounts.example.com`. Links are always built from this, never from request
    /// headers.
    #[must_use]
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Limits on links and emails.
    #[must_use]
    pub fn policy(mut self, policy: SetupPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Rules for new passwords.
    #[must_use]
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = policy;
        self
    }

    /// Checks the configuration and builds the service.
    ///
    /// # Errors
    /// A [`BuildError`] naming what is missing or invalid.
    pub fn build(self) -> std::result::Result<PasswordSetup, BuildError> {
        let base_url = parse_base_url(
            self.base_url
                .as_deref()
                .ok_or(BuildError::Missing("public base URL"))?,
        )?;
        if let Some(problem) = self.policy.problems() {
            return Err(BuildError::InvalidPolicy(problem));
        }
        if let Some(problem) = self.password_policy.problems() {
            return Err(BuildError::InvalidPasswordPolicy(problem));
        }
        let hasher = match self.hasher {
            Some(hasher) => hasher,
            None => Arc::new(
                Argon2idHasher::new(self.hashing_params)
                    .map_err(BuildError::InvalidHashingParams)?,
            ),
        };

        Ok(PasswordSetup {
            store: self.store.ok_or(BuildError::Missing("user store"))?,
            mailer: self.mailer.ok_or(BuildError::Missing("mailer"))?,
            identity: self
                .identity
                .ok_or(BuildError::Missing("identity provider"))?,
            clock: self.clock.ok_or(BuildError::Missing("clock"))?,
            hasher,
            link_prefix: link_prefix(&base_url),
            base_url,
            policy: self.policy,
            password_policy: self.password_policy,
        })
    }
}

/// `base_url` with the set-password page's path and an empty `token` parameter: a link is this
/// and a token. Built once, since the base never changes and the token needs no encoding.
fn link_prefix(base_url: &Url) -> String {
    let mut url = base_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(SET_PASSWORD_PATH);
    }
    url.query_pairs_mut().append_pair("token", "");
    url.into()
}

fn parse_base_url(text: &str) -> std::result::Result<Url, BuildError> {
    let invalid = |why: &str| BuildError::InvalidBaseUrl(format!("{text:?}: {why}"));
    let url = Url::parse(text).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not contain credentials"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, EmailAddress, Revision};
    use crate::secret::TokenDigest;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn record(state: SetupState, sends: Vec<OffsetDateTime>) -> SetupRecord {
        SetupRecord {
            account: Account {
                id: UserId::new("u"),
                email: EmailAddress::new("u@example.test"),
            },
            state,
            history: MailHistory::new(sends),
            revision: Revision(1),
        }
    }

    fn pending_at(issued_at: OffsetDateTime) -> SetupState {
        SetupState::Pending(PendingSetup {
            digest: TokenDigest::from_bytes([7; 32]),
            issued_at,
            expires_at: issued_at + Duration::hours(24),
        })
    }

    #[test]
    fn cooldown_holds_until_its_last_instant() {
        let policy = SetupPolicy::default();
        let state = pending_at(T0);

        let inside = decide(
            &record(state, vec![T0]),
            T0 + Duration::seconds(59),
            &policy,
        );
        let after = decide(
            &record(state, vec![T0]),
            T0 + Duration::seconds(60),
            &policy,
        );

        assert!(matches!(inside, Decision::CoolingDown(_)));
        assert!(matches!(after, Decision::Issue(_)));
    }

    #[test]
    fn the_cap_counts_a_rolling_window_and_says_when_it_reopens() {
        let policy = SetupPolicy::default();
        let sends: Vec<_> = (0..5).map(|i| T0 + Duration::hours(i)).collect();
        let now = T0 + Duration::hours(5);

        match decide(
            &record(pending_at(T0 + Duration::hours(4)), sends.clone()),
            now,
            &policy,
        ) {
            Decision::Capped { retry_after } => assert_eq!(retry_after, Duration::hours(19)),
            _ => panic!("expected the cap"),
        }
        let reopened = T0 + Duration::hours(24);
        match decide(&record(SetupState::NoPassword, sends), reopened, &policy) {
            Decision::Issue(recent) => assert_eq!(recent.sends().len(), 4),
            _ => panic!("expected a new link once the oldest send left the window"),
        }
    }

    #[test]
    fn a_lowered_cap_waits_for_the_send_that_keeps_the_count_at_the_cap() {
        let policy = SetupPolicy {
            email_cap: 2,
            ..SetupPolicy::default()
        };
        let sends: Vec<_> = (0..5).map(|i| T0 + Duration::hours(i)).collect();
        let now = T0 + Duration::hours(5);

        match decide(&record(SetupState::NoPassword, sends), now, &policy) {
            // Sends at 3h and 4h are within any later window of 24h until 27h.
            Decision::Capped { retry_after } => assert_eq!(retry_after, Duration::hours(22)),
            _ => panic!("expected the cap"),
        }
    }

    #[test]
    fn base_urls_must_be_plain_http_or_https() {
        assert!(parse_base_url("https://accounts.example.test/app").is_ok());
        for bad in [
            "ftp://x.test",
            "https://x.test/?a=b",
            "https://u:p@x.test",
            "not a url",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_put_the_token_after_the_set_password_page_of_the_base() {
        for (base, prefix) in [
            ("https://x.test", "https://x.test/set-password?token="),
            ("https://x.test/", "https://x.test/set-password?token="),
            (
                "https://x.test/app",
                "https://x.test/app/set-password?token=",
            ),
            (
                "https://x.test/app/",
                "https://x.test/app/set-password?token=",
            ),
            (
                "http://x.test:8080/a%20b",
                "http://x.test:8080/a%20b/set-password?token=",
            ),
        ] {
            let base = parse_base_url(base).expect("a valid base");
            assert_eq!(link_prefix(&base), prefix);
        }
    }
}
