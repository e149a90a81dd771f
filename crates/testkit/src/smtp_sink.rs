//! A real SMTP server on loopback for integration tests: Debian's `python3-aiosmtpd`, run as a
//! child process, storing every message it accepts as a file the test can read.
//!
//! The server script ships inside this crate and is written to a temporary folder at start,
//! so tests of any crate can use it. Under `CI=true` a missing aiosmtpd fails the test; elsewhere
//! [`MailSink::start`] returns `None` after saying so on standard error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc,
    reason = "test support: a broken test environment should stop the test at once"
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("smtp_sink.py");

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
        let script = directory.join("smtp_sink.py");
        std::fs::write(&script, SCRIPT).unwrap();
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
