//! Argon2id hashing off the async executor, with a bound on how many hashes run at once and
//! on how many wait for their turn.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use password_setup_core::{
    HashingError, HashingMemory, HashingParams, NormalizedPassword, PasswordHash, PasswordHasher,
    hash_password_in,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// How many hashes may wait per running one unless [`BlockingHasher::with_queue_limit`] says
/// otherwise. At the OWASP parameters a hash takes a few tens of milliseconds per core, so a
/// full queue is a wait of one to two seconds.
pub const DEFAULT_WAITING_PER_PERMIT: usize = 64;

/// Runs each hash on tokio's blocking thread pool, at most `permits` at a time, and lets at
/// most a bounded number of further hashes wait for a turn.
///
/// Hashing takes tens of milliseconds and `memory_kib` of memory, so running it on an executor
/// worker would stall every other request on that worker, and running it unbounded would let a
/// burst of confirms exhaust memory. Confirms beyond the running bound wait their turn in
/// arrival order, holding only a small future. Beyond the queue bound they are refused at
/// once with [`HashingError::Busy`] (answered 501 with `Retry-After`; the link stays valid),
/// so that a burst cannot make every confirm wait for many seconds. A permit is held until
/// the hash has finished, even if the waiting request was dropped meanwhile, so the bound holds
/// for the work actually running.
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
    queue_limit: usize,
    waiting: Arc<AtomicUsize>,
    /// A moving average of how long one hash takes, in nanoseconds; 0 until the first one.
    hash_nanos: Arc<AtomicU64>,
    /// Never holds more than `limit` entries: one is taken out only under a permit.
    memory: Arc<Mutex<Vec<HashingMemory>>>,
}

impl BlockingHasher {
    /// A hasher running at most `permits` hashes at once (at least one), with
    /// [`DEFAULT_WAITING_PER_PERMIT`] waiting places per permit.
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
            queue_limit: limit.saturating_mul(DEFAULT_WAITING_PER_PERMIT),
            waiting: Arc::new(AtomicUsize::new(0)),
            hash_nanos: Arc::new(AtomicU64::new(0)),
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

    /// Lets at most `waiting` hashes wait for a turn while all permits are taken; more are
    /// refused with [`HashingError::Busy`]. Zero refuses every hash that cannot start at once.
    #[must_use]
    pub fn with_queue_limit(mut self, waiting: usize) -> Self {
        self.queue_limit = waiting;
        self
    }

    /// The most hashes that run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most hashes that wait for a turn.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    /// Hashes running right now.
    pub fn running(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// Hashes waiting for a turn right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashingError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(HashingError::Failed),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _place = QueuePlace::take(&self.waiting, self.queue_limit).ok_or_else(|| {
            HashingError::Busy {
                retry_after: self.expected_wait(),
            }
        })?;
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashingError::Failed)
    }

    /// How long a full queue takes to drain, from the measured time per hash; one second
    /// before any hash has been measured.
    fn expected_wait(&self) -> time::Duration {
        let per_hash = self.hash_nanos.load(Ordering::Relaxed);
        if per_hash == 0 {
            return time::Duration::SECOND;
        }
        let rounds = u64::try_from(self.queue_limit / self.limit + 1).unwrap_or(u64::MAX);
        let nanos = per_hash.saturating_mul(rounds);
        time::Duration::nanoseconds(i64::try_from(nanos).unwrap_or(i64::MAX))
    }
}

/// One place in the queue of hashes waiting for a permit, given back when dropped (also when
/// the waiting request is cancelled).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < limit).then_some(now + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Folds one measured hash into the moving average (weight 1/8 for the new sample).
fn record_hash_time(average: &AtomicU64, took: std::time::Duration) {
    let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    // Lost updates between racing hashes only drop a sample; the average stays sound.
    let previous = average.load(Ordering::Relaxed);
    let next = if previous == 0 {
        sample
    } else {
        previous - previous / 8 + sample / 8
    };
    average.store(next, Ordering::Relaxed);
}

