//! Per-partition idempotence state, as Kafka's `ProducerStateManager`:
//! for each producer id, its current epoch and the sequence ranges and
//! offsets of its last five batches.
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
//! The table is rebuilt from batch headers when a partition is opened (the
//! log carries producer id, epoch and sequences), so it survives restarts
//! and `kill -9` without a separate file.

use std::collections::{HashMap, VecDeque};

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
}

impl ProducerStateTable {
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return SequenceCheck::Append;
        };
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

    /// Records an appended batch (with its assigned offsets).
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
