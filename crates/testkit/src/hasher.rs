//! A hasher that counts its calls, so tests can prove that a refusal did no hashing work.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use password_setup_core::{
    Argon2idHasher, HashingError, HashingParams, NormalizedPassword, PasswordHash, PasswordHasher,
};

/// Argon2id on the calling thread with the given parameters, counting every hash.
#[derive(Debug)]
pub struct CountingHasher {
    inner: Argon2idHasher,
    calls: AtomicUsize,
}

impl CountingHasher {
    /// A counting hasher with the given parameters.
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse them.
    pub fn new(params: HashingParams) -> Result<Self, HashingError> {
        Ok(Self {
            inner: Argon2idHasher::new(params)?,
            calls: AtomicUsize::new(0),
        })
    }

    /// How many hashes were asked for so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.hash(password).await
    }
}
