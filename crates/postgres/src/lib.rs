//! A PostgreSQL [`UserStore`](password_setup_core::UserStore) for password-setup.
//!
//! [`PgUserStore`] attaches to the users table your backend already has, reading the id, the
//! email address and the password hash (NULL or empty: no password), and writing only the
//! hash, when a setup completes. Pending tokens and the mail history behind the resend
//! cooldown and the daily cap live in a table the store owns, keyed by the user's id, so every
//! instance of your service sees the same limits.
//!
//! # Set-up
//!
//! The store takes a [`sqlx::PgPool`] you configure (size, timeouts, TLS via your own `sqlx`
//! features); it never opens connections of its own. Give the pool a `statement_timeout` if a
//! stuck statement should fail fast: every failure, timeouts included, reaches the service as
//! a [`StoreError`](password_setup_core::StoreError) and answers 501.
//!
//! Attaching to an existing table: name it and its columns, and say which type the ids are
//! (`text`/`varchar`, `uuid`, or an integer type). Then run the migrations at start-up; they
//! check the users table and create the pending table, and are safe to run on every start and
//! from several instances at once.
//!
//! ```no_run
//! # async fn attach(pool: sqlx::PgPool) -> Result<(), password_setup_postgres::Error> {
//! use password_setup_postgres::{PgStoreConfig, PgUserStore, UserIdType};
//!
//! let config = PgStoreConfig::new()
//!     .users_table("accounts.users")
//!     .id_column("user_id", UserIdType::Uuid)
//!     .email_column("email_address")
//!     .password_hash_column("pw_hash")
//!     .pending_table("accounts.password_setup_pending");
//! let store = PgUserStore::new(pool, &config)?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A fresh database: the defaults describe `users (id text PRIMARY KEY, email text NOT NULL,
//! password_hash text)` and a pending table `password_setup_pending`;
//! [`PgUserStore::create_users_table`] creates that users table if it is missing.
//!
//! ```no_run
//! # async fn fresh(pool: sqlx::PgPool) -> Result<(), password_setup_postgres::Error> {
//! use password_setup_postgres::{PgStoreConfig, PgUserStore};
//!
//! let store = PgUserStore::new(pool, &PgStoreConfig::default())?;
//! store.create_users_table().await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The pending table references the users table (`ON DELETE CASCADE`), so deleting a user
//! deletes their pending state; the id column must therefore be the primary key or unique.
//! `migrate` also puts a trigger on the users table that drops a user's pending link whenever
//! any code writes a non-empty password hash, so a link from before a password was set stays
//! dead even if that password is cleared later; see
//! [`PgStoreConfig::drop_links_on_password_write`] to do without it.
//! Names are validated plain identifiers and always quoted. A NULL email reads as an empty
//! address: a mailer that checks addresses refuses it, the request answers 501, and the link
//! is taken back.
//!
//! The database role needs `SELECT` and `UPDATE` on the users table (the update writes only
//! the hash column; the row locks described below need the privilege too). For
//! [`PgUserStore::migrate`] it also needs `REFERENCES` and `TRIGGER` on the users table and
//! `CREATE` on the schema of the pending table. The trigger's function runs with the rights
//! of the role that migrated, so other code writing passwords needs no rights on the pending
//! table. Connections use whatever TLS your `sqlx` features enable (this crate turns
//! none on): add, for example, `sqlx = { version = "0.9", features = ["tls-rustls-ring"] }`
//! to your own manifest.
//!
//! # Round trips
//!
//! Each store call is one statement: one round trip the caller waits for, once the statement
//! is prepared on the connection (its first use on a new connection adds one for preparing).
//! So, in round trips a request or a confirm waits for:
//!
//! | operation | store calls |
//! |---|---|
//! | request that mails a link | 2 (`load`, `issue`) |
//! | request whose email fails | 3 (`load`, `issue`, `withdraw`) |
//! | request inside the cooldown, over the cap, or by a user with a password | 1 (`load`) |
//! | request overtaken by a concurrent one | 2 more per retry |
//! | confirm | 2 (`find_by_token`, `complete`) |
//! | confirm refused (unknown, used, expired token) | 1 (`find_by_token`) |
//!
//! The pool adds its own: sqlx pings every connection as it returns to the pool (in the
//! background, after the call has answered), and by default also before handing one out.
//! `PgPoolOptions::test_before_acquire(false)` removes that second, awaited ping; a dead
//! connection then fails one call with a 501 instead of being replaced silently. The
//! `round_trips` test counts all of this through a proxy.
//!
//! Statements never hold a transaction open across round trips, and a connection lost
//! mid-statement rolls that statement back, so a failure leaves nothing half-written.
//!
//! # Concurrency
//!
//! Every write is a single conditional statement; the comments in `src/statements.rs` say how
//! each one holds under READ COMMITTED. In short: requests write the pending row only under the
//! revision they read and only while a share lock on the user's row shows no password; a
//! confirm locks the user's row, consumes the token only if it is still the outstanding one,
//! and stores the hash in the same statement. Timestamps are stored to the microsecond,
//! rounded down, so an expiry read back is never later than the one issued.
//!
//! # Cleanup
//!
//! Rows stay after a link expires or is used, because the mail history in them feeds the
//! daily cap. [`PgUserStore::purge_expired`] deletes those that can no longer matter; call it
//! from any scheduler (hourly is plenty) with the policy your service runs with. It is one
//! `DELETE` backed by an index.
//!
//! ```no_run
//! # async fn hourly(
//! #     store: password_setup_postgres::PgUserStore,
//! #     service: password_setup_core::PasswordSetup,
//! #     clock: &dyn password_setup_core::Clock,
//! # ) -> Result<(), password_setup_postgres::Error> {
//! let deleted = store.purge_expired(clock.now(), service.policy()).await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod migrate;
mod statements;
mod store;

pub use config::{PgStoreConfig, UserIdType};
pub use error::{Error, Result};
pub use store::PgUserStore;
