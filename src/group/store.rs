//! Persistence of committed offsets and group metadata in an internal log
//! (`<data-dir>/__consumer_offsets-0`), replayed at start-up.
//!
//! Each record's key and value use this layout (big-endian; strings are i32
//! length + UTF-8, -1 = null; bytes are i32 length + bytes):
//!
//! ```text
//! offset key:   i16 1 | group str | topic str | partition i32
//! offset value: i16 0 (version) | offset i64 | leader epoch i32 | metadata str | commit ms i64
//! group key:    i16 2 | group str
//! group value:  i16 0 | protocol type str | generation i32 | protocol str | leader str
//!               | member count i32 | per member: id str | instance id str | client id str
//!               | client host str | rebalance timeout i32 | session timeout i32
//!               | subscription bytes | assignment bytes
//! txn offset key:   i16 3 | group str | topic str | partition i32 | producer id i64
//! txn offset value: as offset value (pending until the transaction ends;
//!                   then a tombstone, the outcome being in offset records)
//! txn marker key:   i16 4 | group str | producer id i64
//! txn marker value: i16 0 | commit i8 (1 commit, 0 abort)
//! consumer group key:   i16 5 | group str      (KIP-848 consumer-protocol group)
//! consumer group value: i16 0 | group epoch i32 | assignment epoch i32 | assignor str
//!               | metadata count i32 | per topic: name str | id uuid (16) | partitions i32
//!               | regex count i32 | per regex: regex str | topic count i32 | topic str...
//!               | member count i32 | per member: id str | instance id str | rack id str
//!               | client id str | client host str | rebalance timeout i32
//!               | session timeout i64 | topic name count i32 | name str... | regex str
//!               | server assignor str | epoch i32 | previous epoch i32 | state i8
//!               | assigned | pending revocation | target
//! assignment:   topic count i32 | per topic: id uuid | count i32 | partition i32...
//! ```
//!
//! A null value is a tombstone (offset deleted, group deleted). Later
//! records win. Records go through the ordinary append path, so they have
//! the same durability as produced data.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::log::internal::{
    self, get_bytes, get_i16, get_i32, get_i64, get_i8, get_str, need, put_bytes, put_str,
};

use crate::group::assignor::Assignment;
use crate::group::consumer::{ConsumerGroup, ConsumerMember, MemberState};
use crate::group::state::{CommittedOffset, Group, Member};

const KEY_OFFSET: i16 = 1;
const KEY_GROUP: i16 = 2;
const KEY_TXN_OFFSET: i16 = 3;
const KEY_TXN_MARKER: i16 = 4;
const KEY_CONSUMER_GROUP: i16 = 5;

/// One decoded record of the internal log.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
    /// An offset committed inside a transaction (TxnOffsetCommit): pending
    /// until the transaction's marker.
    TxnOffset {
        group: String,
        topic: String,
        partition: i32,
        producer_id: i64,
        /// `None`: a tombstone, written when the transaction ended (its
        /// outcome is then in `Offset` records), so compaction can drop
        /// the pending record.
        value: Option<CommittedOffset>,
    },
    /// The end of `producer_id`'s transaction for this group: its pending
    /// offsets become committed offsets, or are dropped.
    TxnMarker {
        group: String,
        producer_id: i64,
        commit: bool,
    },
    /// A consumer-protocol group's membership, epochs and assignments
    /// (offsets are `Offset` records, as for classic groups).
    Consumer {
        group: String,
        value: Option<Box<ConsumerGroup>>,
    },
}

