//! The PostgreSQL store against a real database (`DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`): the conformance suite on each id type, the
//! field cases that concern the database, migrations, cleanup and failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod cases;
mod conformance;
mod failures;
mod indexes;
mod round_trips;
mod schema;
