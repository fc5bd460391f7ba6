//! What image inspect shows beyond the model's fields, by API version, as
//! dockerd does: `Parent` and `DockerVersion` (the legacy builder's), and
//! `Container` and `ContainerConfig` (the config of the container an image
//! was committed from). `Config` and `ContainerConfig` carry every key Go's
//! `container.Config` always writes, null or zero when unset (before 1.50
//! that is the whole container config, `Hostname` and `Image` too; from
//! 1.50 the image config's keys only).
//!
//! One difference, on purpose: dockerd drops `Container` and
//! `ContainerConfig` from API 1.45 on; berthd keeps them at every version it
//! serves. Compose 1.x (docker-py) negotiates the daemon's highest version,
//! then reads `ContainerConfig["Volumes"]` to carry anonymous volumes over
//! whenever it recreates a container, and fails with `KeyError:
//! 'ContainerConfig'` without it (as it does on dockerd 25 and later). A
//! field more is harmless to every other client.

use serde_json::{json, Map, Value};

/// The keys of Go's `container.Config` that are never omitted, with their
/// zero values, in Go's order.
const CONTAINER_CONFIG_KEYS: &[(&str, ZeroKind)] = &[
    ("Hostname", ZeroKind::Str),
    ("Domainname", ZeroKind::Str),
    ("User", ZeroKind::Str),
    ("AttachStdin", ZeroKind::False),
    ("AttachStdout", ZeroKind::False),
    ("AttachStderr", ZeroKind::False),
    ("Tty", ZeroKind::False),
    ("OpenStdin", ZeroKind::False),
    ("StdinOnce", ZeroKind::False),
    ("Env", ZeroKind::Null),
    ("Cmd", ZeroKind::Null),
    ("Image", ZeroKind::Str),
    ("Volumes", ZeroKind::Null),
    ("WorkingDir", ZeroKind::Str),
    ("Entrypoint", ZeroKind::Null),
    ("OnBuild", ZeroKind::Null),
    ("Labels", ZeroKind::Null),
];

/// The never-omitted keys of the image config dockerd answers from API
/// 1.50 on (1.52 omits these too when unset).
const IMAGE_CONFIG_KEYS: &[(&str, ZeroKind)] = &[
    ("User", ZeroKind::Str),
    ("Env", ZeroKind::Null),
    ("Cmd", ZeroKind::Null),
    ("Volumes", ZeroKind::Null),
    ("WorkingDir", ZeroKind::Str),
    ("Entrypoint", ZeroKind::Null),
    ("OnBuild", ZeroKind::Null),
    ("Labels", ZeroKind::Null),
];

/// Keys of `container.Config` that the image config of 1.50 leaves out.
const NOT_IMAGE_CONFIG: &[&str] = &[
    "Hostname",
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Image",
    "NetworkDisabled",
    "MacAddress",
    "StopTimeout",
];

#[derive(Clone, Copy)]
enum ZeroKind {
    Str,
    False,
    Null,
}

impl ZeroKind {
    fn value(self) -> Value {
        match self {
            ZeroKind::Str => json!(""),
            ZeroKind::False => json!(false),
            ZeroKind::Null => Value::Null,
        }
    }
}

/// A stored config (`config` or `container_config` of an image's blob) as
/// Go renders it: missing never-omitted keys filled with their zero values;
/// an absent or null config is the zero config.
fn go_config(stored: Option<&Value>, keys: &[(&str, ZeroKind)]) -> Value {
    let mut out: Map<String, Value> = stored
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, zero) in keys {
        out.entry(k.to_string()).or_insert_with(|| zero.value());
    }
    Value::Object(out)
}

/// Completes an image inspect body `v` rendered from the model, for a
/// request of API version 1.`minor`, from the image's stored config `blob`
/// and its recorded parent.
pub fn complete(v: &mut Value, blob: &Value, parent: &str, minor: u16) {
    let Some(o) = v.as_object_mut() else { return };
    let s = |k: &str| blob.get(k).and_then(Value::as_str).unwrap_or_default();
    o.insert("Parent".into(), json!(parent));
    o.insert("DockerVersion".into(), json!(s("docker_version")));
    o.entry("Comment").or_insert_with(|| json!(""));
    o.entry("Author").or_insert_with(|| json!(""));
    o.insert("Container".into(), json!(s("container")));
    o.insert(
        "ContainerConfig".into(),
        go_config(blob.get("container_config"), CONTAINER_CONFIG_KEYS),
    );
    let config = if minor < 50 {
        go_config(blob.get("config"), CONTAINER_CONFIG_KEYS)
    } else {
        let mut c = go_config(blob.get("config"), IMAGE_CONFIG_KEYS);
        if let Some(m) = c.as_object_mut() {
            for k in NOT_IMAGE_CONFIG {
                m.remove(*k);
            }
        }
        c
    };
    o.insert("Config".into(), config);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> Value {
        json!({
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Image": "sha256:p", "Hostname": "h"},
            "container": "c0ffee",
            "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\"sh\"]"],
                "Volumes": {"/data": {}}, "Hostname": "c0ffee"},
            "docker_version": "berth-0.1.0",
        })
    }

    #[test]
    fn before_1_50_configs_have_every_key_of_container_config() {
        let mut v = json!({"Id": "sha256:x", "Comment": "c"});
        complete(&mut v, &blob(), "sha256:p", 41);
        assert_eq!(v["Parent"], "sha256:p");
        assert_eq!(v["DockerVersion"], "berth-0.1.0");
        assert_eq!(v["Comment"], "c");
        assert_eq!(v["Author"], "");
        assert_eq!(v["Container"], "c0ffee");
        let cc = &v["ContainerConfig"];
        assert_eq!(cc["Volumes"], json!({"/data": {}}));
        assert_eq!(cc["Hostname"], "c0ffee");
        assert_eq!(cc["Env"], Value::Null);
        assert_eq!(cc["Tty"], false);
        assert_eq!(cc["Labels"], Value::Null);
        assert_eq!(v["Config"]["Image"], "sha256:p");
        assert_eq!(v["Config"]["Hostname"], "h");
        assert_eq!(v["Config"]["WorkingDir"], "");
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert!(v["Config"].get("ExposedPorts").is_none());
    }

    #[test]
    fn a_pulled_image_without_container_config_has_the_zero_one() {
        let mut v = json!({});
        complete(&mut v, &json!({"config": {"Cmd": ["sh"]}}), "", 44);
        assert_eq!(v["Container"], "");
        assert_eq!(v["Parent"], "");
        assert_eq!(v["DockerVersion"], "");
        let cc = v["ContainerConfig"].as_object().unwrap();
        assert_eq!(cc.len(), CONTAINER_CONFIG_KEYS.len());
        assert_eq!(cc["Cmd"], Value::Null);
        assert_eq!(cc["Image"], "");
    }

    #[test]
    fn container_config_at_every_version_and_from_1_50_the_image_config_only() {
        let mut v = json!({});
        complete(&mut v, &blob(), "", 45);
        assert_eq!(v["ContainerConfig"]["Volumes"], json!({"/data": {}}));
        assert_eq!(v["Container"], "c0ffee");
        assert_eq!(v["Config"]["Image"], "sha256:p");
        let mut v = json!({});
        complete(&mut v, &blob(), "", 50);
        let c = v["Config"].as_object().unwrap();
        assert!(!c.contains_key("Image") && !c.contains_key("Hostname") && !c.contains_key("Tty"));
        assert_eq!(c["User"], "");
        assert_eq!(c["Volumes"], Value::Null);
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(v["ContainerConfig"]["Hostname"], "c0ffee");
    }
}
