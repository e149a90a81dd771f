//! Sends that fail against real peers (nothing listening, a server that stalls, a server that
//! refuses the recipient), what they leave behind, and what ends up in the logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::error::Error as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use password_setup_core::{MailError, Mailer, SetupEmail, SetupError, SetupState, UserId};
use password_setup_smtp::{Error, SmtpMailer};
use support::peer::{Behaviour, ScriptedPeer};
use support::{
    Flow, MailSink, SinkMode, closed_port, link_in, mailer_builder, silent_peer, token_in,
};

/// Forwards to the SMTP mailer and remembers every email it was handed, so that tests know
/// tokens even of emails that never arrived.
struct Spy {
    inner: SmtpMailer,
    seen: Mutex<Vec<SetupEmail>>,
}

#[async_trait]
impl Mailer for Spy {
    async fn send(&self, email: &SetupEmail) -> Result<(), MailError> {
        self.seen.lock().unwrap().push(email.clone());
        self.inner.send(email).await
    }
}

impl Spy {
    fn new(inner: SmtpMailer) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn tokens(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|email| email.token.expose_secret().to_owned())
            .collect()
    }
}

fn flow_with(spy: &Arc<Spy>) -> Flow {
    Flow::with_mailer(spy.clone())
}

/// The adapter's own error inside the service's.
fn smtp_error(error: &SetupError) -> &Error {
    let SetupError::Mail(mail) = error else {
        panic!("expected a mail failure, got {error:?}");
    };
    mail.source()
        .and_then(|source| source.downcast_ref::<Error>())
        .expect("the SMTP mailer's error")
}

fn assert_mentions_no_token(error: &SetupError, spy: &Spy) {
    let shown = format!("{error} {error:?} {}", smtp_error(error));
    for token in spy.tokens() {
        assert!(!shown.contains(&token), "{shown}");
    }
}

#[tokio::test]
async fn c14_server_down_fails_with_501_and_a_retry_once_it_is_up_works() {
    let port = closed_port();
    let spy = Spy::new(
        mailer_builder(&format!("smtp://127.0.0.1:{port}"))
            .build()
            .unwrap(),
    );
    let flow = flow_with(&spy);
    let alice = flow.add_user("alice", "alice@example.test");

    let error = flow.service.request(Some(&alice)).await.unwrap_err();

    assert_eq!(error.status(), 501);
    assert!(
        matches!(smtp_error(&error), Error::Connect { .. }),
        "{error:?}"
    );
    assert_mentions_no_token(&error, &spy);
    // The unsent link was taken back: no pending token, no cooldown.
    assert_eq!(
        flow.store.state(&UserId::new("alice")),
        Some(SetupState::NoPassword)
    );

    let Some(sink) = MailSink::start_on(SinkMode::Accept, port) else {
        return;
    };
    flow.service.request(Some(&alice)).await.unwrap();
    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1);
    let text = mail_parser::MessageParser::default()
        .parse(&messages[0])
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    flow.confirm(&token_in(&link_in(&text)), "a long enough passphrase")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_that_accepts_and_never_greets_times_out() {
    let (port, _peer) = silent_peer().await;
    let spy = Spy::new(
        SmtpMailer::builder(format!("smtp://127.0.0.1:{port}"))
            .from("accounts@example.test")
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let flow = flow_with(&spy);
    let bob = flow.add_user("bob", "bob@example.test");

    let started = Instant::now();
    let error = flow.service.request(Some(&bob)).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            smtp_error(&error),
            Error::Timeout {
                stage: "connecting",
                ..
            }
        ),
        "{error:?}"
    );
    assert_mentions_no_token(&error, &spy);
    assert_eq!(
        flow.store.state(&UserId::new("bob")),
        Some(SetupState::NoPassword)
    );
}

#[tokio::test]
async fn a_server_that_stalls_after_the_message_times_out_and_its_connection_is_not_reused() {
    let peer = ScriptedPeer::start(Behaviour::StallAfterData).await;
    let spy = Spy::new(
        SmtpMailer::builder(peer.url())
            .from("accounts@example.test")
            .send_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let flow = flow_with(&spy);
    let carol = flow.add_user("carol", "carol@example.test");
    let dave = flow.add_user("dave", "dave@example.test");

    let first = flow.service.request(Some(&carol)).await.unwrap_err();
    let second = flow.service.request(Some(&dave)).await.unwrap_err();

    for error in [&first, &second] {
        assert!(
            matches!(
                smtp_error(error),
                Error::Timeout {
                    stage: "sending the message",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_mentions_no_token(error, &spy);
    }
    assert_eq!(peer.connections(), 2, "a timed-out connection is dropped");
}

#[tokio::test]
async fn a_rejected_recipient_is_a_permanent_failure_and_nothing_is_left_pending() {
    let Some(sink) = MailSink::start(SinkMode::RejectRecipient) else {
        return;
    };
    let spy = Spy::new(mailer_builder(&sink.url()).build().unwrap());
    let flow = flow_with(&spy);
    let erin = flow.add_user("erin", "erin@example.test");

    let error = flow.service.request(Some(&erin)).await.unwrap_err();

    assert_eq!((error.status(), error.code()), (501, "mail-not-sent"));
    let Error::Smtp(failure) = smtp_error(&error) else {
        panic!("expected an SMTP reply, got {error:?}");
    };
    assert_eq!(failure.reply_code(), Some(550));
    assert!(failure.is_permanent() && !failure.is_transient());
    assert_mentions_no_token(&error, &spy);
    assert_eq!(
        flow.store.state(&UserId::new("erin")),
        Some(SetupState::NoPassword)
    );
    assert!(sink.messages().is_empty());
}

/// Everything written by the fmt subscriber, shared with the test.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn c09_no_token_or_password_in_trace_output_of_sends_and_confirms() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let Some(refusing) = MailSink::start(SinkMode::RejectRecipient) else {
        return;
    };
    let working = Spy::new(mailer_builder(&sink.url()).build().unwrap());
    let failing = Spy::new(mailer_builder(&refusing.url()).build().unwrap());
    let flow = flow_with(&working);
    let failing_flow = flow_with(&failing);
    let frank = flow.add_user("frank", "frank@example.test");
    let grace = failing_flow.add_user("grace", "grace@example.test");
    let password = "correct horse battery staple";
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);

    flow.service.request(Some(&frank)).await.unwrap();
    let failed = failing_flow
        .service
        .request(Some(&grace))
        .await
        .unwrap_err();
    let token = working.tokens().remove(0);
    let refused = flow.confirm(&token, "short").await;
    flow.confirm(&token, password).await.unwrap();
    drop(guard);

    let text = logs.text();
    assert!(
        text.contains("smtp.send"),
        "the capture saw the mailer: {text}"
    );
    assert!(text.contains("setup email not accepted"), "{text}");
    let tokens = [working.tokens(), failing.tokens()].concat();
    assert_eq!(tokens.len(), 2);
    let debug = format!("{failed:?} {refused:?}");
    for secret in tokens.iter().map(String::as_str).chain([password]) {
        assert!(!text.contains(secret), "a secret in the logs: {text}");
        assert!(!debug.contains(secret), "a secret in an error: {debug}");
    }
}
