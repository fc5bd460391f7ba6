//! The docker-events view of the log: each domain event becomes zero or more of
//! Docker's `/events` messages, shaped and filtered as dockerd 20.10 does.
//!
//! A message names its actor as it was: a container's name, image and labels.
//! `Names` looks them up in the state (or among the departed, for a `destroy`
//! read after the removal) and follows creates and renames it reads, so one
//! reader gives the same answers for history and for live events.

use std::collections::{BTreeMap, HashMap};

use super::projection::{labels_of, network_driver, State, HEALTH_STARTING};
use super::v1::MountRecord;
use super::Event;
use crate::error::{Error, Result};

/// One Docker event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// "container", "image", "network", "volume", "daemon".
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    /// A container's image as named (the legacy `from` field).
    pub from: Option<String>,
    pub time_ns: u64,
}

impl Message {
    /// Appends the JSON line dockerd 20.10 sends: the legacy status/id/from first for
    /// containers and images, then Type, Action, Actor, scope, time, timeNano.
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        if matches!(self.kind, "container" | "image") {
            push_field(out, "status", &self.action);
            push_field(out, "id", &self.id);
            if let Some(from) = &self.from {
                push_field(out, "from", from);
            }
        }
        push_field(out, "Type", self.kind);
        push_field(out, "Action", &self.action);
        out.push_str("\"Actor\":{");
        push_field(out, "ID", &self.id);
        out.push_str("\"Attributes\":{");
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str(out, k);
            out.push(':');
            push_str(out, v);
        }
        out.push_str("}},");
        push_field(out, "scope", "local");
        use std::fmt::Write;
        let _ = write!(
            out,
            "\"time\":{},\"timeNano\":{}}}",
            self.time_ns / 1_000_000_000,
            self.time_ns
        );
    }
}

fn push_field(out: &mut String, key: &str, value: &str) {
    push_str(out, key);
    out.push(':');
    push_str(out, value);
    out.push(',');
}

