//! The kernel's network objects through rtnetlink: bridges with their
//! address, the host's routes (a new subnet must overlap none), and a
//! container's interfaces, made inside its namespace from a thread of its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Context, Error, Result};

fn nl<T>(what: impl std::fmt::Display, r: std::result::Result<T, rtnetlink::Error>) -> Result<T> {
    r.map_err(|e| Error::internal(format!("{what}: {e}")))
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.is_some_and(|c| c.get() == -errno),
        _ => false,
    }
}

/// A netlink connection of the namespace the calling thread is in, served by
/// a task on the current runtime.
pub fn connect() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of link `name`, if it exists.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(Error::internal(format!("looking up {name}: {e}"))),
    }
}

async fn must_index(h: &Handle, name: &str) -> Result<u32> {
    link_index(h, name)
        .await?
        .ok_or_else(|| Error::internal(format!("no link {name}")))
}

/// Adds a v6 address without duplicate address detection (an address on a
/// bridge or veth we made is ours: DAD would only hold it back ~1 s), as
/// dockerd does.
async fn add_v6_address(h: &Handle, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<()> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
    let mut req = h.address().add(index, IpAddr::V6(ip), prefix).replace();
    req.message_mut()
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    nl(format_args!("adding {ip}/{prefix}"), req.execute().await)
}

/// Turns IPv6 on for interface `ifname` of the namespace the calling thread
/// is in (namespaces we make have it off by default).
pub fn enable_ipv6(ifname: &str) -> Result<()> {
    let knob = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    std::fs::write(&knob, "0").context(format_args!("writing {knob}"))
}

/// Makes bridge `name` (marked with `alias`) with `gateway/prefix` (and a v6
/// gateway) and brings it up; an existing one is kept and given the
/// addresses again (idempotent).
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    alias: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    ipv6: Option<(Ipv6Addr, u8)>,
) -> Result<()> {
    if link_index(h, name).await?.is_none() {
        match h.link().add(LinkBridge::new(name).build()).execute().await {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(e) => return Err(Error::internal(format!("creating bridge {name}: {e}"))),
        }
    }
    let index = must_index(h, name).await?;
    nl(
        format_args!("marking bridge {name}"),
        h.link()
            .set(LinkUnspec::new_with_index(index).alias(alias).build())
            .execute()
            .await,
    )?;
    nl(
        format_args!("addressing bridge {name}"),
        h.address()
            .add(index, IpAddr::V4(gateway), prefix)
            .replace()
            .execute()
            .await,
    )?;
    if let Some((gw6, prefix6)) = ipv6 {
        enable_ipv6(name)?;
        add_v6_address(h, index, gw6, prefix6).await?;
    }
    nl(
        format_args!("bringing {name} up"),
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await,
    )
}

/// What is wrong with bridge `name`, which should be up and carry
/// `gateway/prefix`, if anything (someone else may have removed it, its
/// address, or brought it down): two requests, a link lookup and an address
/// dump of that link.
pub async fn bridge_damage(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<Option<&'static str>> {
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::LinkFlags;
    let mut links = h.link().get().match_name(name.to_string()).execute();
    let link = match links.try_next().await {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(Some("it was gone")),
        Err(e) if is_errno(&e, libc::ENODEV) => return Ok(Some("it was gone")),
        Err(e) => return Err(Error::internal(format!("looking up {name}: {e}"))),
    };
    let index = link.header.index;
    // The kernel dumps every address of the family (the index is matched
    // here): IPv4 only, not every veth's link-local IPv6 address.
    let mut get = h.address().get().set_link_index_filter(index);
    get.message_mut().header.family = rtnetlink::packet_route::AddressFamily::Inet;
    let mut addrs = get.execute();
    let mut addressed = false;
    while let Some(a) = nl(
        format_args!("listing {name}'s addresses"),
        addrs.try_next().await,
    )? {
        addressed |= a.header.index == index
            && a.header.prefix_len == prefix
            && a.attributes.iter().any(|at| {
                matches!(at, AddressAttribute::Local(ip) | AddressAttribute::Address(ip)
                    if *ip == IpAddr::V4(gateway))
            });
    }
    if !addressed {
        return Ok(Some("it had lost its address"));
    }
    if !link.header.flags.contains(LinkFlags::Up) {
        return Ok(Some("it was down"));
    }
    Ok(None)
}

