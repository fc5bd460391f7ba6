//! Containers end to end: create, list with filters, inspect, rename, remove,
//! and the image they keep, against a real berthd with images from the
//! project's registry.

mod common;

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RenameContainerOptionsBuilder,
};
use bollard::Docker;
use common::{TestDaemon, TestRegistry};
use futures_util::StreamExt;

fn client(d: &TestDaemon) -> Docker {
    Docker::connect_with_unix(
        &d.socket().display().to_string(),
        60,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("connect")
}

async fn pull(docker: &Docker, image: &str) {
    let opts = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut s = docker.create_image(Some(opts), None, None);
    while let Some(item) = s.next().await {
        item.expect("pull");
    }
}

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
    pull(&docker, &busybox).await;

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
