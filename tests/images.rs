//! Images end to end: pulls from a real registry (the CNCF distribution registry
//! with the project's fixtures), the overlay2 layer store, and the image API.

mod common;

use std::path::Path;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::Docker;
use common::{client, pull, TestDaemon, TestRegistry};
use futures_util::StreamExt;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn pull_list_inspect_tag_remove_and_survive_a_restart() {
    let reg = TestRegistry::start();
    let mut d = TestDaemon::start();
    let docker = client(&d);
    let busybox = reg.image("busybox");
    let (manifest_digest, image_id) = reg.digests("busybox");

    let statuses = pull(&docker, &format!("{busybox}:latest"))
        .await
        .expect("pull");
    assert!(
        statuses.iter().any(|s| s.ends_with("Pull complete")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&format!(" Digest: {manifest_digest}")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&format!(
            " Status: Downloaded newer image for {busybox}:latest"
        )),
        "{statuses:?}"
    );
    let again = pull(&docker, &busybox).await.expect("pull again");
    assert!(
        again.contains(&format!(
            " Status: Image is up to date for {busybox}:latest"
        )),
        "{again:?}"
    );

    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, image_id);
    assert_eq!(images[0].repo_tags, vec![format!("{busybox}:latest")]);
    assert_eq!(
        images[0].repo_digests,
        vec![format!("{busybox}@{manifest_digest}")]
    );
    assert_eq!(images[0].created, 1_546_300_800);
    assert!(
        images[0].size > 1_900_000,
        "busybox is about 2 MB: {}",
        images[0].size
    );

    let inspect = docker.inspect_image(&busybox).await.expect("inspect");
    assert_eq!(inspect.id.as_deref(), Some(image_id.as_str()));
    assert_eq!(
        inspect.config.and_then(|c| c.cmd),
        Some(vec!["sh".to_string()])
    );
    assert_eq!(
        inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()),
        Some(1)
    );
    // By short ID too, and the history has the fixture's entry.
    let short = &image_id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(
        docker
            .inspect_image(short)
            .await
            .expect("by id")
            .id
            .as_deref(),
        Some(image_id.as_str())
    );
    let history = docker.image_history(&busybox).await.expect("history");
    assert_eq!(history[0].id, image_id);
    assert_eq!(history[0].created_by, "berth fixture: busybox");

    docker
        .tag_image(
            &busybox,
            Some(
                TagImageOptionsBuilder::default()
                    .repo("mybox")
                    .tag("1")
                    .build(),
            ),
        )
        .await
        .expect("tag");
    let filtered = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&std::collections::HashMap::from([(
                    "reference",
                    vec!["mybox"],
                )]))
                .build(),
        ))
        .await
        .expect("filter");
    assert_eq!(filtered.len(), 1);
    assert!(filtered[0].repo_tags.contains(&"mybox:1".to_string()));

    // Removing by ID while two tags name it needs force: dockerd's 409.
    let err = docker
        .remove_image(
            short,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect_err("conflict");
    assert!(err.to_string().contains("must be forced"), "{err}");
    let untag = docker
        .remove_image(
            "mybox:1",
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect("untag");
    assert_eq!(untag[0].untagged.as_deref(), Some("mybox:1"));
    assert!(
        untag.iter().all(|r| r.deleted.is_none()),
        "the image stays while another tag names it"
    );

    // The image and its tags survive a restart (replay), the layer is still there.
    d.stop_with(libc::SIGTERM);
    d.spawn();
    let docker = client(&d);
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(
        images.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![image_id.clone()]
    );
    let info = docker.info().await.expect("info");
    assert_eq!(info.images, Some(1));

    let removed = docker
        .remove_image(
            &busybox,
            Some(RemoveImageOptionsBuilder::default().force(true).build()),
            None,
        )
        .await
        .expect("rmi");
    assert!(
        removed
            .iter()
            .any(|r| r.deleted.as_deref() == Some(image_id.as_str())),
        "{removed:?}"
    );
    assert!(docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        entries(&d.data_root().join("overlay2")),
        vec!["l"],
        "layers go with the last image using them"
    );
    let err = docker.inspect_image(&busybox).await.expect_err("gone");
    assert!(err.to_string().contains("No such image"), "{err}");
}

#[tokio::test]
async fn pull_by_digest() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let (manifest_digest, image_id) = reg.digests("busybox");
    let by_digest = format!("{}@{manifest_digest}", reg.image("busybox"));
    pull(&docker, &by_digest).await.expect("pull by digest");
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, image_id);
    assert!(
        images[0].repo_tags.is_empty(),
        "a pull by digest tags nothing"
    );
    assert_eq!(images[0].repo_digests, vec![by_digest.clone()]);
    assert_eq!(
        docker
            .inspect_image(&by_digest)
            .await
            .expect("inspect by digest")
            .id
            .as_deref(),
        Some(image_id.as_str())
    );
}

