//! Every event-schema version ever released left a frozen log under migrations/vN/
//! (events.bin: the exact records it wrote) and the state it must replay into
//! (state.json). This replays each with today's code: old logs stay readable.
//!
//! To freeze the current schema's full scenario (when a schema is released, and
//! whenever variants are appended to it, under a new folder name):
//!   BERTH_FREEZE_SCHEMA=v1-images cargo test --test migrations
//! It refuses to overwrite a folder that is already frozen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::Actor;
use berth::actors::event_log::{Append, Drain, EventLog};
use berth::events::projection::Projection;
use berth::events::{Event, CURRENT_SCHEMA};
use berth::store::envelope;
use berth::store::eventlog::EventStore;

fn migrations_dir() -> PathBuf {
    project_dir().join("migrations")
}

/// events.bin: records of (u32 LE key length, key, u32 LE value length, value).
fn read_records(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    let take = |rest: &mut &[u8]| {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("len")) as usize;
        let v = rest[4..4 + len].to_vec();
        *rest = &rest[4 + len..];
        v
    };
    while !rest.is_empty() {
        let k = take(&mut rest);
        let v = take(&mut rest);
        out.push((k, v));
    }
    out
}

/// The scripted history every frozen version records: each event kind, an unclean
/// restart (a start without a stop before it) and a clean one.
fn scenario() -> Vec<Event> {
    vec![
        Event::EngineInitialized {
            id: "0f3c2a9e-7d41-4b8e-9a55-3e1d2c4b5a69".into(),
        },
        Event::DaemonStarted {
            version: "0.1.0".into(),
            pid: 101,
        },
        Event::DaemonStarted {
            version: "0.1.0".into(),
            pid: 202,
        },
        Event::DaemonStopped { pid: 202 },
        Event::DaemonStarted {
            version: "0.1.0".into(),
            pid: 303,
        },
        Event::DaemonStopped { pid: 303 },
        // Image events (appended to v1 after it was first frozen).
        Event::LayerCommitted {
            chain_id: "sha256:aa".into(),
            diff_id: "sha256:aa".into(),
            parent: None,
            size: 100,
        },
        Event::LayerCommitted {
            chain_id: "sha256:bb".into(),
            diff_id: "sha256:b0".into(),
            parent: Some("sha256:aa".into()),
            size: 20,
        },
        Event::ImageStored {
            id: "sha256:i1".into(),
            chain_ids: vec!["sha256:aa".into(), "sha256:bb".into()],
            created: Some("2019-01-01T00:00:00Z".into()),
        },
        Event::ImageTagged {
            id: "sha256:i1".into(),
            tag: "busybox:latest".into(),
        },
        Event::ImageTagged {
            id: "sha256:i1".into(),
            tag: "mybox:1".into(),
        },
        Event::ImageDigested {
            id: "sha256:i1".into(),
            repo_digest: "busybox@sha256:m1".into(),
        },
        Event::ImageStored {
            id: "sha256:i2".into(),
            chain_ids: vec!["sha256:aa".into()],
            created: None,
        },
        Event::ImageTagged {
            id: "sha256:i2".into(),
            tag: "busybox:latest".into(),
        },
        Event::ImageUntagged {
            id: "sha256:i1".into(),
            reference: "mybox:1".into(),
        },
        Event::ImageDeleted {
            id: "sha256:i1".into(),
        },
        Event::LayerRemoved {
            chain_id: "sha256:bb".into(),
        },
        // Container events (appended to v1 after the image events), frozen in
        // v1-containers.
        Event::ContainerCreated {
            id: "c1".into(),
            name: "web".into(),
            image: "sha256:i2".into(),
            image_name: "busybox".into(),
            config: r#"{"Cmd":["sleep","100"],"Image":"busybox"}"#.into(),
        },
        Event::ContainerRenamed {
            id: "c1".into(),
            name: "front".into(),
        },
        Event::ContainerStarted {
            id: "c1".into(),
            pid: 4242,
        },
        Event::ContainerPaused { id: "c1".into() },
        Event::ContainerUnpaused { id: "c1".into() },
        Event::ContainerExited {
            id: "c1".into(),
            exit_code: 137,
            oom_killed: true,
            error: String::new(),
        },
        Event::ContainerCreated {
            id: "c2".into(),
            name: "paused".into(),
            image: "sha256:i2".into(),
            image_name: "busybox".into(),
            config: r#"{"Cmd":["sh"],"Image":"busybox"}"#.into(),
        },
        Event::ContainerStarted {
            id: "c2".into(),
            pid: 4343,
        },
        Event::ContainerPaused { id: "c2".into() },
        Event::ContainerCreated {
            id: "c3".into(),
            name: "gone".into(),
            image: "sha256:i2".into(),
            image_name: "busybox".into(),
            config: r#"{"Cmd":["true"],"Image":"busybox"}"#.into(),
        },
        Event::ContainerRemoved { id: "c3".into() },
        // Restart policies and docker update (appended after the container
        // events), frozen in v1-restart.
        Event::ContainerCreated {
            id: "c4".into(),
            name: "flaky".into(),
            image: "sha256:i2".into(),
            image_name: "busybox".into(),
            config: r#"{"Cmd":["false"],"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always"}}}"#.into(),
        },
        Event::ContainerStartRequested { id: "c4".into() },
        Event::ContainerStarted {
            id: "c4".into(),
            pid: 4444,
        },
        Event::ContainerExited {
            id: "c4".into(),
            exit_code: 1,
            oom_killed: false,
            error: String::new(),
        },
        Event::ContainerRestartScheduled { id: "c4".into() },
        Event::ContainerStarted {
            id: "c4".into(),
            pid: 4445,
        },
        Event::ContainerExited {
            id: "c4".into(),
            exit_code: 1,
            oom_killed: false,
            error: String::new(),
        },
        Event::ContainerRestartScheduled { id: "c4".into() },
        Event::ContainerStopRequested { id: "c4".into() },
        Event::ContainerUpdated {
            id: "c4".into(),
            config: r#"{"Cmd":["false"],"Image":"busybox","HostConfig":{"Memory":67108864,"RestartPolicy":{"Name":"on-failure"}}}"#.into(),
        },
        // Networks (appended after the restart events), frozen in v1-networks.
        Event::NetworkCreated {
            id: "n1".into(),
            name: "bridge".into(),
            config: r#"{"driver":"bridge","subnet":"172.17.0.0/16","gateway":"172.17.0.1","bridge":"berth0","builtin":true}"#.into(),
        },
        Event::NetworkCreated {
            id: "n2".into(),
            name: "app".into(),
            config: r#"{"driver":"bridge","subnet":"10.9.0.0/24","gateway":"10.9.0.1","bridge":"br-n2","labels":{"team":"web"}}"#.into(),
        },
        Event::ContainerNetworkConnected {
            container: "c2".into(),
            network: "n2".into(),
            config: r#"{"Aliases":["db"]}"#.into(),
        },
        Event::ContainerNetworkConnected {
            container: "c4".into(),
            network: "n1".into(),
            config: "{}".into(),
        },
        Event::EndpointUp {
            container: "c2".into(),
            network: "n2".into(),
            endpoint_id: "e1".into(),
            ip: "10.9.0.2".into(),
            mac: "02:42:0a:09:00:02".into(),
            ifname: "eth0".into(),
        },
        Event::ContainerPortsPublished {
            id: "c2".into(),
            ports: vec![berth::events::v1::PublishedPort {
                proto: "tcp".into(),
                container_port: 80,
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
            }],
        },
        Event::ContainerNetworkDisconnected {
            container: "c4".into(),
            network: "n1".into(),
        },
        Event::NetworkCreated {
            id: "n3".into(),
            name: "gone".into(),
            config: "{}".into(),
        },
        Event::NetworkRemoved { id: "n3".into() },
        // A docker event only (appended after the network events), frozen in v1-actions.
        Event::ContainerAction {
            id: "c2".into(),
            action: "kill".into(),
            attributes: vec![("signal".into(), "9".into())],
        },
        // A health check's status (appended after the docker-event actions), frozen in v1-health.
        Event::ContainerHealthStatus {
            id: "c2".into(),
            status: "healthy".into(),
        },
        // Retention's record (appended after the health status), frozen in v1-retention.
        Event::EventsCompacted {
            before_seq: 1,
            before_ns: 1,
        },
        // Volumes and a container's planned mounts (appended after retention's
        // record), frozen in v1-volumes.
        Event::VolumeCreated {
            name: "data".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/berth/volumes/data/_data".into(),
            options: Some(vec![
                ("device".into(), "tmpfs".into()),
                ("type".into(), "tmpfs".into()),
            ]),
            labels: None,
            anonymous: false,
        },
        Event::VolumeCreated {
            name: "0123abcd".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/berth/volumes/0123abcd/_data".into(),
            options: None,
            labels: Some(vec![("k".into(), "v".into())]),
            anonymous: true,
        },
        Event::ContainerMountsPlanned {
            id: "c2".into(),
            mounts: vec![
                berth::events::v1::MountRecord {
                    kind: "volume".into(),
                    name: "data".into(),
                    source: "/var/lib/berth/volumes/data/_data".into(),
                    destination: "/data".into(),
                    mode: "z".into(),
                    copy_data: true,
                    driver: "local".into(),
                    ..Default::default()
                },
                berth::events::v1::MountRecord {
                    kind: "tmpfs".into(),
                    destination: "/t".into(),
                    read_only: true,
                    options: vec!["size=1024k".into()],
                    anonymous: false,
                    ..Default::default()
                },
            ],
        },
        Event::VolumeAction {
            name: "data".into(),
            action: "create".into(),
            attributes: vec![("driver".into(), "local".into())],
        },
        Event::VolumeRemoved {
            name: "0123abcd".into(),
            pruned: true,
        },
        // A built image's parent (appended after the volume events), frozen in
        // v1-builds.
        Event::ImageParentRecorded {
            id: "sha256:i2".into(),
            parent: "sha256:i1".into(),
        },
        // A configuration reload (appended after the build events), frozen in
        // v1-reload.
        Event::DaemonReloaded {
            attributes: vec![
                ("debug".into(), "false".into()),
                (
                    "registry-mirrors".into(),
                    "[\"http://127.0.0.1:5000\"]".into(),
                ),
            ],
        },
    ]
}

