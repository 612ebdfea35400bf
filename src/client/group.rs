//! A classic-protocol consumer group member (JoinGroup, SyncGroup,
//! Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup) with the `range`
//! assignor, enough for `weir consume --group`. One task drives it between
//! fetches: [`GroupMember::poll`] heartbeats when due and rejoins when the
//! coordinator asks for a rebalance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{check, Client, ClientError, Result};

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// (topic, partition)
pub type TopicPartition = (String, i32);

pub struct GroupMember {
    pub group: String,
    member_id: String,
    generation: i32,
    coordinator: i32,
    topics: Vec<String>,
    assignment: Vec<TopicPartition>,
    last_heartbeat: Instant,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl GroupMember {
    /// Joins `group` subscribed to `topics` and waits for an assignment.
    pub async fn join(
        client: &mut Client,
        group: &str,
        topics: Vec<String>,
    ) -> Result<GroupMember> {
        let coordinator = coordinator_node(client, group).await?;
        let mut m = GroupMember {
            group: group.to_string(),
            member_id: String::new(),
            generation: -1,
            coordinator,
            topics,
            assignment: Vec::new(),
            last_heartbeat: Instant::now(),
        };
        m.rejoin(client).await?;
        Ok(m)
    }

    /// The partitions assigned in the current generation.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// JoinGroup + SyncGroup until a generation is complete.
    pub async fn rejoin(&mut self, client: &mut Client) -> Result<()> {
        loop {
            let metadata = subscription(&self.topics);
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(sb(&self.member_id))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(sb("range"))
                .with_metadata(metadata)]);
            let conn = client.broker(self.coordinator).await?;
            let addr = conn.addr().to_string();
            let resp = conn
                .send_waiting(&req, Duration::from_millis(REBALANCE_TIMEOUT_MS as u64))
                .await?;
            if resp.error_code == ResponseError::MemberIdRequired.code() {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            if resp.error_code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
                continue;
            }
            if resp.error_code == ResponseError::RebalanceInProgress.code() {
                continue;
            }
            check(&addr, resp.error_code, None)?;
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let assignments = if resp.leader == resp.member_id {
                range_assign(client, &resp.members).await?
            } else {
                Vec::new()
            };
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(sb(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(sb(&self.member_id))
                .with_protocol_type(Some(sb("consumer")))
                .with_protocol_name(Some(sb("range")))
                .with_assignments(assignments);
            let conn = client.broker(self.coordinator).await?;
            let resp = conn
                .send_waiting(&req, Duration::from_millis(REBALANCE_TIMEOUT_MS as u64))
                .await?;
            if resp.error_code == ResponseError::RebalanceInProgress.code() {
                continue;
            }
            check(&addr, resp.error_code, None)?;
            self.assignment = parse_assignment(&resp.assignment);
            self.last_heartbeat = Instant::now();
            return Ok(());
        }
    }

    /// Heartbeats when due. `Ok(true)` when the group rebalanced and the
    /// assignment may have changed (the caller re-reads positions).
    pub async fn poll(&mut self, client: &mut Client) -> Result<bool> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id));
        let conn = client.broker(self.coordinator).await?;
        let addr = conn.addr().to_string();
        let resp = conn.send(&req).await?;
        self.last_heartbeat = Instant::now();
        let code = resp.error_code;
        if code == ResponseError::RebalanceInProgress.code()
            || code == ResponseError::IllegalGeneration.code()
            || code == ResponseError::UnknownMemberId.code()
        {
            if code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
            }
            self.rejoin(client).await?;
            return Ok(true);
        }
        check(&addr, code, None)?;
        Ok(false)
    }

    /// Committed offsets of the assigned partitions (absent: none committed).
    pub async fn committed(&mut self, client: &mut Client) -> Result<HashMap<TopicPartition, i64>> {
        fetch_committed(
            client,
            self.coordinator,
            &self.group,
            Some(&self.assignment),
        )
        .await
    }

    /// Commits `offsets` (the next offset to read, per partition).
    pub async fn commit(
        &mut self,
        client: &mut Client,
        offsets: &HashMap<TopicPartition, i64>,
    ) -> Result<()> {
        commit_offsets(
            client,
            self.coordinator,
            &self.group,
            self.generation,
            &self.member_id,
            offsets,
        )
        .await
    }

    /// Leaves the group so its partitions move at once.
    pub async fn leave(&mut self, client: &mut Client) -> Result<()> {
        let conn = client.broker(self.coordinator).await?;
        let req = LeaveGroupRequest::default().with_group_id(GroupId(sb(&self.group)));
        // v3+ batch member identities; older versions take one member id.
        let req = if conn.version_for::<LeaveGroupRequest>()? >= 3 {
            req.with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(sb(&self.member_id))
            ])
        } else {
            req.with_member_id(sb(&self.member_id))
        };
        let addr = conn.addr().to_string();
        let resp = conn.send(&req).await?;
        check(&addr, resp.error_code, None)
    }
}

