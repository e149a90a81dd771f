//! A service wired to in-memory adapters, for tests of the flow.

use std::sync::Arc;

use password_setup_core::{
    BearerCredential, EmailAddress, HashingParams, NewPassword, PasswordHash, PasswordPolicy,
    PasswordSetup, RequestAccepted, Result, SetupCompleted, SetupPolicy, SetupToken, UserId,
    verify_password,
};
use password_setup_memory::{BearerTokenTable, MemoryUserStore, RecordingMailer};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{CountingHasher, ManualClock};

/// A [`PasswordSetup`] over a [`MemoryUserStore`], a [`RecordingMailer`], a
/// [`BearerTokenTable`] and a [`ManualClock`], hashing with the cheapest Argon2 parameters.
pub struct Harness {
    /// The service under test.
    pub service: PasswordSetup,
    /// Its store.
    pub store: Arc<MemoryUserStore>,
    /// Its mailer; every email sent is kept here.
    pub mailer: Arc<RecordingMailer>,
    /// Its identity provider.
    pub identity: Arc<BearerTokenTable>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Its hasher, which counts how often it ran.
    pub hasher: Arc<CountingHasher>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Where the clock starts.
    pub const START: OffsetDateTime = datetime!(2026-01-05 09:00 UTC);

    /// The public base URL links are built from.
    pub const BASE_URL: &'static str = "https://accounts.example.test";

    /// A harness with the default policies.
    pub fn new() -> Self {
        Self::with_policies(SetupPolicy::default(), PasswordPolicy::default())
    }

    /// A harness with the given policies.
    ///
    /// # Panics
    /// If the policies are invalid.
    pub fn with_policies(policy: SetupPolicy, password_policy: PasswordPolicy) -> Self {
        let store = Arc::new(MemoryUserStore::new());
        let mailer = Arc::new(RecordingMailer::new());
        let identity = Arc::new(BearerTokenTable::new());
        let clock = Arc::new(ManualClock::new(Self::START));
        #[allow(clippy::expect_used, reason = "the cheapest parameters are valid")]
        let hasher = Arc::new(
            CountingHasher::new(HashingParams::INSECURE_FOR_TESTS).expect("valid parameters"),
        );
        #[allow(
            clippy::expect_used,
            reason = "a harness with a bad policy is a broken test"
        )]
        let service = PasswordSetup::builder()
            .store(store.clone())
            .mailer(mailer.clone())
            .identity_provider(identity.clone())
            .clock(clock.clone())
            .hasher(hasher.clone())
            .public_base_url(Self::BASE_URL)
            .policy(policy)
            .password_policy(password_policy)
            .build()
            .expect("valid harness configuration");
        Self {
            service,
            store,
            mailer,
            identity,
            clock,
            hasher,
        }
    }

    /// Adds a user without a password and returns a bearer credential that authenticates them.
    pub fn add_user(&self, id: &str, email: &str) -> BearerCredential {
        self.add_user_with_hash(id, email, None)
    }

    /// Adds a user with the given stored hash and returns a credential for them.
    pub fn add_user_with_hash(
        &self,
        id: &str,
        email: &str,
        hash: Option<PasswordHash>,
    ) -> BearerCredential {
        let user = UserId::new(id);
        self.store
            .insert_user_with_hash(user.clone(), EmailAddress::new(email), hash);
        let credential = format!("bearer-{id}");
        self.identity.insert(credential.clone(), user);
        BearerCredential::new(credential)
    }

    /// `PUT /user/password` with `credential`.
    ///
    /// # Errors
    /// As [`PasswordSetup::request`].
    pub async fn request(&self, credential: &BearerCredential) -> Result<RequestAccepted> {
        self.service.request(Some(credential)).await
    }

    /// Confirms with `token` and `password`.
    ///
    /// # Errors
    /// As [`PasswordSetup::confirm`].
    pub async fn confirm(&self, token: &SetupToken, password: &str) -> Result<SetupCompleted> {
        self.service
            .confirm(token, &NewPassword::new(password))
            .await
    }

    /// The token of the most recent email, as a client would submit it.
    pub fn last_token(&self) -> Option<SetupToken> {
        self.mailer
            .last()
            .map(|email| SetupToken::from_submitted(email.token.expose_secret()))
    }

    /// Whether `password` verifies against the user's stored hash.
    pub fn password_verifies(&self, id: &str, password: &str) -> bool {
        self.store
            .password_hash(&UserId::new(id))
            .is_some_and(|hash| verify_password(password, &hash).unwrap_or(false))
    }
}
