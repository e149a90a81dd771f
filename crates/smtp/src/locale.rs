//! Which language an email is written in: the locale type and the hook that picks one per user.
//!
//! The core knows nothing of languages, so the mailer asks a [`LocaleResolver`] for each email
//! and falls back to its default locale when the resolver has no answer or no templates exist
//! for the answer.

use std::fmt;

use async_trait::async_trait;
use password_setup_core::Account;

/// A language tag such as `en`, `de` or `de-AT`, compared case-insensitively.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale(String);

impl Locale {
    /// English, the built-in default.
    pub fn english() -> Self {
        Self("en".into())
    }

    /// German.
    pub fn german() -> Self {
        Self("de".into())
    }

    /// Parses a tag made of ASCII letters, digits, `-` and `_` (read as `-`), such as `de-AT`.
    /// Returns `None` for anything else, so that a tag can safely become part of a template
    /// name.
    pub fn parse(tag: &str) -> Option<Self> {
        let tag = tag.trim();
        let well_formed = !tag.is_empty()
            && tag.len() <= 35
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(tag.to_ascii_lowercase().replace('_', "-")))
    }

    /// The tag, lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag (`de` for `de-at`), or `None` if the tag has no region.
    pub(crate) fn language(&self) -> Option<Self> {
        self.0
            .split_once('-')
            .map(|(language, _)| Self(language.to_owned()))
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({})", self.0)
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Chooses the language of a user's email, for instance from a profile setting.
///
/// Called once per email. `None` means "no preference": the mailer's default locale is used.
/// A locale without templates falls back to its language (`de-at` to `de`), then to the
/// default.
#[async_trait]
pub trait LocaleResolver: Send + Sync {
    /// The preferred locale of `account`, if known.
    async fn locale_for(&self, account: &Account) -> Option<Locale>;
}

/// A resolver without preferences: every email uses the mailer's default locale.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultLocaleOnly;

#[async_trait]
impl LocaleResolver for DefaultLocaleOnly {
    async fn locale_for(&self, _account: &Account) -> Option<Locale> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_and_hostile_ones_refused() {
        assert_eq!(Locale::parse(" de_AT ").map(|l| l.0), Some("de-at".into()));
        assert_eq!(
            Locale::parse("de-at").and_then(|l| l.language()),
            Some(Locale::german())
        );
        for bad in ["", "../en", "en/body", "de\r\nx-y", &"a".repeat(36)] {
            assert_eq!(Locale::parse(bad), None, "{bad:?}");
        }
    }
}
