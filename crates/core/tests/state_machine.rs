//! Property test of the whole state machine: random sequences of requests, confirms (with the
//! latest, an older or a made-up token, and good or bad passwords), clock moves across the
//! cooldown and expiry edges, mail failures and passwords set elsewhere, run against the
//! service with in-memory adapters and compared step by step with a small reference model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use password_setup_core::{
    Clock, HashingParams, SetupState, SetupToken, UserId, UserStore, hash_password,
    normalize_password,
};
use password_setup_testkit::Harness;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

const USERS: [(&str, &str); 2] = [("alice", "alice@example.test"), ("bob", "bob@example.test")];
const COOLDOWN: Duration = Duration::seconds(60);
const TTL: Duration = Duration::hours(24);
const CAP: usize = 5;

#[derive(Debug, Clone)]
enum Which {
    Latest,
    Older(usize),
    MadeUp,
}

#[derive(Debug, Clone)]
enum Password {
    Good(u8),
    /// The good password typed with a decomposed "ñ".
    Decomposed,
    Short,
    OneTooLong,
    Huge,
    SameAsEmail,
}

impl Password {
    fn text(&self, email: &str) -> String {
        match self {
            Self::Good(n) => format!("good password {n}"),
            Self::Decomposed => "man\u{303}ana-Horse-42".to_owned(),
            Self::Short => "short".to_owned(),
            Self::OneTooLong => "x".repeat(129),
            Self::Huge => "x".repeat(10_000),
            Self::SameAsEmail => email.to_uppercase(),
        }
    }

