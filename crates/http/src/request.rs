//! Reading what a client sent: the bearer credential, the confirm document, the set-password
//! form. Every refusal is a JSON:API error naming the member or header at fault.

use password_setup_core::{
    BearerCredential, ErrorObject, ErrorResponse, NewPassword, PASSWORD_POINTER, SetupToken,
    TOKEN_POINTER,
};
use serde_json::Value;

/// The largest confirm body accepted, in bytes. A maximal password, even with every character
/// JSON-escaped as a surrogate pair, fits several times over.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The JSON:API `type` of a confirm document's primary data.
pub const CONFIRM_TYPE: &str = "passwordSetup";

/// A token and a new password, as submitted.
#[derive(Debug)]
pub struct Submission {
    /// The token from the link.
    pub token: SetupToken,
    /// The new password.
    pub password: NewPassword,
}

/// Reads a bearer credential from an `Authorization` header value.
///
/// No header, or one for another scheme, yields `None` (the client sent no bearer credential).
/// A header that is not valid text, or a `Bearer` header without a credential, yields an
/// unusable credential, which the identity provider then refuses as invalid.
pub fn bearer_credential(authorization: Option<&[u8]>) -> Option<BearerCredential> {
    let value = authorization?;
    let Ok(text) = std::str::from_utf8(value) else {
        return Some(BearerCredential::new(String::new()));
    };
    let (scheme, credential) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| BearerCredential::new(credential.trim()))
}

fn bad_request(code: &str, title: &str, detail: impl Into<String>, pointer: &str) -> ErrorResponse {
    ErrorResponse::single(ErrorObject::new(400, code, title, detail).with_pointer(pointer))
}

/// Answer for a body over [`MAX_BODY_BYTES`].
pub fn body_too_large() -> ErrorResponse {
    ErrorResponse::single(ErrorObject::new(
        413,
        "body-too-large",
        "Request body too large",
        format!("The request body must not exceed {MAX_BODY_BYTES} bytes."),
    ))
}

/// Whether a request's `Content-Length` header announces a body over [`MAX_BODY_BYTES`], so
/// that it can be refused before any of the body arrives rather than after waiting for it.
/// Without the header, or with one that is not a number, the body is read up to the limit as
/// usual (the framework refuses a malformed length itself).
pub fn announces_too_large_body(content_length: Option<&[u8]>) -> bool {
    content_length
        .and_then(|value| std::str::from_utf8(value).ok())
        .is_some_and(|text| match text.trim().parse::<u64>() {
            Ok(length) => length > MAX_BODY_BYTES as u64,
            Err(error) => *error.kind() == std::num::IntErrorKind::PosOverflow,
        })
}

/// Whether a `Content-Type` names `essence` (ignoring case and parameters such as charset).
fn media_type_is(content_type: Option<&str>, essences: &[&str]) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essences
                .iter()
                .any(|expected| essence.trim().eq_ignore_ascii_case(expected))
        })
}

fn unsupported_media_type(expected: &str) -> ErrorResponse {
    let mut object = ErrorObject::new(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        format!("Send the request body as {expected}."),
    );
    object.source = Some(password_setup_core::ErrorSource {
        header: Some("Content-Type".to_owned()),
        ..Default::default()
    });
    ErrorResponse::single(object)
}

