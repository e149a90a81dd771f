//! What the library costs per operation, each beside the floor of work it cannot avoid.
//!
//! | group | library path | floor beside it |
//! |---|---|---|
//! | `token` | a fresh request through the service (store write, link, mail) | 32 random bytes, their SHA-256 and base64 text, done directly |
//! | `request` | a fresh request, a repeat inside the cooldown, the HTTP endpoint | the token floor |
//! | `confirm` | confirm through the service at the test and the OWASP parameters, hashing on the calling thread and on a `BlockingHasher` thread | one bare Argon2id hash at the same parameters, in fresh and in kept memory |
//! | `error_document` | mapping an error to its JSON:API answer and serialising it | serialising the finished document |
//!
//! The service runs over the in-memory store and identity table, the system clock, and a
//! mailer that keeps only the last token (so memory stays flat however long criterion runs).
//! The confirm rows hash once on the calling thread ([`Argon2idHasher`]) and once as
//! servers do ([`BlockingHasher`], one hop to a hashing thread of its own); both keep their
//! Argon2 memory from one hash to the next.
//!
//! Run with `cargo bench --bench service`; add a filter such as `-- confirm` for one group.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Argon2, Block};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use password_setup::{
    Argon2idHasher, BearerCredential, EmailAddress, ErrorResponse, HashingParams, MailError,
    Mailer, NewPassword, PasswordHasher, PasswordSetup, SetupEmail, SetupError, SetupPolicy,
    SetupToken, UserId,
};
use password_setup_http::{BlockingHasher, HashingPriority, SetupEndpoints};
use password_setup_memory::{BearerTokenTable, MemoryUserStore, SystemClock};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;

#[path = "common/bare_argon2.rs"]
mod bare_argon2;

const PASSWORD: &str = "correct horse battery staple 42";

/// Keeps the token of the last email, as a client reading its inbox would.
#[derive(Default)]
struct LastTokenMailer {
    last: Mutex<Option<String>>,
}

impl LastTokenMailer {
    fn take(&self) -> SetupToken {
        let token = self.last.lock().unwrap().take().expect("an email was sent");
        SetupToken::from_submitted(token)
    }
}

#[async_trait]
impl Mailer for LastTokenMailer {
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError> {
        *self.last.lock().unwrap() = Some(email.token.expose_secret().to_owned());
        Ok(())
    }
}

/// A service over in-memory adapters, with the users it knows.
struct Fixture {
    service: PasswordSetup,
    store: Arc<MemoryUserStore>,
    identity: Arc<BearerTokenTable>,
    mailer: Arc<LastTokenMailer>,
    next_user: AtomicU64,
}

impl Fixture {
    fn new(policy: SetupPolicy, params: HashingParams) -> Self {
        Self::with_hasher(policy, Arc::new(Argon2idHasher::new(params).unwrap()))
    }

    fn with_hasher(policy: SetupPolicy, hasher: Arc<dyn PasswordHasher>) -> Self {
        let store = Arc::new(MemoryUserStore::new());
        let identity = Arc::new(BearerTokenTable::new());
        let mailer = Arc::new(LastTokenMailer::default());
        let service = PasswordSetup::builder()
            .store(store.clone())
            .mailer(mailer.clone())
            .identity_provider(identity.clone())
            .clock(Arc::new(SystemClock))
            .hasher(hasher)
            .public_base_url("https://accounts.example.test")
            .policy(policy)
            .build()
            .unwrap();
        Self {
            service,
            store,
            identity,
            mailer,
            next_user: AtomicU64::new(0),
        }
    }

    /// Adds a user without a password; returns their id and bearer token.
    fn add_user(&self) -> (UserId, String) {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let id = UserId::new(format!("user-{n}"));
        self.store.insert_user(
            id.clone(),
            EmailAddress::new(format!("user-{n}@example.test")),
        );
        let bearer = format!("bench-token-{n}");
        self.identity.insert(bearer.clone(), id.clone());
        (id, bearer)
    }

    /// A user with a live link; returns the token from their email.
    fn user_with_link(&self, runtime: &Runtime) -> SetupToken {
        let (id, _) = self.add_user();
        runtime.block_on(self.service.request_for(&id)).unwrap();
        self.mailer.take()
    }
}

/// Every request issues a new link: no cooldown, and a cap window so short that the history
/// never holds more than the send just made.
fn always_issue() -> SetupPolicy {
    SetupPolicy {
        resend_cooldown: time::Duration::ZERO,
        email_cap: 1_000,
        cap_window: time::Duration::nanoseconds(1),
        ..SetupPolicy::default()
    }
}

/// The work a token cannot be issued without, done directly.
fn bare_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    (URL_SAFE_NO_PAD.encode(bytes), digest)
}

/// One Argon2id hash into a 32-byte output, without the PHC string around it, in memory it
/// allocates (and so maps and faults in) afresh.
fn bare_argon2(argon2: &Argon2<'_>, salt: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    argon2
        .hash_password_into(PASSWORD.as_bytes(), salt, &mut out)
        .unwrap();
    out
}

