//! Volumes, as the domain sees them: which names and options a volume may
//! have, and how inspect, `volume ls` and prune show and choose them. The
//! VolumeService actor keeps them; the local driver puts them on disk.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::drivers::volumes::LOCAL_OPTIONS;
use crate::error::{Error, Result};
use crate::events::projection::{State, VolumeRecord};

/// The one driver this berthd has.
pub const LOCAL: &str = "local";

/// A map as sorted pairs (what the volume events record).
pub fn sorted_pairs(map: HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = map.into_iter().collect();
    v.sort();
    v
}

/// dockerd's RestrictedNamePattern, `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`: what a
/// local volume's name may be (and a container's: containers/ uses it too).
pub fn restricted_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// dockerd's check of a volume's name (`volume create`, `-v name:/path`).
pub fn check_name(name: &str) -> Result<()> {
    if name.chars().count() == 1 {
        return Err(Error::invalid(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    if restricted_name(name) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// dockerd's lookup of a volume driver (made for every use of a volume).
pub fn check_driver(name: &str, driver: &str) -> Result<()> {
    if driver != LOCAL {
        return Err(Error::not_found(format!(
            "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    Ok(())
}

/// The local driver's check of a new volume's options.
pub fn check_options(name: &str, options: &[(String, String)]) -> Result<()> {
    for (k, _) in options {
        if !LOCAL_OPTIONS.contains(&k.as_str()) {
            return Err(Error::invalid(format!(
                "create {name}: invalid option: {k:?}"
            )));
        }
    }
    let has = |k: &str| options.iter().any(|(key, _)| key == k);
    let missing = if has("type") && !has("device") {
        Some("device")
    } else if has("device") && !has("type") {
        Some("type")
    } else if has("o") && !has("device") {
        Some("device")
    } else {
        None
    };
    if let Some(m) = missing {
        return Err(Error::invalid(format!(
            "create {name}: missing required option: \"{m}\""
        )));
    }
    Ok(())
}

/// `GET /volumes/{name}` (and each entry of `GET /volumes`).
pub fn inspect(v: &VolumeRecord) -> Value {
    let secs = v.created_ns / 1_000_000_000;
    let created = crate::clock::rfc3339(secs * 1_000_000_000).replace(".000000000Z", "Z");
    json!({
        "CreatedAt": created,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// A volume made with driver options (a tmpfs, a bind of a device): prune
/// and `system df` leave these out, as dockerd's local driver does.
fn has_options(v: &VolumeRecord) -> bool {
    v.options.as_ref().is_some_and(|o| !o.is_empty())
}

/// The `Volumes` of `GET /system/df`: each volume with the bytes it holds
/// and how many containers use it. Walks every volume's files: call it off
/// the runtime's thread.
pub fn disk_usage(state: &State) -> Vec<Value> {
    state
        .volumes
        .values()
        .filter(|v| !has_options(v))
        .map(|v| {
            let mut out = inspect(v);
            out["UsageData"] = json!({
                "Size": crate::drivers::volumes::size(std::path::Path::new(&v.mountpoint)),
                "RefCount": state.volume_users(&v.name).len(),
            });
            out
        })
        .collect()
}

/// The filters `GET /volumes` takes.
const LIST_FILTERS: [&str; 4] = ["dangling", "name", "label", "driver"];

/// `GET /volumes`: the volumes `filters` selects, by name.
pub fn list(state: &State, filters: &HashMap<String, Vec<String>>) -> Result<Value> {
    if let Some(k) = filters.keys().find(|k| !LIST_FILTERS.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let dangling = match filters.get("dangling").and_then(|v| v.first()) {
        None => None,
        Some(v) => Some(match v.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter 'dangling=[{other}]'"
                )))
            }
        }),
    };
    let mut out = Vec::new();
    for v in state.volumes.values() {
        if let Some(d) = dangling {
            if state.volume_users(&v.name).is_empty() != d {
                continue;
            }
        }
        if let Some(names) = filters.get("name") {
            if !names.iter().any(|n| v.name.contains(n.as_str())) {
                continue;
            }
        }
        if let Some(drivers) = filters.get("driver") {
            if !drivers.iter().any(|d| v.driver.contains(d.as_str())) {
                continue;
            }
        }
        if !labels_match(v.labels.as_ref(), filters.get("label")) {
            continue;
        }
        out.push(inspect(v));
    }
    Ok(json!({ "Volumes": out, "Warnings": Value::Null }))
}

/// dockerd's label filter: every `key` or `key=value` given must hold.
pub fn labels_match(
    labels: Option<&BTreeMap<String, String>>,
    wanted: Option<&Vec<String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    wanted.is_none_or(|wanted| {
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(w),
        })
    })
}

/// What `POST /volumes/prune` removes: volumes no container uses and made
/// without driver options; anonymous ones only unless `all` (API 1.42 on:
/// the `all` filter; before, every one), chosen by `label` and `label!`
/// (a volume that matches every `label!` given stays).
pub fn prunable(
    state: &State,
    all_by_default: bool,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let keys: &[&str] = if all_by_default {
        &["label", "label!"]
    } else {
        &["label", "label!", "all"]
    };
    if let Some(k) = filters.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let all = all_by_default
        || filters
            .get("all")
            .and_then(|v| v.first())
            .is_some_and(|v| matches!(v.as_str(), "1" | "true"));
    let without = filters.get("label!");
    Ok(state
        .volumes
        .values()
        .filter(|v| all || v.anonymous)
        .filter(|v| !has_options(v))
        .filter(|v| labels_match(v.labels.as_ref(), filters.get("label")))
        .filter(|v| without.is_none_or(|w| !labels_match(v.labels.as_ref(), Some(w))))
        .filter(|v| state.volume_users(&v.name).is_empty())
        .map(|v| v.name.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_and_options_are_checked_as_dockerd() {
        assert!(check_name("data_1.x-y").is_ok());
        assert!(check_name("a/b")
            .expect_err("slash")
            .to_string()
            .contains("includes invalid characters for a local volume name"));
        assert!(check_name("-x").is_err());
        assert_eq!(
            check_name("x").expect_err("short").to_string(),
            "create x: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            check_options("v", &o(&[("type", "tmpfs")]))
                .expect_err("no device")
                .to_string(),
            "create v: missing required option: \"device\""
        );
        assert!(check_options("v", &o(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        assert_eq!(
            check_options("v", &o(&[("foo", "bar")]))
                .expect_err("unknown")
                .to_string(),
            "create v: invalid option: \"foo\""
        );
        assert_eq!(
            check_driver("v", "bogus").expect_err("driver").to_string(),
            "create v: error looking up volume plugin bogus: plugin \"bogus\" not found"
        );
    }
}
