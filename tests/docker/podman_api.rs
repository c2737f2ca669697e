//! pruneguard against a Podman-flavoured Engine API (issue 10, item 4), on the fake API
//! (`support::fake_api`): `/version` with Podman's components and every answer with its
//! `Libpod-*` headers, parent links as bare hex, events answered only in non-streaming mode and
//! named Podman's way, and 500 "image not known" for an image that is gone. Each test names the
//! adaptation in src/engine/ (and src/plan.rs) it pins.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::fake_api::{Answer, FakeApi, Request, container, hex64, image, image_id};
use crate::support::{bare_pruneguard, gate, ids, run};

const LIBPOD: [(&str, &str); 3] = [
    ("Libpod-Api-Version", "5.8.6"),
    ("Libpod-Buildah-Version", "1.43.2"),
    ("Server", "Libpod/5.8.6 (linux)"),
];

/// Podman 5.8.6's `/version`, shortened.
fn podman_version() -> Answer {
    Answer::json(
        200,
        &json!({
            "Platform": { "Name": "linux/amd64/debian-13" },
            "Components": [
                { "Name": "Podman Engine", "Version": "5.8.6",
                  "Details": { "APIVersion": "5.8.6", "MinAPIVersion": "4.0.0", "Os": "linux" } },
                { "Name": "Conmon", "Version": "conmon version 2.1.13", "Details": {} },
            ],
            "Version": "5.8.6",
            "ApiVersion": "1.41",
            "MinAPIVersion": "1.24",
            "Os": "linux",
            "Arch": "amd64",
        }),
    )
}

fn command(api: &FakeApi, subcommand: &str, quiet_period: &str) -> Command {
    let mut command = bare_pruneguard();
    command
        .arg(subcommand)
        .args(["--no-config", "--disk-threshold", "0"])
        .args(["--quiet-period", quiet_period])
        .args(["--output", "json", "--api-timeout", "3s"])
        .arg("-H")
        .arg(api.host())
        .arg("--state-dir")
        .arg(api.state_dir());
    command
}

