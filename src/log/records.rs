//! The records inside a v2 batch: decoding (decompressing first) and
//! encoding (compressing), with headers kept in order and duplicates kept
//! (KIP-82; the kafka-protocol crate's decoder collapses duplicate keys).
//!
//! The append and fetch paths never decode records. This serves the places
//! that must look inside a batch: the command-line client, and checks and
//! rewrites that Kafka defines on records.
//!
//! Record layout (varints are zig-zag; `len` -1 is null):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! | keyLen varint | key | valueLen varint | value
//! | headerCount varint | (headerKeyLen varint | key | headerValueLen varint | value)*
//! ```

use bytes::Bytes;

use crate::log::batch::{self, BatchHeader, HEADER_LEN};
use crate::log::compression::{Codec, CodecError};

/// One record, with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A record header: a UTF-8 key (kept as bytes) and a nullable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a v2 record batch")]
    NotV2,
    #[error("malformed record batch: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Decodes every record of one batch. `limit` bounds the decompressed size.
pub fn decode(batch: &[u8], limit: usize) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    let header = BatchHeader::parse(batch).ok_or(RecordError::Malformed("short header"))?;
    if header.magic != 2 {
        return Err(RecordError::NotV2);
    }
    let body = batch
        .get(HEADER_LEN..header.total_len())
        .ok_or(RecordError::Malformed("batch length runs past the data"))?;
    let codec = Codec::from_attributes(header.attributes)?;
    let plain = codec.decompress(body, limit)?;
    let plain = Bytes::from(plain);
    let count = usize::try_from(header.records_count)
        .map_err(|_| RecordError::Malformed("negative record count"))?;
    let mut records = Vec::with_capacity(count.min(plain.len()));
    let mut pos = 0usize;
    for _ in 0..count {
        let (len, n) = varint(&plain[pos..])?;
        pos += n;
        let len = usize::try_from(len).map_err(|_| RecordError::Malformed("negative length"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= plain.len())
            .ok_or(RecordError::Malformed("record runs past the batch"))?;
        records.push(decode_record(&header, &plain.slice(pos..end))?);
        pos = end;
    }
    Ok((header, records))
}

fn decode_record(h: &BatchHeader, b: &Bytes) -> Result<Record, RecordError> {
    let mut pos = 1; // attributes: unused in v2
    let (ts_delta, n) = varint(b.get(pos..).unwrap_or(&[]))?;
    pos += n;
    let (offset_delta, n) = varint(b.get(pos..).unwrap_or(&[]))?;
    pos += n;
    let key = nullable(b, &mut pos)?;
    let value = nullable(b, &mut pos)?;
    let (count, n) = varint(b.get(pos..).unwrap_or(&[]))?;
    pos += n;
    let count = usize::try_from(count).map_err(|_| RecordError::Malformed("header count"))?;
    let mut headers = Vec::with_capacity(count.min(b.len()));
    for _ in 0..count {
        let key = nullable(b, &mut pos)?.ok_or(RecordError::Malformed("null header key"))?;
        let value = nullable(b, &mut pos)?;
        headers.push(Header { key, value });
    }
    Ok(Record {
        offset: h.base_offset.wrapping_add(offset_delta),
        timestamp: h.base_timestamp.wrapping_add(ts_delta),
        key,
        value,
        headers,
    })
}

fn nullable(b: &Bytes, pos: &mut usize) -> Result<Option<Bytes>, RecordError> {
    let (len, n) = varint(b.get(*pos..).unwrap_or(&[]))?;
    *pos += n;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|e| *e <= b.len())
        .ok_or(RecordError::Malformed("field runs past the record"))?;
    let v = b.slice(*pos..end);
    *pos = end;
    Ok(Some(v))
}

fn varint(b: &[u8]) -> Result<(i64, usize), RecordError> {
    batch::read_varint(b).ok_or(RecordError::Malformed("bad varint"))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(out, -1),
        Some(v) => {
            put_varint(out, v.len() as i64);
            out.extend_from_slice(v);
        }
    }
}

/// The batch-level fields of a batch to encode.
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub codec: Codec,
    /// Other attribute bits (timestamp type, transactional, control).
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
    /// `None`: the last record's offset delta. Kafka keeps a batch's
    /// original last offset delta when records are removed from it.
    pub last_offset_delta: Option<i32>,
    /// `None`: the first record's timestamp. The cleaner stores a delete
    /// horizon here (KIP-534); record timestamps stay as they were.
    pub base_timestamp: Option<i64>,
    /// `None`: the largest record timestamp (CreateTime). LogAppendTime
    /// batches keep their append time.
    pub max_timestamp: Option<i64>,
}

impl BatchSpec {
    /// A plain batch (no producer) starting at offset 0.
    pub fn plain(codec: Codec) -> BatchSpec {
        BatchSpec {
            base_offset: 0,
            codec,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: 0,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: None,
        }
    }

