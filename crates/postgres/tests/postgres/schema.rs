//! Migrations, the checks on the users table, and cleanup of rows that no longer matter.

use password_setup_core::{
    IssueOutcome, IssueUpdate, MailHistory, PendingSetup, SetupPolicy, TokenDigest, UserId,
    UserStore as _,
};
use password_setup_postgres::{Error, PgStoreConfig, PgUserStore, UserIdType};
use password_setup_testkit::Harness;
use password_setup_testkit::conformance::{InitialHash, StoreFixture as _};
use sqlx::AssertSqlSafe;
use time::Duration;

use crate::support::{PgFixture, TestDb, UsersTable};

/// `CREATE TABLE IF NOT EXISTS` alone can fail in one of two sessions creating the same table
/// at once; instances starting together on a fresh database must all come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_table_is_created_from_several_instances_at_once() {
    for _ in 0..5 {
        let db = TestDb::new().await;
        let config = PgStoreConfig::default();
        let mut racing = Vec::new();
        for _ in 0..8 {
            let store = PgUserStore::new(db.pool().await, &config).unwrap();
            racing.push(tokio::spawn(async move {
                store.create_users_table().await?;
                store.migrate().await
            }));
        }
        for task in racing {
            task.await
                .unwrap()
                .expect("every instance creates the table or finds it");
        }
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_twice_and_from_several_instances_at_once() {
    let db = TestDb::new().await;
    let config = PgStoreConfig::default();
    let first = PgUserStore::new(db.pool().await, &config).unwrap();
    first.create_users_table().await.unwrap();

    let mut racing = Vec::new();
    for _ in 0..4 {
        let store = PgUserStore::new(db.pool().await, &config).unwrap();
        racing.push(tokio::spawn(async move { store.migrate().await }));
    }
    for task in racing {
        task.await
            .unwrap()
            .expect("concurrent migrations all succeed");
    }
    first.migrate().await.expect("migrating again is a no-op");
    first
        .create_users_table()
        .await
        .expect("so is creating the users table again");

    let versions: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {}.password_setup_pending_migrations",
        db.schema
    )))
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert_eq!(versions, [1], "each migration is recorded once");
    db.finish().await;
}

#[tokio::test]
async fn migrate_refuses_a_users_table_that_does_not_fit() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE people (id uuid PRIMARY KEY, email text NOT NULL, hash bytea)")
        .await;
    let pool = db.pool().await;
    let attach = |config: PgStoreConfig| PgUserStore::new(pool.clone(), &config).unwrap();
    let people = || PgStoreConfig::new().users_table("people");

    let cases = [
        ("missing table", PgStoreConfig::new().users_table("nobody")),
        (
            "wrong id type",
            people().id_column("id", UserIdType::BigInt),
        ),
        (
            "text ids on uuid",
            people().id_column("id", UserIdType::Text),
        ),
        ("missing column", people().id_column("id", UserIdType::Uuid)),
        (
            "hash not text",
            people()
                .id_column("id", UserIdType::Uuid)
                .password_hash_column("hash"),
        ),
    ];
    for (what, config) in cases {
        let error = attach(config).migrate().await.unwrap_err();
        assert!(matches!(error, Error::SchemaMismatch(_)), "{what}: {error}");
    }
    let created: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'password_setup%'",
    )
    .bind(&db.schema)
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(created, 0, "a refused migration creates nothing");

    let hostile = PgStoreConfig::new().users_table("people; DROP TABLE people");
    assert!(matches!(
        PgUserStore::new(pool.clone(), &hostile),
        Err(Error::InvalidIdentifier { .. })
    ));
    pool.close().await;
    db.finish().await;
}

