//! Argon2id hashing off the async executor, with a bound on how many hashes run at once.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use password_setup_core::{
    HashingError, HashingMemory, HashingParams, NormalizedPassword, PasswordHash, PasswordHasher,
    hash_password_in,
};
use tokio::sync::Semaphore;

/// Runs each hash on tokio's blocking thread pool, at most `permits` at a time.
///
/// Hashing takes tens of milliseconds and `memory_kib` of memory, so running it on an executor
/// worker would stall every other request on that worker, and running it unbounded would let a
/// burst of confirms exhaust memory. Confirms beyond the bound wait their turn, holding only a
/// small future. A permit is held until the hash has finished, even if the waiting request was
/// dropped meanwhile, so the bound holds for the work actually running.
///
/// Each running hash works in a [`HashingMemory`] taken from a pool and put back afterwards,
/// so after the first busy moment the hasher holds `permits` x `memory_kib` of memory for good
/// and never asks the operating system for more: allocating it per hash would cost a page
/// fault per 4 KiB on every hash, and the freed memory would pile up in the allocator's
/// per-thread arenas across the blocking pool's threads.
#[derive(Debug, Clone)]
pub struct BlockingHasher {
    params: HashingParams,
    permits: Arc<Semaphore>,
    limit: usize,
    /// Never holds more than `limit` entries: one is taken out only under a permit.
    memory: Arc<Mutex<Vec<HashingMemory>>>,
}

impl BlockingHasher {
    /// A hasher running at most `permits` hashes at once (at least one).
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse `params`.
    pub fn new(params: HashingParams, permits: usize) -> Result<Self, HashingError> {
        password_setup_core::Argon2idHasher::new(params)?;
        let limit = permits.max(1);
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            memory: Arc::new(Mutex::new(Vec::with_capacity(limit))),
        })
    }

    /// A hasher bounded by the number of CPUs available to the process.
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse `params`.
    pub fn per_cpu(params: HashingParams) -> Result<Self, HashingError> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(params, cpus)
    }

    /// The most hashes that run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Hashes running right now.
    pub fn running(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

#[async_trait]
impl PasswordHasher for BlockingHasher {
    async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashingError::Failed)?;
        let params = self.params;
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let kept = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut memory = match kept {
                Some(memory) => memory,
                None => HashingMemory::for_params(&params)?,
            };
            let hashed = hash_password_in(&password, &params, &mut memory);
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            drop(permit);
            hashed
        })
        .await
        .map_err(|_| HashingError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use password_setup_core::{normalize_password, verify_password};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_verify_and_never_run_beyond_the_bound() {
        let hasher = Arc::new(BlockingHasher::new(HashingParams::OWASP, 2).unwrap());
        let peak = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let hasher = hasher.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(hasher.running(), Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
        };

        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    (i, hasher.hash(normalize_password(&format!("pw {i}"))).await)
                })
            })
            .collect();
        for task in tasks {
            let (i, hash) = task.await.unwrap();
            assert!(verify_password(&format!("pw {i}"), &hash.unwrap()).unwrap());
        }
        sampler.abort();

        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=2).contains(&peak), "peak {peak}");
        assert_eq!(hasher.running(), 0);
        let kept = hasher.memory.lock().unwrap().len();
        assert!((1..=2).contains(&kept), "kept {kept}");
    }
}
