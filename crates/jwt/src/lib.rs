//! An [`IdentityProvider`] for password-setup that accepts HS256 JSON Web Tokens.
//!
//! A bearer credential is accepted when it is a JWT signed with the shared secret using HS256
//! (no other algorithm, so a token cannot pick a weaker one), carries a `sub` (the user id)
//! and an `exp` in the future, and, if it has an `nbf`, is already valid. A boolean claim
//! `linked_identity` set to `false` means the user still has to link a third-party identity:
//! the request is refused with `missing-linked-identity`.
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
    /// The secret cannot be used as an HS256 key (it is empty, for one).
    #[error("the JWT secret cannot be used as an HS256 key")]
    InvalidSecret,
}

impl JwtIdentityProvider {
    /// A provider accepting tokens signed with `secret`, judging expiry by `clock`.
    ///
    /// # Errors
    /// [`JwtError::InvalidSecret`] if the secret is empty or otherwise unusable.
    pub fn hs256(secret: &[u8], clock: Arc<dyn Clock>) -> Result<Self, JwtError> {
        if secret.is_empty() {
            return Err(JwtError::InvalidSecret);
        }
        let key = DecodingKey::from_secret(secret).map_err(|_| JwtError::InvalidSecret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expiry and not-before are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(Self {
            key,
            validation,
            clock,
        })
    }
}

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
