//! On tables of realistic size, no store call scans the users table or the pending table
//! sequentially: each finds its rows through a key or an index. Checked with PostgreSQL's own
//! per-table scan counters.

use password_setup_core::{
    IssueUpdate, MailHistory, PasswordHash, PendingSetup, SetupPolicy, TokenDigest, UserId,
    UserStore as _,
};
use password_setup_postgres::PgUserStore;
use password_setup_testkit::Harness;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row as _};
use time::Duration;

use crate::support::{PgFixture, UsersTable};

const USERS: i64 = 20_000;

/// Sequential scans of the users and pending tables so far, as the statistics system has them
/// once the store's only connection has reported its counts.
async fn sequential_scans(fixture: &PgFixture, store_pool: &PgPool) -> (i64, i64) {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(store_pool)
        .await
        .unwrap();
    // The flush happens when that connection's transaction ends; a new one reads the result.
    sqlx::query("SELECT 1").execute(store_pool).await.unwrap();
    let mut admin = fixture.db.admin.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT coalesce(sum(seq_scan) FILTER (WHERE relname = 'members'), 0)::bigint AS users, \
                coalesce(sum(seq_scan) FILTER (WHERE relname = 'password_setup_pending'), 0)::bigint \
                    AS pending \
         FROM pg_stat_user_tables WHERE schemaname = $1",
    )
    .bind(&fixture.db.schema)
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    (row.get("users"), row.get("pending"))
}

#[tokio::test]
async fn every_store_call_finds_its_rows_by_index() {
    let fixture = PgFixture::new(UsersTable::ExistingBigInt).await;
    let t0 = Harness::START;
    // One connection does everything, seeding included, and its statistics are flushed on
    // demand: counts from other connections arrive late and would blur the comparison.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(fixture.db.options())
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO members (mail) SELECT 'member-' || g || '@example.test' \
         FROM generate_series(1, {USERS}) g; \
         ANALYZE members; \
         INSERT INTO password_setup_pending \
             (user_id, token_digest, issued_at, expires_at, sent_at, revision) \
         SELECT member_no, sha256(member_no::text::bytea), \
                '{t0}'::timestamptz, '{t0}'::timestamptz + interval '1 day', \
                ARRAY['{t0}'::timestamptz], 1 \
         FROM members WHERE member_no % 2 = 0; \
         ANALYZE password_setup_pending",
        t0 = t0
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    )))
    .execute(&pool)
    .await
    .unwrap();

    let store = PgUserStore::new(pool.clone(), &fixture.config).unwrap();
    let before = sequential_scans(&fixture, &pool).await;

    let fresh = UserId::new("1"); // odd: no pending row yet
    let pending = UserId::new("2");
    let record = store.load(&fresh).await.unwrap().unwrap();
    store.load(&pending).await.unwrap().unwrap();
    let digest = TokenDigest::from_bytes([0xab; 32]);
    let update = IssueUpdate {
        pending: PendingSetup {
            digest,
            issued_at: t0,
            expires_at: t0 + Duration::hours(24),
        },
        history: MailHistory::new(vec![t0]),
    };
    store
        .issue(&fresh, record.revision, update.clone())
        .await
        .unwrap();
    let record = store.load(&pending).await.unwrap().unwrap();
    let other = TokenDigest::from_bytes([0xcd; 32]);
    let update = IssueUpdate {
        pending: PendingSetup {
            digest: other,
            ..update.pending
        },
        ..update
    };
    store
        .issue(&pending, record.revision, update)
        .await
        .unwrap();
    store.find_by_token(&digest).await.unwrap().unwrap();
    store.withdraw(&pending, &other).await.unwrap();
    store
        .complete(
            &fresh,
            &digest,
            &PasswordHash::from_phc("$argon2id$stand-in"),
        )
        .await
        .unwrap();
    store
        .purge_expired(t0 + Duration::hours(1), &SetupPolicy::default())
        .await
        .unwrap();

    let after = sequential_scans(&fixture, &pool).await;
    assert_eq!(
        after, before,
        "sequential scans of (users, pending) before and after the store calls"
    );
    pool.close().await;
    fixture.finish().await;
}
