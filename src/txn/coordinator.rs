//! The transaction coordinator, as Kafka's `TransactionCoordinator`: maps
//! each transactional id to a producer id and epoch, tracks the partitions
//! and groups of its open transaction, and ends transactions by writing
//! commit/abort markers into every one of them.
//!
//! States: `Empty` -> (AddPartitionsToTxn / AddOffsetsToTxn) `Ongoing` ->
//! (EndTxn) `PrepareCommit` | `PrepareAbort` -> (markers written)
//! `CompleteCommit` | `CompleteAbort` -> next transaction `Ongoing`.
//!
//! Durability: every transition is appended to the internal log
//! `__transaction_state-0` before it is acted on or acknowledged. A
//! `Prepare*` state found at start-up (a crash between the decision and the
//! last marker) is completed by the first tick: markers are written again
//! (a second marker for a closed transaction changes nothing) and the
//! outcome is the one decided before the crash. An `Ongoing` transaction
//! keeps its start time and is aborted by the timeout if its producer does
//! not come back.
//!
//! Fencing: InitProducerId for a transactional id bumps the epoch. If a
//! transaction was open, it is first aborted with markers at an epoch above
//! the old producer's, so the zombie's later batches get
//! INVALID_PRODUCER_EPOCH from the partitions and its coordinator requests
//! PRODUCER_FENCED. A partition only accepts transactional batches from the
//! (producer id, epoch) that AddPartitionsToTxn registered there
//! ([`Partition::allow_txn`]), so nothing can reopen a transaction after
//! its marker.
//!
//! Locking: one tokio mutex over all transactional ids. It is held across
//! marker writes (page-cache appends, or fsyncs on fsync-before-ack
//! topics) so no request observes a half-written outcome. Lock order:
//! transaction coordinator, then group coordinator, then a partition.
//!
//! Record layout in the internal log (see `log::internal` for fields):
//!
//! ```text
//! key:   i16 0 | transactional id str
//! value: i16 0 | producer id i64 | epoch i16 | last epoch i16 | timeout ms i32
//!        | state i8 | txn start ms i64 | last update ms i64
//!        | partition count i32 | (topic str | partition i32)* | group count i32 | group str*
//! ```
//!
//! A null value is a tombstone (the id expired).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use tokio::sync::Mutex;

use crate::group::GroupCoordinator;
use crate::log::batch::ControlMarker;
use crate::log::internal::{self, get_i16, get_i32, get_i64, get_i8, get_str, put_str};
use crate::log::{now_ms, LogError, LogManager, Partition};
use crate::txn::ProducerIdAllocator;

/// Settings of the transaction coordinator.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// Largest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i64,
    /// Forget a transactional id idle (no open transaction) this long.
    pub id_expiration_ms: i64,
}

