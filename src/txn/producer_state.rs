//! Per-partition producer state, as Kafka's `ProducerStateManager`: for each
//! producer id, its current epoch, the sequence ranges and offsets of its
//! last five batches, and the first offset of its open transaction.
//!
//! Rules for a batch from an idempotent producer (producerId >= 0):
//! - no state for the id: accept (state starts with this batch);
//! - older epoch: INVALID_PRODUCER_EPOCH;
//! - newer epoch: its first sequence must be 0;
//! - same epoch, sequence range equal to one of the cached five: a duplicate
//!   (a retry): answer success with the ORIGINAL offsets, append nothing;
//! - same epoch otherwise: the first sequence must follow the last one
//!   (wrapping after i32::MAX), else OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Transactions (checked after the sequence rules):
//! - a transactional batch may open a transaction here only if the
//!   transaction coordinator registered (producer id, epoch) for this
//!   partition (AddPartitionsToTxn, see [`ProducerStateTable::allow_txn`]);
//!   otherwise INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH if a newer epoch
//!   was registered. This is Kafka's KIP-890 verification: a late batch that
//!   arrives after its transaction's marker cannot open a transaction that
//!   no coordinator will ever close (an LSO stuck forever);
//! - a non-transactional batch from a producer with an open transaction
//!   here: INVALID_TXN_STATE;
//! - a marker (control batch) closes the producer's open transaction and
//!   raises its epoch to the marker's; a marker with an older epoch than the
//!   producer's is refused.
//!
//! The last stable offset (LSO) is the first offset of the oldest open
//! transaction ([`ProducerStateTable::first_unstable_offset`]).
//!
//! The table is rebuilt from batch headers and markers when a partition is
//! opened after a crash (the log carries producer id, epoch, sequences and
//! transaction markers), so it survives `kill -9` without any other file.
//! A clean shutdown also writes a snapshot ([`ProducerStateTable::encode`])
//! that the next start loads instead of reading every batch header.
//! Producers without an open transaction are forgotten
//! `producer-id-expiration-ms` after their last batch's timestamp.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::log::batch::BatchHeader;

/// Batches remembered per producer (Kafka's max in-flight for idempotence).
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// Max timestamp of the producer's last batch or marker.
    last_timestamp: i64,
    coordinator_epoch: i32,
    /// First offset of the open transaction in this partition.
    txn_first_offset: Option<i64>,
}

/// Outcome of checking a batch before append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or in sequence: append it.
    Append,
    /// A retry of an appended batch: return these offsets, append nothing.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
    OutOfOrder,
    InvalidEpoch,
    /// Transactional batch outside a registered transaction, or a
    /// non-transactional one inside an open transaction.
    InvalidTxnState,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub txn_start_offset: i64,
}

