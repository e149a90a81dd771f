//! Test support for applications and adapters built on password-setup.
//!
//! - [`ManualClock`]: time that moves only when a test says so.
//! - [`CountingHasher`]: real Argon2id hashing that counts its calls.
//! - [`mocks`]: mockall mocks of every port, for the error paths real adapters cannot produce
//!   on demand.
//! - `smtp_sink` (feature `smtp-sink`): a real SMTP server on loopback that keeps what it
//!   receives, for end-to-end tests of mail delivery.
//! - [`Harness`]: a service wired to in-memory adapters, a manual clock and cheap hashing, with
//!   helpers to add users and read the links that were mailed.
//! - [`conformance`]: the suite every [`UserStore`](password_setup_core::UserStore)
//!   implementation runs against the store contract.

mod clock;
pub mod conformance;
mod harness;
mod hasher;
pub mod mocks;
#[cfg(feature = "smtp-sink")]
pub mod smtp_sink;

pub use clock::ManualClock;
pub use harness::Harness;
pub use hasher::CountingHasher;