    /// The form a login would type, to check what was stored.
    fn login_form(&self, email: &str) -> String {
        match self {
            Self::Decomposed => "ma\u{f1}ana-Horse-42".to_owned(),
            other => other.text(email),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Request {
        user: usize,
        mail_fails: bool,
    },
    Confirm {
        user: usize,
        which: Which,
        password: Password,
    },
    Advance(Duration),
    SetElsewhere {
        user: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let which = prop_oneof![
        4 => Just(Which::Latest),
        1 => (0..8usize).prop_map(Which::Older),
        1 => Just(Which::MadeUp),
    ];
    let password = prop_oneof![
        4 => (0..4u8).prop_map(Password::Good),
        1 => Just(Password::Decomposed),
        1 => Just(Password::Short),
        1 => Just(Password::OneTooLong),
        1 => Just(Password::Huge),
        1 => Just(Password::SameAsEmail),
    ];
    let step = prop_oneof![
        Just(Duration::seconds(1)),
        Just(Duration::seconds(59)),
        Just(Duration::seconds(60)),
        Just(Duration::seconds(61)),
        Just(Duration::minutes(10)),
        Just(Duration::hours(1)),
        Just(TTL - Duration::seconds(1)),
        Just(TTL),
        Just(TTL + Duration::hours(1)),
    ];
    prop_oneof![
        4 => (user.clone(), prop::bool::weighted(0.15))
            .prop_map(|(user, mail_fails)| Op::Request { user, mail_fails }),
        4 => (user.clone(), which, password)
            .prop_map(|(user, which, password)| Op::Confirm { user, which, password }),
        3 => step.prop_map(Op::Advance),
        1 => user.prop_map(|user| Op::SetElsewhere { user }),
    ]
}

#[derive(Debug, Clone, Copy)]
struct ModelPending {
    /// Index into the user's mailed tokens.
    token: usize,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

#[derive(Debug, Default)]
struct ModelUser {
    has_password: bool,
    /// The password set through this flow, as a login would type it.
    password: Option<String>,
    pending: Option<ModelPending>,
    sends: Vec<OffsetDateTime>,
    mailed: Vec<SetupToken>,
}

/// What the reference model expects a request to do.
fn expected_request(user: &ModelUser, now: OffsetDateTime, mail_fails: bool) -> &'static str {
    if user.has_password {
        return "password-already-set";
    }
    if let Some(pending) = user.pending
        && now < pending.expires_at
        && now < pending.issued_at + COOLDOWN
    {
        return "accepted-without-email";
    }
    let recent = user.sends.iter().filter(|sent| **sent > now - TTL).count();
    if recent >= CAP {
        "too-many-requests"
    } else if mail_fails {
        "mail-not-sent"
    } else {
        "accepted-with-email"
    }
}

/// What the reference model expects a confirm to do, given which mailed token (if any) is sent.
fn expected_confirm(
    user: &ModelUser,
    token: Option<usize>,
    password: &Password,
    now: OffsetDateTime,
) -> &'static str {
    if matches!(password, Password::Huge) {
        return "password-too-long";
    }
    let Some(pending) = user.pending.filter(|pending| Some(pending.token) == token) else {
        return "token-invalid";
    };
    if user.has_password {
        return "password-already-set";
    }
    if now >= pending.expires_at {
        return "token-expired";
    }
    match password {
        Password::Short => "password-too-short",
        Password::OneTooLong | Password::Huge => "password-too-long",
        Password::SameAsEmail => "password-matches-email",
        Password::Good(_) | Password::Decomposed => "ok",
    }
}

async fn run(ops: Vec<Op>) {
    let h = Harness::new();
    let credentials: Vec<_> = USERS
        .iter()
        .map(|(id, email)| h.add_user(id, email))
        .collect();
    let mut model: Vec<ModelUser> = USERS.iter().map(|_| ModelUser::default()).collect();

    for (step, op) in ops.into_iter().enumerate() {
        let now = h.clock.now();
        match op {
            Op::Request { user, mail_fails } => {
                let expected = expected_request(&model[user], now, mail_fails);
                h.mailer.set_failing(mail_fails);
                let emails_before = h.mailer.count();
                let actual = match h.request(&credentials[user]).await {
                    Ok(accepted) if accepted.email_sent => "accepted-with-email",
                    Ok(_) => "accepted-without-email",
                    Err(error) => error.code(),
                };
                h.mailer.set_failing(false);
                assert_eq!(actual, expected, "step {step}: request by user {user}");

                let m = &mut model[user];
                match actual {
                    "accepted-with-email" => {
                        assert_eq!(h.mailer.count(), emails_before + 1);
                        m.mailed.push(h.last_token().unwrap());
                        m.sends.push(now);
                        m.pending = Some(ModelPending {
                            token: m.mailed.len() - 1,
                            issued_at: now,
                            expires_at: now + TTL,
                        });
                    }
                    // The new token superseded the old one and was then taken back.
                    "mail-not-sent" => m.pending = None,
                    _ => assert_eq!(h.mailer.count(), emails_before, "step {step}"),
                }
            }
            Op::Confirm {
                user,
                which,
                password,
            } => {
                let m = &mut model[user];
                let token_index = match which {
                    Which::Latest => m.mailed.len().checked_sub(1),
                    Which::Older(back) => m.mailed.len().checked_sub(1 + back),
                    Which::MadeUp => None,
                };
                let token = token_index.map_or_else(
                    || SetupToken::from_submitted("Z".repeat(43)),
                    |index| m.mailed[index].clone(),
                );
                let expected = expected_confirm(m, token_index, &password, now);
                let text = password.text(USERS[user].1);
                let actual = match h.confirm(&token, &text).await {
                    Ok(_) => "ok",
                    Err(error) => error.code(),
                };
                assert_eq!(actual, expected, "step {step}: confirm by user {user}");

                if actual == "ok" {
                    m.has_password = true;
                    m.password = Some(password.login_form(USERS[user].1));
                    m.pending = None;
                }
            }
            Op::Advance(by) => h.clock.advance(by),
            Op::SetElsewhere { user } => {
                let hash = hash_password(
                    &normalize_password("set elsewhere"),
                    &HashingParams::INSECURE_FOR_TESTS,
                )
                .unwrap();
                h.store.set_password_hash(&UserId::new(USERS[user].0), hash);
                // Writing a password outside the flow drops the user's outstanding link.
                let m = &mut model[user];
                m.has_password = true;
                m.password = Some("set elsewhere".to_owned());
                m.pending = None;
            }
        }

        // Invariant after every step: at most one mailed token per user is usable.
        for (user, m) in model.iter().enumerate() {
            let mut usable = 0;
            for token in &m.mailed {
                let record = h
                    .store
                    .find_by_token(&token.digest().unwrap())
                    .await
                    .unwrap();
                if matches!(record, Some(record) if matches!(record.state, SetupState::Pending(_)))
                {
                    usable += 1;
                }
            }
            assert!(
                usable <= 1,
                "step {step}: user {user} has {usable} usable tokens"
            );
        }
    }

    for (user, m) in model.iter().enumerate() {
        if let Some(password) = &m.password {
            assert!(h.password_verifies(USERS[user].0, password), "user {user}");
        }
        assert_eq!(
            h.store.password_hash(&UserId::new(USERS[user].0)).is_some(),
            m.has_password
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_service_behaves_like_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(run(ops));
    }
}