/// The same in memory kept from the previous hash.
fn bare_argon2_in(argon2: &Argon2<'_>, salt: &[u8; 16], memory: &mut [Block]) -> [u8; 32] {
    let mut out = [0u8; 32];
    argon2
        .hash_password_into_with_memory(PASSWORD.as_bytes(), salt, &mut out, memory)
        .unwrap();
    out
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn token(c: &mut Criterion) {
    let runtime = runtime();
    let fixture = Fixture::new(always_issue(), HashingParams::INSECURE_FOR_TESTS);
    let (user, _) = fixture.add_user();
    let mut group = c.benchmark_group("token");

    group.bench_function("floor: random bytes, sha256, base64", |b| {
        b.iter(|| black_box(bare_token()));
    });
    group.bench_function("submitted token digest (decode, sha256)", |b| {
        let submitted = SetupToken::from_submitted(bare_token().0);
        b.iter(|| black_box(submitted.digest()));
    });
    group.bench_function("service: fresh request_for (no identity lookup)", |b| {
        b.iter(|| runtime.block_on(fixture.service.request_for(black_box(&user))));
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("request");

    let issuing = Fixture::new(always_issue(), HashingParams::INSECURE_FOR_TESTS);
    let (_, bearer) = issuing.add_user();
    let credential = BearerCredential::new(bearer.clone());
    group.bench_function("fresh: authenticate, issue, mail", |b| {
        b.iter(|| runtime.block_on(issuing.service.request(Some(black_box(&credential)))));
    });
    let endpoints = SetupEndpoints::new(issuing.service.clone());
    let header = format!("Bearer {bearer}");
    group.bench_function("fresh through the HTTP endpoint", |b| {
        b.iter(|| runtime.block_on(endpoints.request_password(Some(header.as_bytes()))));
    });

    let cooling = Fixture::new(
        SetupPolicy {
            resend_cooldown: time::Duration::hours(1),
            ..SetupPolicy::default()
        },
        HashingParams::INSECURE_FOR_TESTS,
    );
    let (_, bearer) = cooling.add_user();
    let credential = BearerCredential::new(bearer);
    runtime
        .block_on(cooling.service.request(Some(&credential)))
        .unwrap();
    group.bench_function("repeat inside the cooldown (read only)", |b| {
        b.iter(|| runtime.block_on(cooling.service.request(Some(black_box(&credential)))));
    });
    group.finish();
}

fn confirm_at(c: &mut Criterion, label: &str, params: HashingParams, samples: usize) {
    let runtime = runtime();
    let (argon2, mut memory) = bare_argon2::bare_argon2(params);
    let salt = [7u8; 16];
    let mut group = c.benchmark_group(format!("confirm/{label}"));
    group.sample_size(samples);

    group.bench_function("floor: bare argon2id hash, fresh memory", |b| {
        b.iter(|| black_box(bare_argon2(&argon2, &salt)));
    });
    group.bench_function("floor: bare argon2id hash, kept memory", |b| {
        b.iter(|| black_box(bare_argon2_in(&argon2, &salt, &mut memory)));
    });

    let on_thread = Fixture::new(SetupPolicy::default(), params);
    // At the priority of the bare hash beside it: this row measures the hop to a hashing
    // thread, not how much CPU time a lowered priority leaves it on a busy machine.
    let blocking = Fixture::with_hasher(
        SetupPolicy::default(),
        Arc::new(
            BlockingHasher::new(params, 1)
                .unwrap()
                .with_priority(HashingPriority::LoweredBy(0)),
        ),
    );
    for (hasher, fixture) in [
        ("Argon2idHasher (calling thread)", &on_thread),
        ("BlockingHasher (hashing thread)", &blocking),
    ] {
        group.bench_function(format!("service: confirm, {hasher}"), |b| {
            b.iter_batched(
                || fixture.user_with_link(&runtime),
                |token| {
                    runtime
                        .block_on(fixture.service.confirm(&token, &NewPassword::new(PASSWORD)))
                        .unwrap()
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn confirm(c: &mut Criterion) {
    confirm_at(
        c,
        "insecure-test-params",
        HashingParams::INSECURE_FOR_TESTS,
        100,
    );
    confirm_at(c, "owasp", HashingParams::OWASP, 20);
}

fn error_document(c: &mut Criterion) {
    let mut group = c.benchmark_group("error_document");
    let errors = [
        ("token invalid", SetupError::TokenInvalid),
        (
            "too many requests",
            SetupError::TooManyRequests {
                retry_after: time::Duration::minutes(90),
            },
        ),
    ];
    for (label, error) in &errors {
        let finished = ErrorResponse::from_error(error);
        group.bench_function(format!("floor: serialise a finished {label}"), |b| {
            b.iter(|| black_box(finished.body()));
        });
        group.bench_function(format!("from_error + body: {label}"), |b| {
            b.iter(|| black_box(ErrorResponse::from_error(black_box(error)).body()));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = token, request, confirm, error_document
}
criterion_main!(benches);