#[tokio::test]
async fn deleting_a_user_deletes_their_pending_state() {
    let fixture = PgFixture::new(UsersTable::ExistingBigInt).await;
    let store = fixture.pg_store().await;
    let user = fixture
        .create_user("gone@example.test", InitialHash::Null)
        .await;
    issue(&store, &user, 0xd1, Harness::START).await;
    assert_eq!(fixture.pending_rows(&user).await, (1, 1));

    fixture
        .db
        .execute(&format!(
            "DELETE FROM members WHERE member_no = {}",
            user.as_str()
        ))
        .await;
    assert_eq!(fixture.pending_rows(&user).await, (0, 0));
    drop(store);
    fixture.finish().await;
}

/// Issues a link for `user` at `at` straight through the store, with a digest made from `tag`.
async fn issue(store: &PgUserStore, user: &UserId, tag: u8, at: time::OffsetDateTime) {
    let record = store.load(user).await.unwrap().unwrap();
    let mut history = record.history.sends().to_vec();
    history.push(at);
    let update = IssueUpdate {
        pending: PendingSetup {
            digest: TokenDigest::from_bytes([tag; 32]),
            issued_at: at,
            expires_at: at + Duration::hours(24),
        },
        history: MailHistory::new(history),
    };
    let outcome = store.issue(user, record.revision, update).await.unwrap();
    assert_eq!(outcome, IssueOutcome::Issued);
}

#[tokio::test]
async fn purge_deletes_only_rows_that_can_no_longer_matter() {
    let fixture = PgFixture::new(UsersTable::FreshDefault).await;
    let store = fixture.pg_store().await;
    let policy = SetupPolicy::default();
    let t0 = Harness::START;
    let user = |name: &'static str| fixture.create_user(name, InitialHash::Null);

    let expired_and_old = user("old@example.test").await;
    issue(&store, &expired_and_old, 1, t0).await;
    let still_live = user("live@example.test").await;
    issue(&store, &still_live, 2, t0 + Duration::hours(23)).await;
    let withdrawn = user("withdrawn@example.test").await;
    issue(&store, &withdrawn, 3, t0).await;
    store
        .withdraw(&withdrawn, &TokenDigest::from_bytes([3; 32]))
        .await
        .unwrap();
    // A send inside the cap window, whose later link was withdrawn: no token, but the send
    // still counts toward the cap.
    let recent_history = user("recent@example.test").await;
    issue(&store, &recent_history, 4, t0 + Duration::hours(12)).await;
    issue(&store, &recent_history, 5, t0 + Duration::hours(13)).await;
    store
        .withdraw(&recent_history, &TokenDigest::from_bytes([5; 32]))
        .await
        .unwrap();

    let now = t0 + Duration::hours(24) + Duration::seconds(1);
    let deleted = store.purge_expired(now, &policy).await.unwrap();
    assert_eq!(
        deleted, 2,
        "the expired row with an old history and the emptied one go"
    );
    assert_eq!(fixture.pending_rows(&expired_and_old).await, (0, 0));
    assert_eq!(fixture.pending_rows(&withdrawn).await, (0, 0));
    assert_eq!(fixture.pending_rows(&still_live).await, (1, 1));
    assert_eq!(
        fixture.pending_rows(&recent_history).await,
        (1, 0),
        "its send still counts"
    );
    let kept = store.load(&recent_history).await.unwrap().unwrap();
    assert_eq!(kept.history.sends(), &[t0 + Duration::hours(12)]);

    let later = t0 + Duration::hours(48);
    assert_eq!(store.purge_expired(later, &policy).await.unwrap(), 2);

    let mut tx = fixture.data.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN DELETE FROM password_setup_pending \
         WHERE last_sent_at < now() AND (expires_at IS NULL OR expires_at <= now())",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        plan.iter()
            .any(|line| line.contains("password_setup_pending_last_sent_idx")),
        "the purge can use its index: {plan:#?}"
    );

    drop(store);
    fixture.finish().await;
}

