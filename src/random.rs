//! Random IDs from the kernel (/dev/urandom): container, network and
//! anonymous volume IDs. A leaf: it imports nothing of the engine but errors.

use crate::error::{Error, Result};

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| Error::internal(format!("opening /dev/urandom: {e}")))?,
        &mut b,
    )
    .map_err(|e| Error::internal(format!("reading /dev/urandom: {e}")))?;
    Ok(b)
}

/// 64 random hex digits, as dockerd's IDs.
pub fn hex64() -> Result<String> {
    Ok(hex::encode(bytes::<32>()?))
}

/// A random u64.
pub fn u64() -> Result<u64> {
    Ok(u64::from_le_bytes(bytes::<8>()?))
}
