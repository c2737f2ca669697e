//! A size bound on every answer pruneguard reads from the daemon: the transport bollard sends
//! its requests through.
//!
//! bollard collects whole bodies without limit (`decode_response`, and the error body of every
//! non-2xx answer) and buffers an events line until it sees a newline, so a daemon or a proxy
//! that sends an endless body grows memory until the timeout. Its custom transport must return
//! hyper's own `Incoming` body, which cannot be wrapped; so the bound sits *under* hyper: each
//! request gets a connection of its own (bollard's own unix transport keeps none idle either),
//! whose reads are counted, and the read past the bound fails with [`AnswerTooLarge`]. hyper
//! reports that as a body error, bollard wraps it, and [`too_large`] finds it again so that
//! `docker::map_error` can name the endpoint and the bound (a protocol error: the observation
//! is unknown, so its gate stays closed or nothing is planned; it is not "daemon lost").
//!
//! The bounds ([`LIST_ANSWER_LIMIT`], [`EVENTS_ANSWER_LIMIT`], [`SMALL_ANSWER_LIMIT`]) count
//! the whole answer, status line and headers included.
//!
//! A TLS endpoint ([`super::tls`]) is one more layer between the socket and the bound: the
//! bound counts the decrypted bytes, as it counts a plain connection's.
//!
//! Two things only the transport can do for Podman ([`Flavor`]): it notes Podman's
//! `Libpod-Api-Version` answer header (bollard does not show headers), and once the engine is
//! known to be Podman it adds `stream=false` to `GET /events` (bollard's options cannot carry
//! it): Podman's non-streaming mode answers every stored event and ends.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, ClientVersion, Docker};
use hyper::Response;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tls::TlsClient;

const MIB: u64 = 1024 * 1024;

/// The bound on one answer of a list endpoint (images, containers, services, tasks). The
/// memory promise sets it (a plan's peak RSS under 64 MB whatever the daemon sends): bollard
/// holds an answer twice while it collects it and then decodes all of it, and the plan keeps
/// what it needs, so the peak is about 8 MB plus 5 bytes per byte listed. Two lists just under
/// 4 MiB each (about 15,000 images and 15,000 containers of the smallest valid entries) peak
/// at 49 MB (`tests/docker/hostile_api.rs`); at 6 MiB they would pass 64 MB. Real entries are
/// larger (an image about 0.5 KiB, a container 1.5 to 3 KiB), so 4 MiB is some 8,000 images or
/// 1,500 to 3,000 containers; a host with more fails its runs cleanly (nothing deleted, exit
/// 1, a message naming the endpoint and the bound).
pub const LIST_ANSWER_LIMIT: u64 = 4 * MIB;

/// The bound on the whole events stream. Events are decoded one by one as they arrive, so
/// only one line is ever buffered; the bound caps that line, and the stream, at 8 MiB (some
/// 20,000 to 30,000 events). Every event of the stream is inside the quiet period, so a cut
/// stream changes no verdict: the gate is closed by the first event, or as unknown.
pub const EVENTS_ANSWER_LIMIT: u64 = 8 * MIB;

/// The bound on every other answer (`/_ping`, `/version`, `/info`, one image's inspect, a
/// delete, any error body): a few KiB from dockerd (an image with 1,000 tags deletes in some
/// 100 KiB), and up to 16 deletes run at once.
pub const SMALL_ANSWER_LIMIT: u64 = 256 * 1024;

/// What pruneguard's requests are sent to.
#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    /// `host:port`, with IPv6 brackets: what `TcpStream::connect` and the `Host` header take.
    Tcp(String),
    /// The same, each connection wrapped in TLS.
    Tls {
        authority: String,
        client: TlsClient,
    },
}

/// A bollard client on the unix socket at `path`, every answer bounded. Like bollard's own
/// `connect_with_unix`, a socket that does not exist is an error here, before any request.
pub fn connect_unix(
    path: &Path,
    timeout_secs: u64,
    version: &ClientVersion,
    list_limit: u64,
) -> Result<(Docker, EventsBound, Raw, Flavor), BollardError> {
    if !path.exists() {
        return Err(BollardError::SocketNotFoundError(
            path.to_string_lossy().into_owned(),
        ));
    }
    connect(
        Target::Unix(path.to_path_buf()),
        timeout_secs,
        version,
        list_limit,
    )
}

/// A bollard client on HTTP to `host:port` (over TLS with `tls`), every answer bounded.
pub fn connect_tcp(
    host: &str,
    port: u16,
    tls: Option<TlsClient>,
    timeout_secs: u64,
    version: &ClientVersion,
    list_limit: u64,
) -> Result<(Docker, EventsBound, Raw, Flavor), BollardError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let target = match tls {
        Some(client) => Target::Tls { authority, client },
        None => Target::Tcp(authority),
    };
    connect(target, timeout_secs, version, list_limit)
}

