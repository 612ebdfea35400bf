//! Share groups (KIP-932, "queues for Kafka"): membership, share sessions,
//! the share-partitions' in-flight windows, their durable state and
//! dead-letter topics.
//!
//! - [`group`]: membership (ShareGroupHeartbeat) as a pure state machine.
//! - [`partition`]: one share-partition's window (acquire, acknowledge,
//!   release, lock expiry, delivery limit) as a pure state machine.
//! - [`store`]: the internal log `__share_group_state-0` (group metadata
//!   and share-partition snapshots), replayed at start-up.
//! - this module: [`ShareCoordinator`], which ties them to the log:
//!   ShareFetch/ShareAcknowledge sessions, reading records, persisting
//!   state before an acknowledgement is answered, and copying archived
//!   records to the group's dead-letter topic first.
//!
//! Locking: one tokio mutex over all share state, held for in-memory work,
//! log reads of the records to deliver and the internal-log append that
//! makes an acknowledgement durable (page cache, as produced data). Lock
//! order: share coordinator, then a partition (never the group coordinator
//! while holding it). Parked ShareFetches wait outside the lock on the
//! partitions' high-watermark channels and on `changed` (releases, lock
//! expiry).

pub mod group;
pub mod partition;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use crate::group::configs::GroupConfigStore;
use crate::log::batch::{BatchHeader, HEADER_LEN};
use crate::log::partition::Isolation;
use crate::log::records::{self, BatchSpec, Header, Record};
use crate::log::{internal, now_ms, LogManager, Partition};
use group::{Heartbeat, HeartbeatOutcome, ShareGroup};
use partition::{AckBatch, AckError, Acquired, Archived, BatchKind, SharePartition};
use store::ShareRecord;

/// (group, topic id, partition)
pub type SharePartitionKey = (String, Uuid, i32);

/// Broker settings of share groups that no group config overrides (the
/// others are read per group from [`GroupConfigStore`], with the broker's
/// `group-share-*` keys as defaults).
#[derive(Debug, Clone)]
pub struct ShareConfig {
    pub max_group_size: usize,
}

/// One member's share session (per connection, as in Kafka).
#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: BTreeSet<(Uuid, i32)>,
    connection: u64,
}

struct Inner {
    groups: HashMap<String, ShareGroup>,
    partitions: HashMap<SharePartitionKey, SharePartition>,
    sessions: HashMap<(String, String), Session>,
    log: Arc<Partition>,
}