/// The last sequence of a batch, wrapping as producers do after i32::MAX.
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    ((first_seq as i64 + last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// First offset -> producer id of every open transaction.
    ongoing: BTreeMap<i64, i64>,
    /// Producer id -> epoch the coordinator registered this partition for.
    verified: HashMap<i64, i16>,
}

impl ProducerStateTable {
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let entry = self.producers.get(&h.producer_id);
        let seq = match entry {
            None => SequenceCheck::Append,
            Some(entry) => Self::check_sequence(entry, h),
        };
        if seq != SequenceCheck::Append {
            return seq;
        }
        let open_txn = entry.is_some_and(|e| e.txn_first_offset.is_some());
        if !h.is_transactional() {
            return if open_txn {
                SequenceCheck::InvalidTxnState
            } else {
                SequenceCheck::Append
            };
        }
        if open_txn && entry.is_some_and(|e| e.epoch == h.producer_epoch) {
            return SequenceCheck::Append;
        }
        match self.verified.get(&h.producer_id) {
            Some(&e) if e == h.producer_epoch => SequenceCheck::Append,
            Some(&e) if e > h.producer_epoch => SequenceCheck::InvalidEpoch,
            _ => SequenceCheck::InvalidTxnState,
        }
    }

    fn check_sequence(entry: &ProducerEntry, h: &BatchHeader) -> SequenceCheck {
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidEpoch;
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            };
        }
        match entry.batches.back() {
            Some(b) if h.base_sequence != next_sequence(b.last_seq) => SequenceCheck::OutOfOrder,
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended data batch (with its assigned offsets).
    pub fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        entry.last_timestamp = h.max_timestamp;
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// Producer id -> last offset of its last data batch (the cleaner
    /// keeps that batch, at least as a header, so the sequence survives).
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(pid, e)| e.batches.back().map(|b| (*pid, b.last_offset)))
            .collect()
    }

    /// Whether a marker from `producer_id` at `epoch` may be written: never
    /// with an epoch older than the producer's.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_none_or(|e| e.epoch <= epoch)
    }

    /// Records an appended marker: closes the producer's open transaction
    /// (returning its first offset, if one was open here) and moves the
    /// producer to the marker's epoch.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Option<i64> {
        self.verified.remove(&producer_id);
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        let first = entry.txn_first_offset.take()?;
        self.ongoing.remove(&first);
        Some(first)
    }

    /// Lets `producer_id` at `epoch` open a transaction in this partition.
    pub fn allow_txn(&mut self, producer_id: i64, epoch: i16) {
        self.verified.insert(producer_id, epoch);
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The first offset of the oldest open transaction of a producer other
    /// than `producer_id` (Kafka's LSO recorded with an aborted transaction).
    pub fn first_unstable_offset_except(&self, producer_id: i64) -> Option<i64> {
        self.ongoing
            .iter()
            .find(|(_, pid)| **pid != producer_id)
            .map(|(o, _)| *o)
    }

    /// Forgets producers idle for `expiration_ms` with no open transaction.
    /// Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let verified = &self.verified;
        self.producers.retain(|pid, e| {
            e.txn_first_offset.is_some()
                || verified.contains_key(pid)
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Every known producer, by id.
    pub fn describe(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerInfo {
                producer_id: *pid,
                epoch: e.epoch,
                last_sequence: e.batches.back().map(|b| b.last_seq).unwrap_or(-1),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Appends the table (without coordinator registrations, which the
    /// coordinator restores itself) to `out`:
    ///
    /// ```text
    /// count i32, per producer: id i64 | epoch i16 | last timestamp i64
    ///   | coordinator epoch i32 | txn first offset i64 (-1 none)
    ///   | batch count i8 | per batch: first seq i32 | last seq i32
    ///   | base offset i64 | last offset i64
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (pid, e) in &self.producers {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
    }

    /// Reads what [`Self::encode`] wrote from the front of `b`, advancing
    /// it; `None` if it is malformed.
    pub fn decode(b: &mut &[u8]) -> Option<ProducerStateTable> {
        fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = b.split_first_chunk::<N>()?;
            *b = rest;
            Some(*head)
        }
        let i16_ = |b: &mut &[u8]| take::<2>(b).map(i16::from_be_bytes);
        let i32_ = |b: &mut &[u8]| take::<4>(b).map(i32::from_be_bytes);
        let i64_ = |b: &mut &[u8]| take::<8>(b).map(i64::from_be_bytes);
        let mut t = ProducerStateTable::default();
        let count = i32_(b)?;
        for _ in 0..count.max(0) {
            let pid = i64_(b)?;
            let mut e = ProducerEntry {
                epoch: i16_(b)?,
                last_timestamp: i64_(b)?,
                coordinator_epoch: i32_(b)?,
                ..ProducerEntry::default()
            };
            let first = i64_(b)?;
            e.txn_first_offset = (first >= 0).then_some(first);
            let batches = take::<1>(b)?[0] as usize;
            if batches > CACHED_BATCHES {
                return None;
            }
            for _ in 0..batches {
                e.batches.push_back(BatchMeta {
                    first_seq: i32_(b)?,
                    last_seq: i32_(b)?,
                    base_offset: i64_(b)?,
                    last_offset: i64_(b)?,
                });
            }
            if let Some(first) = e.txn_first_offset {
                t.ongoing.insert(first, pid);
            }
            t.producers.insert(pid, e);
        }
        Some(t)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    fn txn(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        BatchHeader {
            attributes: 1 << 4,
            ..h(pid, epoch, seq, count, base)
        }
    }

    #[test]
    fn transactions_need_registration_and_end_with_markers() {
        let mut t = ProducerStateTable::default();
        // Not registered by AddPartitionsToTxn: refused.
        assert_eq!(
            t.check(&txn(5, 0, 0, 2, -1)),
            SequenceCheck::InvalidTxnState
        );
        t.allow_txn(5, 0);
        assert_eq!(t.check(&txn(5, 0, 0, 2, -1)), SequenceCheck::Append);
        t.update(&txn(5, 0, 0, 2, 10));
        assert_eq!(t.first_unstable_offset(), Some(10));
        // Later batches of the open transaction need no registration...
        assert_eq!(t.check(&txn(5, 0, 2, 1, -1)), SequenceCheck::Append);
        t.update(&txn(5, 0, 2, 1, 14));
        assert_eq!(
            t.first_unstable_offset(),
            Some(10),
            "LSO stays at the first offset"
        );
        // ...but a non-transactional batch from the same producer is refused.
        assert_eq!(t.check(&h(5, 0, 3, 1, -1)), SequenceCheck::InvalidTxnState);
        // A second producer's transaction.
        t.allow_txn(6, 3);
        t.update(&txn(6, 3, 0, 1, 12));
        assert_eq!(t.first_unstable_offset_except(5), Some(12));
        // The marker closes producer 5's transaction; the LSO moves to 12.
        assert!(t.check_marker(5, 0));
        assert_eq!(t.complete_txn(5, 0, 0, 99), Some(10));
        assert_eq!(t.first_unstable_offset(), Some(12));
        // After the marker, the same epoch cannot reopen without a new
        // registration (a late batch).
        assert_eq!(
            t.check(&txn(5, 0, 3, 1, -1)),
            SequenceCheck::InvalidTxnState
        );
        // A fencing marker at a higher epoch: older epochs are refused.
        assert_eq!(t.complete_txn(6, 4, 0, 99), Some(12));
        assert_eq!(t.first_unstable_offset(), None);
        assert!(!t.check_marker(6, 3));
        assert_eq!(t.check(&txn(6, 3, 1, 1, -1)), SequenceCheck::InvalidEpoch);
        t.allow_txn(6, 5);
        assert_eq!(t.check(&txn(6, 4, 0, 1, -1)), SequenceCheck::InvalidEpoch);
        assert_eq!(t.check(&txn(6, 5, 0, 1, -1)), SequenceCheck::Append);
        // A marker with no open transaction closes nothing.
        assert_eq!(t.complete_txn(7, 0, 0, 99), None);
        let described = t.describe();
        assert_eq!(described.len(), 3);
        assert_eq!(described[0].producer_id, 5);
        assert_eq!(described[0].last_sequence, 2);
        assert_eq!(described[0].txn_start_offset, -1);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.update(&h(3, 2, i * 2, 2, 100 + i as i64 * 2));
        }
        t.allow_txn(4, 1);
        t.update(&txn(4, 1, 0, 3, 200));
        t.complete_txn(5, 0, 9, 77);
        let mut buf = Vec::new();
        t.encode(&mut buf);
        let mut slice = &buf[..];
        let back = ProducerStateTable::decode(&mut slice).unwrap();
        assert!(slice.is_empty());
        assert_eq!(back.describe(), t.describe());
        assert_eq!(back.first_unstable_offset(), Some(200));
        // Same answers: a duplicate of a remembered batch, the next sequence.
        assert_eq!(
            back.check(&h(3, 2, 12, 2, -1)),
            SequenceCheck::Duplicate {
                base_offset: 112,
                last_offset: 113
            }
        );
        assert_eq!(back.check(&h(3, 2, 14, 1, -1)), SequenceCheck::Append);
        // Truncated or garbage input is refused, not misread.
        assert!(ProducerStateTable::decode(&mut &buf[..buf.len() - 3]).is_none());
    }

    #[test]
    fn idle_producers_expire_but_not_with_an_open_transaction() {
        let mut t = ProducerStateTable::default();
        let mut a = h(1, 0, 0, 1, 0);
        a.max_timestamp = 1_000;
        t.update(&a);
        t.allow_txn(2, 0);
        let mut b = txn(2, 0, 0, 1, 1);
        b.max_timestamp = 1_000;
        t.update(&b);
        assert_eq!(t.expire(1_500, 1_000), 0);
        assert_eq!(t.expire(2_000, 1_000), 1);
        assert_eq!(t.len(), 1, "the producer with an open transaction stays");
        // Expired: its next batch is accepted whatever its sequence.
        assert_eq!(t.check(&h(1, 0, 57, 1, -1)), SequenceCheck::Append);
    }

    #[test]
    fn duplicates_gaps_epochs_and_wrap() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(&h(7, 0, 0, 3, 0)), SequenceCheck::Append);
        t.update(&h(7, 0, 0, 3, 10));
        t.update(&h(7, 0, 3, 2, 13));
        assert_eq!(
            t.check(&h(7, 0, 0, 3, -1)),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(
            t.check(&h(7, 0, 3, 2, -1)),
            SequenceCheck::Duplicate {
                base_offset: 13,
                last_offset: 14
            }
        );
        assert_eq!(t.check(&h(7, 0, 6, 1, -1)), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(&h(7, 0, 5, 1, -1)), SequenceCheck::Append);
        assert_eq!(t.check(&h(7, 1, 3, 1, -1)), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(&h(7, 1, 0, 1, -1)), SequenceCheck::Append);
        t.update(&h(7, 1, 0, 1, 20));
        assert_eq!(t.check(&h(7, 0, 5, 1, -1)), SequenceCheck::InvalidEpoch);
        // Only five batches are remembered.
        for i in 1..=5 {
            t.update(&h(7, 1, i, 1, 20 + i as i64));
        }
        assert_eq!(t.check(&h(7, 1, 0, 1, -1)), SequenceCheck::OutOfOrder);
        // Wrap after i32::MAX.
        t.update(&h(9, 0, i32::MAX - 1, 2, 100));
        assert_eq!(t.check(&h(9, 0, 0, 1, -1)), SequenceCheck::Append);
        // Non-idempotent batches are never checked.
        assert_eq!(t.check(&h(-1, -1, -1, 1, -1)), SequenceCheck::Append);
    }
}
