//! The email's words: templates per locale for the subject, the plain-text body and the HTML
//! body, rendered with minijinja.
//!
//! Templates named `*.html` escape every inserted value for HTML; the subject and the text body
//! are not escaped, since they are not markup. A template may use these values:
//!
//! | name | example |
//! |---|---|
//! | `link` | `https://accounts.example.com/set-password?token=...` |
//! | `token` | the token alone, for templates that build their own link |
//! | `expires_at` | `2026-01-06 09:00 UTC` (to the minute, rounded down) |
//! | `expires_at_rfc3339` | `2026-01-06T09:00:00Z` |
//! | `valid_for` | `24 hours`, `24 Stunden` (English words for other languages) |
//! | `valid_for_minutes` | `1440` |
//! | `recipient` | the address the email goes to |
//! | `site_name` | the configured site name, or empty |
//! | `sender_name` | the display name of `From`, or empty |
//! | `locale` | the locale of the templates in use, such as `de` |
//!
//! Printing a name that does not exist is an error, caught when the templates are added.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value, context};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};
use crate::locale::Locale;

/// The three templates of one language. Sources are minijinja (Jinja2) syntax.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    /// The subject line; must render to one line.
    pub subject: String,
    /// The plain-text body; on its own enough to complete the flow.
    pub text: String,
    /// The HTML body; inserted values are HTML-escaped.
    pub html: String,
}

impl TemplateSet {
    /// The English templates shipped with this crate.
    pub fn english() -> Self {
        Self {
            subject: include_str!("../templates/en/subject.txt").into(),
            text: include_str!("../templates/en/body.txt").into(),
            html: include_str!("../templates/en/body.html").into(),
        }
    }

    /// The German templates shipped with this crate.
    pub fn german() -> Self {
        Self {
            subject: include_str!("../templates/de/subject.txt").into(),
            text: include_str!("../templates/de/body.txt").into(),
            html: include_str!("../templates/de/body.html").into(),
        }
    }
}

/// Templates by locale.
pub struct EmailTemplates {
    environment: Environment<'static>,
    locales: BTreeSet<Locale>,
}

impl std::fmt::Debug for EmailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTemplates")
            .field("locales", &self.locales)
            .finish_non_exhaustive()
    }
}

/// What the templates are filled with for one email.
pub(crate) struct EmailValues<'a> {
    pub(crate) link: &'a str,
    pub(crate) token: &'a str,
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) valid_for: Duration,
    pub(crate) recipient: &'a str,
    pub(crate) site_name: &'a str,
    pub(crate) sender_name: &'a str,
}

/// A rendered email, ready to be put into a message.
pub(crate) struct RenderedEmail {
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
}

impl EmailTemplates {
    /// No templates at all; add some with [`Self::with_locale`].
    pub fn empty() -> Self {
        let mut environment = Environment::new();
        // Printing an unknown name is a mistake in the template, not an empty string.
        environment.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        Self {
            environment,
            locales: BTreeSet::new(),
        }
    }

    /// The shipped English (`en`) and German (`de`) templates.
    ///
    /// # Errors
    /// Only if the shipped templates were broken, which this crate's tests rule out.
    pub fn builtin() -> Result<Self> {
        Self::empty()
            .with_locale(Locale::english(), TemplateSet::english())?
            .with_locale(Locale::german(), TemplateSet::german())
    }

    /// Adds or replaces the templates of `locale`. They are compiled and rendered once with
    /// sample values, so mistakes show up here rather than when a user waits for the email.
    ///
    /// # Errors
    /// [`Error::Template`] naming the template that fails.
    pub fn with_locale(mut self, locale: Locale, templates: TemplateSet) -> Result<Self> {
        for (kind, source) in [
            (Kind::Subject, templates.subject),
            (Kind::Text, templates.text),
            (Kind::Html, templates.html),
        ] {
            let name = kind.name(&locale);
            self.environment
                .add_template_owned(name.clone(), source)
                .map_err(|error| template_error(&name, &error))?;
        }
        self.locales.insert(locale.clone());

        let sample = EmailValues {
            link: "https://accounts.example.invalid/set-password?token=sample",
            token: "sample",
            expires_at: OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
            valid_for: Duration::hours(24),
            recipient: "user@example.invalid",
            site_name: "Example",
            sender_name: "Example Accounts",
        };
        self.render(&locale, &sample)?;
        Ok(self)
    }

    /// The locales that have templates.
    pub fn locales(&self) -> impl Iterator<Item = &Locale> {
        self.locales.iter()
    }

    /// Whether `locale` has templates.
    pub fn has_locale(&self, locale: &Locale) -> bool {
        self.locales.contains(locale)
    }

    /// The locale to write in: `wanted` if it has templates, else its language, else
    /// `default`.
    pub(crate) fn choose(&self, wanted: Option<&Locale>, default: &Locale) -> Locale {
        let Some(wanted) = wanted else {
            return default.clone();
        };
        if self.has_locale(wanted) {
            return wanted.clone();
        }
        match wanted.language() {
            Some(language) if self.has_locale(&language) => language,
            _ => default.clone(),
        }
    }