/// A partition's part of a ShareFetch or ShareAcknowledge.
#[derive(Debug, Default)]
pub struct PartitionResult {
    pub error: i16,
    pub ack_error: Option<i16>,
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// What a ShareFetch asks for.
pub struct FetchRequest {
    pub group: String,
    pub member: String,
    pub epoch: i32,
    pub max_wait_ms: i64,
    pub max_bytes: usize,
    pub max_records: usize,
    /// Partitions added to the session (with their acks, possibly none).
    pub topics: Vec<(Uuid, i32, Vec<AckBatch>)>,
    pub forgotten: Vec<(Uuid, i32)>,
    pub connection: u64,
}

pub type FetchResponse = Result<(i32, BTreeMap<(Uuid, i32), PartitionResult>), i16>;

/// What a ShareAcknowledge asks for.
pub struct AcknowledgeRequest {
    pub group: String,
    pub member: String,
    pub epoch: i32,
    pub acks: Vec<(Uuid, i32, Vec<AckBatch>)>,
    pub connection: u64,
}

pub struct ShareCoordinator {
    cfg: ShareConfig,
    inner: Mutex<Inner>,
    /// Wakes parked ShareFetches: records became available again.
    changed: Notify,
}

/// Kafka's error for a failed acknowledgement.
fn ack_code(e: AckError) -> i16 {
    match e {
        AckError::InvalidRecordState => ResponseError::InvalidRecordState.code(),
        AckError::InvalidRequest => ResponseError::InvalidRequest.code(),
    }
}

impl ShareCoordinator {
    /// Replays the internal log.
    pub fn open(log: Arc<Partition>, cfg: ShareConfig) -> io::Result<ShareCoordinator> {
        let mut groups = HashMap::new();
        let mut partitions = HashMap::new();
        let skipped = internal::replay(&log, |key, value| match ShareRecord::decode(key, value) {
            Some(ShareRecord::Group { group, value }) => match value {
                Some(g) => {
                    groups.insert(group, g);
                }
                None => {
                    groups.remove(&group);
                }
            },
            Some(ShareRecord::Partition { key, value }) => match value {
                Some((start, end, runs)) => {
                    partitions.insert(key, SharePartition::restore(start, end, &runs));
                }
                None => {
                    partitions.remove(&key);
                }
            },
            None => {}
        })?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "undecodable records in the share group state log were ignored"
            );
        }
        let now = now_ms();
        for g in groups.values_mut() {
            // Session timeouts run from the restart.
            for m in g.members.values_mut() {
                m.last_heartbeat_ms = now;
            }
        }
        tracing::info!(
            groups = groups.len(),
            share_partitions = partitions.len(),
            "share coordinator loaded"
        );
        Ok(ShareCoordinator {
            cfg,
            inner: Mutex::new(Inner {
                groups,
                partitions,
                sessions: HashMap::new(),
                log,
            }),
            changed: Notify::new(),
        })
    }

    pub async fn is_share_group(&self, group: &str) -> bool {
        self.inner.lock().await.groups.contains_key(group)
    }

    /// ShareGroupHeartbeat. `resolve` maps topic names to (id, partitions).
    pub async fn heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        resolve: &group::Resolver<'_>,
    ) -> Result<HeartbeatOutcome, i16> {
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        if !inner.groups.contains_key(group_id) {
            if hb.member_epoch != 0 {
                // A group this broker no longer knows (its member was
                // removed): make the client rejoin rather than die.
                return Err(ResponseError::UnknownMemberId.code());
            }
            inner
                .groups
                .insert(group_id.to_string(), ShareGroup::new(group_id));
        }
        let leaving = hb.member_epoch == -1;
        let g = inner.groups.get_mut(group_id).expect("inserted");
        // Persisted when membership or the epoch changed, not on every beat.
        let before = (g.members.len(), g.epoch);
        let out = g.heartbeat(hb, now, self.cfg.max_group_size, resolve)?;
        if (g.members.len(), g.epoch) != before || leaving {
            let snapshot = g.clone();
            inner
                .persist(vec![ShareRecord::Group {
                    group: group_id.to_string(),
                    value: Some(snapshot),
                }])
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        }
        Ok(out)
    }

    /// Groups as ListGroups reports them: (id, state).
    pub async fn list(&self) -> Vec<(String, &'static str)> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .groups
            .values()
            .map(|g| (g.id.clone(), g.state()))
            .collect();
        out.sort();
        out
    }

    pub async fn describe(&self, group: &str) -> Option<ShareGroup> {
        self.inner.lock().await.groups.get(group).cloned()
    }

    /// DeleteGroups of a share group: only without members; its state goes too.
    pub async fn delete_group(&self, group: &str) -> Result<(), i16> {
        let mut inner = self.inner.lock().await;
        match inner.groups.get(group) {
            None => return Err(ResponseError::GroupIdNotFound.code()),
            Some(g) if !g.members.is_empty() => return Err(ResponseError::NonEmptyGroup.code()),
            Some(_) => {}
        }
        let keys: Vec<SharePartitionKey> = inner
            .partitions
            .keys()
            .filter(|k| k.0 == group)
            .cloned()
            .collect();
        let mut records: Vec<ShareRecord> = keys
            .iter()
            .map(|k| ShareRecord::Partition {
                key: k.clone(),
                value: None,
            })
            .collect();
        records.push(ShareRecord::Group {
            group: group.to_string(),
            value: None,
        });
        inner
            .persist(records)
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        for k in keys {
            inner.partitions.remove(&k);
        }
        inner.groups.remove(group);
        Ok(())
    }

    /// Start offsets (SPSO) of a group's share-partitions; -1 if never
    /// initialised.
    pub async fn start_offsets(
        &self,
        group: &str,
        topic: Uuid,
        partitions: &[i32],
    ) -> Vec<(i32, i64)> {
        let inner = self.inner.lock().await;
        partitions
            .iter()
            .map(|p| {
                let start = inner
                    .partitions
                    .get(&(group.to_string(), topic, *p))
                    .map(|sp| sp.start())
                    .unwrap_or(-1);
                (*p, start)
            })
            .collect()
    }

    /// Every share-partition of a group: (topic id, partition, start).
    pub async fn group_partitions(&self, group: &str) -> Vec<(Uuid, i32, i64)> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .partitions
            .iter()
            .filter(|(k, _)| k.0 == group)
            .map(|(k, sp)| (k.1, k.2, sp.start()))
            .collect();
        out.sort();
        out
    }

    /// Every share-partition's window for `/metrics`: (group, topic id,
    /// partition, [acquired, available, acknowledged, archived] records).
    pub async fn window_counts(&self) -> Vec<(String, Uuid, i32, [usize; 4])> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .partitions
            .iter()
            .map(|(k, sp)| {
                let n = |f: fn(&partition::State) -> bool| sp.count(f);
                (
                    k.0.clone(),
                    k.1,
                    k.2,
                    [
                        n(|s| matches!(s, partition::State::Acquired { .. })),
                        n(|s| matches!(s, partition::State::Available)),
                        n(|s| matches!(s, partition::State::Acknowledged)),
                        n(|s| matches!(s, partition::State::Archived)),
                    ],
                )
            })
            .collect();
        out.sort();
        out
    }

    /// AlterShareGroupOffsets (`Some(start)`) or DeleteShareGroupOffsets
    /// (`None`): only while the group has no members.
    pub async fn set_start(
        &self,
        group: &str,
        changes: Vec<(Uuid, i32, Option<i64>)>,
    ) -> Result<(), i16> {
        let mut inner = self.inner.lock().await;
        if inner
            .groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
        {
            return Err(ResponseError::NonEmptyGroup.code());
        }
        if !inner.groups.contains_key(group) {
            inner
                .groups
                .insert(group.to_string(), ShareGroup::new(group));
        }
        let mut records = vec![ShareRecord::Group {
            group: group.to_string(),
            value: inner.groups.get(group).cloned(),
        }];
        for (topic, p, start) in &changes {
            let key = (group.to_string(), *topic, *p);
            records.push(ShareRecord::Partition {
                key,
                value: start.map(|s| SharePartition::new(s).snapshot()),
            });
        }
        inner
            .persist(records)
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        for (topic, p, start) in changes {
            let key = (group.to_string(), topic, p);
            match start {
                Some(s) => inner.partitions.insert(key, SharePartition::new(s)),
                None => inner.partitions.remove(&key),
            };
        }
        Ok(())
    }

    /// A connection closed: its sessions end and their records are released.
    pub async fn connection_closed(&self, connection: u64) {
        let mut inner = self.inner.lock().await;
        let closed: Vec<(String, String)> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.connection == connection)
            .map(|(k, _)| k.clone())
            .collect();
        let mut released = 0;
        for (group, member) in closed {
            if let Some(s) = inner.sessions.remove(&(group.clone(), member.clone())) {
                released += inner.release(&group, &member, &s.partitions);
            }
        }
        if released > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Lock expiry and member session timeouts; persists what the delivery
    /// limit archived (after the dead-letter copies).
    pub async fn tick(&self, logs: &LogManager, configs: &GroupConfigStore, now: i64) {
        let mut inner = self.inner.lock().await;
        let mut woke = false;
        let keys: Vec<SharePartitionKey> = inner
            .partitions
            .iter()
            .filter(|(_, sp)| sp.next_expiry().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let limit = configs.int(&key.0, "share.delivery.count.limit") as i16;
            let (n, archived) = inner
                .partitions
                .get_mut(&key)
                .map(|sp| sp.expire_locks(now, limit))
                .unwrap_or_default();
            woke |= n > 0;
            if !archived.is_empty() {
                dead_letter(logs, configs, &key, &archived).await;
                let snapshot = inner.partitions[&key].snapshot();
                if let Err(e) = inner
                    .persist(vec![ShareRecord::Partition {
                        key: key.clone(),
                        value: Some(snapshot),
                    }])
                    .await
                {
                    tracing::warn!(error = %e, "cannot persist share state after lock expiry");
                }
            }
        }
        // Members silent past their session timeout leave the group.
        let mut changed_groups = Vec::new();
        for g in inner.groups.values_mut() {
            let timeout = configs.int(&g.id, "share.session.timeout.ms").max(1);
            if !g.expire(now, timeout).is_empty() {
                changed_groups.push(g.clone());
            }
        }
        for g in changed_groups {
            let _ = inner
                .persist(vec![ShareRecord::Group {
                    group: g.id.clone(),
                    value: Some(g),
                }])
                .await;
        }
        if woke {
            self.changed.notify_waiters();
        }
    }

    /// ShareAcknowledge: validates the session epoch, applies the acks
    /// durably (dead letters first), ends the session at epoch -1.
    pub async fn acknowledge(
        &self,
        logs: &LogManager,
        configs: &GroupConfigStore,
        req: AcknowledgeRequest,
    ) -> Result<BTreeMap<(Uuid, i32), PartitionResult>, i16> {
        let AcknowledgeRequest {
            group,
            member,
            epoch,
            acks,
            connection,
        } = req;
        let (group, member) = (group.as_str(), member.as_str());
        let mut inner = self.inner.lock().await;
        let key = (group.to_string(), member.to_string());
        match (epoch, inner.sessions.get_mut(&key)) {
            (0, _) => return Err(ResponseError::InvalidShareSessionEpoch.code()),
            (_, None) => return Err(ResponseError::ShareSessionNotFound.code()),
            (-1, Some(_)) => {}
            (e, Some(s)) if e != s.epoch => {
                return Err(ResponseError::InvalidShareSessionEpoch.code())
            }
            (_, Some(s)) => {
                s.epoch = next_epoch(s.epoch);
                s.connection = connection;
            }
        }
        let mut out = BTreeMap::new();
        inner
            .apply_acks(logs, configs, group, member, acks, &mut out)
            .await;
        if epoch == -1 {
            if let Some(s) = inner.sessions.remove(&key) {
                inner.release(group, member, &s.partitions);
            }
        }
        drop(inner);
        self.changed.notify_waiters();
        Ok(out)
    }

    /// ShareFetch: session handling, acknowledgements, then acquisition,
    /// waiting up to `max_wait_ms` when nothing can be acquired.
    pub async fn fetch(
        &self,
        logs: &LogManager,
        configs: &GroupConfigStore,
        req: FetchRequest,
    ) -> FetchResponse {
        let group = req.group.clone();
        let member = req.member.clone();
        let key = (group.clone(), member.clone());
        let mut out: BTreeMap<(Uuid, i32), PartitionResult> = BTreeMap::new();
        let lock_ms = configs.int(&group, "share.record.lock.duration.ms");
        {
            let mut inner = self.inner.lock().await;
            let has_acks = req.topics.iter().any(|(_, _, a)| !a.is_empty());
            match req.epoch {
                0 => {
                    if has_acks {
                        return Err(ResponseError::InvalidRequest.code());
                    }
                    // A new session replaces the member's previous one,
                    // whose acquired records go back.
                    if let Some(old) = inner.sessions.remove(&key) {
                        inner.release(&group, &member, &old.partitions);
                    }
                    inner.sessions.insert(
                        key.clone(),
                        Session {
                            epoch: 1,
                            partitions: BTreeSet::new(),
                            connection: req.connection,
                        },
                    );
                }
                -1 => {
                    if !req.forgotten.is_empty() {
                        return Err(ResponseError::InvalidRequest.code());
                    }
                    if !inner.sessions.contains_key(&key) {
                        return Err(ResponseError::ShareSessionNotFound.code());
                    }
                }
                e => match inner.sessions.get_mut(&key) {
                    None => return Err(ResponseError::ShareSessionNotFound.code()),
                    Some(s) if s.epoch != e => {
                        return Err(ResponseError::InvalidShareSessionEpoch.code())
                    }
                    Some(s) => {
                        s.epoch = next_epoch(s.epoch);
                        s.connection = req.connection;
                    }
                },
            }
            let acks: Vec<_> = req
                .topics
                .iter()
                .filter(|(_, _, a)| !a.is_empty())
                .cloned()
                .collect();
            inner
                .apply_acks(logs, configs, &group, &member, acks, &mut out)
                .await;
            if req.epoch == -1 {
                if let Some(s) = inner.sessions.remove(&key) {
                    inner.release(&group, &member, &s.partitions);
                }
                self.changed.notify_waiters();
                return Ok((lock_ms as i32, out));
            }
            if let Some(s) = inner.sessions.get_mut(&key) {
                for (t, p, _) in &req.topics {
                    s.partitions.insert((*t, *p));
                }
                for f in &req.forgotten {
                    s.partitions.remove(f);
                }
            }
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
        loop {
            // Register for wake-ups before looking, so nothing is missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut watches = Vec::new();
            let got = {
                let mut inner = self.inner.lock().await;
                let Some(session) = inner.sessions.get(&key) else {
                    return Err(ResponseError::ShareSessionNotFound.code());
                };
                let parts: Vec<(Uuid, i32)> = session.partitions.iter().copied().collect();
                let mut budget = if req.max_bytes == 0 {
                    0
                } else {
                    req.max_records
                };
                let mut bytes = 0usize;
                let mut acquired_any = false;
                for (topic, p) in parts {
                    let entry = out.entry((topic, p)).or_default();
                    let Some(partition) = logs.topic_by_id(topic).and_then(|t| t.partition(p))
                    else {
                        entry.error = ResponseError::UnknownTopicOrPartition.code();
                        continue;
                    };
                    watches.push(partition.subscribe());
                    if budget == 0 || (acquired_any && bytes >= req.max_bytes) {
                        continue;
                    }
                    match inner
                        .acquire(configs, &group, &member, topic, &partition, budget, lock_ms)
                    {
                        Ok((acquired, data)) => {
                            let n: usize = acquired
                                .iter()
                                .map(|a| (a.last_offset - a.first_offset + 1) as usize)
                                .sum();
                            budget = budget.saturating_sub(n);
                            bytes += data.len();
                            acquired_any |= !acquired.is_empty();
                            entry.acquired.extend(acquired);
                            let mut all = BytesMut::from(&entry.records[..]);
                            all.extend_from_slice(&data);
                            entry.records = all.freeze();
                        }
                        Err(code) => entry.error = code,
                    }
                }
                acquired_any
            };
            if got || tokio::time::Instant::now() >= deadline {
                break;
            }
            // Park until data arrives, a record is released, or the wait ends.
            let mut changes: Vec<_> = watches.iter_mut().map(|w| Box::pin(w.changed())).collect();
            let any_append = std::future::poll_fn(|cx| {
                use std::future::Future as _;
                for c in changes.iter_mut() {
                    if c.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                }
                std::task::Poll::Pending
            });
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = &mut notified => {}
                _ = any_append => {}
            }
        }
        Ok((lock_ms as i32, out))
    }
}

fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

impl Inner {
    async fn persist(&self, records: Vec<ShareRecord>) -> crate::log::Result<()> {
        internal::append(&self.log, records.iter().map(ShareRecord::encode).collect()).await
    }

    /// Releases `member`'s acquired records in `partitions` (its session
    /// ended). Not persisted: acquisition never is.
    fn release(&mut self, group: &str, member: &str, partitions: &BTreeSet<(Uuid, i32)>) -> usize {
        let mut n = 0;
        for (t, p) in partitions {
            if let Some(sp) = self.partitions.get_mut(&(group.to_string(), *t, *p)) {
                n += sp.release_member(member);
            }
        }
        n
    }

    /// Applies acks per partition: dead letters, then durable state, then
    /// the answer (per partition; a failed partition changes nothing).
    async fn apply_acks(
        &mut self,
        logs: &LogManager,
        configs: &GroupConfigStore,
        group: &str,
        member: &str,
        acks: Vec<(Uuid, i32, Vec<AckBatch>)>,
        out: &mut BTreeMap<(Uuid, i32), PartitionResult>,
    ) {
        let limit = configs.int(group, "share.delivery.count.limit") as i16;
        for (topic, p, batches) in acks {
            let entry = out.entry((topic, p)).or_default();
            let key = (group.to_string(), topic, p);
            let Some(sp) = self.partitions.get(&key) else {
                entry.ack_error = Some(ResponseError::InvalidRecordState.code());
                continue;
            };
            let mut next = sp.clone();
            let archived = match next.acknowledge(member, &batches, limit) {
                Ok(a) => a,
                Err(e) => {
                    entry.ack_error = Some(ack_code(e));
                    continue;
                }
            };
            if !archived.is_empty() {
                dead_letter(logs, configs, &key, &archived).await;
            }
            let record = ShareRecord::Partition {
                key: key.clone(),
                value: Some(next.snapshot()),
            };
            match self.persist(vec![record]).await {
                Ok(()) => {
                    self.partitions.insert(key, next);
                    entry.ack_error = Some(0);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist share-partition state");
                    entry.ack_error = Some(e.code());
                }
            }
        }
    }

