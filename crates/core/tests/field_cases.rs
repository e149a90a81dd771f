//! Failures that real password set and reset flows have shipped, each replayed against the
//! service with in-memory adapters. Each test is named after the case it guards against. Cases
//! that concern link scanners, request headers and bodies (C05, C08, C10) are also tested at
//! the HTTP layer, and the database collision (C04) against PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use password_setup_core::{
    Clock, ErrorResponse, HashingParams, PasswordHash, SetupError, SetupState, SetupToken, UserId,
    UserStore, hash_password, normalize_password,
};
use password_setup_testkit::Harness;
use time::Duration;
use time::macros::datetime;

const GOOD: &str = "correct horse battery";

fn code(result: &Result<impl std::fmt::Debug, SetupError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    }
}

fn hash_of(password: &str) -> PasswordHash {
    hash_password(
        &normalize_password(password),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .unwrap()
}

#[tokio::test]
async fn c01_a_used_token_does_not_work_again() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();

    h.clock.advance(Duration::hours(1));
    h.confirm(&t1, "first password 1").await.unwrap();
    h.clock.advance(Duration::hours(1));
    let again = h.confirm(&t1, "second password 2").await;

    assert_eq!(code(&again), "token-invalid");
    assert!(h.password_verifies("alice", "first password 1"));
    assert!(!h.password_verifies("alice", "second password 2"));
    assert_eq!(
        h.store.state(&UserId::new("alice")),
        Some(SetupState::PasswordSet)
    );
}

#[tokio::test]
async fn c02_a_link_stays_dead_when_a_password_set_elsewhere_is_cleared_again() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();

    h.store
        .set_password_hash(&UserId::new("alice"), hash_of("set by an admin"));
    h.store
        .set_password_hash(&UserId::new("alice"), PasswordHash::from_phc(""));
    h.clock.advance(Duration::hours(1));

    assert_eq!(code(&h.confirm(&t1, GOOD).await), "token-invalid");
}

#[tokio::test]
async fn c02_a_token_does_not_outlive_a_password_set_elsewhere() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();

    h.clock.advance(Duration::hours(1));
    let admin_hash = hash_of("set by an admin");
    assert!(
        h.store
            .set_password_hash(&UserId::new("alice"), admin_hash.clone())
    );
    h.clock.advance(Duration::hours(1));
    let confirm = h.confirm(&t1, GOOD).await;
    let emails_before = h.mailer.count();
    let again = h.request(&alice).await;

    assert!(matches!(
        code(&confirm),
        "password-already-set" | "token-invalid"
    ));
    assert_eq!(
        h.store.password_hash(&UserId::new("alice")),
        Some(admin_hash)
    );
    assert_eq!(code(&again), "password-already-set");
    assert_eq!(h.mailer.count(), emails_before);
}

#[tokio::test]
async fn c03_only_the_newest_link_works() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();
    h.clock.advance(Duration::minutes(10));
    h.request(&alice).await.unwrap();
    let t2 = h.last_token().unwrap();
    assert_ne!(t1, t2);

    h.clock.advance(Duration::minutes(5));
    let old = h.confirm(&t1, GOOD).await;
    assert_eq!(code(&old), "token-invalid");
    assert_eq!(h.store.password_hash(&UserId::new("alice")), None);

    h.confirm(&t2, GOOD).await.unwrap();
    assert_eq!(code(&h.confirm(&t1, GOOD).await), "token-invalid");
}

#[tokio::test]
async fn c06_a_rejected_password_does_not_burn_the_token() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();

    let short = h.confirm(&t1, "short").await.unwrap_err();
    let response = ErrorResponse::from_error(&short);
    assert_eq!(response.status, 422);
    let source = response.document.errors[0].source.clone().unwrap();
    assert_eq!(source.pointer.as_deref(), Some("/data/attributes/password"));
    assert_eq!(h.store.password_hash(&UserId::new("alice")), None);
    assert_eq!(h.hasher.calls(), 0);

    h.confirm(&t1, GOOD).await.unwrap();
    assert_eq!(code(&h.confirm(&t1, GOOD).await), "token-invalid");
}

