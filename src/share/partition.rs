//! One share-partition (KIP-932): the in-flight window of a share group
//! over one topic partition, as a pure state machine with an injected
//! clock (times are arguments, never read here).
//!
//! ```text
//!   start (SPSO)                         end (SPEO + 1)
//!   |  Acknowledged | Acquired | Available | Archived | ... |  next offsets to read from the log
//! ```
//!
//! Record states (Kafka's `RecordState`): Available -> (acquire) Acquired
//! -> ACCEPT: Acknowledged | REJECT, GAP: Archived | RELEASE, lock expiry,
//! session close: Available again, or Archived when the delivery count has
//! reached the limit. Acknowledged and Archived are terminal; `start`
//! advances over a contiguous run of terminal offsets, which then leave the
//! window. Delivery counts: +1 on acquisition; kept by RELEASE and lock
//! expiry; a release because the owner's session closed gives the delivery
//! back (-1), as in Kafka.
//!
//! Acquired is never persisted (see [`SharePartition::snapshot`]): after a
//! restart acquired records are Available again.

use std::collections::BTreeMap;

/// Kafka's acknowledge types.
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Available,
    Acquired { owner: String, expires_at: i64 },
    Acknowledged,
    Archived,
}

impl State {
    fn is_terminal(&self) -> bool {
        matches!(self, State::Acknowledged | State::Archived)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub state: State,
    pub delivery_count: i16,
}

/// Why a record was archived by the group (dead-letter candidates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    /// A consumer REJECTed it.
    Rejected,
    /// It reached the delivery count limit.
    DeliveryLimit,
}

impl ArchiveReason {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveReason::Rejected => "rejected",
            ArchiveReason::DeliveryLimit => "delivery_count_limit",
        }
    }
}

/// A record the group archived that a dead-letter topic should receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archived {
    pub offset: i64,
    pub delivery_count: i16,
    pub reason: ArchiveReason,
}

/// An acquired range, as ShareFetch returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// An acknowledgement batch from ShareFetch or ShareAcknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// One type for the whole range, or one per offset.
    pub types: Vec<i8>,
}

/// A failed acknowledgement: Kafka's error code for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// INVALID_RECORD_STATE: not acquired by this member (expired, already
    /// acknowledged, never acquired, another member's) or not in the window.
    InvalidRecordState,
    /// INVALID_REQUEST: past the window's end, or a malformed batch.
    InvalidRequest,
}

/// What a new batch read from the log is, for [`SharePartition::add_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Deliverable records.
    Data,
    /// A transaction marker, or data of an aborted transaction under
    /// read_committed: archived at once, never delivered.
    Skip,
}

/// `(first, last, state, delivery count)`: a run of offsets in one state.
pub type Run = (i64, i64, i8, i16);
/// `(start, end, runs)`: what [`SharePartition::snapshot`] persists.
pub type Snapshot = (i64, i64, Vec<Run>);

