//! Archives as dockerd's `archive.DecompressStream` reads them: plain, or
//! gzip, bzip2, xz or zstd, told by their first bytes.

use std::io::{BufRead, BufReader, Read};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// What the magic bytes at the start of a stream say.
pub fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if magic.starts_with(b"BZh") {
        Compression::Bzip2
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `input` decompressed as its first bytes say (`what` names it in errors).
pub fn reader<'a>(input: impl Read + 'a, what: &str) -> Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let magic = input
        .fill_buf()
        .map_err(|e| Error::invalid(format!("reading {what}: {e}")))?;
    Ok(match detect(magic) {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| Error::invalid(format!("reading {what}: zstd: {e}")))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_compression_reads_back() {
        use std::io::Write;
        let data = b"hello, archive".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        let zs = zstd::stream::encode_all(&data[..], 1).unwrap();
        for (name, packed, kind) in [
            ("plain", data.clone(), Compression::None),
            ("gzip", gz.finish().unwrap(), Compression::Gzip),
            ("bzip2", bz.finish().unwrap(), Compression::Bzip2),
            ("xz", xz.finish().unwrap(), Compression::Xz),
            ("zstd", zs, Compression::Zstd),
        ] {
            assert_eq!(detect(&packed), kind, "{name}");
            let mut out = Vec::new();
            reader(&packed[..], name)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{name}");
        }
    }
}
