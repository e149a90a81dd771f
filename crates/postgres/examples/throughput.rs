//! Measures the PostgreSQL store under load: many users requesting a link and confirming it at
//! once, through the real service with the cheapest hashing, so the numbers are the store's.
//!
//! ```text
//! cargo run --release -p password-setup-postgres --example throughput -- [users] [concurrency]
//! ```
//!
//! Uses `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and works in a
//! schema of its own, dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use password_setup_core::{HashingParams, NewPassword, PasswordSetup, SetupToken, UserId};
use password_setup_memory::{BearerTokenTable, RecordingMailer, SystemClock};
use password_setup_postgres::{PgStoreConfig, PgUserStore};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(2000, |n| n.parse().unwrap());
    let concurrency: usize = args.next().map_or(16, |n| n.parse().unwrap());
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("throughput_{}", std::process::id());

    let options = PgConnectOptions::from_str(&url).unwrap();
    let admin = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap())
        .test_before_acquire(false)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let store = PgUserStore::new(pool.clone(), &PgStoreConfig::default()).unwrap();
    store.create_users_table().await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email) \
         SELECT 'user-' || g, 'user-' || g || '@example.test' FROM generate_series(1, $1) g",
    )
    .bind(i64::try_from(users).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE users").execute(&pool).await.unwrap();

    let mailer = Arc::new(RecordingMailer::new());
    let service = Arc::new(
        PasswordSetup::builder()
            .store(Arc::new(store))
            .mailer(mailer.clone())
            .identity_provider(Arc::new(BearerTokenTable::new()))
            .clock(Arc::new(SystemClock))
            .hashing_params(HashingParams::INSECURE_FOR_TESTS)
            .public_base_url("https://accounts.example.test")
            .build()
            .unwrap(),
    );

    let requests = run(users, concurrency, {
        let service = service.clone();
        move |i| {
            let service = service.clone();
            async move {
                service
                    .request_for(&UserId::new(format!("user-{i}")))
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    let tokens: Arc<Vec<SetupToken>> = Arc::new(
        mailer
            .sent()
            .iter()
            .map(|email| SetupToken::from_submitted(email.token.expose_secret()))
            .collect(),
    );
    let confirms = run(users, concurrency, {
        let (service, tokens) = (service.clone(), tokens.clone());
        move |i| {
            let (service, tokens) = (service.clone(), tokens.clone());
            async move {
                let password = NewPassword::new("correct-horse-battery");
                service.confirm(&tokens[i - 1], &password).await.unwrap();
            }
        }
    })
    .await;

    println!("{users} users, {concurrency} at a time, pool of {concurrency} connections");
    report("request (load + issue)", &requests);
    report("confirm (find_by_token + complete)", &confirms);

    pool.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}

/// Runs `operation(1..=count)` with at most `concurrency` in flight; returns each latency and
/// the wall time.
async fn run<F, Fut>(count: usize, concurrency: usize, operation: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let operation = Arc::new(operation);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (operation, next) = (operation.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i > count {
                        return latencies;
                    }
                    let began = Instant::now();
                    operation(i).await;
                    latencies.push(began.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    (latencies, started.elapsed())
}

fn report(what: &str, (latencies, wall): &(Vec<Duration>, Duration)) {
    let mut sorted = latencies.clone();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: {:.0}/s, p50 {:?}, p99 {:?}, max {:?}",
        sorted.len() as f64 / wall.as_secs_f64(),
        at(0.5),
        at(0.99),
        sorted[sorted.len() - 1],
    );
}
