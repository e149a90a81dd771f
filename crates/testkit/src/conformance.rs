//! The store conformance suite: one call that checks a [`UserStore`] against the whole store
//! contract, through the real [`PasswordSetup`] service and, where the contract speaks of
//! single calls, through the store directly.
//!
//! An adapter's tests implement [`StoreFixture`] (create users, write a password the way the
//! backend's other flows would, open another independent store over the same data) and call
//! [`run`] on a multi-thread tokio runtime. Over the in-memory store that looks like this:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use async_trait::async_trait;
//! use password_setup_core::{EmailAddress, PasswordHash, UserId, UserStore};
//! use password_setup_memory::MemoryUserStore;
//! use password_setup_testkit::conformance::{self, InitialHash, StoreFixture};
//!
//! #[derive(Default)]
//! struct Fixture {
//!     store: Arc<MemoryUserStore>,
//!     next_id: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl StoreFixture for Fixture {
//!     async fn store(&self) -> Arc<dyn UserStore> {
//!         // A database store would open a new pool here.
//!         self.store.clone()
//!     }
//!
//!     async fn create_user(&self, email: &str, hash: InitialHash) -> UserId {
//!         let id = UserId::new(self.next_id.fetch_add(1, Ordering::Relaxed).to_string());
//!         let hash = match hash {
//!             InitialHash::Null => None,
//!             InitialHash::Empty => Some(PasswordHash::from_phc("")),
//!             InitialHash::Set(hash) => Some(hash),
//!         };
//!         self.store.insert_user_with_hash(id.clone(), EmailAddress::new(email), hash);
//!         id
//!     }
//!
//!     async fn set_password_elsewhere(&self, user: &UserId, hash: &PasswordHash) {
//!         self.store.set_password_hash(user, hash.clone());
//!     }
//!
//!     async fn stored_hash(&self, user: &UserId) -> Option<String> {
//!         self.store.password_hash(user).map(|hash| hash.as_phc().to_owned())
//!     }
//! }
//!
//! // In a test: #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
//! conformance::run(Arc::new(Fixture::default())).await;
//! # });
//! ```
//!
//! Every check runs, each in its own task with its own users and clock; afterwards `run`
//! panics with the names and messages of all checks that failed. The races need real
//! parallelism, which is why a current-thread runtime is refused.
//!
//! What the checks cover, with the field cases they stand for:
//!
//! - every transition: no password → pending → password set (C01), pending → pending by a
//!   newer link (C03), pending → no password when a send fails (C14), and a password written
//!   elsewhere from either state, whose link stays dead if that password is cleared (C02); `NULL` and empty hashes meaning "no password" (C17);
//! - expiry one second before, at and after the instant (C07); the cooldown and the daily cap,
//!   kept in the store so a fresh instance obeys them (C15); a refused password keeping its
//!   token (C06); unknown users and tokens, including ids no key type could hold;
//! - the store calls themselves: compare-and-set on the revision, withdrawing exactly one
//!   send, nothing completing with a superseded digest or over a password;
//! - races, on separate tasks and store instances: concurrent confirms of one token,
//!   a request racing a confirm, a confirm racing a password written elsewhere, and
//!   simultaneous requests on two instances (C04).
//!
//! Each check uses the service with [`ManualClock`], a [`RecordingMailer`] per service
//! instance and the cheapest Argon2 parameters; instants move in whole seconds from
//! [`Harness::START`](crate::Harness::START), so a store that keeps microseconds loses nothing.

// A conformance suite reports failures the way tests do.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use password_setup_core::{
    CompleteOutcome, HashingParams, IssueOutcome, IssueUpdate, MailHistory, NewPassword,
    PasswordHash, PasswordSetup, PendingSetup, RequestAccepted, Revision, SetupCompleted,
    SetupError, SetupPolicy, SetupRecord, SetupState, SetupToken, TokenDigest, UserId, UserStore,
    hash_password, verify_password,
};
use password_setup_memory::{BearerTokenTable, RecordingMailer};
use time::{Duration, OffsetDateTime};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Barrier;

use crate::{Harness, ManualClock};

/// How a new user's password hash is stored.
#[derive(Debug, Clone)]
pub enum InitialHash {
    /// SQL `NULL` (or whatever the store uses for "no value").
    Null,
    /// The empty string, which also means "no password".
    Empty,
    /// A real hash: the user has a password.
    Set(PasswordHash),
}

/// What the suite needs from the store under test besides the [`UserStore`] trait: the parts
/// that belong to the embedding backend.
///
/// Implementations are test code: they may panic when something fails, and the check that
/// called them reports it.
#[async_trait]
pub trait StoreFixture: Send + Sync + 'static {
    /// A store over the fixture's data. Each call should give an instance as independent as a
    /// second server process would have (for a database: its own connection pool), all over
    /// the same data.
    async fn store(&self) -> Arc<dyn UserStore>;

    /// Creates a user with `email` and the given stored hash, and returns their id as the
    /// store reads it back.
    async fn create_user(&self, email: &str, hash: InitialHash) -> UserId;

    /// Writes `hash` as the user's password without going through the store, as another flow
    /// of the backend (an admin, a reset) would.
    async fn set_password_elsewhere(&self, user: &UserId, hash: &PasswordHash);

    /// The user's stored hash as the backend reads it: `None` for `NULL`.
    async fn stored_hash(&self, user: &UserId) -> Option<String>;

    /// Whether a password written through [`Self::set_password_elsewhere`] also drops the
    /// user's pending link, as the store contract asks of stores that can arrange it. A store
    /// that cannot answers `false`, and the check that a link stays dead after such a
    /// password is cleared again is skipped, with a note on standard error.
    fn drops_links_on_password_write(&self) -> bool {
        true
    }
}

