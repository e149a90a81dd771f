//! The in-memory store against the store conformance suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use password_setup_core::{EmailAddress, PasswordHash, UserId, UserStore};
use password_setup_memory::MemoryUserStore;
use password_setup_testkit::conformance::{self, InitialHash, StoreFixture};

/// One store shared by every "instance": memory has no second process to stand in for.
#[derive(Default)]
struct MemoryFixture {
    store: Arc<MemoryUserStore>,
    next_id: AtomicU64,
}

#[async_trait]
impl StoreFixture for MemoryFixture {
    async fn store(&self) -> Arc<dyn UserStore> {
        self.store.clone()
    }

    async fn create_user(&self, email: &str, hash: InitialHash) -> UserId {
        let id = UserId::new(format!(
            "user-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let hash = match hash {
            InitialHash::Null => None,
            InitialHash::Empty => Some(PasswordHash::from_phc("")),
            InitialHash::Set(hash) => Some(hash),
        };
        self.store
            .insert_user_with_hash(id.clone(), EmailAddress::new(email), hash);
        id
    }

    async fn set_password_elsewhere(&self, user: &UserId, hash: &PasswordHash) {
        assert!(
            self.store.set_password_hash(user, hash.clone()),
            "no user {user}"
        );
    }

    async fn stored_hash(&self, user: &UserId) -> Option<String> {
        self.store
            .password_hash(user)
            .map(|hash| hash.as_phc().to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_store_meets_the_store_contract() {
    conformance::run(Arc::new(MemoryFixture::default())).await;
}
