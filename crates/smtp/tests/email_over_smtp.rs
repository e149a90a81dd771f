//! The set-password email as it arrives at a real SMTP server: its parts, headers, link,
//! expiry, language and escaping, and the whole flow from request to confirm through it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use mail_parser::MessageParser;
use password_setup_core::{Account, SetupError};
use password_setup_smtp::{EmailTemplates, Locale, LocaleResolver, TemplateSet};
use support::{
    BASE_URL, Flow, MailSink, START, SinkMode, html_unescape, link_in, mailer_builder, token_in,
};
use time::Duration;

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("a parsable message")
}

#[tokio::test]
async fn the_email_has_both_parts_the_link_the_expiry_and_the_headers() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let mailer = mailer_builder(&sink.url())
        .reply_to("Support <support@example.test>")
        .site_name("Example")
        .build()
        .unwrap();
    let flow = Flow::new(mailer);
    let alice = flow.add_user("alice", "alice@example.test");

    flow.service.request(Some(&alice)).await.unwrap();

    let raw = sink.wait_for(1).remove(0);
    let message = parse(&raw);
    assert!(
        message
            .header_raw("Content-Type")
            .unwrap()
            .contains("multipart/alternative")
    );
    assert_eq!(
        (message.text_body_count(), message.html_body_count()),
        (1, 1)
    );
    let text = message.body_text(0).unwrap();
    let html = html_unescape(&message.body_html(0).unwrap());

    let link = link_in(&text);
    assert!(
        link.starts_with(&format!("{BASE_URL}/set-password?token=")),
        "{link}"
    );
    let token = token_in(&link);
    assert_eq!(token.len(), 43);
    assert!(
        html.contains(&format!("href=\"{link}\"")),
        "button and link carry it"
    );
    assert!(
        html.contains(&format!(">{link}</a>")),
        "the link is written out too"
    );

    // Issued at 23:59:30 with the default 24 h lifetime; shown to the minute, rounded down.
    for body in [&*text, &*html] {
        assert!(body.contains("2026-03-02 23:59 UTC"), "{body}");
        assert!(body.contains("24 hours"), "{body}");
        assert!(body.contains("replaces this one"), "{body}");
    }
    assert!(
        !html.contains("<img") && !html.contains("src="),
        "no remote content"
    );

    assert_eq!(
        message.subject(),
        Some("Set the password for your Example account")
    );
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Example Accounts"), Some("accounts@example.test"))
    );
    let reply_to = message.reply_to().unwrap().first().unwrap();
    assert_eq!(reply_to.address(), Some("support@example.test"));
    let to = message.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("alice@example.test"));
    assert_eq!(
        message.date().unwrap().to_timestamp(),
        START.unix_timestamp()
    );
    let message_id = message.message_id().unwrap();
    assert!(message_id.ends_with("@example.test"), "{message_id}");
    assert_eq!(sink.envelope_recipients(), [["alice@example.test"]]);
}

#[tokio::test]
async fn c08_the_link_starts_with_the_configured_base_url_and_nothing_else() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let flow = Flow::new(mailer_builder(&sink.url()).build().unwrap());
    let bob = flow.add_user("bob", "bob@example.test");

    // The service API takes no request headers at all: the only input naming a host is the
    // configured base URL. Whatever a proxy put into Host or X-Forwarded-Host cannot reach
    // the email.
    flow.service.request(Some(&bob)).await.unwrap();

    let raw = sink.wait_for(1).remove(0);
    let message = parse(&raw);
    let text = message.body_text(0).unwrap();
    let html = html_unescape(&message.body_html(0).unwrap());
    let link = link_in(&text);
    assert!(link.starts_with(&format!("{BASE_URL}/set-password?token=")));
    for body in [&*text, &*html] {
        let hosts: Vec<_> = body
            .match_indices("https://")
            .map(|(at, _)| &body[at..])
            .collect();
        assert!(!hosts.is_empty());
        assert!(
            hosts.iter().all(|rest| rest.starts_with(BASE_URL)),
            "{body}"
        );
    }
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(!raw_text.contains("evil.example"));
}

struct GermanForGermanDomains;

#[async_trait]
impl LocaleResolver for GermanForGermanDomains {
    async fn locale_for(&self, account: &Account) -> Option<Locale> {
        account
            .email
            .as_str()
            .ends_with(".de")
            .then(|| Locale::parse("de-DE").unwrap())
    }
}

