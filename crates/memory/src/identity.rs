//! An identity provider backed by a fixed table of bearer tokens, for demos and tests.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use password_setup_core::{BearerCredential, IdentityError, IdentityProvider, UserId};

#[derive(Debug, Clone)]
struct Grant {
    user: UserId,
    linked_identity: bool,
}

/// Maps bearer tokens to users. Unknown tokens are invalid; tokens registered with
/// [`Self::insert_without_linked_identity`] authenticate but lack a linked identity.
#[derive(Default)]
pub struct BearerTokenTable {
    grants: RwLock<HashMap<String, Grant>>,
}

impl std::fmt::Debug for BearerTokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are credentials: show how many there are, never which.
        let grants = self
            .grants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("BearerTokenTable")
            .field("grants", &grants)
            .finish()
    }
}

impl BearerTokenTable {
    /// An empty table: every token is invalid.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `token` authenticate `user`.
    pub fn insert(&self, token: impl Into<String>, user: UserId) {
        self.grant(token.into(), user, true);
    }

    /// Lets `token` authenticate `user`, who has not linked the required third-party identity.
    pub fn insert_without_linked_identity(&self, token: impl Into<String>, user: UserId) {
        self.grant(token.into(), user, false);
    }

    /// Makes `token` invalid again.
    pub fn revoke(&self, token: &str) {
        self.grants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    fn grant(&self, token: String, user: UserId, linked_identity: bool) {
        self.grants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                token,
                Grant {
                    user,
                    linked_identity,
                },
            );
    }
}

#[async_trait]
impl IdentityProvider for BearerTokenTable {
    async fn identify(&self, credential: &BearerCredential) -> Result<UserId, IdentityError> {
        let grants = self.grants.read().unwrap_or_else(PoisonError::into_inner);
        match grants.get(credential.expose_secret()) {
            None => Err(IdentityError::InvalidCredential),
            Some(grant) if !grant.linked_identity => Err(IdentityError::LinkedIdentityMissing),
            Some(grant) => Ok(grant.user.clone()),
        }
    }
}