fn connect(
    target: Target,
    timeout_secs: u64,
    version: &ClientVersion,
    list_limit: u64,
) -> Result<(Docker, EventsBound, Raw, Flavor), BollardError> {
    let target = Arc::new(target);
    let events_bound = EventsBound::default();
    let passed = Arc::clone(&events_bound.passed);
    let flavor = Flavor::default();
    let hooks = flavor.clone();
    let raw = Raw {
        target: Arc::clone(&target),
        flavor: flavor.clone(),
        list_limit,
    };
    // bollard builds `http://docker/v1.41/…` URIs from this; `send` keeps only path and query.
    let docker = Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            send(
                Arc::clone(&target),
                Arc::clone(&passed),
                hooks.clone(),
                list_limit,
                request,
            )
        },
        Some("http://docker"),
        timeout_secs,
        version,
    )?;
    Ok((docker, events_bound, raw, flavor))
}

/// Plain requests through the same bounded transport, for what bollard's types leave out (a
/// service's `PreviousSpec`, the build-cache budget).
#[derive(Debug, Clone)]
pub struct Raw {
    target: Arc<Target>,
    flavor: Flavor,
    list_limit: u64,
}

impl Raw {
    /// `GET path_and_query` (`/v1.41/services`): the status and the whole body, bounded as
    /// every answer is ([`answer_limit`]).
    pub async fn get(&self, path_and_query: &str) -> Result<(u16, Vec<u8>), BollardError> {
        self.request(hyper::Method::GET, path_and_query).await
    }

    /// `POST path_and_query` with an empty body: the status and the whole (small) body.
    pub async fn post(&self, path_and_query: &str) -> Result<(u16, Vec<u8>), BollardError> {
        self.request(hyper::Method::POST, path_and_query).await
    }

    async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
    ) -> Result<(u16, Vec<u8>), BollardError> {
        use hyper::body::Body as _;
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://docker{path_and_query}"))
            .body(bollard::body_full(hyper::body::Bytes::new()))?;
        let response = send(
            Arc::clone(&self.target),
            Arc::new(AtomicBool::new(false)),
            self.flavor.clone(),
            self.list_limit,
            request,
        )
        .await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame?.into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        Ok((status, bytes))
    }
}

/// What the transport notes about, and does for, the engine it talks to (see the module
/// documentation). Cloned handles share the flags.
#[derive(Debug, Clone, Default)]
pub struct Flavor {
    libpod_header: Arc<AtomicBool>,
    events_not_streaming: Arc<AtomicBool>,
}

impl Flavor {
    /// Whether any answer so far carried `Libpod-Api-Version` or `Libpod-Buildah-Version`.
    pub fn libpod_header_seen(&self) -> bool {
        self.libpod_header.load(Ordering::SeqCst)
    }

    /// From now on, `GET /events` is sent with `stream=false` (Podman only: dockerd ignores
    /// the parameter, but it is not sent there).
    pub fn read_events_without_streaming(&self) {
        self.events_not_streaming.store(true, Ordering::SeqCst);
    }
}

/// `query` with `stream=false` added (a `stream` already there is replaced).
fn without_streaming(query: Option<&str>) -> String {
    let mut parts: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|part| !part.is_empty() && part.split('=').next() != Some("stream"))
        .collect();
    parts.push("stream=false");
    parts.join("&")
}

/// Whether the last events stream was cut at its bound. bollard's stream reader keeps only
/// the text of a body error (`io::Error::other(e.to_string())`), so on the events stream the
/// marker is lost and this flag says it instead. One events request runs at a time (each
/// gather makes one, and gathers do not overlap), so one flag is enough.
#[derive(Debug, Clone, Default)]
pub struct EventsBound {
    passed: Arc<AtomicBool>,
}

impl EventsBound {
    /// [`EVENTS_ANSWER_LIMIT`], when the events stream being read (or last read) passed it.
    pub fn passed(&self) -> Option<u64> {
        self.passed
            .load(Ordering::SeqCst)
            .then_some(EVENTS_ANSWER_LIMIT)
    }
}

/// What an answer over its bound is, for the message of `EngineError::Protocol`. A list can
/// legitimately pass its bound on a host with very many images or containers: that message
/// names the setting that raises it.
pub fn too_large_message(limit: u64, operation: &str) -> String {
    if ["/images/json", "/containers/json", "/services", "/tasks"]
        .iter()
        .any(|list| operation.ends_with(list))
    {
        return format!(
            "the answer is larger than {}, the most pruneguard reads of a list (a bound on its memory: each MiB costs about 5 MiB while decoding), so it counts as unknown and nothing is deleted. On a host with this many images or containers, raise engine.max_list_size (--max-list-size, PRUNEGUARD_MAX_LIST_SIZE); otherwise the daemon or a proxy in front of it is misbehaving",
            size(limit)
        );
    }
    format!(
        "the answer is larger than {}, the most pruneguard reads of it (a bound on its memory); dockerd does not send that much, so the daemon or a proxy in front of it is misbehaving, and this answer counts as unknown",
        size(limit)
    )
}