fn kept(report: &Value, reason: &str) -> u64 {
    report["kept"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no kept.{reason} in {report:#}"))
}

/// A Podman-like answer, or `None` for the fake's defaults. `images` is `/images/json`;
/// `gone` answers 500 "image not known" to its delete (it vanished after the inspect).
fn podman(request: &Request, images: &Value, containers: &Value, gone: &str) -> Option<Answer> {
    let method = request.method.as_str();
    match (method, request.endpoint()) {
        ("GET", "/version") => return Some(podman_version()),
        ("GET", "/images/json") => return Some(Answer::json(200, images)),
        ("GET", "/containers/json") => return Some(Answer::json(200, containers)),
        ("GET", "/events") => {
            // Only the non-streaming mode answers the stored events.
            let events = if request.path.contains("stream=false") {
                vec![json!({
                    "Type": "image", "Action": "loadfromarchive",
                    "Actor": { "ID": hex64(0x77), "Attributes": { "name": "app:1" } },
                    "scope": "local",
                    "time": chrono::Utc::now().timestamp() - 5,
                })]
            } else {
                Vec::new()
            };
            return Some(Answer::json_lines(events));
        }
        _ => {}
    }
    let rest = request.endpoint().strip_prefix("/images/")?;
    match (method, rest.strip_suffix("/json")) {
        ("GET", Some(id)) => Some(Answer::json(
            200,
            &json!({ "Id": id, "RepoTags": [], "Size": 1000 }),
        )),
        ("DELETE", None) if rest == gone => Some(Answer::error(
            500,
            &format!("deleting image {rest:?}: image not known"),
        )),
        ("DELETE", None) => Some(Answer::json(200, &json!([{ "Deleted": rest }]))),
        _ => None,
    }
}

/// The images of the tests below, with Podman's bare-hex parent links:
/// - `base:1` (tagged) ← intermediate 0x21 ← intermediate 0x22 ← `app:1` (tagged): a build;
/// - untagged 0x31, in use by a container ← old dangling 0x32: its parent stays;
/// - old dangling chain 0x41 ← 0x42: both planned;
/// - lone old dangling 0x51, whose delete answers 500 "image not known".
fn listed() -> Value {
    json!([
        image(&image_id(0x20), "", &["base:1"]),
        image(&image_id(0x21), &hex64(0x20), &[]),
        image(&image_id(0x22), &hex64(0x21), &[]),
        image(&image_id(0x23), &hex64(0x22), &["app:1"]),
        image(&image_id(0x31), "", &[]),
        image(&image_id(0x32), &hex64(0x31), &[]),
        image(&image_id(0x41), "", &[]),
        image(&image_id(0x42), &hex64(0x41), &[]),
        image(&image_id(0x51), "", &[]),
    ])
}

fn podman_api() -> FakeApi {
    let images = listed();
    let containers = json!([container(&hex64(0x90), "pin", &hex64(0x31))]);
    let gone = image_id(0x51);
    FakeApi::start_with_headers(&LIBPOD, move |request| {
        podman(request, &images, &containers, &gone)
    })
}

/// A build's untagged intermediates stay under their tagged image (bare `ParentId`s are
/// normalised), an old dangling image whose untagged parent stays is kept as
/// `parent_not_planned`, a dangling chain goes children first, and Podman's 500 "image not
/// known" is "already gone", not a failure: exit 0.
#[test]
fn podman_keeps_unplanned_parents_and_treats_image_not_known_as_gone() {
    let api = podman_api();
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(kept(report, "tagged"), 2, "{report:#}");
    assert_eq!(kept(report, "has_children"), 2, "{report:#}");
    assert_eq!(kept(report, "in_use"), 1, "{report:#}");
    assert_eq!(kept(report, "parent_not_planned"), 1, "{report:#}");
    assert_eq!(
        ids(report, "removed"),
        [image_id(0x41), image_id(0x42)].into()
    );
    assert_eq!(
        ids(report, "skipped"),
        [image_id(0x51)].into(),
        "{report:#}"
    );
    assert_eq!(report["failed"], json!([]), "{report:#}");
    let deletes: Vec<String> = api
        .requests_with("DELETE")
        .iter()
        .map(|request| request.endpoint().to_owned())
        .collect();
    for never in [0x20, 0x21, 0x22, 0x23, 0x31, 0x32] {
        let path = format!("/images/{}", image_id(never));
        assert!(!deletes.contains(&path), "{path} was deleted: {deletes:?}");
    }
    let child = deletes.iter().position(|path| path.ends_with(&hex64(0x42)));
    let parent = deletes.iter().position(|path| path.ends_with(&hex64(0x41)));
    assert!(child < parent, "children first: {deletes:?}");
}

/// The same images on Docker (no Podman component, no Libpod header): `noprune` is honoured,
/// so the old dangling image over the in-use parent is planned. The control of the test above.
#[test]
fn docker_plans_what_podman_keeps() {
    let images = listed();
    let containers = json!([container(&hex64(0x90), "pin", &hex64(0x31))]);
    let api = FakeApi::start(move |request| {
        if request.endpoint() == "/version" {
            return None;
        }
        podman(request, &images, &containers, "")
    });
    let result = run(command(&api, "plan", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(kept(report, "parent_not_planned"), 0, "{report:#}");
    let planned: Vec<&str> = report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|candidate| candidate["id"].as_str().unwrap())
        .collect();
    assert!(planned.contains(&image_id(0x32).as_str()), "{report:#}");
}

/// Podman's events come only in non-streaming mode, without `until`, and its
/// `loadfromarchive` counts as a load: the quiet gate closes.
#[test]
fn podman_events_are_read_in_full_and_a_load_closes_the_quiet_gate() {
    let api = podman_api();
    let result = run(command(&api, "plan", "10m"));
    assert_eq!(result.code, 0, "{}", result.show());
    let quiet = gate(result.json(), "quiet");
    assert_eq!(quiet["open"], json!(false), "{quiet:#}");
    assert_eq!(
        quiet["evidence"]["events"][0]["action"], "load",
        "{quiet:#}"
    );
    let events: Vec<Request> = api
        .requests()
        .into_iter()
        .filter(|request| request.endpoint() == "/events")
        .collect();
    assert!(!events.is_empty());
    for request in events {
        assert!(request.path.contains("stream=false"), "{}", request.line());
        assert!(!request.path.contains("until="), "{}", request.line());
    }
}

/// doctor names Podman and its version, never "Docker 5.8.6", and its JSON says `podman`.
#[test]
fn doctor_names_podman() {
    let api = podman_api();
    let result = run(bare_pruneguard()
        .args(["doctor", "--no-config", "--output", "json", "-H"])
        .arg(api.host())
        .arg("--state-dir")
        .arg(api.state_dir()));
    let report = result.json();
    let daemon = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "daemon")
        .expect("a daemon check");
    assert_eq!(daemon["status"], "ok", "{daemon:#}");
    assert_eq!(daemon["engine"], "podman", "{daemon:#}");
    let detail = daemon["detail"].as_str().unwrap();
    assert!(detail.starts_with("Podman 5.8.6 (API 1.41)"), "{detail}");
    assert!(!detail.contains("Docker"), "{detail}");
}
