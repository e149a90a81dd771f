//! A user store held in process memory.
//!
//! One mutex guards all users and the digest index, and every trait method runs entirely under
//! it, which makes each method atomic and gives the store contract without further care.
//! Nothing awaits while the lock is held.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use password_setup_core::{
    Account, CompleteOutcome, EmailAddress, IssueOutcome, IssueUpdate, MailHistory, PasswordHash,
    PendingSetup, Revision, SetupRecord, SetupState, StoreError, TokenDigest, UserId, UserStore,
};

#[derive(Debug, Clone)]
struct StoredUser {
    email: EmailAddress,
    password_hash: Option<PasswordHash>,
    pending: Option<PendingSetup>,
    history: MailHistory,
    revision: u64,
}

impl StoredUser {
    fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }

    fn record(&self, id: &UserId) -> SetupRecord {
        let state = match (self.has_password(), self.pending) {
            (true, _) => SetupState::PasswordSet,
            (false, Some(pending)) => SetupState::Pending(pending),
            (false, None) => SetupState::NoPassword,
        };
        SetupRecord {
            account: Account {
                id: id.clone(),
                email: self.email.clone(),
            },
            state,
            history: self.history.clone(),
            revision: Revision(self.revision),
        }
    }
}

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<UserId, StoredUser>,
    by_digest: HashMap<TokenDigest, UserId>,
}

impl Users {
    fn clear_pending(&mut self, id: &UserId) {
        if let Some(user) = self.by_id.get_mut(id) {
            if let Some(pending) = user.pending.take() {
                self.by_digest.remove(&pending.digest);
            }
            user.revision += 1;
        }
    }
}

/// A thread-safe in-memory [`UserStore`].
///
/// Users are added with [`Self::insert_user`]; the inherent methods that write a password
/// directly stand in for the embedding backend's other flows (an admin, a reset).
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    users: Mutex<Users>,
}

/// Empty strings count as "no password", as in stores where the column is `NOT NULL`.
fn stored_hash(hash: Option<PasswordHash>) -> Option<PasswordHash> {
    hash.filter(|hash| !hash.as_phc().is_empty())
}

impl MemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Users> {
        // Every critical section leaves the maps consistent before anything can panic, so a
        // poisoned lock still guards consistent data.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a user without a password, or replaces the user with that id.
    pub fn insert_user(&self, id: UserId, email: EmailAddress) {
        self.insert_user_with_hash(id, email, None);
    }

    /// Adds a user with the given stored hash (`None` or an empty string: no password), or
    /// replaces the user with that id.
    pub fn insert_user_with_hash(
        &self,
        id: UserId,
        email: EmailAddress,
        hash: Option<PasswordHash>,
    ) {
        let mut users = self.lock();
        users.clear_pending(&id);
        let revision = users.by_id.get(&id).map_or(0, |user| user.revision + 1);
        users.by_id.insert(
            id,
            StoredUser {
                email,
                password_hash: stored_hash(hash),
                pending: None,
                history: MailHistory::default(),
                revision,
            },
        );
        // Room for one live token per user, so that the digest index grows (and rehashes
        // everything, under the lock) while users are added, never while requests are served.
        let (users_count, tokens) = (users.by_id.len(), users.by_digest.len());
        users.by_digest.reserve(users_count.saturating_sub(tokens));
    }

    /// Writes a password hash directly, as another flow of the backend would, and drops any
    /// pending token: a link issued before a password was set must not work even if the
    /// password is later cleared again.
    ///
    /// Returns `false` if there is no such user.
    pub fn set_password_hash(&self, id: &UserId, hash: PasswordHash) -> bool {
        let mut users = self.lock();
        users.clear_pending(id);
        match users.by_id.get_mut(id) {
            Some(user) => {
                user.password_hash = stored_hash(Some(hash));
                true
            }
            None => false,
        }
    }

    /// The user's stored hash, if the user exists and has one.
    pub fn password_hash(&self, id: &UserId) -> Option<PasswordHash> {
        self.lock().by_id.get(id)?.password_hash.clone()
    }

    /// The user's setup state, if the user exists.
    pub fn state(&self, id: &UserId) -> Option<SetupState> {
        let users = self.lock();
        Some(users.by_id.get(id)?.record(id).state)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether the store has no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn load(&self, user: &UserId) -> Result<Option<SetupRecord>, StoreError> {
        Ok(self
            .lock()
            .by_id
            .get(user)
            .map(|stored| stored.record(user)))
    }

    async fn issue(
        &self,
        user: &UserId,
        expected: Revision,
        update: IssueUpdate,
    ) -> Result<IssueOutcome, StoreError> {
        let mut users = self.lock();
        match users.by_id.get(user) {
            Some(stored) if stored.revision == expected.0 && !stored.has_password() => {}
            _ => return Ok(IssueOutcome::Conflict),
        }

        users.clear_pending(user);
        users.by_digest.insert(update.pending.digest, user.clone());
        if let Some(stored) = users.by_id.get_mut(user) {
            stored.pending = Some(update.pending);
            stored.history = update.history;
        }
        Ok(IssueOutcome::Issued)
    }

    async fn withdraw(&self, user: &UserId, digest: &TokenDigest) -> Result<(), StoreError> {
        let mut users = self.lock();
        let Some(stored) = users.by_id.get(user) else {
            return Ok(());
        };
        let Some(pending) = stored.pending.filter(|pending| pending.digest == *digest) else {
            return Ok(());
        };

        users.clear_pending(user);
        if let Some(stored) = users.by_id.get_mut(user) {
            stored.history.remove_send(pending.issued_at);
        }
        Ok(())
    }

    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<SetupRecord>, StoreError> {
        let users = self.lock();
        let Some(id) = users.by_digest.get(digest) else {
            return Ok(None);
        };
        Ok(users.by_id.get(id).map(|stored| stored.record(id)))
    }

    async fn complete(
        &self,
        user: &UserId,
        digest: &TokenDigest,
        hash: &PasswordHash,
    ) -> Result<CompleteOutcome, StoreError> {
        let mut users = self.lock();
        let Some(stored) = users.by_id.get_mut(user) else {
            return Ok(CompleteOutcome::TokenGone);
        };
        if stored
            .pending
            .is_none_or(|pending| pending.digest != *digest)
        {
            return Ok(CompleteOutcome::TokenGone);
        }
        if stored.has_password() {
            return Ok(CompleteOutcome::PasswordAlreadySet);
        }

        stored.password_hash = Some(hash.clone());
        users.clear_pending(user);
        Ok(CompleteOutcome::Completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_index_has_room_for_a_token_per_user_before_any_request() {
        let store = MemoryUserStore::new();
        for n in 0..5_000 {
            store.insert_user(
                UserId::new(format!("user-{n}")),
                EmailAddress::new(format!("user-{n}@example.test")),
            );
        }
        let users = store.lock();
        assert!(users.by_digest.is_empty());
        assert!(users.by_digest.capacity() >= users.by_id.len());
    }
}