/// The bound for a request to `path` (`/v1.41/images/json`, version prefix optional).
pub fn answer_limit(path: &str, list_limit: u64) -> u64 {
    match unversioned(path) {
        "/images/json" | "/containers/json" | "/services" | "/tasks" => list_limit,
        "/events" => EVENTS_ANSWER_LIMIT,
        _ => SMALL_ANSWER_LIMIT,
    }
}

fn is_events(path: &str) -> bool {
    unversioned(path) == "/events"
}

/// `path` without its `/vX.Y` prefix.
fn unversioned(path: &str) -> &str {
    match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or(path, |slash| &rest[slash..])
        }
        _ => path,
    }
}

/// One request on a connection of its own, whose reads are bounded by [`answer_limit`].
async fn send(
    target: Arc<Target>,
    events_passed: Arc<AtomicBool>,
    flavor: Flavor,
    list_limit: u64,
    mut request: BollardRequest,
) -> Result<Response<Incoming>, BollardError> {
    let limit = answer_limit(request.uri().path(), list_limit);
    let events = is_events(request.uri().path());
    if events && flavor.events_not_streaming.load(Ordering::SeqCst) {
        let path_and_query = format!(
            "{}?{}",
            request.uri().path(),
            without_streaming(request.uri().query())
        );
        *request.uri_mut() = hyper::Uri::builder()
            .path_and_query(path_and_query)
            .build()?;
    }
    let flag = events.then(|| {
        events_passed.store(false, Ordering::SeqCst);
        events_passed
    });
    let answer = send_bounded(&target, limit, flag, request).await?;
    let headers = answer.headers();
    if headers.contains_key("libpod-api-version") || headers.contains_key("libpod-buildah-version")
    {
        flavor.libpod_header.store(true, Ordering::SeqCst);
    }
    Ok(answer)
}

async fn send_bounded(
    target: &Target,
    limit: u64,
    flag: Option<Arc<AtomicBool>>,
    request: BollardRequest,
) -> Result<Response<Incoming>, BollardError> {
    match target {
        Target::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|error| connect_error(path, error))?;
            let stream = Bounded::new(stream, limit, flag);
            exchange(stream, HeaderValue::from_static("docker"), request).await
        }
        Target::Tcp(authority) => {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            let host = HeaderValue::from_str(authority).map_err(hyper::http::Error::from)?;
            exchange(Bounded::new(stream, limit, flag), host, request).await
        }
        Target::Tls { authority, client } => {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            // Boxed, as the stream is: a TLS connection's state is some KiB, which would
            // otherwise sit in every future that sends a request.
            let stream = Box::pin(
                tokio_rustls::TlsConnector::from(Arc::clone(&client.config))
                    .connect(client.server_name.clone(), stream),
            )
            .await?;
            let host = HeaderValue::from_str(authority).map_err(hyper::http::Error::from)?;
            let stream = Bounded::new(Box::new(stream), limit, flag);
            Box::pin(exchange(stream, host, request)).await
        }
    }
}

/// bollard's own wording for a socket that vanished after the client was made.
fn connect_error(path: &Path, error: io::Error) -> BollardError {
    if error.kind() == io::ErrorKind::NotFound {
        BollardError::SocketNotFoundError(path.to_string_lossy().into_owned())
    } else {
        error.into()
    }
}

async fn exchange<S>(
    stream: Bounded<S>,
    host: HeaderValue,
    request: BollardRequest,
) -> Result<Response<Incoming>, BollardError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's errors reach the caller through the answer or its body.
    tokio::spawn(async move { drop(connection.await) });
    let (mut parts, body) = request.into_parts();
    // A connection of our own takes the origin form (`/v1.41/…?…`), not bollard's full URI.
    let mut uri = hyper::Uri::builder();
    if let Some(path_and_query) = parts.uri.path_and_query() {
        uri = uri.path_and_query(path_and_query.clone());
    }
    parts.uri = uri.build()?;
    parts.headers.insert(HOST, host);
    Ok(sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await?)
}

/// `4 MiB`, `256 KiB`.
fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// The marker error of a read past the bound; [`too_large`] finds it in bollard's error.
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {}", size(*.limit))]
pub struct AnswerTooLarge {
    pub limit: u64,
}

/// The bound an answer passed, when `error` came from [`AnswerTooLarge`].
pub fn too_large(error: &BollardError) -> Option<u64> {
    find_cause::<AnswerTooLarge>(error).map(|marker| marker.limit)
}

