//! The group coordinator: classic-protocol membership and rebalances
//! ([`state`]), consumer-protocol groups (KIP-848, [`consumer`] with the
//! server-side [`assignor`]s), committed offsets, and their persistence
//! ([`store`]). Share groups are their sibling in `crate::share`.
//!
//! A group id has one type. Offsets belong to the id whatever its type:
//! every group has a [`Group`] entry (classic membership + offsets); a
//! consumer-protocol group also has a [`ConsumerGroup`] entry, and then its
//! classic membership stays empty. Converting an empty group from one
//! protocol to the other keeps its offsets.
//!
//! Locking: all groups live behind one tokio mutex. Every operation is
//! short in-memory work plus, when something changed, one append to the
//! internal log; the append happens under the lock so the log's order is the
//! order of the changes. JoinGroup and SyncGroup requests that must wait for
//! other members release the lock and await a oneshot channel.

pub mod assignor;
pub mod configs;
pub mod consumer;
pub mod state;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::{oneshot, Mutex};

use crate::log::internal;
use crate::log::{now_ms, Partition};
use consumer::{ConsumerGroup, HbError, Heartbeat, HeartbeatReply, Settings, TopicImage};
use state::{
    CommittedOffset, Group, GroupState, JoinOutcome, JoinRequest, SyncOutcome, SyncRequest,
};
use store::{GroupSnapshot, StoreRecord};

pub use state::GroupConfig;

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct GroupCoordinator {
    cfg: GroupConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    groups: HashMap<String, Group>,
    /// Consumer-protocol groups (each also has an entry in `groups`).
    consumer: HashMap<String, ConsumerGroup>,
    log: Arc<Partition>,
    /// Recent FindCoordinator lookups per group id (ms timestamps).
    lookups: HashMap<String, Vec<i64>>,
    /// Per group: offsets committed inside open transactions.
    pending: HashMap<String, PendingTxns>,
}

/// (topic, partition).
type TopicPartition = (String, i32);

/// Producer id -> the offsets its open transaction committed.
type PendingTxns = HashMap<i64, HashMap<TopicPartition, CommittedOffset>>;

/// How long a FindCoordinator lookup counts as a consumer about to join.
/// Consumers started together look the group up within a few ms of each
/// other; only the first rebalance of an empty group waits for them, and
/// only while more lookups than joiners were seen.
const JOIN_ANNOUNCE_WINDOW_MS: i64 = 250;

impl Inner {
    /// Tells `group_id`'s group how many consumers announced themselves.
    fn apply_lookups(&mut self, group_id: &str, now: i64) {
        let (count, until) = match self.lookups.get_mut(group_id) {
            Some(times) => {
                times.retain(|t| now - t < JOIN_ANNOUNCE_WINDOW_MS);
                (
                    times.len(),
                    times
                        .first()
                        .map(|t| t + JOIN_ANNOUNCE_WINDOW_MS)
                        .unwrap_or(0),
                )
            }
            None => (0, 0),
        };
        if let Some(g) = self.groups.get_mut(group_id) {
            g.expect_joiners(count, until);
        }
    }
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

impl Inner {
    /// Appends records to the internal log; an error means the change is
    /// not durable and must not be acknowledged.
    async fn persist(&self, records: Vec<StoreRecord>) -> Result<(), i16> {
        internal::append(&self.log, records.iter().map(StoreRecord::encode).collect())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist group coordinator state");
                code(ResponseError::CoordinatorNotAvailable)
            })
    }

    /// Persists the group's membership (classic: members, generation,
    /// assignment; consumer protocol: epochs and assignments) if it
    /// changed. Best effort, unlike offsets: the change is already applied
    /// and other members may be waiting on it, and losing it in a crash
    /// only costs a rebalance. On failure (a full disk) the group stays
    /// dirty and the next change writes it again; consumers keep joining
    /// and reading while the disk is full.
    async fn persist_group(&mut self, group_id: &str) {
        let mut records = Vec::new();
        if let Some(g) = self.groups.get_mut(group_id).filter(|g| g.dirty) {
            g.dirty = false;
            records.push(StoreRecord::Group {
                group: group_id.into(),
                value: Some(GroupSnapshot::of(g)),
            });
        }
        if let Some(g) = self.consumer.get_mut(group_id).filter(|g| g.dirty) {
            g.dirty = false;
            records.push(StoreRecord::Consumer {
                group: group_id.into(),
                value: Some(Box::new(g.clone())),
            });
        }
        if records.is_empty() || self.persist(records).await.is_ok() {
            return;
        }
        if let Some(g) = self.groups.get_mut(group_id) {
            g.dirty = true;
        }
        if let Some(g) = self.consumer.get_mut(group_id) {
            g.dirty = true;
        }
    }
}

