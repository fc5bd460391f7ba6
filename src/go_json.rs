//! Decoding a request body with Go's words for a field of the wrong type, as
//! dockerd's encoding/json reports it (clients and scripts match on them):
//! `json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory
//! of type int64`. Go names the innermost struct holding the field, then the
//! field's path from the top without map keys or array indexes.

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// The Go struct that holds the fields at `parent` (a path of JSON names,
/// map keys and indexes left out), below a body whose Go type is `root`.
fn struct_of(root: &str, parent: &[String]) -> String {
    let last = parent.last().map(String::as_str);
    match last {
        None => root.to_string(),
        Some("PortBindings") => "PortBinding".into(),
        Some("RestartPolicy") => "RestartPolicy".into(),
        Some("LogConfig") => "LogConfig".into(),
        Some("Mounts") => "Mount".into(),
        Some("Ulimits") => "Ulimit".into(),
        Some("Devices") => "DeviceMapping".into(),
        Some("Healthcheck") => "HealthConfig".into(),
        Some("EndpointsConfig") => "EndpointSettings".into(),
        Some("IPAMConfig") => "EndpointIPAMConfig".into(),
        Some("BlkioWeightDevice") => "WeightDevice".into(),
        Some(other) => other.to_string(),
    }
}

/// Go's type of the field `name` (of a body of Go type `root`), when
/// serde's expectation does not say it.
fn go_type(root: &str, name: &str, expected: &str) -> String {
    let known = match name {
        "ExposedPorts" => Some("nat.PortSet"),
        "Cmd" if root == "ExecConfig" => Some("[]string"),
        "Cmd" | "Entrypoint" => Some("strslice.StrSlice"),
        "MaximumRetryCount" => Some("int"),
        "Volumes" => Some("map[string]struct {}"),
        "Labels" | "Sysctls" | "StorageOpt" | "Tmpfs" | "DriverOpts" | "Options" => {
            Some("map[string]string")
        }
        "PortBindings" => Some("nat.PortMap"),
        "Healthcheck" => Some("container.HealthConfig"),
        "HostConfig" => Some("container.HostConfig"),
        "RestartPolicy" => Some("container.RestartPolicy"),
        "LogConfig" => Some("container.LogConfig"),
        _ => None,
    };
    if let Some(t) = known {
        return t.to_string();
    }
    match expected {
        "i64" => "int64",
        "i32" => "int32",
        "u64" => "uint64",
        "u32" => "uint32",
        "u16" => "uint16",
        "f64" | "f32" => "float64",
        "a boolean" => "bool",
        "a string" => "string",
        "a sequence" => "[]string",
        "a map" => "map[string]string",
        other => other,
    }
    .to_string()
}

/// What Go calls the JSON value serde found ("string", "number", ...).
fn json_kind(unexpected: &str) -> &'static str {
    match unexpected.split_whitespace().next().unwrap_or_default() {
        "string" | "character" => "string",
        "integer" | "floating" => "number",
        "boolean" => "bool",
        "sequence" => "array",
        "map" => "object",
        "unit" | "null" => "null",
        _ => "value",
    }
}

/// A request body (Go type `root`) as dockerd decodes it: empty is the
/// type's default, a body cut short is Go's "unexpected EOF", a field of
/// the wrong type is Go's words with the status dockerd gives that endpoint
/// (`type_error`: 400 for exec, network and volume bodies, 500 for update's).
pub fn decode_body<T: DeserializeOwned + Default>(
    body: &[u8],
    root: &str,
    type_error: ErrorKind,
) -> Result<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => Error::new(type_error, "unexpected EOF"),
        _ => Error::invalid(format!("invalid JSON: {e}")),
    })?;
    decode(v, root).map_err(|e| match e.kind() {
        ErrorKind::Internal => Error::new(type_error, e.message().to_string()),
        _ => e,
    })
}

/// Decodes `value` into `T`; a type error is worded as Go's, with dockerd
/// 20.10's status (500); other errors are 400s with serde's words.
pub fn decode<T: DeserializeOwned>(value: serde_json::Value, root: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        let message = e.inner().to_string();
        // "invalid type: string \"x\", expected i64"
        let typed = message
            .strip_prefix("invalid type: ")
            .and_then(|rest| rest.split_once(", expected "));
        match typed {
            Some((unexpected, expected)) if !path.is_empty() => {
                let field = fields_only(&path);
                let (name, parent) = field.split_last().unwrap_or((&path[0], &[]));
                Error::internal(format!(
                    "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
                    json_kind(unexpected),
                    struct_of(root, parent),
                    field.join("."),
                    go_type(root, name, expected.trim())
                ))
            }
            _ => Error::invalid(format!("invalid JSON: {message}")),
        }
    })
}

/// The path's field names, without the keys of maps keyed by the user
/// (ports, networks, labels): Go does not name those.
fn fields_only(path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for p in path {
        if skip_next {
            skip_next = false;
            continue;
        }
        out.push(p.clone());
        skip_next = matches!(
            p.as_str(),
            "PortBindings"
                | "EndpointsConfig"
                | "ExposedPorts"
                | "Volumes"
                | "Labels"
                | "Sysctls"
                | "StorageOpt"
                | "Tmpfs"
                | "DriverOpts"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::ContainerCreateBody;

    fn words(body: &str) -> (crate::error::ErrorKind, String) {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let e = decode::<ContainerCreateBody>(v, "ContainerConfigWrapper").unwrap_err();
        (e.kind(), e.message().to_string())
    }

    #[test]
    fn type_errors_in_the_reference_dockerds_words() {
        for (body, want) in [
            (
                r#"{"Image":"busybox","HostConfig":{"Memory":"x"}}"#,
                "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
            ),
            (
                r#"{"Image":5}"#,
                "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string",
            ),
            (
                r#"{"Image":"busybox","Env":[1]}"#,
                "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string",
            ),
            (
                r#"{"Image":"busybox","HostConfig":{"Privileged":"yes"}}"#,
                "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Privileged of type bool",
            ),
            (
                r#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":80}]}}}"#,
                "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string",
            ),
            (
                r#"{"Image":"busybox","Tty":1}"#,
                "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Tty of type bool",
            ),
        ] {
            assert_eq!(
                words(body),
                (crate::error::ErrorKind::Internal, want.to_string()),
                "{body}"
            );
        }
    }
}
