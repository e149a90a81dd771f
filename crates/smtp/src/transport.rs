//! The way to the SMTP server: the endpoint read from an SMTP URL, and a small pool of
//! connections that are opened with `TCP_NODELAY` and dropped whenever a step fails or times
//! out.
//!
//! # Why not lettre's own pooled transport
//!
//! lettre 0.11.23 leaves Nagle's algorithm on and writes a message body and its closing dot as
//! two writes. The dot then waits for the server's delayed ACK of the body, about 40 ms on
//! Linux, so one pooled connection carries a few hundred messages per second instead of
//! thousands. lettre offers no way to set the socket option on the connections its pool opens,
//! but it does build a connection on a stream we hand it
//! ([`AsyncSmtpConnection::connect_with_transport`]); so this module opens the TCP stream
//! itself, with `TCP_NODELAY`, and keeps the few connections it reuses.
//!
//! Owning the pool also bounds every step in time: lettre's async transport limits only the TCP
//! connect, and its pool would put a connection back whose send was cancelled mid-conversation.
//!
//! FIXME: lettre has merged the fix (pull request 1159: `TCP_NODELAY` and a single write of the
//! final chunk) but not released it. Once a release has it, weigh going back to lettre's
//! `AsyncSmtpTransport` wrapped in a timeout; its pool still recycles cancelled connections.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use url::Url;

use crate::error::{Error, Result, SmtpFailure};

/// Default port without TLS.
const SMTP_PORT: u16 = 25;
/// Default port for STARTTLS (mail submission).
const SUBMISSION_PORT: u16 = 587;
/// Default port for TLS from the first byte.
const SUBMISSIONS_PORT: u16 = 465;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain text (`smtp://`).
    None,
    /// STARTTLS if the server offers it (`?tls=opportunistic`).
    Opportunistic,
    /// STARTTLS or fail (`?tls=required`).
    Required,
    /// TLS from the first byte (`smtps://`).
    Wrapper,
}

/// Where and how to reach the SMTP server, as given by an SMTP URL in lettre's format.
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello_name: ClientId,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials are a secret and stay out.
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Reads `smtp://[user:password@]host[:port][/ehlo-name][?tls=required|opportunistic]` or
    /// `smtps://...`. Error messages never repeat the URL, which may hold a password.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let url = Url::parse(text).map_err(|error| Error::InvalidUrl(error.to_string()))?;
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| Error::InvalidUrl("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();

        let mut tls = None;
        for (key, value) in url.query_pairs() {
            match &*key {
                "tls" if tls.is_none() => tls = Some(value.into_owned()),
                _ => return Err(Error::InvalidUrl(format!("unsupported parameter {key:?}"))),
            }
        }
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::None, SMTP_PORT),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic, SUBMISSION_PORT),
            ("smtp", Some("required")) => (Security::Required, SUBMISSION_PORT),
            ("smtps", None) => (Security::Wrapper, SUBMISSIONS_PORT),
            (scheme @ ("smtp" | "smtps"), Some(tls)) => {
                return Err(Error::InvalidUrl(format!(
                    "unsupported tls={tls:?} for {scheme}://"
                )));
            }
            (scheme, _) => {
                return Err(Error::InvalidUrl(format!(
                    "unsupported scheme {scheme:?}; use smtp or smtps"
                )));
            }
        };

        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(
                percent_decode(url.username())?,
                percent_decode(password)?,
            )),
            None if !url.username().is_empty() => {
                return Err(Error::InvalidUrl("a user name without a password".into()));
            }
            None => None,
        };
        let hello_name = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };

        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello_name,
        })
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                index += 3;
            }
            None => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| Error::InvalidUrl("credentials are not UTF-8".into()))
}