    /// Fills the window from the log and acquires up to `budget` records
    /// for `member`: (ranges, the stored batches covering them).
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        configs: &GroupConfigStore,
        group: &str,
        member: &str,
        topic: Uuid,
        log: &Partition,
        budget: usize,
        lock_ms: i64,
    ) -> Result<(Vec<Acquired>, Bytes), i16> {
        let key = (group.to_string(), topic, log.index);
        let offsets = log.offsets();
        let isolation = match configs.value(group, "share.isolation.level").as_deref() {
            Some("read_committed") => Isolation::ReadCommitted,
            _ => Isolation::ReadUncommitted,
        };
        if !self.partitions.contains_key(&key) {
            let start = match configs.value(group, "share.auto.offset.reset").as_deref() {
                Some("earliest") => offsets.log_start,
                Some(v) if v.starts_with("by_duration:") => {
                    let ms = parse_duration_ms(&v["by_duration:".len()..]).unwrap_or(0);
                    log.offset_for_timestamp(now_ms() - ms)
                        .ok()
                        .flatten()
                        .map(|(o, _)| o)
                        .unwrap_or(offsets.high_watermark)
                }
                _ => offsets.high_watermark,
            };
            self.partitions
                .insert(key.clone(), SharePartition::new(start));
        }
        let max_locks = configs
            .broker()
            .group_share_partition_max_record_locks
            .max(1) as usize;
        let sp = self.partitions.get_mut(&key).expect("inserted");
        sp.move_start_to(offsets.log_start);
        // Read new batches into the window while it has room.
        let mut guard = 0;
        while sp.room(max_locks) > 0 && guard < 64 {
            guard += 1;
            let read = match log.read(sp.end(), 1 << 20, true, isolation) {
                Ok(r) => r,
                Err(crate::log::LogError::OffsetOutOfRange { .. }) => break,
                Err(e) => return Err(e.code()),
            };
            if read.records.is_empty() {
                break;
            }
            let mut pos = 0;
            let data = &read.records;
            let mut progressed = false;
            while pos + HEADER_LEN <= data.len() && sp.room(max_locks) > 0 {
                let Some(h) = BatchHeader::parse(&data[pos..]) else {
                    break;
                };
                if pos + h.total_len() > data.len() {
                    break;
                }
                let aborted = h.is_transactional()
                    && read.aborted.iter().any(|a| {
                        a.producer_id == h.producer_id
                            && a.first_offset <= h.base_offset
                            && h.base_offset <= a.last_offset
                    });
                let kind = if h.is_control() || aborted {
                    BatchKind::Skip
                } else {
                    BatchKind::Data
                };
                if h.last_offset() >= sp.end() {
                    sp.add_batch(h.base_offset, h.last_offset(), kind);
                    progressed = true;
                }
                pos += h.total_len();
            }
            if !progressed {
                break;
            }
        }
        let acquired = sp.acquire(member, budget, lock_ms, now_ms());
        if acquired.is_empty() {
            return Ok((acquired, Bytes::new()));
        }
        // The stored batches covering the ranges, each batch once.
        let mut data = BytesMut::new();
        let mut covered = -1i64;
        for a in &acquired {
            let mut at = a.first_offset.max(covered + 1);
            while at <= a.last_offset {
                let read = log
                    .read(at, 1 << 20, true, Isolation::ReadUncommitted)
                    .map_err(|e| e.code())?;
                let mut pos = 0;
                let r = &read.records;
                let before = at;
                while pos + HEADER_LEN <= r.len() {
                    let Some(h) = BatchHeader::parse(&r[pos..]) else {
                        break;
                    };
                    if pos + h.total_len() > r.len() || h.base_offset > a.last_offset {
                        break;
                    }
                    if h.last_offset() > covered {
                        data.extend_from_slice(&r[pos..pos + h.total_len()]);
                        covered = h.last_offset();
                    }
                    pos += h.total_len();
                    at = h.next_offset();
                }
                if at == before {
                    break;
                }
            }
        }
        Ok((acquired, data.freeze()))
    }
}