/// How long one check may take before it counts as hung (a deadlock, a lost wake-up).
const CHECK_TIMEOUT: StdDuration = StdDuration::from_secs(120);

/// How many confirms race for one token.
const RACING_CONFIRMS: usize = 8;

/// How many times each request race is repeated with fresh users, to meet more interleavings.
const RACE_ROUNDS: usize = 10;

type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn(Arc<dyn StoreFixture>) -> CheckFuture;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|fixture| Box::pin($name(fixture))) as Check)),*]
    };
}

/// Every check, by name, in the order they run.
const CHECKS: &[(&str, Check)] = checks![
    request_then_confirm_walks_every_state,
    unknown_users_and_tokens_are_not_found,
    null_and_empty_hashes_mean_no_password,
    a_newer_link_supersedes_the_older,
    expiry_is_exact_to_the_second,
    the_cooldown_keeps_the_current_link,
    the_daily_cap_holds_across_instances,
    a_failed_send_is_taken_back,
    a_password_set_elsewhere_wins,
    a_link_stays_dead_when_a_password_set_elsewhere_is_cleared_again,
    a_refused_password_keeps_the_token,
    writes_are_compare_and_set,
    concurrent_confirms_complete_once,
    a_request_racing_a_confirm_leaves_no_usable_token,
    a_confirm_racing_a_password_set_elsewhere_never_overwrites_it,
    simultaneous_requests_on_two_instances_leave_one_link,
];

/// The names of all checks, in the order [`run`] runs them.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|(name, _)| *name).collect()
}

/// Runs every check against the fixture's store.
///
/// # Panics
/// If any check fails (the message lists each failed check and why), or if called outside a
/// multi-thread tokio runtime.
pub async fn run<F: StoreFixture>(fixture: Arc<F>) {
    run_only(fixture, &check_names()).await;
}

/// Runs the named checks only (see [`check_names`]), for narrowing down a failure.
///
/// # Panics
/// As [`run`], and if a name is unknown.
pub async fn run_only<F: StoreFixture>(fixture: Arc<F>, names: &[&str]) {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::MultiThread,
        "the store conformance suite races real tasks: run it under \
         #[tokio::test(flavor = \"multi_thread\", worker_threads = 4)]"
    );
    let fixture: Arc<dyn StoreFixture> = fixture;

    let mut failures = Vec::new();
    for name in names {
        let Some((_, check)) = CHECKS.iter().find(|(known, _)| known == name) else {
            panic!("no conformance check is called {name:?}");
        };
        let task = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, check(fixture.clone())));
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(_elapsed)) => {
                failures.push(format!("{name}: did not finish within {CHECK_TIMEOUT:?}"))
            }
            Err(error) if error.is_panic() => {
                failures.push(format!("{name}: {}", panic_message(error.into_panic())));
            }
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} store conformance checks failed:\n  {}",
        failures.len(),
        names.len(),
        failures.join("\n  ")
    );
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "panicked".to_owned(), |message| (*message).to_owned()),
    }
}

/// One service instance over its own store instance, with its own mailer.
struct Instance {
    service: PasswordSetup,
    store: Arc<dyn UserStore>,
    mailer: Arc<RecordingMailer>,
}

impl Instance {
    async fn new(fixture: &dyn StoreFixture, clock: Arc<ManualClock>, policy: SetupPolicy) -> Self {
        let store = fixture.store().await;
        let mailer = Arc::new(RecordingMailer::new());
        let service = PasswordSetup::builder()
            .store(store.clone())
            .mailer(mailer.clone())
            .identity_provider(Arc::new(BearerTokenTable::new()))
            .clock(clock)
            .hashing_params(HashingParams::INSECURE_FOR_TESTS)
            .public_base_url(Harness::BASE_URL)
            .policy(policy)
            .build()
            .expect("a valid service configuration");
        Self {
            service,
            store,
            mailer,
        }
    }

    async fn request(&self, user: &UserId) -> Result<RequestAccepted, SetupError> {
        self.service.request_for(user).await
    }

    async fn confirm(
        &self,
        token: &SetupToken,
        password: &str,
    ) -> Result<SetupCompleted, SetupError> {
        self.service
            .confirm(token, &NewPassword::new(password))
            .await
    }

    /// The tokens mailed to `user` by this instance, oldest first, as a client submits them.
    fn tokens_for(&self, user: &UserId) -> Vec<SetupToken> {
        self.mailer
            .sent()
            .iter()
            .filter(|email| email.account.id == *user)
            .map(|email| SetupToken::from_submitted(email.token.expose_secret()))
            .collect()
    }

    fn last_token_for(&self, user: &UserId) -> SetupToken {
        self.tokens_for(user)
            .pop()
            .expect("an email with a link was sent to the user")
    }

    async fn record(&self, user: &UserId) -> SetupRecord {
        self.store
            .load(user)
            .await
            .expect("load succeeds")
            .expect("the user exists")
    }

    async fn state(&self, user: &UserId) -> SetupState {
        self.record(user).await.state
    }
}

/// One check's world: the fixture, a clock of its own, and a first service instance.
struct Bench {
    fixture: Arc<dyn StoreFixture>,
    clock: Arc<ManualClock>,
    policy: SetupPolicy,
    main: Instance,
    tag: &'static str,
}

