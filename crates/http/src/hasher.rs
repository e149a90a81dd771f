//! Argon2id hashing on a few threads of its own, off the async executor, with a bound on how
//! many hashes wait for a thread.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use password_setup_core::{
    HashingError, HashingMemory, HashingParams, NormalizedPassword, PasswordHash, PasswordHasher,
    hash_password_in,
};
use tokio::sync::oneshot;

use crate::thread_priority::ThreadPriority;

/// How many hashes may wait per hashing thread unless [`BlockingHasher::with_queue_limit`]
/// says otherwise. At the OWASP parameters a hash takes a few tens of milliseconds, so a full
/// queue is a wait of one to two seconds.
pub const DEFAULT_WAITING_PER_THREAD: usize = 64;

/// How the hashing threads are scheduled beside the rest of the process, on Linux; other
/// systems keep no priority per thread, and there every choice leaves the threads as they are.
///
/// A confirm can wait a few milliseconds more, the server's other requests should not; both
/// choices make hashing take the CPU time the rest of the server leaves. Either way a
/// saturated server leaves hashing little CPU time, and a backlog beyond the queue limit is
/// refused with a `Retry-After` rather than left to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HashingPriority {
    /// Linux's idle policy (`SCHED_IDLE`): a hash runs on CPU time no other thread wants, and
    /// a thread that wakes takes the CPU from a hash at once. Hashing gets next to nothing
    /// while every CPU is saturated by other threads, of this process or another.
    #[default]
    Idle,
    /// The normal policy, this many nice values below the thread that created the hasher, but
    /// never beyond 19, Linux's lowest priority (a server started at nice 5 gets at most 14
    /// steps); 0 keeps that thread's priority. Hashing keeps a small share of a saturated CPU,
    /// but a request thread that wakes while every CPU is hashing may wait for the hash's time
    /// slice to end, a few milliseconds.
    LoweredBy(u8),
}

impl HashingPriority {
    /// The priority as one number, so that the threads can read it without a lock.
    fn to_bits(self) -> u16 {
        match self {
            Self::Idle => u16::MAX,
            Self::LoweredBy(steps) => u16::from(steps),
        }
    }

    fn from_bits(bits: u16) -> Self {
        u8::try_from(bits).map_or(Self::Idle, Self::LoweredBy)
    }
}

/// The longest `Retry-After` a refusal advertises, however slow hashing has been lately: one
/// stalled hash (a paused virtual machine, say) must not send clients away for minutes.
const LONGEST_RETRY_AFTER: time::Duration = time::Duration::minutes(1);

/// Runs each hash on one of `permits` threads of its own, and lets a bounded number of further
/// hashes wait, in arrival order, for a thread to become free.
///
/// Hashing takes tens of milliseconds and `memory_kib` of memory, so running it on an executor
/// worker would stall every other request on that worker, and running it unbounded would let a
/// burst of confirms exhaust memory. Each thread takes the next waiting hash the moment it
/// finishes one, so a busy hasher never leaves a CPU idle between hashes, as handing each hash
/// to a general-purpose blocking pool would while two threads wake up per hash. Beyond the
/// queue bound a hash is refused at once with [`HashingError::Busy`] (answered 501 with
/// `Retry-After`; the link stays valid), so a burst cannot make every confirm wait for many
/// seconds. A hash whose caller gave up while it waited keeps its place until its turn comes,
/// and is then skipped without hashing.
///
/// Each thread keeps one [`HashingMemory`] for good, wiped after every hash: after the first
/// hashes the hasher holds `permits` x `memory_kib` of memory and never asks the operating
/// system for more. Allocating it per hash would cost a page fault per 4 KiB on every hash,
/// and the freed memory would pile up in the allocator's per-thread arenas.
///
/// On Linux the threads run under the idle scheduling policy (see
/// [`BlockingHasher::with_priority`]): a request arriving while every CPU is hashing gets a CPU
/// at once instead of waiting for a hash to be preempted, so confirms take the CPU time the
/// server's other work leaves rather than adding to its latency.
///
/// The threads exit once every clone of the hasher has been dropped and the hashes already
/// queued are done.
#[derive(Debug, Clone)]
pub struct BlockingHasher {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
    limit: usize,
    queue_limit: usize,
}