    /// Renders the email of `locale`, which must have templates.
    pub(crate) fn render(
        &self,
        locale: &Locale,
        values: &EmailValues<'_>,
    ) -> Result<RenderedEmail> {
        let utc = values.expires_at.to_offset(UtcOffset::UTC);
        let expires_at = utc
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .map_err(|error| Error::Template {
                template: "expiry".into(),
                reason: error.to_string(),
            })?;
        let expires_at_rfc3339 = utc.format(&Rfc3339).map_err(|error| Error::Template {
            template: "expiry".into(),
            reason: error.to_string(),
        })?;
        let context = context! {
            link => values.link,
            token => values.token,
            expires_at => expires_at,
            expires_at_rfc3339 => expires_at_rfc3339,
            valid_for => duration_in_words(values.valid_for, locale),
            valid_for_minutes => values.valid_for.whole_minutes(),
            recipient => values.recipient,
            site_name => values.site_name,
            sender_name => values.sender_name,
            locale => locale.as_str(),
        };

        let subject = self.render_one(Kind::Subject, locale, &context)?;
        let subject = subject.trim();
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(Error::Template {
                template: Kind::Subject.name(locale),
                reason: "the subject must be one non-empty line".into(),
            });
        }
        Ok(RenderedEmail {
            subject: subject.to_owned(),
            text: self.render_one(Kind::Text, locale, &context)?,
            html: self.render_one(Kind::Html, locale, &context)?,
        })
    }

    fn render_one(&self, kind: Kind, locale: &Locale, context: &Value) -> Result<String> {
        let name = kind.name(locale);
        self.environment
            .get_template(&name)
            .and_then(|template| template.render(context))
            .map_err(|error| template_error(&name, &error))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Subject,
    Text,
    Html,
}

impl Kind {
    /// The template's name; its extension decides whether values are HTML-escaped.
    fn name(self, locale: &Locale) -> String {
        let file = match self {
            Self::Subject => "subject.txt",
            Self::Text => "body.txt",
            Self::Html => "body.html",
        };
        format!("{locale}/{file}")
    }
}

fn template_error(name: &str, error: &minijinja::Error) -> Error {
    // The error's own text names the problem and the line; it never holds rendered values.
    Error::Template {
        template: name.to_owned(),
        reason: error.to_string(),
    }
}

/// A link lifetime in words, such as "24 hours" or "2 Tage". Rounded down to the minute, so
/// the email never promises more time than there is. English for languages without wording.
fn duration_in_words(duration: Duration, locale: &Locale) -> String {
    let german = locale.as_str() == "de" || locale.as_str().starts_with("de-");
    let unit = |count: i64, english: (&str, &str), german_words: (&str, &str)| {
        let (one, many) = if german { german_words } else { english };
        format!("{count} {}", if count == 1 { one } else { many })
    };
    let days = ("day", "days");
    let hours = ("hour", "hours");
    let minutes = ("minute", "minutes");
    let (tage, stunden, minuten) = (
        ("Tag", "Tage"),
        ("Stunde", "Stunden"),
        ("Minute", "Minuten"),
    );

    let total_minutes = duration.whole_minutes().max(0);
    let (whole_hours, rest_minutes) = (total_minutes / 60, total_minutes % 60);
    if rest_minutes == 0 && whole_hours >= 48 && whole_hours % 24 == 0 {
        return unit(whole_hours / 24, days, tage);
    }
    match (whole_hours, rest_minutes) {
        (0, minutes_only) => unit(minutes_only, minutes, minuten),
        (hours_only, 0) => unit(hours_only, hours, stunden),
        (some_hours, some_minutes) => format!(
            "{} {} {}",
            unit(some_hours, hours, stunden),
            if german { "und" } else { "and" },
            unit(some_minutes, minutes, minuten)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_words_in_english_and_german() {
        let en = Locale::english();
        let de = Locale::german();
        let fr = Locale::parse("fr").unwrap();
        for (duration, english, deutsch) in [
            (Duration::hours(24), "24 hours", "24 Stunden"),
            (Duration::hours(1), "1 hour", "1 Stunde"),
            (Duration::minutes(30), "30 minutes", "30 Minuten"),
            (
                Duration::minutes(90),
                "1 hour and 30 minutes",
                "1 Stunde und 30 Minuten",
            ),
            (Duration::hours(72), "3 days", "3 Tage"),
            (Duration::seconds(59), "0 minutes", "0 Minuten"),
        ] {
            assert_eq!(duration_in_words(duration, &en), english);
            assert_eq!(duration_in_words(duration, &de), deutsch);
            assert_eq!(duration_in_words(duration, &fr), english);
        }
    }

    #[test]
    fn the_shipped_templates_compile_and_render() {
        let templates = EmailTemplates::builtin().unwrap();
        let locales: Vec<_> = templates.locales().map(Locale::as_str).collect();
        assert_eq!(locales, ["de", "en"]);
    }

    #[test]
    fn unknown_locales_fall_back_to_their_language_then_the_default() {
        let templates = EmailTemplates::builtin().unwrap();
        let default = Locale::english();
        let austrian = Locale::parse("de-AT").unwrap();
        let french = Locale::parse("fr").unwrap();

        assert_eq!(
            templates.choose(Some(&austrian), &default),
            Locale::german()
        );
        assert_eq!(templates.choose(Some(&french), &default), default);
        assert_eq!(templates.choose(None, &default), default);
    }

    #[test]
    fn a_template_printing_an_unknown_name_is_refused_when_added() {
        let broken = TemplateSet {
            subject: "Hello {{ nmae }}".into(),
            ..TemplateSet::english()
        };
        let error = EmailTemplates::empty()
            .with_locale(Locale::english(), broken)
            .unwrap_err();
        assert!(error.to_string().contains("en/subject.txt"), "{error}");
    }

    #[test]
    fn a_subject_with_a_line_break_is_refused() {
        let broken = TemplateSet {
            subject: "Hello{{ '\\r\\n' }}Bcc: someone@example.test".into(),
            ..TemplateSet::english()
        };
        assert!(
            EmailTemplates::empty()
                .with_locale(Locale::english(), broken)
                .is_err()
        );
    }
}
