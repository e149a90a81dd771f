//! The rules the service enforces: how long links live, how often emails go out, and what a
//! password must be. Defaults follow NIST SP 800-63B for passwords and keep mailboxes safe
//! from floods.

use std::fmt;

use time::Duration;
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

use crate::model::Account;
use crate::secret::NewPassword;

/// Limits on issuing links and sending emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupPolicy {
    /// How long a link works after it is issued. Default: 24 hours.
    pub token_ttl: Duration,
    /// After an email is sent, repeats within this time are accepted without sending another
    /// and keep the current link. Default: 60 seconds.
    pub resend_cooldown: Duration,
    /// How many emails one user may be sent within [`Self::cap_window`]. Default: 5.
    pub email_cap: u32,
    /// The rolling window the cap counts over. Default: 24 hours.
    pub cap_window: Duration,
}

impl Default for SetupPolicy {
    fn default() -> Self {
        Self {
            token_ttl: Duration::hours(24),
            resend_cooldown: Duration::seconds(60),
            email_cap: 5,
            cap_window: Duration::hours(24),
        }
    }
}

/// The longest any configured duration may be. Far beyond any sensible setting, and small
/// enough that adding it to a current instant can never overflow.
const LONGEST_DURATION: Duration = Duration::days(366);

impl SetupPolicy {
    /// Checks that the limits make sense together.
    pub(crate) fn problems(&self) -> Option<&'static str> {
        let in_range = |duration: Duration| duration <= LONGEST_DURATION;
        if self.token_ttl <= Duration::ZERO || !in_range(self.token_ttl) {
            Some("token_ttl must be positive and at most a year")
        } else if self.resend_cooldown.is_negative() || !in_range(self.resend_cooldown) {
            Some("resend_cooldown must be between zero and a year")
        } else if self.email_cap == 0 {
            Some("email_cap must be at least 1")
        } else if self.cap_window <= Duration::ZERO || !in_range(self.cap_window) {
            Some("cap_window must be positive and at most a year")
        } else {
            None
        }
    }
}

/// What a new password must be. Lengths count Unicode scalar values after NFKC normalisation,
/// so a password typed in two Unicode forms is one password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters. Default: 8.
    pub min_chars: usize,
    /// Most characters. Default: 128.
    pub max_chars: usize,
    /// Refuse a password equal to the user's email address or identifier (ignoring case).
    /// Default: on.
    pub refuse_account_names: bool,
    /// Refuse the most commonly used passwords (a built-in list, compared ignoring case).
    /// Default: on.
    pub refuse_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 128,
            refuse_account_names: true,
            refuse_common: true,
        }
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the policy's minimum.
    TooShort {
        /// The minimum.
        min_chars: usize,
    },
    /// More characters than the policy's maximum.
    TooLong {
        /// The maximum.
        max_chars: usize,
    },
    /// Equal to the user's email address.
    MatchesEmail,
    /// Equal to the user's identifier.
    MatchesUserId,
    /// One of the most commonly used passwords.
    TooCommon,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min_chars } => {
                write!(f, "the password must have at least {min_chars} characters")
            }
            Self::TooLong { max_chars } => {
                write!(f, "the password must have at most {max_chars} characters")
            }
            Self::MatchesEmail => f.write_str("the password must not be the email address"),
            Self::MatchesUserId => f.write_str("the password must not be the user name"),
            Self::TooCommon => f.write_str("the password is too common; choose another one"),
        }
    }
}

/// A password after NFKC normalisation: the exact bytes that are hashed and verified.
pub struct NormalizedPassword(Zeroizing<String>);

impl NormalizedPassword {
    /// The normalised text, for the hasher.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NormalizedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalizedPassword(<redacted>)")
    }
}

/// The most commonly used passwords that are long enough to pass the default length limit,
/// lowercase, one per line. Passwords on breach lists are a larger question: a backend that
/// checks them can do so before calling confirm.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn is_common(lowercase_password: &str) -> bool {
    COMMON_PASSWORDS
        .lines()
        .any(|common| common == lowercase_password)
}

/// NFKC-normalises a password. Setting and verifying both go through here.
pub(crate) fn normalize(password: &str) -> NormalizedPassword {
    NormalizedPassword(Zeroizing::new(password.nfkc().collect()))
}

/// The largest `max_chars` a policy may set: it bounds the work a single input can cause.
pub(crate) const LARGEST_MAX_CHARS: usize = 1024;