/// What the handles and the hashing threads share.
#[derive(Debug)]
struct Shared {
    /// Hashes accepted and not yet finished (or skipped): waiting plus running.
    admitted: AtomicUsize,
    running: AtomicUsize,
    /// A moving average of how long one hash takes, in nanoseconds; 0 until the first one.
    hash_nanos: AtomicU64,
    /// The threads' [`HashingPriority`], as [`HashingPriority::to_bits`]; each thread follows
    /// it before its next job.
    priority: AtomicU16,
}

#[derive(Debug)]
enum Job {
    Hash {
        password: NormalizedPassword,
        reply: oneshot::Sender<Result<PasswordHash, HashingError>>,
    },
    /// Keeps a thread busy until the release's sender is dropped, so tests can fill the
    /// threads; says so on `started` first.
    #[cfg(test)]
    Hold {
        started: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    },
    /// Says the hashing thread's nice value and whether it is under the idle policy.
    #[cfg(test)]
    ReportPriority(std::sync::mpsc::Sender<(i32, bool)>),
    /// Panics inside the hashing thread, as a bug in hashing would.
    #[cfg(test)]
    Panic(oneshot::Sender<Result<PasswordHash, HashingError>>),
}

impl BlockingHasher {
    /// A hasher with `permits` hashing threads (at least one) and
    /// [`DEFAULT_WAITING_PER_THREAD`] waiting places per thread.
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse `params`;
    /// [`HashingError::Failed`] if the operating system refuses to start a thread.
    pub fn new(params: HashingParams, permits: usize) -> Result<Self, HashingError> {
        password_setup_core::Argon2idHasher::new(params)?;
        let limit = permits.max(1);
        let (jobs, queue) = std::sync::mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let shared = Arc::new(Shared {
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            hash_nanos: AtomicU64::new(0),
            priority: AtomicU16::new(HashingPriority::default().to_bits()),
        });
        for index in 0..limit {
            let queue = queue.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{index}"))
                .spawn(move || work(&queue, &shared, params))
                .map_err(|_| HashingError::Failed)?;
        }
        Ok(Self {
            jobs,
            shared,
            limit,
            queue_limit: limit.saturating_mul(DEFAULT_WAITING_PER_THREAD),
        })
    }

    /// A hasher with one thread per CPU available to the process.
    ///
    /// # Errors
    /// As [`BlockingHasher::new`].
    pub fn per_cpu(params: HashingParams) -> Result<Self, HashingError> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(params, cpus)
    }

    /// Lets at most `waiting` hashes wait for a thread while all are busy; more are refused
    /// with [`HashingError::Busy`]. Zero refuses every hash that cannot start at once. The
    /// limit belongs to this handle and the clones made from it afterwards; set it before
    /// cloning.
    #[must_use]
    pub fn with_queue_limit(mut self, waiting: usize) -> Self {
        self.queue_limit = waiting;
        self
    }

    /// Sets how the hashing threads are scheduled beside the rest of the process (by default
    /// [`HashingPriority::Idle`]). The setting is shared by every clone of the hasher, and
    /// each hashing thread takes it before its next hash. Raising the priority again after it
    /// was lowered, or leaving the idle policy, needs the `CAP_SYS_NICE` privilege, so choose
    /// before the first hash.
    #[must_use]
    pub fn with_priority(self, priority: HashingPriority) -> Self {
        self.shared
            .priority
            .store(priority.to_bits(), Ordering::Relaxed);
        self
    }

    /// The most hashes that run at once: the number of hashing threads.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most hashes that wait for a thread.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    /// Hashes running right now.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Hashes waiting for a thread right now (including any whose caller has given up and that
    /// a thread has yet to skip). Read from two counters, so it may be off by one for a moment:
    /// for metrics, not for decisions.
    pub fn waiting(&self) -> usize {
        self.shared
            .admitted
            .load(Ordering::SeqCst)
            .saturating_sub(self.running())
    }

    /// Takes a place for one more hash, or says how long until there may be one.
    fn admit(&self) -> Result<(), HashingError> {
        let capacity = self.limit.saturating_add(self.queue_limit);
        self.shared
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < capacity).then_some(now + 1)
            })
            .map(drop)
            .map_err(|_| HashingError::Busy {
                retry_after: self.expected_wait(),
            })
    }

    /// How long a full queue takes to drain, from the measured time per hash: one second
    /// before any hash has been measured, never more than [`LONGEST_RETRY_AFTER`].
    fn expected_wait(&self) -> time::Duration {
        let per_hash = self.shared.hash_nanos.load(Ordering::Relaxed);
        if per_hash == 0 {
            return time::Duration::SECOND;
        }
        let rounds =
            u64::try_from((self.queue_limit / self.limit).saturating_add(1)).unwrap_or(u64::MAX);
        let nanos = per_hash.saturating_mul(rounds);
        time::Duration::nanoseconds(i64::try_from(nanos).unwrap_or(i64::MAX))
            .min(LONGEST_RETRY_AFTER)
    }

    fn submit(&self, job: Job) -> Result<(), HashingError> {
        self.admit()?;
        self.jobs.send(job).map_err(|_| {
            self.shared.admitted.fetch_sub(1, Ordering::SeqCst);
            HashingError::Failed
        })
    }
}

