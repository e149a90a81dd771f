//! Where the store finds the users and keeps pending tokens: table and column names, the id
//! type, and the checks that make those names safe to put into SQL.
//!
//! Names are never interpolated as given. Each is checked against a plain-identifier grammar
//! and then always written double-quoted, so a configured name can neither inject SQL nor be
//! folded to another case.

use password_setup_core::UserId;

use crate::error::{Error, Result};

/// Longest identifier PostgreSQL keeps without truncating (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Longest pending-table name: the store derives its index and bookkeeping names from it.
const MAX_PENDING_TABLE_BYTES: usize = 40;

/// The SQL type of the users table's id column. The core's [`UserId`] is text; the store casts
/// it to this type at the SQL boundary and reads ids back as their canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserIdType {
    /// `text` or `varchar`: ids are compared exactly as given.
    #[default]
    Text,
    /// `uuid`: ids are accepted with or without hyphens and braces, in any case.
    Uuid,
    /// `bigint`, `integer` or `smallint`: ids are decimal integers.
    BigInt,
}

impl UserIdType {
    /// The type the store casts ids to, and gives its own `user_id` column.
    pub(crate) fn sql_type(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Uuid => "uuid",
            Self::BigInt => "bigint",
        }
    }

    /// The id as the text the database will accept for this type, or `None` when it cannot be
    /// an id of this type (such a user does not exist, and asking would be a database error).
    pub(crate) fn bind_text(self, id: &UserId) -> Option<String> {
        let text = id.as_str();
        match self {
            Self::Text => Some(text.to_owned()),
            Self::BigInt => text.parse::<i64>().ok().map(|number| number.to_string()),
            Self::Uuid => canonical_uuid(text),
        }
    }

    /// Whether a column of type `regtype` (as PostgreSQL names it) can hold these ids.
    pub(crate) fn accepts_column_type(self, regtype: &str, category: &str) -> bool {
        match self {
            Self::Text => category == "S",
            Self::Uuid => regtype == "uuid",
            Self::BigInt => matches!(regtype, "bigint" | "integer" | "smallint"),
        }
    }
}

/// The 32 hex digits of a UUID in canonical form, from the spellings PostgreSQL accepts.
fn canonical_uuid(text: &str) -> Option<String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(text);
    let digits: String = inner
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let hyphens = inner.len() - digits.len();
    if digits.len() != 32 || hyphens > 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if inner.starts_with('-') || inner.ends_with('-') || inner.contains("--") {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &digits[..8],
        &digits[8..12],
        &digits[12..16],
        &digits[16..20],
        &digits[20..]
    ))
}

/// How the store attaches to a database.
///
/// The defaults describe a fresh database: a `users` table with `id text`, `email` and
/// `password_hash` columns (see [`PgUserStore::create_users_table`]), and pending tokens in
/// `password_setup_pending`. Point the setters at an existing table to attach to it instead.
///
/// Names are plain identifiers (letters, digits, `_`; not starting with a digit), optionally
/// qualified by a schema (`auth.users`). They are used exactly as written, case included: a
/// table created as `CREATE TABLE Users` is called `users` in the catalog. Nothing is checked
/// until [`PgUserStore::new`].
///
/// [`PgUserStore::new`]: crate::PgUserStore::new
/// [`PgUserStore::create_users_table`]: crate::PgUserStore::create_users_table
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStoreConfig {
    pub(crate) users_table: String,
    pub(crate) id_column: String,
    pub(crate) id_type: UserIdType,
    pub(crate) email_column: String,
    pub(crate) password_hash_column: String,
    pub(crate) pending_table: String,
    pub(crate) drop_links_on_password_write: bool,
}

impl Default for PgStoreConfig {
    fn default() -> Self {
        Self {
            users_table: "users".to_owned(),
            id_column: "id".to_owned(),
            id_type: UserIdType::Text,
            email_column: "email".to_owned(),
            password_hash_column: "password_hash".to_owned(),
            pending_table: "password_setup_pending".to_owned(),
            drop_links_on_password_write: true,
        }
    }
}

impl PgStoreConfig {
    /// The default configuration (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// The table that holds the users, optionally schema-qualified. Default: `users`.
    #[must_use]
    pub fn users_table(mut self, name: impl Into<String>) -> Self {
        self.users_table = name.into();
        self
    }

    /// The users table's primary key and its type. Default: `id`, [`UserIdType::Text`].
    #[must_use]
    pub fn id_column(mut self, name: impl Into<String>, id_type: UserIdType) -> Self {
        self.id_column = name.into();
        self.id_type = id_type;
        self
    }

    /// The column with the user's address on record. Default: `email`.
    #[must_use]
    pub fn email_column(mut self, name: impl Into<String>) -> Self {
        self.email_column = name.into();
        self
    }

    /// The column the password hash is stored in; NULL or empty means "no password".
    /// Default: `password_hash`.
    #[must_use]
    pub fn password_hash_column(mut self, name: impl Into<String>) -> Self {
        self.password_hash_column = name.into();
        self
    }

    /// The table the store owns for pending tokens and mail history, optionally
    /// schema-qualified; at most 40 bytes. Default: `password_setup_pending`.
    #[must_use]
    pub fn pending_table(mut self, name: impl Into<String>) -> Self {
        self.pending_table = name.into();
        self
    }