/// The persisted form of a group's membership.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberSnapshot {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl GroupSnapshot {
    pub fn of(g: &Group) -> GroupSnapshot {
        let proto = g.protocol_name.clone().unwrap_or_default();
        GroupSnapshot {
            protocol_type: g.protocol_type.clone(),
            generation: g.generation,
            protocol_name: g.protocol_name.clone(),
            leader: g.leader.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberSnapshot {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&proto),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn apply_to(self, g: &mut Group, now: i64) {
        let proto = self.protocol_name.clone().unwrap_or_default();
        let members = self
            .members
            .into_iter()
            .map(|m| Member::restored(m, &proto, now))
            .collect();
        g.restore(
            self.generation,
            self.protocol_type,
            self.protocol_name,
            self.leader,
            members,
            now,
        );
    }
}

impl StoreRecord {
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            StoreRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(KEY_OFFSET);
                put_str(&mut key, Some(group));
                put_str(&mut key, Some(topic));
                key.put_i32(*partition);
                (key.freeze(), value.as_ref().map(encode_offset))
            }
            StoreRecord::TxnOffset {
                group,
                topic,
                partition,
                producer_id,
                value,
            } => {
                key.put_i16(KEY_TXN_OFFSET);
                put_str(&mut key, Some(group));
                put_str(&mut key, Some(topic));
                key.put_i32(*partition);
                key.put_i64(*producer_id);
                (key.freeze(), value.as_ref().map(encode_offset))
            }
            StoreRecord::TxnMarker {
                group,
                producer_id,
                commit,
            } => {
                key.put_i16(KEY_TXN_MARKER);
                put_str(&mut key, Some(group));
                key.put_i64(*producer_id);
                let mut v = BytesMut::new();
                v.put_i16(0);
                v.put_i8(*commit as i8);
                (key.freeze(), Some(v.freeze()))
            }
            StoreRecord::Consumer { group, value } => {
                key.put_i16(KEY_CONSUMER_GROUP);
                put_str(&mut key, Some(group));
                (key.freeze(), value.as_deref().map(encode_consumer))
            }
            StoreRecord::Group { group, value } => {
                key.put_i16(KEY_GROUP);
                put_str(&mut key, Some(group));
                let value = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(0);
                    put_str(&mut b, g.protocol_type.as_deref());
                    b.put_i32(g.generation);
                    put_str(&mut b, g.protocol_name.as_deref());
                    put_str(&mut b, g.leader.as_deref());
                    b.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut b, Some(&m.id));
                        put_str(&mut b, m.instance_id.as_deref());
                        put_str(&mut b, Some(&m.client_id));
                        put_str(&mut b, Some(&m.client_host));
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    pub fn decode(mut key: Bytes, value: Option<Bytes>) -> Option<StoreRecord> {
        need(&key, 2)?;
        match key.get_i16() {
            KEY_OFFSET => {
                let group = get_str(&mut key)??;
                let topic = get_str(&mut key)??;
                let partition = get_i32(&mut key)?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_offset(v)?),
                };
                Some(StoreRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            KEY_TXN_OFFSET => Some(StoreRecord::TxnOffset {
                group: get_str(&mut key)??,
                topic: get_str(&mut key)??,
                partition: get_i32(&mut key)?,
                producer_id: get_i64(&mut key)?,
                value: match value {
                    None => None,
                    Some(v) => Some(decode_offset(v)?),
                },
            }),
            KEY_TXN_MARKER => {
                let group = get_str(&mut key)??;
                let producer_id = get_i64(&mut key)?;
                let mut v = value?;
                need(&v, 3)?;
                let _version = v.get_i16();
                Some(StoreRecord::TxnMarker {
                    group,
                    producer_id,
                    commit: v.get_i8() != 0,
                })
            }
            KEY_GROUP => {
                let group = get_str(&mut key)??;
                let value = match value {
                    None => None,
                    Some(mut v) => {
                        need(&v, 2)?;
                        let _version = v.get_i16();
                        let protocol_type = get_str(&mut v)?;
                        let generation = get_i32(&mut v)?;
                        let protocol_name = get_str(&mut v)?;
                        let leader = get_str(&mut v)?;
                        let n = get_i32(&mut v)?;
                        let mut members = Vec::new();
                        for _ in 0..n.max(0) {
                            members.push(MemberSnapshot {
                                id: get_str(&mut v)??,
                                instance_id: get_str(&mut v)?,
                                client_id: get_str(&mut v)?.unwrap_or_default(),
                                client_host: get_str(&mut v)?.unwrap_or_default(),
                                rebalance_timeout_ms: get_i32(&mut v)?,
                                session_timeout_ms: get_i32(&mut v)?,
                                subscription: get_bytes(&mut v)?,
                                assignment: get_bytes(&mut v)?,
                            });
                        }
                        Some(GroupSnapshot {
                            protocol_type,
                            generation,
                            protocol_name,
                            leader,
                            members,
                        })
                    }
                };
                Some(StoreRecord::Group { group, value })
            }
            KEY_CONSUMER_GROUP => {
                let group = get_str(&mut key)??;
                let value = match value {
                    None => None,
                    Some(v) => Some(Box::new(decode_consumer(&group, v)?)),
                };
                Some(StoreRecord::Consumer { group, value })
            }
            _ => None,
        }
    }
}

fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    b.put_i32(a.len() as i32);
    for (t, ps) in a {
        b.put_slice(t.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
}

fn get_uuid(b: &mut Bytes) -> Option<uuid::Uuid> {
    need(b, 16)?;
    let mut id = [0u8; 16];
    b.copy_to_slice(&mut id);
    Some(uuid::Uuid::from_bytes(id))
}

/// A count read from the log, bounded by the bytes left (each element
/// takes at least `min_size` bytes), so a corrupt count cannot allocate.
fn get_count(b: &mut Bytes, min_size: usize) -> Option<usize> {
    let n = usize::try_from(get_i32(b)?).ok()?;
    (n.saturating_mul(min_size) <= b.len()).then_some(n)
}

fn get_assignment(b: &mut Bytes) -> Option<Assignment> {
    let mut a = Assignment::new();
    for _ in 0..get_count(b, 20)? {
        let t = get_uuid(b)?;
        let mut ps = std::collections::BTreeSet::new();
        for _ in 0..get_count(b, 4)? {
            ps.insert(get_i32(b)?);
        }
        a.insert(t, ps);
    }
    Some(a)
}

fn encode_consumer(g: &ConsumerGroup) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(g.group_epoch);
    b.put_i32(g.assignment_epoch);
    put_str(&mut b, Some(&g.assignor));
    b.put_i32(g.subscribed_metadata.len() as i32);
    for (name, (id, n)) in &g.subscribed_metadata {
        put_str(&mut b, Some(name));
        b.put_slice(id.as_bytes());
        b.put_i32(*n);
    }
    b.put_i32(g.resolved.len() as i32);
    for (re, topics) in &g.resolved {
        put_str(&mut b, Some(re));
        b.put_i32(topics.len() as i32);
        for t in topics {
            put_str(&mut b, Some(t));
        }
    }
    b.put_i32(g.members.len() as i32);
    for m in g.members.values() {
        put_str(&mut b, Some(&m.id));
        put_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, m.rack_id.as_deref());
        put_str(&mut b, Some(&m.client_id));
        put_str(&mut b, Some(&m.client_host));
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i64(m.session_timeout_ms);
        b.put_i32(m.topic_names.len() as i32);
        for t in &m.topic_names {
            put_str(&mut b, Some(t));
        }
        put_str(&mut b, m.regex.as_deref());
        put_str(&mut b, m.server_assignor.as_deref());
        b.put_i32(m.epoch);
        b.put_i32(m.previous_epoch);
        b.put_i8(m.state.code());
        put_assignment(&mut b, &m.assigned);
        put_assignment(&mut b, &m.pending_revocation);
        put_assignment(&mut b, g.target.get(&m.id).unwrap_or(&Assignment::new()));
    }
    b.freeze()
}

fn decode_consumer(id: &str, mut v: Bytes) -> Option<ConsumerGroup> {
    let v = &mut v;
    let _version = get_i16(v)?;
    let mut g = ConsumerGroup::new(id);
    g.group_epoch = get_i32(v)?;
    g.assignment_epoch = get_i32(v)?;
    g.assignor = get_str(v)??;
    for _ in 0..get_count(v, 24)? {
        let name = get_str(v)??;
        let id = get_uuid(v)?;
        g.subscribed_metadata.insert(name, (id, get_i32(v)?));
    }
    for _ in 0..get_count(v, 8)? {
        let re = get_str(v)??;
        let mut topics = std::collections::BTreeSet::new();
        for _ in 0..get_count(v, 4)? {
            topics.insert(get_str(v)??);
        }
        g.resolved.insert(re, topics);
    }
    for _ in 0..get_count(v, 40)? {
        let (id, instance_id, rack_id) = (get_str(v)??, get_str(v)?, get_str(v)?);
        let (client_id, client_host) = (get_str(v)?, get_str(v)?);
        let (rebalance_timeout_ms, session_timeout_ms) = (get_i32(v)?, get_i64(v)?);
        // Sessions restart after the replay (`restart_sessions`).
        let mut m =
            ConsumerMember::new(id, instance_id, rebalance_timeout_ms, session_timeout_ms, 0);
        m.session_deadline_ms = 0;
        m.rack_id = rack_id;
        m.client_id = client_id.unwrap_or_default();
        m.client_host = client_host.unwrap_or_default();
        for _ in 0..get_count(v, 4)? {
            m.topic_names.insert(get_str(v)??);
        }
        m.regex = get_str(v)?;
        m.server_assignor = get_str(v)?;
        m.epoch = get_i32(v)?;
        m.previous_epoch = get_i32(v)?;
        m.state = MemberState::from_code(get_i8(v)?);
        m.assigned = get_assignment(v)?;
        m.pending_revocation = get_assignment(v)?;
        if !m.pending_revocation.is_empty() {
            // Re-armed by `restart_sessions`.
            m.rebalance_deadline_ms = Some(0);
        }
        g.target.insert(m.id.clone(), get_assignment(v)?);
        g.members.insert(m.id.clone(), m);
    }
    Some(g)
}