/// Copies archived records to the group's dead-letter topic (if it has
/// one), with headers naming their origin. Runs before the archived state
/// is persisted, so a crash can duplicate a dead letter but never lose it.
async fn dead_letter(
    logs: &LogManager,
    configs: &GroupConfigStore,
    key: &SharePartitionKey,
    archived: &[Archived],
) {
    let (group, topic_id, partition) = key;
    let dlq = configs
        .value(group, "errors.deadletterqueue.topic.name")
        .unwrap_or_default();
    if dlq.trim().is_empty() {
        return;
    }
    let Some(source) = logs.topic_by_id(*topic_id) else {
        return;
    };
    let Some(log) = source.partition(*partition) else {
        return;
    };
    let target = match logs.topic(&dlq) {
        Some(t) => t,
        None => match logs.create_topic(&dlq, 1, -1, Default::default()) {
            Ok(t) => t,
            Err(_) => match logs.topic(&dlq) {
                Some(t) => t,
                None => {
                    tracing::error!(topic = %dlq, "cannot create the dead-letter topic");
                    return;
                }
            },
        },
    };
    let count = target.partition_count().max(1);
    let Some(out) = target.partition(partition % count) else {
        return;
    };
    let now = now_ms();
    let mut letters = Vec::new();
    for a in archived {
        let Some(original) = record_at(&log, a.offset) else {
            continue;
        };
        let mut headers = original.headers.clone();
        for (k, v) in [
            ("__dlq.errors.topic", source.name.clone()),
            ("__dlq.errors.partition", partition.to_string()),
            ("__dlq.errors.offset", a.offset.to_string()),
            ("__dlq.errors.group", group.clone()),
            ("__dlq.errors.delivery.count", a.delivery_count.to_string()),
            ("__dlq.errors.reason", a.reason.name().to_string()),
        ] {
            headers.push(Header {
                key: Bytes::from_static(k.as_bytes()),
                value: Some(Bytes::from(v)),
            });
        }
        letters.push(Record {
            offset: letters.len() as i64,
            timestamp: now,
            key: original.key,
            value: original.value,
            headers,
        });
    }
    if letters.is_empty() {
        return;
    }
    let batch = match records::encode(
        &BatchSpec::plain(crate::log::compression::Codec::None),
        &letters,
    ) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode dead letters");
            return;
        }
    };
    if let Err(e) = out.append(&batch, now).await {
        tracing::error!(topic = %dlq, error = %e, "cannot append dead letters");
    }
}

