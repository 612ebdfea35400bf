//! Internal logs: the broker's own state (group coordinator in
//! `__consumer_offsets-0`, transaction coordinator in
//! `__transaction_state-0`) kept as key/value records in an ordinary
//! partition log, appended before a change is acknowledged and replayed in
//! order at start-up (later records win, a null value is a tombstone).
//!
//! Field encoding shared by both (big-endian): strings are i32 length +
//! UTF-8 (-1 = null; i32 because ids come from clients and may exceed
//! 32 KiB), bytes are i32 length + bytes.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;

use crate::log::batch::{encode_uncompressed, last_offset_in, PlainRecord};
use crate::log::partition::Isolation;
use crate::log::{now_ms, Partition};

pub fn put_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_i32(-1),
        Some(s) => {
            b.put_i32(s.len() as i32);
            b.put_slice(s.as_bytes());
        }
    }
}

pub fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub fn need(b: &Bytes, n: usize) -> Option<()> {
    (b.remaining() >= n).then_some(())
}

pub fn get_str(b: &mut Bytes) -> Option<Option<String>> {
    need(b, 4)?;
    let len = b.get_i32();
    if len < 0 {
        return Some(None);
    }
    need(b, len as usize)?;
    String::from_utf8(b.split_to(len as usize).to_vec())
        .ok()
        .map(Some)
}

pub fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    need(b, 4)?;
    let len = b.get_i32();
    if len < 0 {
        return Some(Bytes::new());
    }
    need(b, len as usize)?;
    Some(b.split_to(len as usize))
}

pub fn get_i8(b: &mut Bytes) -> Option<i8> {
    need(b, 1)?;
    Some(b.get_i8())
}

pub fn get_i16(b: &mut Bytes) -> Option<i16> {
    need(b, 2)?;
    Some(b.get_i16())
}

pub fn get_i32(b: &mut Bytes) -> Option<i32> {
    need(b, 4)?;
    Some(b.get_i32())
}

pub fn get_i64(b: &mut Bytes) -> Option<i64> {
    need(b, 8)?;
    Some(b.get_i64())
}

/// Encodes key/value records as one uncompressed batch.
pub fn encode_batch(records: Vec<(Bytes, Option<Bytes>)>, now_ms: i64) -> Bytes {
    let plain: Vec<PlainRecord> = records
        .into_iter()
        .map(|(key, value)| PlainRecord {
            key: Some(key),
            value,
            timestamp: now_ms,
        })
        .collect();
    encode_uncompressed(&plain, None)
}

/// Appends records to an internal log; an error means the change is not
/// durable and must not be acknowledged.
pub async fn append(
    log: &Partition,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> crate::log::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    log.append(&encode_batch(records, now), now)
        .await
        .map(|_| ())
}

/// Calls `f` with every record's key and value, in log order. Returns how
/// many records had no key or could not be decoded.
pub fn replay(log: &Partition, mut f: impl FnMut(Bytes, Option<Bytes>)) -> io::Result<usize> {
    let mut offset = log.offsets().log_start;
    let end = log.offsets().high_watermark;
    let mut skipped = 0;
    while offset < end {
        let read = log
            .read(offset, 1 << 20, true, Isolation::ReadUncommitted)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if read.records.is_empty() {
            break;
        }
        let next = last_offset_in(&read.records).map(|o| o + 1).unwrap_or(end);
        let mut data = read.records;
        while data.has_remaining() {
            let Ok(set) = RecordBatchDecoder::decode(&mut data) else {
                skipped += 1;
                break;
            };
            for r in set.records {
                match r.key {
                    Some(k) => f(k, r.value),
                    None => skipped += 1,
                }
            }
        }
        offset = next.max(offset + 1);
    }
    Ok(skipped)
}
