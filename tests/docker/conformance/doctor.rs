//! `doctor` on every engine: it passes its `daemon` check, and its JSON names the engine it
//! talked to (`docker` | `podman`) and the image store (`classic` | `containerd`), and on the
//! containerd store where image data lives (containerd's root, on containerd-ext a filesystem
//! of its own).
//!
//! Where the JSON says it (issue 10's contract names the facts, not the keys): the engine as
//! `engine` at the top level or on the `daemon` check, the store as the top-level
//! `image_store`; a test accepts either place for the engine.

use serde_json::Value;

use crate::support::{Sandbox, Store, pruneguard, run};

fn doctor_json(sb: &Sandbox) -> Value {
    let result = run(pruneguard(sb).args(["doctor", "--no-config", "--output", "json"]));
    assert!(
        result.report.is_object(),
        "doctor --output json prints a JSON document on {}: {}",
        sb.engine(),
        result.show()
    );
    result.report
}

fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|check| check["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {json:#}"))
}

#[test]
fn doctor_names_the_engine_and_the_image_store() {
    let sb = Sandbox::start();
    let engine = sb.engine();
    let json = doctor_json(&sb);
    let daemon = check(&json, "daemon");
    assert_eq!(daemon["status"], "ok", "on {engine}: {daemon:#}");

    let named = json
        .get("engine")
        .filter(|value| value.is_string())
        .or_else(|| daemon.get("engine"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        named,
        engine.kind(),
        "on {engine} doctor's JSON names the engine (`engine`)\n{json:#}"
    );
    let title = if engine.is_podman { "Podman" } else { "Docker" };
    assert!(
        daemon["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with(title),
        "on {engine} the daemon check says {title}: {daemon:#}"
    );

    let store = &json["image_store"];
    if engine.is_podman {
        assert!(
            store.is_string(),
            "on {engine} doctor's JSON names the image store (`image_store`)\n{json:#}"
        );
    } else {
        assert_eq!(
            store,
            engine.store.as_str(),
            "on {engine} doctor's JSON names the image store (`image_store`)\n{json:#}"
        );
    }
    if engine.store == Store::Containerd && engine.containerd_ext {
        let root = sb.containerd_root().expect("a containerd root");
        let text = json.to_string();
        assert!(
            text.contains(root.to_string_lossy().as_ref()),
            "on {engine} doctor says where image data lives ({})\n{json:#}",
            root.display()
        );
    }
}
