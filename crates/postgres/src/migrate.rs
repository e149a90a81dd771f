//! The store's schema, as numbered migrations applied from code.
//!
//! The migrations create what the store owns: the pending table and its indexes, and the
//! trigger on the users table that drops a link when a password is written elsewhere (unless
//! configured off). They run in one transaction that first takes an advisory lock derived
//! from the pending table's name, so instances starting together apply each migration once,
//! and a second run finds every version recorded and does nothing. Creating a users table for
//! a fresh database takes a lock of its own the same way. The users table's data is never
//! changed here.

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row as _};

use crate::config::ValidNames;
use crate::error::{Error, Result};

/// One schema change. Applied migrations are never edited; changes come as new versions.
struct Migration {
    version: i32,
    description: &'static str,
    sql: fn(&ValidNames) -> String,
}

/// Every migration, in order.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "pending tokens and mail history",
    sql: create_pending_table,
}];

/// Version 1: one row per user who was ever sent a link and whose history still matters.
///
/// The token columns are all NULL when no link is outstanding; `sent_at` stays sorted, so its
/// last element is the latest send, which `last_sent_at` keeps indexed for cleanup.
fn create_pending_table(names: &ValidNames) -> String {
    let pending = names.pending.quoted();
    let users = names.users.quoted();
    let id = &names.id;
    let id_type = names.id_type.sql_type();
    let purge_index = names.pending.bare_sibling("_last_sent_idx");
    format!(
        "CREATE TABLE {pending} ( \
             user_id {id_type} PRIMARY KEY REFERENCES {users} ({id}) ON DELETE CASCADE, \
             token_digest bytea UNIQUE CHECK (octet_length(token_digest) = 32), \
             issued_at timestamptz, \
             expires_at timestamptz, \
             sent_at timestamptz[] NOT NULL DEFAULT '{{}}', \
             last_sent_at timestamptz NOT NULL GENERATED ALWAYS AS \
                 (coalesce(sent_at[array_upper(sent_at, 1)], '-infinity')) STORED, \
             revision bigint NOT NULL CHECK (revision > 0), \
             CHECK ((token_digest IS NULL) = (issued_at IS NULL) \
                 AND (issued_at IS NULL) = (expires_at IS NULL)) \
         ); \
         CREATE INDEX {purge_index} ON {pending} (last_sent_at);"
    )
}

/// Checks that the users table has the configured columns with usable types.
pub(crate) async fn check_users_table(pool: &PgPool, names: &ValidNames) -> Result<()> {
    let rows = sqlx::query(
        "SELECT a.attname::text AS name, a.atttypid::regtype::text AS regtype, \
                t.typcategory::text AS category \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(names.users.quoted())
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Err(Error::SchemaMismatch(format!(
            "table {} not found (create it, or see create_users_table)",
            names.users.quoted()
        )));
    }

    let column = |quoted: &str| -> Result<(String, String)> {
        let wanted = quoted.trim_matches('"');
        for row in &rows {
            if row.try_get::<String, _>("name")? == wanted {
                return Ok((row.try_get("regtype")?, row.try_get("category")?));
            }
        }
        Err(Error::SchemaMismatch(format!(
            "column {quoted} not found in {}",
            names.users.quoted()
        )))
    };

    let (id_type, id_category) = column(&names.id)?;
    if !names.id_type.accepts_column_type(&id_type, &id_category) {
        return Err(Error::SchemaMismatch(format!(
            "id column {} is {id_type}, which the configured {:?} ids do not fit",
            names.id, names.id_type
        )));
    }
    for text_column in [&names.email, &names.password_hash] {
        let (regtype, category) = column(text_column)?;
        if category != "S" {
            return Err(Error::SchemaMismatch(format!(
                "column {text_column} is {regtype}, not a text type"
            )));
        }
    }
    Ok(())
}

/// Applies every migration not yet recorded, in one transaction.
pub(crate) async fn run(pool: &PgPool, names: &ValidNames) -> Result<()> {
    let bookkeeping = names.pending.sibling("_migrations");

    let mut tx = pool.begin().await?;
    lock_for_this_transaction(&mut tx, &names.pending.quoted()).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {bookkeeping} ( \
             version integer PRIMARY KEY, \
             description text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now() \
         )"
    )))
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i32> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT version FROM {bookkeeping}")))
            .fetch_all(&mut *tx)
            .await?;

    let mut newly_applied = Vec::new();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        sqlx::raw_sql(AssertSqlSafe((migration.sql)(names)))
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {bookkeeping} (version, description) VALUES ($1, $2)"
        )))
        .bind(migration.version)
        .bind(migration.description)
        .execute(&mut *tx)
        .await?;
        newly_applied.push(migration);
    }

    sync_password_trigger(&mut tx, names).await?;

    tx.commit().await?;
    for migration in newly_applied {
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied password-setup migration"
        );
    }
    Ok(())
}