/// A JSON string, escaped as encoding/json does (", \\, control characters;
/// dockerd's encoder also escapes <, > and & for HTML).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings (IDs, names, actions) need no escape: copy them whole.
    if !s
        .bytes()
        .any(|b| b < 0x20 || matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&'))
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A container as its events name it.
#[derive(Debug, Clone, Default)]
struct ContainerNames {
    name: String,
    image: String,
    labels: BTreeMap<String, String>,
    networks: Vec<String>,
    /// Its volume mounts (a start mounts them, an exit unmounts them).
    volumes: Vec<MountRecord>,
}

fn volumes_of(mounts: &Option<Vec<MountRecord>>) -> Vec<MountRecord> {
    mounts
        .iter()
        .flatten()
        .filter(|m| m.kind == "volume")
        .cloned()
        .collect()
}

/// Names of containers and networks, for one reader of the log.
#[derive(Default)]
pub struct Names {
    containers: HashMap<String, ContainerNames>,
}

impl Names {
    /// The names of container `id`: what this reader saw of it, else the
    /// state's (or the departed's) record.
    fn container(&mut self, state: &State, id: &str) -> &ContainerNames {
        if !self.containers.contains_key(id) {
            let found = if let Some(c) = state.containers.get(id) {
                ContainerNames {
                    name: c.name.clone(),
                    image: c.image_name.clone(),
                    labels: labels_of(&c.config),
                    networks: c.networks.keys().cloned().collect(),
                    volumes: volumes_of(&c.mounts),
                }
            } else if let Some(d) = state.departed.get(id) {
                ContainerNames {
                    name: d.name.clone(),
                    image: d.image_or_driver.clone(),
                    labels: d.labels.clone(),
                    networks: d.networks.clone(),
                    volumes: Vec::new(),
                }
            } else {
                ContainerNames::default()
            };
            // Bounded by the containers one reader meets; a long live reader drops
            // its cache now and then rather than grow with the engine's history.
            if self.containers.len() > 4096 {
                self.containers.clear();
            }
            self.containers.insert(id.to_string(), found);
        }
        &self.containers[id]
    }

    fn network(&self, state: &State, id: &str) -> (String, String) {
        if let Some(n) = state.networks.get(id) {
            (n.name.clone(), network_driver(&n.config))
        } else if let Some(d) = state.departed.get(id) {
            (d.name.clone(), d.image_or_driver.clone())
        } else {
            (String::new(), "bridge".into())
        }
    }
}

/// The Docker events that `event` (committed at `time_ns`) stands for.
/// `state` is the projection at or after the event.
pub fn translate(names: &mut Names, state: &State, time_ns: u64, event: &Event) -> Vec<Message> {
    let container = |names: &mut Names, id: &str, action: &str, extra: &[(&str, String)]| {
        let c = names.container(state, id);
        let image = c.image.clone();
        let mut attributes = c.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        attributes.insert("image".into(), image.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        Message {
            kind: "container",
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            from: Some(image),
            time_ns,
        }
    };
    let network = |names: &Names, id: &str, action: &str, container: Option<&str>| {
        let (name, driver) = names.network(state, id);
        let mut attributes =
            BTreeMap::from([("name".to_string(), name), ("type".to_string(), driver)]);
        if let Some(c) = container {
            attributes.insert("container".into(), c.to_string());
        }
        Message {
            kind: "network",
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            from: None,
            time_ns,
        }
    };
    let volume = |name: &str, action: &str, driver: &str, extra: &[(&str, String)]| {
        let mut attributes = BTreeMap::from([("driver".to_string(), driver.to_string())]);
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        Message {
            kind: "volume",
            action: action.to_string(),
            id: name.to_string(),
            attributes,
            from: None,
            time_ns,
        }
    };
    let image = |action: &str, id: &str, name: &str| Message {
        kind: "image",
        action: action.to_string(),
        id: id.to_string(),
        attributes: BTreeMap::from([("name".to_string(), name.to_string())]),
        from: None,
        time_ns,
    };
    match event {
        Event::ContainerCreated {
            id,
            name,
            image_name,
            config,
            ..
        } => {
            names.containers.insert(
                id.clone(),
                ContainerNames {
                    name: name.clone(),
                    image: image_name.clone(),
                    labels: labels_of(config),
                    networks: Vec::new(),
                    volumes: Vec::new(),
                },
            );
            vec![container(names, id, "create", &[])]
        }
        Event::ContainerRenamed { id, name } => {
            let before = names.container(state, id).name.clone();
            let old = match state.containers.get(id) {
                // The state may already be past this rename: it keeps the name before.
                Some(c) if before == *name => c.previous_name.clone(),
                _ => before,
            };
            if let Some(c) = names.containers.get_mut(id) {
                c.name = name.clone();
            }
            vec![container(
                names,
                id,
                "rename",
                &[("oldName", format!("/{old}"))],
            )]
        }
        Event::ContainerMountsPlanned { id, mounts } => {
            let volumes = volumes_of(&Some(mounts.clone()));
            if let Some(c) = names.containers.get_mut(id) {
                c.volumes = volumes;
            }
            Vec::new()
        }
        Event::ContainerStarted { id, .. } => {
            // dockerd mounts each volume (an event each) before the start.
            let mut out: Vec<Message> = names
                .container(state, id)
                .volumes
                .iter()
                .map(|m| {
                    volume(
                        &m.name,
                        "mount",
                        &m.driver,
                        &[
                            ("container", id.clone()),
                            ("destination", m.destination.clone()),
                            ("read/write", (!m.read_only).to_string()),
                            ("propagation", m.propagation.clone()),
                        ],
                    )
                })
                .collect();
            out.push(container(names, id, "start", &[]));
            out
        }
        Event::ContainerExited {
            id,
            exit_code,
            oom_killed,
            ..
        } => {
            let mut out = Vec::new();
            if *oom_killed {
                out.push(container(names, id, "oom", &[]));
            }
            out.push(container(
                names,
                id,
                "die",
                &[("exitCode", exit_code.to_string())],
            ));
            for net in names.container(state, id).networks.clone() {
                out.push(network(names, &net, "disconnect", Some(id)));
            }
            for m in names.container(state, id).volumes.clone() {
                out.push(volume(
                    &m.name,
                    "unmount",
                    &m.driver,
                    &[("container", id.clone())],
                ));
            }
            out
        }
        Event::ContainerRemoved { id } => {
            let out = vec![container(names, id, "destroy", &[])];
            names.containers.remove(id);
            out
        }
        Event::ContainerPaused { id } => vec![container(names, id, "pause", &[])],
        Event::ContainerUnpaused { id } => vec![container(names, id, "unpause", &[])],
        Event::ContainerUpdated { id, .. } => vec![container(names, id, "update", &[])],
        Event::ContainerAction {
            id,
            action,
            attributes,
        } => {
            let extra: Vec<(&str, String)> = attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            vec![container(names, id, action, &extra)]
        }
        // dockerd tells a health status when it changes, never "starting"
        // (a start resets it without an event).
        Event::ContainerHealthStatus { id, status } if status != HEALTH_STARTING => {
            let action = format!("health_status: {status}");
            vec![container(names, id, &action, &[])]
        }
        Event::ContainerHealthStatus { .. } => Vec::new(),
        Event::EndpointUp {
            container: c,
            network: n,
            ..
        } => {
            if let Some(cached) = names.containers.get_mut(c) {
                if !cached.networks.contains(n) {
                    cached.networks.push(n.clone());
                }
            }
            vec![network(names, n, "connect", Some(c))]
        }
        Event::ContainerNetworkDisconnected {
            container: c,
            network: n,
        } => {
            if let Some(cached) = names.containers.get_mut(c) {
                cached.networks.retain(|x| x != n);
            }
            vec![network(names, n, "disconnect", Some(c))]
        }
        // dockerd makes its predefined networks without an event.
        Event::NetworkCreated { name, .. }
            if matches!(name.as_str(), "bridge" | "host" | "none") =>
        {
            Vec::new()
        }
        Event::NetworkCreated { id, .. } => vec![network(names, id, "create", None)],
        Event::NetworkRemoved { id } => vec![network(names, id, "destroy", None)],
        // dockerd names a pulled image by its repository, without the tag.
        Event::ImageAction { action, id, name } if action == "pull" => {
            vec![image(action, id, strip_tag(name))]
        }
        Event::ImageAction { action, id, name } => vec![image(action, id, name)],
        // dockerd names the image by its ID in both (its quirk, kept).
        Event::ImageUntagged { id, .. } => vec![image("untag", id, id)],
        Event::ImageDeleted { id } => vec![image("delete", id, id)],
        Event::VolumeCreated { name, driver, .. } => vec![volume(name, "create", driver, &[])],
        Event::VolumeRemoved { pruned: true, .. } => Vec::new(),
        Event::ImageParentRecorded { .. } => Vec::new(),
        // The daemon's ID is the engine's (`docker info`'s ID), as dockerd's.
        Event::DaemonReloaded { attributes } => vec![Message {
            kind: "daemon",
            action: "reload".into(),
            id: state.engine.id.clone().unwrap_or_default(),
            attributes: attributes.iter().cloned().collect(),
            from: None,
            time_ns,
        }],
        Event::VolumeRemoved { name, .. } => {
            let driver = state
                .departed
                .get(&format!("volume:{name}"))
                .map_or("local", |d| d.image_or_driver.as_str());
            vec![volume(name, "destroy", driver, &[])]
        }
        Event::VolumeAction {
            name,
            action,
            attributes,
        } => vec![Message {
            kind: "volume",
            action: action.clone(),
            id: name.clone(),
            attributes: attributes.iter().cloned().collect(),
            from: None,
            time_ns,
        }],
        _ => Vec::new(),
    }
}

/// `filters` of `GET /events`, with dockerd's semantics: values of one key
/// OR, keys AND; `label` values all must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    by_key: HashMap<String, Vec<String>>,
}

const FILTER_KEYS: &[&str] = &[
    "container",
    "image",
    "network",
    "volume",
    "type",
    "event",
    "label",
    "daemon",
    "scope",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

impl Filter {
    pub fn new(by_key: HashMap<String, Vec<String>>) -> Result<Filter> {
        if let Some(bad) = by_key.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(Error::invalid(format!("invalid filter '{bad}'")));
        }
        if let Some(scopes) = by_key.get("scope") {
            if let Some(bad) = scopes
                .iter()
                .find(|s| !matches!(s.as_str(), "local" | "swarm"))
            {
                return Err(Error::invalid(format!("Invalid filter: 'scope={bad}'")));
            }
        }
        Ok(Filter { by_key })
    }

    fn exact(&self, key: &str, value: &str) -> bool {
        self.by_key
            .get(key)
            .is_none_or(|vs| vs.iter().any(|v| v == value))
    }

    fn any_exact(&self, key: &str, values: &[&str]) -> bool {
        self.by_key
            .get(key)
            .is_none_or(|vs| vs.iter().any(|v| values.contains(&v.as_str())))
    }

    /// dockerd's FuzzyMatch: equal, or a prefix of the value.
    fn fuzzy(&self, key: &str, values: &[&str]) -> bool {
        self.by_key.get(key).is_none_or(|vs| {
            vs.iter()
                .any(|v| values.iter().any(|s| s == v || s.starts_with(v.as_str())))
        })
    }

    fn named(&self, key: &str, m: &Message) -> bool {
        if !self.by_key.contains_key(key) {
            return true;
        }
        m.kind == key
            && self.fuzzy(
                key,
                &[&m.id, m.attributes.get("name").map_or("", |s| s.as_str())],
            )
    }

    fn labels(&self, m: &Message) -> bool {
        self.by_key.get("label").is_none_or(|wanted| {
            wanted.iter().all(|w| match w.split_once('=') {
                Some((k, v)) => m.attributes.get(k).is_some_and(|x| x == v),
                None => m.attributes.contains_key(w),
            })
        })
    }

    fn image(&self, m: &Message) -> bool {
        let name = m
            .attributes
            .get(if m.kind == "image" { "name" } else { "image" })
            .map_or("", |s| s.as_str());
        self.any_exact("image", &[&m.id, name, strip_tag(&m.id), strip_tag(name)])
    }

    fn event(&self, m: &Message) -> bool {
        // dockerd: an exec or health filter without its colon matches by prefix.
        let fuzzy = self.by_key.get("event").is_some_and(|vs| {
            vs.iter()
                .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"))
        });
        if fuzzy {
            self.fuzzy("event", &[&m.action])
        } else {
            self.exact("event", &m.action)
        }
    }

    /// Whether `m` passes every key of the filter.
    pub fn matches(&self, m: &Message) -> bool {
        self.event(m)
            && self.exact("type", m.kind)
            && self.exact("scope", "local")
            && self.named("container", m)
            && self.named("network", m)
            && self.named("volume", m)
            && self.named("daemon", m)
            && self.image(m)
            && self.labels(m)
            && ["plugin", "node", "service", "secret", "config"]
                .iter()
                .all(|k| !self.by_key.contains_key(*k))
    }
}

fn strip_tag(image: &str) -> &str {
    // "repo:tag" -> "repo", leaving a registry's port and a digest alone.
    let name = image.split('@').next().unwrap_or(image);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &'static str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Message {
        Message {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            from: None,
            time_ns: 1_500_000_000_123,
        }
    }

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        Filter::new(m).expect("filter")
    }

    #[test]
    fn filters_or_within_a_key_and_across_keys() {
        let start = msg(
            "container",
            "start",
            "abc123",
            &[("name", "web"), ("image", "busybox:latest"), ("a", "b")],
        );
        let die = msg(
            "container",
            "die",
            "abc123",
            &[("name", "web"), ("image", "busybox")],
        );
        let net = msg(
            "network",
            "connect",
            "fff",
            &[("name", "n1"), ("container", "abc123")],
        );
        let f = filter(&[("event", "start"), ("event", "die")]);
        assert!(f.matches(&start) && f.matches(&die) && !f.matches(&net));
        let f = filter(&[("event", "start"), ("container", "web")]);
        assert!(f.matches(&start) && !f.matches(&die) && !f.matches(&net));
        assert!(
            filter(&[("container", "abc")]).matches(&start),
            "an ID prefix"
        );
        assert!(
            !filter(&[("container", "abc")]).matches(&net),
            "a container filter keeps containers"
        );
        assert!(
            filter(&[("image", "busybox")]).matches(&start),
            "image without its tag"
        );
        assert!(filter(&[("label", "a=b")]).matches(&start));
        assert!(
            !filter(&[("label", "a=b"), ("label", "c")]).matches(&start),
            "labels all hold"
        );
        assert!(filter(&[("type", "network"), ("network", "n1")]).matches(&net));
        let exec = msg("container", "exec_start: sh -c true", "abc123", &[]);
        assert!(filter(&[("event", "exec_start")]).matches(&exec));
        assert!(!filter(&[("event", "exec")]).matches(&exec));
    }

    #[test]
    fn an_unknown_filter_is_dockerds_error() {
        let err =
            Filter::new(HashMap::from([("bogus".into(), vec!["1".into()])])).expect_err("refused");
        assert_eq!(err.to_string(), "invalid filter 'bogus'");
    }

    fn json(m: &Message) -> String {
        let mut out = String::new();
        m.write_json(&mut out);
        out
    }

    #[test]
    fn json_has_dockerds_fields_in_its_order() {
        let mut m = msg(
            "container",
            "die",
            "abc",
            &[("name", "web"), ("exitCode", "3")],
        );
        m.from = Some("busybox".into());
        assert_eq!(
            json(&m),
            r#"{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"3","name":"web"}},"scope":"local","time":1500,"timeNano":1500000000123}"#
        );
        let n = msg("network", "create", "n", &[("name", "x")]);
        assert!(json(&n).starts_with(r#"{"Type":"network","#));
    }

    #[test]
    fn a_destroy_after_the_removal_still_names_the_container() {
        let mut state = State::default();
        let created = Event::ContainerCreated {
            id: "c1".into(),
            name: "web".into(),
            image: "sha256:x".into(),
            image_name: "busybox".into(),
            config: r#"{"Labels":{"team":"a"}}"#.into(),
        };
        state.apply(1, 1, &created);
        state.apply(
            2,
            2,
            &Event::ContainerRenamed {
                id: "c1".into(),
                name: "api".into(),
            },
        );
        state.apply(3, 3, &Event::ContainerRemoved { id: "c1".into() });
        // A reader that meets only the rename and the removal, after both.
        let mut names = Names::default();
        let rename = translate(
            &mut names,
            &state,
            2,
            &Event::ContainerRenamed {
                id: "c1".into(),
                name: "api".into(),
            },
        );
        assert_eq!(
            rename[0].attributes.get("name").map(String::as_str),
            Some("api")
        );
        let destroy = translate(
            &mut names,
            &state,
            3,
            &Event::ContainerRemoved { id: "c1".into() },
        );
        assert_eq!(destroy[0].action, "destroy");
        assert_eq!(
            destroy[0].attributes.get("name").map(String::as_str),
            Some("api")
        );
        assert_eq!(
            destroy[0].attributes.get("team").map(String::as_str),
            Some("a")
        );
        assert_eq!(destroy[0].from.as_deref(), Some("busybox"));
    }
}
