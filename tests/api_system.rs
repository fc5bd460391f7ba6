//! The system endpoints as a client sees them: bollard and raw HTTP against a real berthd.

mod common;

use common::{client, header, http, TestDaemon};

#[tokio::test]
async fn bollard_sees_ping_version_and_info() {
    let d = TestDaemon::start();
    let docker = client(&d);
    assert_eq!(docker.ping().await.expect("ping"), "OK");

    let v = docker.version().await.expect("version");
    assert_eq!(v.api_version.as_deref(), Some("1.50"));
    assert_eq!(v.min_api_version.as_deref(), Some("1.24"));
    assert_eq!(v.os.as_deref(), Some("linux"));
    assert_eq!(v.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let kernel = nix::sys::utsname::uname()
        .expect("uname")
        .release()
        .to_string_lossy()
        .into_owned();
    assert_eq!(v.kernel_version.as_deref(), Some(kernel.as_str()));

    let info = docker.info().await.expect("info");
    let id = info.id.clone().expect("an engine ID");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        info.docker_root_dir.as_deref(),
        Some(d.data_root().display().to_string().as_str())
    );
    assert_eq!(
        info.ncpu,
        Some(std::thread::available_parallelism().expect("cpus").get() as i64)
    );
    assert!(info.mem_total.unwrap_or(0) > 0);
    assert_eq!(info.containers, Some(0));
    assert_eq!(info.images, Some(0));
    assert_eq!(info.driver.as_deref(), Some("overlay2"));
    // Containers always outlive berthd: live restore is always on (issue 14).
    assert_eq!(info.live_restore_enabled, Some(true));
    assert!(info
        .operating_system
        .as_deref()
        .is_some_and(|s| !s.is_empty()));
    let cgroup_version =
        match nix::sys::statfs::statfs("/sys/fs/cgroup").map(|s| s.filesystem_type().0 as i64) {
            Ok(0x6367_7270) => "2",
            _ => "1",
        };
    assert_eq!(
        serde_json::to_value(info.cgroup_version).expect("json"),
        serde_json::json!(cgroup_version)
    );
    let registry = info.registry_config.expect("registry config");
    assert!(registry
        .insecure_registry_cidrs
        .unwrap_or_default()
        .contains(&"127.0.0.0/8".to_string()));
}

#[test]
fn ping_headers_and_head() {
    let d = TestDaemon::start();
    let (status, headers, body) = http(&d.socket(), "GET", "/_ping").expect("ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
    for (name, value) in [
        ("api-version", "1.50"),
        ("builder-version", "1"),
        ("ostype", "linux"),
        ("swarm", "inactive"),
        ("docker-experimental", "false"),
        ("cache-control", "no-cache, no-store, must-revalidate"),
    ] {
        assert_eq!(
            header(&headers, name),
            Some(value),
            "header {name} in {headers:?}"
        );
    }
    assert!(header(&headers, "server").is_some_and(|s| s.starts_with("Berth/")));
    let (status, headers, body) = http(&d.socket(), "HEAD", "/v1.41/_ping").expect("head");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(header(&headers, "api-version"), Some("1.50"));
}

#[test]
fn versions_are_negotiated_with_dockerds_messages() {
    let d = TestDaemon::start();
    let s = d.socket();
    for v in ["1.24", "1.41", "1.50"] {
        let (status, _, body) = http(&s, "GET", &format!("/v{v}/version")).expect("version");
        assert_eq!(status, 200, "v{v}: {body}");
    }
    let (status, headers, body) = http(&s, "GET", "/v1.23/version").expect("old");
    assert_eq!(status, 400);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let msg: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert_eq!(
        msg["message"],
        "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    let (status, headers, body) = http(&s, "GET", "/v1.51/info").expect("new");
    assert_eq!(status, 400);
    assert_eq!(
        header(&headers, "api-version"),
        Some("1.50"),
        "headers on errors too"
    );
    let msg: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert_eq!(
        msg["message"],
        "client version 1.51 is too new. Maximum supported API version is 1.50"
    );
}

#[test]
fn unknown_routes_are_page_not_found_with_common_headers() {
    let d = TestDaemon::start();
    for (method, path) in [
        ("GET", "/nothing"),
        ("GET", "/v1.50/nothing/here"),
        ("DELETE", "/_ping"),
        ("GET", "/vabc/version"),
    ] {
        let (status, headers, body) = http(&d.socket(), method, path).expect("request");
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body, r#"{"message":"page not found"}"#);
        assert_eq!(header(&headers, "ostype"), Some("linux"));
        assert!(header(&headers, "server").is_some());
    }
}

#[test]
fn every_request_is_logged_at_debug() {
    let d = TestDaemon::start();
    http(&d.socket(), "GET", "/v1.44/version?x=1").expect("version");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("request")
            && l.contains("/v1.44/version")
            && l.contains("status=200")),
        "no request line in:\n{log}"
    );
}