impl Inner {
    /// Drops an empty consumer group so the id can become a classic group
    /// again (its offsets stay).
    async fn convert_to_classic(&mut self, group_id: &str) -> Result<(), i16> {
        self.persist(vec![StoreRecord::Consumer {
            group: group_id.into(),
            value: None,
        }])
        .await?;
        self.consumer.remove(group_id);
        Ok(())
    }

    /// The consumer group's members' validation of an offset commit, if
    /// the id is a consumer group.
    fn validate_consumer_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        api_version: i16,
    ) -> Option<Result<(), i16>> {
        let g = self.consumer.get(group_id)?;
        if api_version < 9 && !(epoch < 0 && g.is_empty()) {
            // Member epochs came with OffsetCommit v9 (KIP-848).
            return Some(Err(code(ResponseError::UnsupportedVersion)));
        }
        Some(g.validate_commit(member_id, epoch))
    }
}

impl GroupCoordinator {
    /// Replays the internal log into memory.
    pub fn open(log: Arc<Partition>, cfg: GroupConfig) -> io::Result<GroupCoordinator> {
        let now = now_ms();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut pending: HashMap<String, PendingTxns> = HashMap::new();
        let mut consumer: HashMap<String, ConsumerGroup> = HashMap::new();
        let mut applied = 0usize;
        let skipped = internal::replay(&log, |key, value| {
            let Some(r) = StoreRecord::decode(key, value) else {
                return;
            };
            applied += 1;
            match r {
                StoreRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                } => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now));
                    match value {
                        Some(v) => g.offsets.insert((topic, partition), v),
                        None => g.offsets.remove(&(topic, partition)),
                    };
                }
                StoreRecord::Consumer { group, value } => match value {
                    Some(g) => {
                        consumer.insert(group, *g);
                    }
                    None => {
                        consumer.remove(&group);
                    }
                },
                StoreRecord::Group { group, value } => match value {
                    Some(snapshot) => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        snapshot.apply_to(g, now);
                    }
                    None => {
                        groups.remove(&group);
                    }
                },
                StoreRecord::TxnOffset {
                    group,
                    topic,
                    partition,
                    producer_id,
                    value: Some(value),
                } => {
                    pending
                        .entry(group)
                        .or_default()
                        .entry(producer_id)
                        .or_default()
                        .insert((topic, partition), value);
                }
                StoreRecord::TxnOffset {
                    group,
                    topic,
                    partition,
                    producer_id,
                    value: None,
                } => {
                    // The transaction ended (its marker came first).
                    if let Some(p) = pending
                        .get_mut(&group)
                        .and_then(|p| p.get_mut(&producer_id))
                    {
                        p.remove(&(topic, partition));
                    }
                }
                StoreRecord::TxnMarker {
                    group,
                    producer_id,
                    commit,
                } => {
                    let offsets = pending
                        .get_mut(&group)
                        .and_then(|p| p.remove(&producer_id))
                        .unwrap_or_default();
                    if commit && !offsets.is_empty() {
                        groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now))
                            .offsets
                            .extend(offsets);
                    }
                }
            }
        })?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "undecodable records in the group coordinator log were ignored"
            );
        }
        for (id, g) in consumer.iter_mut() {
            // Members keep heartbeating across a restart; their sessions
            // start over now.
            g.restart_sessions(now);
            groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(id, now));
        }
        tracing::info!(
            groups = groups.len(),
            consumer_groups = consumer.len(),
            records = applied,
            "group coordinator loaded"
        );
        Ok(GroupCoordinator {
            cfg,
            inner: Mutex::new(Inner {
                groups,
                consumer,
                log,
                lookups: HashMap::new(),
                pending,
            }),
        })
    }

    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// Whether a classic group of this id exists (a group id has one type).
    pub async fn exists(&self, group_id: &str) -> bool {
        self.inner.lock().await.groups.contains_key(group_id)
    }

    /// Records a FindCoordinator lookup of a group: a consumer about to join.
    pub async fn note_lookup(&self, group_id: &str) {
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        inner
            .lookups
            .entry(group_id.to_string())
            .or_default()
            .push(now);
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        let err = |code: i16| JoinOutcome {
            error: code,
            generation: -1,
            member_id: req.member_id.clone(),
            ..Default::default()
        };
        if group_id.is_empty() {
            return err(code(ResponseError::InvalidGroupId));
        }
        if req.session_timeout_ms < self.cfg.min_session_timeout_ms
            || req.session_timeout_ms > self.cfg.max_session_timeout_ms
        {
            return err(code(ResponseError::InvalidSessionTimeout));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.lock().await;
            let now = now_ms();
            if let Some(g) = inner.consumer.get(group_id) {
                // Kafka's answer to a classic member joining a live
                // consumer-protocol group; an empty one converts.
                if !g.is_empty() {
                    return err(code(ResponseError::InconsistentGroupProtocol));
                }
                if let Err(c) = inner.convert_to_classic(group_id).await {
                    return err(c);
                }
            }
            if !inner.groups.contains_key(group_id) {
                if !req.member_id.is_empty() {
                    return err(code(ResponseError::UnknownMemberId));
                }
                inner
                    .groups
                    .insert(group_id.into(), Group::new(group_id, now));
            }
            let req = req.clone();
            inner.apply_lookups(group_id, now);
            inner
                .groups
                .get_mut(group_id)
                .expect("present")
                .join(req, tx, &self.cfg, now);
            inner.persist_group(group_id).await;
        }
        rx.await
            .unwrap_or_else(|_| err(code(ResponseError::CoordinatorNotAvailable)))
    }

    pub async fn sync(&self, group_id: &str, req: SyncRequest) -> SyncOutcome {
        let err = |code: i16| SyncOutcome {
            error: code,
            ..Default::default()
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.lock().await;
            let Some(g) = inner.groups.get_mut(group_id) else {
                return err(code(ResponseError::UnknownMemberId));
            };
            g.sync(req, tx, now_ms());
            inner.persist_group(group_id).await;
        }
        rx.await
            .unwrap_or_else(|_| err(code(ResponseError::CoordinatorNotAvailable)))
    }

    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut inner = self.inner.lock().await;
        match inner.groups.get_mut(group_id) {
            None => code(ResponseError::UnknownMemberId),
            Some(g) => g.heartbeat(member_id, instance_id, generation, now_ms()),
        }
    }

    /// LeaveGroup: per member identity (member id, instance id) error codes,
    /// or a group-level error.
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        let Some(g) = inner.groups.get_mut(group_id) else {
            return Err(code(ResponseError::UnknownMemberId));
        };
        let codes = members
            .iter()
            .map(|(m, i)| g.leave(m, i.as_deref(), &self.cfg, now))
            .collect();
        inner.persist_group(group_id).await;
        Ok(codes)
    }

    /// Per-offset codes (metadata too large is refused) and the offsets to
    /// store, stamped `now`.
    fn accept_offsets(
        &self,
        offsets: Vec<OffsetCommit>,
        now: i64,
    ) -> (Vec<i16>, Vec<(TopicPartition, CommittedOffset)>) {
        let mut codes = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::new();
        for o in offsets {
            if o.metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.cfg.offset_metadata_max_bytes)
            {
                codes.push(code(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            codes.push(0);
            let value = CommittedOffset {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_timestamp_ms: now,
            };
            accepted.push(((o.topic, o.partition), value));
        }
        (codes, accepted)
    }

    /// OffsetCommit. Per-offset error codes, or one code for all.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetCommit>,
        api_version: i16,
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        if !inner.groups.contains_key(group_id) {
            if generation >= 0 {
                // A member of a generation (or epoch) the coordinator
                // never saw; v9 names it as Kafka does.
                return Err(code(if api_version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                }));
            }
            inner
                .groups
                .insert(group_id.into(), Group::new(group_id, now));
        }
        match inner.validate_consumer_commit(group_id, member_id, generation, api_version) {
            Some(result) => result?,
            None => {
                let g = inner.groups.get(group_id).expect("present");
                g.validate_commit(member_id, instance_id, generation)?;
            }
        }
        let (codes, accepted) = self.accept_offsets(offsets, now);
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| StoreRecord::Offset {
                group: group_id.into(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(value.clone()),
            })
            .collect();
        // Durable first, visible second: an acknowledged commit is on disk
        // (page cache at least) before it is applied and answered.
        inner.persist(records).await?;
        let g = inner.groups.get_mut(group_id).expect("present");
        g.offsets.extend(accepted);
        Ok(codes)
    }

    /// OffsetFetch: committed offsets for the requested partitions (all of
    /// the group's when `topics` is `None`); unknown ones come back `None`.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> {
        let inner = self.inner.lock().await;
        let group = inner.groups.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let found = parts
                        .into_iter()
                        .map(|p| {
                            (
                                p,
                                group.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned()),
                            )
                        })
                        .collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut by_topic: indexmap::IndexMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    indexmap::IndexMap::new();
                if let Some(g) = group {
                    for ((t, p), o) in &g.offsets {
                        by_topic
                            .entry(t.clone())
                            .or_default()
                            .push((*p, Some(o.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// TxnOffsetCommit: offsets committed inside `producer_id`'s
    /// transaction. Persisted now, visible to OffsetFetch only when the
    /// transaction commits ([`Self::complete_txn`]). The caller (the
    /// transaction coordinator) has checked the producer and that the group
    /// is part of its open transaction.
    pub async fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        member: Option<(&str, Option<&str>, i32)>,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        if let (Some(g), Some((member_id, instance_id, generation))) =
            (inner.groups.get(group_id), member)
        {
            // v3+: a member of a generation must still be one (fencing of
            // zombie consumers, KIP-447); -1 / empty member skip the check.
            if generation >= 0 || !member_id.is_empty() {
                match inner.consumer.get(group_id) {
                    // TxnOffsetCommit has no STALE_MEMBER_EPOCH: Kafka
                    // answers a wrong member epoch with ILLEGAL_GENERATION.
                    Some(cg) => cg.validate_commit(member_id, generation).map_err(|c| {
                        if c == code(ResponseError::StaleMemberEpoch) {
                            code(ResponseError::IllegalGeneration)
                        } else {
                            c
                        }
                    })?,
                    None => g.validate_commit(member_id, instance_id, generation)?,
                }
            }
        }
        let (codes, accepted) = self.accept_offsets(offsets, now);
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| StoreRecord::TxnOffset {
                group: group_id.into(),
                topic: topic.clone(),
                partition: *partition,
                producer_id,
                value: Some(value.clone()),
            })
            .collect();
        inner.persist(records).await?;
        inner
            .pending
            .entry(group_id.into())
            .or_default()
            .entry(producer_id)
            .or_default()
            .extend(accepted);
        Ok(codes)
    }

    /// Ends `producer_id`'s transaction for a group: on commit its pending
    /// offsets become the group's committed offsets, on abort they vanish.
    /// The marker is persisted first, so a restart replays the same outcome.
    pub async fn complete_txn(
        &self,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), i16> {
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        // One batch (appended atomically): the marker, the committed
        // offsets as ordinary offset records, and tombstones for the
        // pending records, so the group log compacts to plain offsets.
        let pending: Vec<(TopicPartition, CommittedOffset)> = inner
            .pending
            .get(group_id)
            .and_then(|p| p.get(&producer_id))
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut records = vec![StoreRecord::TxnMarker {
            group: group_id.into(),
            producer_id,
            commit,
        }];
        if commit {
            records.extend(
                pending
                    .iter()
                    .map(|((topic, partition), value)| StoreRecord::Offset {
                        group: group_id.into(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: Some(value.clone()),
                    }),
            );
        }
        records.extend(
            pending
                .iter()
                .map(|((topic, partition), _)| StoreRecord::TxnOffset {
                    group: group_id.into(),
                    topic: topic.clone(),
                    partition: *partition,
                    producer_id,
                    value: None,
                }),
        );
        inner.persist(records).await?;
        let offsets = inner
            .pending
            .get_mut(group_id)
            .and_then(|p| p.remove(&producer_id))
            .unwrap_or_default();
        if inner.pending.get(group_id).is_some_and(|p| p.is_empty()) {
            inner.pending.remove(group_id);
        }
        if commit && !offsets.is_empty() {
            let g = inner
                .groups
                .entry(group_id.into())
                .or_insert_with(|| Group::new(group_id, now));
            g.offsets.extend(offsets);
        }
        Ok(())
    }

    /// Partitions of the group with offsets pending in an open transaction
    /// (OffsetFetch `require_stable` answers UNSTABLE_OFFSET_COMMIT for them).
    pub async fn unstable_partitions(&self, group_id: &str) -> HashSet<(String, i32)> {
        let inner = self.inner.lock().await;
        inner
            .pending
            .get(group_id)
            .map(|p| p.values().flat_map(|o| o.keys().cloned()).collect())
            .unwrap_or_default()
    }

    /// (group id, protocol type, state, group type) of every group; the
    /// group type is "classic" or "consumer".
    pub async fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .groups
            .values()
            .map(|g| match inner.consumer.get(&g.id) {
                Some(c) => (g.id.clone(), "consumer".into(), c.state(), "consumer"),
                None => (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
            })
            .collect();
        out.sort();
        out
    }

    /// (topic, partition, committed offset) of a group, sorted (metrics).
    pub async fn committed(&self, group_id: &str) -> Vec<(String, i32, i64)> {
        let inner = self.inner.lock().await;
        let mut out: Vec<_> = inner
            .groups
            .get(group_id)
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|((t, p), o)| (t.clone(), *p, o.offset))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Whether the id is a consumer-protocol group.
    pub async fn is_consumer_group(&self, group_id: &str) -> bool {
        self.inner.lock().await.consumer.contains_key(group_id)
    }

    /// ConsumerGroupHeartbeat (validated on its own by the caller).
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        image: &TopicImage,
        settings: &Settings,
    ) -> Result<HeartbeatReply, HbError> {
        let not_consumer = || {
            (
                code(ResponseError::GroupIdNotFound),
                format!("Group {group_id} is not a consumer group."),
            )
        };
        let mut inner = self.inner.lock().await;
        let now = now_ms();
        let created = !inner.consumer.contains_key(group_id);
        if created {
            match inner.groups.get(group_id) {
                // A live classic group is not converted under its members.
                Some(g) if !g.is_empty() => return Err(not_consumer()),
                _ if hb.member_epoch != 0 => {
                    return Err((
                        code(ResponseError::GroupIdNotFound),
                        format!("Group {group_id} not found."),
                    ))
                }
                _ => {}
            }
            inner
                .consumer
                .insert(group_id.into(), ConsumerGroup::new(group_id));
        }
        let g = inner.consumer.get_mut(group_id).expect("present");
        let result = g.heartbeat(hb, image, settings, now);
        let empty = g.is_empty();
        if created && result.is_err() {
            inner.consumer.remove(group_id);
            return result;
        }
        let holder = inner
            .groups
            .entry(group_id.into())
            .or_insert_with(|| Group::new(group_id, now));
        if empty {
            holder.empty_since_ms = now;
        }
        inner.persist_group(group_id).await;
        result
    }

    /// ConsumerGroupDescribe: a copy of the group, or the error Kafka gives.
    pub async fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroup, HbError> {
        let inner = self.inner.lock().await;
        match inner.consumer.get(group_id) {
            Some(g) => Ok(g.clone()),
            None if inner.groups.contains_key(group_id) => Err((
                code(ResponseError::GroupIdNotFound),
                format!("Group {group_id} is not a consumer group."),
            )),
            None => Err((
                code(ResponseError::GroupIdNotFound),
                format!("Group {group_id} not found."),
            )),
        }
    }

    /// OffsetFetch v9 with a member id and epoch: the member must be one
    /// of the consumer group at that epoch. Without (null / -1), or for
    /// other groups, nothing is checked.
    pub async fn validate_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), i16> {
        let Some(member_id) = member_id.filter(|_| epoch >= 0) else {
            return Ok(());
        };
        let inner = self.inner.lock().await;
        match inner.consumer.get(group_id) {
            Some(g) => g.validate_commit(member_id, epoch),
            None => Ok(()),
        }
    }

    /// Resolves consumer groups' new subscription regexes soon after the
    /// heartbeat that brought them, so the next heartbeat carries the
    /// matched partitions.
    /// `image` is only built when some group waits for a resolution (this
    /// runs on every maintenance tick).
    pub async fn resolve_regexes(&self, image: impl FnOnce() -> TopicImage) {
        let mut inner = self.inner.lock().await;
        let ids: Vec<String> = inner
            .consumer
            .iter()
            .filter(|(_, g)| g.has_unresolved())
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        let image = image();
        for id in ids {
            if let Some(g) = inner.consumer.get_mut(&id) {
                g.resolve_regexes(&image, now_ms());
            }
            inner.persist_group(&id).await;
        }
    }

    /// DescribeGroups: `None` for unknown ids and for consumer groups
    /// (which DescribeGroups reports as not classic, as Kafka does).
    pub async fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let inner = self.inner.lock().await;
        if inner.consumer.contains_key(group_id) {
            return None;
        }
        let g = inner.groups.get(group_id)?;
        let proto = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if g.state == GroupState::Stable {
                proto.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        m.metadata_for(&proto),
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    }

    /// DeleteGroups: only empty groups; their offsets go too.
    pub async fn delete_groups(&self, ids: &[String]) -> Vec<i16> {
        let mut inner = self.inner.lock().await;
        let mut codes = Vec::with_capacity(ids.len());
        for id in ids {
            let consumer_members = inner.consumer.get(id).map(|c| !c.is_empty());
            let result = match inner.groups.get(id) {
                None => Err(code(ResponseError::GroupIdNotFound)),
                Some(g) if !g.is_empty() || consumer_members == Some(true) => {
                    Err(code(ResponseError::NonEmptyGroup))
                }
                Some(g) => {
                    let mut records: Vec<StoreRecord> = g
                        .offsets
                        .keys()
                        .map(|(t, p)| StoreRecord::Offset {
                            group: id.clone(),
                            topic: t.clone(),
                            partition: *p,
                            value: None,
                        })
                        .collect();
                    records.push(StoreRecord::Group {
                        group: id.clone(),
                        value: None,
                    });
                    if consumer_members.is_some() {
                        records.push(StoreRecord::Consumer {
                            group: id.clone(),
                            value: None,
                        });
                    }
                    inner.persist(records).await.map(|_| {
                        inner.groups.remove(id);
                        inner.consumer.remove(id);
                    })
                }
            };
            codes.push(result.err().unwrap_or(0));
        }
        codes
    }

    /// OffsetDelete: refused per partition while members subscribe to the topic.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<(String, Vec<(i32, i16)>)>, i16> {
        let mut inner = self.inner.lock().await;
        let Some(g) = inner.groups.get(group_id) else {
            return Err(code(ResponseError::GroupIdNotFound));
        };
        let subscribed = match inner.consumer.get(group_id) {
            Some(c) => Some(c.subscribed_topic_names()),
            None if g.is_empty() => Some(Vec::new()),
            None => g.subscribed_topics(),
        };
        let Some(subscribed) = subscribed else {
            // Members of a non-consumer protocol: Kafka refuses outright.
            return Err(code(ResponseError::NonEmptyGroup));
        };
        let mut deleted: Vec<(String, i32)> = Vec::new();
        let mut out = Vec::new();
        for (t, parts) in topics {
            let busy = subscribed.contains(&t);
            let codes = parts
                .into_iter()
                .map(|p| {
                    if busy {
                        (p, code(ResponseError::GroupSubscribedToTopic))
                    } else {
                        deleted.push((t.clone(), p));
                        (p, 0)
                    }
                })
                .collect();
            out.push((t, codes));
        }
        let tombstones = deleted
            .iter()
            .map(|(topic, partition)| StoreRecord::Offset {
                group: group_id.into(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        inner.persist(tombstones).await?;
        let g = inner.groups.get_mut(group_id).expect("present");
        for k in deleted {
            g.offsets.remove(&k);
        }
        Ok(out)
    }

    /// Session and rebalance timeouts, offset retention for empty groups.
    pub async fn tick(&self) {
        self.tick_at(now_ms()).await
    }

    /// `tick` at a given time (tests drive it with a controlled clock).
    pub async fn tick_at(&self, now: i64) {
        let mut inner = self.inner.lock().await;
        let ids: Vec<String> = inner.groups.keys().cloned().collect();
        let mut records = Vec::new();
        let mut remove = Vec::new();
        let consumer_ids: Vec<String> = inner.consumer.keys().cloned().collect();
        for id in consumer_ids {
            let g = inner.consumer.get_mut(&id).expect("present");
            let expired = g.tick(now);
            if !expired.is_empty() {
                tracing::info!(group = %id, members = ?expired, "consumer group members expired");
            }
            let empty = g.is_empty();
            if !expired.is_empty() && empty {
                if let Some(holder) = inner.groups.get_mut(&id) {
                    holder.empty_since_ms = now;
                }
            }
            inner.persist_group(&id).await;
        }
        inner.lookups.retain(|_, times| {
            times
                .last()
                .is_some_and(|t| now - t < JOIN_ANNOUNCE_WINDOW_MS)
        });
        for id in ids {
            inner.apply_lookups(&id, now);
            let g = inner.groups.get_mut(&id).expect("present");
            g.tick(&self.cfg, now);
            if g.dirty {
                g.dirty = false;
                records.push(StoreRecord::Group {
                    group: id.clone(),
                    value: Some(GroupSnapshot::of(g)),
                });
            }
            let consumer_live = inner.consumer.get(&id).is_some_and(|c| !c.is_empty());
            let g = inner.groups.get_mut(&id).expect("present");
            if g.state == GroupState::Empty && !consumer_live {
                let retention = self.cfg.offsets_retention_ms;
                let since = g.empty_since_ms;
                let expired: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(_, o)| now - o.commit_timestamp_ms.max(since) >= retention)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in expired {
                    g.offsets.remove(&k);
                    records.push(StoreRecord::Offset {
                        group: id.clone(),
                        topic: k.0,
                        partition: k.1,
                        value: None,
                    });
                }
                if g.offsets.is_empty() && now - since >= retention {
                    remove.push(id.clone());
                    records.push(StoreRecord::Group {
                        group: id.clone(),
                        value: None,
                    });
                }
            }
        }
        for id in remove {
            inner.groups.remove(&id);
            if inner.consumer.remove(&id).is_some() {
                records.push(StoreRecord::Consumer {
                    group: id.clone(),
                    value: None,
                });
            }
        }
        let _ = inner.persist(records).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::log::topic_config::TopicConfig;

    fn coordinator(dir: &std::path::Path, fresh: bool) -> GroupCoordinator {
        let tc = Arc::new(TopicConfig::resolve(
            &Config::default(),
            &Default::default(),
        ));
        let log = if fresh {
            Partition::create(dir, "__consumer_offsets", 0, tc).unwrap()
        } else {
            Partition::open(dir, "__consumer_offsets", 0, tc, true).unwrap()
        };
        let cfg = GroupConfig {
            offsets_retention_ms: 60_000,
            ..Config::default().group_config()
        };
        GroupCoordinator::open(Arc::new(log), cfg).unwrap()
    }

    fn offset(topic: &str, offset: i64) -> OffsetCommit {
        OffsetCommit {
            topic: topic.into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }
    }

    #[tokio::test]
    async fn offsets_of_empty_groups_expire_and_stay_expired_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), true);
        assert_eq!(
            c.commit("old", "", None, -1, vec![offset("t", 5)], 9).await,
            Ok(vec![0])
        );
        assert_eq!(
            c.commit("other", "", None, -1, vec![offset("t", 7)], 9)
                .await,
            Ok(vec![0])
        );
        let now = now_ms();
        // Within retention nothing expires.
        c.tick_at(now + 30_000).await;
        assert_eq!(c.fetch_offsets("old", None).await.len(), 1);
        // Past retention: offsets and the empty group are gone, durably.
        c.tick_at(now + 61_000).await;
        assert!(c.fetch_offsets("old", None).await.is_empty());
        assert!(c.list().await.is_empty());
        drop(c);
        let c = coordinator(dir.path(), false);
        assert!(c.fetch_offsets("old", None).await.is_empty());
        assert!(c.describe("other").await.is_none());
    }

    /// The group log is compacted: thousands of commits of one offset and
    /// finished transactions leave a log the size of its live keys, which
    /// replays to the same state.
    #[tokio::test]
    async fn the_compacted_group_log_replays_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let overrides: indexmap::IndexMap<String, String> =
            [("cleanup.policy", "compact"), ("segment.bytes", "4096")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let tc = Arc::new(TopicConfig::resolve(&Config::default(), &overrides));
        let log =
            Arc::new(Partition::create(dir.path(), "__consumer_offsets", 0, tc.clone()).unwrap());
        let c = GroupCoordinator::open(log.clone(), Config::default().group_config()).unwrap();
        for i in 0..3000 {
            c.commit("g", "", None, -1, vec![offset("t", i)], 9)
                .await
                .unwrap();
        }
        // A committed and an aborted transaction, and one still open.
        c.txn_commit("g", 7, None, vec![offset("u", 70)])
            .await
            .unwrap();
        c.complete_txn("g", 7, true).await.unwrap();
        c.txn_commit("g", 8, None, vec![offset("v", 80)])
            .await
            .unwrap();
        c.complete_txn("g", 8, false).await.unwrap();
        c.txn_commit("g", 9, None, vec![offset("w", 90)])
            .await
            .unwrap();
        let before = log.size_bytes();
        let cfg = crate::log::cleaner::CleanerConfig {
            dedupe_buffer_bytes: 1 << 20,
            io_max_bytes_per_second: f64::INFINITY,
        };
        crate::log::cleaner::clean_partition(&log, None, &cfg, now_ms())
            .unwrap()
            .expect("a pass");
        assert!(
            log.size_bytes() * 10 < before,
            "{} -> {}",
            before,
            log.size_bytes()
        );
        drop(c);
        let c = GroupCoordinator::open(log, Config::default().group_config()).unwrap();
        let found: Vec<(String, i64)> = c
            .fetch_offsets("g", None)
            .await
            .into_iter()
            .map(|(t, parts)| (t, parts[0].1.as_ref().unwrap().offset))
            .collect();
        assert_eq!(found, vec![("t".to_string(), 2999), ("u".to_string(), 70)]);
        // The open transaction is still pending and completes after replay.
        assert!(c
            .unstable_partitions("g")
            .await
            .contains(&("w".to_string(), 0)));
        c.complete_txn("g", 9, true).await.unwrap();
        assert_eq!(c.fetch_offsets("g", None).await.len(), 3);
    }

    #[tokio::test]
    async fn replay_restores_offsets_and_members() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), true);
        c.commit("g", "", None, -1, vec![offset("t", 3), offset("u", 9)], 9)
            .await
            .unwrap();
        c.commit("g", "", None, -1, vec![offset("t", 4)], 9)
            .await
            .unwrap();
        assert_eq!(
            c.delete_offsets("g", vec![("u".into(), vec![0])])
                .await
                .map(|r| r[0].1[0].1),
            Ok(0)
        );
        drop(c);
        let c = coordinator(dir.path(), false);
        let found = c.fetch_offsets("g", None).await;
        assert_eq!(found.len(), 1);
        assert_eq!(
            (
                found[0].0.as_str(),
                found[0].1[0].1.as_ref().map(|o| o.offset)
            ),
            ("t", Some(4))
        );
    }
}