#[tokio::test]
async fn c07_expiry_is_an_instant_compared_to_the_second() {
    let t0 = datetime!(2026-02-01 23:59:30 UTC);
    let cases = [
        (Duration::minutes(1), "ok"),
        (Duration::hours(24) - Duration::seconds(1), "ok"),
        (Duration::hours(24), "token-expired"),
        (Duration::hours(24) + Duration::seconds(1), "token-expired"),
    ];
    for (after, expected) in cases {
        let h = Harness::new();
        h.clock.set(t0);
        let alice = h.add_user("alice", "alice@example.test");
        let accepted = h.request(&alice).await.unwrap();
        assert_eq!(accepted.expires_at, t0 + Duration::hours(24));
        let t1 = h.last_token().unwrap();

        h.clock.set(t0 + after);
        assert_eq!(
            code(&h.confirm(&t1, GOOD).await),
            expected,
            "confirm at t0 + {after}"
        );
    }
}

#[tokio::test]
async fn c08_the_link_starts_with_the_configured_public_base_url() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();

    let email = h.mailer.last().unwrap();
    let expected = format!("{}/set-password?token=", Harness::BASE_URL);
    assert!(email.link.expose_secret().starts_with(&expected));
    assert!(
        email
            .link
            .expose_secret()
            .ends_with(email.token.expose_secret())
    );
}

#[tokio::test]
async fn c10_c11_the_email_goes_to_the_stored_address_of_that_user_only() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.add_user("bob", "bob@example.test");

    h.request(&alice).await.unwrap();
    let email = h.mailer.last().unwrap();
    assert_eq!(h.mailer.count(), 1);
    assert_eq!(email.account.email.as_str(), "alice@example.test");
    assert_eq!(email.account.id, UserId::new("alice"));
    assert_eq!(h.store.len(), 2);

    let completed = h.confirm(&h.last_token().unwrap(), GOOD).await.unwrap();
    assert_eq!(completed.user_id, UserId::new("alice"));
    assert!(h.password_verifies("alice", GOOD));
}

#[tokio::test]
async fn c12_a_huge_password_is_refused_before_any_hashing() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let t1 = h.last_token().unwrap();

    let huge = h.confirm(&t1, &"a".repeat(1 << 20)).await;
    let one_over = h.confirm(&t1, &"a".repeat(129)).await;
    assert_eq!(code(&huge), "password-too-long");
    assert_eq!(code(&one_over), "password-too-long");
    assert_eq!(h.hasher.calls(), 0);

    h.confirm(&t1, &"a".repeat(128)).await.unwrap();
    assert!(h.password_verifies("alice", &"a".repeat(128)));
}

#[tokio::test]
async fn c13_one_password_in_two_unicode_forms() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();

    h.confirm(&h.last_token().unwrap(), "ma\u{f1}ana-Horse-42")
        .await
        .unwrap();

    assert!(h.password_verifies("alice", "man\u{303}ana-Horse-42"));
    assert!(!h.password_verifies("alice", "manana-Horse-42"));
}

#[tokio::test]
async fn c14a_a_failed_send_does_not_lock_the_user_out() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.mailer.set_failing(true);

    let failed = h.request(&alice).await.unwrap_err();
    let response = ErrorResponse::from_error(&failed);
    assert_eq!(response.status, 501);
    assert_eq!(response.document.errors[0].code, "mail-not-sent");
    assert_eq!(
        h.store.state(&UserId::new("alice")),
        Some(SetupState::NoPassword)
    );

    h.clock.advance(Duration::minutes(1));
    h.mailer.set_failing(false);
    let accepted = h.request(&alice).await.unwrap();

    assert!(accepted.email_sent);
    assert_eq!(h.mailer.count(), 1);
    h.confirm(&h.last_token().unwrap(), GOOD).await.unwrap();
}

#[tokio::test]
async fn c14a_an_immediate_retry_after_a_failed_send_sends_again() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.mailer.fail_next(1);

    assert_eq!(code(&h.request(&alice).await), "mail-not-sent");
    assert!(h.request(&alice).await.unwrap().email_sent);
    assert_eq!(h.mailer.count(), 1);
}

/// How many of the tokens mailed so far the store would still accept.
async fn live_tokens(h: &Harness) -> usize {
    let mut live = 0;
    for email in h.mailer.sent() {
        let digest = email.token.digest().unwrap();
        if h.store.find_by_token(&digest).await.unwrap().is_some() {
            live += 1;
        }
    }
    live
}