#[tokio::test]
async fn whiteouts_and_opaque_directories_through_the_storage_driver() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    pull(&docker, &reg.image("layers"))
        .await
        .expect("pull layers");
    let inspect = docker
        .inspect_image(&reg.image("layers"))
        .await
        .expect("inspect");
    let layers = inspect.root_fs.and_then(|r| r.layers).expect("layers");
    assert_eq!(layers.len(), 3);
    let chain = berth::registry::manifest::chain_ids(&layers);
    let store = berth::drivers::storage::LayerStore::open(
        &d.data_root().join("overlay2"),
        berth::drivers::storage::Driver::Overlay2,
    )
    .expect("store");
    let mnt = d.dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    store
        .mount_readonly(&chain[2], &mnt)
        .expect("mount the image");
    let read = |p: &str| std::fs::read_to_string(mnt.join(p)).ok();
    let seen = (
        read("data/keep.txt"),
        read("data/deleteme.txt"),
        read("data/changed.txt"),
        read("data/added2.txt"),
        read("opq/new.txt"),
        mnt.join("opq/old1.txt").exists(),
        mnt.join("opq/sub").exists(),
        mnt.join("bin/busybox").exists(),
    );
    let _ = rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::DETACH);
    assert_eq!(
        seen,
        (
            Some("keep\n".into()),
            None,
            Some("layer2\n".into()),
            Some("added2\n".into()),
            Some("new\n".into()),
            false,
            false,
            true
        )
    );
}

#[tokio::test]
async fn failed_pulls_leave_nothing_behind() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    pull(&docker, &reg.image("busybox"))
        .await
        .expect("a good pull first");
    let layers_before = entries(&d.data_root().join("overlay2"));
    let blobs_before = entries(&d.data_root().join("blobs/sha256"));

    let cases = [
        ("traversal", "'..' is not allowed in a layer"),
        ("symlinkesc", "goes through a symlink"),
        ("badblob", "digest"),
        ("nosuch", "manifest for"),
    ];
    for (name, expected) in cases {
        let err = pull(&docker, &reg.image(name)).await.expect_err(name);
        assert!(err.contains(expected), "{name}: {err}");
    }
    let err = pull(&docker, "127.0.0.1:1/library/busybox")
        .await
        .expect_err("no registry there");
    // dockerd's words, naming the address and the cause.
    assert!(
        err.contains(
            r#"Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused"#
        ),
        "{err}"
    );

    assert!(
        !Path::new("/tmp/escaped-by-berth-test").exists(),
        "a layer wrote outside its directory"
    );
    assert_eq!(
        entries(&d.data_root().join("overlay2")),
        layers_before,
        "no layer from a failed pull"
    );
    assert_eq!(
        entries(&d.data_root().join("blobs/sha256")),
        blobs_before,
        "no blob from a failed pull"
    );
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(images.len(), 1, "only the good image");

    // The CLI's wording and status for an image the registry lacks.
    let status = common::http(
        &d.socket(),
        "POST",
        &format!(
            "/images/create?fromImage={}&tag=latest",
            reg.image("nosuch")
        ),
    )
    .expect("http");
    assert_eq!(status.0, 404, "{}", status.2);
    assert!(
        status.2.contains(&format!(
            "manifest for {}:latest not found: manifest unknown",
            reg.image("nosuch")
        )),
        "{}",
        status.2
    );
}

