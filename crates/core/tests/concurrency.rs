//! Races on one user, played on a multi-threaded runtime: however the tasks interleave, a token
//! completes at most once and no usable token survives a password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use password_setup_core::{SetupError, SetupState, UserId, UserStore};
use password_setup_testkit::Harness;
use time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_confirms_of_one_token_give_exactly_one_success() {
    let h = Arc::new(Harness::new());
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let token = h.last_token().unwrap();

    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let h = h.clone();
            let token = token.clone();
            tokio::spawn(
                async move { (i, h.confirm(&token, &format!("password number {i}")).await) },
            )
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(_)) => winners.push(i),
            (_, Err(error)) => assert!(matches!(error, SetupError::TokenInvalid), "{error:?}"),
        }
    }

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert!(h.password_verifies("alice", &format!("password number {}", winners[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_requests_send_one_email_and_leave_one_token() {
    let h = Arc::new(Harness::new());
    let alice = h.add_user("alice", "alice@example.test");

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let h = h.clone();
            let alice = alice.clone();
            tokio::spawn(async move { h.request(&alice).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    assert_eq!(h.mailer.count(), 1);
    let Some(SetupState::Pending(pending)) = h.store.state(&UserId::new("alice")) else {
        panic!("expected a pending token");
    };
    assert_eq!(
        Some(pending.digest),
        h.mailer.last().unwrap().token.digest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_racing_a_confirm_leaves_no_usable_token_behind_a_password() {
    for round in 0..50 {
        let h = Arc::new(Harness::new());
        let alice = h.add_user("alice", "alice@example.test");
        h.request(&alice).await.unwrap();
        let first = h.last_token().unwrap();
        h.clock.advance(Duration::minutes(2));

        let confirming = {
            let h = h.clone();
            tokio::spawn(async move { h.confirm(&first, "correct horse battery").await })
        };
        let requesting = {
            let h = h.clone();
            let alice = alice.clone();
            tokio::spawn(async move { h.request(&alice).await })
        };
        let confirmed = confirming.await.unwrap();
        let requested = requesting.await.unwrap();

        match (&confirmed, &requested) {
            // The confirm won: the request saw the password or wrote a token that cannot work.
            (Ok(_), _) => {
                assert!(h.password_verifies("alice", "correct horse battery"));
                for email in h.mailer.sent() {
                    let found = h
                        .store
                        .find_by_token(&email.token.digest().unwrap())
                        .await
                        .unwrap();
                    assert!(
                        found.is_none_or(|record| record.state == SetupState::PasswordSet),
                        "round {round}: a token is still usable"
                    );
                    let reuse = h.confirm(&email.token, "another password 2").await;
                    assert!(reuse.is_err(), "round {round}");
                }
            }
            // The request superseded the token first: the new link must work.
            (Err(SetupError::TokenInvalid), Ok(accepted)) => {
                assert!(accepted.email_sent, "round {round}");
                h.confirm(&h.last_token().unwrap(), "correct horse battery")
                    .await
                    .unwrap();
            }
            other => panic!("round {round}: unexpected outcome {other:?}"),
        }
    }
}
