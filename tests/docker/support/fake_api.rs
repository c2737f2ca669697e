//! A fake Docker Engine API on a unix socket, for tests of what pruneguard does with odd or
//! hostile daemon data: no dockerd is needed. Each test gives a handler that answers the
//! requests it cares about ([`Answer`]: JSON with a status, an endless or streamed body, a
//! hang, a connection cut without an answer); everything else gets a default answer
//! (`/_ping`, `/version` with API 1.41, `/info` of a daemon that is not in a swarm, empty image
//! and container lists and events, 404 for the rest). Every request is recorded
//! ([`FakeApi::requests`]).
//!
//! ```ignore
//! let api = FakeApi::start(|request| match request.endpoint() {
//!     "/images/json" => Some(Answer::json(200, json!([{"Id": "sha256:…"}]))),
//!     _ => None,
//! });
//! bare_pruneguard().arg("-H").arg(api.host()).arg("plan");
//! ```
//!
//! std only, one thread per connection; requests on a kept-alive connection are answered one
//! after another. Dropping the server stops accepting, ends every endless answer and hang,
//! shuts every connection down and waits for its threads.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// One request as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: version prefix and query included
    /// (`/v1.41/images/json?all=true`).
    pub path: String,
}

impl Request {
    /// The path without the `/vX.Y` prefix and the query: `/images/json`.
    pub fn endpoint(&self) -> &str {
        super::endpoint_of(&self.path)
    }

    /// `METHOD /full/path?query`, for messages.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A whole answer: status, `Content-Type`, body.
    Body {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Status 200 and a chunked body: `head`, then `repeat` over and over until the client
    /// goes away or the server is dropped. Never ends by itself.
    Endless { head: Vec<u8>, repeat: Vec<u8> },
    /// Status 200 and a chunked body of these parts, then the end.
    Stream(Vec<Vec<u8>>),
    /// Reads the request and never answers (until the server is dropped).
    Hang,
    /// Closes the connection at once, without an answer: a reset or a crashed daemon.
    Cut,
}

impl Answer {
    /// `status` with `value` as its JSON body.
    pub fn json(status: u16, value: &Value) -> Answer {
        Answer::Body {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }

    /// Docker's error answer: `{"message": …}`.
    pub fn error(status: u16, message: &str) -> Answer {
        Answer::json(status, &json!({ "message": message }))
    }

    /// A newline-separated JSON stream (the events endpoint's form) of `values`.
    pub fn json_lines(values: impl IntoIterator<Item = Value>) -> Answer {
        Answer::Stream(
            values
                .into_iter()
                .map(|value| format!("{value}\n").into_bytes())
                .collect(),
        )
    }
}

type Handler = dyn Fn(&Request) -> Option<Answer> + Send + Sync + 'static;

struct Shared {
    handler: Box<Handler>,
    /// Header lines added to every answer (`Name: value\r\n` each), e.g. Podman's `Libpod-*`.
    extra_headers: String,
    /// `DockerRootDir` in `/info`: a directory that exists, so the disk gate measures it.
    root_dir: PathBuf,
    stopping: AtomicBool,
    log: Mutex<Vec<Request>>,
    streams: Mutex<Vec<UnixStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running fake API. See the module documentation.
pub struct FakeApi {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Listens on a new socket in a temp dir; `handler` answers what it returns `Some` for.
    pub fn start<F>(handler: F) -> FakeApi
    where
        F: Fn(&Request) -> Option<Answer> + Send + Sync + 'static,
    {
        Self::start_with_headers(&[], handler)
    }

