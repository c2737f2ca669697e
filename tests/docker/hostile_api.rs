//! pruneguard against a daemon that lies or misbehaves (issue 9): the fake Engine API
//! (`support::fake_api`) serves odd IDs, unresolvable containers, events without a time,
//! endless bodies, hung and cut deletes. No dockerd is needed. Each test names the protection
//! in src/ it pins; removing that protection makes it fail.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::fake_api::{Answer, FakeApi, Request, container, hex64, image, image_id};
use crate::support::{Run, bare_pruneguard, gate, ids, run};

/// The memory promise of issue 9: a plan's peak RSS, whatever the daemon sends.
const RSS_LIMIT_KIB: u64 = 64 * 1000;

/// `pruneguard SUBCOMMAND` aimed at `api` with the disk gate open, JSON output, a short API
/// timeout and `gates` for the quiet gate (`0s`: off).
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

/// What a daemon answers for an image that exists, is untagged and can be deleted: the
/// inspect before the delete, and the delete.
fn deletable(request: &Request) -> Option<Answer> {
    let rest = request.endpoint().strip_prefix("/images/")?;
    match (request.method.as_str(), rest.strip_suffix("/json")) {
        ("GET", Some(id)) if id.starts_with("sha256:") => Some(Answer::json(
            200,
            &json!({ "Id": id, "RepoTags": [], "Size": 1000 }),
        )),
        ("DELETE", None) => Some(Answer::json(
            200,
            &json!([{ "Deleted": rest.split('?').next() }]),
        )),
        _ => None,
    }
}

fn images_answer(request: &Request, images: &Value) -> Option<Answer> {
    (request.method == "GET" && request.endpoint() == "/images/json")
        .then(|| Answer::json(200, images))
}

fn deleted(api: &FakeApi) -> Vec<String> {
    api.requests_with("DELETE")
        .iter()
        .map(|request| request.endpoint().to_owned())
        .collect()
}

fn kept(report: &Value, reason: &str) -> u64 {
    report["kept"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no kept.{reason} in {report:#}"))
}

/// Runs `command` under `/usr/bin/time -v` (Debian's `time`, which `scripts/sandbox.sh
/// ensure-installed` installs): the run, and its peak RSS in KiB.
fn run_measured(command: &Command) -> (Run, u64) {
    let time = std::path::Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "/usr/bin/time is missing: install Debian's `time` package (scripts/sandbox.sh ensure-installed does)"
    );
    let mut timed = Command::new(time);
    timed
        .arg("-v")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let result = run(timed);
    let peak = result
        .stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
        })
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {}", result.show()));
    eprintln!("peak RSS of pruneguard: {peak} KiB");
    (result, peak)
}

