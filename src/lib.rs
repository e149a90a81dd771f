//! password-setup: let a user who has no password yet get one through an emailed link.
//!
//! This is the facade crate. It re-exports the domain ([`password_setup_core`]) at its root and
//! the adapters as modules behind cargo features:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `memory` (default) | `memory` | in-memory store, mailers, clock and identity provider |
//! | `http` | `http` | framework-neutral routes, the set-password page, off-executor hashing |
//! | `jwt` | `jwt` | identity provider for HS256 JSON Web Tokens |
//! | `smtp` | `smtp` | SMTP mailer with English and German templates (lettre, rustls) |
//! | `postgres` | `postgres` | PostgreSQL user store (sqlx) over an existing users table |
//!
//! Start with [`PasswordSetup::builder`].

pub use password_setup_core::*;

/// In-memory adapters.
#[cfg(feature = "memory")]
pub use password_setup_memory as memory;

/// SMTP mailer.
#[cfg(feature = "smtp")]
pub use password_setup_smtp as smtp;

/// PostgreSQL user store.
#[cfg(feature = "postgres")]
pub use password_setup_postgres as postgres;

/// Framework-neutral HTTP endpoints.
#[cfg(feature = "http")]
pub use password_setup_http as http;

/// JSON Web Token identity provider.
#[cfg(feature = "jwt")]
pub use password_setup_jwt as jwt;

/// The README's examples, compiled and run as doctests so that they keep working as written.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
