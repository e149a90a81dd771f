//! Test support: a real SMTP server on loopback (Debian's `python3-aiosmtpd`, run as a child
//! process), peers that refuse or stall, a service wired to the SMTP mailer, and helpers to
//! read what arrived.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod peer;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use password_setup_core::{
    BearerCredential, EmailAddress, HashingParams, Mailer, NewPassword, PasswordSetup, SetupToken,
    UserId,
};
use password_setup_memory::{BearerTokenTable, MemoryUserStore};
use password_setup_smtp::SmtpMailer;
use password_setup_testkit::ManualClock;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// What the loopback server does with a message.
#[derive(Debug, Clone, Copy)]
pub enum SinkMode {
    /// Accepts every message and stores it.
    Accept,
    /// Answers every `RCPT TO` with 550.
    RejectRecipient,
}

/// An aiosmtpd server on a free loopback port, stopped when dropped.
pub struct MailSink {
    child: Child,
    port: u16,
    directory: PathBuf,
}

/// Where the Python with aiosmtpd lives: `PASSWORD_SETUP_TEST_PYTHON`, else Debian's.
fn python() -> String {
    std::env::var("PASSWORD_SETUP_TEST_PYTHON").unwrap_or_else(|_| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

fn fresh_directory() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let directory = std::env::temp_dir().join(format!(
        "password-setup-smtp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

impl MailSink {
    /// Starts a server, or returns `None` with a message when aiosmtpd is missing. Under
    /// `CI=true` a missing server fails the test instead.
    pub fn start(mode: SinkMode) -> Option<Self> {
        Self::start_on(mode, 0)
    }

    /// Like [`Self::start`], on a given port (0 for any free one).
    pub fn start_on(mode: SinkMode, port: u16) -> Option<Self> {
        let python = python();
        let has_aiosmtpd = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !has_aiosmtpd {
            let message = format!(
                "{python} cannot import aiosmtpd: install Debian's python3-aiosmtpd \
                 (or set PASSWORD_SETUP_TEST_PYTHON) to run the SMTP tests"
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{message}");
            }
            eprintln!("SKIPPED: {message}");
            return None;
        }

        let directory = fresh_directory();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mode = match mode {
            SinkMode::Accept => "accept",
            SinkMode::RejectRecipient => "reject-recipient",
        };
        let mut child = Command::new(&python)
            .arg(script)
            .arg(&directory)
            .arg(mode)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let port = first_line.trim().parse().expect("the sink prints its port");
        Some(Self {
            child,
            port,
            directory,
        })
    }

    /// `smtp://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages stored so far, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<_> = std::fs::read_dir(&self.directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| std::fs::read(path).unwrap())
            .collect()
    }

    /// The envelope recipients of each stored message, oldest first.
    pub fn envelope_recipients(&self) -> Vec<Vec<String>> {
        let mut paths: Vec<_> = std::fs::read_dir(&self.directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "envelope"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                text.lines().skip(1).map(str::to_owned).collect()
            })
            .collect()
    }

    /// Waits until `count` messages are stored (the server stores before it replies, so this
    /// normally returns at once).
    pub fn wait_for(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

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
