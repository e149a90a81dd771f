//! The store conformance suite, once per kind of users table.

use std::sync::Arc;

use password_setup_testkit::conformance;

use crate::support::{PgFixture, UsersTable};

async fn conforms(table: UsersTable) {
    let fixture = Arc::new(PgFixture::new(table).await);
    conformance::run(fixture.clone()).await;
    Arc::into_inner(fixture)
        .expect("the suite keeps no fixture references")
        .finish()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_default_users_table_with_text_ids_conforms() {
    conforms(UsersTable::FreshDefault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_table_with_uuid_ids_conforms() {
    conforms(UsersTable::ExistingUuid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_table_with_bigint_ids_conforms() {
    conforms(UsersTable::ExistingBigInt).await;
}