/// The coordinator's node id for `group`.
pub async fn coordinator_node(client: &mut Client, group: &str) -> Result<i32> {
    let conn = client.any().await?;
    let addr = conn.addr().to_string();
    // v4+ batch the keys; older versions take one.
    let req = if conn.version_for::<FindCoordinatorRequest>()? >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![sb(group)])
    } else {
        FindCoordinatorRequest::default().with_key(sb(group))
    };
    let resp = conn.send(&req).await?;
    let (code, node, message) = match resp.coordinators.first() {
        Some(c) => (c.error_code, c.node_id.0, c.error_message.clone()),
        None => (resp.error_code, resp.node_id.0, resp.error_message.clone()),
    };
    check(&addr, code, message.as_ref())?;
    Ok(node)
}

/// OffsetFetch for `partitions` (`None`: every partition with an offset).
pub async fn fetch_committed(
    client: &mut Client,
    coordinator: i32,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<HashMap<TopicPartition, i64>> {
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in ps {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_partition_indexes(parts)
            })
            .collect::<Vec<_>>()
    });
    let conn = client.broker(coordinator).await?;
    let addr = conn.addr().to_string();
    let version = conn.version_for::<OffsetFetchRequest>()?;
    let req = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| {
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(t.name)
                                .with_partition_indexes(t.partition_indexes)
                        })
                        .collect()
                })),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(topics)
    };
    let resp = conn.send_at(version, &req).await?;
    let mut out = HashMap::new();
    if version >= 8 {
        for g in resp.groups {
            check(&addr, g.error_code, None)?;
            for t in g.topics {
                for p in t.partitions {
                    check(&addr, p.error_code, None)?;
                    if p.committed_offset >= 0 {
                        out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                    }
                }
            }
        }
    } else {
        check(&addr, resp.error_code, None)?;
        for t in resp.topics {
            for p in t.partitions {
                check(&addr, p.error_code, None)?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(out)
}

/// OffsetCommit; generation -1 and an empty member id is a standalone
/// commit (allowed for an empty group).
pub async fn commit_offsets(
    client: &mut Client,
    coordinator: i32,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &HashMap<TopicPartition, i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let conn = client.broker(coordinator).await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    for t in resp.topics {
        for p in t.partitions {
            check(&addr, p.error_code, None).map_err(|e| super::with_topic(e, t.name.as_str()))?;
        }
    }
    Ok(())
}

/// The consumer protocol's subscription (version prefix, then v0 body).
fn subscription(topics: &[String]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(0);
    sub.encode(&mut b, 0).expect("subscription encodes");
    b.freeze()
}

fn parse_subscription(mut b: Bytes) -> Vec<String> {
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = super::skip(&mut b, 2);
    ConsumerProtocolSubscription::decode(&mut b, version.clamp(0, 3))
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

fn assignment_bytes(parts: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(sb(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut b = BytesMut::new();
    b.put_i16(0);
    a.encode(&mut b, 0).expect("assignment encodes");
    b.freeze()
}

/// Decodes a consumer protocol assignment into partitions.
pub fn parse_assignment(b: &Bytes) -> Vec<TopicPartition> {
    let mut b = b.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = super::skip(&mut b, 2);
    ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
                .collect()
        })
        .unwrap_or_default()
}

/// Kafka's RangeAssignor: per topic, members sorted by id take contiguous
/// ranges; the first `partitions % members` get one more.
async fn range_assign(
    client: &mut Client,
    members: &[join_group_response::JoinGroupResponseMember],
) -> Result<Vec<sync_group_request::SyncGroupRequestAssignment>> {
    let subs: BTreeMap<String, Vec<String>> = members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                parse_subscription(m.metadata.clone()),
            )
        })
        .collect();
    let topics: BTreeSet<&String> = subs.values().flatten().collect();
    let mut result: BTreeMap<String, Vec<TopicPartition>> =
        subs.keys().map(|m| (m.clone(), Vec::new())).collect();
    for topic in topics {
        let info = match client.topic(topic, false).await {
            Ok(t) => t,
            Err(ClientError::Kafka { .. }) => continue,
            Err(e) => return Err(e),
        };
        let subscribed: Vec<&String> = subs
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let n = info.partitions.len();
        let per = n / subscribed.len().max(1);
        let extra = n % subscribed.len().max(1);
        let mut next = 0;
        for (i, m) in subscribed.iter().enumerate() {
            let take = per + usize::from(i < extra);
            for p in &info.partitions[next..next + take] {
                result
                    .get_mut(*m)
                    .expect("member")
                    .push((topic.clone(), p.0));
            }
            next += take;
        }
    }
    Ok(result
        .into_iter()
        .map(|(m, parts)| {
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(sb(&m))
                .with_assignment(assignment_bytes(&parts))
        })
        .collect())
}
