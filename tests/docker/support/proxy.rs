//! A small HTTP-aware unix-socket proxy for fault tests: it sits between pruneguard and a
//! sandbox's real Docker socket and calls a hook with each request's method and path **before**
//! forwarding it. The hook can sleep (a slow daemon), act (stop the daemon, create a container,
//! create a lock file) or just count.
//!
//! ```ignore
//! let proxy = Proxy::start(&sb.scratch().join("proxy.sock"), &sb.socket(), |request| {
//!     if request.method == "DELETE" {
//!         request.sleep(Duration::from_millis(150));
//!     }
//! });
//! pruneguard(&sb).arg("-H").arg(proxy.host());
//! ```
//!
//! std only, one thread per connection. Requests on a connection are parsed one after another
//! (request line, headers, a `Content-Length` or chunked body), so a kept-alive connection
//! reaches the hook for every request, not only its first. Responses are copied back as raw
//! bytes; a hook may hold one response's body back ([`Request::stall_response_body`]), a daemon
//! that sends its headers and then hangs. The upstream connection is opened only after the hook has run for a connection's
//! first request; when it cannot be opened (the hook stopped the daemon) the client's
//! connection is closed without an answer, which is what a vanished daemon looks like.
//!
//! Dropping the proxy stops accepting, shuts every open connection down, waits for every
//! connection thread (so a hook's captured values, such as an `Arc<Sandbox>`, are released
//! before the test ends) and removes the socket file.

use std::cell::Cell;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the hook sees it.
pub struct Request<'a> {
    /// `GET`, `POST`, `DELETE`, …
    pub method: String,
    /// The request target as sent, with the API version prefix and query string
    /// (`/v1.41/images/sha256:…/json`).
    pub path: String,
    /// 0 for the first request the proxy saw, then 1, 2, …
    pub index: usize,
    stopping: &'a AtomicBool,
    stall: Cell<Option<Duration>>,
}

