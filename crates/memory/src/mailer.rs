//! Mailers that deliver nothing: one records emails for tests, one prints them for demos.

use std::io::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use password_setup_core::{MailError, Mailer, SetupEmail};
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Default)]
struct Outbox {
    sent: Vec<SetupEmail>,
    attempted: Vec<SetupEmail>,
    failures_left: usize,
    failing: bool,
}

/// Keeps every email it is asked to send, or fails on demand.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    outbox: Mutex<Outbox>,
}

/// The error a [`RecordingMailer`] fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatedMailFailure;

impl std::fmt::Display for SimulatedMailFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated mail transport failure")
    }
}

impl std::error::Error for SimulatedMailFailure {}

impl RecordingMailer {
    /// A mailer that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails the next `count` sends, then works again.
    pub fn fail_next(&self, count: usize) {
        self.lock().failures_left = count;
    }

    /// Fails every send until called with `false`.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// Every email accepted so far, oldest first.
    pub fn sent(&self) -> Vec<SetupEmail> {
        self.lock().sent.clone()
    }

    /// The most recently accepted email.
    pub fn last(&self) -> Option<SetupEmail> {
        self.lock().sent.last().cloned()
    }

    /// Every email it was asked to send, failed ones included, oldest first.
    pub fn attempted(&self) -> Vec<SetupEmail> {
        self.lock().attempted.clone()
    }

    /// Number of emails accepted so far.
    pub fn count(&self) -> usize {
        self.lock().sent.len()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError> {
        let mut outbox = self.lock();
        outbox.attempted.push(email.clone());
        if outbox.failing {
            return Err(MailError::new(SimulatedMailFailure));
        }
        if outbox.failures_left > 0 {
            outbox.failures_left -= 1;
            return Err(MailError::new(SimulatedMailFailure));
        }
        outbox.sent.push(email.clone());
        Ok(())
    }
}

/// Prints each email, link included, to standard output.
///
/// For demos on a developer's machine only: the link is a secret. It is never chosen
/// automatically; a server must name it explicitly.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleMailer;

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError> {
        let expires = email.expires_at.format(&Rfc3339).map_err(MailError::new)?;
        let text = format!(
            "\n--- set-password email (demo mailer: not sent) ---\n\
             To: {}\n\
             Set your password: {}\n\
             The link works until {expires}; a newer request replaces it.\n\
             ---------------------------------------------------\n",
            email.account.email.as_str(),
            email.link.expose_secret(),
        );
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(MailError::new)
    }
}