#[tokio::test]
async fn two_pulls_of_one_image_at_once_share_the_downloads() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let image = reg.image("layers");
    let (a, b) = tokio::join!(pull(&docker, &image), pull(&docker, &image));
    let (a, b) = (a.expect("first pull"), b.expect("second pull"));
    for statuses in [&a, &b] {
        assert!(
            statuses
                .iter()
                .any(|s| s.contains("Status: Downloaded newer image for")),
            "{statuses:?}"
        );
    }
    // Each layer blob was fetched from the registry once, not once per pull.
    let log = std::fs::read_to_string(reg.dir.path().join("r/registry.log")).expect("registry log");
    let inspect = docker.inspect_image(&image).await.expect("inspect");
    assert_eq!(
        inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()),
        Some(3)
    );
    let layout = reg.dir.path().join("r/oci/layers");
    let (manifest_digest, _) = reg.digests("layers");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(manifest_digest.trim_start_matches("sha256:")),
        )
        .expect("manifest"),
    )
    .expect("json");
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let gets = log
            .lines()
            .filter(|l| l.contains("\"GET /v2/library/layers/blobs/") && l.contains(digest))
            .count();
        assert_eq!(gets, 1, "layer {digest} fetched {gets} times");
    }
}

#[tokio::test]
async fn prune_disk_usage_and_distribution() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    pull(&docker, &reg.image("busybox"))
        .await
        .expect("pull busybox");
    pull(&docker, &reg.image("layers"))
        .await
        .expect("pull layers");
    let (manifest_digest, busybox_id) = reg.digests("busybox");

    // What the registry has, without pulling.
    let (status, _, body) = common::http(
        &d.socket(),
        "GET",
        &format!("/v1.50/distribution/{}/json", reg.image("busybox")),
    )
    .expect("distribution");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["Descriptor"]["digest"], manifest_digest.as_str());
    assert_eq!(v["Platforms"][0]["os"], "linux");

    // Disk usage in the shape API 1.50 clients read.
    let (status, _, body) = common::http(&d.socket(), "GET", "/v1.50/system/df").expect("df");
    assert_eq!(status, 200, "{body}");
    let df: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(df["Images"].as_array().map(|a| a.len()), Some(2));
    let sizes: u64 = df["Images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["Size"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        df["LayersSize"].as_u64(),
        Some(sizes),
        "no layer is shared between the two fixtures"
    );

    // An image with no tag is dangling: removing busybox's only tag removes it at
    // once, so make a dangling one by pulling it by digest alone.
    docker
        .remove_image(
            &format!("{}:latest", reg.image("busybox")),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect("rmi");
    pull(
        &docker,
        &format!("{}@{manifest_digest}", reg.image("busybox")),
    )
    .await
    .expect("pull by digest");
    let (status, _, body) =
        common::http(&d.socket(), "POST", "/v1.50/images/prune").expect("prune");
    assert_eq!(status, 200, "{body}");
    let pruned: serde_json::Value = serde_json::from_str(&body).expect("json");
    let deleted: Vec<&str> = pruned["ImagesDeleted"]
        .as_array()
        .expect("deleted")
        .iter()
        .filter_map(|x| x["Deleted"].as_str())
        .collect();
    assert!(deleted.contains(&busybox_id.as_str()), "{body}");
    assert!(
        pruned["SpaceReclaimed"].as_u64().unwrap_or(0) > 1_900_000,
        "{body}"
    );
    let left = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(left.len(), 1, "the tagged image stays");

    // dangling=false: every image goes.
    let (status, _, body) = common::http(
        &d.socket(),
        "POST",
        "/v1.50/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%7D",
    )
    .expect("prune all");
    assert_eq!(status, 200, "{body}");
    assert!(docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list")
        .is_empty());
    let (status, _, _) = common::http(
        &d.socket(),
        "POST",
        "/v1.50/images/prune?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
    )
    .expect("bad filter");
    assert_eq!(status, 400);
}

