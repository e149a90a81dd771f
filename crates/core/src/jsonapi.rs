//! JSON:API error documents, framework-neutral.
//!
//! [`ErrorResponse::from_error`] is the one place a [`SetupError`] becomes an HTTP answer:
//! status, headers (`WWW-Authenticate`, `Retry-After`) and a JSON:API body. It also gives each
//! occurrence a fresh id and logs it, so an operator can find the log line a client reports.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::SetupError;

/// The JSON:API media type, for `Content-Type` of every error body.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// A JSON:API document carrying errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDocument {
    /// The errors; this library always sends exactly one.
    pub errors: Vec<ErrorObject>,
}

/// One JSON:API error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Unique per occurrence; also logged.
    pub id: String,
    /// Links about the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<ErrorLinks>,
    /// The HTTP status code, as a string.
    pub status: String,
    /// Stable, machine-readable code.
    pub code: String,
    /// Fixed summary per code.
    pub title: String,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Which part of the request caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
    /// Non-standard extra information (such as `retryAfterSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
}

/// Links of an error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorLinks {
    /// A page that explains the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
}

/// What in the request caused an error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorSource {
    /// JSON Pointer (RFC 6901) into the request document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Name of the offending query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Name of the offending request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

impl ErrorObject {
    /// An error object with a fresh id and no source, meta or links.
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            id: new_error_id(),
            links: None,
            status: status.to_string(),
            code: code.to_owned(),
            title: title.to_owned(),
            detail: detail.into(),
            source: None,
            meta: None,
        }
    }

    /// Points the error at a member of the request document.
    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.source = Some(ErrorSource {
            pointer: Some(pointer.into()),
            ..ErrorSource::default()
        });
        self
    }

    /// Points the error at a query parameter.
    #[must_use]
    pub fn with_parameter(mut self, parameter: impl Into<String>) -> Self {
        self.source = Some(ErrorSource {
            parameter: Some(parameter.into()),
            ..ErrorSource::default()
        });
        self
    }

    /// Adds one `meta` member.
    #[must_use]
    pub fn with_meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.meta
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value.into());
        self
    }
}

/// A ready-to-send error answer: status, headers and JSON:API document.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers beyond `Content-Type` (which is always [`MEDIA_TYPE`]).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub document: ErrorDocument,
}

impl ErrorResponse {
    /// An answer carrying a single error object, with no extra headers.
    pub fn single(object: ErrorObject) -> Self {
        let status = object.status.parse().unwrap_or(500);
        Self {
            status,
            headers: Vec::new(),
            document: ErrorDocument {
                errors: vec![object],
            },
        }
    }

    /// Maps a service error to its answer and logs the occurrence under the new error id:
    /// server failures as errors (with their cause), refusals that may signal abuse as
    /// warnings, ordinary refusals at debug level.
    pub fn from_error(error: &SetupError) -> Self {
        let mut object =
            ErrorObject::new(error.status(), error.code(), error.title(), error.detail());
        if let Some(pointer) = error.pointer() {
            object = object.with_pointer(pointer);
        }
        if let Some(seconds) = error.retry_after_seconds() {
            object = object.with_meta("retryAfterSeconds", seconds);
        }
        log_occurrence(error, &object.id);

        let mut response = Self::single(object);
        match error {
            SetupError::MissingCredential => {
                response
                    .headers
                    .push(("WWW-Authenticate", "Bearer".to_owned()));
            }
            SetupError::InvalidCredential | SetupError::LinkedIdentityMissing => {
                response.headers.push((
                    "WWW-Authenticate",
                    r#"Bearer error="invalid_token""#.to_owned(),
                ));
            }
            _ => {}
        }
        if let Some(seconds) = error.retry_after_seconds() {
            response.headers.push(("Retry-After", seconds.to_string()));
        }
        response
    }