/// Distinguishes the users and digests of every bench of this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Bench {
    async fn new(fixture: Arc<dyn StoreFixture>, tag: &'static str) -> Self {
        let clock = Arc::new(ManualClock::new(Harness::START));
        let policy = SetupPolicy::default();
        let main = Instance::new(fixture.as_ref(), clock.clone(), policy).await;
        Self {
            fixture,
            clock,
            policy,
            main,
            tag,
        }
    }

    /// Whether the user's stored hash is a password (not NULL, not empty).
    async fn has_password(&self, user: &UserId) -> bool {
        self.fixture
            .stored_hash(user)
            .await
            .is_some_and(|hash| !hash.is_empty())
    }

    /// Another service instance over a fresh store instance, sharing the clock.
    async fn second_instance(&self) -> Instance {
        Instance::new(self.fixture.as_ref(), self.clock.clone(), self.policy).await
    }

    async fn user(&self, hash: InitialHash) -> UserId {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let email = format!("{}-{n}@example.test", self.tag.replace('_', "-"));
        self.fixture.create_user(&email, hash).await
    }

    async fn user_without_password(&self) -> UserId {
        self.user(InitialHash::Null).await
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn now(&self) -> OffsetDateTime {
        password_setup_core::Clock::now(self.clock.as_ref())
    }

    async fn password_verifies(&self, user: &UserId, password: &str) -> bool {
        self.fixture
            .stored_hash(user)
            .await
            .filter(|hash| !hash.is_empty())
            .is_some_and(|hash| {
                verify_password(password, &PasswordHash::from_phc(hash)).unwrap_or(false)
            })
    }
}

fn digest_of(token: &SetupToken) -> TokenDigest {
    token.digest().expect("mailed tokens are well formed")
}

/// A well-formed token no service issued, unique within this process and tied to `user`, so
/// that stores with a unique digest index see no collision between checks.
fn unissued_token(user: &UserId) -> SetupToken {
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut text: String = format!("{}x{n}", user.as_str())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let keep_from = text.len().saturating_sub(40);
    text = text.split_off(keep_from);
    // The last of 43 characters carries two unused bits, which must be zero: `A` is.
    while text.len() < 43 {
        text.push('A');
    }
    let token = SetupToken::from_submitted(text);
    assert!(token.digest().is_some(), "built an invalid token");
    token
}

fn is_refused_as_invalid_or_set(result: &Result<SetupCompleted, SetupError>) -> bool {
    matches!(
        result,
        Err(SetupError::TokenInvalid | SetupError::PasswordAlreadySet)
    )
}

const PASSWORD: &str = "correct-horse-battery";
const OTHER_PASSWORD: &str = "another-horse-battery";

async fn request_then_confirm_walks_every_state(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "walk").await;
    let user = bench.user_without_password().await;
    let before = bench.main.record(&user).await;
    assert_eq!(
        before.state,
        SetupState::NoPassword,
        "a new user has no password"
    );
    assert!(
        before.history.sends().is_empty(),
        "a new user has no mail history"
    );

    let accepted = bench
        .main
        .request(&user)
        .await
        .expect("request is accepted");
    assert!(accepted.email_sent, "the first request sends an email");
    assert_eq!(accepted.expires_at, Harness::START + bench.policy.token_ttl);
    let token = bench.main.last_token_for(&user);
    let pending = bench.main.record(&user).await;
    assert_eq!(
        pending.state,
        SetupState::Pending(PendingSetup {
            digest: digest_of(&token),
            issued_at: Harness::START,
            expires_at: accepted.expires_at,
        }),
        "the stored pending state is the mailed token with its exact lifetime"
    );
    assert_eq!(
        pending.history.sends(),
        &[Harness::START],
        "the send is recorded"
    );
    assert_ne!(
        pending.revision, before.revision,
        "issuing changes the revision"
    );
    assert_eq!(
        bench.main.mailer.last().expect("sent").account.email,
        pending.account.email,
        "the email goes to the address on record"
    );

    let found = bench
        .main
        .store
        .find_by_token(&digest_of(&token))
        .await
        .expect("find_by_token succeeds")
        .expect("the outstanding token is found");
    assert_eq!(found.account.id, user, "the token leads to its user");
    assert_eq!(found.state, pending.state);

    bench.advance(Duration::hours(1));
    let completed = bench
        .main
        .confirm(&token, PASSWORD)
        .await
        .expect("confirm succeeds");
    assert_eq!(completed.user_id, user);
    assert_eq!(bench.main.state(&user).await, SetupState::PasswordSet);
    assert!(
        bench.password_verifies(&user, PASSWORD).await,
        "the new password verifies"
    );
    assert!(
        bench
            .main
            .store
            .find_by_token(&digest_of(&token))
            .await
            .expect("find_by_token succeeds")
            .is_none(),
        "a used token is consumed"
    );

    bench.advance(Duration::hours(1));
    let again = bench.main.confirm(&token, OTHER_PASSWORD).await;
    assert!(
        matches!(again, Err(SetupError::TokenInvalid)),
        "a used token is refused as invalid, got {again:?}"
    );
    assert!(
        bench.password_verifies(&user, PASSWORD).await,
        "the first password stays"
    );
    assert!(!bench.password_verifies(&user, OTHER_PASSWORD).await);

    let request = bench.main.request(&user).await;
    assert!(
        matches!(request, Err(SetupError::PasswordAlreadySet)),
        "a user with a password is refused, got {request:?}"
    );
    assert_eq!(
        bench.main.mailer.count(),
        1,
        "no email after the password is set"
    );
}

