//! The per-user data the state machine reads and writes: who the user is, which of the three
//! setup states they are in, and when setup emails were sent.

use std::fmt;

use time::OffsetDateTime;

use crate::secret::TokenDigest;

/// Identifies a user in the embedding backend's store.
///
/// Kept as text so that any key type fits (`text`, `uuid`, `bigint`); adapters convert at their
/// boundary.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Wraps an identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The email address a user has on record: the only address setup emails ever go to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Wraps an address as stored. Mail adapters parse it before use; the core only compares.
    pub fn new(address: impl Into<String>) -> Self {
        Self(address.into())
    }

    /// The address's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses are personal data; logs and panics get the domain only.
        let domain = self.0.rsplit_once('@').map_or("?", |(_, domain)| domain);
        write!(f, "EmailAddress(…@{domain})")
    }
}

/// A user as the store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user's identifier.
    pub id: UserId,
    /// The user's address on record.
    pub email: EmailAddress,
}

/// The outstanding set-password link of a user: one token, by digest, and its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSetup {
    /// Digest of the token in the most recent link.
    pub digest: TokenDigest,
    /// When the token was issued and its email sent.
    pub issued_at: OffsetDateTime,
    /// The first instant at which the token no longer works.
    pub expires_at: OffsetDateTime,
}

impl PendingSetup {
    /// Whether the token still works at `now`. Expiry is an instant: valid strictly before it.
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

/// Where a user stands. A user has at most one pending token, and a user with a password has
/// none that counts: a store that still holds a token row for such a user reports
/// [`SetupState::PasswordSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupState {
    /// No password and no outstanding link.
    NoPassword,
    /// No password yet; one link is outstanding (possibly expired).
    Pending(PendingSetup),
    /// The user has a password; this flow no longer applies.
    PasswordSet,
}

/// A store's version stamp of a user's setup data, for compare-and-set writes.
///
/// Stores change it on every write to the user's setup data (pending token or mail history),
/// so a write conditioned on it fails if anything was written since the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Revision(pub u64);

/// Instants at which setup emails were sent to a user, oldest first.
///
/// Only sends inside the rolling cap window matter; the service drops older ones before it
/// writes the history back, so the list stays as short as the cap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailHistory(Vec<OffsetDateTime>);

impl MailHistory {
    /// Builds a history from send instants in any order.
    pub fn new(mut sends: Vec<OffsetDateTime>) -> Self {
        sends.sort_unstable();
        Self(sends)
    }

    /// The send instants, oldest first.
    pub fn sends(&self) -> &[OffsetDateTime] {
        &self.0
    }

    /// The sends after `since`, oldest first.
    pub(crate) fn since(&self, since: OffsetDateTime) -> Self {
        Self(
            self.0
                .iter()
                .copied()
                .filter(|sent| *sent > since)
                .collect(),
        )
    }

    /// This history with one more send.
    pub(crate) fn with_send(&self, at: OffsetDateTime) -> Self {
        let mut sends = self.0.clone();
        sends.push(at);
        Self::new(sends)
    }

    /// Removes one send at exactly `at`, if there is one. Stores use this when a send that was
    /// recorded ahead of delivery turns out to have failed.
    pub fn remove_send(&mut self, at: OffsetDateTime) {
        if let Some(index) = self.0.iter().position(|sent| *sent == at) {
            self.0.remove(index);
        }
    }
}

/// Everything the service needs to decide about one user, read in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRecord {
    /// The user.
    pub account: Account,
    /// The user's setup state.
    pub state: SetupState,
    /// Recent setup emails, for the resend cooldown and the daily cap.
    pub history: MailHistory,
    /// Version stamp for the next conditional write.
    pub revision: Revision,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_pending_token_is_live_until_the_instant_of_expiry() {
        let expires_at = datetime!(2026-01-02 00:00:00 UTC);
        let pending = PendingSetup {
            digest: TokenDigest::from_bytes([0; 32]),
            issued_at: datetime!(2026-01-01 00:00:00 UTC),
            expires_at,
        };

        assert!(pending.is_live_at(expires_at - time::Duration::nanoseconds(1)));
        assert!(!pending.is_live_at(expires_at));
    }

    #[test]
    fn history_keeps_sends_sorted_and_removes_exactly_one() {
        let t1 = datetime!(2026-01-01 10:00 UTC);
        let t2 = datetime!(2026-01-01 11:00 UTC);
        let mut history = MailHistory::new(vec![t2, t1]).with_send(t2);

        history.remove_send(t2);

        assert_eq!(history.sends(), &[t1, t2]);
        assert_eq!(history.since(t1).sends(), &[t2]);
    }

    #[test]
    fn email_debug_hides_the_local_part() {
        let printed = format!("{:?}", EmailAddress::new("alice@example.test"));
        assert!(!printed.contains("alice"));
    }
}