/// A transactional id's state (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction yet for this epoch (after InitProducerId).
    /// AddPartitionsToTxn / AddOffsetsToTxn -> `Ongoing`; EndTxn is
    /// INVALID_TXN_STATE; InitProducerId bumps the epoch and stays here.
    Empty,
    /// Partitions or groups were added; the timeout clock runs. More may be
    /// added; TxnOffsetCommit is accepted for added groups; EndTxn ->
    /// `Prepare*`; InitProducerId or the timeout abort it with a bumped
    /// epoch (fencing) -> `PrepareAbort`.
    Ongoing,
    /// Commit decided and persisted; markers being written. Requests get
    /// CONCURRENT_TRANSACTIONS (a retried commit too) -> `CompleteCommit`.
    PrepareCommit,
    /// Abort decided and persisted; markers being written -> `CompleteAbort`.
    PrepareAbort,
    /// Every marker written. A retried commit succeeds, an abort is
    /// INVALID_TXN_STATE; adding partitions starts the next transaction.
    CompleteCommit,
    /// As `CompleteCommit`, for an abort.
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka's admin APIs use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn code(self) -> i8 {
        self as i8
    }

    fn from_code(c: i8) -> Option<TxnState> {
        Some(match c {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last bump (-1 if none): a retried
    /// InitProducerId that carries it gets the current epoch back.
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    /// When the open transaction began (-1 if none).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(self.producer_id);
        b.put_i16(self.epoch);
        b.put_i16(self.last_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.state.code());
        b.put_i64(self.start_ms);
        b.put_i64(self.last_update_ms);
        b.put_i32(self.partitions.len() as i32);
        for (t, p) in &self.partitions {
            put_str(&mut b, Some(t));
            b.put_i32(*p);
        }
        b.put_i32(self.groups.len() as i32);
        for g in &self.groups {
            put_str(&mut b, Some(g));
        }
        b.freeze()
    }

    fn decode(mut v: Bytes) -> Option<TxnMetadata> {
        let _version = get_i16(&mut v)?;
        let mut m = TxnMetadata {
            producer_id: get_i64(&mut v)?,
            epoch: get_i16(&mut v)?,
            last_epoch: get_i16(&mut v)?,
            timeout_ms: get_i32(&mut v)?,
            state: TxnState::from_code(get_i8(&mut v)?)?,
            start_ms: get_i64(&mut v)?,
            last_update_ms: get_i64(&mut v)?,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
        };
        for _ in 0..get_i32(&mut v)?.max(0) {
            let t = get_str(&mut v)??;
            m.partitions.insert((t, get_i32(&mut v)?));
        }
        for _ in 0..get_i32(&mut v)?.max(0) {
            m.groups.insert(get_str(&mut v)??);
        }
        Some(m)
    }
}

fn key_of(transactional_id: &str) -> Bytes {
    let mut k = BytesMut::new();
    k.put_i16(0);
    put_str(&mut k, Some(transactional_id));
    k.freeze()
}

fn decode_key(mut k: Bytes) -> Option<String> {
    if k.remaining() < 2 || k.get_i16() != 0 {
        return None;
    }
    get_str(&mut k)?
}

/// An error of a coordinator request, before per-version mapping.
pub type TxnResult<T> = Result<T, ResponseError>;

/// A transactional producer as requests name it.
#[derive(Debug, Clone, Copy)]
pub struct TxnProducer<'a> {
    pub id: &'a str,
    pub producer_id: i64,
    pub epoch: i16,
}

/// The other components a transaction touches.
#[derive(Clone, Copy)]
pub struct Participants<'a> {
    pub logs: &'a LogManager,
    pub groups: &'a GroupCoordinator,
    pub producer_ids: &'a ProducerIdAllocator,
}

pub struct TxnCoordinator {
    cfg: TxnConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    txns: HashMap<String, TxnMetadata>,
    log: Arc<Partition>,
}