/// Removes link `name` (gone already: fine).
pub async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    let Some(index) = link_index(h, name).await? else {
        return Ok(());
    };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
        Err(e) => Err(Error::internal(format!("removing {name}: {e}"))),
    }
}

/// The bridges whose alias is `alias`.
pub async fn bridges_with_alias(h: &Handle, alias: &str) -> Result<Vec<String>> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(l) = nl("listing links", links.try_next().await)? {
        let mut name = None;
        let mut matches = false;
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::IfAlias(a) if a == alias => matches = true,
                _ => {}
            }
        }
        if let (Some(n), true) = (name, matches) {
            out.push(n);
        }
    }
    Ok(out)
}

/// The subnets of the host's IPv4 routes (the default route aside), as
/// (base address, prefix length).
pub async fn route_subnets(h: &Handle) -> Result<Vec<(u32, u8)>> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    let mut out = Vec::new();
    let mut routes = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(r) = nl("listing routes", routes.try_next().await)? {
        let prefix = r.header.destination_prefix_length;
        if prefix == 0 {
            continue;
        }
        for a in &r.attributes {
            if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                let m = if prefix >= 32 {
                    u32::MAX
                } else {
                    !(u32::MAX >> prefix)
                };
                out.push((u32::from(*ip) & m, prefix));
            }
        }
    }
    Ok(out)
}

/// One interface to make in a container's namespace: `ifname` inside, its
/// peer `host_ifname` on `bridge`.
#[derive(Debug, Clone)]
pub struct InterfacePlan {
    pub ifname: String,
    pub host_ifname: String,
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// The default route goes through this interface's gateway.
    pub default_gateway: Option<Ipv4Addr>,
    /// Its v6 address and prefix on an IPv6 network, and the v6 gateway the
    /// default v6 route takes (on the primary network).
    pub ip6: Option<(Ipv6Addr, u8)>,
    pub default_gateway6: Option<Ipv6Addr>,
    /// Both ends' MTU; 0: the kernel's default.
    pub mtu: u32,
}

/// The namespace to work in: a new one bind-mounted at the path, or one that
/// is there already.
pub enum Namespace {
    New(PathBuf),
    /// A new one that another process made and bound at the path (one owned
    /// by a remapped container's user namespace): set up as a new one.
    Made(PathBuf),
    Existing(PathBuf),
}

/// Runs `f` in a thread of its own that is in `ns` (creating it), with a
/// netlink handle of the host and one of the namespace. The thread ends with
/// it: no other thread of the daemon ever changes namespace.
fn in_namespace<F, Fut>(ns: Namespace, f: F) -> Result<()>
where
    F: FnOnce(Handle, Handle, std::fs::File) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>>,
{
    let thread = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .context("starting the netns thread's runtime")?;
            rt.block_on(async move {
                let t0 = std::time::Instant::now();
                // Opened before the thread leaves the host's namespace.
                let host = connect()?;
                let host_ns = std::fs::File::open("/proc/thread-self/ns/net")
                    .context("opening the host's network namespace")?;
                match &ns {
                    Namespace::New(path) => {
                        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                            .context("unshare(CLONE_NEWNET)")?;
                        std::fs::File::create(path)
                            .context(format_args!("creating {}", path.display()))?;
                        nix::mount::mount(
                            Some("/proc/thread-self/ns/net"),
                            path,
                            None::<&str>,
                            nix::mount::MsFlags::MS_BIND,
                            None::<&str>,
                        )
                        .context(format_args!(
                            "bind-mounting the namespace at {}",
                            path.display()
                        ))?;
                    }
                    Namespace::Existing(path) | Namespace::Made(path) => {
                        let f = std::fs::File::open(path)
                            .context(format_args!("opening {}", path.display()))?;
                        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                            .context("setns(CLONE_NEWNET)")?;
                    }
                }
                let t1 = t0.elapsed().as_micros() as u64;
                let inner = connect()?;
                if let Namespace::New(_) | Namespace::Made(_) = ns {
                    // As dockerd on a network without IPv6: no IPv6 at all
                    // (no ::1 on lo, no link-local address on eth0). This
                    // thread is in the new namespace, so /proc/sys/net is its.
                    for knob in ["all", "default"] {
                        let _ = std::fs::write(
                            format!("/proc/sys/net/ipv6/conf/{knob}/disable_ipv6"),
                            "1",
                        );
                    }
                    let lo = must_index(&inner, "lo").await?;
                    nl(
                        "bringing lo up",
                        inner
                            .link()
                            .set(LinkUnspec::new_with_index(lo).up().build())
                            .execute()
                            .await,
                    )?;
                }
                let r = f(host, inner, host_ns).await;
                tracing::debug!(
                    enter_us = t1,
                    total_us = t0.elapsed().as_micros() as u64,
                    "netns thread"
                );
                r
            })
        })
        .context("starting the netns thread")?;
    thread
        .join()
        .map_err(|_| Error::internal("the netns thread panicked"))?
}

