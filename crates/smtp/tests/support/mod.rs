//! Test support: a real SMTP server on loopback (Debian's `python3-aiosmtpd`, run as a child
//! process), peers that refuse or stall, a service wired to the SMTP mailer, and helpers to
//! read what arrived.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod peer;

pub use password_setup_testkit::smtp_sink::{MailSink, SinkMode};

use std::sync::Arc;
use std::time::Duration;

use password_setup_core::{
    BearerCredential, EmailAddress, HashingParams, Mailer, NewPassword, PasswordSetup, SetupToken,
    UserId,
};
use password_setup_memory::{BearerTokenTable, MemoryUserStore};
use password_setup_smtp::SmtpMailer;
use password_setup_testkit::ManualClock;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// A loopback port with nothing listening: connecting is refused.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A peer that accepts connections and never says a word. Keeps them open until dropped.
pub async fn silent_peer() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, task)
}

/// The public base URL the test services build links from.
pub const BASE_URL: &str = "https://accounts.example.test/app";

/// Where the test clock starts: late in a day, to show the expiry crossing midnight.
pub const START: OffsetDateTime = time::macros::datetime!(2026-03-01 23:59:30 UTC);

/// The core service over in-memory adapters and a manual clock, mailing through `mailer`.
pub struct Flow {
    pub service: PasswordSetup,
    pub store: Arc<MemoryUserStore>,
    pub identity: Arc<BearerTokenTable>,
    pub clock: Arc<ManualClock>,
}

impl Flow {
    pub fn new(mailer: SmtpMailer) -> Self {
        Self::with_mailer(Arc::new(mailer))
    }

    pub fn with_mailer(mailer: Arc<dyn Mailer>) -> Self {
        let store = Arc::new(MemoryUserStore::new());
        let identity = Arc::new(BearerTokenTable::new());
        let clock = Arc::new(ManualClock::new(START));
        let service = PasswordSetup::builder()
            .store(store.clone())
            .mailer(mailer)
            .identity_provider(identity.clone())
            .clock(clock.clone())
            .hashing_params(HashingParams::INSECURE_FOR_TESTS)
            .public_base_url(BASE_URL)
            .build()
            .unwrap();
        Self {
            service,
            store,
            identity,
            clock,
        }
    }

    /// Adds a user without a password; returns their bearer credential.
    pub fn add_user(&self, id: &str, email: &str) -> BearerCredential {
        let user = UserId::new(id);
        self.store
            .insert_user(user.clone(), EmailAddress::new(email));
        let credential = format!("bearer-{id}");
        self.identity.insert(credential.clone(), user);
        BearerCredential::new(credential)
    }

    /// Confirms with a token read from an email.
    pub async fn confirm(&self, token: &str, password: &str) -> password_setup_core::Result<()> {
        self.service
            .confirm(
                &SetupToken::from_submitted(token),
                &NewPassword::new(password),
            )
            .await
            .map(|_| ())
    }
}

/// A mailer to `url` with short timeouts, so failure tests finish quickly.
pub fn mailer_builder(url: &str) -> password_setup_smtp::SmtpMailerBuilder {
    SmtpMailer::builder(url)
        .from("Example Accounts <accounts@example.test>")
        .connect_timeout(Duration::from_secs(2))
        .send_timeout(Duration::from_secs(2))
}

/// The link in a text body: the first line that starts with the base URL.
pub fn link_in(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with("https://"))
        .expect("a link in the text part")
        .to_owned()
}

/// The token in a setup link.
pub fn token_in(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    url.query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .expect("a token parameter")
}

/// Undoes the HTML escaping of the template engine, for comparing an HTML part with plain text.
pub fn html_unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
