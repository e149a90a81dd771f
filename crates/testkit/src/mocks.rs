//! mockall mocks of the ports.
//!
//! Prefer the in-memory adapters and real backends; reach for these where a test needs a
//! failure that a real part cannot produce on demand (a store that fails one particular write,
//! an identity provider that is down).

use async_trait::async_trait;
use mockall::mock;
use password_setup_core::ports::{
    BearerCredential, Clock, CompleteOutcome, IdentityError, IdentityProvider, IssueOutcome,
    IssueUpdate, MailError, Mailer, PasswordHasher, SetupEmail, StoreError, UserStore,
};
use password_setup_core::{
    HashingError, NormalizedPassword, PasswordHash, Revision, SetupRecord, TokenDigest, UserId,
};
use time::OffsetDateTime;

mock! {
    /// A mock [`UserStore`].
    pub UserStore {}

    #[async_trait]
    impl UserStore for UserStore {
        async fn load(&self, user: &UserId) -> Result<Option<SetupRecord>, StoreError>;
        async fn issue(
            &self,
            user: &UserId,
            expected: Revision,
            update: IssueUpdate,
        ) -> Result<IssueOutcome, StoreError>;
        async fn withdraw(&self, user: &UserId, digest: &TokenDigest) -> Result<(), StoreError>;
        async fn find_by_token(
            &self,
            digest: &TokenDigest,
        ) -> Result<Option<SetupRecord>, StoreError>;
        async fn complete(
            &self,
            user: &UserId,
            digest: &TokenDigest,
            hash: &PasswordHash,
        ) -> Result<CompleteOutcome, StoreError>;
    }
}

mock! {
    /// A mock [`Mailer`].
    pub Mailer {}

    #[async_trait]
    impl Mailer for Mailer {
        async fn send(&self, email: &SetupEmail) -> Result<(), MailError>;
    }
}

mock! {
    /// A mock [`IdentityProvider`].
    pub IdentityProvider {}

    #[async_trait]
    impl IdentityProvider for IdentityProvider {
        async fn identify(&self, credential: &BearerCredential) -> Result<UserId, IdentityError>;
    }
}

mock! {
    /// A mock [`PasswordHasher`].
    pub PasswordHasher {}

    #[async_trait]
    impl PasswordHasher for PasswordHasher {
        async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError>;
    }
}

mock! {
    /// A mock [`Clock`].
    pub Clock {}

    impl Clock for Clock {
        fn now(&self) -> OffsetDateTime;
    }
}
