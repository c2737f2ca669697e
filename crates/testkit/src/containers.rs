//! `create-containers`: creates many containers (created, never started) through the Docker
//! Engine API on a unix socket, a few requests in flight at once. bench/scale.sh needs 2,000 of
//! them; one `docker create` process each would spend most of the time starting the CLI.
//!
//! The HTTP is the least the Engine API needs: one request per connection
//! (`Connection: close`), so a response ends where the stream ends.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::INDEX_PLACEHOLDER;

/// How long one request may take before the batch gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The socket path of a `DOCKER_HOST`-style address: `unix:///path` or a plain `/path`.
pub fn socket_path(host: &str) -> Result<PathBuf> {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    if !path.starts_with('/') {
        bail!(
            "--host must be a unix socket, unix:///path/docker.sock or /path/docker.sock; \
             got {host:?}"
        );
    }
    Ok(PathBuf::from(path))
}

/// What to create: `count` containers, the i-th (0-based) from `image` with
/// [`INDEX_PLACEHOLDER`] replaced by i, each running `cmd` once started.
#[derive(Clone, Debug)]
pub struct ContainerBatch {
    pub image: String,
    pub count: usize,
    pub cmd: Vec<String>,
    /// Requests in flight at once (at least 1).
    pub workers: usize,
}

impl ContainerBatch {
    /// Creates every container; on the first failure the others stop and the error names the
    /// image and the daemon's answer.
    pub fn create(&self, socket: &Path) -> Result<()> {
        let workers = self.workers.max(1);
        let failed = AtomicBool::new(false);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|first| {
                    let failed = &failed;
                    scope.spawn(move || {
                        for index in (first..self.count).step_by(workers) {
                            if failed.load(Ordering::Relaxed) {
                                break;
                            }
                            if let Err(err) = self.create_one(socket, index) {
                                failed.store(true, Ordering::Relaxed);
                                return Err(err);
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| bail!("a create-containers worker panicked"))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    fn create_one(&self, socket: &Path, index: usize) -> Result<()> {
        let image = self.image.replace(INDEX_PLACEHOLDER, &index.to_string());
        let body = serde_json::json!({ "Image": image, "Cmd": self.cmd }).to_string();
        let (status, answer) = post(socket, "/containers/create", &body)
            .with_context(|| format!("cannot create a container from {image}"))?;
        if status != 201 {
            bail!(
                "creating a container from {image} failed: HTTP {status} {}",
                answer.trim()
            );
        }
        Ok(())
    }
}

/// POSTs a JSON body; returns the status code and the response body.
fn post(socket: &Path, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to the daemon at {}", socket.display()))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .context("cannot send the request")?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("cannot read the daemon's response")?;
    let response = String::from_utf8_lossy(&response);
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| {
            format!(
                "the daemon's response has no HTTP status line: {:?}",
                head.lines().next().unwrap_or("")
            )
        })?;
    Ok((status, answer.to_owned()))
}

#[cfg(test)]
mod tests;