/// One hashing thread: takes jobs in arrival order until every sender is gone.
fn work(queue: &Mutex<Receiver<Job>>, shared: &Shared, params: HashingParams) {
    let mut memory: Option<HashingMemory> = None;
    let mut priority = ThreadPriority::of_this_thread();
    loop {
        // The lock is held only while waiting for the next job; the other threads queue on it.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        priority.apply(HashingPriority::from_bits(
            shared.priority.load(Ordering::Relaxed),
        ));
        shared.running.fetch_add(1, Ordering::SeqCst);
        // A panic must neither end this thread nor leave the counters counting its job; the
        // job's caller then hears `Failed`, as its reply is dropped unsent.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run(job, &params, &mut memory, &shared.hash_nanos)
        }))
        .unwrap_or_else(|_| {
            // The memory's state is unknown; dropping it wipes it.
            memory = None;
            None
        });
        // Counted as finished before the caller hears of it, so that the counters are settled
        // by the time the caller goes on.
        shared.running.fetch_sub(1, Ordering::SeqCst);
        shared.admitted.fetch_sub(1, Ordering::SeqCst);
        if let Some((reply, hashed)) = outcome {
            // The caller may have given up meanwhile; then the hash is simply dropped.
            let _ = reply.send(hashed);
        }
    }
}

/// Does one job; returns the answer to send, if anyone is waiting for one.
fn run(
    job: Job,
    params: &HashingParams,
    memory: &mut Option<HashingMemory>,
    average_nanos: &AtomicU64,
) -> Option<Answer> {
    match job {
        Job::Hash { password, reply } if !reply.is_closed() => {
            let hashed = hash_in_kept_memory(&password, params, memory, average_nanos);
            Some((reply, hashed))
        }
        // The caller stopped waiting: nobody would see the hash.
        Job::Hash { .. } => None,
        #[cfg(test)]
        Job::Hold { started, release } => {
            let _ = started.send(());
            let _ = release.recv();
            None
        }
        #[cfg(test)]
        Job::ReportPriority(report) => {
            let _ = report.send(crate::thread_priority::priority_of_this_thread());
            None
        }
        #[cfg(test)]
        Job::Panic(reply) => {
            let _keep_until_unwound = reply;
            panic!("a hashing job panicked");
        }
    }
}

type Answer = (
    oneshot::Sender<Result<PasswordHash, HashingError>>,
    Result<PasswordHash, HashingError>,
);

