//! The password-setup HTTP API served with actix-web.
//!
//! `cargo run --example actix` starts the embedded demo (see `examples/support/mod.rs` for the
//! environment variables). It answers exactly like the axum example: the handlers only move
//! bytes between actix-web and [`SetupEndpoints`].

mod support;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue,
};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse as ActixResponse, HttpServer, web};
use password_setup_http::{
    HttpResponse, MAX_BODY_BYTES, SetupEndpoints, announces_too_large_body,
    is_acceptable_request_id,
};
use tracing::Instrument as _;

type Endpoints = web::Data<SetupEndpoints>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Copies a library answer into an actix-web response.
fn respond(answer: HttpResponse) -> ActixResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = ActixResponse::build(status);
    for (name, value) in answer.headers {
        response.insert_header((name, value));
    }
    response.body(answer.body)
}

fn content_type(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

async fn request_password(endpoints: Endpoints, request: HttpRequest) -> ActixResponse {
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    respond(endpoints.request_password(authorization).await)
}

/// Whether the request announces a body over the limit: refused before any of it is read.
fn announces_too_large(request: &HttpRequest) -> bool {
    announces_too_large_body(
        request
            .headers()
            .get(CONTENT_LENGTH)
            .map(HeaderValue::as_bytes),
    )
}

async fn confirm(endpoints: Endpoints, request: HttpRequest, body: web::Payload) -> ActixResponse {
    if announces_too_large(&request) {
        return respond(endpoints.confirm_body_too_large());
    }
    let body = match body.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return respond(endpoints.confirm_body_unreadable()),
        Err(_) => return respond(endpoints.confirm_body_too_large()),
    };
    respond(endpoints.confirm(content_type(&request), &body).await)
}

async fn set_password_page(endpoints: Endpoints, request: HttpRequest) -> ActixResponse {
    let query = request.query_string();
    respond(endpoints.set_password_page((!query.is_empty()).then_some(query)))
}

async fn submit_form(
    endpoints: Endpoints,
    request: HttpRequest,
    body: web::Payload,
) -> ActixResponse {
    if announces_too_large(&request) {
        return respond(endpoints.form_body_too_large());
    }
    let body = match body.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return respond(endpoints.form_body_unreadable()),
        Err(_) => return respond(endpoints.form_body_too_large()),
    };
    respond(endpoints.submit_form(content_type(&request), &body).await)
}

async fn not_found(endpoints: Endpoints) -> ActixResponse {
    respond(endpoints.not_found())
}

/// A 405 handler naming the methods a resource serves.
fn method_not_allowed(allowed: &'static [&'static str]) -> actix_web::Route {
    web::to(
        move |endpoints: Endpoints| async move { respond(endpoints.method_not_allowed(allowed)) },
    )
}

/// Every request gets an `x-request-id` (kept if the client sent an acceptable one), a span carrying it so
/// that every log line of the request names it, and the id echoed in the response. The span is
/// at error level so that it exists whatever level the operator logs at; it records the path
/// only, since the set-password page's query holds a token.
async fn with_request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable_request_id(id))
        .map_or_else(new_request_id, str::to_owned);
    let span = tracing::error_span!(
        "request",
        method = %request.method(),
        path = %request.path(),
        request_id = %request_id,
    );
    let mut response = next.call(request).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

fn new_request_id() -> String {
    use rand::Rng as _;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The routes, ready to be added to an existing actix-web application with `.configure(routes)`.
fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/user/password")
                .route(web::put().to(request_password))
                .default_service(method_not_allowed(&["PUT"])),
        )
        .service(
            web::resource("/user/password/confirm")
                .route(web::post().to(confirm))
                .default_service(method_not_allowed(&["POST"])),
        )
        .service(
            web::resource("/set-password")
                .route(web::get().to(set_password_page))
                .route(web::head().to(set_password_page))
                .route(web::post().to(submit_form))
                .default_service(method_not_allowed(&["GET", "HEAD", "POST"])),
        );
}

fn main() {
    support::init_tracing();
    let settings = support::Settings::from_env().unwrap_or_else(|error| support::exit_with(&error));
    let listener = std::net::TcpListener::bind(settings.listen).unwrap_or_else(|error| {
        support::exit_with(&format!("LISTEN_ADDR={}: {error}", settings.listen))
    });
    let bound = listener
        .local_addr()
        .unwrap_or_else(|error| support::exit_with(&error.to_string()));

    // actix-web stops gracefully on SIGINT and SIGTERM: it stops accepting, then lets requests
    // in flight finish.
    let served = actix_web::rt::System::new().block_on(async move {
        let app = support::build(&settings, bound)
            .await
            .unwrap_or_else(|error| support::exit_with(&error));
        let endpoints: Endpoints = web::Data::from(Arc::clone(&app.endpoints));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(endpoints.clone())
                .configure(routes)
                .default_service(web::to(not_found))
                .wrap(from_fn(with_request_id))
        })
        .listen(listener)
        .unwrap_or_else(|error| support::exit_with(&format!("LISTEN_ADDR={bound}: {error}")));
        support::print_banner("actix-web", bound, &app);
        server.run().await
    });
    if let Err(error) = served {
        support::exit_with(&format!("server failed: {error}"));
    }
}