async fn unknown_users_and_tokens_are_not_found(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "unknown").await;
    for id in [
        "no-such-user",
        "00000000-0000-0000-0000-000000000000",
        "-1",
        "9223372036854775807",
        "99999999999999999999999",
        "",
        "'; DROP TABLE users; --",
    ] {
        let loaded = bench.main.store.load(&UserId::new(id)).await;
        assert!(
            matches!(loaded, Ok(None)),
            "loading the id {id:?} that names no user gives Ok(None), got {loaded:?}"
        );
        let request = bench.main.request(&UserId::new(id)).await;
        assert!(
            matches!(request, Err(SetupError::UserNotFound)),
            "a request for {id:?} is refused as user-not-found, got {request:?}"
        );
    }

    let user = bench.user_without_password().await;
    let never_issued = unissued_token(&user);
    let found = bench
        .main
        .store
        .find_by_token(&digest_of(&never_issued))
        .await;
    assert!(
        matches!(found, Ok(None)),
        "an unknown digest finds nothing, got {found:?}"
    );
    let confirm = bench.main.confirm(&never_issued, PASSWORD).await;
    assert!(
        matches!(confirm, Err(SetupError::TokenInvalid)),
        "an unknown token is invalid, got {confirm:?}"
    );
    assert_eq!(bench.main.mailer.count(), 0);
}

async fn null_and_empty_hashes_mean_no_password(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "hashes").await;
    let real_hash = hash_password(
        &password_setup_core::normalize_password("existing-password"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .expect("hashing works");

    for (what, hash) in [("NULL", InitialHash::Null), ("empty", InitialHash::Empty)] {
        let user = bench.user(hash).await;
        assert_eq!(
            bench.main.state(&user).await,
            SetupState::NoPassword,
            "a user with a {what} hash has no password"
        );
        let sent_before = bench.main.mailer.count();
        let accepted = bench.main.request(&user).await;
        assert!(
            matches!(
                accepted,
                Ok(RequestAccepted {
                    email_sent: true,
                    ..
                })
            ),
            "a user with a {what} hash gets a link, got {accepted:?}"
        );
        assert_eq!(
            bench.main.mailer.count(),
            sent_before + 1,
            "exactly one email ({what})"
        );
        let token = bench.main.last_token_for(&user);
        bench
            .main
            .confirm(&token, PASSWORD)
            .await
            .expect("confirm succeeds");
        assert!(
            bench.password_verifies(&user, PASSWORD).await,
            "the password replaces the {what} hash"
        );
    }

    let user = bench.user(InitialHash::Set(real_hash.clone())).await;
    let sent_before = bench.main.mailer.count();
    let refused = bench.main.request(&user).await;
    assert!(
        matches!(refused, Err(SetupError::PasswordAlreadySet)),
        "a user with a real hash is refused with 409, got {refused:?}"
    );
    assert_eq!(
        bench.main.mailer.count(),
        sent_before,
        "no email for a user with a password"
    );
    let record = bench.main.record(&user).await;
    assert_eq!(record.state, SetupState::PasswordSet);
    assert!(record.history.sends().is_empty(), "no send was recorded");
    assert_eq!(
        bench.fixture.stored_hash(&user).await.as_deref(),
        Some(real_hash.as_phc()),
        "the existing hash is untouched"
    );
}

async fn a_newer_link_supersedes_the_older(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "supersede").await;
    let user = bench.user_without_password().await;
    bench.main.request(&user).await.expect("first request");
    let first = bench.main.last_token_for(&user);

    bench.advance(Duration::minutes(10));
    bench.main.request(&user).await.expect("second request");
    let second = bench.main.last_token_for(&user);
    assert_ne!(first, second, "past the cooldown a new token is sent");

    let found = bench.main.store.find_by_token(&digest_of(&first)).await;
    assert!(
        matches!(found, Ok(None)),
        "the older digest no longer matches, got {found:?}"
    );

    bench.advance(Duration::minutes(5));
    let old = bench.main.confirm(&first, PASSWORD).await;
    assert!(
        matches!(old, Err(SetupError::TokenInvalid)),
        "the older link is refused, got {old:?}"
    );
    assert!(!bench.has_password(&user).await, "no password was stored");
    let state = bench.main.state(&user).await;
    assert!(
        matches!(state, SetupState::Pending(p) if p.digest == digest_of(&second)),
        "the refused older link leaves the newer one pending, got {state:?}"
    );

    bench
        .main
        .confirm(&second, PASSWORD)
        .await
        .expect("the newer link works");
    let old_again = bench.main.confirm(&first, OTHER_PASSWORD).await;
    assert!(
        is_refused_as_invalid_or_set(&old_again),
        "got {old_again:?}"
    );
    assert!(bench.password_verifies(&user, PASSWORD).await);
}