/// Makes the interfaces of `plans` in `ns` (a new namespace is made first).
/// Blocking: call it from a blocking task.
pub fn setup_interfaces(ns: Namespace, plans: Vec<InterfacePlan>) -> Result<()> {
    in_namespace(ns, move |host, inner, host_ns| async move {
        for p in &plans {
            add_interface(&host, &inner, &host_ns, p).await?;
        }
        Ok(())
    })
}

async fn add_interface(
    host: &Handle,
    inner: &Handle,
    host_ns: &std::fs::File,
    p: &InterfacePlan,
) -> Result<()> {
    let bridge = must_index(host, &p.bridge).await?;
    // The peer is made in the host's namespace by the same request: moving
    // a device between namespaces afterwards costs 15-20 ms here (the kernel
    // waits for an RCU grace period), creating it there costs nothing extra.
    use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
    use rtnetlink::LinkMessageBuilder;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(p.host_ifname.clone())
        .setns_by_fd(host_ns.as_raw_fd())
        .build();
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(p.ifname.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    nl(
        format_args!("creating {} and {}", p.ifname, p.host_ifname),
        inner.link().add(veth).execute().await,
    )?;
    let index = must_index(inner, &p.ifname).await?;
    let mut settings = LinkUnspec::new_with_index(index).address(p.mac.to_vec());
    if p.mtu > 0 {
        settings = settings.mtu(p.mtu);
    }
    nl(
        format_args!("setting {}'s MAC", p.ifname),
        inner.link().set(settings.build()).execute().await,
    )?;
    nl(
        format_args!("addressing {}", p.ifname),
        inner
            .address()
            .add(index, IpAddr::V4(p.ip), p.prefix)
            .execute()
            .await,
    )?;
    if let Some((ip6, prefix6)) = p.ip6 {
        // As dockerd: IPv6 on for this interface and lo (::1), still off
        // for "all", and the address usable at once.
        enable_ipv6("lo")?;
        enable_ipv6(&p.ifname)?;
        add_v6_address(inner, index, ip6, prefix6).await?;
    }
    nl(
        format_args!("bringing {} up", p.ifname),
        inner
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await,
    )?;
    if let Some(gw6) = p.default_gateway6 {
        nl(
            "adding the default IPv6 route",
            inner
                .route()
                .add(
                    RouteMessageBuilder::<Ipv6Addr>::new()
                        .gateway(gw6)
                        .output_interface(index)
                        .build(),
                )
                .execute()
                .await,
        )?;
    }
    if let Some(gw) = p.default_gateway {
        nl(
            "adding the default route",
            inner
                .route()
                .add(
                    RouteMessageBuilder::<Ipv4Addr>::new()
                        .gateway(gw)
                        .output_interface(index)
                        .build(),
                )
                .execute()
                .await,
        )?;
    }
    let hidx = must_index(host, &p.host_ifname).await?;
    let mut peer = LinkUnspec::new_with_index(hidx).controller(bridge).up();
    if p.mtu > 0 {
        peer = peer.mtu(p.mtu);
    }
    nl(
        format_args!("attaching {} to {}", p.host_ifname, p.bridge),
        host.link().set(peer.build()).execute().await,
    )
}

/// Removes interface `ifname` from the namespace at `path` (its peer goes with it).
pub fn remove_interface(path: &Path, ifname: &str) -> Result<()> {
    let ifname = ifname.to_string();
    in_namespace(
        Namespace::Existing(path.to_path_buf()),
        move |_, inner, _| async move { delete_link(&inner, &ifname).await },
    )
}

/// Unmounts and removes a namespace's bind mount: once its processes are
/// gone too, the kernel removes it with its interfaces.
pub fn remove_namespace(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}