impl PasswordPolicy {
    /// Checks that the limits make sense together.
    pub(crate) fn problems(&self) -> Option<&'static str> {
        if self.min_chars == 0 || self.min_chars > self.max_chars {
            Some("min_chars must be at least 1 and at most max_chars")
        } else if self.max_chars > LARGEST_MAX_CHARS {
            Some("max_chars must be at most 1024")
        } else {
            None
        }
    }

    /// The most characters an input may have before normalisation is even attempted.
    ///
    /// Normalisation can merge characters: a letter with combining marks, Hangul jamo into a
    /// syllable. Four into one occurs (Greek omega with three marks), so four times the limit is
    /// the smallest bound that never refuses an input that would normalise to within it, while
    /// keeping a huge input from costing more than a length check.
    fn max_input_chars(&self) -> usize {
        self.max_chars.saturating_mul(4)
    }

    /// Cheap check that runs before any lookup or hashing: refuses inputs so long that no
    /// normalisation could bring them within the limit.
    pub(crate) fn precheck(&self, password: &NewPassword) -> Result<(), PolicyViolation> {
        let text = password.expose_secret();
        let limit = self.max_input_chars();
        // UTF-8 needs at least one byte per character, so the byte length settles most inputs
        // without walking them.
        if text.len() > limit.saturating_mul(4) || text.chars().nth(limit).is_some() {
            return Err(PolicyViolation::TooLong {
                max_chars: self.max_chars,
            });
        }
        Ok(())
    }

    /// Normalises `password` and checks it against the policy for `account`.
    pub(crate) fn check(
        &self,
        password: &NewPassword,
        account: &Account,
    ) -> Result<NormalizedPassword, PolicyViolation> {
        self.precheck(password)?;
        let normalized = normalize(password.expose_secret());

        let chars = normalized.0.chars().count();
        if chars < self.min_chars {
            return Err(PolicyViolation::TooShort {
                min_chars: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(PolicyViolation::TooLong {
                max_chars: self.max_chars,
            });
        }

        let lowered = Zeroizing::new(normalized.0.to_lowercase());
        if self.refuse_common && is_common(&lowered) {
            return Err(PolicyViolation::TooCommon);
        }
        if self.refuse_account_names {
            if *lowered
                == account
                    .email
                    .as_str()
                    .nfkc()
                    .collect::<String>()
                    .to_lowercase()
            {
                return Err(PolicyViolation::MatchesEmail);
            }
            if *lowered
                == account
                    .id
                    .as_str()
                    .nfkc()
                    .collect::<String>()
                    .to_lowercase()
            {
                return Err(PolicyViolation::MatchesUserId);
            }
        }
        Ok(normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EmailAddress, UserId};

    fn account() -> Account {
        Account {
            id: UserId::new("alice-01"),
            email: EmailAddress::new("Alice@Example.test"),
        }
    }

    fn check(password: &str) -> Result<String, PolicyViolation> {
        PasswordPolicy::default()
            .check(&NewPassword::new(password), &account())
            .map(|normalized| normalized.expose_secret().to_owned())
    }

    #[test]
    fn table_of_policy_outcomes() {
        let max = "x".repeat(128);
        let over = "x".repeat(129);
        let cases: &[(&str, Result<(), PolicyViolation>)] = &[
            ("1234567", Err(PolicyViolation::TooShort { min_chars: 8 })),
            ("12345678", Err(PolicyViolation::TooCommon)),
            ("12345679", Ok(())),
            ("        ", Ok(())),
            ("пароль-пароль", Ok(())),
            ("🔑🔑🔑🔑🔑🔑🔑🔑", Ok(())),
            (&max, Ok(())),
            (&over, Err(PolicyViolation::TooLong { max_chars: 128 })),
            ("alice@example.TEST", Err(PolicyViolation::MatchesEmail)),
            ("ALICE-01", Err(PolicyViolation::MatchesUserId)),
            ("Password123", Err(PolicyViolation::TooCommon)),
            ("ｐａｓｓｗｏｒｄ", Err(PolicyViolation::TooCommon)),
        ];
        for (password, expected) in cases {
            assert_eq!(check(password).map(|_| ()), *expected, "{password:?}");
        }
    }

    #[test]
    fn length_is_measured_after_nfkc() {
        // Eight decomposed letters (base + combining mark) are sixteen scalars before NFKC and
        // eight after; a ligature expands to two letters.
        let decomposed = "e\u{301}".repeat(8);
        assert_eq!(check(&decomposed).map(|p| p.chars().count()), Ok(8));
        assert_eq!(
            check("\u{fb01}\u{fb01}\u{fb01}\u{fb01}"),
            Ok("fifififi".to_owned())
        );
    }

    #[test]
    fn four_scalars_composing_into_one_still_fit_the_limit() {
        // Omega with psili, varia and ypogegrammeni composes to the single U+1FA2.
        let composing = "\u{3c9}\u{313}\u{300}\u{345}".repeat(128);
        assert_eq!(composing.chars().count(), 512);
        assert_eq!(check(&composing).map(|p| p.chars().count()), Ok(128));
    }

    #[test]
    fn huge_inputs_are_refused_without_normalising() {
        let huge = NewPassword::new("a".repeat(1 << 20));
        assert_eq!(
            PasswordPolicy::default().precheck(&huge),
            Err(PolicyViolation::TooLong { max_chars: 128 })
        );
    }

    #[test]
    fn default_limits_are_sane_and_bad_ones_are_named() {
        assert_eq!(SetupPolicy::default().problems(), None);
        let no_cap = SetupPolicy {
            email_cap: 0,
            ..SetupPolicy::default()
        };
        assert!(no_cap.problems().is_some());
    }
}