/// Parses `POST /user/password/confirm`:
/// `{"data":{"type":"passwordSetup","attributes":{"token":"...","password":"..."}}}`, sent as
/// `application/vnd.api+json` or `application/json`.
///
/// # Errors
/// 415 for another media type, 413 for an oversized body, 400 for malformed JSON or a missing
/// or mistyped member, with `source.pointer` naming it.
pub fn confirm_document(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Submission, ErrorResponse> {
    if !media_type_is(
        content_type,
        &[password_setup_core::MEDIA_TYPE, "application/json"],
    ) {
        return Err(unsupported_media_type("application/vnd.api+json"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        // serde_json's message names a line and column, never the content.
        bad_request(
            "malformed-json",
            "Malformed JSON",
            format!("The body is not valid JSON: {error}."),
            "",
        )
    })?;

    let data = member(&document, "/data", Value::is_object, "an object")?;
    let kind = member(data, "/data/type", Value::is_string, "a string")?;
    if kind.as_str() != Some(CONFIRM_TYPE) {
        return Err(bad_request(
            "invalid-member",
            "Invalid member",
            format!("The primary data must be of type \"{CONFIRM_TYPE}\"."),
            "/data/type",
        ));
    }
    let attributes = member(data, "/data/attributes", Value::is_object, "an object")?;
    let token = member(attributes, TOKEN_POINTER, Value::is_string, "a string")?;
    let password = member(attributes, PASSWORD_POINTER, Value::is_string, "a string")?;

    Ok(Submission {
        token: SetupToken::from_submitted(token.as_str().unwrap_or_default()),
        password: NewPassword::new(password.as_str().unwrap_or_default()),
    })
}

/// The member at the last segment of `pointer` inside `parent`, if it has the expected shape.
fn member<'a>(
    parent: &'a Value,
    pointer: &str,
    shape: fn(&Value) -> bool,
    expected: &str,
) -> Result<&'a Value, ErrorResponse> {
    let name = pointer.rsplit('/').next().unwrap_or_default();
    let container = parent.as_object();
    match container.and_then(|object| object.get(name)) {
        None => Err(bad_request(
            "missing-member",
            "Missing member",
            format!("The member {pointer} is required."),
            pointer,
        )),
        Some(value) if !shape(value) => Err(bad_request(
            "invalid-member",
            "Invalid member",
            format!("The member {pointer} must be {expected}."),
            pointer,
        )),
        Some(value) => Ok(value),
    }
}

/// What the set-password form sent.
#[derive(Debug)]
pub struct FormSubmission {
    /// Token and password.
    pub submission: Submission,
    /// Whether the confirmation field matched the password.
    pub confirmation_matches: bool,
}

/// Why the form could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormProblem {
    /// Not `application/x-www-form-urlencoded`.
    MediaType,
    /// Over [`MAX_BODY_BYTES`].
    TooLarge,
    /// The token field is missing.
    MissingToken,
}

