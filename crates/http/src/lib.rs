//! The HTTP face of password-setup, independent of any web framework.
//!
//! [`SetupEndpoints`] answers the four routes of the flow with plain [`HttpResponse`] values
//! (status, headers, body), so a handler in axum, actix-web or anything else only moves bytes
//! between its framework and these methods:
//!
//! | route | method |
//! |---|---|
//! | `PUT /user/password` | [`SetupEndpoints::request_password`] |
//! | `POST /user/password/confirm` | [`SetupEndpoints::confirm`] |
//! | `GET /set-password?token=...` | [`SetupEndpoints::set_password_page`] |
//! | `POST /set-password` (form) | [`SetupEndpoints::submit_form`] |
//!
//! Errors are JSON:API documents (`application/vnd.api+json`) for the API routes and HTML
//! pages for the browser routes; both log each occurrence under its error id. Opening the page
//! never reads or changes the token, so link scanners that prefetch it do no harm.
//! [`BlockingHasher`] keeps Argon2 off the executor's worker threads.

mod hasher;
mod page;
mod request;
mod thread_priority;

use password_setup_core::{
    ErrorObject, ErrorResponse, MEDIA_TYPE, PasswordSetup, RequestAccepted, SetupError, SetupToken,
};
use time::format_description::well_known::Rfc3339;

pub use hasher::{BlockingHasher, DEFAULT_WAITING_PER_THREAD, HashingPriority};
pub use page::Pages;
pub use request::{
    CONFIRM_TYPE, FormProblem, FormSubmission, MAX_BODY_BYTES, Submission,
    announces_too_large_body, bearer_credential, body_too_large, confirm_document,
    set_password_form, token_parameter,
};

/// Whether a client-sent request id may be kept: at most 128 characters of letters, digits,
/// `-`, `_`, `.` and `:`. Anything else is replaced, so logs never carry a client's free text.
pub fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':'))
}

/// A complete answer, ready to be copied into any framework's response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, `Content-Type` included when there is a body.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes (empty for 204).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A JSON:API error answer.
    pub fn from_error_response(response: &ErrorResponse) -> Self {
        let mut headers = vec![
            ("Content-Type", MEDIA_TYPE.to_owned()),
            ("Cache-Control", "no-store".to_owned()),
        ];
        headers.extend(response.headers.iter().cloned());
        Self {
            status: response.status,
            headers,
            body: response.body(),
        }
    }

    /// The value of the first header named `name` (ignoring case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The routes of the flow over one [`PasswordSetup`] service.
pub struct SetupEndpoints {
    service: PasswordSetup,
    pages: Pages,
}

impl SetupEndpoints {
    /// Endpoints answering with `service`.
    pub fn new(service: PasswordSetup) -> Self {
        let pages = Pages::new(*service.password_policy());
        Self { service, pages }
    }

    /// The service behind the endpoints.
    pub fn service(&self) -> &PasswordSetup {
        &self.service
    }

    /// `PUT /user/password`. `authorization` is the raw `Authorization` header, if any. The
    /// body, whatever it holds, is ignored: the recipient is always the address on record.
    pub async fn request_password(&self, authorization: Option<&[u8]>) -> HttpResponse {
        let credential = bearer_credential(authorization);
        match self.service.request(credential.as_ref()).await {
            Ok(accepted) => accepted_response(&accepted),
            Err(error) => HttpResponse::from_error_response(&ErrorResponse::from_error(&error)),
        }
    }

    /// `POST /user/password/confirm` with a JSON:API document. 204 on success.
    pub async fn confirm(&self, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
        let submission = match confirm_document(content_type, body) {
            Ok(submission) => submission,
            Err(refusal) => return HttpResponse::from_error_response(&refusal),
        };
        match self
            .service
            .confirm(&submission.token, &submission.password)
            .await
        {
            Ok(_) => HttpResponse {
                status: 204,
                headers: Vec::new(),
                body: Vec::new(),
            },
            Err(error) => HttpResponse::from_error_response(&ErrorResponse::from_error(&error)),
        }
    }

    /// `GET /set-password?token=...`: the form. `query` is the raw query string.
    ///
    /// Reads nothing from the store: opening the page must not use up or reveal anything. A
    /// parameter that cannot be a token gets an error page instead of being echoed.
    pub fn set_password_page(&self, query: Option<&str>) -> HttpResponse {
        match token_parameter(query) {
            Some(token) if token.digest().is_some() => self.pages.form(200, &token, None),
            _ => self.pages.outcome(
                400,
                "This link is not valid",
                "The link is incomplete or damaged. Copy the whole link from the email, or \
                 request a new one.",
            ),
        }
    }

