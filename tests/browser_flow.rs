//! A person's whole flow in a real browser: ask for a password, read the email that arrived,
//! open its link in headless Chromium, fill in the form, submit, see the success page; then
//! asking again gives 409 and the old link shows an error page.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them). Under CI a
//! missing browser fails the test; elsewhere it is reported loudly and the test stops.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use password_setup_testkit::smtp_sink::{MailSink, SinkMode};
use support::{Server, client, seed_file};
use thirtyfour::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free loopback port; killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            let message = "chromium and chromium-driver are not installed: the browser test \
                           cannot run (scripts/test installs them)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! SKIPPED: {message}\n");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");

        let deadline = Instant::now() + Duration::from_secs(20);
        while client().get(&format!("{url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Self { child, url })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn headless_chromium(driver: &ChromeDriver) -> WebDriver {
    let mut capabilities = DesiredCapabilities::chrome();
    capabilities.set_binary(CHROMIUM).unwrap();
    // A closed network: keep Chromium from reaching out at start, and let it run as root.
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ] {
        capabilities.add_arg(argument).unwrap();
    }
    WebDriver::new(&driver.url, capabilities).await.unwrap()
}

/// Waits until the page's heading reads `expected`. After a submit the old page may still be
/// showing, or be replaced while it is read, so this polls rather than reading once.
async fn wait_for_heading(browser: &WebDriver, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(heading) = browser.find(By::Tag("h1")).await
            && let Ok(text) = heading.text().await
        {
            if text == expected {
                return;
            }
            seen = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected the heading {expected:?}, saw {seen:?}");
}

async fn fill_and_submit(browser: &WebDriver, password: &str) {
    for field in ["password", "password_confirmation"] {
        let input = browser.find(By::Id(field)).await.unwrap();
        input.send_keys(password).await.unwrap();
    }
    let submit = browser.find(By::Css("button[type=submit]")).await.unwrap();
    submit.click().await.unwrap();
}

fn put_password(server: &Server, bearer: &str) -> u16 {
    client()
        .put(server.url("/user/password"))
        .header("Authorization", &format!("Bearer {bearer}"))
        .send_empty()
        .unwrap()
        .status()
        .as_u16()
}

/// The link in the plain-text part of an email as it arrived.
fn link_in_email(raw: &[u8], base: &str) -> String {
    let message = MessageParser::default().parse(raw).expect("a MIME message");
    let text = message.body_text(0).expect("a plain-text part");
    let start = text
        .find(&format!("{base}/set-password?token="))
        .expect("the link");
    text[start..]
        .split_whitespace()
        .next()
        .expect("the link")
        .to_owned()
}

/// A database of its own for one test, on the server `DATABASE_URL` names.
struct FreshDatabase {
    admin: sqlx::PgPool,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create() -> Option<Self> {
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = match sqlx::PgPool::connect(&admin_url).await {
            Ok(pool) => pool,
            Err(error) => {
                let message = format!("PostgreSQL at {admin_url} does not answer: {error}");
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
                eprintln!("\n!!! SKIPPED: {message}\n");
                return None;
            }
        };
        let name = format!(
            "password_setup_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .unwrap()
                .as_nanos()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Some(Self {
            admin,
            name,
            url: url.to_string(),
        })
    }

    async fn drop_database(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_flow_over_postgres_and_smtp_in_headless_chromium() {
    let Some(driver) = ChromeDriver::start() else {
        return;
    };
    let Some(sink) = MailSink::start(SinkMode::Accept) else {
        return;
    };
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    let seed = seed_file(r#"[{"id": "frank", "email": "frank@example.test"}]"#);
    let server = Server::start(
        "axum",
        &[
            ("SEED_USERS", seed.to_str().unwrap()),
            ("DATABASE_URL", &database.url),
            ("SMTP_URL", &sink.url()),
            ("MAIL_FROM", "Accounts <accounts@example.test>"),
        ],
    );

    assert_eq!(put_password(&server, "demo-token-frank"), 202);
    let emails = sink.wait_for(1);
    assert_eq!(emails.len(), 1);
    assert_eq!(
        sink.envelope_recipients()[0],
        vec!["frank@example.test".to_owned()]
    );
    let link = link_in_email(&emails[0], &server.base);

    let browser = headless_chromium(&driver).await;
    browser.goto(&link).await.unwrap();
    wait_for_heading(&browser, "Set your password").await;
    fill_and_submit(&browser, "frank's long passphrase").await;
    wait_for_heading(&browser, "Your password is set").await;

    assert_eq!(put_password(&server, "demo-token-frank"), 409);
    assert_eq!(sink.messages().len(), 1, "a refused request sends nothing");
    browser.goto(&link).await.unwrap();
    wait_for_heading(&browser, "Set your password").await;
    fill_and_submit(&browser, "another long phrase").await;
    wait_for_heading(&browser, "This link is not valid").await;
    browser.quit().await.unwrap();

    // The password landed in the users table as an Argon2id hash.
    let users = sqlx::PgPool::connect(&database.url).await.unwrap();
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = 'frank'")
            .fetch_one(&users)
            .await
            .unwrap();
    let hash = password_setup::PasswordHash::from_phc(hash.unwrap());
    assert!(password_setup::verify_password("frank's long passphrase", &hash).unwrap());
    users.close().await;
    drop(server);
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sets_a_password_in_headless_chromium() {
    let Some(driver) = ChromeDriver::start() else {
        return;
    };
    let seed = seed_file(r#"[{"id": "erin", "email": "erin@example.test"}]"#);
    let server = Server::start("axum", &[("SEED_USERS", seed.to_str().unwrap())]);

    assert_eq!(put_password(&server, "demo-token-erin"), 202);
    let link = server.wait_for_links(1).remove(0);

    let browser = headless_chromium(&driver).await;
    browser.goto(&link).await.unwrap();
    wait_for_heading(&browser, "Set your password").await;
    fill_and_submit(&browser, "a long phrase I will remember").await;
    wait_for_heading(&browser, "Your password is set").await;

    assert_eq!(put_password(&server, "demo-token-erin"), 409);

    browser.goto(&link).await.unwrap();
    wait_for_heading(&browser, "Set your password").await;
    fill_and_submit(&browser, "another long phrase").await;
    wait_for_heading(&browser, "This link is not valid").await;
    browser.quit().await.unwrap();
}