/// Parses `POST /set-password` (form-encoded: `token`, `password`, `password_confirmation`).
///
/// # Errors
/// A [`FormProblem`] when the body cannot be a submission of the form.
pub fn set_password_form(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<FormSubmission, FormProblem> {
    if !media_type_is(content_type, &["application/x-www-form-urlencoded"]) {
        return Err(FormProblem::MediaType);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(FormProblem::TooLarge);
    }
    let mut token = None;
    let mut password = String::new();
    let mut confirmation = String::new();
    for (name, value) in form_urlencoded::parse(body) {
        match name.as_ref() {
            "token" => token = Some(value.into_owned()),
            "password" => password = value.into_owned(),
            "password_confirmation" => confirmation = value.into_owned(),
            _ => {}
        }
    }
    let token = token.ok_or(FormProblem::MissingToken)?;
    let confirmation_matches = password == confirmation;
    Ok(FormSubmission {
        submission: Submission {
            token: SetupToken::from_submitted(token),
            password: NewPassword::new(password),
        },
        confirmation_matches,
    })
}

/// The `token` parameter of a query string, if present.
pub fn token_parameter(query: Option<&str>) -> Option<SetupToken> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| SetupToken::from_submitted(value.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON_API: Option<&str> = Some("application/vnd.api+json");

    fn refusal(content_type: Option<&str>, body: &str) -> (u16, String, Option<String>) {
        let response = confirm_document(content_type, body.as_bytes()).unwrap_err();
        let error = &response.document.errors[0];
        let pointer = error
            .source
            .as_ref()
            .and_then(|source| source.pointer.clone());
        (response.status, error.code.clone(), pointer)
    }

    #[test]
    fn a_well_formed_document_is_read() {
        let body =
            r#"{"data":{"type":"passwordSetup","attributes":{"token":"t","password":"p w"}}}"#;
        for content_type in [JSON_API, Some("application/json; charset=utf-8")] {
            let submission = confirm_document(content_type, body.as_bytes()).unwrap();
            assert_eq!(submission.token.expose_secret(), "t");
            assert_eq!(submission.password.expose_secret(), "p w");
        }
    }

    #[test]
    fn each_malformed_document_names_the_member_at_fault() {
        let cases = [
            ("{", 400, "malformed-json", ""),
            ("[]", 400, "missing-member", "/data"),
            (r#"{"data":[]}"#, 400, "invalid-member", "/data"),
            (r#"{"data":{}}"#, 400, "missing-member", "/data/type"),
            (
                r#"{"data":{"type":"user"}}"#,
                400,
                "invalid-member",
                "/data/type",
            ),
            (
                r#"{"data":{"type":"passwordSetup"}}"#,
                400,
                "missing-member",
                "/data/attributes",
            ),
            (
                r#"{"data":{"type":"passwordSetup","attributes":{"password":"x"}}}"#,
                400,
                "missing-member",
                "/data/attributes/token",
            ),
            (
                r#"{"data":{"type":"passwordSetup","attributes":{"token":"t","password":7}}}"#,
                400,
                "invalid-member",
                "/data/attributes/password",
            ),
        ];
        for (body, status, code, pointer) in cases {
            assert_eq!(
                refusal(JSON_API, body),
                (status, code.to_owned(), Some(pointer.to_owned())),
                "{body}"
            );
        }
    }

    #[test]
    fn other_media_types_and_huge_bodies_are_refused() {
        assert_eq!(refusal(Some("text/plain"), "{}").0, 415);
        assert_eq!(refusal(None, "{}").0, 415);
        let huge = format!("\"{}\"", "a".repeat(MAX_BODY_BYTES));
        assert_eq!(refusal(JSON_API, &huge).0, 413);
    }

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        let read =
            |header: &[u8]| bearer_credential(Some(header)).map(|c| c.expose_secret().to_owned());
        assert_eq!(read(b"Bearer abc"), Some("abc".to_owned()));
        assert_eq!(read(b"bearer   abc "), Some("abc".to_owned()));
        assert_eq!(read(b"Bearer"), Some(String::new()));
        assert_eq!(read(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(read(b"\xff\xfe"), Some(String::new()));
        assert!(bearer_credential(None).is_none());
    }

    #[test]
    fn the_form_is_read_and_the_confirmation_compared() {
        let form = set_password_form(
            Some("application/x-www-form-urlencoded"),
            b"token=abc&password=a+b%26c&password_confirmation=a+b%26c",
        )
        .unwrap();
        assert_eq!(form.submission.password.expose_secret(), "a b&c");
        assert!(form.confirmation_matches);

        let missing = set_password_form(Some("application/x-www-form-urlencoded"), b"password=x");
        assert_eq!(missing.unwrap_err(), FormProblem::MissingToken);
        assert_eq!(
            set_password_form(Some("application/json"), b"").unwrap_err(),
            FormProblem::MediaType
        );
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        let token = token_parameter(Some("a=1&token=x%2Dy")).unwrap();
        assert_eq!(token.expose_secret(), "x-y");
        assert!(token_parameter(Some("a=1")).is_none());
        assert!(token_parameter(None).is_none());
    }

    #[test]
    fn only_a_declared_length_over_the_limit_is_refused_before_reading() {
        let limit = MAX_BODY_BYTES.to_string();
        let over = (MAX_BODY_BYTES + 1).to_string();
        assert!(announces_too_large_body(Some(over.as_bytes())));
        assert!(announces_too_large_body(Some(b"99999999999")));
        assert!(announces_too_large_body(Some(b"99999999999999999999999")));
        for within in [
            Some(limit.as_bytes()),
            Some(b"0".as_slice()),
            Some(b"not a number"),
            None,
        ] {
            assert!(!announces_too_large_body(within), "{within:?}");
        }
    }
}
