//! The envelope around every stored event. Its byte layout is frozen forever:
//! it is what lets any later berthd read any older log.
//!
//! key   = sequence as u64 big-endian (so RocksDB's order is the log's order)
//! value = b"BE" | schema u16 LE | time_ns u64 LE | crc32 u32 LE | payload
//!
//! The CRC covers the sequence, schema, time and payload, so a record that is torn,
//! overwritten or moved under another key is detected on replay.

use thiserror::Error;

const MAGIC: &[u8; 2] = b"BE";
const HEADER_LEN: usize = 2 + 2 + 8 + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub seq: u64,
    pub time_ns: u64,
    pub schema: u16,
    pub payload: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("key is {0} bytes, not 8")]
    BadKey(usize),
    #[error("record is {0} bytes, shorter than its header")]
    Short(usize),
    #[error("record has no envelope magic")]
    BadMagic,
    #[error("record checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
}

pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn seq_of_key(key: &[u8]) -> Result<u64, EnvelopeError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| EnvelopeError::BadKey(key.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn checksum(seq: u64, schema: u16, time_ns: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_be_bytes());
    h.update(&schema.to_le_bytes());
    h.update(&time_ns.to_le_bytes());
    h.update(payload);
    h.finalize()
}

impl Envelope {
    pub fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.schema.to_le_bytes());
        out.extend_from_slice(&self.time_ns.to_le_bytes());
        out.extend_from_slice(
            &checksum(self.seq, self.schema, self.time_ns, &self.payload).to_le_bytes(),
        );
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<Envelope, EnvelopeError> {
        let seq = seq_of_key(key)?;
        if value.len() < HEADER_LEN {
            return Err(EnvelopeError::Short(value.len()));
        }
        if &value[0..2] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let schema = u16::from_le_bytes([value[2], value[3]]);
        let mut time = [0u8; 8];
        time.copy_from_slice(&value[4..12]);
        let time_ns = u64::from_le_bytes(time);
        let stored = u32::from_le_bytes([value[12], value[13], value[14], value[15]]);
        let payload = &value[HEADER_LEN..];
        let computed = checksum(seq, schema, time_ns, payload);
        if stored != computed {
            return Err(EnvelopeError::Checksum { stored, computed });
        }
        Ok(Envelope {
            seq,
            time_ns,
            schema,
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            seq: 42,
            time_ns: 1_700_000_000_000_000_000,
            schema: 1,
            payload: vec![1, 2, 3, 4],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let back = Envelope::decode(&key(e.seq), &e.encode_value()).expect("decodes");
        assert_eq!(back, e);
    }

    #[test]
    fn detects_torn_and_flipped_records() {
        let e = sample();
        let value = e.encode_value();
        assert_eq!(
            Envelope::decode(&key(42), &value[..10]),
            Err(EnvelopeError::Short(10))
        );
        let torn = &value[..value.len() - 1];
        assert!(matches!(
            Envelope::decode(&key(42), torn),
            Err(EnvelopeError::Checksum { .. })
        ));
        let mut flipped = value.clone();
        flipped[5] ^= 0x40;
        assert!(matches!(
            Envelope::decode(&key(42), &flipped),
            Err(EnvelopeError::Checksum { .. })
        ));
        // The same bytes under another key are not the same record.
        assert!(matches!(
            Envelope::decode(&key(43), &value),
            Err(EnvelopeError::Checksum { .. })
        ));
        assert_eq!(
            Envelope::decode(&key(42), b"XX0000000000000000"),
            Err(EnvelopeError::BadMagic)
        );
    }
}