/// Hashes in the thread's kept memory (made on first use), timing successful hashes only, so
/// the average reflects hashing and not the first allocation or a failure.
fn hash_in_kept_memory(
    password: &NormalizedPassword,
    params: &HashingParams,
    memory: &mut Option<HashingMemory>,
    average_nanos: &AtomicU64,
) -> Result<PasswordHash, HashingError> {
    let memory = match memory {
        Some(memory) => memory,
        None => memory.insert(HashingMemory::for_params(params)?),
    };
    let started = Instant::now();
    let hashed = hash_password_in(password, params, memory)?;
    record_hash_time(average_nanos, started.elapsed());
    Ok(hashed)
}

/// Folds one measured hash into the moving average (weight 1/8 for the new sample).
fn record_hash_time(average: &AtomicU64, took: std::time::Duration) {
    let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    // Only the hashing threads write; a lost update between two of them only drops a sample.
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
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer.await.map_err(|_| HashingError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use password_setup_core::{normalize_password, verify_password};

    use super::*;

    impl BlockingHasher {
        /// Occupies one hashing thread until the returned sender is dropped; returns once the
        /// thread has started on it. Blocks, so only for when a thread is free.
        fn hold(&self) -> std::sync::mpsc::Sender<()> {
            let (release, held) = std::sync::mpsc::channel();
            let (started, has_started) = std::sync::mpsc::channel();
            self.submit(Job::Hold {
                started,
                release: held,
            })
            .unwrap();
            has_started.recv().unwrap();
            release
        }
    }

    async fn until(condition: impl Fn() -> bool) {
        while !condition() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    fn spawn_hash(
        hasher: &Arc<BlockingHasher>,
        password: &'static str,
    ) -> tokio::task::JoinHandle<Result<PasswordHash, HashingError>> {
        let hasher = hasher.clone();
        tokio::spawn(async move { hasher.hash(normalize_password(password)).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_verify_and_never_run_beyond_the_threads() {
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
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_queue_hashes_are_refused_at_once_and_the_queue_drains() {
        let hasher = Arc::new(
            BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
                .unwrap()
                .with_queue_limit(2),
        );
        let occupied = hasher.hold();
        let queued = [
            spawn_hash(&hasher, "queued 0"),
            spawn_hash(&hasher, "queued 1"),
        ];
        until(|| hasher.waiting() == 2).await;

        let refused = hasher.hash(normalize_password("one too many")).await;
        let Err(HashingError::Busy { retry_after }) = refused else {
            panic!("expected Busy, got {refused:?}");
        };
        assert_eq!(retry_after, time::Duration::SECOND, "nothing measured yet");
        assert_eq!(hasher.waiting(), 2, "a refusal takes no place");

        drop(occupied);
        for (i, task) in queued.into_iter().enumerate() {
            let hash = task.await.unwrap().unwrap();
            assert!(verify_password(&format!("queued {i}"), &hash).unwrap());
        }
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));

        // Once hashes have been timed, the estimate is a full queue's worth of them.
        let occupied = hasher.hold();
        let _waiting = [
            spawn_hash(&hasher, "waiting"),
            spawn_hash(&hasher, "waiting"),
        ];
        until(|| hasher.waiting() == 2).await;
        let Err(HashingError::Busy { retry_after }) =
            hasher.hash(normalize_password("refused")).await
        else {
            panic!("expected Busy");
        };
        let per_hash = hasher.shared.hash_nanos.load(Ordering::SeqCst);
        assert!(per_hash > 0);
        let expected = time::Duration::nanoseconds(i64::try_from(per_hash * 3).unwrap());
        assert_eq!(retry_after, expected);
        drop(occupied);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_whose_caller_gave_up_is_skipped_and_frees_its_place() {
        let hasher = Arc::new(
            BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
                .unwrap()
                .with_queue_limit(1),
        );
        let occupied = hasher.hold();
        let given_up = spawn_hash(&hasher, "given up");
        until(|| hasher.waiting() == 1).await;
        given_up.abort();
        assert!(given_up.await.unwrap_err().is_cancelled());
        assert!(
            matches!(
                hasher.hash(normalize_password("no room yet")).await,
                Err(HashingError::Busy { .. })
            ),
            "the abandoned hash keeps its place until its turn"
        );

        drop(occupied);
        until(|| hasher.waiting() == 0 && hasher.running() == 0).await;
        let measured = hasher.shared.hash_nanos.load(Ordering::SeqCst);
        assert_eq!(measured, 0, "the abandoned hash was never computed");

        let hash = spawn_hash(&hasher, "next in line").await.unwrap().unwrap();
        assert!(verify_password("next in line", &hash).unwrap());
    }

    #[tokio::test]
    async fn a_zero_queue_refuses_only_when_every_thread_is_busy() {
        let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
            .unwrap()
            .with_queue_limit(0);
        let hash = hasher
            .hash(normalize_password("free thread"))
            .await
            .unwrap();
        assert!(verify_password("free thread", &hash).unwrap());

        let _occupied = hasher.hold();
        assert!(matches!(
            hasher.hash(normalize_password("no room")).await,
            Err(HashingError::Busy { .. })
        ));
    }

    #[test]
    fn the_threads_exit_when_the_last_clone_is_dropped() {
        let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 2).unwrap();
        let shared = Arc::downgrade(&hasher.shared);
        drop(hasher.clone());
        drop(hasher);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while shared.strong_count() > 0 {
            assert!(Instant::now() < deadline, "hashing threads still running");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_thread_goes_on() {
        let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1).unwrap();
        let (reply, answer) = oneshot::channel();
        hasher.submit(Job::Panic(reply)).unwrap();
        assert!(answer.await.is_err(), "the caller hears of the failure");

        let hash = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            hasher.hash(normalize_password("after the panic")),
        )
        .await
        .expect("the only hashing thread still works")
        .unwrap();
        assert!(verify_password("after the panic", &hash).unwrap());
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));
    }

    /// The nice value of the hashing thread that takes the next job, and whether it runs under
    /// the idle policy.
    fn priority_of_a_hashing_thread(hasher: &BlockingHasher) -> (i32, bool) {
        let (report, reported) = std::sync::mpsc::channel();
        hasher.submit(Job::ReportPriority(report)).unwrap();
        reported
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_under_the_idle_policy_by_default() {
        let (inherited, caller_idle) = crate::thread_priority::priority_of_this_thread();
        assert!(!caller_idle);
        let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 2).unwrap();
        assert_eq!(
            priority_of_a_hashing_thread(&hasher),
            (inherited, true),
            "a hashing thread runs under SCHED_IDLE and keeps the nice value it inherited"
        );

        let hash = hasher.hash(normalize_password("still hashes")).await;
        assert!(verify_password("still hashes", &hash.unwrap()).unwrap());
        assert!(
            !crate::thread_priority::priority_of_this_thread().1,
            "the caller's own policy is untouched"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_lowered_by_n_steps_run_n_nice_values_below_their_creator() {
        let (inherited, _) = crate::thread_priority::priority_of_this_thread();
        let lowered_by = |steps| {
            let hasher = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 1)
                .unwrap()
                .with_priority(HashingPriority::LoweredBy(steps));
            priority_of_a_hashing_thread(&hasher)
        };
        assert_eq!(lowered_by(0), (inherited, false));
        assert_eq!(lowered_by(3), ((inherited + 3).min(19), false));
        assert_eq!(lowered_by(u8::MAX), (19, false), "19 is as low as it goes");

        let lowest = BlockingHasher::new(HashingParams::INSECURE_FOR_TESTS, 2)
            .unwrap()
            .with_priority(HashingPriority::LoweredBy(19));
        let hash = lowest.hash(normalize_password("still hashes")).await;
        assert!(verify_password("still hashes", &hash.unwrap()).unwrap());
        assert_eq!(
            crate::thread_priority::priority_of_this_thread(),
            (inherited, false),
            "the caller's own priority is untouched"
        );
    }

    #[test]
    fn priorities_survive_their_encoding() {
        for priority in [
            HashingPriority::Idle,
            HashingPriority::LoweredBy(0),
            HashingPriority::LoweredBy(19),
            HashingPriority::LoweredBy(u8::MAX),
        ] {
            assert_eq!(HashingPriority::from_bits(priority.to_bits()), priority);
        }
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