/// IDs that could change a request's path (or are just not Docker's form) are kept as
/// `malformed_id`, and no request is ever sent for them; a well-formed one beside them is
/// deleted as usual. Pins the plan's ID check (src/plan.rs) and `checked_id` behind it.
#[test]
fn malformed_image_ids_are_kept_and_nothing_is_sent_for_them() {
    let victim = hex64(0xcc);
    let malformed = [
        format!("sha256:x/../../../containers/{victim}"),
        format!(
            "sha256:{}%2F..%2F..%2Fcontainers%2F{victim}",
            &hex64(1)[..40]
        ),
        format!("sha256:{}?force=1", hex64(2)),
        format!("sha256:{}", hex64(0xab).to_uppercase()),
        format!("sha256:{}", &hex64(3)[..63]),
    ];
    let good = image_id(0x44);
    let mut listed: Vec<Value> = malformed.iter().map(|id| image(id, "", &[])).collect();
    listed.push(image(&good, "", &[]));
    let listed = json!(listed);
    let api = FakeApi::start(move |request| {
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(kept(report, "malformed_id"), 5, "{report:#}");
    assert_eq!(ids(report, "removed"), [good.clone()].into());
    let allowed = [
        "/_ping".to_owned(),
        "/version".to_owned(),
        "/info".to_owned(),
        "/images/json".to_owned(),
        "/containers/json".to_owned(),
        format!("/images/{good}/json"),
        format!("/images/{good}"),
    ];
    for request in api.requests() {
        assert!(
            allowed.contains(&request.endpoint().to_owned()),
            "a request outside the well-formed image paths was sent: {}",
            request.line()
        );
        assert!(!request.path.contains(&victim), "{}", request.line());
    }
}

/// A bare 64-hex ID (Podman's form) gets its `sha256:` prefix, for an image and for a parent
/// link: the parent is seen to have a (tagged) child and kept; a bare dangling image is deleted
/// by its full ID. Pins `normalize_image_id` (src/engine/docker.rs).
#[test]
fn bare_hex_ids_are_normalised_so_parents_have_their_children() {
    let parent = image_id(0x10);
    let child = hex64(0x11);
    let loose = hex64(0x12);
    let listed = json!([
        image(&parent, "", &[]),
        image(&child, &hex64(0x10), &["app:1"]),
        image(&loose, "", &[]),
    ]);
    let api = FakeApi::start(move |request| {
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(kept(report, "has_children"), 1, "{report:#}");
    assert_eq!(kept(report, "tagged"), 1, "{report:#}");
    assert_eq!(kept(report, "malformed_id"), 0, "{report:#}");
    assert_eq!(ids(report, "removed"), [format!("sha256:{loose}")].into());
    assert_eq!(deleted(&api), [format!("/images/sha256:{loose}")]);
}

/// The same ID listed twice is one image: with one copy tagged it is kept as tagged, with two
/// untagged copies it is kept as duplicated; neither is deleted. A unique image beside them is.
#[test]
fn an_id_listed_twice_is_never_planned() {
    let twice_tagged = image_id(0x30);
    let twice = image_id(0x31);
    let unique = image_id(0x32);
    let listed = json!([
        image(&twice_tagged, "", &[]),
        image(&twice, "", &[]),
        image(&unique, "", &[]),
        image(&twice, "", &[]),
        image(&twice_tagged, "", &["app:1"]),
    ]);
    let api = FakeApi::start(move |request| {
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(ids(report, "candidates"), [unique.clone()].into());
    assert_eq!(deleted(&api), [format!("/images/{unique}")]);
    assert_eq!(kept(report, "tagged"), 1, "{report:#}");
    assert_eq!(kept(report, "duplicated"), 1, "{report:#}");
}

/// A container's image reference is resolved however the daemon writes it: a short ID, a
/// full ID in capitals, a name matching a tag. What it resolves to is protected; an unused
/// image beside them is deleted.
#[test]
fn containers_protect_their_image_however_it_is_written() {
    let short = image_id(0x20);
    let capitals = image_id(0x21);
    let named = image_id(0x22);
    let unused = image_id(0x23);
    let listed = json!([
        image(&short, "", &[]),
        image(&capitals, "", &[]),
        image(&named, "", &["docker.io/library/app:latest"]),
        image(&unused, "", &[]),
    ]);
    let containers = json!([
        container(&hex64(0xc1), "by-short-id", &hex64(0x20)[..12]),
        container(&hex64(0xc2), "by-capitals", &capitals.to_uppercase()),
        container(&hex64(0xc3), "by-name", "app"),
    ]);
    let api = FakeApi::start(move |request| match request.endpoint() {
        "/containers/json" => Some(Answer::json(200, &containers)),
        _ => images_answer(request, &listed).or_else(|| deletable(request)),
    });
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(
        ids(report, "candidates"),
        [unused.clone()].into(),
        "{report:#}"
    );
    assert_eq!(deleted(&api), [format!("/images/{unused}")]);
    assert_eq!(kept(report, "in_use"), 2, "{report:#}");
    assert_eq!(report["unresolved_containers"], json!([]), "{report:#}");
}

/// A container whose image reference is empty or matches nothing: it could be using any
/// image, so nothing is deleted, and the report names it.
#[test]
fn a_container_whose_image_matches_nothing_stops_every_deletion() {
    let dangling = image_id(0x24);
    let listed = json!([image(&dangling, "", &[])]);
    let containers = json!([
        container(&hex64(0xd1), "no-image", ""),
        container(&hex64(0xd2), "gone-image", "nginx:1.25"),
    ]);
    let api = FakeApi::start(move |request| match request.endpoint() {
        "/containers/json" => Some(Answer::json(200, &containers)),
        _ => images_answer(request, &listed).or_else(|| deletable(request)),
    });
    let result = run(command(&api, "run", "0s"));
    let report = result.json();
    assert!(deleted(&api).is_empty(), "{:?}", api.requests());
    assert_eq!(report["candidates"], json!([]), "{report:#}");
    let names: Vec<&str> = report["unresolved_containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no unresolved_containers in {report:#}"))
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(names, ["no-image", "gone-image"], "{report:#}");
    assert_eq!(kept(report, "unresolved_container"), 1, "{report:#}");
}

fn load_event(time: Option<i64>) -> Value {
    let mut event = json!({
        "Type": "image",
        "Action": "load",
        "Actor": { "ID": image_id(0x50), "Attributes": { "name": "app:1" } },
        "scope": "local",
    });
    if let Some(time) = time {
        event["time"] = json!(time);
        event["timeNano"] = json!(time * 1_000_000_000);
    }
    event
}

/// An event without a usable time counts as happening now, so it closes the quiet gate; the
/// same event with an old time does not (the control). Pins `event_of`'s fallback.
#[test]
fn an_event_without_a_time_closes_the_quiet_gate() {
    for (time, closed) in [(None, true), (Some(0), true), (Some(1_000_000), false)] {
        let api = FakeApi::start(move |request| {
            (request.endpoint() == "/events").then(|| Answer::json_lines([load_event(time)]))
        });
        let result = run(command(&api, "plan", "10m"));
        assert_eq!(result.code, 0, "{}", result.show());
        let quiet = gate(result.json(), "quiet");
        assert_eq!(
            quiet["open"],
            json!(!closed),
            "event time {time:?}: {quiet:#}"
        );
    }
}

/// 20,000 events in the window: counted, the gate closed, a report of a few KiB and a small
/// peak RSS (the events are sampled, not kept).
#[test]
fn twenty_thousand_events_keep_the_report_and_memory_small() {
    let now = chrono::Utc::now().timestamp();
    let api = FakeApi::start(move |request| {
        (request.endpoint() == "/events")
            .then(|| Answer::json_lines((0..20_000).map(|_| load_event(Some(now)))))
    });
    let (result, peak_kib) = run_measured(&command(&api, "plan", "10m"));
    assert_eq!(result.code, 0, "{}", result.show());
    let quiet = gate(result.json(), "quiet");
    assert_eq!(quiet["open"], json!(false), "{quiet:#}");
    assert!(
        quiet["detail"]
            .as_str()
            .is_some_and(|d| d.contains("20000")),
        "{quiet:#}"
    );
    assert!(
        result.stdout.len() < 32 * 1024,
        "a {} byte report for 20,000 events",
        result.stdout.len()
    );
    assert!(peak_kib < RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB");
}

/// An events stream that never ends: cut at its bound (a protocol error, so the quiet
/// gate is closed as unknown), well within the API timeout, with a small peak RSS. Pins the
/// bound of src/engine/bounded.rs on the events stream.
#[test]
fn an_endless_events_stream_is_cut_at_the_bound() {
    let now = chrono::Utc::now().timestamp();
    let line = format!("{}\n", load_event(Some(now))).into_bytes();
    let api = FakeApi::start(move |request| {
        (request.endpoint() == "/events").then(|| Answer::Endless {
            head: Vec::new(),
            repeat: line.clone(),
        })
    });
    let (result, peak_kib) = run_measured(&command(&api, "plan", "10m"));
    assert_eq!(result.code, 0, "{}", result.show());
    let quiet = gate(result.json(), "quiet");
    assert_eq!(quiet["open"], json!(false), "{quiet:#}");
    let detail = quiet.to_string();
    assert!(
        detail.contains("GET /events") && detail.contains("8 MiB"),
        "{quiet:#}"
    );
    assert!(result.stdout.len() < 32 * 1024, "{}", result.stdout.len());
    assert!(peak_kib < RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB");
}

/// An `/images/json` body that never ends: the run fails cleanly at the bound (exit 1, a
/// message naming the endpoint and the bound), deletes nothing and stays small in memory.
#[test]
fn an_endless_image_list_fails_the_run_cleanly() {
    let entry = format!("{},", image(&image_id(0x60), "", &[])).into_bytes();
    let api = FakeApi::start(move |request| {
        (request.endpoint() == "/images/json").then(|| Answer::Endless {
            head: b"[".to_vec(),
            repeat: entry.clone(),
        })
    });
    let (result, peak_kib) = run_measured(&command(&api, "run", "0s"));
    assert_eq!(result.code, 1, "{}", result.show());
    assert!(
        result.stderr.contains("GET /images/json") && result.stderr.contains("4 MiB"),
        "{}",
        result.show()
    );
    // A big host can pass the bound legitimately: the message names the setting to raise.
    assert!(
        result.stderr.contains("engine.max_list_size"),
        "{}",
        result.show()
    );
    assert!(deleted(&api).is_empty());
    assert!(peak_kib < RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB");
}

/// A delete that hangs on a daemon that still answers pings is not "daemon lost": the image
/// is looked up again, found gone, and recorded as removed.
#[test]
fn a_hung_delete_on_a_live_daemon_is_checked_not_called_daemon_lost() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let id = image_id(0x70);
    let listed = json!([image(&id, "", &[])]);
    let delete_seen = Arc::new(AtomicBool::new(false));
    let api = FakeApi::start(move |request| {
        if request.method == "DELETE" {
            delete_seen.store(true, Ordering::SeqCst);
            return Some(Answer::Hang);
        }
        if request.method == "GET"
            && request.endpoint().ends_with("/json")
            && request.endpoint().starts_with("/images/sha256:")
            && delete_seen.load(Ordering::SeqCst)
        {
            return Some(Answer::error(404, "No such image"));
        }
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    let report = result.json();
    assert_eq!(ids(report, "removed"), [id.clone()].into(), "{report:#}");
    assert_ne!(
        report["stopped"]["kind"],
        json!("daemon_lost"),
        "{report:#}"
    );
    assert_eq!(result.code, 0, "{}", result.show());
    let inspects = api
        .requests_with("GET")
        .iter()
        .filter(|request| request.endpoint() == format!("/images/{id}/json"))
        .count();
    assert_eq!(inspects, 2, "looked at before the delete and after it");
}

/// A delete whose connection is cut without an answer, on a daemon that still answers pings:
/// the image is looked up again, found still there, and recorded as failed, not "daemon lost".
#[test]
fn a_cut_delete_on_a_live_daemon_is_checked_not_called_daemon_lost() {
    let id = image_id(0x71);
    let listed = json!([image(&id, "", &[])]);
    let api = FakeApi::start(move |request| {
        if request.method == "DELETE" {
            return Some(Answer::Cut);
        }
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    let report = result.json();
    assert_eq!(ids(report, "failed"), [id.clone()].into(), "{report:#}");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("still there")),
        "{report:#}"
    );
    assert_ne!(
        report["stopped"]["kind"],
        json!("daemon_lost"),
        "{report:#}"
    );
    assert_ne!(result.code, 0, "{}", result.show());
}

/// A delete answer that lists untagged tags: the image is removed with the tags it lost
/// (`tags_lost`; digest references are not tags), and the run exits 3.
#[test]
fn untagged_entries_of_a_delete_answer_are_tags_lost() {
    let id = image_id(0x72);
    let listed = json!([image(&id, "", &[])]);
    let answer = json!([
        { "Untagged": "app:1" },
        { "Untagged": format!("app@sha256:{}", hex64(0x73)) },
        { "Deleted": id },
    ]);
    let api = FakeApi::start(move |request| {
        if request.method == "DELETE" {
            return Some(Answer::json(200, &answer));
        }
        images_answer(request, &listed).or_else(|| deletable(request))
    });
    let result = run(command(&api, "run", "0s"));
    assert_eq!(result.code, 3, "{}", result.show());
    let report = result.json();
    assert_eq!(
        report["tags_lost"],
        json!([{ "id": id, "tags": ["app:1"] }]),
        "{report:#}"
    );
    assert_eq!(ids(report, "removed"), [id].into());
}

/// A JSON array of `entry(0)`, `entry(1)`, … as long as it stays under `bound` bytes.
fn array_under(bound: usize, entry: impl Fn(u64) -> Value) -> Vec<u8> {
    let mut body = b"[".to_vec();
    for index in 0_u64.. {
        let entry = entry(index).to_string();
        if body.len() + entry.len() + 2 > bound {
            break;
        }
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(entry.as_bytes());
    }
    body.push(b']');
    body
}

/// The worst a daemon can send within the bounds: an image list and a container list each
/// just under `LIST_ANSWER_LIMIT`, all valid (over 15,000 tagged images and as many
/// containers using them). The peak RSS of the plan stays under the promise: this is what
/// sets the bound.
#[test]
fn valid_lists_just_under_the_bound_keep_memory_small() {
    let bound = pruneguard_list_bound() - 4096;
    let images = array_under(bound, |index| {
        image(
            &format!("sha256:{index:064x}"),
            "",
            &[&format!("app:{index}")],
        )
    });
    let containers = array_under(bound, |index| {
        container(
            &format!("{index:064x}"),
            &format!("c{index}"),
            &format!("sha256:{index:064x}"),
        )
    });
    let api = FakeApi::start(move |request| {
        let body = match request.endpoint() {
            "/images/json" => images.clone(),
            "/containers/json" => containers.clone(),
            _ => return None,
        };
        Some(Answer::Body {
            status: 200,
            content_type: "application/json",
            body,
        })
    });
    let (result, peak_kib) = run_measured(&command(&api, "plan", "0s"));
    assert_eq!(result.code, 0, "{}", result.show());
    assert!(kept(result.json(), "tagged") > 15_000, "{}", result.stdout);
    assert!(peak_kib < RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB");
}

/// `LIST_ANSWER_LIMIT` of src/engine/bounded.rs.
fn pruneguard_list_bound() -> usize {
    4 * 1024 * 1024
}