    /// Whether [`PgUserStore::migrate`] keeps a trigger on the users table that drops a user's
    /// pending link whenever a non-empty password hash is written, by any code. Default: on.
    ///
    /// Without it a link still cannot be used while the user has a password, but a link
    /// issued before a password was set elsewhere works again if that password is cleared
    /// within the link's lifetime. Turn it off only where no trigger may be added to the users
    /// table; `migrate` then removes it.
    ///
    /// [`PgUserStore::migrate`]: crate::PgUserStore::migrate
    #[must_use]
    pub fn drop_links_on_password_write(mut self, enabled: bool) -> Self {
        self.drop_links_on_password_write = enabled;
        self
    }

    /// Checks every name and quotes it for SQL.
    pub(crate) fn validate(&self) -> Result<ValidNames> {
        let pending = QualifiedName::parse("pending_table", &self.pending_table)?;
        if pending.table.len() > MAX_PENDING_TABLE_BYTES {
            return Err(Error::InvalidIdentifier {
                setting: "pending_table",
                value: self.pending_table.clone(),
                reason: "longer than 40 bytes",
            });
        }
        Ok(ValidNames {
            users: QualifiedName::parse("users_table", &self.users_table)?,
            id: quote_identifier("id_column", &self.id_column)?,
            id_type: self.id_type,
            email: quote_identifier("email_column", &self.email_column)?,
            password_hash: quote_identifier("password_hash_column", &self.password_hash_column)?,
            pending,
            drop_links_on_password_write: self.drop_links_on_password_write,
        })
    }
}

/// A table name, split and checked.
#[derive(Debug, Clone)]
pub(crate) struct QualifiedName {
    schema: Option<String>,
    table: String,
}

impl QualifiedName {
    fn parse(setting: &'static str, text: &str) -> Result<Self> {
        let mut parts = text.split('.');
        let (schema, table) = match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, None) => (None, table),
            (Some(schema), Some(table), None) => (Some(schema), table),
            _ => {
                return Err(Error::InvalidIdentifier {
                    setting,
                    value: text.to_owned(),
                    reason: "more than one `.`",
                });
            }
        };
        for part in schema.iter().chain([&table]) {
            check_identifier(setting, part)?;
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    /// The name quoted for SQL: `"schema"."table"` or `"table"`.
    pub(crate) fn quoted(&self) -> String {
        self.with_table(&self.table)
    }

    /// A sibling object in the same schema, such as `table_suffix`, quoted.
    pub(crate) fn sibling(&self, suffix: &str) -> String {
        self.with_table(&format!("{}{suffix}", self.table))
    }

    /// A sibling object's bare name, quoted, for `CREATE INDEX name ON ...` which takes no
    /// schema.
    pub(crate) fn bare_sibling(&self, suffix: &str) -> String {
        format!("\"{}{suffix}\"", self.table)
    }

    fn with_table(&self, table: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{table}\""),
            None => format!("\"{table}\""),
        }
    }
}

/// Every configured name, checked and quoted.
#[derive(Debug, Clone)]
pub(crate) struct ValidNames {
    pub(crate) users: QualifiedName,
    pub(crate) id: String,
    pub(crate) id_type: UserIdType,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) pending: QualifiedName,
    pub(crate) drop_links_on_password_write: bool,
}

fn check_identifier(setting: &'static str, name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidIdentifier {
        setting,
        value: name.to_owned(),
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("empty")),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(invalid("must start with a letter or `_`"));
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid("only ASCII letters, digits and `_` are allowed"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(invalid("longer than 63 bytes"));
    }
    Ok(())
}

fn quote_identifier(setting: &'static str, name: &str) -> Result<String> {
    check_identifier(setting, name)?;
    Ok(format!("\"{name}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_carry_sql_are_refused() {
        for bad in [
            "",
            "users; DROP TABLE users",
            "\"users\"",
            "a.b.c",
            "1users",
            "users--",
            "us ers",
            "schema.",
            "ÿsers",
        ] {
            let config = PgStoreConfig::new().users_table(bad);
            assert!(config.validate().is_err(), "{bad:?} was accepted");
        }
        let long = "x".repeat(64);
        assert!(PgStoreConfig::new().email_column(long).validate().is_err());
    }

    #[test]
    fn valid_names_come_out_quoted() {
        let names = PgStoreConfig::new()
            .users_table("app.Accounts")
            .id_column("account_id", UserIdType::Uuid)
            .validate()
            .unwrap();

        assert_eq!(names.users.quoted(), "\"app\".\"Accounts\"");
        assert_eq!(names.id, "\"account_id\"");
        assert_eq!(names.users.sibling("_x"), "\"app\".\"Accounts_x\"");
    }

    #[test]
    fn ids_are_canonicalised_for_their_type_or_refused() {
        let uuid = UserIdType::Uuid;
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for spelling in [
            canonical,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(
                uuid.bind_text(&UserId::new(spelling)).as_deref(),
                Some(canonical)
            );
        }
        for bad in [
            "",
            "a0eebc99",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(uuid.bind_text(&UserId::new(bad)), None, "{bad:?}");
        }

        assert_eq!(
            UserIdType::BigInt.bind_text(&UserId::new("42")).as_deref(),
            Some("42")
        );
        assert_eq!(UserIdType::BigInt.bind_text(&UserId::new("4x")), None);
        assert_eq!(
            UserIdType::Text.bind_text(&UserId::new(" x ")).as_deref(),
            Some(" x ")
        );
    }
}