/// The first `T` among the causes of `error`, at any depth: hyper and bollard wrap what the
/// transport returned, and `io::Error` hides what it wraps from `source()`.
pub fn find_cause<T: std::error::Error + 'static>(error: &BollardError) -> Option<&T> {
    // These two are `#[error(transparent)]`: their `source()` skips the error they hold.
    match error {
        BollardError::IOError { err } => find_in_chain(err),
        BollardError::HyperResponseError { err } => find_in_chain(err),
        other => find_in_chain(other),
    }
}

fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find_in_chain::<T>(inner)
        {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// A stream whose reads fail once more than `limit` bytes have come in (and then set
/// `passed`, when there is one).
struct Bounded<S> {
    inner: S,
    read: u64,
    limit: u64,
    passed: Option<Arc<AtomicBool>>,
}

impl<S> Bounded<S> {
    fn new(inner: S, limit: u64, passed: Option<Arc<AtomicBool>>) -> Self {
        Self {
            inner,
            read: 0,
            limit,
            passed,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        self.read = self
            .read
            .saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
        if self.read > self.limit {
            // Nothing of a failed read may stay in `buf` (tokio's readers check this).
            buf.set_filled(before);
            if let Some(passed) = &self.passed {
                passed.store(true, Ordering::SeqCst);
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                AnswerTooLarge { limit: self.limit },
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_events_are_asked_for_without_streaming() {
        assert_eq!(without_streaming(None), "stream=false");
        assert_eq!(without_streaming(Some("")), "stream=false");
        assert_eq!(
            without_streaming(Some("since=1.5&filters=%7B%7D")),
            "since=1.5&filters=%7B%7D&stream=false"
        );
        assert_eq!(
            without_streaming(Some("stream=true&since=1")),
            "since=1&stream=false"
        );
    }

    #[test]
    fn lists_events_and_the_rest_have_their_own_bounds() {
        for path in [
            "/v1.41/images/json",
            "/v1.41/containers/json",
            "/v1.41/services",
            "/v1.41/tasks",
            "/images/json",
        ] {
            assert_eq!(answer_limit(path, 77), 77, "{path}");
        }
        assert_eq!(answer_limit("/v1.41/events", 77), EVENTS_ANSWER_LIMIT);
        for path in [
            "/_ping",
            "/version",
            "/v1.41/info",
            "/v1.41/images/sha256:abc/json",
            "/v1.41/images/sha256:abc",
            "/v1.41/images/json/../x",
        ] {
            assert_eq!(answer_limit(path, 77), SMALL_ANSWER_LIMIT, "{path}");
        }
    }

    /// The marker is found through the wrapping bollard puts around it, in both shapes bollard
    /// produces (a body error of hyper's, and an `io::Error` around that from a stream).
    #[test]
    fn the_marker_is_found_through_the_wrapping() {
        let marker = || io::Error::new(io::ErrorKind::InvalidData, AnswerTooLarge { limit: 7 });
        let direct = BollardError::IOError { err: marker() };
        assert_eq!(too_large(&direct), Some(7));
        let nested = BollardError::IOError {
            err: io::Error::other(io::Error::other(marker())),
        };
        assert_eq!(too_large(&nested), Some(7));
        let unrelated = BollardError::IOError {
            err: io::Error::other("connection reset"),
        };
        assert_eq!(too_large(&unrelated), None);
    }

    /// A TLS failure is found the same way, through the `io::Error`s it travels in.
    #[test]
    fn a_tls_failure_is_found_through_the_wrapping() {
        use tokio_rustls::rustls;
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let wrapped = BollardError::IOError {
            err: io::Error::other(tls),
        };
        let found = find_cause::<rustls::Error>(&wrapped).map(ToString::to_string);
        assert!(found.is_some_and(|text| text.contains("UnknownIssuer")));
        let unrelated = BollardError::IOError {
            err: io::Error::other("connection reset"),
        };
        assert!(find_cause::<rustls::Error>(&unrelated).is_none());
    }

    /// Reads past the bound fail; reads up to it pass.
    #[tokio::test]
    async fn reads_past_the_bound_fail() {
        use tokio::io::AsyncReadExt as _;
        let mut exact = Bounded::new(&[1_u8; 10][..], 10, None);
        let mut bytes = Vec::new();
        exact.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len(), 10);
        let passed = Arc::new(AtomicBool::new(false));
        let mut over = Bounded::new(&[1_u8; 11][..], 10, Some(Arc::clone(&passed)));
        let error = over.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(passed.load(Ordering::SeqCst));
        assert!(
            error
                .get_ref()
                .is_some_and(|inner| inner.is::<AnswerTooLarge>())
        );
    }
}
