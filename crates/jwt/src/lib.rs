//! An [`IdentityProvider`] for password-setup that accepts HS256 JSON Web Tokens.
//!
//! A bearer credential is accepted when it is a JWT signed with the shared secret using HS256
//! (no other algorithm, so a token cannot pick a weaker one), carries a `sub` (the user id)
//! and an `exp` in the future, and, if it has an `nbf`, is already valid. A boolean claim
//! `linked_identity` set to `false` means the user still has to link a third-party identity:
//! the request is refused with `missing-linked-identity`.
//!
//! If the identity system issues tokens for several purposes with the same secret, name the
//! issuer and audience this service accepts ([`JwtIdentityProvider::require_issuer`],
//! [`JwtIdentityProvider::require_audience`]); without them, `iss` and `aud` are not checked.
//!
//! Time is read from the service's [`Clock`], not from the system, so tests control expiry.
//! Signature checking and decoding are the `jsonwebtoken` crate's.

use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use password_setup_core::{BearerCredential, Clock, IdentityError, IdentityProvider, UserId};
use serde::Deserialize;

/// The claims this provider reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    linked_identity: Option<bool>,
}

/// Verifies HS256 JWTs with a shared secret.
pub struct JwtIdentityProvider {
    key: DecodingKey,
    validation: Validation,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtIdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIdentityProvider")
            .field("algorithm", &"HS256")
            .finish_non_exhaustive()
    }
}

/// Why a provider could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The secret is shorter than 32 bytes, or otherwise unusable as an HS256 key.
    #[error("the JWT secret must be at least 32 bytes long")]
    InvalidSecret,
}

impl JwtIdentityProvider {
    /// A provider accepting tokens signed with `secret`, judging expiry by `clock`.
    ///
    /// # Errors
    /// [`JwtError::InvalidSecret`] if the secret is empty or otherwise unusable.
    pub fn hs256(secret: &[u8], clock: Arc<dyn Clock>) -> Result<Self, JwtError> {
        // RFC 7518 asks for a key at least as long as the hash output.
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtError::InvalidSecret);
        }
        let key = DecodingKey::from_secret(secret).map_err(|_| JwtError::InvalidSecret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expiry and not-before are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        // Audiences are checked only when one is required; otherwise any `aud` is accepted.
        validation.validate_aud = false;
        Ok(Self {
            key,
            validation,
            clock,
        })
    }
}

impl JwtIdentityProvider {
    /// Accepts only tokens whose `iss` is `issuer`.
    #[must_use]
    pub fn require_issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self
    }

    /// Accepts only tokens whose `aud` names `audience`.
    #[must_use]
    pub fn require_audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self
    }
}

/// The shortest secret accepted: 256 bits, the output size of HS256's hash.
const MIN_SECRET_BYTES: usize = 32;

#[async_trait]
impl IdentityProvider for JwtIdentityProvider {
    async fn identify(&self, credential: &BearerCredential) -> Result<UserId, IdentityError> {
        let claims = decode::<Claims>(credential.expose_secret(), &self.key, &self.validation)
            .map_err(|_| IdentityError::InvalidCredential)?
            .claims;

        let now = self.clock.now().unix_timestamp();
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(IdentityError::InvalidCredential);
        }
        if claims.sub.is_empty() {
            return Err(IdentityError::InvalidCredential);
        }
        if claims.linked_identity == Some(false) {
            return Err(IdentityError::LinkedIdentityMissing);
        }
        Ok(UserId::new(claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};
    use time::OffsetDateTime;

    use super::*;

    const SECRET: &[u8] = b"a test secret of reasonable length";
    const NOW: i64 = 1_800_000_000;

    struct FixedClock(Mutex<OffsetDateTime>);

    impl Clock for FixedClock {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }

    fn provider() -> JwtIdentityProvider {
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        JwtIdentityProvider::hs256(SECRET, Arc::new(FixedClock(Mutex::new(now)))).unwrap()
    }

    fn token(claims: Value, algorithm: Algorithm, secret: &[u8]) -> BearerCredential {
        let key = EncodingKey::from_secret(secret).unwrap();
        let jwt = encode(&Header::new(algorithm), &claims, &key);
        BearerCredential::new(jwt.unwrap())
    }

    async fn identify(claims: Value) -> Result<UserId, IdentityError> {
        provider()
            .identify(&token(claims, Algorithm::HS256, SECRET))
            .await
    }

    #[tokio::test]
    async fn a_valid_token_names_its_subject() {
        let user = identify(json!({"sub": "42", "exp": NOW + 60}))
            .await
            .unwrap();
        assert_eq!(user, UserId::new("42"));
        let linked = identify(json!({"sub": "42", "exp": NOW + 60, "linked_identity": true}));
        assert!(linked.await.is_ok());
    }

    #[tokio::test]
    async fn expiry_and_not_before_are_judged_by_the_clock() {
        for claims in [
            json!({"sub": "42", "exp": NOW}),
            json!({"sub": "42", "exp": NOW - 1}),
            json!({"sub": "42", "exp": NOW + 60, "nbf": NOW + 1}),
        ] {
            let refused = identify(claims.clone()).await;
            assert!(
                matches!(refused, Err(IdentityError::InvalidCredential)),
                "{claims}"
            );
        }
        assert!(
            identify(json!({"sub": "42", "exp": NOW + 1, "nbf": NOW}))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn audiences_and_issuers_pass_unless_required_and_then_must_match() {
        let claims = json!({"sub": "42", "exp": NOW + 60, "aud": "api", "iss": "idp"});
        assert!(identify(claims.clone()).await.is_ok());

        let strict = provider().require_issuer("idp").require_audience("api");
        let credential = token(claims, Algorithm::HS256, SECRET);
        assert!(strict.identify(&credential).await.is_ok());
        for other in [
            json!({"sub": "42", "exp": NOW + 60, "aud": "other", "iss": "idp"}),
            json!({"sub": "42", "exp": NOW + 60, "aud": "api", "iss": "other"}),
            json!({"sub": "42", "exp": NOW + 60}),
        ] {
            let refused = strict
                .identify(&token(other.clone(), Algorithm::HS256, SECRET))
                .await;
            assert!(
                matches!(refused, Err(IdentityError::InvalidCredential)),
                "{other}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let clock = Arc::new(FixedClock(Mutex::new(now)));
        assert!(JwtIdentityProvider::hs256(b"short", clock).is_err());
    }

    #[tokio::test]
    async fn a_missing_linked_identity_is_its_own_refusal() {
        let refused = identify(json!({"sub": "42", "exp": NOW + 60, "linked_identity": false}));
        assert!(matches!(
            refused.await,
            Err(IdentityError::LinkedIdentityMissing)
        ));
    }

    #[tokio::test]
    async fn wrong_secrets_algorithms_and_shapes_are_invalid() {
        let provider = provider();
        let claims = json!({"sub": "42", "exp": NOW + 60});
        let cases = [
            token(claims.clone(), Algorithm::HS256, b"another secret"),
            token(claims.clone(), Algorithm::HS512, SECRET),
            token(json!({"exp": NOW + 60}), Algorithm::HS256, SECRET),
            token(json!({"sub": "42"}), Algorithm::HS256, SECRET),
            token(
                json!({"sub": "", "exp": NOW + 60}),
                Algorithm::HS256,
                SECRET,
            ),
            BearerCredential::new("not.a.jwt"),
            BearerCredential::new(""),
        ];
        for credential in cases {
            let refused = provider.identify(&credential).await;
            assert!(matches!(refused, Err(IdentityError::InvalidCredential)));
        }
    }
}