async fn expiry_is_exact_to_the_second(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "expiry").await;
    // Just before midnight, so that a store comparing dates instead of instants fails.
    bench
        .clock
        .set(Harness::START.replace_time(time::macros::time!(23:59:30)));
    let issued_at = bench.now();
    let early = bench.user_without_password().await;
    let late = bench.user_without_password().await;
    bench.main.request(&early).await.expect("request");
    bench.main.request(&late).await.expect("request");
    let early_token = bench.main.last_token_for(&early);
    let late_token = bench.main.last_token_for(&late);

    bench
        .clock
        .set(issued_at + bench.policy.token_ttl - Duration::seconds(1));
    bench
        .main
        .confirm(&early_token, PASSWORD)
        .await
        .expect("a token works one second before it expires");

    bench.clock.set(issued_at + bench.policy.token_ttl);
    let at_expiry = bench.main.confirm(&late_token, PASSWORD).await;
    assert!(
        matches!(at_expiry, Err(SetupError::TokenExpired)),
        "a token is expired at its expiry instant, got {at_expiry:?}"
    );
    bench.advance(Duration::seconds(1));
    let after = bench.main.confirm(&late_token, PASSWORD).await;
    assert!(
        matches!(after, Err(SetupError::TokenExpired)),
        "a token is expired after its expiry instant, got {after:?}"
    );
    assert!(
        matches!(bench.main.state(&late).await, SetupState::Pending(_)),
        "refusing an expired token writes nothing"
    );
    assert!(!bench.password_verifies(&late, PASSWORD).await);
}

async fn the_cooldown_keeps_the_current_link(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "cooldown").await;
    let user = bench.user_without_password().await;
    let first = bench.main.request(&user).await.expect("request");
    let first_token = bench.main.last_token_for(&user);

    bench.advance(bench.policy.resend_cooldown - Duration::seconds(1));
    let repeat = bench
        .main
        .request(&user)
        .await
        .expect("a repeat is accepted");
    assert!(
        !repeat.email_sent,
        "a repeat inside the cooldown sends nothing"
    );
    assert_eq!(
        repeat.expires_at, first.expires_at,
        "and reports the current link's expiry"
    );
    assert_eq!(bench.main.mailer.count(), 1);

    bench.advance(Duration::seconds(1));
    let after = bench
        .main
        .request(&user)
        .await
        .expect("request after the cooldown");
    assert!(
        after.email_sent,
        "at the end of the cooldown a new email goes out"
    );
    let second_token = bench.main.last_token_for(&user);
    assert_eq!(bench.main.record(&user).await.history.sends().len(), 2);

    let old = bench.main.confirm(&first_token, PASSWORD).await;
    assert!(matches!(old, Err(SetupError::TokenInvalid)), "got {old:?}");
    bench
        .main
        .confirm(&second_token, PASSWORD)
        .await
        .expect("the newest link works");
}

async fn the_daily_cap_holds_across_instances(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "cap").await;
    let other = bench.second_instance().await;
    let user = bench.user_without_password().await;
    let instances = [&bench.main, &other];
    let gap = Duration::minutes(2);

    for sent in 0..bench.policy.email_cap as usize {
        let accepted = instances[sent % 2]
            .request(&user)
            .await
            .expect("under the cap");
        assert!(accepted.email_sent, "send {sent} goes out");
        bench.advance(gap);
    }
    assert_eq!(
        bench.main.record(&user).await.history.sends().len(),
        bench.policy.email_cap as usize,
        "every send is in the stored history"
    );

    let sends_so_far = gap * i32::try_from(bench.policy.email_cap).expect("small cap");
    for instance in instances {
        let refused = instance.request(&user).await;
        match refused {
            Err(SetupError::TooManyRequests { retry_after }) => assert_eq!(
                retry_after,
                bench.policy.cap_window - sends_so_far,
                "retry-after is when the oldest send leaves the window"
            ),
            other => panic!("a request over the cap is refused with 429, got {other:?}"),
        }
    }
    let emails = bench.main.mailer.count() + other.mailer.count();
    assert_eq!(
        emails, bench.policy.email_cap as usize,
        "no email over the cap"
    );

    // A fresh instance has no memory of its own: the cap must come from the store.
    let third = bench.second_instance().await;
    assert!(matches!(
        third.request(&user).await,
        Err(SetupError::TooManyRequests { .. })
    ));

    bench.clock.set(Harness::START + bench.policy.cap_window);
    let reopened = third.request(&user).await.expect("the window has moved on");
    assert!(
        reopened.email_sent,
        "once the oldest send left the window, an email goes out"
    );
    let token = third.last_token_for(&user);
    other
        .confirm(&token, PASSWORD)
        .await
        .expect("any instance confirms any instance's link");
}

async fn a_failed_send_is_taken_back(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "failed_send").await;
    let user = bench.user_without_password().await;
    let before = bench.main.record(&user).await;

    bench.main.mailer.set_failing(true);
    let failed = bench.main.request(&user).await;
    assert!(matches!(failed, Err(SetupError::Mail(_))), "got {failed:?}");
    let after = bench.main.record(&user).await;
    assert_eq!(
        after.state,
        SetupState::NoPassword,
        "the unsent link is taken back"
    );
    assert_eq!(
        after.history, before.history,
        "the failed send is not counted"
    );

    bench.main.mailer.set_failing(false);
    bench.advance(Duration::seconds(1));
    let retry = bench
        .main
        .request(&user)
        .await
        .expect("an immediate retry is accepted");
    assert!(retry.email_sent, "the failed send started no cooldown");
    assert_eq!(bench.main.record(&user).await.history.sends().len(), 1);
    let token = bench.main.last_token_for(&user);

    // Withdrawing a digest that is not the outstanding one changes nothing.
    let current = bench.main.record(&user).await;
    let stranger = digest_of(&unissued_token(&user));
    bench
        .main
        .store
        .withdraw(&user, &stranger)
        .await
        .expect("withdraw succeeds");
    assert_eq!(
        bench.main.record(&user).await,
        current,
        "a foreign digest withdraws nothing"
    );

    bench
        .main
        .confirm(&token, PASSWORD)
        .await
        .expect("the retried link works");
}

