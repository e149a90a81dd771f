//! The flow through the facade crate, as an embedding backend sees it: only `password_setup`
//! imports, default features.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use password_setup::memory::{BearerTokenTable, MemoryUserStore, RecordingMailer};
use password_setup::{
    BearerCredential, EmailAddress, ErrorResponse, MEDIA_TYPE, NewPassword, PasswordSetup,
    SetupToken, UserId,
};
use password_setup_testkit::ManualClock;
use time::macros::datetime;

#[tokio::test]
async fn request_confirm_and_a_second_request_through_the_facade() {
    let store = Arc::new(MemoryUserStore::new());
    store.insert_user(UserId::new("7"), EmailAddress::new("grace@example.com"));
    let identity = Arc::new(BearerTokenTable::new());
    identity.insert("grace", UserId::new("7"));
    let mailer = Arc::new(RecordingMailer::new());
    let service = PasswordSetup::builder()
        .store(store)
        .mailer(mailer.clone())
        .identity_provider(identity)
        .clock(Arc::new(ManualClock::new(datetime!(2026-06-01 08:00 UTC))))
        .public_base_url("https://id.example.com/accounts/")
        .build()
        .unwrap();
    let grace = BearerCredential::new("grace");

    let accepted = service.request(Some(&grace)).await.unwrap();
    let email = mailer.last().unwrap();
    assert_eq!(accepted.expires_at, datetime!(2026-06-02 08:00 UTC));
    assert!(
        email
            .link
            .expose_secret()
            .starts_with("https://id.example.com/accounts/set-password?token=")
    );

    let token = SetupToken::from_submitted(email.token.expose_secret());
    service
        .confirm(&token, &NewPassword::new("Grace's new password"))
        .await
        .unwrap();

    let again = service.request(Some(&grace)).await.unwrap_err();
    let response = ErrorResponse::from_error(&again);
    assert_eq!(response.status, 409);
    assert_eq!(MEDIA_TYPE, "application/vnd.api+json");
    let body: serde_json::Value = serde_json::from_slice(&response.body()).unwrap();
    assert_eq!(body["errors"][0]["code"], "password-already-set");
    assert_eq!(body["errors"][0]["status"], "409");
}
