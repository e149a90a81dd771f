//! In-memory adapters for the password-setup ports.
//!
//! - [`MemoryUserStore`]: a thread-safe user store with the full store contract, for tests,
//!   demos and single-process deployments. Its data is lost when the process ends.
//! - [`RecordingMailer`] keeps every email for inspection and can be told to fail;
//!   [`ConsoleMailer`] prints each email, link included, to standard output, for demos only.
//! - [`SystemClock`]: the real time.
//! - [`BearerTokenTable`]: an identity provider backed by a fixed table of bearer tokens.

mod clock;
mod identity;
mod mailer;
mod store;

pub use clock::SystemClock;
pub use identity::BearerTokenTable;
pub use mailer::{ConsoleMailer, RecordingMailer, SimulatedMailFailure};
pub use store::MemoryUserStore;