/// The record at `offset` (decoding its batch).
fn record_at(log: &Partition, offset: i64) -> Option<Record> {
    let read = log
        .read(offset, 1 << 20, true, Isolation::ReadUncommitted)
        .ok()?;
    let mut pos = 0;
    let r = &read.records;
    while pos + HEADER_LEN <= r.len() {
        let h = BatchHeader::parse(&r[pos..])?;
        let end = pos + h.total_len();
        if end > r.len() {
            return None;
        }
        if h.base_offset <= offset && offset <= h.last_offset() {
            let (_, recs) = records::decode(&r[pos..end], 256 << 20).ok()?;
            return recs.into_iter().find(|x| x.offset == offset);
        }
        pos = end;
    }
    None
}

/// A small ISO-8601 duration (`PnDTnHnMnS`) in ms, for
/// `share.auto.offset.reset=by_duration:...`.
fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim().strip_prefix('P')?;
    let (days, time) = match s.split_once('T') {
        Some((d, t)) => (d, t),
        None => (s, ""),
    };
    let mut ms = 0i64;
    if let Some(d) = days.strip_suffix('D') {
        ms += d.parse::<i64>().ok()? * 86_400_000;
    } else if !days.is_empty() {
        return None;
    }
    let mut num = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' | 'M' | 'S' => {
                let v: f64 = num.parse().ok()?;
                ms += (v * match c {
                    'H' => 3_600_000.0,
                    'M' => 60_000.0,
                    _ => 1000.0,
                }) as i64;
                num.clear();
            }
            _ => return None,
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_duration_ms("P1DT30M"), Some(86_400_000 + 1_800_000));
        assert_eq!(parse_duration_ms("PT0.5S"), Some(500));
        assert_eq!(parse_duration_ms("1H"), None);
    }
}