    /// [`start`](Self::start), every answer carrying `headers` (`(name, value)`), as Podman's
    /// service adds `Libpod-Api-Version` to each.
    pub fn start_with_headers<F>(headers: &[(&str, &str)], handler: F) -> FakeApi
    where
        F: Fn(&Request) -> Option<Answer> + Send + Sync + 'static,
    {
        // Short: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("pgfake.")
            .tempdir()
            .expect("create the fake API's temp dir");
        for sub in ["root", "state"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create the fake API's dirs");
        }
        let listener =
            UnixListener::bind(dir.path().join("api.sock")).expect("listen on the fake socket");
        listener
            .set_nonblocking(true)
            .expect("make the fake API's listener non-blocking");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            extra_headers: headers
                .iter()
                .fold(String::new(), |mut lines, (name, value)| {
                    use std::fmt::Write as _;
                    let _ = write!(lines, "{name}: {value}\r\n");
                    lines
                }),
            root_dir: dir.path().join("root"),
            stopping: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&listener, &shared))
        };
        FakeApi {
            dir,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `unix://<socket>`, for `-H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("api.sock").display())
    }

    /// A state dir for pruneguard (`--state-dir`), empty at the start.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .expect("the request log is not poisoned")
            .clone()
    }

    /// The requests with this method (`DELETE`, …).
    pub fn requests_with(&self, method: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == method)
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        if let Ok(streams) = self.shared.streams.lock() {
            for stream in streams.iter() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().expect("not poisoned"));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if let Ok(copy) = stream.try_clone() {
                    shared.streams.lock().expect("not poisoned").push(copy);
                }
                let connection = {
                    let shared = Arc::clone(shared);
                    std::thread::spawn(move || {
                        let _ = serve(stream, &shared);
                    })
                };
                shared
                    .threads
                    .lock()
                    .expect("not poisoned")
                    .push(connection);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// Answers the requests of one connection until it closes or an answer ends it.
fn serve(stream: UnixStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        shared
            .log
            .lock()
            .expect("not poisoned")
            .push(request.clone());
        let answer = (shared.handler)(&request).unwrap_or_else(|| default_answer(&request, shared));
        match answer {
            Answer::Body {
                status,
                content_type,
                body,
            } => {
                write!(
                    writer,
                    "HTTP/1.1 {status} {}\r\nApi-Version: 1.41\r\n{}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    reason(status),
                    shared.extra_headers,
                    body.len()
                )?;
                writer.write_all(&body)?;
                writer.flush()?;
            }
            Answer::Stream(parts) => {
                chunked_head(&mut writer, &shared.extra_headers)?;
                for part in parts {
                    chunk(&mut writer, &part)?;
                }
                writer.write_all(b"0\r\n\r\n")?;
                writer.flush()?;
            }
            Answer::Endless { head, repeat } => {
                chunked_head(&mut writer, &shared.extra_headers)?;
                chunk(&mut writer, &head)?;
                // Many repeats per chunk: fast enough to reach any bound within a test.
                let block = repeat.repeat((64 * 1024 / repeat.len().max(1)).max(1));
                while !shared.stopping.load(Ordering::SeqCst) {
                    chunk(&mut writer, &block)?;
                }
                return Ok(());
            }
            Answer::Hang => {
                while !shared.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            Answer::Cut => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
}

fn chunked_head(writer: &mut UnixStream, extra_headers: &str) -> io::Result<()> {
    write!(
        writer,
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\n{extra_headers}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
}

fn chunk(writer: &mut UnixStream, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    write!(writer, "{:x}\r\n", bytes.len())?;
    writer.write_all(bytes)?;
    writer.write_all(b"\r\n")
}

/// One request (request line, headers, a `Content-Length` body); `None` at a clean end.
fn read_request(reader: &mut BufReader<UnixStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP request line: {line:?}"),
        ));
    };
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
    };
    let mut length = 0_usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    io::copy(&mut reader.by_ref().take(length as u64), &mut io::sink())?;
    Ok(Some(request))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// What a plain dockerd 20.10 with nothing in it answers.
fn default_answer(request: &Request, shared: &Shared) -> Answer {
    match (request.method.as_str(), request.endpoint()) {
        (_, "/_ping") => Answer::Body {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: b"OK".to_vec(),
        },
        ("GET", "/version") => Answer::json(
            200,
            &json!({
                "Version": "20.10.99-fake",
                "ApiVersion": "1.41",
                "MinAPIVersion": "1.12",
                "Os": "linux",
                "Arch": "amd64",
            }),
        ),
        ("GET", "/info") => Answer::json(
            200,
            &json!({
                "ServerVersion": "20.10.99-fake",
                "DockerRootDir": shared.root_dir,
                "Driver": "overlay2",
                "Swarm": { "LocalNodeState": "inactive", "ControlAvailable": false },
            }),
        ),
        ("GET", "/images/json" | "/containers/json") => Answer::json(200, &json!([])),
        ("GET", "/events") => Answer::Stream(Vec::new()),
        _ => Answer::error(404, "not served by the fake API"),
    }
}

/// A well-formed image ID: `sha256:` and 64 hex digits made from `seed`.
pub fn image_id(seed: u8) -> String {
    format!("sha256:{}", hex64(seed))
}

/// 64 lowercase hex digits made from `seed`.
pub fn hex64(seed: u8) -> String {
    format!("{seed:02x}").repeat(32)
}

/// An entry of `/images/json`: created in 2001 (old enough for any `min_age`), 1000 bytes.
pub fn image(id: &str, parent: &str, tags: &[&str]) -> Value {
    json!({
        "Id": id,
        "ParentId": parent,
        "RepoTags": tags,
        "RepoDigests": [],
        "Created": 1_000_000_000,
        "Size": 1000,
        "SharedSize": -1,
        "VirtualSize": 1000,
        "Labels": {},
        "Containers": -1,
    })
}

/// An entry of `/containers/json` whose `ImageID` is `image_id` (any text).
pub fn container(id: &str, name: &str, image_id: &str) -> Value {
    json!({
        "Id": id,
        "Names": [format!("/{name}")],
        "Image": "whatever:latest",
        "ImageID": image_id,
        "Command": "sleep 3600",
        "Created": 1_000_000_000,
        "State": "exited",
        "Status": "Exited (0)",
        "Labels": {},
    })
}