#[async_trait]
impl PasswordHasher for BlockingHasher {
    async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError> {
        let permit = self.permit().await?;
        let params = self.params;
        let pool = self.memory.clone();
        let hash_nanos = self.hash_nanos.clone();
        tokio::task::spawn_blocking(move || {
            let kept = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut memory = match kept {
                Some(memory) => memory,
                None => HashingMemory::for_params(&params)?,
            };
            let started = Instant::now();
            let hashed = hash_password_in(&password, &params, &mut memory);
            record_hash_time(&hash_nanos, started.elapsed());
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

    async fn until(condition: impl Fn() -> bool) {
        while !condition() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_queue_hashes_are_refused_at_once_and_the_queue_drains() {
        let hasher = Arc::new(
            BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
                .unwrap()
                .with_queue_limit(2),
        );
        // Every permit taken, as if long hashes were running.
        let occupied = hasher.permits.clone().acquire_owned().await.unwrap();

        let queued: Vec<_> = (0..2)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    (
                        i,
                        hasher
                            .hash(normalize_password(&format!("queued {i}")))
                            .await,
                    )
                })
            })
            .collect();
        until(|| hasher.waiting() == 2).await;

        let refused = hasher.hash(normalize_password("one too many")).await;
        let Err(HashingError::Busy { retry_after }) = refused else {
            panic!("expected Busy, got {refused:?}");
        };
        assert_eq!(retry_after, time::Duration::SECOND, "nothing measured yet");
        assert_eq!(hasher.waiting(), 2, "a refusal takes no place");

        drop(occupied);
        for task in queued {
            let (i, hash) = task.await.unwrap();
            assert!(verify_password(&format!("queued {i}"), &hash.unwrap()).unwrap());
        }
        assert_eq!(hasher.waiting(), 0);
        assert_eq!(hasher.running(), 0);

        // Once hashes have been timed, the estimate is a full queue's worth of them.
        let per_hash = hasher.hash_nanos.load(Ordering::SeqCst);
        assert!(per_hash > 0);
        let occupied = hasher.permits.clone().acquire_owned().await.unwrap();
        let _waiting: Vec<_> = (0..2)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(normalize_password("waiting")).await })
            })
            .collect();
        until(|| hasher.waiting() == 2).await;
        let Err(HashingError::Busy { retry_after }) =
            hasher.hash(normalize_password("refused")).await
        else {
            panic!("expected Busy");
        };
        let per_hash = hasher.hash_nanos.load(Ordering::SeqCst);
        let expected = time::Duration::nanoseconds(i64::try_from(per_hash * 3).unwrap());
        assert_eq!(retry_after, expected);
        drop(occupied);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_wait_gives_its_place_back() {
        let hasher = Arc::new(
            BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
                .unwrap()
                .with_queue_limit(1),
        );
        let occupied = hasher.permits.clone().acquire_owned().await.unwrap();
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(normalize_password("given up")).await })
        };
        until(|| hasher.waiting() == 1).await;
        waiting.abort();
        until(|| hasher.waiting() == 0).await;

        let next = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(normalize_password("next in line")).await })
        };
        until(|| hasher.waiting() == 1).await;
        drop(occupied);
        let hash = next.await.unwrap().unwrap();
        assert!(verify_password("next in line", &hash).unwrap());
    }

    #[tokio::test]
    async fn a_zero_queue_refuses_only_when_every_permit_is_taken() {
        let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
            .unwrap()
            .with_queue_limit(0);
        let hash = hasher
            .hash(normalize_password("free permit"))
            .await
            .unwrap();
        assert!(verify_password("free permit", &hash).unwrap());

        let _occupied = hasher.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            hasher.hash(normalize_password("no room")).await,
            Err(HashingError::Busy { .. })
        ));
    }

    #[test]
    fn the_average_hash_time_follows_new_samples() {
        let average = AtomicU64::new(0);
        record_hash_time(&average, std::time::Duration::from_millis(80));
        assert_eq!(average.load(Ordering::SeqCst), 80_000_000);
        record_hash_time(&average, std::time::Duration::from_millis(0));
        assert_eq!(average.load(Ordering::SeqCst), 70_000_000);
    }
}
