//! How the mailer uses connections: reuse over one pooled connection, the pool's bound, idle
//! expiry, and the TLS modes of the SMTP URL against a peer that offers no TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::error::Error as _;
use std::time::Duration;

use password_setup_core::SetupError;
use password_setup_smtp::Error;
use support::peer::{Behaviour, ScriptedPeer};
use support::{Flow, mailer_builder};

fn smtp_error(error: &SetupError) -> &Error {
    let SetupError::Mail(mail) = error else {
        panic!("expected a mail failure, got {error:?}");
    };
    mail.source()
        .and_then(|source| source.downcast_ref::<Error>())
        .expect("the SMTP mailer's error")
}

#[tokio::test]
async fn one_pooled_connection_carries_consecutive_messages() {
    let peer = ScriptedPeer::start(Behaviour::Accept).await;
    let flow = Flow::new(mailer_builder(&peer.url()).build().unwrap());

    for name in ["a", "b", "c"] {
        let user = flow.add_user(name, &format!("{name}@example.test"));
        flow.service.request(Some(&user)).await.unwrap();
    }

    assert_eq!((peer.accepted(), peer.connections()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_the_bounded_pool() {
    let peer = ScriptedPeer::start(Behaviour::Accept).await;
    let flow = Flow::new(mailer_builder(&peer.url()).pool_size(1).build().unwrap());
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..4 {
        let user = flow.add_user(&format!("u{n}"), &format!("u{n}@example.test"));
        let service = flow.service.clone();
        requests.spawn(async move { service.request(Some(&user)).await });
    }

    while let Some(outcome) = requests.join_next().await {
        outcome.unwrap().unwrap();
    }

    assert_eq!((peer.accepted(), peer.connections()), (4, 1));
}

#[tokio::test]
async fn idle_connections_past_their_timeout_are_replaced() {
    let peer = ScriptedPeer::start(Behaviour::Accept).await;
    let flow = Flow::new(
        mailer_builder(&peer.url())
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap(),
    );

    for name in ["a", "b"] {
        let user = flow.add_user(name, &format!("{name}@example.test"));
        flow.service.request(Some(&user)).await.unwrap();
    }

    assert_eq!((peer.accepted(), peer.connections()), (2, 2));
}

#[tokio::test]
async fn opportunistic_tls_falls_back_to_plain_and_required_tls_refuses() {
    let peer = ScriptedPeer::start(Behaviour::Accept).await;
    let opportunistic = Flow::new(
        mailer_builder(&format!("{}?tls=opportunistic", peer.url()))
            .build()
            .unwrap(),
    );
    let required = Flow::new(
        mailer_builder(&format!("{}?tls=required", peer.url()))
            .build()
            .unwrap(),
    );
    let a = opportunistic.add_user("a", "a@example.test");
    let b = required.add_user("b", "b@example.test");

    opportunistic.service.request(Some(&a)).await.unwrap();
    let error = required.service.request(Some(&b)).await.unwrap_err();

    assert!(matches!(smtp_error(&error), Error::Smtp(_)), "{error:?}");
    assert_eq!(peer.accepted(), 1);
}

#[tokio::test]
async fn smtps_to_a_plain_peer_fails_the_handshake() {
    let peer = ScriptedPeer::start(Behaviour::Accept).await;
    let flow = Flow::new(
        mailer_builder(&format!("smtps://127.0.0.1:{}", peer.port))
            .build()
            .unwrap(),
    );
    let user = flow.add_user("a", "a@example.test");

    let error = flow.service.request(Some(&user)).await.unwrap_err();

    assert!(matches!(smtp_error(&error), Error::Tls(_)), "{error:?}");
    assert_eq!(peer.accepted(), 0);
}
