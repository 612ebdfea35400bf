//! Kafka's record compression codecs (the `attributes & 7` of a v2 batch),
//! with a bound on what decompression may produce: a compressed batch is
//! hostile input, and a few kilobytes of zeros can claim gigabytes.
//!
//! Framing, as Kafka's clients write it:
//!
//! - gzip: a gzip stream.
//! - snappy: xerial's framing (16-byte magic, then blocks of `u32 length |
//!   raw snappy block`), or a bare raw snappy block without the magic.
//! - lz4: the LZ4 frame format.
//! - zstd: a zstd frame.

use std::io::{self, Read, Write};

/// A batch's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    Unknown(i16),
    #[error("decompressed data exceeds {0} bytes")]
    TooLarge(usize),
    #[error("corrupt {codec} data: {message}")]
    Corrupt {
        codec: &'static str,
        message: String,
    },
}

impl Codec {
    /// From a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Codec, CodecError> {
        Ok(match attributes & 0x07 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(CodecError::Unknown(other)),
        })
    }

    /// From Kafka's names (`compression.type`, `--compression`);
    /// `uncompressed` and `none` are both no compression.
    pub fn from_name(name: &str) -> Option<Codec> {
        Some(match name {
            "none" | "uncompressed" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    fn corrupt(self, e: impl std::fmt::Display) -> CodecError {
        CodecError::Corrupt {
            codec: self.name(),
            message: e.to_string(),
        }
    }

    /// Compresses `data` into `out`.
    pub fn compress(self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Codec::None => out.extend_from_slice(data),
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                e.write_all(data)?;
                e.finish()?;
            }
            Codec::Snappy => {
                out.extend_from_slice(XERIAL_MAGIC);
                let mut encoder = snap::raw::Encoder::new();
                for block in data.chunks(XERIAL_BLOCK) {
                    let compressed = encoder.compress_vec(block).map_err(io::Error::other)?;
                    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                    out.extend_from_slice(&compressed);
                }
            }
            Codec::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(out);
                e.write_all(data)?;
                e.finish().map_err(io::Error::other)?;
            }
            Codec::Zstd => {
                let compressed = zstd::bulk::compress(data, ZSTD_LEVEL)?;
                out.extend_from_slice(&compressed);
            }
        }
        Ok(())
    }

    /// Decompresses `data`, failing if the result would exceed `limit` bytes.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::None => {
                if data.len() > limit {
                    return Err(CodecError::TooLarge(limit));
                }
                Ok(data.to_vec())
            }
            Codec::Gzip => read_bounded(flate2::read::GzDecoder::new(data), limit)
                .map_err(|e| self.fail(e, limit)),
            Codec::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit)
                .map_err(|e| self.fail(e, limit)),
            Codec::Zstd => {
                let decoder =
                    zstd::stream::read::Decoder::new(data).map_err(|e| self.corrupt(e))?;
                read_bounded(decoder, limit).map_err(|e| self.fail(e, limit))
            }
            Codec::Snappy => self.snappy_decompress(data, limit),
        }
    }

    fn fail(self, e: io::Error, limit: usize) -> CodecError {
        if e.kind() == io::ErrorKind::FileTooLarge {
            CodecError::TooLarge(limit)
        } else {
            self.corrupt(e)
        }
    }

    fn snappy_decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
        let mut decoder = snap::raw::Decoder::new();
        let mut block = |compressed: &[u8], out: &mut Vec<u8>| {
            let len = snap::raw::decompress_len(compressed).map_err(|e| self.corrupt(e))?;
            if out.len().saturating_add(len) > limit {
                return Err(CodecError::TooLarge(limit));
            }
            let start = out.len();
            out.resize(start + len, 0);
            decoder
                .decompress(compressed, &mut out[start..])
                .map_err(|e| self.corrupt(e))?;
            Ok(())
        };
        let mut out = Vec::new();
        let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC.as_slice()) else {
            // Raw snappy, as some clients write it.
            block(data, &mut out)?;
            return Ok(out);
        };
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| self.corrupt("truncated block length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            let body = tail
                .get(..len)
                .ok_or_else(|| self.corrupt("truncated block"))?;
            block(body, &mut out)?;
            rest = &tail[len..];
        }
        Ok(out)
    }
}

const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// xerial snappy-java's block size, as Kafka's clients use.
const XERIAL_BLOCK: usize = 32 * 1024;
/// Kafka's default zstd level.
const ZSTD_LEVEL: i32 = 3;

/// Reads all of `r`, failing with `FileTooLarge` once more than `limit`
/// bytes come out.
fn read_bounded(r: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(io::ErrorKind::FileTooLarge.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    #[test]
    fn round_trip_every_codec() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in ALL {
            let mut out = Vec::new();
            codec.compress(&data, &mut out).unwrap();
            assert_eq!(
                codec.decompress(&out, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
        }
    }

    /// 64 MiB of zeros compress to kilobytes; a small limit refuses them
    /// without allocating the whole output.
    #[test]
    fn bombs_are_refused_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        for codec in ALL {
            let mut out = Vec::new();
            codec.compress(&zeros, &mut out).unwrap();
            assert!(matches!(
                codec.decompress(&out, 1 << 20),
                Err(CodecError::TooLarge(_))
            ));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            assert!(codec.decompress(b"not compressed at all", 1 << 20).is_err());
        }
        assert!(Codec::from_attributes(7).is_err());
    }
}
