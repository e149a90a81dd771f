//! password-setup: let a user who has no password yet get one through an emailed link.
//!
//! This is the facade crate. It re-exports the domain ([`password_setup_core`]) at its root and
//! the adapters as modules behind cargo features:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `memory` (default) | [`memory`] | in-memory store, mailers, clock and identity provider |
//! | `postgres` | [`postgres`] | PostgreSQL user store (sqlx) over an existing users table |
//!
//! Start with [`PasswordSetup::builder`].

pub use password_setup_core::*;

/// In-memory adapters.
#[cfg(feature = "memory")]
pub use password_setup_memory as memory;

/// PostgreSQL user store.
#[cfg(feature = "postgres")]
pub use password_setup_postgres as postgres;