async fn a_password_set_elsewhere_wins(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "elsewhere").await;
    let user = bench.user_without_password().await;
    bench.main.request(&user).await.expect("request");
    let token = bench.main.last_token_for(&user);

    bench.advance(Duration::hours(1));
    let elsewhere = hash_password(
        &password_setup_core::normalize_password("set-by-an-admin"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .expect("hashing works");
    bench
        .fixture
        .set_password_elsewhere(&user, &elsewhere)
        .await;

    let record = bench.main.record(&user).await;
    assert_eq!(
        record.state,
        SetupState::PasswordSet,
        "the password is seen at once"
    );
    match bench.main.store.find_by_token(&digest_of(&token)).await {
        Ok(None) => {}
        Ok(Some(found)) => assert_eq!(
            found.state,
            SetupState::PasswordSet,
            "a token row that survives a password reports PasswordSet"
        ),
        Err(error) => panic!("find_by_token failed: {error}"),
    }

    bench.advance(Duration::hours(1));
    let confirm = bench.main.confirm(&token, PASSWORD).await;
    assert!(
        is_refused_as_invalid_or_set(&confirm),
        "the old link is refused, got {confirm:?}"
    );
    assert_eq!(
        bench.fixture.stored_hash(&user).await.as_deref(),
        Some(elsewhere.as_phc()),
        "the password set elsewhere is unchanged"
    );
    let request = bench.main.request(&user).await;
    assert!(
        matches!(request, Err(SetupError::PasswordAlreadySet)),
        "got {request:?}"
    );
    assert_eq!(
        bench.main.mailer.count(),
        1,
        "no email after the password was set"
    );

    let store = &bench.main.store;
    let issue = store
        .issue(
            &user,
            record.revision,
            IssueUpdate {
                pending: PendingSetup {
                    digest: digest_of(&unissued_token(&user)),
                    issued_at: bench.now(),
                    expires_at: bench.now() + bench.policy.token_ttl,
                },
                history: MailHistory::new(vec![bench.now()]),
            },
        )
        .await
        .expect("issue succeeds");
    assert_eq!(
        issue,
        IssueOutcome::Conflict,
        "issue refuses a user with a password"
    );
    let complete = store
        .complete(
            &user,
            &digest_of(&token),
            &PasswordHash::from_phc("$not-a-real-hash"),
        )
        .await
        .expect("complete succeeds");
    assert_ne!(
        complete,
        CompleteOutcome::Completed,
        "complete never overwrites a password"
    );
    assert_eq!(
        bench.fixture.stored_hash(&user).await.as_deref(),
        Some(elsewhere.as_phc())
    );
}

async fn a_link_stays_dead_when_a_password_set_elsewhere_is_cleared_again(
    fixture: Arc<dyn StoreFixture>,
) {
    if !fixture.drops_links_on_password_write() {
        eprintln!(
            "conformance: skipped a_link_stays_dead_when_a_password_set_elsewhere_is_cleared_again: \
             the fixture says its store cannot drop links when a password is written elsewhere"
        );
        return;
    }
    let bench = Bench::new(fixture, "cleared_again").await;
    let user = bench.user_without_password().await;
    bench.main.request(&user).await.expect("request");
    let token = bench.main.last_token_for(&user);

    let admin_hash = hash_password(
        &password_setup_core::normalize_password("set-by-an-admin"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .expect("hashing works");
    bench
        .fixture
        .set_password_elsewhere(&user, &admin_hash)
        .await;
    bench
        .fixture
        .set_password_elsewhere(&user, &PasswordHash::from_phc(""))
        .await;
    assert_eq!(
        bench.main.state(&user).await,
        SetupState::NoPassword,
        "a cleared password leaves the user without one and without a link"
    );

    bench.advance(Duration::hours(1));
    let revived = bench.main.confirm(&token, PASSWORD).await;
    assert!(
        matches!(revived, Err(SetupError::TokenInvalid)),
        "a link from before the password stays dead, got {revived:?}"
    );
    assert!(!bench.has_password(&user).await, "no password was stored");

    bench
        .main
        .request(&user)
        .await
        .expect("a new request is accepted");
    let fresh = bench.main.last_token_for(&user);
    bench
        .main
        .confirm(&fresh, PASSWORD)
        .await
        .expect("a new link works");
}

async fn a_refused_password_keeps_the_token(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "refused").await;
    let user = bench.user_without_password().await;
    bench.main.request(&user).await.expect("request");
    let token = bench.main.last_token_for(&user);
    let before = bench.main.record(&user).await;

    let refused = bench.main.confirm(&token, "short").await;
    assert!(
        matches!(refused, Err(SetupError::PasswordRejected(_))),
        "got {refused:?}"
    );
    assert_eq!(
        bench.main.record(&user).await,
        before,
        "a refused password writes nothing"
    );

    bench
        .main
        .confirm(&token, PASSWORD)
        .await
        .expect("the token still works");
    let third = bench.main.confirm(&token, OTHER_PASSWORD).await;
    assert!(
        matches!(third, Err(SetupError::TokenInvalid)),
        "got {third:?}"
    );
}

async fn writes_are_compare_and_set(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "cas").await;
    let store = bench.main.store.clone();
    let user = bench.user_without_password().await;
    let t0 = bench.now();
    let update = |digest: TokenDigest, history: Vec<OffsetDateTime>| IssueUpdate {
        pending: PendingSetup {
            digest,
            issued_at: t0,
            expires_at: t0 + Duration::hours(24),
        },
        history: MailHistory::new(history),
    };

    let start = bench.main.record(&user).await;
    let first = digest_of(&unissued_token(&user));
    // Two sends at one instant: withdrawing one of them must leave the other.
    let history = vec![t0 - Duration::hours(2), t0, t0];
    let issued = store
        .issue(&user, start.revision, update(first, history.clone()))
        .await;
    assert_eq!(issued.expect("issue succeeds"), IssueOutcome::Issued);
    let after_first = bench.main.record(&user).await;
    assert_ne!(
        after_first.revision, start.revision,
        "a write changes the revision"
    );
    assert_eq!(
        after_first.history.sends(),
        history.as_slice(),
        "the history round-trips"
    );

    let second = digest_of(&unissued_token(&user));
    let stale = store
        .issue(&user, start.revision, update(second, vec![t0]))
        .await;
    assert_eq!(
        stale.expect("issue succeeds"),
        IssueOutcome::Conflict,
        "a stale revision loses"
    );
    assert_eq!(
        bench.main.record(&user).await,
        after_first,
        "a lost write changes nothing"
    );

    let issued = store
        .issue(&user, after_first.revision, update(second, history.clone()))
        .await;
    assert_eq!(issued.expect("issue succeeds"), IssueOutcome::Issued);
    assert!(
        store
            .find_by_token(&first)
            .await
            .expect("find succeeds")
            .is_none(),
        "the superseded digest is gone"
    );
    let gone = store
        .complete(&user, &first, &PasswordHash::from_phc("$not-a-real-hash"))
        .await
        .expect("complete succeeds");
    assert_eq!(
        gone,
        CompleteOutcome::TokenGone,
        "a superseded digest cannot complete"
    );
    assert!(!bench.has_password(&user).await, "no password was stored");

    store
        .withdraw(&user, &first)
        .await
        .expect("withdraw succeeds");
    let unchanged = bench.main.record(&user).await;
    assert!(matches!(unchanged.state, SetupState::Pending(p) if p.digest == second));
    store
        .withdraw(&user, &second)
        .await
        .expect("withdraw succeeds");
    let withdrawn = bench.main.record(&user).await;
    assert_eq!(
        withdrawn.state,
        SetupState::NoPassword,
        "withdraw removes the token"
    );
    assert_eq!(
        withdrawn.history.sends(),
        &[t0 - Duration::hours(2), t0],
        "withdraw removes exactly one send at the token's issue instant"
    );
    assert_ne!(withdrawn.revision, unchanged.revision);

    let nobody = UserId::new("no-such-user-for-cas");
    let third = digest_of(&unissued_token(&user));
    let absent = store
        .issue(&nobody, Revision::default(), update(third, vec![t0]))
        .await;
    assert_eq!(
        absent.expect("issue succeeds"),
        IssueOutcome::Conflict,
        "no user, no write"
    );
}

async fn concurrent_confirms_complete_once(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "racing_confirms").await;
    let other = Arc::new(bench.second_instance().await);
    let user = bench.user_without_password().await;
    bench.main.request(&user).await.expect("request");
    let token = bench.main.last_token_for(&user);
    let main =
        Arc::new(Instance::new(bench.fixture.as_ref(), bench.clock.clone(), bench.policy).await);

    let barrier = Arc::new(Barrier::new(RACING_CONFIRMS));
    let tasks: Vec<_> = (0..RACING_CONFIRMS)
        .map(|i| {
            let instance = if i % 2 == 0 {
                main.clone()
            } else {
                other.clone()
            };
            let (barrier, token) = (barrier.clone(), token.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                instance
                    .confirm(&token, &format!("racing-password-{i}"))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("the task ran") {
            Ok(_) => winners.push(i),
            refused if is_refused_as_invalid_or_set(&refused) => {}
            other => panic!("a losing confirm is refused as invalid or 409, got {other:?}"),
        }
    }

    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACING_CONFIRMS} confirms succeeds: {winners:?}"
    );
    let winner = winners[0];
    assert!(
        bench
            .password_verifies(&user, &format!("racing-password-{winner}"))
            .await,
        "the stored password is the winner's"
    );
    let loser = (winner + 1) % RACING_CONFIRMS;
    assert!(
        !bench
            .password_verifies(&user, &format!("racing-password-{loser}"))
            .await
    );
    assert_eq!(bench.main.state(&user).await, SetupState::PasswordSet);
}

