//! The system clock: the one place real time enters the library.

use password_setup_core::Clock;
use time::OffsetDateTime;

/// Reads the operating system's clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "this is the Clock implementation"
    )]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