#[derive(Debug, Clone)]
pub struct SharePartition {
    start: i64,
    end: i64,
    records: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share-partition starting at `start` (from `share.auto.offset.reset`
    /// or persisted state).
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            end: start,
            records: BTreeMap::new(),
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    /// The next offset to read from the log.
    pub fn end(&self) -> i64 {
        self.end
    }

    pub fn in_flight(&self) -> usize {
        self.records.len()
    }

    pub fn get(&self, offset: i64) -> Option<&InFlight> {
        self.records.get(&offset)
    }

    /// Offsets in the window that are Available or Acquired.
    pub fn count(&self, f: impl Fn(&State) -> bool) -> usize {
        self.records.values().filter(|r| f(&r.state)).count()
    }

    /// Room for new offsets in the window (`max_in_flight` locks).
    pub fn room(&self, max_in_flight: usize) -> usize {
        max_in_flight.saturating_sub((self.end - self.start).max(0) as usize)
    }

    /// Adds the offsets `[first, last]` of a batch read from the log at
    /// `end`: Available, or archived at once for [`BatchKind::Skip`].
    pub fn add_batch(&mut self, first: i64, last: i64, kind: BatchKind) {
        let from = first.max(self.end);
        for o in from..=last {
            let state = match kind {
                BatchKind::Data => State::Available,
                BatchKind::Skip => State::Archived,
            };
            self.records.insert(
                o,
                InFlight {
                    state,
                    delivery_count: 0,
                },
            );
        }
        self.end = self.end.max(last + 1);
        self.advance_start();
    }

    /// Offsets before `log_start` are gone from the log: Available ones are
    /// archived and the window moves.
    pub fn move_start_to(&mut self, log_start: i64) {
        if log_start <= self.start {
            return;
        }
        self.records.retain(|o, _| *o >= log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
    }

    /// Acquires Available offsets (oldest first) for `member`, at most
    /// `max_records` (rounded up to `whole` batch boundaries given as
    /// `(first, last)` ranges). Returns the ranges with one delivery count
    /// each.
    pub fn acquire(
        &mut self,
        member: &str,
        max_records: usize,
        lock_ms: i64,
        now: i64,
    ) -> Vec<Acquired> {
        let mut out: Vec<Acquired> = Vec::new();
        let mut taken = 0usize;
        for (o, r) in self.records.iter_mut() {
            if taken >= max_records {
                break;
            }
            if r.state != State::Available {
                continue;
            }
            r.delivery_count = r.delivery_count.saturating_add(1);
            r.state = State::Acquired {
                owner: member.to_string(),
                expires_at: now.saturating_add(lock_ms),
            };
            taken += 1;
            match out.last_mut() {
                Some(a) if a.last_offset + 1 == *o && a.delivery_count == r.delivery_count => {
                    a.last_offset = *o;
                }
                _ => out.push(Acquired {
                    first_offset: *o,
                    last_offset: *o,
                    delivery_count: r.delivery_count,
                }),
            }
        }
        out
    }

    /// Back to Available, or Archived at the delivery limit.
    fn make_available(r: &mut InFlight, o: i64, limit: i16, archived: &mut Vec<Archived>) {
        if r.delivery_count >= limit {
            r.state = State::Archived;
            archived.push(Archived {
                offset: o,
                delivery_count: r.delivery_count,
                reason: ArchiveReason::DeliveryLimit,
            });
        } else {
            r.state = State::Available;
        }
    }

    /// Applies acknowledgements from `member`, all or nothing: the first
    /// invalid offset fails the whole partition and nothing changes.
    /// Returns the records archived by REJECT or by the delivery limit.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        limit: i16,
    ) -> Result<Vec<Archived>, AckError> {
        let mut next = self.records.clone();
        let mut archived = Vec::new();
        for b in batches {
            if b.last_offset < b.first_offset {
                return Err(AckError::InvalidRequest);
            }
            let span = (b.last_offset - b.first_offset + 1) as usize;
            if b.types.len() != 1 && b.types.len() != span {
                return Err(AckError::InvalidRequest);
            }
            if b.last_offset < self.start {
                continue; // already complete: success
            }
            if b.last_offset >= self.end {
                return Err(AckError::InvalidRequest);
            }
            for o in b.first_offset.max(self.start)..=b.last_offset {
                let t = if b.types.len() == 1 {
                    b.types[0]
                } else {
                    b.types[(o - b.first_offset) as usize]
                };
                let r = next.get_mut(&o).ok_or(AckError::InvalidRecordState)?;
                // A GAP for an offset with no deliverable record (a marker,
                // a compacted hole) that is already terminal is fine.
                if t == ACK_GAP && r.state.is_terminal() {
                    continue;
                }
                match &r.state {
                    State::Acquired { owner, .. } if owner == member => {}
                    _ => return Err(AckError::InvalidRecordState),
                }
                match t {
                    ACK_ACCEPT => r.state = State::Acknowledged,
                    ACK_GAP => r.state = State::Archived,
                    ACK_REJECT => {
                        r.state = State::Archived;
                        archived.push(Archived {
                            offset: o,
                            delivery_count: r.delivery_count,
                            reason: ArchiveReason::Rejected,
                        });
                    }
                    ACK_RELEASE => Self::make_available(r, o, limit, &mut archived),
                    _ => return Err(AckError::InvalidRequest),
                }
            }
        }
        self.records = next;
        self.advance_start();
        Ok(archived)
    }

    /// Releases every record `member` holds: its session closed (the
    /// deliveries are given back, as Kafka does) or its locks expired.
    pub fn release_member(&mut self, member: &str) -> usize {
        let mut n = 0;
        for r in self.records.values_mut() {
            if matches!(&r.state, State::Acquired { owner, .. } if owner == member) {
                r.delivery_count = (r.delivery_count - 1).max(0);
                r.state = State::Available;
                n += 1;
            }
        }
        n
    }

    /// Ends acquisition locks that expired at `now`; returns how many and
    /// the records archived because they reached the delivery limit.
    pub fn expire_locks(&mut self, now: i64, limit: i16) -> (usize, Vec<Archived>) {
        let mut archived = Vec::new();
        let mut n = 0;
        for (o, r) in self.records.iter_mut() {
            if matches!(r.state, State::Acquired { expires_at, .. } if expires_at <= now) {
                Self::make_available(r, *o, limit, &mut archived);
                n += 1;
            }
        }
        self.advance_start();
        (n, archived)
    }

    /// The earliest lock expiry, for the timer.
    pub fn next_expiry(&self) -> Option<i64> {
        self.records
            .values()
            .filter_map(|r| match r.state {
                State::Acquired { expires_at, .. } => Some(expires_at),
                _ => None,
            })
            .min()
    }

    fn advance_start(&mut self) {
        while let Some((o, r)) = self.records.first_key_value() {
            if *o != self.start || !r.state.is_terminal() {
                break;
            }
            self.records.pop_first();
            self.start += 1;
        }
        if self.records.is_empty() {
            self.start = self.start.max(self.end);
        }
    }

    /// The durable part: start offset and, for each offset in the window,
    /// its state (Available for Acquired) and delivery count, run-length
    /// encoded as `(first, last, state, count)` with Kafka's state ids
    /// (0 Available, 2 Acknowledged, 4 Archived).
    pub fn snapshot(&self) -> Snapshot {
        let mut runs: Vec<Run> = Vec::new();
        for (o, r) in &self.records {
            let s = match r.state {
                State::Available | State::Acquired { .. } => 0,
                State::Acknowledged => 2,
                State::Archived => 4,
            };
            match runs.last_mut() {
                Some(run) if run.1 + 1 == *o && run.2 == s && run.3 == r.delivery_count => {
                    run.1 = *o
                }
                _ => runs.push((*o, *o, s, r.delivery_count)),
            }
        }
        (self.start, self.end, runs)
    }

    /// Rebuilds from [`Self::snapshot`]: acquired records come back Available.
    pub fn restore(start: i64, end: i64, runs: &[Run]) -> SharePartition {
        let mut p = SharePartition::new(start);
        p.end = end.max(start);
        for (first, last, s, count) in runs {
            for o in (*first).max(start)..=*last {
                let state = match s {
                    2 => State::Acknowledged,
                    4 => State::Archived,
                    _ => State::Available,
                };
                p.records.insert(
                    o,
                    InFlight {
                        state,
                        delivery_count: *count,
                    },
                );
            }
        }
        p.advance_start();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(first: i64, last: i64, t: i8) -> AckBatch {
        AckBatch {
            first_offset: first,
            last_offset: last,
            types: vec![t],
        }
    }

    fn filled(n: i64) -> SharePartition {
        let mut p = SharePartition::new(0);
        p.add_batch(0, n - 1, BatchKind::Data);
        p
    }

    #[test]
    fn competing_members_split_and_accept_moves_the_start() {
        let mut p = filled(10);
        let a = p.acquire("a", 4, 1000, 0);
        let b = p.acquire("b", 100, 1000, 0);
        assert_eq!(
            a,
            vec![Acquired {
                first_offset: 0,
                last_offset: 3,
                delivery_count: 1
            }]
        );
        assert_eq!(
            b,
            vec![Acquired {
                first_offset: 4,
                last_offset: 9,
                delivery_count: 1
            }]
        );
        assert!(p.acquire("c", 100, 1000, 0).is_empty(), "nothing left");
        // b cannot ack a's records; a partition-wide failure changes nothing.
        assert_eq!(
            p.acknowledge("b", &[ack(0, 5, ACK_ACCEPT)], 5),
            Err(AckError::InvalidRecordState)
        );
        assert_eq!(
            p.get(4).unwrap().state,
            State::Acquired {
                owner: "b".into(),
                expires_at: 1000
            }
        );
        p.acknowledge("a", &[ack(0, 3, ACK_ACCEPT)], 5).unwrap();
        assert_eq!(p.start(), 4);
        // Acks below the start succeed silently; past the end are invalid.
        assert_eq!(p.acknowledge("a", &[ack(0, 1, ACK_ACCEPT)], 5), Ok(vec![]));
        assert_eq!(
            p.acknowledge("b", &[ack(9, 10, ACK_ACCEPT)], 5),
            Err(AckError::InvalidRequest)
        );
        // Twice is invalid: already acknowledged.
        p.acknowledge("b", &[ack(4, 9, ACK_ACCEPT)], 5).unwrap();
        assert_eq!(p.start(), 10);
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn release_redelivers_and_the_limit_archives() {
        let mut p = filled(1);
        for attempt in 1..=3 {
            let got = p.acquire("a", 10, 1000, 0);
            assert_eq!(got[0].delivery_count, attempt);
            let archived = p.acknowledge("a", &[ack(0, 0, ACK_RELEASE)], 3).unwrap();
            if attempt < 3 {
                assert!(archived.is_empty());
                assert_eq!(p.get(0).unwrap().state, State::Available);
            } else {
                assert_eq!(
                    archived,
                    vec![Archived {
                        offset: 0,
                        delivery_count: 3,
                        reason: ArchiveReason::DeliveryLimit
                    }]
                );
            }
        }
        assert!(p.acquire("a", 10, 1000, 0).is_empty());
        assert_eq!(p.start(), 1, "archived is terminal");
    }

    #[test]
    fn lock_expiry_redelivers_to_others_and_late_acks_fail() {
        let mut p = filled(2);
        p.acquire("stuck", 10, 3000, 1000);
        assert_eq!(p.next_expiry(), Some(4000));
        assert_eq!(p.expire_locks(3999, 5).0, 0);
        assert_eq!(p.expire_locks(4000, 5).0, 2);
        let again = p.acquire("other", 10, 3000, 4001);
        assert_eq!(again[0].delivery_count, 2);
        assert_eq!(
            p.acknowledge("stuck", &[ack(0, 1, ACK_ACCEPT)], 5),
            Err(AckError::InvalidRecordState)
        );
    }

    #[test]
    fn reject_archives_for_the_dlq_and_gaps_and_markers_move_the_start() {
        let mut p = SharePartition::new(0);
        p.add_batch(0, 1, BatchKind::Data);
        p.add_batch(2, 2, BatchKind::Skip); // a commit marker
        p.add_batch(3, 3, BatchKind::Data);
        let got = p.acquire("a", 10, 1000, 0);
        assert_eq!(got.len(), 2, "split around the marker");
        let per_offset = AckBatch {
            first_offset: 0,
            last_offset: 3,
            types: vec![ACK_ACCEPT, ACK_REJECT, ACK_GAP, ACK_ACCEPT],
        };
        let archived = p.acknowledge("a", &[per_offset], 5).unwrap();
        assert_eq!(
            archived,
            vec![Archived {
                offset: 1,
                delivery_count: 1,
                reason: ArchiveReason::Rejected
            }]
        );
        assert_eq!(p.start(), 4);
    }

    #[test]
    fn session_close_gives_deliveries_back() {
        let mut p = filled(3);
        p.acquire("a", 2, 1000, 0);
        assert_eq!(p.release_member("a"), 2);
        assert_eq!(p.get(0).unwrap().delivery_count, 0);
        assert_eq!(p.acquire("b", 10, 1000, 0)[0].delivery_count, 1);
    }

    #[test]
    fn snapshot_restore_keeps_terminal_states_and_counts() {
        let mut p = filled(6);
        p.acquire("a", 6, 1000, 0);
        p.acknowledge(
            "a",
            &[
                ack(1, 1, ACK_ACCEPT),
                ack(2, 2, ACK_RELEASE),
                ack(4, 4, ACK_REJECT),
            ],
            5,
        )
        .unwrap();
        let (start, end, runs) = p.snapshot();
        let r = SharePartition::restore(start, end, &runs);
        assert_eq!((r.start(), r.end()), (0, 6));
        assert_eq!(
            r.get(0).unwrap().state,
            State::Available,
            "acquired comes back available"
        );
        assert_eq!(r.get(1).unwrap().state, State::Acknowledged);
        assert_eq!(r.get(2).unwrap().delivery_count, 1);
        assert_eq!(r.get(4).unwrap().state, State::Archived);
    }

    #[test]
    fn window_room_and_log_start_moves() {
        let mut p = filled(5);
        assert_eq!(p.room(8), 3);
        p.move_start_to(3);
        assert_eq!((p.start(), p.in_flight()), (3, 2));
    }
}
