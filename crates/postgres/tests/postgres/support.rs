//! A throwaway schema per test in the database named by `DATABASE_URL`, and fixtures that
//! attach the store to users tables of each id type.
//!
//! Every test creates its own schema, so tests run in parallel and never see each other's
//! rows; [`TestDb::finish`] drops it. Schemas left behind by a killed run are dropped by the
//! next run once they are an hour old.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use password_setup_core::{PasswordHash, UserId, UserStore};
use password_setup_postgres::{PgStoreConfig, PgUserStore, UserIdType};
use password_setup_testkit::conformance::{InitialHash, StoreFixture};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

/// Where tests find PostgreSQL when `DATABASE_URL` is not set.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of every test schema, so leftovers can be recognised.
const SCHEMA_PREFIX: &str = "pstest_";

pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// One test's schema.
pub(crate) struct TestDb {
    pub(crate) admin: PgPool,
    pub(crate) schema: String,
    options: PgConnectOptions,
}

impl TestDb {
    /// Connects and creates a fresh schema. Fails the test loudly when the database cannot be
    /// reached: these tests never pass without having run.
    pub(crate) async fn new() -> Self {
        let url = database_url();
        let options = PgConnectOptions::from_str(&url).unwrap_or_else(|error| {
            panic!("DATABASE_URL {url:?} is not a PostgreSQL URL: {error}")
        });
        let admin = match PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!(
                    "CI: PostgreSQL at DATABASE_URL={url} is unreachable ({error}); \
                     the CI script must start it"
                )
            }
            Err(error) => panic!(
                "\n\n*** PostgreSQL tests cannot run: no database at {url} ({error}).\n\
                 *** Start PostgreSQL or point DATABASE_URL at one (the user needs CREATE on \
                 the database).\n\n"
            ),
        };

        drop_stale_schemas(&admin).await;
        let schema: String =
            sqlx::query_scalar("SELECT $1 || replace(gen_random_uuid()::text, '-', '')")
                .bind(SCHEMA_PREFIX)
                .fetch_one(&admin)
                .await
                .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema}; COMMENT ON SCHEMA {schema} IS '{}'",
            "created for a password-setup test"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {schema}.created (at timestamptz NOT NULL DEFAULT now())"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.created DEFAULT VALUES"
        )))
        .execute(&admin)
        .await
        .unwrap();

        Self {
            admin,
            options: options.options([("search_path", schema.as_str())]),
            schema,
        }
    }

    /// Connection options whose search path is this test's schema.
    pub(crate) fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A new pool of its own, on this test's schema. Small, because tests share the server's
    /// connection limit with each other, and the widest race needs four connections per pool.
    pub(crate) async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.options())
            .await
            .unwrap()
    }

    /// Runs a statement on the admin pool, in this test's schema.
    pub(crate) async fn execute(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SET search_path TO {}; {sql}",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// Runs a statement on the admin pool, in this test's schema, and hands back its result.
    pub(crate) async fn try_execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SET search_path TO {}; {sql}",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .map(drop)
    }

    /// Drops the schema and everything in it.
    pub(crate) async fn finish(self) {
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .unwrap();
        self.admin.close().await;
    }
}

/// Drops test schemas an hour old or older, and roles of test schemas that are gone: what a
/// killed run left behind.
async fn drop_stale_schemas(admin: &PgPool) {
    let orphaned_roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'pstest\\_%\\_writer' \
         AND NOT EXISTS (SELECT 1 FROM pg_namespace \
                         WHERE nspname = left(rolname, length(rolname) - length('_writer')))",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    for role in orphaned_roles {
        // Another run may drop it at the same moment; that is fine.
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP OWNED BY {role}; DROP ROLE {role}"
        )))
        .execute(admin)
        .await;
    }

    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'created' \
         WHERE n.nspname LIKE 'pstest\\_%'",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    for schema in stale {
        let old: Option<bool> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT min(at) < now() - interval '1 hour' FROM {schema}.created"
        )))
        .fetch_one(admin)
        .await
        .ok()
        .flatten();
        if old == Some(true) {
            // Another run may drop it at the same moment; that is fine.
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(admin)
            .await;
        }
    }
}

/// Which users table a fixture attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsersTable {
    /// The default `users` table made by `create_users_table`, text ids.
    FreshDefault,
    /// An existing `accounts` table keyed by `uuid`, with other names and columns.
    ExistingUuid,
    /// An existing `members` table keyed by an identity `bigint`.
    ExistingBigInt,
}

/// The store attached to one kind of users table in a test schema.
pub(crate) struct PgFixture {
    pub(crate) db: TestDb,
    pub(crate) config: PgStoreConfig,
    pub(crate) table: UsersTable,
    pub(crate) data: PgPool,
    next_id: AtomicU64,
}