fn freeze_current(dir: &Path) {
    assert!(
        !dir.exists(),
        "{} is frozen already: a released schema never changes",
        dir.display()
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EventStore::open(&scratch.path().join("events")).expect("open"));
    actix::System::new().block_on({
        let store = Arc::clone(&store);
        async move {
            let replayed = store.replay().expect("replay");
            let log = EventLog::new(store, replayed, Projection::default(), 1_000_000).start();
            for e in scenario() {
                log.send(Append(e)).await.expect("mailbox").expect("append");
            }
            log.send(Drain).await.expect("drain");
        }
    });
    let mut bin = Vec::new();
    for env in store.read_from(1).expect("read") {
        let env = env.expect("record");
        for part in [envelope::key(env.seq).to_vec(), env.encode_value()] {
            bin.extend_from_slice(&(part.len() as u32).to_le_bytes());
            bin.extend_from_slice(&part);
        }
    }
    let state = store.replay().expect("replay").state;
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("events.bin"), bin).expect("write events");
    std::fs::write(
        dir.join("state.json"),
        serde_json::to_string_pretty(&state).expect("json") + "\n",
    )
    .expect("write state");
}

/// Fields today's code derives from events that older versions already wrote
/// (what removed containers and networks were called, a container's name
/// before its last rename): an old log fills them, and the folder frozen with
/// them (v1-actions) records them exactly.
const DERIVED_LATER: &[&str] = &["departed", "previous_name", "removed_ns"];