/// Installs, refreshes or removes the trigger that drops pending links when a password is
/// written to the users table (see [`PgStoreConfig::drop_links_on_password_write`]).
///
/// The trigger function runs with the rights of the role that migrated, since the code that
/// writes passwords may have none on the pending table; its search path is pinned and every
/// name in it is schema-qualified from the catalog, as a `SECURITY DEFINER` function needs.
/// A trigger that already watches the configured hash column is left in place, so that
/// starting an instance does not lock the users table against writes.
///
/// [`PgStoreConfig::drop_links_on_password_write`]: crate::PgStoreConfig::drop_links_on_password_write
async fn sync_password_trigger(tx: &mut PgConnection, names: &ValidNames) -> Result<()> {
    let users = names.users.quoted();
    let trigger = names.pending.bare_sibling("_drop_links");
    let schema: String = sqlx::query_scalar(
        "SELECT quote_ident(n.nspname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
    )
    .bind(names.pending.quoted())
    .fetch_one(&mut *tx)
    .await?;
    let function = format!("{schema}.{trigger}");
    // Whether the trigger exists, and whether it watches the configured hash column.
    let installed: Option<bool> = sqlx::query_scalar(
        "SELECT t.tgattr::int2[] = ARRAY[a.attnum] FROM pg_trigger t \
         LEFT JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attname = $3 \
         WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2",
    )
    .bind(&users)
    .bind(trigger.trim_matches('"'))
    .bind(names.password_hash.trim_matches('"'))
    .fetch_optional(&mut *tx)
    .await?
    .map(|watches_hash: Option<bool>| watches_hash.unwrap_or(false));

    if !names.drop_links_on_password_write {
        if installed.is_some() {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP TRIGGER {trigger} ON {users}; DROP FUNCTION IF EXISTS {function}()"
            )))
            .execute(&mut *tx)
            .await?;
        }
        return Ok(());
    }

    let pending = format!("{schema}.{}", names.pending.bare_sibling(""));
    let (id, hash) = (&names.id, &names.password_hash);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger \
         LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp \
         AS $body$ \
         BEGIN \
             UPDATE {pending} \
             SET token_digest = NULL, issued_at = NULL, expires_at = NULL, \
                 revision = revision + 1 \
             WHERE user_id = NEW.{id} AND token_digest IS NOT NULL; \
             RETURN NULL; \
         END \
         $body$"
    )))
    .execute(&mut *tx)
    .await?;
    if installed == Some(false) {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER {trigger} ON {users}")))
            .execute(&mut *tx)
            .await?;
    }
    if installed != Some(true) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TRIGGER {trigger} AFTER UPDATE OF {hash} ON {users} FOR EACH ROW \
             WHEN (coalesce(NEW.{hash}::text, '') <> '' \
                   AND NEW.{hash} IS DISTINCT FROM OLD.{hash}) \
             EXECUTE FUNCTION {function}()"
        )))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Takes the advisory lock named after `table` (its quoted name) until `tx` ends, so that
/// instances doing the same schema work at once take turns.
async fn lock_for_this_transaction(tx: &mut PgConnection, table: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(advisory_lock_key(table))
        .execute(tx)
        .await?;
    Ok(())
}

/// A stable 64-bit key for `pg_advisory_xact_lock`, from a table's quoted name (FNV-1a), so
/// work on different tables does not wait.
fn advisory_lock_key(name: &str) -> i64 {
    let hash = format!("password-setup:{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the users table unless it exists. `CREATE TABLE IF NOT EXISTS` alone is not safe
/// against itself: of two sessions creating the same table at once, one can fail on the
/// table's row type, so instances starting together take turns under a lock.
pub(crate) async fn create_users_table(pool: &PgPool, names: &ValidNames) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_for_this_transaction(&mut tx, &names.users.quoted()).await?;
    sqlx::query(AssertSqlSafe(create_users_table_sql(names)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The statement that creates a users table for a fresh database.
fn create_users_table_sql(names: &ValidNames) -> String {
    let users = names.users.quoted();
    let (id, email, hash) = (&names.id, &names.email, &names.password_hash);
    let id_type = names.id_type.sql_type();
    format!(
        "CREATE TABLE IF NOT EXISTS {users} ( \
             {id} {id_type} PRIMARY KEY, \
             {email} text NOT NULL, \
             {hash} text \
         )"
    )
}