/// POSTs a file to /images/load; (status, body).
fn load_file(d: &TestDaemon, archive: &Path) -> (u16, String) {
    use std::io::{Read, Write};
    let data = std::fs::read(archive).expect("archive");
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
    write!(
        s,
        "POST /v1.50/images/load?quiet=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .expect("head");
    s.write_all(&data).expect("body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let (status, _, body) = common::parse_response(&raw).expect("response");
    (status, body)
}

fn skopeo(args: &[&str]) {
    let st = std::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .status()
        .expect("skopeo");
    assert!(st.success(), "skopeo {args:?}");
}

#[tokio::test]
async fn load_docker_archives_and_oci_layouts() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let oci = reg.dir.path().join("r/oci");
    let scratch = d.dir.path().join("archives");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let bb = scratch.join("busybox.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:latest", oci.join("busybox").display()),
        &format!("docker-archive:{}:mybusy:1", bb.display()),
    ]);
    let (status, body) = load_file(&d, &bb);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Loaded image: mybusy:1"), "{body}");
    let (_, busybox_id) = reg.digests("busybox");
    assert_eq!(
        docker
            .inspect_image("mybusy:1")
            .await
            .expect("inspect")
            .id
            .as_deref(),
        Some(busybox_id.as_str())
    );

    // An OCI image layout in a tar: no tag, the ID is announced.
    let layout_tar = scratch.join("layers-oci.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(oci.join("layers"))
        .arg("-cf")
        .arg(&layout_tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let (status, body) = load_file(&d, &layout_tar);
    assert_eq!(status, 200, "{body}");
    let (_, layers_id) = reg.digests("layers");
    assert!(
        body.contains(&format!("Loaded image ID: {layers_id}")),
        "{body}"
    );
    let inspect = docker
        .inspect_image(&layers_id)
        .await
        .expect("inspect loaded layout");
    assert_eq!(
        inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()),
        Some(3)
    );

    // Bad archives: refused as dockerd refuses them (a 200 whose stream ends
    // in the error: docker-py raises ImageLoadError on it), nothing left behind.
    let before = entries(&d.data_root().join("overlay2"));
    let garbage = scratch.join("garbage.tar");
    std::fs::write(&garbage, b"this is not a tar archive").expect("write");
    let (status, body) = load_file(&d, &garbage);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""error":"Error processing tar file(exit status 1): unexpected EOF""#),
        "{body}"
    );
    let evil = scratch.join("traversal.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:latest", oci.join("traversal").display()),
        &format!("docker-archive:{}:evil:1", evil.display()),
    ]);
    let (status, body) = load_file(&d, &evil);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""error":"#) && body.contains("'..' is not allowed"),
        "{body}"
    );
    assert!(!Path::new("/tmp/escaped-by-berth-test").exists());
    assert_eq!(
        entries(&d.data_root().join("overlay2")),
        before,
        "no layer from a refused archive"
    );
    assert!(
        entries(&d.data_root().join("tmp")).is_empty(),
        "the spooled archives are removed"
    );
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(images.len(), 2);
}

#[tokio::test]
async fn save_then_load_into_another_daemon_keeps_ids_and_tags() {
    let reg = TestRegistry::start();
    let a = TestDaemon::start();
    let b = TestDaemon::start();
    let docker_a = client(&a);
    pull(&docker_a, &reg.image("layers"))
        .await
        .expect("pull layers");
    pull(&docker_a, &reg.image("busybox"))
        .await
        .expect("pull busybox");
    let (_, layers_id) = reg.digests("layers");
    let (_, busybox_id) = reg.digests("busybox");

    let archive: Vec<u8> = docker_a
        .export_images(&[&reg.image("layers"), &reg.image("busybox")])
        .map(|chunk| chunk.expect("chunk").to_vec())
        .concat()
        .await;
    let path = b.dir.path().join("saved.tar");
    std::fs::write(&path, &archive).expect("write archive");
    let (status, body) = load_file(&b, &path);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("Loaded image: {}:latest", reg.image("layers"))),
        "{body}"
    );
    let docker_b = client(&b);
    let mut ids: Vec<String> = docker_b
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    let mut want = vec![layers_id, busybox_id];
    want.sort();
    assert_eq!(ids, want);

    // The loaded whiteout image is the same image: same layers, and saving it again works.
    let again: Vec<u8> = docker_b
        .export_image(&reg.image("layers"))
        .map(|c| c.expect("chunk").to_vec())
        .concat()
        .await;
    assert!(again.len() > 1_000_000);
    let (status, _, body) =
        common::http(&a.socket(), "GET", "/v1.50/images/nosuch/get").expect("save missing");
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn push_then_remove_then_pull_back() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    pull(&docker, &reg.image("layers")).await.expect("pull");
    let (manifest_digest, image_id) = reg.digests("layers");
    let target = format!("127.0.0.1:{}/pushed/layers", reg.port);
    docker
        .tag_image(
            &reg.image("layers"),
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&target)
                    .tag("v1")
                    .build(),
            ),
        )
        .await
        .expect("tag");
    let mut stream = docker.push_image(
        &target,
        Some(
            bollard::query_parameters::PushImageOptionsBuilder::default()
                .tag("v1")
                .build(),
        ),
        None,
    );
    let mut lines = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.expect("push progress");
        lines.push(info.status.unwrap_or_default());
    }
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("v1: digest: {manifest_digest} size: 713")),
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.as_str() == "Pushed").count(),
        3,
        "{lines:?}"
    );

    for name in [format!("{target}:v1"), reg.image("layers")] {
        docker
            .remove_image(
                &name,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .expect("rmi");
    }
    assert!(docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list")
        .is_empty());
    pull(&docker, &format!("{target}:v1"))
        .await
        .expect("pull back");
    let back = docker
        .inspect_image(&format!("{target}:v1"))
        .await
        .expect("inspect");
    assert_eq!(
        back.id.as_deref(),
        Some(image_id.as_str()),
        "the same image comes back"
    );
    assert_eq!(
        back.repo_digests,
        Some(vec![format!("{target}@{manifest_digest}")]),
        "with the digest it had"
    );

    let missing = docker
        .push_image(
            &format!("{target}-none"),
            Some(
                bollard::query_parameters::PushImageOptionsBuilder::default()
                    .tag("x")
                    .build(),
            ),
            None,
        )
        .next()
        .await
        .expect("an answer");
    assert!(missing
        .expect_err("not local")
        .to_string()
        .contains("An image does not exist locally with the tag"));
}

