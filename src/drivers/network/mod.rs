//! The bridge driver: bridges, a namespace and veth pair per container,
//! firewall rules. Everything it makes on the host is named after this
//! daemon's instance (its data root), so two berthds, and a dockerd, share a
//! host without touching each other's bridges or chains.

pub mod firewall;
pub mod listen;
pub mod netlink;
pub mod proxy;
pub mod watch;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rtnetlink::Handle;

use crate::error::{Context, Error, Result};
use crate::store::lock::DataRootLock;
use firewall::Firewall;

/// The data root whose daemon's names carry no tag.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";

/// Serializes the choice of a subnet and the making of its bridge between
/// the berthds of one host, so two never take the same free subnet.
const HOST_LOCK: &str = "/run/berth-network.lock";

/// What this daemon calls its network objects.
#[derive(Debug, Clone)]
pub struct Names {
    /// Empty for the default data root; else 6 hex digits of its path's hash.
    pub tag: String,
    pub netns_dir: PathBuf,
}

impl Names {
    pub fn new(data_root: &Path, exec_root: &Path) -> Names {
        use sha2::Digest;
        let tag = if data_root == Path::new(DEFAULT_DATA_ROOT) {
            String::new()
        } else {
            hex::encode(sha2::Sha256::digest(
                data_root.as_os_str().as_encoded_bytes(),
            ))[..6]
                .to_string()
        };
        Names {
            tag,
            netns_dir: exec_root.join("netns"),
        }
    }

    /// "berth0", or "berth-<tag>".
    pub fn default_bridge(&self) -> String {
        if self.tag.is_empty() {
            "berth0".into()
        } else {
            format!("berth-{}", self.tag)
        }
    }

    /// A user network's bridge, as dockerd names them: "br-" and 12 hex digits.
    pub fn bridge_for(&self, network_id: &str) -> String {
        format!("br-{}", &network_id[..12.min(network_id.len())])
    }

    /// The alias that marks this daemon's bridges (network-cleanup finds them by it).
    pub fn alias(&self) -> String {
        if self.tag.is_empty() {
            "berth".into()
        } else {
            format!("berth-{}", self.tag)
        }
    }

    /// The prefix of our iptables chains.
    pub fn chain_prefix(&self) -> String {
        if self.tag.is_empty() {
            "BERTH".into()
        } else {
            format!("BERTH-{}", self.tag)
        }
    }

    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir
            .join(&container_id[..12.min(container_id.len())])
    }
}

/// A bridge device as the driver makes it.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: String,
    /// The bridge's own address, the containers' gateway.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// No route out: published ports need no route_localnet.
    pub internal: bool,
    /// Its containers reach each other; without, the firewall's DROP
    /// between them needs bridged packets to pass through iptables.
    pub icc: bool,
    /// The v6 gateway and prefix, on a network with IPv6.
    pub ipv6: Option<(std::net::Ipv6Addr, u8)>,
}

