//! The v2 record batch header: parsing, validation on append, and the few
//! in-place patches the broker makes (base offset, leader epoch, LogAppendTime).
//!
//! Layout (big-endian), 61 bytes before the records:
//!
//! ```text
//!  0 baseOffset i64          (outside the CRC: patched on append)
//!  8 batchLength i32         (bytes after this field)
//! 12 partitionLeaderEpoch i32 (outside the CRC: patched on append)
//! 16 magic i8 = 2
//! 17 crc u32                 (CRC-32C of bytes 21..end)
//! 21 attributes i16          (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//! 23 lastOffsetDelta i32
//! 27 baseTimestamp i64
//! 35 maxTimestamp i64
//! 43 producerId i64
//! 51 producerEpoch i16
//! 53 baseSequence i32
//! 57 recordsCount i32
//! 61 records...
//! ```
//!
//! The records themselves are never decoded on the append or fetch path.

use crate::log::LogError;

/// Size of the fixed part of a v2 batch.
pub const HEADER_LEN: usize = 61;
/// Bytes of `baseOffset` + `batchLength`: enough to walk from batch to batch.
pub const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// The decoded fixed fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the fixed header. `b` must hold at least [`HEADER_LEN`] bytes.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[16] as i8,
            crc: be_i32(b, 17) as u32,
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Total bytes of the batch on disk and on the wire.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & 0x07
    }
}

/// CRC-32C over bytes 21..end, as stored in the header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Validates one batch as the whole `records` of a Produce partition (v3+
/// carries exactly one v2 batch per partition) and returns its header.
///
/// Order matters: size limits are checked before the CRC so an oversized
/// batch costs no checksum work.
pub fn validate_produce_batch(
    batch: &[u8],
    max_message_bytes: usize,
) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(batch)
        .ok_or(LogError::Corrupt("batch shorter than its 61-byte header"))?;
    if header.magic != 2 {
        return Err(LogError::InvalidRecord(
            "only magic v2 record batches are accepted",
        ));
    }
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(LogError::Corrupt("batchLength smaller than the header"));
    }
    let total = header.total_len();
    if total > batch.len() {
        return Err(LogError::Corrupt(
            "batch truncated: batchLength exceeds the bytes sent",
        ));
    }
    if total < batch.len() {
        return Err(LogError::InvalidRecord(
            "produce request must carry exactly one record batch per partition",
        ));
    }
    if total > max_message_bytes {
        return Err(LogError::MessageTooLarge {
            size: total,
            max: max_message_bytes,
        });
    }
    if compute_crc(batch) != header.crc {
        return Err(LogError::Corrupt("record batch CRC-32C mismatch"));
    }
    if header.records_count <= 0
        || header.last_offset_delta.checked_add(1) != Some(header.records_count)
    {
        return Err(LogError::InvalidRecord(
            "lastOffsetDelta + 1 must equal the record count",
        ));
    }
    if header.is_control() {
        return Err(LogError::InvalidRecord(
            "clients may not send control batches",
        ));
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Err(LogError::InvalidRecord(
            "transactional batch without a producer id",
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(LogError::InvalidRecord(
            "idempotent batch without a base sequence",
        ));
    }
    Ok(header)
}

/// Patches the fields outside the CRC: the assigned base offset and the
/// partition leader epoch.
pub fn assign_offsets(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Applies `message.timestamp.type=LogAppendTime` to a batch held as its
/// (patched copy of the) header and the untouched rest: sets the
/// timestamp-type attribute and maxTimestamp, then recomputes the CRC (both
/// are inside it) without copying the records.
pub fn set_log_append_time(header: &mut [u8; HEADER_LEN], rest: &[u8], now_ms: i64) {
    let attrs = be_i16(header, 21) | ATTR_TIMESTAMP_TYPE;
    header[21..23].copy_from_slice(&attrs.to_be_bytes());
    header[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[CRC_START..]), rest);
    header[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// One record for [`encode_uncompressed`].
#[derive(Debug, Clone, Default)]
pub struct PlainRecord {
    pub key: Option<bytes::Bytes>,
    pub value: Option<bytes::Bytes>,
    pub timestamp: i64,
}

/// Idempotent-producer fields of a batch: producer id, epoch, base sequence.
pub type ProducerFields = (i64, i16, i32);

/// Encodes records as ONE uncompressed v2 batch with relative offsets 0..n.
/// For the broker's own internal log, tests and benchmarks; the produce
/// path never encodes records.
pub fn encode_uncompressed(
    records: &[PlainRecord],
    producer: Option<ProducerFields>,
) -> bytes::Bytes {
    encode_plain(records, producer, false)
}

/// [`encode_uncompressed`] with the transactional attribute set, as a
/// transactional producer sends its batches.
pub fn encode_transactional(records: &[PlainRecord], producer: ProducerFields) -> bytes::Bytes {
    encode_plain(records, Some(producer), true)
}

fn encode_plain(
    records: &[PlainRecord],
    producer: Option<ProducerFields>,
    transactional: bool,
) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let (producer_id, epoch, base_seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while
            // offset - sequence is constant: -1 + i without a producer.
            sequence: base_seq.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("uncompressed batches always encode");
    buf.freeze()
}

/// A transaction marker: the single record of a control batch. Key:
/// version i16 = 0, type i16 (0 abort, 1 commit); value: version i16 = 0,
/// coordinator epoch i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Encodes the control batch the broker writes to end a transaction in a
/// partition: transactional + control attributes, base sequence -1.
pub fn encode_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: ControlMarker,
    timestamp: i64,
) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(marker.commit as i16).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.into()),
        value: Some(value.into()),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("uncompressed batches always encode");
    buf.freeze()
}