    /// The fields of an existing batch, for rewriting it.
    pub fn of(h: &BatchHeader, codec: Codec) -> BatchSpec {
        BatchSpec {
            base_offset: h.base_offset,
            codec,
            attributes: h.attributes & !0x07,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            partition_leader_epoch: h.partition_leader_epoch,
            last_offset_delta: Some(h.last_offset_delta),
            base_timestamp: None,
            // LogAppendTime (attribute bit 3): the batch's time is the append time.
            max_timestamp: (h.attributes & 0x08 != 0).then_some(h.max_timestamp),
        }
    }
}

/// Encodes `records` (absolute offsets and timestamps) as one v2 batch
/// with a valid CRC. Without records (a batch the cleaner emptied) it is
/// the bare header, timestamps and last offset delta from `spec`.
pub fn encode(spec: &BatchSpec, records: &[Record]) -> std::io::Result<Vec<u8>> {
    let base_ts = spec
        .base_timestamp
        .unwrap_or_else(|| records.first().map(|r| r.timestamp).unwrap_or(-1));
    let max_ts = spec
        .max_timestamp
        .unwrap_or_else(|| records.iter().map(|r| r.timestamp).max().unwrap_or(-1));
    let mut plain = Vec::new();
    let mut body = Vec::new();
    for r in records {
        body.clear();
        body.push(0);
        put_varint(&mut body, r.timestamp.wrapping_sub(base_ts));
        put_varint(&mut body, r.offset.wrapping_sub(spec.base_offset));
        put_nullable(&mut body, r.key.as_deref());
        put_nullable(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for h in &r.headers {
            put_nullable(&mut body, Some(&h.key));
            put_nullable(&mut body, h.value.as_deref());
        }
        put_varint(&mut plain, body.len() as i64);
        plain.extend_from_slice(&body);
    }
    let mut out = vec![0u8; HEADER_LEN];
    spec.codec.compress(&plain, &mut out)?;
    let last_delta = spec.last_offset_delta.unwrap_or_else(|| {
        records
            .last()
            .map(|r| (r.offset - spec.base_offset) as i32)
            .unwrap_or(0)
    });
    let attributes = spec.attributes | spec.codec as i16;
    let batch_length = (out.len() - batch::LOG_OVERHEAD) as i32;
    out[0..8].copy_from_slice(&spec.base_offset.to_be_bytes());
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[12..16].copy_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    out[16] = 2;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[23..27].copy_from_slice(&last_delta.to_be_bytes());
    out[27..35].copy_from_slice(&base_ts.to_be_bytes());
    out[35..43].copy_from_slice(&max_ts.to_be_bytes());
    out[43..51].copy_from_slice(&spec.producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&spec.producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&spec.base_sequence.to_be_bytes());
    out[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        offset: i64,
        key: Option<&str>,
        value: Option<&str>,
        headers: &[(&str, Option<&str>)],
    ) -> Record {
        Record {
            offset,
            timestamp: 1_000 + offset,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: headers
                .iter()
                .map(|(k, v)| Header {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_with_duplicate_headers_nulls_and_every_codec() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let records = vec![
                rec(
                    10,
                    Some("k"),
                    Some("v"),
                    &[("a", Some("1")), ("a", Some("2")), ("b", None)],
                ),
                rec(11, None, None, &[]),
                rec(12, Some(""), Some("ünïcödé"), &[]),
            ];
            let mut spec = BatchSpec::plain(codec);
            spec.base_offset = 10;
            let bytes = encode(&spec, &records).unwrap();
            let h = batch::validate_produce_batch(&bytes, 1 << 20).expect("valid produce batch");
            assert_eq!((h.records_count, h.last_offset_delta), (3, 2));
            let (h2, decoded) = decode(&bytes, 1 << 20).unwrap();
            assert_eq!(h2.compression_codec(), codec as i16);
            assert_eq!(decoded, records, "{codec:?}");
        }
    }

    #[test]
    fn the_crates_batches_decode_the_same() {
        let b = batch::encode_uncompressed(
            &[batch::PlainRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                timestamp: 5,
            }],
            Some((7, 1, 3)),
        );
        let (h, r) = decode(&b, 1 << 20).unwrap();
        assert_eq!((h.producer_id, h.base_sequence), (7, 3));
        assert_eq!(
            r,
            vec![Record {
                offset: 0,
                timestamp: 5,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![],
            }]
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let mut b = encode(
            &BatchSpec::plain(Codec::None),
            &[rec(0, Some("k"), Some("v"), &[])],
        )
        .unwrap();
        let n = b.len();
        b[HEADER_LEN] = 0x7f; // record length far past the end
        assert!(decode(&b, 1 << 20).is_err());
        b.truncate(n - 2);
        assert!(decode(&b, 1 << 20).is_err());
    }
}