async fn a_request_racing_a_confirm_leaves_no_usable_token(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "request_vs_confirm").await;
    let confirmer = Arc::new(bench.second_instance().await);
    let requester = Arc::new(bench.second_instance().await);

    for round in 0..RACE_ROUNDS {
        let user = bench.user_without_password().await;
        requester.request(&user).await.expect("first request");
        // Past the cooldown, so the racing request really issues a new token.
        bench.advance(bench.policy.resend_cooldown + Duration::seconds(1));
        let first = requester.last_token_for(&user);

        let barrier = Arc::new(Barrier::new(2));
        let confirm = tokio::spawn({
            let (confirmer, barrier, first) = (confirmer.clone(), barrier.clone(), first.clone());
            async move {
                barrier.wait().await;
                confirmer.confirm(&first, PASSWORD).await
            }
        });
        let request = tokio::spawn({
            let (requester, barrier, user) = (requester.clone(), barrier.clone(), user.clone());
            async move {
                barrier.wait().await;
                requester.request(&user).await
            }
        });
        let confirm = confirm.await.expect("the task ran");
        let request = request.await.expect("the task ran");

        let password_set = bench.password_verifies(&user, PASSWORD).await;
        assert_eq!(
            password_set,
            confirm.is_ok(),
            "round {round}: the confirm's answer is the truth"
        );
        match &request {
            Ok(_) | Err(SetupError::PasswordAlreadySet) => {}
            other => panic!("round {round}: the request fails only with 409, got {other:?}"),
        }
        if !password_set {
            assert!(
                matches!(confirm, Err(SetupError::TokenInvalid)),
                "round {round}: a confirm loses only to a newer link, got {confirm:?}"
            );
            let newer = requester.last_token_for(&user);
            assert_ne!(
                newer, first,
                "round {round}: the winning request mailed a new link"
            );
            bench
                .main
                .confirm(&newer, PASSWORD)
                .await
                .expect("the newer link works");
            continue;
        }

        assert_eq!(
            bench.main.state(&user).await,
            SetupState::PasswordSet,
            "round {round}"
        );
        for token in requester.tokens_for(&user) {
            let late = bench.main.confirm(&token, OTHER_PASSWORD).await;
            assert!(
                is_refused_as_invalid_or_set(&late),
                "round {round}: no token works once the password is set, got {late:?}"
            );
        }
        assert!(
            bench.password_verifies(&user, PASSWORD).await,
            "round {round}"
        );
        let after = bench.main.request(&user).await;
        assert!(
            matches!(after, Err(SetupError::PasswordAlreadySet)),
            "round {round}: {after:?}"
        );
    }
}