/// Makes bridged packets go through iptables (br_netfilter), as dockerd
/// does for a network without inter-container traffic.
fn bridged_packets_through_iptables(ipv6: bool) -> Result<()> {
    let knob = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    let knob6 = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
    if !knob.exists() {
        let out = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .output()
            .context("running modprobe br_netfilter")?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "modprobe br_netfilter: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    std::fs::write(knob, "1").context(format_args!("writing {}", knob.display()))?;
    if ipv6 {
        std::fs::write(knob6, "1").context(format_args!("writing {}", knob6.display()))?;
    }
    Ok(())
}

/// The driver: names, a netlink handle of the host, the firewall.
pub struct NetDriver {
    pub names: Names,
    pub firewall: Firewall,
    handle: Handle,
}

impl NetDriver {
    /// Call from within the daemon's runtime (the netlink connection is a task on it).
    pub fn new(data_root: &Path, exec_root: &Path) -> Result<NetDriver> {
        let names = Names::new(data_root, exec_root);
        std::fs::create_dir_all(&names.netns_dir)
            .context(format_args!("creating {}", names.netns_dir.display()))?;
        Ok(NetDriver {
            firewall: Firewall::new(&names.chain_prefix()),
            names,
            handle: netlink::connect()?,
        })
    }

    /// Makes a bridge network's device (idempotent).
    pub async fn ensure_bridge(&self, bridge: &Bridge) -> Result<()> {
        netlink::ensure_bridge(
            &self.handle,
            &bridge.name,
            &self.names.alias(),
            bridge.gateway,
            bridge.prefix,
            bridge.ipv6,
        )
        .await?;
        if !bridge.internal {
            // Published ports answer on 127.0.0.1: DNAT sends such packets
            // out of the bridge, which the kernel allows only with this.
            let knob = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", bridge.name);
            std::fs::write(&knob, "1").context(format_args!("writing {knob}"))?;
        }
        if !bridge.icc {
            bridged_packets_through_iptables(bridge.ipv6.is_some())?;
        }
        Ok(())
    }

    /// What is wrong with a bridge network's device, if anything (gone,
    /// without its address, down): two netlink requests.
    pub async fn bridge_damage(&self, bridge: &Bridge) -> Result<Option<&'static str>> {
        netlink::bridge_damage(&self.handle, &bridge.name, bridge.gateway, bridge.prefix).await
    }

    /// Deletions in the host's firewall that touch our chains, as they happen.
    pub fn watch_firewall(&self) -> Result<watch::FirewallWatch> {
        watch::FirewallWatch::open(&self.firewall.chain_names())
    }

    pub async fn remove_bridge(&self, name: &str) -> Result<()> {
        netlink::delete_link(&self.handle, name).await
    }

    /// Subnets a new network must not overlap: the host's routes, as
    /// (base address, prefix length).
    pub async fn host_routes(&self) -> Result<Vec<(u32, u8)>> {
        netlink::route_subnets(&self.handle).await
    }
}

/// Takes the host-wide network lock (released when the file is dropped).
pub fn host_lock() -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HOST_LOCK)
        .context(format_args!("opening {HOST_LOCK}"))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .context(format_args!("locking {HOST_LOCK}"))?;
    Ok(f)
}

/// A random host-side veth name, as dockerd's ("veth" and 7 hex digits).
pub fn veth_name() -> Result<String> {
    let mut b = [0u8; 4];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut b,
    )
    .context("reading /dev/urandom")?;
    Ok(format!("veth{}", &hex::encode(b)[..7]))
}

/// `berthd network-cleanup`: removes what the daemon of this data root made
/// on the host's network (its bridges, chains and namespace mounts). For a
/// stopped daemon: tests call it after killing theirs. A daemon running on
/// the data root (it holds its lock) is refused, naming its pid, and nothing
/// is removed; the lock is held meanwhile, so none starts while this works.
pub fn cleanup(data_root: &Path, exec_root: &Path) -> Result<()> {
    // No data root, no daemon on it (and no lock file to make there).
    let _lock = if data_root.is_dir() {
        match DataRootLock::try_acquire(data_root)? {
            Ok(lock) => Some(lock),
            Err(holder) => {
                return Err(Error::conflict(format!(
                    "data root {} is in use by {holder}: network-cleanup removes what a stopped daemon left; stop it first",
                    data_root.display()
                )))
            }
        }
    } else {
        None
    };
    let names = Names::new(data_root, exec_root);
    if let Ok(dir) = std::fs::read_dir(&names.netns_dir) {
        for e in dir.flatten() {
            netlink::remove_namespace(&e.path());
        }
    }
    Firewall::new(&names.chain_prefix()).remove_all();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting a runtime")?;
    rt.block_on(async {
        let h = netlink::connect()?;
        for b in netlink::bridges_with_alias(&h, &names.alias()).await? {
            netlink::delete_link(&h, &b).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_instance_tag() {
        let n = Names::new(Path::new(DEFAULT_DATA_ROOT), Path::new("/run/berth"));
        assert_eq!(
            (n.default_bridge(), n.chain_prefix()),
            ("berth0".into(), "BERTH".into())
        );
        let t = Names::new(Path::new("/tmp/x/data"), Path::new("/tmp/x/exec"));
        assert_eq!(t.tag.len(), 6);
        assert!(t.default_bridge().len() <= 15);
        assert_eq!(t.chain_prefix(), format!("BERTH-{}", t.tag));
        assert_ne!(
            t.tag,
            Names::new(Path::new("/tmp/y/data"), Path::new("/e")).tag
        );
        assert_eq!(t.bridge_for("0123456789abcdef"), "br-0123456789ab");
        assert_eq!(
            t.netns_path("0123456789abcdef"),
            Path::new("/tmp/x/exec/netns/0123456789ab")
        );
    }
}
