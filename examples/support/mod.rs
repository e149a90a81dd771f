//! What both example servers share: configuration from the environment, wiring the service
//! from it, seeding users, and the start-up banner. The servers themselves only route HTTP.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `LISTEN_ADDR` | address to listen on | `127.0.0.1:8080` |
//! | `PUBLIC_BASE_URL` | base of the links in emails | `http://` and the bound address |
//! | `DATABASE_URL` | keep users and links in PostgreSQL (migrations run at start) | in memory |
//! | `SMTP_URL` | send emails through this server (lettre's URL format) | none |
//! | `MAIL_FROM` | the emails' `From` (required with `SMTP_URL`) | none |
//! | `MAILER` | `console` prints emails instead of sending them | `console` without `SMTP_URL` |
//! | `SEED_USERS` | JSON file `[{"id","email","hasPassword"}]` of users to create | a demo user |
//! | `AUTH_JWT_SECRET` | bearer tokens are HS256 JWTs (`sub` = user id), secret of 32+ bytes | a demo token table |
//! | `AUTH_JWT_ISSUER`, `AUTH_JWT_AUDIENCE` | with a JWT secret: the `iss` and `aud` required | not checked |
//! | `SETUP_TTL_SECS` | link lifetime | 86400 |
//! | `RESEND_COOLDOWN_SECS` | repeats within this send nothing | 60 |
//! | `DAILY_EMAIL_CAP` | emails per user per 24 hours | 5 |
//! | `HASH_QUEUE_LIMIT` | confirms that may wait for a hashing thread; more answer 501 `server-busy` | 64 per CPU |
//! | `HASH_PRIORITY` | how the hashing threads are scheduled on Linux: `idle` (Linux's idle policy), or a number of nice steps below the server (0 to 255; above 19 acts as 19) | `idle` |
//!
//! With none of the storage, mail or identity variables set, the server runs the embedded
//! demo: in-memory store, emails printed to the terminal, a demo user whose bearer token is
//! printed at start-up. With `DATABASE_URL`, several instances share one database and with it
//! every link, cooldown and cap.

#![allow(dead_code, reason = "each example uses the parts it needs")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use password_setup::memory::{BearerTokenTable, ConsoleMailer, MemoryUserStore, SystemClock};
use password_setup::{
    Clock as _, EmailAddress, HashingParams, IdentityProvider, Mailer, PasswordHash, PasswordSetup,
    SetupPolicy, UserId, UserStore, hash_password, normalize_password,
};
use password_setup_http::{BlockingHasher, HashingPriority, SetupEndpoints};
use password_setup_jwt::JwtIdentityProvider;
use password_setup_postgres::{PgStoreConfig, PgUserStore};
use password_setup_smtp::SmtpMailer;
use serde::Deserialize;
use sqlx::postgres::PgPoolOptions;
use time::Duration;

/// Everything read from the environment.
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) public_base_url: Option<String>,
    pub(crate) database_url: Option<String>,
    pub(crate) mail: MailSettings,
    pub(crate) seed_users: Option<PathBuf>,
    pub(crate) jwt_secret: Option<String>,
    pub(crate) jwt_issuer: Option<String>,
    pub(crate) jwt_audience: Option<String>,
    pub(crate) policy: SetupPolicy,
    pub(crate) hash_queue_limit: Option<usize>,
    pub(crate) hash_priority: Option<HashingPriority>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    var(name)
        .map(|text| {
            text.trim()
                .parse()
                .map_err(|_| format!("{name}={text:?} is not a valid value"))
        })
        .transpose()
}

impl Settings {
    /// Reads the settings.
    ///
    /// # Errors
    /// One line naming the variable that is wrong.
    pub(crate) fn from_env() -> Result<Self, String> {
        let listen = parsed("LISTEN_ADDR")?.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_base_url = var("PUBLIC_BASE_URL");
        let mail = match (var("MAILER").as_deref(), var("SMTP_URL")) {
            (Some("console"), _) | (None, None) => MailSettings::Console,
            (None | Some("smtp"), Some(url)) => MailSettings::Smtp {
                url,
                from: var("MAIL_FROM").ok_or("MAIL_FROM is required with SMTP_URL")?,
            },
            (Some("smtp"), None) => return Err("MAILER=smtp needs SMTP_URL".to_owned()),
            (Some(other), _) => {
                return Err(format!(
                    "MAILER={other:?} is not known (use console or smtp)"
                ));
            }
        };

        let defaults = SetupPolicy::default();
        let policy = SetupPolicy {
            token_ttl: parsed::<u32>("SETUP_TTL_SECS")?
                .map_or(defaults.token_ttl, |secs| Duration::seconds(secs.into())),
            resend_cooldown: parsed::<u32>("RESEND_COOLDOWN_SECS")?
                .map_or(defaults.resend_cooldown, |secs| {
                    Duration::seconds(secs.into())
                }),
            email_cap: parsed("DAILY_EMAIL_CAP")?.unwrap_or(defaults.email_cap),
            cap_window: defaults.cap_window,
        };

        Ok(Self {
            listen,
            public_base_url,
            database_url: var("DATABASE_URL"),
            mail,
            seed_users: var("SEED_USERS").map(PathBuf::from),
            jwt_secret: var("AUTH_JWT_SECRET"),
            jwt_issuer: var("AUTH_JWT_ISSUER"),
            jwt_audience: var("AUTH_JWT_AUDIENCE"),
            policy,
            hash_queue_limit: parsed("HASH_QUEUE_LIMIT")?,
            hash_priority: hash_priority()?,
        })
    }
}