    /// The body, serialised.
    pub fn body(&self) -> Vec<u8> {
        // Serialising plain strings and maps of JSON values cannot fail; an empty document is
        // still a well-formed fallback.
        serde_json::to_vec(&self.document).unwrap_or_else(|_| br#"{"errors":[]}"#.to_vec())
    }
}

impl From<&SetupError> for ErrorResponse {
    fn from(error: &SetupError) -> Self {
        Self::from_error(error)
    }
}

fn log_occurrence(error: &SetupError, error_id: &str) {
    let code = error.code();
    if error.is_overload() {
        // Expected under bursts and answered with a retry time. Logged at debug level: a line
        // per refusal at warn would flood the log exactly when the server is busiest. The
        // hasher's counters are the place to watch for sustained overload.
        tracing::debug!(error_id, code, "password setup refused: server busy");
    } else if error.is_server_failure() {
        // The cause chain of store, mail and hashing errors never holds secrets: adapters wrap
        // transport errors, and no port receives a raw token or password inside an error.
        let cause = std::error::Error::source(error).map(ToString::to_string);
        tracing::error!(error_id, code, cause, "password setup failed");
    } else if matches!(
        error,
        SetupError::TooManyRequests { .. }
            | SetupError::InvalidCredential
            | SetupError::TokenInvalid
    ) {
        tracing::warn!(error_id, code, "password setup refused");
    } else {
        tracing::debug!(error_id, code, "password setup refused");
    }
}

/// A 20-character id from 100 random bits, in lowercase base-32 (like the API's example ids).
fn new_error_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[(rng.next_u32() % 32) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::PolicyViolation;

    #[test]
    fn missing_linked_identity_matches_the_api_example() {
        let response = ErrorResponse::from_error(&SetupError::LinkedIdentityMissing);
        let body: Value = serde_json::from_slice(&response.body()).unwrap();
        let error = &body["errors"][0];

        assert_eq!(response.status, 401);
        assert_eq!(error["status"], "401");
        assert_eq!(error["code"], "missing-linked-identity");
        assert_eq!(
            error["title"],
            "Missing linked identity for authorized access"
        );
        assert_eq!(
            error["detail"],
            "Linked identity is needed to access this resource, please check why the user does \
             not have a linked identity"
        );
        assert_eq!(error["id"].as_str().unwrap().len(), 20);
        assert!(error.get("source").is_none());
    }

    #[test]
    fn every_occurrence_gets_its_own_id() {
        let first = ErrorResponse::from_error(&SetupError::UserNotFound);
        let second = ErrorResponse::from_error(&SetupError::UserNotFound);
        assert_ne!(first.document.errors[0].id, second.document.errors[0].id);
    }

    #[test]
    fn rate_limit_carries_retry_after_header_and_meta() {
        let error = SetupError::TooManyRequests {
            retry_after: time::Duration::seconds(90),
        };
        let response = ErrorResponse::from_error(&error);

        assert_eq!(response.status, 429);
        assert!(response.headers.contains(&("Retry-After", "90".to_owned())));
        assert_eq!(
            response.document.errors[0].meta.as_ref().unwrap()["retryAfterSeconds"],
            json!(90)
        );
    }

    #[test]
    fn unauthorised_answers_carry_a_bearer_challenge() {
        for error in [
            SetupError::MissingCredential,
            SetupError::InvalidCredential,
            SetupError::LinkedIdentityMissing,
        ] {
            let response = ErrorResponse::from_error(&error);
            let challenge = response
                .headers
                .iter()
                .find(|(name, _)| *name == "WWW-Authenticate");
            assert!(challenge.is_some_and(|(_, value)| value.starts_with("Bearer")));
        }
    }

    #[test]
    fn policy_errors_point_at_the_password() {
        let error = SetupError::PasswordRejected(PolicyViolation::MatchesEmail);
        let body: Value =
            serde_json::from_slice(&ErrorResponse::from_error(&error).body()).unwrap();
        assert_eq!(
            body["errors"][0]["source"]["pointer"],
            "/data/attributes/password"
        );
        assert_eq!(body["errors"][0]["status"], "422");
    }
}