fn encode_offset(v: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, v.metadata.as_deref());
    b.put_i64(v.commit_timestamp_ms);
    b.freeze()
}

fn decode_offset(mut v: Bytes) -> Option<CommittedOffset> {
    need(&v, 2)?;
    let _version = v.get_i16();
    Some(CommittedOffset {
        offset: get_i64(&mut v)?,
        leader_epoch: get_i32(&mut v)?,
        metadata: get_str(&mut v)?,
        commit_timestamp_ms: get_i64(&mut v)?,
    })
}

/// Encodes records as one uncompressed v2 batch for the internal log.
pub fn encode_batch(records: &[StoreRecord], now_ms: i64) -> Bytes {
    internal::encode_batch(records.iter().map(StoreRecord::encode).collect(), now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            StoreRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 0,
                    metadata: Some("m\u{e9}ta".into()),
                    commit_timestamp_ms: 7,
                }),
            },
            // Client-supplied strings may exceed 32 KiB.
            StoreRecord::Offset {
                group: "g".repeat(40_000),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            StoreRecord::Group {
                group: "g".into(),
                value: Some(GroupSnapshot {
                    protocol_type: Some("consumer".into()),
                    generation: 5,
                    protocol_name: Some("range".into()),
                    leader: Some("m1".into()),
                    members: vec![MemberSnapshot {
                        id: "m1".into(),
                        instance_id: None,
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 1,
                        session_timeout_ms: 2,
                        subscription: Bytes::from_static(b"sub"),
                        assignment: Bytes::from_static(b"asg"),
                    }],
                }),
            },
            StoreRecord::Group {
                group: "h".into(),
                value: None,
            },
            StoreRecord::TxnOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                producer_id: 77,
                value: Some(CommittedOffset {
                    offset: 9,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp_ms: 3,
                }),
            },
            StoreRecord::TxnOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                producer_id: 77,
                value: None,
            },
            StoreRecord::Consumer {
                group: "cg".into(),
                value: Some(Box::new({
                    let mut g = ConsumerGroup::new("cg");
                    g.group_epoch = 3;
                    g.assignment_epoch = 3;
                    g.subscribed_metadata
                        .insert("t".into(), (uuid::Uuid::from_u128(5), 2));
                    g.resolved.insert("t.*".into(), ["t".to_string()].into());
                    g.members.insert(
                        "m".into(),
                        ConsumerMember {
                            id: "m".into(),
                            instance_id: Some("i".into()),
                            rack_id: None,
                            client_id: "c".into(),
                            client_host: "/h".into(),
                            rebalance_timeout_ms: 5,
                            topic_names: ["t".to_string()].into(),
                            regex: Some("t.*".into()),
                            server_assignor: Some("range".into()),
                            epoch: 3,
                            previous_epoch: 2,
                            state: MemberState::UnrevokedPartitions,
                            assigned: [(uuid::Uuid::from_u128(5), [0].into())].into(),
                            pending_revocation: [(uuid::Uuid::from_u128(5), [1].into())].into(),
                            session_timeout_ms: 10_000,
                            session_deadline_ms: 0,
                            rebalance_deadline_ms: Some(0),
                        },
                    );
                    g.target
                        .insert("m".into(), [(uuid::Uuid::from_u128(5), [0].into())].into());
                    g
                })),
            },
            StoreRecord::Consumer {
                group: "cg".into(),
                value: None,
            },
            StoreRecord::TxnMarker {
                group: "g".into(),
                producer_id: 77,
                commit: true,
            },
        ];
        let back: Vec<StoreRecord> = recs
            .iter()
            .map(|r| {
                let (k, v) = r.encode();
                StoreRecord::decode(k, v).expect("decodes")
            })
            .collect();
        assert_eq!(back, recs);
    }
}
