//! Deletions in the host's firewall as they happen. nf_tables tells every
//! listener of its notification group about each change, whoever makes it
//! (iptables-nft, nft, firewalld, a reload of a saved ruleset), so a daemon
//! whose chains were flushed or deleted notices at once, without polling.
//! Only deletions that name one of our chains count (a rule in it, the chain
//! itself, a jump to it), and any table's deletion. A host on
//! iptables-legacy sends nothing: there, damage is found at the next start
//! that needs the chains.

use std::io::ErrorKind;

use rtnetlink::sys::protocols::NETLINK_NETFILTER;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, TokioSocket};

use crate::error::{Context, Error, Result};

/// nf_tables' multicast group (enum nfnetlink_groups).
const NFNLGRP_NFTABLES: u32 = 7;
/// The nf_tables subsystem of nfnetlink: the high byte of a message's type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// NFT_MSG_DELTABLE and NFT_MSG_DESTROYTABLE.
const NFT_TABLE_DELETIONS: [u16; 2] = [2, 26];
/// NFT_MSG_DELCHAIN, DELRULE, DESTROYCHAIN, DESTROYRULE.
const NFT_DELETIONS: [u16; 4] = [5, 8, 27, 28];

pub struct FirewallWatch {
    socket: TokioSocket,
    /// Each chain's name as netlink carries it: NUL-terminated.
    needles: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl FirewallWatch {
    /// Listens for deletions that touch `chains`. Call from within the
    /// daemon's runtime.
    pub fn open(chains: &[String]) -> Result<FirewallWatch> {
        let mut socket =
            TokioSocket::new(NETLINK_NETFILTER).context("opening a netfilter netlink socket")?;
        socket
            .socket_mut()
            .bind_auto()
            .context("binding a netfilter netlink socket")?;
        socket
            .socket_ref()
            .add_membership(NFNLGRP_NFTABLES)
            .context("joining nf_tables' notification group")?;
        // A big ruleset's reload comes in a burst; room for it.
        let _ = socket.socket_ref().set_rx_buf_sz(1 << 20);
        Ok(FirewallWatch {
            socket,
            needles: chains
                .iter()
                .map(|c| {
                    let mut n = c.as_bytes().to_vec();
                    n.push(0);
                    n
                })
                .collect(),
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// Waits until a deletion touches our chains.
    pub async fn touched(&mut self) -> Result<()> {
        loop {
            if self.next().await? {
                return Ok(());
            }
        }
    }

    /// Reads what is queued now without waiting: whether any of it touched
    /// our chains.
    pub async fn drain(&mut self) -> Result<bool> {
        let mut touched = false;
        while let Some(read) = futures_util::FutureExt::now_or_never(self.next()) {
            touched |= read?;
        }
        Ok(touched)
    }

    /// One datagram: whether it touched our chains.
    async fn next(&mut self) -> Result<bool> {
        self.buf.clear();
        match self.socket.recv_from(&mut self.buf).await {
            Ok(_) => Ok(touches(&self.buf, &self.needles)),
            // The kernel dropped notifications (a burst overflowed the
            // buffer): one of them may have been ours.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(Error::internal(format!(
                "reading nf_tables' notifications: {e}"
            ))),
        }
    }
}

/// Whether a datagram of nf_tables notifications holds a deletion that
/// touches one of our chains (a table's deletion always does).
fn touches(datagram: &[u8], needles: &[Vec<u8>]) -> bool {
    let mut rest = datagram;
    // struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32.
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < 16 || len > rest.len() {
            break;
        }
        let (subsys, msg) = (kind >> 8, kind & 0xff);
        if subsys == NFNL_SUBSYS_NFTABLES {
            let body = &rest[16..len];
            if NFT_TABLE_DELETIONS.contains(&msg)
                || (NFT_DELETIONS.contains(&msg)
                    && needles
                        .iter()
                        .any(|n| body.windows(n.len()).any(|w| w == n.as_slice())))
            {
                return true;
            }
        }
        // Messages are aligned to 4 bytes.
        let next = (len + 3) & !3;
        if next >= rest.len() {
            break;
        }
        rest = &rest[next..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m.resize((len + 3) & !3, 0);
        m
    }

    #[test]
    fn only_deletions_that_name_our_chains_count() {
        let ours = vec![b"BERTH-DNAT\0".to_vec()];
        let kind = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
        let in_ours = b"\x02\0\0\0nat\0BERTH-DNAT\0";
        let theirs = b"\x02\0\0\0nat\0BERTH-ab12cd-DNAT\0";
        // A rule of ours deleted; a chain of ours deleted; a table deleted.
        assert!(touches(&message(kind(8), in_ours), &ours));
        assert!(touches(&message(kind(5), in_ours), &ours));
        assert!(touches(&message(kind(2), b"\x02\0\0\0nat\0"), &ours));
        // Another daemon's chain; a rule added to ours; another subsystem.
        assert!(!touches(&message(kind(8), theirs), &ours));
        assert!(!touches(&message(kind(6), in_ours), &ours));
        assert!(!touches(&message((1 << 8) | 8, in_ours), &ours));
        // Found in the second message of a datagram; a truncated one is let be.
        let mut two = message(kind(6), in_ours);
        two.extend(message(kind(8), in_ours));
        assert!(touches(&two, &ours));
        assert!(!touches(&two[..20], &ours));
    }
}
