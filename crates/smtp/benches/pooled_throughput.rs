//! Messages per second over one pooled SMTP connection, against a loopback peer that delays
//! its ACKs as busy mail servers do, and for reference against one that does not.
//!
//! Three ways of sending, measured in one run: lettre's own pooled transport (Nagle's
//! algorithm on), this crate's mailer with `TCP_NODELAY` turned off (the same bytes through
//! the same code as the default), and this crate's mailer as shipped. The mailer rows go
//! through the core service, so they include issuing the token and rendering the templates.
//!
//! Run with `cargo bench -p password-setup-smtp --bench pooled_throughput`; set
//! `PASSWORD_SETUP_BENCH_MESSAGES` to change the number of messages per row (default 120).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/peer.rs"]
mod peer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use password_setup_core::{EmailAddress, HashingParams, PasswordSetup, SetupPolicy, UserId};
use password_setup_memory::{BearerTokenTable, MemoryUserStore};
use password_setup_smtp::SmtpMailer;
use password_setup_testkit::ManualClock;
use peer::{Behaviour, ScriptedPeer};
use time::macros::datetime;

/// Messages per second of `count` sequential sends through lettre's pooled transport.
async fn stock_lettre(url: &str, count: usize) -> f64 {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .unwrap()
        .pool_config(PoolConfig::new().max_size(1))
        .build();
    let from: Mailbox = "Example Accounts <accounts@example.test>".parse().unwrap();
    let body_text =
        "Open https://accounts.example.test/set-password?token=AAAA to set it.\n".repeat(12);
    let body_html = format!("<p>{}</p>", body_text.repeat(3));
    let message = Message::builder()
        .from(from)
        .to("user@example.test".parse().unwrap())
        .subject("Set the password for your account")
        .multipart(MultiPart::alternative_plain_html(body_text, body_html))
        .unwrap();

    transport.send(message.clone()).await.unwrap();
    let started = Instant::now();
    for _ in 0..count {
        transport.send(message.clone()).await.unwrap();
    }
    per_second(count, started.elapsed())
}

/// Messages per second of `count` sequential requests through the service and this crate's
/// mailer with one pooled connection.
async fn service_with_mailer(url: &str, nodelay: bool, count: usize) -> f64 {
    let mailer = SmtpMailer::builder(url)
        .from("Example Accounts <accounts@example.test>")
        .pool_size(1)
        .tcp_nodelay(nodelay)
        .build()
        .unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let service = PasswordSetup::builder()
        .store(store.clone())
        .mailer(Arc::new(mailer))
        .identity_provider(Arc::new(BearerTokenTable::new()))
        .clock(Arc::new(ManualClock::new(datetime!(2026-03-01 12:00 UTC))))
        .hashing_params(HashingParams::INSECURE_FOR_TESTS)
        .policy(SetupPolicy::default())
        .public_base_url("https://accounts.example.test")
        .build()
        .unwrap();
    let users: Vec<_> = (0..=count)
        .map(|n| {
            let user = UserId::new(format!("user-{n}"));
            store.insert_user(
                user.clone(),
                EmailAddress::new(format!("user-{n}@example.test")),
            );
            user
        })
        .collect();

    service.request_for(&users[count]).await.unwrap();
    let started = Instant::now();
    for user in &users[..count] {
        service.request_for(user).await.unwrap();
    }
    per_second(count, started.elapsed())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let count = std::env::var("PASSWORD_SETUP_BENCH_MESSAGES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(120);
    for (behaviour, what) in [
        (Behaviour::AcceptWithDelayedAcks, "peer delays its ACKs"),
        (Behaviour::Accept, "peer ACKs as the kernel likes"),
    ] {
        let peer = ScriptedPeer::start(behaviour).await;
        let url = peer.url();

        let stock = stock_lettre(&url, count).await;
        let nagle = service_with_mailer(&url, false, count).await;
        let nodelay = service_with_mailer(&url, true, count).await;

        println!("{count} messages per row, one pooled connection, {what}:");
        let rows = [
            ("lettre 0.11 pooled transport (before)", stock),
            ("SmtpMailer, TCP_NODELAY off", nagle),
            ("SmtpMailer, TCP_NODELAY on (after)", nodelay),
        ];
        for (name, rate) in rows {
            println!("  {name:<40} {rate:>8.0} messages/s");
        }
        println!("  after / before: {:.1}x", nodelay / stock);
        println!("  after / TCP_NODELAY off: {:.1}x\n", nodelay / nagle);
    }
}