async fn trigger_count(fixture: &PgFixture) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND t.tgname LIKE '%_drop_links'",
    )
    .bind(&fixture.db.schema)
    .fetch_one(&fixture.db.admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_password_trigger_follows_the_configuration() {
    let fixture = PgFixture::new(UsersTable::FreshDefault).await;
    assert_eq!(trigger_count(&fixture).await, 1, "installed by default");

    let without = fixture.config.clone().drop_links_on_password_write(false);
    let store = PgUserStore::new(fixture.data.clone(), &without).unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        trigger_count(&fixture).await,
        0,
        "removed when configured off"
    );

    // Without it, a link from before a password set elsewhere revives once that password is
    // cleared: the documented cost of turning it off.
    let user = fixture
        .create_user("revived@example.test", InitialHash::Null)
        .await;
    issue(&store, &user, 0x77, Harness::START).await;
    let digest = TokenDigest::from_bytes([0x77; 32]);
    fixture
        .db
        .execute(&format!(
            "UPDATE users SET password_hash = 'x' WHERE id = '{user}'; \
             UPDATE users SET password_hash = NULL WHERE id = '{user}'"
        ))
        .await;
    assert!(store.find_by_token(&digest).await.unwrap().is_some());

    let with = fixture.config.clone();
    for _ in 0..2 {
        PgUserStore::new(fixture.data.clone(), &with)
            .unwrap()
            .migrate()
            .await
            .unwrap();
        assert_eq!(trigger_count(&fixture).await, 1, "installed again, once");
    }
    fixture
        .db
        .execute(&format!(
            "UPDATE users SET password_hash = 'x' WHERE id = '{user}'; \
             UPDATE users SET password_hash = NULL WHERE id = '{user}'"
        ))
        .await;
    assert!(
        store.find_by_token(&digest).await.unwrap().is_none(),
        "the link is dead now"
    );
    drop(store);
    fixture.finish().await;
}

#[tokio::test]
async fn the_trigger_works_for_writers_without_rights_on_the_pending_table() {
    let fixture = PgFixture::new(UsersTable::ExistingUuid).await;
    let store = fixture.pg_store().await;
    let user = fixture
        .create_user("writer@example.test", InitialHash::Null)
        .await;
    issue(&store, &user, 0x55, Harness::START).await;

    // A role that may update the accounts table and nothing else, like another service's.
    let role = format!("{}_writer", fixture.db.schema);
    fixture
        .db
        .execute(&format!(
            "CREATE ROLE {role} NOLOGIN; \
             GRANT USAGE ON SCHEMA {schema} TO {role}; \
             GRANT SELECT, UPDATE ON accounts TO {role}",
            schema = fixture.db.schema
        ))
        .await;
    let written = fixture
        .db
        .try_execute(&format!(
            "BEGIN; SET LOCAL ROLE {role}; \
             UPDATE accounts SET pw_hash = 'set-by-another-service' \
             WHERE account_id = '{user}'; COMMIT"
        ))
        .await;
    fixture
        .db
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;

    written.expect("the other service's password write succeeds");
    assert_eq!(
        fixture.pending_rows(&user).await,
        (1, 0),
        "and its link is dropped"
    );
    drop(store);
    fixture.finish().await;
}

#[tokio::test]
async fn the_trigger_follows_a_change_of_the_hash_column() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE people (id text PRIMARY KEY, email text NOT NULL, \
         old_hash text, new_hash text); \
         INSERT INTO people VALUES ('p1', 'p1@example.test', NULL, NULL)",
    )
    .await;
    let pool = db.pool().await;
    let people = PgStoreConfig::new().users_table("people");
    let old = PgUserStore::new(
        pool.clone(),
        &people.clone().password_hash_column("old_hash"),
    )
    .unwrap();
    old.migrate().await.unwrap();
    let new = PgUserStore::new(pool.clone(), &people.password_hash_column("new_hash")).unwrap();
    new.migrate().await.unwrap();

    let user = UserId::new("p1");
    issue(&new, &user, 0x31, Harness::START).await;
    db.execute("UPDATE people SET new_hash = 'x' WHERE id = 'p1'")
        .await;
    let pending: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT token_digest FROM password_setup_pending WHERE user_id = 'p1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        pending, None,
        "a write to the newly configured column drops the link"
    );
    pool.close().await;
    db.finish().await;
}