async fn a_confirm_racing_a_password_set_elsewhere_never_overwrites_it(
    fixture: Arc<dyn StoreFixture>,
) {
    let bench = Bench::new(fixture, "confirm_vs_elsewhere").await;
    let confirmer = Arc::new(bench.second_instance().await);
    let elsewhere = hash_password(
        &password_setup_core::normalize_password("set-by-an-admin"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .expect("hashing works");

    for round in 0..RACE_ROUNDS {
        let user = bench.user_without_password().await;
        bench.main.request(&user).await.expect("request");
        let token = bench.main.last_token_for(&user);

        let barrier = Arc::new(Barrier::new(2));
        let confirm = tokio::spawn({
            let (confirmer, barrier, token) = (confirmer.clone(), barrier.clone(), token.clone());
            async move {
                barrier.wait().await;
                confirmer.confirm(&token, PASSWORD).await
            }
        });
        let admin = tokio::spawn({
            let (fixture, barrier, user, hash) = (
                bench.fixture.clone(),
                barrier.clone(),
                user.clone(),
                elsewhere.clone(),
            );
            async move {
                barrier.wait().await;
                fixture.set_password_elsewhere(&user, &hash).await;
            }
        });
        let confirm = confirm.await.expect("the task ran");
        admin.await.expect("the task ran");

        // Whichever came first, the write from elsewhere is the last one standing: either it
        // replaced the confirmed password, or the confirm saw it and stored nothing.
        assert!(
            confirm.is_ok() || is_refused_as_invalid_or_set(&confirm),
            "round {round}: got {confirm:?}"
        );
        assert_eq!(
            bench.fixture.stored_hash(&user).await.as_deref(),
            Some(elsewhere.as_phc()),
            "round {round}: a confirm overwrote a password set elsewhere (confirm: {confirm:?})"
        );
    }
}

async fn simultaneous_requests_on_two_instances_leave_one_link(fixture: Arc<dyn StoreFixture>) {
    let bench = Bench::new(fixture, "simultaneous").await;
    let first = Arc::new(bench.second_instance().await);
    let second = Arc::new(bench.second_instance().await);

    for round in 0..RACE_ROUNDS {
        let user = bench.user_without_password().await;
        let barrier = Arc::new(Barrier::new(2));
        let tasks = [first.clone(), second.clone()].map(|instance| {
            let (barrier, user) = (barrier.clone(), user.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                instance.request(&user).await
            })
        });
        for task in tasks {
            let answer = task.await.expect("the task ran");
            assert!(
                answer.is_ok(),
                "round {round}: both simultaneous requests are accepted, got {answer:?}"
            );
        }

        let mailed: Vec<_> = first
            .tokens_for(&user)
            .into_iter()
            .chain(second.tokens_for(&user))
            .collect();
        assert_eq!(
            mailed.len(),
            1,
            "round {round}: the cooldown lets one email out"
        );
        let SetupState::Pending(pending) = bench.main.state(&user).await else {
            panic!("round {round}: the user has a pending link");
        };
        for token in &mailed {
            if digest_of(token) != pending.digest {
                let refused = bench.main.confirm(token, PASSWORD).await;
                assert!(
                    matches!(refused, Err(SetupError::TokenInvalid)),
                    "round {round}: {refused:?}"
                );
            }
        }
        let live = mailed
            .iter()
            .find(|token| digest_of(token) == pending.digest)
            .expect("the pending link is one that was mailed");
        let confirmer = if round % 2 == 0 { &first } else { &second };
        confirmer
            .confirm(live, PASSWORD)
            .await
            .expect("the pending link works on any instance");
    }
}