/// `HASH_PRIORITY`: `idle`, or how many nice steps below the server the hashing threads run.
fn hash_priority() -> Result<Option<HashingPriority>, String> {
    let Some(text) = var("HASH_PRIORITY") else {
        return Ok(None);
    };
    let value = text.trim();
    if value.eq_ignore_ascii_case("idle") {
        return Ok(Some(HashingPriority::Idle));
    }
    value
        .parse()
        .map(|steps| Some(HashingPriority::LoweredBy(steps)))
        .map_err(|_| {
            format!(
                "HASH_PRIORITY={text:?} is not a valid value (use idle or a number from 0 to 255)"
            )
        })
}

/// How emails leave the server. The console is chosen explicitly or by running the bare demo,
/// never as a fallback for a mail server that is missing.
pub(crate) enum MailSettings {
    Console,
    Smtp { url: String, from: String },
}

/// A user to create at start-up if absent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedUser {
    id: String,
    email: String,
    #[serde(default)]
    has_password: bool,
    /// Demo token table only: whether the user has linked the third-party identity.
    #[serde(default = "linked_by_default")]
    linked_identity: bool,
}

fn linked_by_default() -> bool {
    true
}

/// The bearer token that authenticates a seeded user when no JWT secret is configured.
pub(crate) fn demo_token(user_id: &str) -> String {
    format!("demo-token-{user_id}")
}

fn read_seed(path: &PathBuf) -> Result<Vec<SeedUser>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("SEED_USERS={}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("SEED_USERS={}: {error}", path.display()))
}

/// The wired application.
pub(crate) struct App {
    pub(crate) endpoints: Arc<SetupEndpoints>,
    pub(crate) public_base_url: String,
    pub(crate) banner: Vec<String>,
}

/// Where users live: in memory, or in PostgreSQL.
enum Users {
    Memory(Arc<MemoryUserStore>),
    Postgres(Arc<PgUserStore>),
}

impl Users {
    async fn open(settings: &Settings) -> Result<Self, String> {
        let Some(url) = &settings.database_url else {
            return Ok(Self::Memory(Arc::new(MemoryUserStore::new())));
        };
        // Fail fast when the database is unreachable rather than hanging start-up.
        // No ping before every acquire: it is a round trip per statement, a third of a
        // request's time to the database, and a dead connection is reported by the statement
        // itself anyway (the request fails with 503 and the pool drops the connection).
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|error| format!("DATABASE_URL: {error}"))?;
        let store = PgUserStore::new(pool, &PgStoreConfig::default())
            .map_err(|error| format!("DATABASE_URL: {error}"))?;
        store
            .create_users_table()
            .await
            .map_err(|error| format!("DATABASE_URL: {error}"))?;
        store
            .migrate()
            .await
            .map_err(|error| format!("DATABASE_URL: migrations failed: {error}"))?;
        Ok(Self::Postgres(Arc::new(store)))
    }

    /// Creates the user unless one with that id exists.
    async fn seed(&self, user: &SeedUser, hash: Option<PasswordHash>) -> Result<(), String> {
        match self {
            Self::Memory(store) => {
                let id = UserId::new(&user.id);
                if store.state(&id).is_none() {
                    store.insert_user_with_hash(id, EmailAddress::new(&user.email), hash);
                }
                Ok(())
            }
            Self::Postgres(store) => sqlx::query(
                "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(hash.as_ref().map(PasswordHash::as_phc))
            .execute(store.pool())
            .await
            .map(drop)
            .map_err(|error| format!("seeding {}: {error}", user.id)),
        }
    }

    fn store(&self) -> Arc<dyn UserStore> {
        match self {
            Self::Memory(store) => store.clone(),
            Self::Postgres(store) => store.clone(),
        }
    }
}