/// Epochs stop short of i16::MAX; the next bump takes a new producer id.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl Inner {
    /// Persists `meta` for `id` and makes it the current state.
    async fn store(&mut self, id: &str, meta: TxnMetadata) -> TxnResult<()> {
        internal::append(&self.log, vec![(key_of(id), Some(meta.encode()))])
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist transaction state");
                ResponseError::CoordinatorNotAvailable
            })?;
        self.txns.insert(id.to_string(), meta);
        Ok(())
    }

    /// The id must map to this producer id, at this epoch.
    fn check_identity(&self, txn: TxnProducer<'_>) -> TxnResult<&TxnMetadata> {
        let TxnProducer {
            id,
            producer_id,
            epoch,
        } = txn;
        let meta = self
            .txns
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(meta)
    }

    /// The checks shared by AddPartitionsToTxn, AddOffsetsToTxn and
    /// TxnOffsetCommit: the producer, and no outcome being written.
    fn check_producer(&self, txn: TxnProducer<'_>) -> TxnResult<&TxnMetadata> {
        let meta = self.check_identity(txn)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(meta)
    }

    /// Stores `next` (`meta` with partitions or groups added) if anything
    /// changed; a transaction that was not open becomes `Ongoing` and its
    /// timeout clock starts.
    async fn extend_txn(
        &mut self,
        id: &str,
        meta: &TxnMetadata,
        mut next: TxnMetadata,
    ) -> TxnResult<()> {
        if next.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.start_ms = now_ms();
        }
        if next == *meta {
            return Ok(());
        }
        next.last_update_ms = now_ms();
        self.store(id, next).await
    }

    /// Ends `id`'s transaction: persist the decision, write a marker into
    /// every partition and group of it, persist the completion. On a marker
    /// failure the state stays `Prepare*` and the tick retries.
    async fn complete(&mut self, id: &str, commit: bool, p: Participants<'_>) -> TxnResult<()> {
        let mut meta = self
            .txns
            .get(id)
            .cloned()
            .ok_or(ResponseError::InvalidTxnState)?;
        let now = now_ms();
        let prepare = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != prepare {
            meta.state = prepare;
            meta.last_update_ms = now;
            self.store(id, meta.clone()).await?;
        }
        let marker = ControlMarker {
            commit,
            coordinator_epoch: 0,
        };
        for (topic, index) in &meta.partitions {
            let Some(partition) = p.logs.topic(topic).and_then(|t| t.partition(*index)) else {
                continue; // deleted since: nothing left to mark
            };
            match partition
                .write_marker(meta.producer_id, meta.epoch, marker, now)
                .await
            {
                Ok(_) => {}
                Err(LogError::InvalidProducerEpoch { .. }) => {
                    // The partition already saw a newer epoch of this
                    // producer id: this transaction was ended before.
                    tracing::warn!(transactional_id = id, partition = %format!("{topic}-{index}"), "marker skipped: newer producer epoch in partition");
                }
                Err(e) => {
                    tracing::error!(transactional_id = id, partition = %format!("{topic}-{index}"), error = %e, "cannot write transaction marker; will retry");
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
            }
        }
        for group in &meta.groups {
            p.groups
                .complete_txn(group, meta.producer_id, commit)
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        }
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.groups.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now_ms();
        self.store(id, meta).await
    }

    /// Aborts `id`'s open transaction at a bumped epoch, fencing the
    /// current producer.
    async fn fence_and_abort(&mut self, id: &str, p: Participants<'_>) -> TxnResult<()> {
        let mut meta = self
            .txns
            .get(id)
            .cloned()
            .ok_or(ResponseError::InvalidTxnState)?;
        meta.last_epoch = -1;
        // Never past i16::MAX: InitProducerId takes a new producer id
        // before the epoch gets near it.
        meta.epoch = meta.epoch.saturating_add(1);
        meta.state = TxnState::PrepareAbort;
        meta.last_update_ms = now_ms();
        self.store(id, meta).await?;
        self.complete(id, false, p).await
    }
}

