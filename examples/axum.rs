//! The password-setup HTTP API served with axum.
//!
//! `cargo run --example axum` starts the embedded demo (see `examples/support/mod.rs` for the
//! environment variables). The handlers only move bytes between axum and
//! [`SetupEndpoints`]; every decision is the library's.
//!
//! For `benches/load.sh` only, `BENCH_BASELINE_ROUTE=1` also serves `PUT /bench/baseline`: a
//! handler that does none of the library's work and answers like an accepted request, so that
//! the server's own cost per request can be measured beside the library's.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http_body_util::LengthLimitError;
use password_setup_http::{
    HttpResponse, MAX_BODY_BYTES, SetupEndpoints, announces_too_large_body,
    is_acceptable_request_id,
};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

type Endpoints = State<Arc<SetupEndpoints>>;

/// Copies a library answer into an axum response.
fn respond(answer: HttpResponse) -> Response {
    let mut response = Response::builder().status(answer.status);
    for (name, value) in answer.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(answer.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

/// Takes the whole request rather than a `HeaderMap`, which axum would clone, to borrow the one
/// header it reads.
async fn request_password(State(endpoints): Endpoints, request: Request) -> Response {
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| value.as_bytes());
    respond(endpoints.request_password(authorization).await)
}

/// Whether reading a body failed because it was over the limit (rather than broken).
fn over_the_limit(error: &axum::Error) -> bool {
    std::error::Error::source(error).is_some_and(|cause| cause.is::<LengthLimitError>())
}

/// Whether the request announces a body over the limit: refused before any of it is read.
fn announces_too_large(headers: &HeaderMap) -> bool {
    announces_too_large_body(headers.get(CONTENT_LENGTH).map(|value| value.as_bytes()))
}

async fn confirm(State(endpoints): Endpoints, request: Request) -> Response {
    if announces_too_large(request.headers()) {
        return respond(endpoints.confirm_body_too_large());
    }
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) if over_the_limit(&error) => return respond(endpoints.confirm_body_too_large()),
        Err(_) => return respond(endpoints.confirm_body_unreadable()),
    };
    respond(endpoints.confirm(content_type(&parts.headers), &body).await)
}

async fn set_password_page(State(endpoints): Endpoints, uri: Uri) -> Response {
    respond(endpoints.set_password_page(uri.query()))
}

async fn submit_form(State(endpoints): Endpoints, request: Request) -> Response {
    if announces_too_large(request.headers()) {
        return respond(endpoints.form_body_too_large());
    }
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) if over_the_limit(&error) => return respond(endpoints.form_body_too_large()),
        Err(_) => return respond(endpoints.form_body_unreadable()),
    };
    respond(
        endpoints
            .submit_form(content_type(&parts.headers), &body)
            .await,
    )
}

/// The routes, ready to be merged into an existing axum application.
fn routes(endpoints: Arc<SetupEndpoints>) -> Router {
    let not_found = endpoints.clone();
    let not_allowed = endpoints.clone();
    Router::new()
        .route("/user/password", put(request_password))
        .route("/user/password/confirm", post(confirm))
        .route("/set-password", get(set_password_page).post(submit_form))
        .fallback(move || async move { respond(not_found.not_found()) })
        // axum adds the `Allow` header to these answers itself.
        .method_not_allowed_fallback(
            move || async move { respond(not_allowed.method_not_allowed(&[])) },
        )
        .with_state(endpoints)
}

/// The answer of an accepted `PUT /user/password`, the same headers and a body of the same
/// size, built without the library: what the server costs when the library does nothing.
async fn baseline() -> Response {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_TYPE, password_setup::MEDIA_TYPE)
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from(
            r#"{"meta":{"expiresAt":"2026-01-05T09:00:00.123456789Z"}}"#,
        ))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Drops a client's `x-request-id` that is too long or holds other than plain characters, so
/// that a fresh one is made instead and logs never carry a client's free text.
async fn drop_unacceptable_request_id(mut request: Request) -> Request {
    let acceptable = request
        .headers()
        .get("x-request-id")
        .map(|value| value.to_str().is_ok_and(is_acceptable_request_id));
    if acceptable == Some(false) {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// Every request gets an `x-request-id` (kept if the client sent an acceptable one), a span
/// carrying it so that every log line of the request names it, and the id echoed in the
/// response. The span is at error level so that it exists whatever level the operator logs at;
/// it records the path only, since the set-password page's query holds a token. The library
/// logs each error it answers under its error id, at a level that suits it (a `server-busy`
/// refusal at debug, since a burst of them would flood the log), so the trace layer's own line
/// for every 5xx answer is kept at debug too.
fn with_request_ids(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    tracing::error_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                    )
                })
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unacceptable_request_id))
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() {
    support::init_tracing();
    let settings = support::Settings::from_env().unwrap_or_else(|error| support::exit_with(&error));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .unwrap_or_else(|error| {
            support::exit_with(&format!("LISTEN_ADDR={}: {error}", settings.listen))
        });
    let bound = listener
        .local_addr()
        .unwrap_or_else(|error| support::exit_with(&error.to_string()));
    let app = support::build(&settings, bound)
        .await
        .unwrap_or_else(|error| support::exit_with(&error));
    support::print_banner("axum", bound, &app);

    let mut routes = routes(app.endpoints.clone());
    if std::env::var_os("BENCH_BASELINE_ROUTE").is_some_and(|value| value == "1") {
        routes = Router::new()
            .route("/bench/baseline", put(baseline))
            .merge(routes);
    }
    let router = with_request_ids(routes);
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        support::exit_with(&format!("server failed: {error}"));
    }
}