impl PgFixture {
    pub(crate) async fn new(table: UsersTable) -> Self {
        let db = TestDb::new().await;
        let data = db.pool().await;
        let config = match table {
            UsersTable::FreshDefault => PgStoreConfig::default(),
            UsersTable::ExistingUuid => {
                db.execute(
                    "CREATE TABLE accounts ( \
                         account_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
                         display_name text, \
                         email_address varchar(320) NOT NULL UNIQUE, \
                         pw_hash text, \
                         created_at timestamptz NOT NULL DEFAULT now())",
                )
                .await;
                PgStoreConfig::new()
                    .users_table(format!("{}.accounts", db.schema))
                    .id_column("account_id", UserIdType::Uuid)
                    .email_column("email_address")
                    .password_hash_column("pw_hash")
                    .pending_table(format!("{}.account_password_setup", db.schema))
            }
            UsersTable::ExistingBigInt => {
                db.execute(
                    "CREATE TABLE members ( \
                         member_no bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                         mail text NOT NULL, \
                         secret text)",
                )
                .await;
                PgStoreConfig::new()
                    .users_table("members")
                    .id_column("member_no", UserIdType::BigInt)
                    .email_column("mail")
                    .password_hash_column("secret")
            }
        };
        let store = PgUserStore::new(data.clone(), &config).unwrap();
        if table == UsersTable::FreshDefault {
            store.create_users_table().await.unwrap();
        }
        store.migrate().await.unwrap();
        Self {
            db,
            config,
            table,
            data,
            next_id: AtomicU64::new(1),
        }
    }

    /// A store on a new pool of its own.
    pub(crate) async fn pg_store(&self) -> PgUserStore {
        PgUserStore::new(self.db.pool().await, &self.config).unwrap()
    }

    /// The pending table, qualified.
    pub(crate) fn pending_table(&self) -> String {
        match self.table {
            UsersTable::ExistingUuid => format!("{}.account_password_setup", self.db.schema),
            _ => format!("{}.password_setup_pending", self.db.schema),
        }
    }

    /// How many pending rows `user` has, and how many with an outstanding token.
    pub(crate) async fn pending_rows(&self, user: &UserId) -> (i64, i64) {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(*), count(token_digest) FROM {} WHERE user_id::text = $1",
            self.pending_table()
        )))
        .bind(user.as_str())
        .fetch_one(&self.data)
        .await
        .unwrap()
    }

    fn users_sql(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        // (table, id, email, hash)
        match self.table {
            UsersTable::FreshDefault => ("users", "id", "email", "password_hash"),
            UsersTable::ExistingUuid => ("accounts", "account_id", "email_address", "pw_hash"),
            UsersTable::ExistingBigInt => ("members", "member_no", "mail", "secret"),
        }
    }

    pub(crate) async fn finish(self) {
        self.data.close().await;
        self.db.finish().await;
    }
}

#[async_trait]
impl StoreFixture for PgFixture {
    async fn store(&self) -> Arc<dyn UserStore> {
        Arc::new(self.pg_store().await)
    }

    async fn create_user(&self, email: &str, hash: InitialHash) -> UserId {
        let hash = match hash {
            InitialHash::Null => None,
            InitialHash::Empty => Some(String::new()),
            InitialHash::Set(hash) => Some(hash.as_phc().to_owned()),
        };
        let (table, id, email_column, hash_column) = self.users_sql();
        let id_text: String = match self.table {
            UsersTable::FreshDefault => {
                let new_id = format!("user-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "INSERT INTO {table} ({id}, {email_column}, {hash_column}) \
                     VALUES ($3, $1, $2) RETURNING {id}::text"
                )))
                .bind(email)
                .bind(hash)
                .bind(new_id)
                .fetch_one(&self.data)
                .await
                .unwrap()
            }
            _ => sqlx::query_scalar(AssertSqlSafe(format!(
                "INSERT INTO {table} ({email_column}, {hash_column}) VALUES ($1, $2) \
                 RETURNING {id}::text"
            )))
            .bind(email)
            .bind(hash)
            .fetch_one(&self.data)
            .await
            .unwrap(),
        };
        UserId::new(id_text)
    }

    async fn set_password_elsewhere(&self, user: &UserId, hash: &PasswordHash) {
        let (table, id, _, hash_column) = self.users_sql();
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} SET {hash_column} = $2 WHERE {id}::text = $1"
        )))
        .bind(user.as_str())
        .bind(hash.as_phc())
        .execute(&self.data)
        .await
        .unwrap();
        assert_eq!(updated.rows_affected(), 1, "no user {user}");
    }

    async fn stored_hash(&self, user: &UserId) -> Option<String> {
        let (table, id, _, hash_column) = self.users_sql();
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {hash_column} FROM {table} WHERE {id}::text = $1"
        )))
        .bind(user.as_str())
        .fetch_one(&self.data)
        .await
        .unwrap()
    }
}