/// Decodes the marker from the bytes after a control batch's header (its
/// first record). `None` if they do not hold a marker.
pub fn parse_control_record(records: &[u8]) -> Option<ControlMarker> {
    // length varint, attributes i8, timestampDelta varlong, offsetDelta
    // varint, keyLength varint, key.
    let (_, n) = read_varint(records)?;
    let mut pos = n + 1;
    for _ in 0..2 {
        let (_, n) = read_varint(records.get(pos..)?)?;
        pos += n;
    }
    let (key_len, n) = read_varint(records.get(pos..)?)?;
    pos += n;
    if key_len < 4 {
        return None;
    }
    let key = records.get(pos..pos + 4)?;
    let kind = be_i16(key, 2);
    pos += key_len as usize;
    let (value_len, n) = read_varint(records.get(pos..)?)?;
    pos += n;
    let coordinator_epoch = if value_len >= 6 {
        be_i32(records.get(pos..pos + 6)?, 2)
    } else {
        -1
    };
    match kind {
        0 | 1 => Some(ControlMarker {
            commit: kind == 1,
            coordinator_epoch,
        }),
        _ => None,
    }
}

/// The last offset of the last whole batch in `records` (a run of batches).
pub fn last_offset_in(records: &[u8]) -> Option<i64> {
    let mut pos = 0;
    let mut last = None;
    while pos + HEADER_LEN <= records.len() {
        let h = BatchHeader::parse(&records[pos..])?;
        if pos + h.total_len() > records.len() {
            break;
        }
        last = Some(h.last_offset());
        pos += h.total_len();
    }
    last
}

/// Finds the first record in an uncompressed batch whose timestamp is at
/// least `target`, returning its offset and timestamp. `None` for compressed
/// batches (the broker never decompresses) or a malformed record section.
pub fn first_offset_with_timestamp(batch: &[u8], target: i64) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(batch)?;
    if header.compression_codec() != 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..header.records_count {
        let (len, n) = read_varint(batch.get(pos..)?)?;
        let start = pos + n;
        let body = batch.get(start..start + usize::try_from(len).ok()?)?;
        // attributes i8, then timestampDelta varlong, then offsetDelta varint.
        let (ts_delta, n1) = read_varint(body.get(1..)?)?;
        let (offset_delta, _) = read_varint(body.get(1 + n1..)?)?;
        if header.base_timestamp + ts_delta >= target {
            return Some((
                header.base_offset + offset_delta,
                header.base_timestamp + ts_delta,
            ));
        }
        pos = start + len as usize;
    }
    None
}

