//! [`PgUserStore`]: the [`UserStore`] over a PostgreSQL pool, plus what an operator calls on
//! it (migrations, the users-table helper, cleanup).
//!
//! Each trait method binds its arguments to one prepared statement from `statements.rs` and
//! turns the row it gets back into the core's types. Ids that cannot belong to the configured
//! key type are answered without asking the database (no such user), and every driver error
//! becomes a [`StoreError`], which the service answers with 501.

use std::sync::Arc;

use async_trait::async_trait;
use password_setup_core::{
    Account, CompleteOutcome, EmailAddress, IssueOutcome, IssueUpdate, MailHistory, PasswordHash,
    PendingSetup, Revision, SetupPolicy, SetupRecord, SetupState, StoreError, TokenDigest, UserId,
    UserStore,
};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row as _};
use time::OffsetDateTime;

use crate::config::{PgStoreConfig, ValidNames};
use crate::error::{Error, Result};
use crate::migrate;
use crate::statements::Statements;

/// A [`UserStore`] in PostgreSQL. Cheap to clone: clones share the pool and the statements.
///
/// See the [crate documentation](crate) for set-up, round trips and cleanup.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
    names: Arc<ValidNames>,
    statements: Arc<Statements>,
}

impl PgUserStore {
    /// A store over `pool`, attached as `config` describes. Does no I/O: call
    /// [`Self::migrate`] before first use.
    ///
    /// # Errors
    /// [`Error::InvalidIdentifier`] if a configured name is not a plain identifier.
    pub fn new(pool: PgPool, config: &PgStoreConfig) -> Result<Self> {
        let names = config.validate()?;
        let statements = Statements::new(&names);
        Ok(Self {
            pool,
            names: Arc::new(names),
            statements: Arc::new(statements),
        })
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Checks that the users table fits the configuration, then creates or upgrades the
    /// store's own tables. Safe to run on every start, from any number of instances at once.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] if the users table is missing or does not fit;
    /// [`Error::Database`] if the database fails.
    pub async fn migrate(&self) -> Result<()> {
        migrate::check_users_table(&self.pool, &self.names).await?;
        migrate::run(&self.pool, &self.names).await
    }

    /// Creates the configured users table, if it does not exist yet, with the configured id
    /// type, a `NOT NULL` email and a nullable password hash. For fresh databases and demos;
    /// a real backend owns its users table and its other columns.
    ///
    /// # Errors
    /// [`Error::Database`] if the database fails.
    pub async fn create_users_table(&self) -> Result<()> {
        migrate::create_users_table(&self.pool, &self.names).await
    }

    /// Deletes the pending rows that no longer matter at `now`: the link, if any, has expired,
    /// and the last email is older than `policy.cap_window`, so neither the cooldown nor the
    /// cap can depend on it. Pass the policy the service runs with. Returns how many rows were
    /// deleted.
    ///
    /// One indexed `DELETE`; schedule it as often as you like (hourly is plenty). Skipping it
    /// never affects correctness, only the table's size.
    ///
    /// # Errors
    /// [`Error::Database`] if the database fails; nothing was deleted then.
    pub async fn purge_expired(&self, now: OffsetDateTime, policy: &SetupPolicy) -> Result<u64> {
        let history_cutoff = now - policy.cap_window;
        let deleted = sqlx::query(AssertSqlSafe(self.statements.purge.clone()))
            .bind(history_cutoff)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// The id as bound into statements, or `None` if it cannot name a user of this table.
    fn bind_id(&self, user: &UserId) -> Option<String> {
        self.names.id_type.bind_text(user)
    }
}

fn store_error(error: impl Into<Error>) -> StoreError {
    StoreError::new(error.into())
}

/// Builds the record from a row of the `load` or `find_by_token` statement.
fn record_from_row(row: &PgRow) -> Result<SetupRecord> {
    let digest: Option<Vec<u8>> = row.try_get("token_digest")?;
    let issued_at: Option<OffsetDateTime> = row.try_get("issued_at")?;
    let expires_at: Option<OffsetDateTime> = row.try_get("expires_at")?;
    let has_password: bool = row.try_get("has_password")?;

    let state = match (has_password, digest, issued_at, expires_at) {
        (true, ..) => SetupState::PasswordSet,
        (false, Some(digest), Some(issued_at), Some(expires_at)) => {
            SetupState::Pending(PendingSetup {
                digest: TokenDigest::try_from(digest.as_slice())
                    .map_err(|_| Error::CorruptRow("token digest is not 32 bytes"))?,
                issued_at,
                expires_at,
            })
        }
        (false, None, None, None) => SetupState::NoPassword,
        (false, ..) => return Err(Error::CorruptRow("token columns are partly NULL")),
    };
    let revision: i64 = row.try_get("revision")?;

    Ok(SetupRecord {
        account: Account {
            id: UserId::new(row.try_get::<String, _>("user_id")?),
            email: EmailAddress::new(row.try_get::<String, _>("email")?),
        },
        state,
        history: MailHistory::new(row.try_get("sent_at")?),
        revision: Revision(
            u64::try_from(revision).map_err(|_| Error::CorruptRow("negative revision"))?,
        ),
    })
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn load(&self, user: &UserId) -> Result<Option<SetupRecord>, StoreError> {
        // FIXME: sqlx 0.9 pings every connection as it returns to the pool and has no setting
        // to skip that, so each statement of this store costs a second round trip in the
        // background (row 2 of BENCHMARKS.md measures it). Avoiding it needs the pool's help
        // or one connection held across a request's calls, which the port does not model.
        let Some(id) = self.bind_id(user) else {
            return Ok(None);
        };
        let row = sqlx::query(AssertSqlSafe(self.statements.load.clone()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref()
            .map(record_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn issue(
        &self,
        user: &UserId,
        expected: Revision,
        update: IssueUpdate,
    ) -> Result<IssueOutcome, StoreError> {
        let (Some(id), Ok(expected)) = (self.bind_id(user), i64::try_from(expected.0)) else {
            // No row of this table can carry that id or that revision.
            return Ok(IssueOutcome::Conflict);
        };
        let written: i64 = sqlx::query_scalar(AssertSqlSafe(self.statements.issue.clone()))
            .bind(id)
            .bind(expected)
            .bind(update.pending.digest.as_bytes().as_slice())
            .bind(update.pending.issued_at)
            .bind(update.pending.expires_at)
            .bind(update.history.sends())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(if written == 1 {
            IssueOutcome::Issued
        } else {
            IssueOutcome::Conflict
        })
    }

    async fn withdraw(&self, user: &UserId, digest: &TokenDigest) -> Result<(), StoreError> {
        let Some(id) = self.bind_id(user) else {
            return Ok(());
        };
        sqlx::query(AssertSqlSafe(self.statements.withdraw.clone()))
            .bind(id)
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<SetupRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.statements.find_by_token.clone()))
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref()
            .map(record_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn complete(
        &self,
        user: &UserId,
        digest: &TokenDigest,
        hash: &PasswordHash,
    ) -> Result<CompleteOutcome, StoreError> {
        let Some(id) = self.bind_id(user) else {
            return Ok(CompleteOutcome::TokenGone);
        };
        let row = sqlx::query(AssertSqlSafe(self.statements.complete.clone()))
            .bind(id)
            .bind(digest.as_bytes().as_slice())
            .bind(hash.as_phc())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let completed: bool = row.try_get("completed").map_err(store_error)?;
        let password_set: bool = row.try_get("password_set").map_err(store_error)?;
        Ok(match (completed, password_set) {
            (true, _) => CompleteOutcome::Completed,
            (false, true) => CompleteOutcome::PasswordAlreadySet,
            (false, false) => CompleteOutcome::TokenGone,
        })
    }
}
