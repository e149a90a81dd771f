//! Secret values: setup tokens, their digests, and submitted passwords.
//!
//! Every secret is a newtype whose `Debug` prints a redaction, whose value comes out only
//! through an explicitly named accessor, and whose memory is wiped when it is dropped. Tokens
//! are looked up by their SHA-256 digest, so the raw value never reaches a store.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Number of random bytes in a setup token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// Length of a token's URL-safe base64 text without padding.
const TOKEN_TEXT_LEN: usize = 43;

/// The secret carried by a set-password link.
///
/// Issued tokens hold 256 bits from a cryptographically secure generator, written as URL-safe
/// base64 without padding (43 characters). A token submitted by a client is wrapped as it
/// arrived; whether it is well formed is only decided when its digest is taken.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupToken(Zeroizing<String>);

impl SetupToken {
    /// Draws a fresh token from the thread-local CSPRNG (ChaCha, seeded by the OS), with the
    /// digest it will be stored under.
    pub(crate) fn generate() -> (Self, TokenDigest) {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        rand::rng().fill_bytes(bytes.as_mut());
        let digest = TokenDigest(Sha256::digest(bytes.as_ref()).into());
        (
            Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))),
            digest,
        )
    }

    /// Wraps a token as submitted by a client (from a form or a JSON body).
    pub fn from_submitted(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// The token's text, for building the link and nothing else.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The digest under which the token is stored, or `None` when the text cannot be a token
    /// this library issued (wrong length or alphabet). Malformed tokens never reach a store.
    pub fn digest(&self) -> Option<TokenDigest> {
        if self.0.len() != TOKEN_TEXT_LEN {
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        match URL_SAFE_NO_PAD.decode_slice(self.0.as_bytes(), bytes.as_mut()) {
            Ok(TOKEN_BYTES) => Some(TokenDigest(Sha256::digest(bytes.as_ref()).into())),
            _ => None,
        }
    }
}

impl fmt::Debug for SetupToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetupToken(<redacted>)")
    }
}

/// SHA-256 digest of a setup token's 32 bytes: what stores keep and search by.
///
/// A digest does not let anyone rebuild the token, so it may be stored and compared like any
/// key. Its `Debug` shows only a short prefix, enough to correlate rows while debugging.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Rebuilds a digest read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TryFrom<&[u8]> for TokenDigest {
    type Error = std::array::TryFromSliceError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(bytes.try_into()?))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A password as submitted by the user, before normalisation.
#[derive(Clone)]
pub struct NewPassword(Zeroizing<String>);

impl NewPassword {
    /// Wraps a submitted password.
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// The password's text as submitted.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

/// The full set-password URL mailed to the user. It contains the token, so it is a secret too.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupLink(Zeroizing<String>);

impl SetupLink {
    pub(crate) fn new(url: String) -> Self {
        Self(Zeroizing::new(url))
    }

    /// The link's text, for the email body only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SetupLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetupLink(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_url_safe_characters_and_distinct() {
        let (first, _) = SetupToken::generate();
        let (second, _) = SetupToken::generate();

        assert_eq!(first.expose_secret().len(), TOKEN_TEXT_LEN);
        assert!(
            first
                .expose_secret()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(first, second);
    }

    #[test]
    fn a_generated_token_has_a_digest_and_it_is_stable() {
        let (token, digest) = SetupToken::generate();
        let resubmitted = SetupToken::from_submitted(token.expose_secret());

        assert_eq!(token.digest(), Some(digest));
        assert_eq!(resubmitted.digest(), Some(digest));
    }

    #[test]
    fn digest_is_sha256_of_the_decoded_bytes() {
        // 32 zero bytes encode to 43 'A's; SHA-256 of 32 zero bytes is a published vector.
        let token = SetupToken::from_submitted("A".repeat(43));
        let digest = token.digest().expect("well-formed");
        let hex: String = digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        assert_eq!(
            hex,
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn malformed_submissions_have_no_digest() {
        for text in [
            "",
            "short",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}+", "A".repeat(42)),
            &format!("{}=", "A".repeat(42)),
            // Non-zero trailing bits: a second spelling of the same bytes is refused.
            &format!("{}B", "A".repeat(42)),
            &"é".repeat(21),
        ] {
            assert!(
                SetupToken::from_submitted(text).digest().is_none(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let (token, _) = SetupToken::generate();
        let password = NewPassword::new("correct horse battery staple");
        let link = SetupLink::new(format!("https://x.test/?token={}", token.expose_secret()));

        let printed = format!("{token:?} {password:?} {link:?}");

        assert!(!printed.contains(token.expose_secret()));
        assert!(!printed.contains("horse"));
        assert!(printed.contains("redacted"));
    }
}