/// How TLS is set up for the endpoint's security mode.
enum Encryption {
    Plain,
    StartTls {
        parameters: TlsParameters,
        required: bool,
    },
    Wrapper {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

impl Encryption {
    fn for_endpoint(endpoint: &Endpoint) -> Result<Self> {
        let tls_error = |error: &dyn fmt::Display| Error::Tls(error.to_string());
        Ok(match endpoint.security {
            Security::None => Self::Plain,
            Security::Opportunistic | Security::Required => Self::StartTls {
                parameters: TlsParameters::new(endpoint.host.clone())
                    .map_err(|error| tls_error(&error))?,
                required: endpoint.security == Security::Required,
            },
            Security::Wrapper => {
                // The same choices lettre makes for its own TLS: ring and the Mozilla roots.
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|error| tls_error(&error))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Self::Wrapper {
                    connector: TlsConnector::from(Arc::new(config)),
                    server_name: ServerName::try_from(endpoint.host.clone())
                        .map_err(|error| tls_error(&error))?,
                }
            }
        })
    }
}

/// Limits of a [`Pool`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    /// Most connections open at once, busy or idle (at least 1).
    pub(crate) max_connections: usize,
    /// How long an idle connection is kept.
    pub(crate) idle_timeout: Duration,
    /// Limit for opening a connection: TCP, greeting, EHLO, TLS and authentication, or for
    /// checking that an idle one still answers.
    pub(crate) connect_timeout: Duration,
    /// Limit for one message on an open connection, from `MAIL FROM` to the final reply.
    pub(crate) send_timeout: Duration,
    /// Whether to open connections with `TCP_NODELAY` (the point of this module).
    pub(crate) nodelay: bool,
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// Connections to one SMTP server.
pub(crate) struct Pool {
    endpoint: Endpoint,
    encryption: Encryption,
    settings: PoolSettings,
    idle: Mutex<Vec<IdleConnection>>,
    /// One permit per connection that may be open; a send holds one from checkout to the end.
    permits: Semaphore,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("endpoint", &self.endpoint)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(endpoint: Endpoint, settings: PoolSettings) -> Result<Self> {
        Ok(Self {
            encryption: Encryption::for_endpoint(&endpoint)?,
            endpoint,
            permits: Semaphore::new(settings.max_connections.max(1)),
            settings,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one message to `recipient`. A connection on which anything failed is dropped, so
    /// a later send starts from a clean connection.
    pub(crate) async fn send(
        &self,
        from: &Address,
        recipient: &Address,
        message: &[u8],
    ) -> Result<()> {
        let envelope =
            Envelope::new(Some(from.clone()), vec![recipient.clone()]).map_err(|error| {
                Error::InvalidAddress {
                    role: "envelope",
                    reason: error.to_string(),
                }
            })?;
        let after = self.settings.send_timeout;
        let _permit = match timeout(after, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                return Err(Error::Timeout {
                    stage: "waiting for a free connection",
                    after,
                });
            }
        };
        let mut connection = self.checkout().await?;

        match timeout(after, connection.send(&envelope, message)).await {
            Ok(Ok(_reply)) => {
                self.checkin(connection);
                Ok(())
            }
            Ok(Err(error)) => Err(Error::Smtp(SmtpFailure::new(error))),
            Err(_elapsed) => Err(Error::Timeout {
                stage: "sending the message",
                after,
            }),
        }
    }

    /// An idle connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection> {
        let after = self.settings.connect_timeout;
        while let Some(idle) = self.take_idle() {
            if idle.since.elapsed() >= self.settings.idle_timeout {
                continue;
            }
            let mut connection = idle.connection;
            if let Ok(true) = timeout(after, connection.test_connected()).await {
                tracing::trace!("reusing an SMTP connection");
                return Ok(connection);
            }
        }

        tracing::debug!(server = %self.endpoint.server(), "opening an SMTP connection");
        timeout(after, self.connect())
            .await
            .map_err(|_elapsed| Error::Timeout {
                stage: "connecting",
                after,
            })?
    }

    fn take_idle(&self) -> Option<IdleConnection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn checkin(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.max_connections {
            idle.push(IdleConnection {
                connection,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection> {
        let endpoint = &self.endpoint;
        let smtp = |error| Error::Smtp(SmtpFailure::new(error));
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| Error::Connect {
                server: endpoint.server(),
                source,
            })?;
        tcp.set_nodelay(self.settings.nodelay)
            .map_err(|source| Error::Connect {
                server: endpoint.server(),
                source,
            })?;

        let hello = &endpoint.hello_name;
        let mut connection = match &self.encryption {
            Encryption::Wrapper {
                connector,
                server_name,
            } => {
                let stream = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|error| Error::Tls(error.to_string()))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsOverTcp(stream)), hello)
                    .await
                    .map_err(smtp)?
            }
            Encryption::Plain | Encryption::StartTls { .. } => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello)
                    .await
                    .map_err(smtp)?
            }
        };

        if let Encryption::StartTls {
            parameters,
            required,
        } = &self.encryption
            && (*required || connection.can_starttls())
        {
            connection
                .starttls(parameters.clone(), hello)
                .await
                .map_err(smtp)?;
        }
        if let Some(credentials) = &endpoint.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(smtp)?;
        }
        Ok(connection)
    }
}

/// A TLS stream over TCP, in the shape lettre accepts for a connection it did not open.
#[derive(Debug)]
struct TlsOverTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsOverTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsOverTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsOverTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_lettre_format_are_read() {
        let plain = Endpoint::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((plain.port, plain.security), (2525, Security::None));

        let submission =
            Endpoint::parse("smtp://u%40x:p%2Fw@mail.example.test?tls=required").unwrap();
        assert_eq!(
            (submission.port, submission.security),
            (587, Security::Required)
        );
        assert!(submission.credentials.is_some());

        let wrapper = Endpoint::parse("smtps://mail.example.test/client.example.test").unwrap();
        assert_eq!((wrapper.port, wrapper.security), (465, Security::Wrapper));
        assert_eq!(
            wrapper.hello_name,
            ClientId::Domain("client.example.test".into())
        );
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_the_password() {
        for bad in [
            "http://user:hunter2@mail.example.test",
            "smtp://user:hunter2@mail.example.test?tls=sometimes",
            "smtp://user:hunter2@mail.example.test?tsl=required",
            "smtps://user:hunter2@mail.example.test?tls=required",
            "smtp://user@mail.example.test",
            "smtp://",
            "not a url hunter2",
        ] {
            let error = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{bad}: {error}");
        }
    }

    #[test]
    fn percent_escapes_in_credentials_are_decoded() {
        assert_eq!(percent_decode("p%2Fw%25rd%").unwrap(), "p/w%rd%");
    }

    #[test]
    fn endpoint_debug_hides_credentials() {
        let endpoint = Endpoint::parse("smtp://user:hunter2@mail.example.test").unwrap();
        assert!(!format!("{endpoint:?}").contains("hunter2"));
    }
}