/// A tar with `files` (path, content), as `docker import` takes it.
fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_500_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, content.as_bytes())
            .expect("tar entry");
    }
    b.into_inner().expect("tar")
}

async fn import(
    docker: &Docker,
    tar: Vec<u8>,
    repo: &str,
    changes: &[&str],
    message: &str,
) -> Result<String, String> {
    let opts = bollard::query_parameters::CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        message: Some(message.into()),
        changes: changes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), Some(bollard::body_full(tar.into())), None);
    let mut last = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => last = info.status.unwrap_or_default(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(last)
}

#[tokio::test]
async fn import_applies_changes_and_filters_by_label() {
    let d = TestDaemon::start();
    let docker = client(&d);
    let id = import(
        &docker,
        tarball(&[("etc/hello.txt", "hello\n"), ("bin/tool", "#!tool\n")]),
        "imported/app:v1",
        &[r#"CMD ["/bin/tool", "run"]"#, "ENV A=1", "LABEL tier=web"],
        "from a tarball",
    )
    .await
    .expect("import");
    assert!(id.starts_with("sha256:"), "{id}");
    let inspect = docker
        .inspect_image("imported/app:v1")
        .await
        .expect("inspect");
    assert_eq!(inspect.id.as_deref(), Some(id.as_str()));
    assert_eq!(inspect.comment.as_deref(), Some("from a tarball"));
    let config = inspect.config.expect("config");
    assert_eq!(config.cmd.expect("cmd"), ["/bin/tool", "run"]);
    assert_eq!(config.env.expect("env"), ["A=1"]);
    assert_eq!(config.labels.expect("labels")["tier"], "web");
    assert_eq!(inspect.size, Some(13));
    // The layer holds the files.
    let layer = inspect
        .root_fs
        .and_then(|r| r.layers)
        .expect("layers")
        .remove(0);
    let diff = d
        .data_root()
        .join("overlay2")
        .join(layer.trim_start_matches("sha256:"))
        .join("diff");
    assert_eq!(
        std::fs::read_to_string(diff.join("etc/hello.txt"))
            .ok()
            .as_deref(),
        Some("hello\n")
    );
    let history = docker
        .image_history("imported/app:v1")
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].comment, "from a tarball");

    // A second image, gzip-compressed and without the label.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tarball(&[("other", "x")])).expect("gzip");
    import(
        &docker,
        gz.finish().expect("gzip"),
        "imported/other",
        &[],
        "",
    )
    .await
    .expect("import gzip");
    let by_label = |f: &str| {
        let docker = docker.clone();
        let f = f.to_string();
        async move {
            let opts = ListImagesOptionsBuilder::default()
                .filters(&std::collections::HashMap::from([(
                    "label",
                    vec![f.as_str()],
                )]))
                .build();
            docker
                .list_images(Some(opts))
                .await
                .expect("list")
                .into_iter()
                .flat_map(|i| i.repo_tags)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by_label("tier").await, ["imported/app:v1"]);
    assert_eq!(by_label("tier=web").await, ["imported/app:v1"]);
    assert!(by_label("tier=db").await.is_empty());
    let all = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    let app = all
        .iter()
        .find(|i| i.repo_tags.contains(&"imported/app:v1".to_string()))
        .expect("listed");
    assert_eq!(app.labels["tier"], "web");

    // Bad input: nothing is left behind.
    let layers_before = entries(&d.data_root().join("overlay2"));
    let blobs_before = entries(&d.data_root().join("blobs/sha256"));
    let err = import(&docker, tarball(&[("f", "1")]), "x/y", &["RUN ls"], "")
        .await
        .expect_err("RUN is not a change");
    assert!(err.contains("run is not a valid change command"), "{err}");
    let err = import(&docker, b"not a tarball".to_vec(), "x/y", &[], "")
        .await
        .expect_err("not a tar");
    assert!(err.contains("importing the tarball"), "{err}");
    let err = import(&docker, tarball(&[("f", "1")]), "Bad/Name", &[], "")
        .await
        .expect_err("bad repo");
    assert!(err.contains("invalid reference format"), "{err}");
    assert_eq!(entries(&d.data_root().join("overlay2")), layers_before);
    assert_eq!(entries(&d.data_root().join("blobs/sha256")), blobs_before);
    let (code, _, body) = common::http(
        &d.socket(),
        "GET",
        "/images/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
    )
    .expect("http");
    assert_eq!(
        (code, body.trim()),
        (400, r#"{"message":"Invalid filter 'nope'"}"#)
    );
}

#[tokio::test]
async fn login_and_pull_with_basic_and_token_auth() {
    let d = TestDaemon::start();
    let docker = client(&d);
    for mode in ["basic", "token"] {
        let reg = TestRegistry::start_with_auth(mode, "alice", "s3cret");
        let server = format!("127.0.0.1:{}", reg.port);
        let login = |password: &str| {
            let body = serde_json::json!({ "username": "alice", "password": password, "serveraddress": server })
                .to_string();
            common::http_body(&d.socket(), "POST", "/auth", body.as_bytes()).expect("http")
        };
        let (code, _, body) = login("s3cret");
        assert_eq!(code, 200, "{mode}: {body}");
        assert!(body.contains("Login Succeeded"), "{mode}: {body}");
        let (code, _, body) = login("wrong");
        assert_eq!(code, 401, "{mode}: {body}");

        // Without credentials the registry refuses; with them the pull works.
        let err = pull(&docker, &reg.image("busybox"))
            .await
            .expect_err("anonymous");
        assert!(err.contains("unauthorized"), "{mode}: {err}");
        let creds = bollard::auth::DockerCredentials {
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            serveraddress: Some(server.clone()),
            ..Default::default()
        };
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&reg.image("busybox"))
            .build();
        let mut stream = docker.create_image(Some(opts), None, Some(creds));
        while let Some(item) = stream.next().await {
            item.unwrap_or_else(|e| panic!("{mode}: authenticated pull: {e}"));
        }
        docker
            .inspect_image(&reg.image("busybox"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: pulled image: {e}"));
    }
}

#[tokio::test]
async fn a_mirror_that_lacks_the_image_falls_back_to_the_source() {
    let reg = TestRegistry::start();
    // The misbehaving registry answers 404 for busybox: a mirror that misses.
    let mirror = format!("http://127.0.0.1:{}", reg.bad_port());
    let source = format!("127.0.0.1:{}", reg.port);
    let d = TestDaemon::start_with(&[
        "--registry-mirror",
        &mirror,
        "--docker-hub-endpoint",
        &source,
    ]);
    let docker = client(&d);
    let statuses = pull(&docker, "busybox")
        .await
        .expect("pull through the fallback");
    assert!(
        statuses.contains(&" Status: Downloaded newer image for busybox:latest".to_string()),
        "{statuses:?}"
    );
    let (_, id) = reg.digests("busybox");
    assert_eq!(
        docker.inspect_image("busybox").await.expect("inspect").id,
        Some(id)
    );
}

#[tokio::test]
async fn broken_registry_answers_fail_cleanly() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let bad = |name: &str| format!("127.0.0.1:{}/library/{name}", reg.bad_port());
    let err = pull(&docker, &bad("notjson")).await.expect_err("not json");
    assert!(err.contains("manifest that is not JSON"), "{err}");
    let err = pull(&docker, &bad("truncated"))
        .await
        .expect_err("truncated");
    assert!(err.contains("unexpected EOF"), "{err}");
    assert_eq!(entries(&d.data_root().join("overlay2")), ["l"]);
    assert!(entries(&d.data_root().join("blobs/sha256")).is_empty());
    assert!(docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn vfs_keeps_each_layer_whole() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start_with(&["--storage-driver", "vfs"]);
    let docker = client(&d);
    pull(&docker, &reg.image("layers")).await.expect("pull");
    let inspect = docker
        .inspect_image(&reg.image("layers"))
        .await
        .expect("inspect");
    assert_eq!(
        inspect.graph_driver.as_ref().map(|g| g.name.as_str()),
        Some("vfs")
    );
    let layers = inspect.root_fs.and_then(|r| r.layers).expect("layers");
    let chain = berth::registry::manifest::chain_ids(&layers);
    let top = d
        .data_root()
        .join("vfs/dir")
        .join(chain[2].trim_start_matches("sha256:"));
    let read = |p: &str| std::fs::read_to_string(top.join(p)).ok();
    assert_eq!(read("data/keep.txt").as_deref(), Some("keep\n"));
    assert_eq!(read("data/changed.txt").as_deref(), Some("layer2\n"));
    assert_eq!(read("data/added2.txt").as_deref(), Some("added2\n"));
    assert_eq!(read("opq/new.txt").as_deref(), Some("new\n"));
    assert!(std::fs::symlink_metadata(top.join("data/deleteme.txt")).is_err());
    assert!(!top.join("opq/old1.txt").exists() && !top.join("opq/sub").exists());
    assert!(top.join("bin/busybox").exists());
    // The lower layer still has what the upper one deleted.
    let middle = d
        .data_root()
        .join("vfs/dir")
        .join(chain[1].trim_start_matches("sha256:"));
    assert!(middle.join("opq/old1.txt").exists());
    assert_eq!(info_driver(&d), "vfs");

    docker
        .remove_image(
            &reg.image("layers"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect("rmi");
    assert!(entries(&d.data_root().join("vfs/dir")).is_empty());
}

fn info_driver(d: &TestDaemon) -> String {
    let (_, _, body) = common::http(&d.socket(), "GET", "/info").expect("info");
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["Driver"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_image_of_125_layers_mounts() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    pull(&docker, &reg.image("deep")).await.expect("pull deep");
    let layers = docker
        .inspect_image(&reg.image("deep"))
        .await
        .expect("inspect")
        .root_fs
        .and_then(|r| r.layers)
        .expect("layers");
    assert_eq!(layers.len(), 125);
    let chain = berth::registry::manifest::chain_ids(&layers);
    let root = d.data_root().join("overlay2");
    // Short links keep the stack description small: 124 `l/<26 chars>` entries.
    let lower = std::fs::read_to_string(
        root.join(chain[124].trim_start_matches("sha256:"))
            .join("lower"),
    )
    .expect("lower");
    assert_eq!(lower.split(':').count(), 124);
    assert!(lower.len() < 124 * 30, "{} bytes", lower.len());
    let store =
        berth::drivers::storage::LayerStore::open(&root, berth::drivers::storage::Driver::Overlay2)
            .expect("store");
    let mnt = d.dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    store
        .mount_readonly(&chain[124], &mnt)
        .expect("mount 125 layers");
    let seen = (
        std::fs::read_to_string(mnt.join("deep/top.txt")).ok(),
        std::fs::read_to_string(mnt.join("deep/1.txt")).ok(),
        mnt.join("bin/busybox").exists(),
    );
    let _ = rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::DETACH);
    assert_eq!(seen, (Some("124\n".into()), Some("1\n".into()), true));
}