    /// `POST /set-password` from the page's form: a success or error page with the matching
    /// status. Problems the user can fix re-show the form with the token kept.
    pub async fn submit_form(&self, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
        let form = match set_password_form(content_type, body) {
            Ok(form) => form,
            Err(FormProblem::MediaType) => {
                return self.pages.outcome(
                    415,
                    "Unsupported form",
                    "Submit the form from the set-password page.",
                );
            }
            Err(FormProblem::TooLarge) => {
                return self
                    .pages
                    .outcome(413, "Too much data", "The form was too large.");
            }
            Err(FormProblem::MissingToken) => {
                return self.pages.outcome(
                    400,
                    "This link is not valid",
                    "The form did not carry a link token. Open the link from the email again.",
                );
            }
        };
        let Submission { token, password } = form.submission;
        if token.digest().is_none() {
            // Not a token this library could have issued: never echo it back into the form.
            return self.pages.outcome(
                400,
                "This link is not valid",
                "The link is incomplete or damaged. Copy the whole link from the email, or \
                 request a new one.",
            );
        }
        if !form.confirmation_matches {
            return self.pages.form(
                422,
                &token,
                Some("The two passwords differ. Type the same one twice."),
            );
        }

        match self.service.confirm(&token, &password).await {
            Ok(_) => self.pages.outcome(
                200,
                "Your password is set",
                "You can now sign in with your new password.",
            ),
            Err(error) => self.error_page(&token, &error),
        }
    }

    /// Answer for a confirm body the framework stopped reading at [`MAX_BODY_BYTES`].
    pub fn confirm_body_too_large(&self) -> HttpResponse {
        HttpResponse::from_error_response(&body_too_large())
    }

    /// Answer for a form body the framework stopped reading at [`MAX_BODY_BYTES`].
    pub fn form_body_too_large(&self) -> HttpResponse {
        self.pages
            .outcome(413, "Too much data", "The form was too large.")
    }

    /// JSON:API answer for a path no route serves.
    pub fn not_found(&self) -> HttpResponse {
        HttpResponse::from_error_response(&ErrorResponse::single(ErrorObject::new(
            404,
            "route-not-found",
            "Resource not found",
            "No resource exists at this path.",
        )))
    }

    /// JSON:API answer for a method the route does not serve, with an `Allow` header naming
    /// `allowed` when it is not empty (leave it empty where the framework adds one itself).
    pub fn method_not_allowed(&self, allowed: &[&str]) -> HttpResponse {
        let mut response =
            HttpResponse::from_error_response(&ErrorResponse::single(ErrorObject::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support the request method.",
            )));
        if !allowed.is_empty() {
            response.headers.push(("Allow", allowed.join(", ")));
        }
        response
    }

    /// JSON:API answer for a confirm body that could not be read (broken chunked encoding, a
    /// connection cut mid-body): the client sent something, just not a whole body.
    pub fn confirm_body_unreadable(&self) -> HttpResponse {
        HttpResponse::from_error_response(&ErrorResponse::single(ErrorObject::new(
            400,
            "malformed-body",
            "Malformed request body",
            "The request body could not be read.",
        )))
    }

    /// Page for a form body that could not be read.
    pub fn form_body_unreadable(&self) -> HttpResponse {
        self.pages.outcome(
            400,
            "The form could not be read",
            "Submit the form from the set-password page again.",
        )
    }

    fn error_page(&self, token: &SetupToken, error: &SetupError) -> HttpResponse {
        let logged = ErrorResponse::from_error(error);
        let status = logged.status;
        match error {
            SetupError::PasswordRejected(_) => {
                self.pages.form(status, token, Some(&error.detail()))
            }
            SetupError::TokenExpired => self.pages.outcome(
                status,
                "This link has expired",
                "Links work for a limited time. Request a new one and use it soon.",
            ),
            SetupError::PasswordAlreadySet => self.pages.outcome(
                status,
                "A password is already set",
                "This account already has a password. Sign in, or use the password reset.",
            ),
            _ if error.is_overload() => {
                let mut page = self.pages.form(status, token, Some(&error.detail()));
                if let Some(seconds) = error.retry_after_seconds() {
                    page.headers.push(("Retry-After", seconds.to_string()));
                }
                page
            }
            _ if error.is_server_failure() => {
                let reference = logged
                    .document
                    .errors
                    .first()
                    .map(|object| object.id.clone())
                    .unwrap_or_default();
                self.pages.form(
                    status,
                    token,
                    Some(&format!(
                        "Something went wrong on our side; please try again. \
                         (Reference: {reference})"
                    )),
                )
            }
            _ => self.pages.outcome(
                status,
                "This link is not valid",
                "It may have been used already or replaced by a newer link. Request a new one.",
            ),
        }
    }
}

/// 202 Accepted with the link's expiry as JSON:API `meta`.
fn accepted_response(accepted: &RequestAccepted) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Accepted<'a> {
        meta: AcceptedMeta<'a>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct AcceptedMeta<'a> {
        expires_at: &'a str,
    }

    let expires_at = accepted.expires_at.format(&Rfc3339).unwrap_or_default();
    let body = serde_json::to_vec(&Accepted {
        meta: AcceptedMeta {
            expires_at: &expires_at,
        },
    })
    .unwrap_or_default();
    HttpResponse {
        status: 202,
        headers: vec![
            ("Content-Type", MEDIA_TYPE.to_owned()),
            ("Cache-Control", "no-store".to_owned()),
        ],
        body,
    }
}