/// Zig-zag varint as used inside records. Returns (value, bytes read).
pub(crate) fn read_varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        raw |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// Builds an uncompressed v2 batch with one record per value, timestamps
    /// `base_ts + i`.
    pub fn make_batch(values: &[&[u8]], base_ts: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut body = vec![0u8];
            put_varint(&mut body, i as i64); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            put_varint(&mut body, -1); // null key
            put_varint(&mut body, v.len() as i64);
            body.extend_from_slice(v);
            put_varint(&mut body, 0); // no headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let n = values.len() as i32;
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&(base_ts + n as i64 - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn control_batches_round_trip() {
        for commit in [false, true] {
            let marker = ControlMarker {
                commit,
                coordinator_epoch: 7,
            };
            let b = encode_control_batch(42, 3, marker, 1000);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (42, 3, 1)
            );
            assert_eq!(compute_crc(&b), h.crc);
            assert_eq!(parse_control_record(&b[HEADER_LEN..]), Some(marker));
            assert_eq!(last_offset_in(&b), Some(0));
        }
        // A data record is not a marker.
        let data = make_batch(&[b"v"], 0);
        assert_eq!(parse_control_record(&data[HEADER_LEN..]), None);
    }

    #[test]
    fn valid_batch_parses() {
        let b = make_batch(&[b"a", b"bb", b"ccc"], 1000);
        let h = validate_produce_batch(&b, 1 << 20).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.total_len(), b.len());
    }

    #[test]
    fn corrupt_crc_is_rejected() {
        let mut b = make_batch(&[b"a"], 0);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            validate_produce_batch(&b, 1 << 20),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn offsets_and_epoch_are_outside_the_crc() {
        let mut b = make_batch(&[b"a"], 0);
        assign_offsets(&mut b, 42, 7);
        let h = validate_produce_batch(&b, 1 << 20).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 7));
    }

    #[test]
    fn inconsistent_count_and_control_and_size() {
        let mut b = make_batch(&[b"a", b"b"], 0);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produce_batch(&b, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));

        let mut c = make_batch(&[b"a"], 0);
        c[21..23].copy_from_slice(&ATTR_CONTROL.to_be_bytes());
        let crc = compute_crc(&c);
        c[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produce_batch(&c, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));

        // Transactional without a producer id.
        let mut t = make_batch(&[b"a"], 0);
        t[21..23].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
        let crc = compute_crc(&t);
        t[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produce_batch(&t, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));

        let d = make_batch(&[&[0u8; 500]], 0);
        assert!(matches!(
            validate_produce_batch(&d, 100),
            Err(LogError::MessageTooLarge { .. })
        ));

        let mut two = make_batch(&[b"a"], 0);
        two.extend_from_slice(&make_batch(&[b"b"], 0));
        assert!(matches!(
            validate_produce_batch(&two, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_produce_batch(&two[..30], 1 << 20),
            Err(LogError::Corrupt(_))
        ));
        assert!(matches!(
            validate_produce_batch(&make_batch(&[b"a"], 0)[..66], 1 << 20),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = make_batch(&[b"a", b"b"], 5);
        let mut head: [u8; HEADER_LEN] = b[..HEADER_LEN].try_into().unwrap();
        set_log_append_time(&mut head, &b[HEADER_LEN..], 99_999);
        b[..HEADER_LEN].copy_from_slice(&head);
        let h = validate_produce_batch(&b, 1 << 20).unwrap();
        assert_eq!(h.max_timestamp, 99_999);
        assert_ne!(h.attributes & ATTR_TIMESTAMP_TYPE, 0);
    }

    #[test]
    fn timestamp_search_inside_batch() {
        let mut b = make_batch(&[b"a", b"b", b"c"], 100);
        assign_offsets(&mut b, 10, 0);
        assert_eq!(first_offset_with_timestamp(&b, 0), Some((10, 100)));
        assert_eq!(first_offset_with_timestamp(&b, 101), Some((11, 101)));
        assert_eq!(first_offset_with_timestamp(&b, 102), Some((12, 102)));
        assert_eq!(first_offset_with_timestamp(&b, 103), None);
    }
}
