//! create-containers against a fake Engine API on a unix socket: it answers 201 for every
//! image except the ones it is told to refuse, and records what was asked.

use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::*;

/// Serves `connections` requests, one per connection; returns the (path, body) of each.
fn fake_daemon(
    socket: &Path,
    connections: usize,
    refuse: &'static str,
) -> std::thread::JoinHandle<Vec<(String, Value)>> {
    let listener = UnixListener::bind(socket).expect("the fake daemon binds its socket");
    std::thread::spawn(move || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..connections {
            let (stream, _) = listener.accept().expect("a client connects");
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header == "\r\n" {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).expect("a JSON body");
            let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
            let response = if body["Image"] == refuse {
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n\
                 {\"message\":\"No such image\"}\n"
            } else {
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"Id\":\"c0\"}\n"
            };
            seen.lock().unwrap().push((path, body));
            let mut stream = reader.into_inner();
            stream.write_all(response.as_bytes()).unwrap();
        }
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    })
}

#[test]
fn creates_one_container_per_index_from_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let daemon = fake_daemon(&socket, 10, "none");
    ContainerBatch {
        image: "bench/tagged:{i}".to_owned(),
        count: 10,
        cmd: vec!["/bin/sh".to_owned()],
        workers: 3,
    }
    .create(&socket)
    .expect("every create succeeds");
    let mut seen = daemon.join().unwrap();
    seen.sort_by_key(|(_, body)| body["Image"].as_str().unwrap().to_owned());
    let mut images: Vec<String> = seen
        .iter()
        .map(|(path, body)| {
            assert_eq!(path, "/containers/create");
            assert_eq!(body["Cmd"], serde_json::json!(["/bin/sh"]));
            body["Image"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut expected: Vec<String> = (0..10).map(|i| format!("bench/tagged:{i}")).collect();
    images.sort();
    expected.sort();
    assert_eq!(images, expected);
}

#[test]
fn a_refused_create_fails_the_batch_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let daemon = fake_daemon(&socket, 1, "bench/tagged:0");
    let err = ContainerBatch {
        image: "bench/tagged:{i}".to_owned(),
        count: 1,
        cmd: vec!["/bin/sh".to_owned()],
        workers: 8,
    }
    .create(&socket)
    .expect_err("the daemon refuses bench/tagged:0");
    let err = format!("{err:#}");
    assert!(err.contains("bench/tagged:0"), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("No such image"), "{err}");
    daemon.join().unwrap();
}

#[test]
fn no_daemon_is_an_error_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let err = ContainerBatch {
        image: "x".to_owned(),
        count: 1,
        cmd: Vec::new(),
        workers: 1,
    }
    .create(&socket)
    .expect_err("nothing listens");
    assert!(format!("{err:#}").contains("absent.sock"), "{err:#}");
}

#[test]
fn hosts_are_unix_sockets_only() {
    assert_eq!(
        socket_path("unix:///run/pg/docker.sock").unwrap(),
        PathBuf::from("/run/pg/docker.sock")
    );
    assert_eq!(
        socket_path("/run/pg/docker.sock").unwrap(),
        PathBuf::from("/run/pg/docker.sock")
    );
    let err = socket_path("tcp://127.0.0.1:2375").unwrap_err().to_string();
    assert!(err.contains("unix socket"), "{err}");
}
