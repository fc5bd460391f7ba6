//! Networks, the pure part: what a network is, addresses, published ports,
//! the files a container's resolver reads, the DNS wire format, and how all
//! of it reads in the API. The kernel side is `drivers::network`; the
//! decisions are the NetworkController's.

pub mod dns;
pub mod files;
pub mod ipam;
pub mod ports;
pub mod render;
pub mod spec;

/// Where a started container's network lives.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// The namespace to join; None: the runtime makes an empty one (none) or
    /// none at all (host).
    pub netns: Option<std::path::PathBuf>,
    /// /etc/hosts, /etc/resolv.conf and /etc/hostname: where each is in the
    /// container, and the file bind-mounted there.
    pub etc_files: Vec<(String, std::path::PathBuf)>,
}
