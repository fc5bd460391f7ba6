//! Containers end to end: create, list with filters, inspect, rename, remove,
//! and the image they keep, against a real berthd with images from the
//! project's registry.

mod common;

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RenameContainerOptionsBuilder,
};
use bollard::Docker;
use common::{client, pull, TestDaemon, TestRegistry};
use futures_util::StreamExt;

async fn create(
    docker: &Docker,
    name: Option<&str>,
    body: ContainerCreateBody,
) -> Result<String, String> {
    let opts = name.map(|n| CreateContainerOptionsBuilder::default().name(n).build());
    docker
        .create_container(opts, body)
        .await
        .map(|r| r.id)
        .map_err(|e| e.to_string())
}

async fn names(docker: &Docker, filters: &[(&str, &str)]) -> Vec<String> {
    let mut f: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in filters {
        f.entry(*k).or_default().push(*v);
    }
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&f)
        .build();
    let mut out: Vec<String> = docker
        .list_containers(Some(opts))
        .await
        .expect("list")
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn create_inspect_list_rename_remove() {
    let reg = TestRegistry::start();
    let mut d = TestDaemon::start();
    let docker = client(&d);
    let busybox = reg.image("busybox");
    pull(&docker, &busybox).await.expect("pull");

    let web = create(
        &docker,
        Some("web"),
        ContainerCreateBody {
            image: Some(busybox.clone()),
            cmd: Some(vec!["echo".into(), "hi".into()]),
            env: Some(vec!["A=1".into()]),
            labels: Some([("tier".to_string(), "front".to_string())].into()),
            ..Default::default()
        },
    )
    .await
    .expect("create web");
    assert_eq!(web.len(), 64);
    let other = create(
        &docker,
        None,
        ContainerCreateBody {
            image: Some(busybox.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("create unnamed");

    let i = docker
        .inspect_container("web", None)
        .await
        .expect("inspect");
    assert_eq!(i.id.as_deref(), Some(web.as_str()));
    assert_eq!(i.name.as_deref(), Some("/web"));
    assert_eq!(i.path.as_deref(), Some("echo"));
    assert_eq!(i.args.unwrap(), ["hi"]);
    let state = i.state.expect("state");
    assert_eq!(
        state.status.map(|s| s.to_string()).as_deref(),
        Some("created")
    );
    assert_eq!(state.started_at.as_deref(), Some("0001-01-01T00:00:00Z"));
    let config = i.config.expect("config");
    // The image's defaults fill in what the request left out.
    assert_eq!(config.env.expect("env")[0], "A=1");
    assert_eq!(config.hostname.as_deref(), Some(&web[..12]));
    assert_eq!(config.image.as_deref(), Some(busybox.as_str()));
    let (_, image_id) = reg.digests("busybox");
    assert_eq!(i.image.as_deref(), Some(image_id.as_str()));
    let upper = i.graph_driver.expect("driver").data["UpperDir"].clone();
    assert!(std::path::Path::new(&upper).is_dir(), "{upper}");
    // Unnamed: an adjective_surname name; inspect by ID prefix works.
    let o = docker
        .inspect_container(&other[..8], None)
        .await
        .expect("by prefix");
    assert!(o.name.expect("name").trim_start_matches('/').contains('_'));
    assert_eq!(o.config.expect("config").cmd.expect("cmd"), ["sh"]);

    // ps: only running ones without -a; filters with it.
    let running = docker
        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
        .await
        .expect("ps");
    assert!(running.is_empty());
    assert_eq!(names(&docker, &[("label", "tier=front")]).await, ["/web"]);
    assert_eq!(names(&docker, &[("name", "web")]).await, ["/web"]);
    assert_eq!(names(&docker, &[("status", "created")]).await.len(), 2);
    assert!(names(&docker, &[("status", "exited")]).await.is_empty());
    assert_eq!(
        names(&docker, &[("ancestor", busybox.as_str())])
            .await
            .len(),
        2
    );
    assert_eq!(names(&docker, &[("id", &web[..10])]).await, ["/web"]);
    let summary = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .limit(1)
                .build(),
        ))
        .await
        .expect("ps -n 1");
    assert_eq!(summary.len(), 1);
    assert_eq!(
        summary[0].id.as_deref(),
        Some(other.as_str()),
        "newest first"
    );

    // Bad input: dockerd's words and statuses, nothing made.
    let err = create(
        &docker,
        Some("web"),
        ContainerCreateBody {
            image: Some(busybox.clone()),
            ..Default::default()
        },
    )
    .await
    .expect_err("name taken");
    assert!(
        err.contains("409")
            && err.contains("Conflict. The container name \"/web\" is already in use by container"),
        "{err}"
    );
    let err = create(
        &docker,
        Some("bad name"),
        ContainerCreateBody {
            image: Some(busybox.clone()),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad name");
    assert!(err.contains("Invalid container name (bad name)"), "{err}");
    let err = create(
        &docker,
        None,
        ContainerCreateBody {
            image: Some("nosuchimage".into()),
            ..Default::default()
        },
    )
    .await
    .expect_err("no image");
    assert!(
        err.contains("404") && err.contains("No such image: nosuchimage:latest"),
        "{err}"
    );
    let err = create(
        &docker,
        None,
        ContainerCreateBody {
            image: Some(busybox.clone()),
            host_config: Some(bollard::models::HostConfig {
                memory: Some(1024),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .expect_err("tiny memory");
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let (code, _, body) = common::http(
        &d.socket(),
        "GET",
        "/containers/json?filters=%7B%22color%22%3A%5B%22x%22%5D%7D",
    )
    .expect("http");
    assert_eq!(
        (code, body.trim()),
        (400, r#"{"message":"Invalid filter 'color'"}"#)
    );
    assert_eq!(
        names(&docker, &[]).await.len(),
        2,
        "failed creates left nothing"
    );

    // The image is kept while containers use it.
    let err = docker
        .remove_image(
            &busybox,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect_err("in use");
    assert!(
        err.to_string().contains("(must force) - container"),
        "{err}"
    );
    let err = docker
        .remove_image(
            &image_id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect_err("in use by ID");
    assert!(
        err.to_string()
            .contains("image is being used by stopped container"),
        "{err}"
    );

    // Rename; then everything survives a restart.
    docker
        .rename_container(
            "web",
            RenameContainerOptionsBuilder::default()
                .name("front")
                .build(),
        )
        .await
        .expect("rename");
    let err = docker
        .rename_container(
            &other,
            RenameContainerOptionsBuilder::default()
                .name("front")
                .build(),
        )
        .await
        .expect_err("rename onto a taken name");
    assert!(err.to_string().contains("already in use"), "{err}");
    d.stop_with(libc::SIGKILL);
    d.spawn();
    d.wait_ready();
    let docker = client(&d);
    assert_eq!(
        docker
            .inspect_container("front", None)
            .await
            .expect("after restart")
            .id
            .as_deref(),
        Some(web.as_str())
    );
    assert!(
        std::path::Path::new(&upper).is_dir(),
        "the layer survived the restart"
    );

    // Remove: the layer and directory go.
    docker
        .remove_container(
            "front",
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await
        .expect("rm");
    docker
        .remove_container(
            &other,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .expect("rm -f");
    assert!(!std::path::Path::new(&upper).exists());
    let err = docker
        .remove_container(
            "front",
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await
        .expect_err("gone");
    assert!(
        err.to_string().contains("No such container: front"),
        "{err}"
    );
    assert!(std::fs::read_dir(d.data_root().join("containers"))
        .expect("dir")
        .next()
        .is_none());
    // Now the image can go.
    docker
        .remove_image(
            &busybox,
            Some(RemoveImageOptionsBuilder::default().build()),
            None,
        )
        .await
        .expect("rmi");
}

async fn wait_code(docker: &Docker, id: &str) -> i64 {
    let mut s = docker.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
    match s.next().await {
        Some(Ok(r)) => r.status_code,
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("wait: {other:?}"),
    }
}

async fn log_text(docker: &Docker, id: &str, tail: &str) -> String {
    let opts = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(tail)
        .build();
    let mut s = docker.logs(id, Some(opts));
    let mut out = String::new();
    while let Some(item) = s.next().await {
        out.push_str(&item.expect("log").to_string());
    }
    out
}

#[tokio::test]
async fn run_wait_logs_stop_and_a_missing_binary() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let busybox = reg.image("busybox");
    pull(&docker, &busybox).await.expect("pull");
    let body = |cmd: &[&str]| ContainerCreateBody {
        image: Some(busybox.clone()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };

    // Output to the json-file log, exit code through wait and inspect.
    let id = create(
        &docker,
        None,
        body(&[
            "sh",
            "-c",
            "echo out; echo err >&2; ps -o pid= | wc -l; exit 3",
        ]),
    )
    .await
    .expect("create");
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");
    assert_eq!(wait_code(&docker, &id).await, 3);
    let logs = log_text(&docker, &id, "all").await;
    assert!(logs.contains("out\n") && logs.contains("err\n"), "{logs:?}");
    // Its own pid namespace: sh and ps (and wc) only.
    assert!(logs.contains("2\n") || logs.contains("3\n"), "{logs:?}");
    let i = docker.inspect_container(&id, None).await.expect("inspect");
    let state = i.state.expect("state");
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(
        state.status.map(|s| s.to_string()).as_deref(),
        Some("exited")
    );
    let log_path = i.log_path.expect("log path");
    assert!(log_path.ends_with(&format!("{id}-json.log")), "{log_path}");
    let first = std::fs::read_to_string(&log_path)
        .expect("json log")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let entry: serde_json::Value = serde_json::from_str(&first).expect("json line");
    assert_eq!(
        (entry["log"].as_str(), entry["stream"].as_str()),
        (Some("out\n"), Some("stdout"))
    );

    // Stop: a process that ignores SIGTERM (sh as pid 1) is killed after the timeout.
    let id = create(
        &docker,
        Some("looper"),
        body(&["sh", "-c", "while true; do echo tick; sleep 0.1; done"]),
    )
    .await
    .expect("create looper");
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let running = docker
        .inspect_container(&id, None)
        .await
        .expect("inspect")
        .state
        .expect("state");
    assert_eq!(running.running, Some(true));
    let pid = running.pid.expect("pid");
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(log_text(&docker, &id, "1").await, "tick\n");
    let began = std::time::Instant::now();
    docker
        .stop_container(
            &id,
            Some(
                bollard::query_parameters::StopContainerOptionsBuilder::default()
                    .t(1)
                    .build(),
            ),
        )
        .await
        .expect("stop");
    assert!(
        began.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(wait_code(&docker, &id).await, 137);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process is gone"
    );
    let err = docker
        .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .expect_err("not running");
    assert!(err.to_string().contains("is not running"), "{err}");

    // A binary that does not exist: 400 with the words the CLI maps to 127.
    let id = create(&docker, None, body(&["nosuchbinary"]))
        .await
        .expect("create");
    let err = docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect_err("no binary");
    assert!(
        err.to_string().contains("executable file not found"),
        "{err}"
    );
    let state = docker
        .inspect_container(&id, None)
        .await
        .expect("inspect")
        .state
        .expect("state");
    assert_eq!(state.exit_code, Some(127));
    // Nothing of the failed start stays mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&id),
        "a mount of the failed container remains"
    );
}
