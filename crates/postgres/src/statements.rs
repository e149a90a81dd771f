//! The SQL the store runs, built once from the validated names.
//!
//! Every state change is a single statement, so PostgreSQL makes it atomic and a lost
//! connection leaves nothing half-written. Under READ COMMITTED a statement re-checks its
//! conditions on the newest version of any row it locks or writes, and the statements below
//! rely on that:
//!
//! - Writers lock the user's row first and the pending row second, always in that order, so
//!   requests and confirms for one user queue instead of deadlocking. The trigger that drops
//!   links on password writes keeps the same order: it runs while the writer holds the user's
//!   row.
//! - `issue` takes a share lock on the user's row, which waits for any transaction changing
//!   the password and then re-reads it; `complete` takes an exclusive lock for the same
//!   reason. Neither can act on a password that was read before a concurrent write committed.
//! - The pending row is written only under its expected revision or digest, re-checked on
//!   the newest version, so of two racing writes the second finds nothing to change.

use std::sync::Arc;

use crate::config::ValidNames;

/// Statement texts, shared by every clone of a store.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) load: Arc<str>,
    pub(crate) find_by_token: Arc<str>,
    pub(crate) issue: Arc<str>,
    pub(crate) withdraw: Arc<str>,
    pub(crate) complete: Arc<str>,
    pub(crate) purge: Arc<str>,
}

impl Statements {
    pub(crate) fn new(names: &ValidNames) -> Self {
        let users = names.users.quoted();
        let pending = names.pending.quoted();
        let (id, email, hash) = (&names.id, &names.email, &names.password_hash);
        let id_type = names.id_type.sql_type();

        // Both reads return the same columns, so one function turns a row into a record.
        let record_columns = format!(
            "u.{id}::text AS user_id, coalesce(u.{email}::text, '') AS email, \
             coalesce(u.{hash}::text, '') <> '' AS has_password, \
             p.token_digest, p.issued_at, p.expires_at, \
             coalesce(p.sent_at, '{{}}') AS sent_at, coalesce(p.revision, 0) AS revision"
        );

        let load = format!(
            "SELECT {record_columns} \
             FROM {users} u LEFT JOIN {pending} p ON p.user_id = u.{id} \
             WHERE u.{id} = $1::{id_type}"
        );

        let find_by_token = format!(
            "SELECT {record_columns} \
             FROM {pending} p JOIN {users} u ON u.{id} = p.user_id \
             WHERE p.token_digest = $1"
        );

        // Revision 0 stands for "no pending row": the first issue inserts, later ones update.
        // Exactly one of the two data-modifying parts can match, chosen by `$2`.
        let issue = format!(
            "WITH eligible AS ( \
                 SELECT u.{id} AS user_id FROM {users} u \
                 WHERE u.{id} = $1::{id_type} AND coalesce(u.{hash}::text, '') = '' \
                 FOR SHARE OF u \
             ), updated AS ( \
                 UPDATE {pending} p \
                 SET token_digest = $3, issued_at = $4, expires_at = $5, sent_at = $6, \
                     revision = p.revision + 1 \
                 FROM eligible e \
                 WHERE p.user_id = e.user_id AND p.revision = $2 \
                 RETURNING 1 \
             ), inserted AS ( \
                 INSERT INTO {pending} \
                     (user_id, token_digest, issued_at, expires_at, sent_at, revision) \
                 SELECT e.user_id, $3, $4, $5, $6, 1 FROM eligible e WHERE $2 = 0 \
                 ON CONFLICT (user_id) DO NOTHING \
                 RETURNING 1 \
             ) \
             SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) AS written"
        );

        // Removes exactly one occurrence of the withdrawn send, even if two sends share an
        // instant. All right-hand sides see the row as it was before the update.
        let position = "array_position(p.sent_at, p.issued_at)";
        let withdraw = format!(
            "UPDATE {pending} p \
             SET token_digest = NULL, issued_at = NULL, expires_at = NULL, \
                 sent_at = CASE WHEN {position} IS NULL THEN p.sent_at \
                     ELSE p.sent_at[:{position} - 1] || p.sent_at[{position} + 1:] END, \
                 revision = p.revision + 1 \
             WHERE p.user_id = $1::{id_type} AND p.token_digest = $2"
        );

        // The user's row is locked before the pending row is touched (see the module docs);
        // `owner` reports the password as of the lock, i.e. including any write that was in
        // flight when the statement started.
        let complete = format!(
            "WITH owner AS ( \
                 SELECT u.{id} AS user_id, coalesce(u.{hash}::text, '') = '' AS has_no_password \
                 FROM {users} u WHERE u.{id} = $1::{id_type} \
                 FOR UPDATE OF u \
             ), consumed AS ( \
                 UPDATE {pending} p \
                 SET token_digest = NULL, issued_at = NULL, expires_at = NULL, \
                     revision = p.revision + 1 \
                 FROM owner o \
                 WHERE p.user_id = o.user_id AND p.token_digest = $2 AND o.has_no_password \
                 RETURNING p.user_id \
             ), stored AS ( \
                 UPDATE {users} u SET {hash} = $3 \
                 FROM consumed c WHERE u.{id} = c.user_id \
                 RETURNING 1 \
             ) \
             SELECT EXISTS (SELECT 1 FROM stored) AS completed, \
                    EXISTS (SELECT 1 FROM owner WHERE NOT has_no_password) AS password_set"
        );

        // Backed by the index on `last_sent_at`; the expiry test only filters what it finds.
        let purge = format!(
            "DELETE FROM {pending} \
             WHERE last_sent_at < $1 AND (expires_at IS NULL OR expires_at <= $2)"
        );

        Self {
            load: load.into(),
            find_by_token: find_by_token.into(),
            issue: issue.into(),
            withdraw: withdraw.into(),
            complete: complete.into(),
            purge: purge.into(),
        }
    }
}