impl Request<'_> {
    /// The path without the `/vX.Y` prefix and without the query string: `/images/sha256:…/json`.
    pub fn endpoint(&self) -> &str {
        super::endpoint_of(&self.path)
    }

    /// `GET /images/{id}/json`: the inspect pruneguard makes right before each delete.
    pub fn is_image_inspect(&self) -> bool {
        self.method == "GET"
            && self.endpoint().ends_with("/json")
            && self.image_id().is_some_and(|id| id.starts_with("sha256:"))
    }

    /// `DELETE /images/{id}`.
    pub fn is_image_delete(&self) -> bool {
        self.method == "DELETE" && self.endpoint().starts_with("/images/")
    }

    /// The image ID (`sha256:…`) of an image inspect or delete.
    pub fn image_id(&self) -> Option<String> {
        let rest = self.endpoint().strip_prefix("/images/")?;
        let id = rest.strip_suffix("/json").unwrap_or(rest);
        Some(percent_decode(id)).filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// Forward this request at once, but hold its response after the status line and headers
    /// for `duration` before passing on the body: a daemon that starts answering and then
    /// hangs.
    pub fn stall_response_body(&self, duration: Duration) {
        self.stall.set(Some(duration));
    }

    /// Sleeps for `duration`, or less if the proxy is being dropped (so a test never waits on
    /// a hook that simulates a hung daemon).
    pub fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while !self.stopping.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

type Hook = dyn Fn(&Request<'_>) + Send + Sync + 'static;

struct Shared {
    upstream: PathBuf,
    hook: Box<Hook>,
    stopping: AtomicBool,
    next_index: AtomicUsize,
    /// "METHOD path" of every request, in arrival order (recorded before the hook runs).
    log: Mutex<Vec<String>>,
    /// Panics of the hook, as messages.
    hook_failures: Mutex<Vec<String>>,
    /// Every stream still open, to shut them down on drop.
    streams: Mutex<Vec<UnixStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy. See the module documentation.
pub struct Proxy {
    path: PathBuf,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` (created; must not exist) and forwards to the socket `upstream`.
    pub fn start<F>(listen: &Path, upstream: &Path, hook: F) -> Proxy
    where
        F: Fn(&Request<'_>) + Send + Sync + 'static,
    {
        let listener = UnixListener::bind(listen)
            .unwrap_or_else(|err| panic!("proxy: cannot listen on {}: {err}", listen.display()));
        let shared = Arc::new(Shared {
            upstream: upstream.to_path_buf(),
            hook: Box::new(hook),
            stopping: AtomicBool::new(false),
            next_index: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            hook_failures: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&listener, &shared))
        };
        Proxy {
            path: listen.to_path_buf(),
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `unix://<socket>`, for `-H` or `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The proxy's socket.
    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// "METHOD path" of every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
    }

    /// How many requests matched `pred` (given method and version-less path).
    pub fn count(&self, pred: impl Fn(&str, &str) -> bool) -> usize {
        self.requests()
            .iter()
            .filter(|line| {
                let (method, path) = line.split_once(' ').unwrap_or((line, ""));
                let request = Request {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    index: 0,
                    stopping: &self.shared.stopping,
                    stall: Cell::new(None),
                };
                pred(method, request.endpoint())
            })
            .count()
    }

    /// Messages of hook panics (a hook's failed action must fail the test, not vanish in a
    /// connection thread). Tests assert this is empty.
    pub fn hook_failures(&self) -> Vec<String> {
        lock(&self.shared.hook_failures).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor up.
        let _ = UnixStream::connect(&self.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.shared.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if let Ok(clone) = client.try_clone() {
            lock(&shared.streams).push(clone);
        }
        let worker = {
            let shared = Arc::clone(shared);
            std::thread::spawn(move || {
                let mut upstream = None;
                let mut responder = None;
                let _ = serve(&client, &shared, &mut upstream, &mut responder);
                // Close both sides at once (clones of them are kept for the drop), so the
                // client never waits on a connection this thread has given up on.
                let _ = client.shutdown(Shutdown::Both);
                if let Some(server) = upstream {
                    let _ = server.shutdown(Shutdown::Both);
                }
                if let Some(responder) = responder {
                    let _ = responder.join();
                }
            })
        };
        lock(&shared.threads).push(worker);
    }
}

/// Serves one client connection: each request goes through the hook, then upstream.
fn serve(
    client: &UnixStream,
    shared: &Arc<Shared>,
    upstream: &mut Option<UnixStream>,
    responder: &mut Option<JoinHandle<()>>,
) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let stall: Arc<Mutex<Option<Duration>>> = Arc::default();
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            break; // the client closed the connection
        }
        let mut head = request_line.clone();
        let mut content_length = 0_usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.push_str(&line);
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
                {
                    chunked = true;
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        lock(&shared.log).push(format!("{method} {path}"));
        let request = Request {
            method,
            path,
            index: shared.next_index.fetch_add(1, Ordering::SeqCst),
            stopping: &shared.stopping,
            stall: Cell::new(None),
        };
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| (shared.hook)(&request))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a non-string panic".to_owned());
            lock(&shared.hook_failures)
                .push(format!("{} {}: {message}", request.method, request.path));
        }
        if shared.stopping.load(Ordering::SeqCst) {
            // The test is over: a request held by the hook is never forwarded late.
            return Ok(());
        }
        if upstream.is_none() {
            let Ok(server) = UnixStream::connect(&shared.upstream) else {
                // The daemon is gone: the caller closes the connection without an answer.
                return Ok(());
            };
            if let Ok(clone) = server.try_clone() {
                lock(&shared.streams).push(clone);
            }
            let from_server = server.try_clone()?;
            let to_client = client.try_clone()?;
            let shared = Arc::clone(shared);
            let stall = Arc::clone(&stall);
            *responder = Some(std::thread::spawn(move || {
                relay_responses(from_server, to_client, &stall, &shared.stopping);
            }));
            *upstream = Some(server);
        }
        // HTTP/1.1 without pipelining: the response to this request is the next thing the
        // server sends, so arming the stall now applies it to exactly this response.
        *lock(&stall) = request.stall.get();
        let server = upstream.as_mut().expect("connected above");
        server.write_all(head.as_bytes())?;
        if chunked {
            forward_chunked(&mut reader, server)?;
        } else if content_length > 0 {
            let copied = io::copy(&mut reader.by_ref().take(content_length as u64), server)?;
            if copied < content_length as u64 {
                break;
            }
        }
        server.flush()?;
    }
    Ok(())
}

/// Copies responses from the server to the client; when `stall` is armed, holds the next
/// response after its header block for that long (or until the proxy stops).
fn relay_responses(
    mut from_server: UnixStream,
    mut to_client: UnixStream,
    stall: &Mutex<Option<Duration>>,
    stopping: &AtomicBool,
) {
    const HEADER_END: &[u8] = b"\r\n\r\n";
    let mut buf = [0_u8; 16 * 1024];
    // How much of HEADER_END the bytes sent so far end with.
    let mut matched = 0;
    loop {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut split = None;
        if lock(stall).is_some() {
            for (i, byte) in chunk.iter().enumerate() {
                matched = if *byte == HEADER_END[matched] {
                    matched + 1
                } else {
                    usize::from(*byte == HEADER_END[0])
                };
                if matched == HEADER_END.len() {
                    split = Some(i + 1);
                    matched = 0;
                    break;
                }
            }
        }
        let written = match split {
            Some(at) => {
                let pause = lock(stall).take().unwrap_or_default();
                let ok = to_client.write_all(&chunk[..at]).is_ok();
                let until = Instant::now() + pause;
                while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok && to_client.write_all(&chunk[at..]).is_ok()
            }
            None => to_client.write_all(chunk).is_ok(),
        };
        if !written {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
}

/// Copies one chunked body (chunks, the last chunk and the trailers) as it is.
fn forward_chunked(reader: &mut BufReader<UnixStream>, server: &mut UnixStream) -> io::Result<()> {
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Ok(());
        }
        server.write_all(size_line.as_bytes())?;
        let size_text = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                server.write_all(line.as_bytes())?;
                if line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        io::copy(&mut reader.by_ref().take(size as u64 + 2), server)?;
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