impl TxnCoordinator {
    /// Replays the internal log. Open transactions register their
    /// partitions again so their producers can go on writing.
    pub fn open(
        log: Arc<Partition>,
        logs: &LogManager,
        cfg: TxnConfig,
    ) -> io::Result<TxnCoordinator> {
        let mut txns = HashMap::new();
        let skipped = internal::replay(&log, |k, v| {
            let Some(id) = decode_key(k) else { return };
            match v.and_then(TxnMetadata::decode) {
                Some(m) => txns.insert(id, m),
                None => txns.remove(&id),
            };
        })?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "undecodable records in the transaction log were ignored"
            );
        }
        for m in txns.values().filter(|m| m.state == TxnState::Ongoing) {
            for (t, i) in &m.partitions {
                if let Some(p) = logs.topic(t).and_then(|t| t.partition(*i)) {
                    p.allow_txn(m.producer_id, m.epoch);
                }
            }
        }
        tracing::info!(
            transactional_ids = txns.len(),
            "transaction coordinator loaded"
        );
        Ok(TxnCoordinator {
            cfg,
            inner: Mutex::new(Inner { txns, log }),
        })
    }

    /// InitProducerId with a transactional id. `expected` is the
    /// (producer id, epoch) a producer that already had one sends (KIP-360).
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        p: Participants<'_>,
    ) -> TxnResult<(i64, i16)> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms as i64 > self.cfg.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        let Some(meta) = inner.txns.get(id).cloned() else {
            let producer_id = p.producer_ids.next().map_err(|e| {
                tracing::error!(error = %e, "cannot persist producer id block");
                ResponseError::KafkaStorageError
            })?;
            let meta = TxnMetadata {
                producer_id,
                epoch: 0,
                last_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
            };
            inner.store(id, meta).await?;
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected {
            if pid != meta.producer_id {
                return Err(ResponseError::ProducerFenced);
            }
            if epoch == meta.last_epoch && meta.state == TxnState::Empty {
                // A retry of the bump that already happened.
                return Ok((meta.producer_id, meta.epoch));
            }
            if epoch != meta.epoch {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => inner.fence_and_abort(id, p).await?,
            _ => {}
        }
        let mut meta = inner.txns.get(id).cloned().expect("present");
        if epoch_exhausted(meta.epoch) {
            meta.producer_id = p
                .producer_ids
                .next()
                .map_err(|_| ResponseError::KafkaStorageError)?;
            meta.epoch = 0;
            meta.last_epoch = -1;
        } else {
            meta.last_epoch = meta.epoch;
            meta.epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.last_update_ms = now;
        let result = (meta.producer_id, meta.epoch);
        inner.store(id, meta).await?;
        Ok(result)
    }

    /// AddPartitionsToTxn. Per-partition codes: if any partition is
    /// unknown, it gets UNKNOWN_TOPIC_OR_PARTITION, the others
    /// OPERATION_NOT_ATTEMPTED, and nothing is added.
    pub async fn add_partitions(
        &self,
        txn: TxnProducer<'_>,
        partitions: Vec<(String, i32)>,
        p: Participants<'_>,
    ) -> TxnResult<Vec<((String, i32), Option<ResponseError>)>> {
        let TxnProducer {
            id, producer_id, ..
        } = txn;
        let mut inner = self.inner.lock().await;
        let meta = inner.check_producer(txn)?.clone();
        let resolved: Vec<_> = partitions
            .into_iter()
            .map(|(t, i)| {
                let part = p.logs.topic(&t).and_then(|topic| topic.partition(i));
                ((t, i), part)
            })
            .collect();
        if resolved.iter().any(|(_, part)| part.is_none()) {
            return Ok(resolved
                .into_iter()
                .map(|(tp, part)| {
                    let e = if part.is_none() {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        ResponseError::OperationNotAttempted
                    };
                    (tp, Some(e))
                })
                .collect());
        }
        let mut next = meta.clone();
        next.partitions
            .extend(resolved.iter().map(|(tp, _)| tp.clone()));
        inner.extend_txn(id, &meta, next).await?;
        Ok(resolved
            .into_iter()
            .map(|(tp, part)| {
                part.expect("checked").allow_txn(producer_id, txn.epoch);
                (tp, None)
            })
            .collect())
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: are these partitions part
    /// of the open transaction? INVALID_TXN_STATE for those that are not.
    pub async fn verify_partitions(
        &self,
        txn: TxnProducer<'_>,
        partitions: Vec<(String, i32)>,
    ) -> TxnResult<Vec<((String, i32), Option<ResponseError>)>> {
        let inner = self.inner.lock().await;
        let meta = inner.check_producer(txn)?;
        Ok(partitions
            .into_iter()
            .map(|tp| {
                let ok = meta.state == TxnState::Ongoing && meta.partitions.contains(&tp);
                (tp, (!ok).then_some(ResponseError::InvalidTxnState))
            })
            .collect())
    }

    /// AddOffsetsToTxn: the group's offsets join the transaction.
    pub async fn add_offsets(&self, txn: TxnProducer<'_>, group_id: &str) -> TxnResult<()> {
        let id = txn.id;
        let mut inner = self.inner.lock().await;
        let meta = inner.check_producer(txn)?.clone();
        let mut next = meta.clone();
        next.groups.insert(group_id.to_string());
        inner.extend_txn(id, &meta, next).await?;
        Ok(())
    }

    /// TxnOffsetCommit: checked against the open transaction (which must
    /// include the group), then handed to the group coordinator as pending
    /// offsets.
    pub async fn txn_offset_commit(
        &self,
        txn: TxnProducer<'_>,
        group_id: &str,
        member: Option<(&str, Option<&str>, i32)>,
        offsets: Vec<crate::group::OffsetCommit>,
        p: Participants<'_>,
    ) -> TxnResult<Vec<i16>> {
        let producer_id = txn.producer_id;
        let inner = self.inner.lock().await;
        let meta = inner.check_producer(txn)?;
        if meta.state != TxnState::Ongoing || !meta.groups.contains(group_id) {
            return Err(ResponseError::InvalidTxnState);
        }
        // Still under the coordinator lock: EndTxn cannot complete the
        // transaction between this check and the pending offsets landing.
        let result = p
            .groups
            .txn_commit(group_id, producer_id, member, offsets)
            .await;
        drop(inner);
        result.map_err(|c| c.err().unwrap_or(ResponseError::UnknownServerError))
    }

    /// EndTxn.
    pub async fn end_txn(
        &self,
        txn: TxnProducer<'_>,
        commit: bool,
        p: Participants<'_>,
    ) -> TxnResult<()> {
        let id = txn.id;
        let mut inner = self.inner.lock().await;
        let state = inner.check_identity(txn)?.state;
        match (state, commit) {
            (TxnState::Ongoing, _) => inner.complete(id, commit, p).await,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Timeouts and recovery, run by the broker's maintenance tick: aborts
    /// (fencing the producer) transactions open longer than their timeout,
    /// finishes `Prepare*` states left by a crash or a failed marker write,
    /// and forgets ids idle longer than `transactional-id-expiration-ms`.
    pub async fn tick_at(&self, now: i64, p: Participants<'_>) {
        let mut inner = self.inner.lock().await;
        let mut actions = Vec::new();
        for (id, m) in &inner.txns {
            match m.state {
                TxnState::Ongoing if m.start_ms >= 0 && now - m.start_ms > m.timeout_ms as i64 => {
                    actions.push((id.clone(), 0))
                }
                TxnState::PrepareCommit => actions.push((id.clone(), 1)),
                TxnState::PrepareAbort => actions.push((id.clone(), 2)),
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if now - m.last_update_ms > self.cfg.id_expiration_ms =>
                {
                    actions.push((id.clone(), 3))
                }
                _ => {}
            }
        }
        for (id, action) in actions {
            let result = match action {
                0 => {
                    tracing::info!(transactional_id = %id, "transaction timed out; aborting");
                    inner.fence_and_abort(&id, p).await
                }
                1 => inner.complete(&id, true, p).await,
                2 => inner.complete(&id, false, p).await,
                _ => {
                    let r = internal::append(&inner.log, vec![(key_of(&id), None)]).await;
                    if r.is_ok() {
                        inner.txns.remove(&id);
                    }
                    r.map_err(|_| ResponseError::CoordinatorNotAvailable)
                }
            };
            if let Err(e) = result {
                tracing::warn!(transactional_id = %id, error = ?e, "transaction maintenance failed; will retry");
            }
        }
    }

    /// One transactional id's state (DescribeTransactions).
    pub async fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.inner.lock().await.txns.get(id).cloned()
    }

    /// (transactional id, producer id, state, start ms) of every id.
    pub async fn list(&self) -> Vec<(String, i64, TxnState, i64)> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .txns
            .iter()
            .map(|(id, m)| (id.clone(), m.producer_id, m.state, m.start_ms))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use crate::config::Config;
    use crate::group::OffsetCommit;
    use crate::log::batch::{encode_transactional, PlainRecord};
    use crate::log::partition::Isolation;

    fn broker(dir: &std::path::Path) -> Broker {
        let cfg = Config {
            data_dir: dir.to_string_lossy().into_owned(),
            transaction_max_timeout_ms: 60_000,
            ..Config::default()
        };
        Broker::open(Arc::new(cfg), "127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn txn(producer_id: i64, epoch: i16) -> TxnProducer<'static> {
        TxnProducer {
            id: "tid",
            producer_id,
            epoch,
        }
    }

    fn record(v: &'static [u8]) -> Vec<PlainRecord> {
        vec![PlainRecord {
            key: None,
            value: Some(Bytes::from_static(v)),
            timestamp: now_ms(),
        }]
    }

    /// init + AddPartitionsToTxn(t-0) + one transactional batch.
    async fn open_txn(b: &Broker, seq: i32) -> (i64, i16) {
        let (pid, epoch) = b
            .txns
            .init_producer_id("tid", 10_000, None, b.participants())
            .await
            .unwrap();
        let codes = b
            .txns
            .add_partitions(txn(pid, epoch), vec![("t".into(), 0)], b.participants())
            .await
            .unwrap();
        assert_eq!(codes, vec![(("t".to_string(), 0), None)]);
        let p = b.logs.topic("t").unwrap().partition(0).unwrap();
        p.append(
            &encode_transactional(&record(b"v"), (pid, epoch, seq)),
            now_ms(),
        )
        .await
        .unwrap();
        (pid, epoch)
    }

    fn lso(b: &Broker) -> i64 {
        b.logs
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .offsets()
            .last_stable
    }

    #[tokio::test]
    async fn timeout_aborts_and_fences_with_a_controlled_clock() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.logs.create_topic("t", 1, 1, Default::default()).unwrap();
        let (pid, epoch) = open_txn(&b, 0).await;
        assert_eq!(lso(&b), 0);
        let start = b.txns.describe("tid").await.unwrap().start_ms;
        // Not yet expired.
        b.txns.tick_at(start + 10_000, b.participants()).await;
        assert_eq!(
            b.txns.describe("tid").await.unwrap().state,
            TxnState::Ongoing
        );
        b.txns.tick_at(start + 10_001, b.participants()).await;
        let m = b.txns.describe("tid").await.unwrap();
        assert_eq!((m.state, m.epoch), (TxnState::CompleteAbort, epoch + 1));
        assert_eq!(lso(&b), 2, "abort marker written");
        // The timed-out producer is fenced.
        assert_eq!(
            b.txns
                .end_txn(txn(pid, epoch), true, b.participants())
                .await,
            Err(ResponseError::ProducerFenced)
        );
        // Nothing of it is visible to read_committed.
        let p = b.logs.topic("t").unwrap().partition(0).unwrap();
        let r = p.read(0, 1 << 20, true, Isolation::ReadCommitted).unwrap();
        assert_eq!(r.aborted.len(), 1);
    }

    #[tokio::test]
    async fn errors_and_fencing_by_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.logs.create_topic("t", 1, 1, Default::default()).unwrap();
        let p = b.participants();
        assert_eq!(
            b.txns.init_producer_id("tid", 60_001, None, p).await,
            Err(ResponseError::InvalidTransactionTimeout)
        );
        assert_eq!(
            b.txns.end_txn(txn(1, 0), true, p).await,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        let (pid, epoch) = b
            .txns
            .init_producer_id("tid", 10_000, None, p)
            .await
            .unwrap();
        // EndTxn with nothing in the transaction.
        assert_eq!(
            b.txns.end_txn(txn(pid, epoch), true, p).await,
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            b.txns.end_txn(txn(pid + 1, epoch), true, p).await,
            Err(ResponseError::InvalidProducerIdMapping)
        );
        // Unknown partition: nothing added, the others not attempted.
        let codes = b
            .txns
            .add_partitions(
                txn(pid, epoch),
                vec![("t".into(), 0), ("nope".into(), 0)],
                p,
            )
            .await
            .unwrap();
        assert_eq!(
            codes,
            vec![
                (
                    ("t".to_string(), 0),
                    Some(ResponseError::OperationNotAttempted)
                ),
                (
                    ("nope".to_string(), 0),
                    Some(ResponseError::UnknownTopicOrPartition)
                ),
            ]
        );
        assert_eq!(b.txns.describe("tid").await.unwrap().state, TxnState::Empty);
        // A second instance while a transaction is open: the first is
        // aborted at a bumped epoch and fenced.
        let (pid, epoch) = open_txn(&b, 0).await;
        let (pid2, epoch2) = b
            .txns
            .init_producer_id("tid", 10_000, None, p)
            .await
            .unwrap();
        assert_eq!((pid2, epoch2), (pid, epoch + 2));
        assert_eq!(lso(&b), 2);
        assert_eq!(
            b.txns
                .add_partitions(txn(pid, epoch), vec![("t".into(), 0)], p)
                .await,
            Err(ResponseError::ProducerFenced)
        );
        let part = b.logs.topic("t").unwrap().partition(0).unwrap();
        assert!(matches!(
            part.append(
                &encode_transactional(&record(b"z"), (pid, epoch, 1)),
                now_ms()
            )
            .await,
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        // KIP-360: a known producer asking with a stale epoch is fenced; a
        // retry of the last bump gets the current epoch back.
        assert_eq!(
            b.txns
                .init_producer_id("tid", 10_000, Some((pid, epoch)), p)
                .await,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            b.txns
                .init_producer_id("tid", 10_000, Some((pid2, epoch2 - 1)), p)
                .await,
            Ok((pid2, epoch2))
        );
        assert_eq!(
            b.txns
                .init_producer_id("tid", 10_000, Some((pid2, epoch2)), p)
                .await,
            Ok((pid2, epoch2 + 1))
        );
    }

    #[tokio::test]
    async fn offsets_commit_with_the_transaction_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let offset = |o: i64| OffsetCommit {
            topic: "in".into(),
            partition: 0,
            offset: o,
            leader_epoch: -1,
            metadata: None,
        };
        {
            let b = broker(dir.path());
            let p = b.participants();
            let (pid, epoch) = b
                .txns
                .init_producer_id("tid", 10_000, None, p)
                .await
                .unwrap();
            // Not added to the transaction yet.
            assert_eq!(
                b.txns
                    .txn_offset_commit(txn(pid, epoch), "g", None, vec![offset(5)], p)
                    .await,
                Err(ResponseError::InvalidTxnState)
            );
            b.txns.add_offsets(txn(pid, epoch), "g").await.unwrap();
            b.txns
                .txn_offset_commit(txn(pid, epoch), "g", None, vec![offset(5)], p)
                .await
                .unwrap();
            assert!(b
                .groups
                .unstable_partitions("g")
                .await
                .contains(&("in".into(), 0)));
            let fetched = b.groups.fetch_offsets("g", None).await;
            assert!(fetched.is_empty(), "pending offsets are not visible");
            b.txns.end_txn(txn(pid, epoch), true, p).await.unwrap();
            assert!(b.groups.unstable_partitions("g").await.is_empty());
            // A second transaction, aborted: the committed offset stays 5.
            b.txns.add_offsets(txn(pid, epoch), "g").await.unwrap();
            b.txns
                .txn_offset_commit(txn(pid, epoch), "g", None, vec![offset(9)], p)
                .await
                .unwrap();
            b.txns.end_txn(txn(pid, epoch), false, p).await.unwrap();
            // A third left open across the restart.
            b.txns.add_offsets(txn(pid, epoch), "g").await.unwrap();
            b.txns
                .txn_offset_commit(txn(pid, epoch), "g", None, vec![offset(12)], p)
                .await
                .unwrap();
        }
        let b = broker(dir.path());
        async fn committed(b: &Broker) -> Option<i64> {
            let f = b.groups.fetch_offsets("g", None).await;
            f[0].1[0].1.as_ref().map(|o| o.offset)
        }
        assert_eq!(committed(&b).await, Some(5));
        assert!(b
            .groups
            .unstable_partitions("g")
            .await
            .contains(&("in".into(), 0)));
        let m = b.txns.describe("tid").await.unwrap();
        assert_eq!(m.state, TxnState::Ongoing);
        b.txns
            .end_txn(txn(m.producer_id, m.epoch), true, b.participants())
            .await
            .unwrap();
        assert_eq!(committed(&b).await, Some(12));
    }

    #[tokio::test]
    async fn a_decided_commit_is_completed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = broker(dir.path());
            b.logs.create_topic("t", 1, 1, Default::default()).unwrap();
            open_txn(&b, 0).await;
            // Crash between persisting PrepareCommit and writing markers.
            let mut inner = b.txns.inner.lock().await;
            let mut m = inner.txns["tid"].clone();
            m.state = TxnState::PrepareCommit;
            inner.store("tid", m).await.unwrap();
        }
        let b = broker(dir.path());
        assert_eq!(lso(&b), 0, "undecided in the partition until completed");
        assert_eq!(
            b.txns.describe("tid").await.unwrap().state,
            TxnState::PrepareCommit
        );
        b.txns.tick_at(now_ms(), b.participants()).await;
        assert_eq!(
            b.txns.describe("tid").await.unwrap().state,
            TxnState::CompleteCommit
        );
        assert_eq!(lso(&b), 2);
        let p = b.logs.topic("t").unwrap().partition(0).unwrap();
        let r = p.read(0, 1 << 20, true, Isolation::ReadCommitted).unwrap();
        assert!(r.aborted.is_empty());
        assert_eq!(crate::log::batch::last_offset_in(&r.records), Some(1));
    }
}
