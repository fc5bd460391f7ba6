//! cgroup v2 is not this machine's (v1, hybrid): these tests run the spec
//! berthd writes for a container through libcontainer's v2 cgroup manager
//! (the code that applies it on a v2 host) against a directory laid out as a
//! v2 hierarchy, and read back the files it wrote. `docker update` writes v2
//! files itself; its unit tests are in src/containers/update.rs.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerCreateBody, HostConfig};
use libcgroups::common::{CgroupManager, ControllerOpt};

const FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.subtree_control",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
];

/// A fake v2 root with every controller, and the container's empty files.
fn hierarchy(root: &Path, cgroup: &str) -> PathBuf {
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids",
    )
    .unwrap();
    let dir = root.join(cgroup.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    for f in FILES {
        std::fs::write(dir.join(f), "").unwrap();
    }
    dir
}

fn resources_of(h: HostConfig) -> oci_spec::runtime::LinuxResources {
    let body = ContainerCreateBody {
        image: Some("busybox".into()),
        cmd: Some(vec!["true".into()]),
        host_config: Some(h),
        ..Default::default()
    };
    let user = berth::drivers::exec::spec::resolve_user("", "", "").unwrap();
    let spec = berth::drivers::exec::spec::build(&berth::drivers::exec::spec::SpecInput {
        id: "x",
        body: &body,
        rootfs: Path::new("/r"),
        user,
        cgroup_path: "/berth/x".into(),
        init_binary: Path::new("/bin/init"),
        sandbox: &Default::default(),
        remap: None,
        mounts: &[],
        namespaces: &Default::default(),
    })
    .unwrap();
    serde_json::from_value(spec["linux"]["resources"].clone())
        .expect("the spec's resources are OCI resources")
}

/// What libcontainer does with the resources on a v2 host, under `root`.
fn apply(root: &Path, resources: &oci_spec::runtime::LinuxResources) {
    let manager = libcgroups::v2::manager::Manager::new(root.to_path_buf(), "berth/x".into())
        .expect("manager");
    manager
        .apply(&ControllerOpt {
            resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .expect("apply");
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn memory_cpu_cpuset_and_pids_limits_land_in_v2_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = hierarchy(t.path(), "/berth/x");
    let resources = resources_of(HostConfig {
        memory: Some(64 << 20),
        memory_swap: Some(96 << 20),
        memory_reservation: Some(32 << 20),
        cpu_shares: Some(512),
        nano_cpus: Some(1_500_000_000),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(50),
        ..Default::default()
    });
    apply(t.path(), &resources);
    assert_eq!(read(&dir, "memory.max"), (64u64 << 20).to_string());
    // v2's swap file holds swap alone: memory+swap 96 MiB is 32 MiB of swap.
    assert_eq!(read(&dir, "memory.swap.max"), (32u64 << 20).to_string());
    assert_eq!(read(&dir, "memory.low"), (32u64 << 20).to_string());
    // cpu.shares 512 as cpu.weight (runc's conversion, which docker update
    // uses too: berth::containers::update::shares_to_weight).
    assert_eq!(read(&dir, "cpu.weight"), "59");
    assert_eq!(berth::containers::update::shares_to_weight(512), 59);
    assert_eq!(read(&dir, "cpu.max"), "150000 100000");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "pids.max"), "50");
}

#[test]
fn unlimited_swap_and_pids_are_max() {
    let t = tempfile::tempdir().unwrap();
    let dir = hierarchy(t.path(), "/berth/x");
    let resources = resources_of(HostConfig {
        memory: Some(64 << 20),
        memory_swap: Some(-1),
        pids_limit: Some(-1),
        ..Default::default()
    });
    apply(t.path(), &resources);
    assert_eq!(read(&dir, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(read(&dir, "memory.swap.max"), "max");
    assert_eq!(read(&dir, "pids.max"), "max");
}