#[tokio::test]
async fn c15_requests_cannot_flood_a_mailbox() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    for _ in 0..20 {
        let accepted = h.request(&alice).await.unwrap();
        assert!(accepted.expires_at > h.clock.now());
        h.clock.advance(Duration::seconds(2));
    }
    assert_eq!(h.mailer.count(), 1);

    // Past the cooldown each request sends, until the cap of five in 24 hours.
    for sent in 2..=5 {
        h.clock.advance(Duration::seconds(61));
        assert!(h.request(&alice).await.unwrap().email_sent);
        assert_eq!(h.mailer.count(), sent);
        assert_eq!(live_tokens(&h).await, 1);
    }
    h.clock.advance(Duration::seconds(61));
    let capped = h.request(&alice).await.unwrap_err();
    let response = ErrorResponse::from_error(&capped);
    assert_eq!(response.status, 429);
    assert!(
        response
            .headers
            .iter()
            .any(|(name, _)| *name == "Retry-After")
    );
    assert_eq!(h.mailer.count(), 5);

    // Once the first send leaves the 24-hour window, one more may go out.
    let first_send = h.mailer.sent()[0].expires_at - Duration::hours(24);
    h.clock
        .set(first_send + Duration::hours(24) + Duration::seconds(1));
    assert!(h.request(&alice).await.unwrap().email_sent);
    assert_eq!(h.mailer.count(), 6);
    assert_eq!(live_tokens(&h).await, 1);
}

#[tokio::test]
async fn c16_token_states_are_not_told_apart_needlessly() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let used = h.last_token().unwrap();
    h.confirm(&used, GOOD).await.unwrap();
    let hashes_after_setup = h.hasher.calls();

    let bob = h.add_user("bob", "bob@example.test");
    h.request(&bob).await.unwrap();
    let expired = h.last_token().unwrap();
    h.clock.advance(Duration::hours(25));

    let never_issued = SetupToken::from_submitted("A".repeat(43));
    let outcomes = [
        h.confirm(&never_issued, GOOD).await.unwrap_err(),
        h.confirm(&used, GOOD).await.unwrap_err(),
        h.confirm(&expired, GOOD).await.unwrap_err(),
    ];
    let responses: Vec<_> = outcomes.iter().map(ErrorResponse::from_error).collect();

    assert_eq!(responses[0].status, responses[1].status);
    assert_eq!(outcomes[0].code(), "token-invalid");
    assert_eq!(outcomes[1].code(), "token-invalid");
    assert_eq!(outcomes[2].code(), "token-expired");
    for response in &responses {
        // The random occurrence id is not content; leave it out of the search.
        let mut response = response.clone();
        response.document.errors[0].id.clear();
        let body = String::from_utf8(response.body()).unwrap();
        for personal in ["alice", "bob", "example.test", "2026"] {
            assert!(!body.contains(personal), "{personal} in {body}");
        }
    }
    assert_eq!(h.hasher.calls(), hashes_after_setup);
}

#[tokio::test]
async fn c17_null_and_empty_hashes_mean_no_password() {
    let h = Harness::new();
    let null = h.add_user_with_hash("null", "null@example.test", None);
    let empty = h.add_user_with_hash(
        "empty",
        "empty@example.test",
        Some(PasswordHash::from_phc("")),
    );
    let set = h.add_user_with_hash(
        "set",
        "set@example.test",
        Some(hash_of("existing password")),
    );

    assert!(h.request(&null).await.unwrap().email_sent);
    assert!(h.request(&empty).await.unwrap().email_sent);
    assert_eq!(h.mailer.count(), 2);

    assert_eq!(code(&h.request(&set).await), "password-already-set");
    assert_eq!(h.mailer.count(), 2);
    assert_eq!(
        h.store.state(&UserId::new("set")),
        Some(SetupState::PasswordSet)
    );

    h.identity
        .insert_without_linked_identity("unlinked-token", UserId::new("null"));
    let unlinked = h
        .service
        .request(Some(&password_setup_core::BearerCredential::new(
            "unlinked-token",
        )))
        .await
        .unwrap_err();
    assert_eq!(unlinked.code(), "missing-linked-identity");
    assert_eq!(unlinked.status(), 401);
}

#[tokio::test]
async fn c18_a_token_only_ever_sets_its_own_users_password() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    let bob = h.add_user("bob", "bob@example.test");
    h.request(&alice).await.unwrap();
    let ta = h.last_token().unwrap();
    h.request(&bob).await.unwrap();
    let tb = h.last_token().unwrap();
    let bob_before = h.store.state(&UserId::new("bob"));

    // Confirm carries no user: whoever sends it, the token alone decides whose password it is.
    let completed = h.confirm(&ta, GOOD).await.unwrap();

    assert_eq!(completed.user_id, UserId::new("alice"));
    assert!(h.password_verifies("alice", GOOD));
    assert_eq!(h.store.state(&UserId::new("bob")), bob_before);
    h.confirm(&tb, "bob's own password").await.unwrap();
    assert!(h.password_verifies("bob", "bob's own password"));
}