/// `got` must hold everything `want` recorded. Fields the state gained after that
/// version was frozen did not exist then: replaying the old log must leave them
/// empty (an empty map or list, null, 0 or false).
fn same_state(
    got: &serde_json::Value,
    want: &serde_json::Value,
    path: String,
) -> Result<(), String> {
    use serde_json::Value;
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                same_state(g.get(k).unwrap_or(&Value::Null), wv, format!("{path}.{k}"))?;
            }
            for (k, gv) in g {
                let empty = match gv {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                };
                if !w.contains_key(k) && !empty && !DERIVED_LATER.contains(&k.as_str()) {
                    return Err(format!(
                        "{path}.{k} (new since this version, but not empty)"
                    ));
                }
            }
            Ok(())
        }
        (g, w) if g == w => Ok(()),
        _ => Err(path),
    }
}

#[test]
fn every_frozen_schema_version_replays_into_its_recorded_state() {
    let root = migrations_dir();
    if let Some(name) = std::env::var_os("BERTH_FREEZE_SCHEMA") {
        freeze_current(&root.join(name));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("migrations/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('v'))
        })
        .collect();
    versions.sort();
    let names: Vec<String> = versions
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    for v in 1..=CURRENT_SCHEMA {
        assert!(
            names.contains(&format!("v{v}")),
            "schema v{v} has no frozen log in migrations/ (found {names:?})"
        );
    }
    for dir in versions {
        let records = read_records(&dir.join("events.bin"));
        assert!(!records.is_empty());
        let scratch = tempfile::tempdir().expect("tempdir");
        let store = EventStore::open(&scratch.path().join("events")).expect("open");
        for (k, v) in &records {
            let seq = envelope::seq_of_key(k).expect("key");
            store.put_raw_for_tests(seq, v).expect("load record");
        }
        let replayed = store
            .replay()
            .unwrap_or_else(|e| panic!("{}: replay failed: {e}", dir.display()));
        assert!(
            replayed.dropped.is_none(),
            "{}: records dropped: {:?}",
            dir.display(),
            replayed.dropped
        );
        assert_eq!(replayed.events_replayed, records.len() as u64);
        let got = serde_json::to_value(&replayed.state).expect("json");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("state.json")).expect("state.json"),
        )
        .expect("json");
        if let Err(path) = same_state(&got, &want, String::new()) {
            panic!(
                "{} replays into another state (at {path}):\n got {got:#}\nwant {want:#}",
                dir.display()
            );
        }
    }
}

/// The project's directory, as cargo gives it when it runs the test (the
/// compile-time value names wherever the binary was built).
fn project_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
