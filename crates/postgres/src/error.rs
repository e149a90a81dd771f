//! The adapter's own errors: bad configuration, a database that does not fit it, and driver
//! failures. Trait methods hand these to the service wrapped in a [`StoreError`].
//!
//! [`StoreError`]: password_setup_core::StoreError

/// Result of the adapter's own operations (construction, migration, cleanup).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured table or column name is not a plain identifier.
    #[error("invalid {setting} {value:?}: {reason}")]
    InvalidIdentifier {
        /// Which setting of [`PgStoreConfig`](crate::PgStoreConfig) holds the name.
        setting: &'static str,
        /// The name as configured.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The users table is missing, or lacks a configured column, or a column has a type the
    /// configuration does not expect.
    #[error("the database does not match the store configuration: {0}")]
    SchemaMismatch(String),
    /// A value read from the database is out of range for the domain (a negative revision, a
    /// digest of the wrong length). Only a row written outside the store can cause it.
    #[error("unexpected stored value: {0}")]
    CorruptRow(&'static str),
    /// The database could not be reached or refused a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}