/// Builds the service the settings describe, for a server bound to `bound`.
///
/// # Errors
/// One line saying what could not be set up.
pub(crate) async fn build(settings: &Settings, bound: SocketAddr) -> Result<App, String> {
    let mut banner = Vec::new();
    let public_base_url = settings
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let users = Users::open(settings).await?;
    let identity = Arc::new(BearerTokenTable::new());

    let seed = match &settings.seed_users {
        Some(path) => read_seed(path)?,
        None if settings.database_url.is_none() => vec![SeedUser {
            id: "demo".to_owned(),
            email: "demo@example.test".to_owned(),
            has_password: false,
            linked_identity: true,
        }],
        None => Vec::new(),
    };
    for user in &seed {
        let hash = if user.has_password {
            // Seeded users "with a password" get one nobody knows.
            let secret: String = (0..4).map(|_| rand_word()).collect();
            Some(
                hash_password(&normalize_password(&secret), &HashingParams::OWASP)
                    .map_err(|error| format!("seeding {}: {error}", user.id))?,
            )
        } else {
            None
        };
        users.seed(user, hash).await?;
        if settings.jwt_secret.is_none() {
            let id = UserId::new(&user.id);
            if user.linked_identity {
                identity.insert(demo_token(&user.id), id);
            } else {
                identity.insert_without_linked_identity(demo_token(&user.id), id);
            }
            banner.push(format!(
                "user {:?} <{}>: Authorization: Bearer {}",
                user.id,
                user.email,
                demo_token(&user.id)
            ));
        }
    }

    let mailer: Arc<dyn Mailer> = match &settings.mail {
        MailSettings::Console => {
            banner.push("emails are printed here, not sent (MAILER=console)".to_owned());
            Arc::new(ConsoleMailer)
        }
        MailSettings::Smtp { url, from } => {
            banner.push(format!("emails are sent by SMTP from {from}"));
            Arc::new(
                SmtpMailer::builder(url.as_str())
                    .from(from.as_str())
                    .build()
                    .map_err(|error| format!("SMTP_URL or MAIL_FROM: {error}"))?,
            )
        }
    };
    let clock = Arc::new(SystemClock);
    let identity: Arc<dyn IdentityProvider> = match &settings.jwt_secret {
        Some(secret) => {
            banner.push("bearer tokens are HS256 JWTs (AUTH_JWT_SECRET)".to_owned());
            let mut provider = JwtIdentityProvider::hs256(secret.as_bytes(), clock.clone())
                .map_err(|error| format!("AUTH_JWT_SECRET: {error}"))?;
            if let Some(issuer) = &settings.jwt_issuer {
                provider = provider.require_issuer(issuer);
            }
            if let Some(audience) = &settings.jwt_audience {
                provider = provider.require_audience(audience);
            }
            Arc::new(provider)
        }
        None => identity,
    };
    let demo = matches!(users, Users::Memory(_)) && matches!(settings.mail, MailSettings::Console);
    banner.insert(
        0,
        match (&users, demo) {
            (Users::Memory(_), true) => "DEMO set-up: in-memory store, data is lost at exit",
            (Users::Memory(_), false) => "in-memory store, data is lost at exit",
            (Users::Postgres(_), _) => "users and links in PostgreSQL (DATABASE_URL)",
        }
        .to_owned(),
    );

    let mut hasher =
        BlockingHasher::per_cpu(HashingParams::OWASP).map_err(|error| error.to_string())?;
    if let Some(waiting) = settings.hash_queue_limit {
        hasher = hasher.with_queue_limit(waiting);
    }
    if let Some(priority) = settings.hash_priority {
        hasher = hasher.with_priority(priority);
    }
    let service = PasswordSetup::builder()
        .store(users.store())
        .mailer(mailer)
        .identity_provider(identity)
        .clock(clock)
        .hasher(Arc::new(hasher))
        .public_base_url(&public_base_url)
        .policy(settings.policy)
        .build()
        .map_err(|error| error.to_string())?;

    if let Users::Postgres(store) = &users {
        spawn_purge(store.clone(), settings.policy);
    }
    Ok(App {
        endpoints: Arc::new(SetupEndpoints::new(service)),
        public_base_url,
        banner,
    })
}

/// Deletes pending rows that no longer matter, once an hour. Skipping a run is harmless.
fn spawn_purge(store: Arc<PgUserStore>, policy: SetupPolicy) {
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            match store.purge_expired(SystemClock.now(), &policy).await {
                Ok(deleted) => tracing::info!(deleted, "purged expired setup links"),
                Err(error) => tracing::warn!(%error, "purging expired setup links failed"),
            }
        }
    });
}

fn rand_word() -> String {
    use rand::Rng as _;
    format!("{:016x}", rand::rng().next_u64())
}

/// Logs to standard error at `info` (or `LOG_LEVEL`).
pub(crate) fn init_tracing() {
    let level = match var("LOG_LEVEL") {
        None => tracing::Level::INFO,
        Some(text) => text.parse().unwrap_or_else(|_| {
            exit_with(&format!(
                "LOG_LEVEL={text:?} is not a level (error, warn, info, debug, trace)"
            ))
        }),
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints the start-up banner. Tests read the first line to learn the bound address.
pub(crate) fn print_banner(framework: &str, bound: SocketAddr, app: &App) {
    println!("password-setup {framework} example listening on http://{bound}");
    println!(
        "links point to {}/set-password",
        app.public_base_url.trim_end_matches('/')
    );
    for line in &app.banner {
        println!("  {line}");
    }
}

/// Stops the process with one clear line.
pub(crate) fn exit_with(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