#[tokio::test]
async fn the_locale_resolver_picks_german_with_a_utf8_subject() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let mailer = mailer_builder(&sink.url())
        .locale_resolver(Arc::new(GermanForGermanDomains))
        .build()
        .unwrap();
    let flow = Flow::new(mailer);
    let jana = flow.add_user("jana", "jana@example.de");
    let john = flow.add_user("john", "john@example.test");

    flow.service.request(Some(&jana)).await.unwrap();
    flow.service.request(Some(&john)).await.unwrap();

    let messages = sink.wait_for(2);
    let german = parse(&messages[0]);
    assert_eq!(german.subject(), Some("Passwort für Ihr Konto festlegen"));
    let text = german.body_text(0).unwrap();
    assert!(text.contains("24 Stunden"), "{text}");
    assert!(text.contains("2026-03-02 23:59 UTC"), "{text}");
    assert!(german.body_html(0).unwrap().contains("Schaltfläche"));
    // Non-ASCII header text travels as encoded words: the message is 7-bit throughout.
    assert!(messages[0].is_ascii());
    let raw = String::from_utf8_lossy(&messages[0]);
    assert!(raw.contains("=?utf-8?"), "{raw}");

    let english = parse(&messages[1]);
    assert_eq!(english.subject(), Some("Set the password for your account"));
}

#[tokio::test]
async fn hostile_display_names_and_values_are_escaped_in_html() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let hostile_name = "Mallory <script>alert(1)</script> & \"friends\"";
    let mailer = mailer_builder(&sink.url())
        .from(r#""Mallory <script>alert(1)</script> & \"friends\"" <accounts@example.test>"#)
        .site_name("Tom & Jerry's <b>Shop</b>")
        .build()
        .unwrap();
    let flow = Flow::new(mailer);
    let eve = flow.add_user("eve", "eve+<x>@example.test");
    let oscar = flow.add_user("oscar", "oscar@example.test\r\nBcc: victim@example.test");
    let carol = flow.add_user("carol", "carol@example.test");

    // An address on record that cannot be a recipient is refused, not pasted.
    for hostile in [&eve, &oscar] {
        let refused = flow.service.request(Some(hostile)).await.unwrap_err();
        assert!(matches!(refused, SetupError::Mail(_)), "{refused:?}");
    }
    flow.service.request(Some(&carol)).await.unwrap();

    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1, "only the valid address got an email");
    let message = parse(&messages[0]);
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some(hostile_name));
    assert_eq!(from.address(), Some("accounts@example.test"));

    let html = message.body_html(0).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>Shop"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Tom &amp; Jerry&#x27;s &lt;b&gt;Shop&lt;&#x2f;b&gt;"),
        "{html}"
    );
    // The text part is not markup and shows the values as they are.
    assert!(
        message
            .body_text(0)
            .unwrap()
            .contains("Tom & Jerry's <b>Shop</b>")
    );
}

#[tokio::test]
async fn user_supplied_templates_replace_the_shipped_ones() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let custom = TemplateSet {
        subject: "Your link ({{ valid_for_minutes }} min)".into(),
        text: "Open {{ link }} before {{ expires_at_rfc3339 }}.".into(),
        html: "<p><a href=\"{{ link }}\">{{ link }}</a></p>".into(),
    };
    let templates = EmailTemplates::builtin()
        .unwrap()
        .with_locale(Locale::english(), custom)
        .unwrap();
    let mailer = mailer_builder(&sink.url())
        .templates(templates)
        .build()
        .unwrap();
    let flow = Flow::new(mailer);
    let dan = flow.add_user("dan", "dan@example.test");

    flow.service.request(Some(&dan)).await.unwrap();

    let raw = sink.wait_for(1).remove(0);
    let message = parse(&raw);
    assert_eq!(message.subject(), Some("Your link (1440 min)"));
    let text = message.body_text(0).unwrap();
    assert!(
        text.starts_with(&format!("Open {BASE_URL}/set-password?token=")),
        "{text}"
    );
    assert!(text.ends_with("before 2026-03-02T23:59:30Z."), "{text}");
}

#[tokio::test]
async fn end_to_end_the_mailed_token_confirms_and_a_newer_email_replaces_it() {
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let flow = Flow::new(mailer_builder(&sink.url()).build().unwrap());
    let frank = flow.add_user("frank", "frank@example.test");

    flow.service.request(Some(&frank)).await.unwrap();
    flow.clock.advance(Duration::minutes(10));
    flow.service.request(Some(&frank)).await.unwrap();

    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2);
    let tokens: Vec<_> = messages
        .iter()
        .map(|raw| token_in(&link_in(&parse(raw).body_text(0).unwrap())))
        .collect();
    assert_ne!(tokens[0], tokens[1]);

    let superseded = flow.confirm(&tokens[0], "a long enough passphrase").await;
    assert!(
        matches!(superseded, Err(SetupError::TokenInvalid)),
        "{superseded:?}"
    );
    flow.confirm(&tokens[1], "a long enough passphrase")
        .await
        .unwrap();
    let again = flow.confirm(&tokens[1], "another passphrase here").await;
    assert!(again.is_err());
}
