//! Group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete. Thin: translate to and from the coordinator in `group/`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::RequestContext;
use crate::group::state::{CommittedOffset, JoinOutcome, JoinRequest, SyncRequest};
use crate::group::OffsetCommit;
use crate::handlers::{str_bytes, topic_name};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

pub async fn find_coordinator(
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> HandlerResult<FindCoordinatorResponse> {
    let v = ctx.api_version;
    let b = &ctx.broker;
    let host = str_bytes(ctx.advertised_host());
    // Key type 0 = group, 1 = transaction: this broker coordinates both.
    let bad_type = !matches!(req.key_type, 0 | 1);
    if req.key_type == 0 {
        // A consumer looks its group up right before joining: the group
        // coordinator uses this to let consumers started together settle
        // in one rebalance.
        let keys: Vec<&StrBytes> = if v >= 4 {
            req.coordinator_keys.iter().collect()
        } else {
            vec![&req.key]
        };
        for key in keys {
            b.groups.note_lookup(key.as_str()).await;
        }
    }
    // Kafka: DESCRIBE on the group or transactional id being looked up.
    let error_for = |key: &str| {
        if bad_type {
            code(ResponseError::InvalidRequest)
        } else if req.key_type == 0 && !ctx.authorize(Operation::Describe, ResourceType::Group, key)
        {
            code(ResponseError::GroupAuthorizationFailed)
        } else if req.key_type == 1
            && !ctx.authorize(Operation::Describe, ResourceType::TransactionalId, key)
        {
            code(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            0
        }
    };
    let port = ctx.advertised_port();
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let error = error_for(key.as_str());
                let mut c = Coordinator::default().with_key(key).with_error_code(error);
                if error == 0 {
                    c = c
                        .with_node_id(BrokerId(b.node_id()))
                        .with_host(host.clone())
                        .with_port(port);
                } else {
                    c = c.with_node_id(BrokerId(-1)).with_port(-1);
                }
                c
            })
            .collect();
    } else {
        let error = error_for(req.key.as_str());
        if error == 0 {
            resp.node_id = BrokerId(b.node_id());
            resp.host = host;
            resp.port = port;
        } else {
            resp.error_code = error;
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    Ok(Some(resp))
}

pub async fn join_group(
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> HandlerResult<JoinGroupResponse> {
    let v = ctx.api_version;
    if group_denied(ctx, req.group_id.0.as_str()) {
        let mut resp = JoinGroupResponse::default()
            .with_error_code(code(ResponseError::GroupAuthorizationFailed))
            .with_generation_id(-1);
        if v >= 7 {
            resp.protocol_name = None;
        }
        return Ok(Some(resp));
    }
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: if v >= 5 {
            opt_string(&req.group_instance_id)
        } else {
            None
        },
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer_addr.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        // Copied: a slice would pin the connection's whole read buffer for
        // as long as the group remembers the member.
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), Bytes::copy_from_slice(&p.metadata)))
            .collect(),
        require_known_member_id: v >= 4,
    };
    // A group id has one type: a share group's id cannot be joined as a
    // classic group.
    let out = if ctx
        .broker
        .share
        .is_share_group(req.group_id.0.as_str())
        .await
    {
        JoinOutcome {
            error: ResponseError::InconsistentGroupProtocol.code(),
            generation: -1,
            member_id: join.member_id.clone(),
            ..Default::default()
        }
    } else {
        ctx.broker.groups.join(req.group_id.0.as_str(), join).await
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(out.error)
        .with_generation_id(out.generation)
        .with_leader(str_bytes(out.leader))
        .with_member_id(str_bytes(out.member_id))
        .with_protocol_name(Some(str_bytes(out.protocol_name.unwrap_or_default())))
        .with_members(
            out.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_metadata(metadata);
                    if v >= 5 {
                        m.group_instance_id = instance.map(str_bytes);
                    }
                    m
                })
                .collect(),
        );
    if v >= 7 {
        resp.protocol_type = out.protocol_type.map(str_bytes);
        if resp.error_code != 0 {
            resp.protocol_name = None;
        }
    }
    if v >= 9 {
        resp.skip_assignment = out.skip_assignment;
    }
    Ok(Some(resp))
}

pub async fn sync_group(
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> HandlerResult<SyncGroupResponse> {
    let v = ctx.api_version;
    if group_denied(ctx, req.group_id.0.as_str()) {
        return Ok(Some(
            SyncGroupResponse::default()
                .with_error_code(code(ResponseError::GroupAuthorizationFailed)),
        ));
    }
    let (protocol_type, protocol_name) = if v >= 5 {
        (
            opt_string(&req.protocol_type),
            opt_string(&req.protocol_name),
        )
    } else {
        (None, None)
    };
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: if v >= 3 {
            opt_string(&req.group_instance_id)
        } else {
            None
        },
        generation: req.generation_id,
        protocol_type,
        protocol_name,
        assignments: req
            .assignments
            .into_iter()
            .map(|a| {
                (
                    a.member_id.to_string(),
                    Bytes::copy_from_slice(&a.assignment),
                )
            })
            .collect(),
    };
    let out = ctx.broker.groups.sync(req.group_id.0.as_str(), sync).await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(out.error)
        .with_assignment(out.assignment);
    if v >= 5 {
        resp.protocol_type = out.protocol_type.map(str_bytes);
        resp.protocol_name = out.protocol_name.map(str_bytes);
    }
    Ok(Some(resp))
}

pub async fn heartbeat(
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HandlerResult<HeartbeatResponse> {
    if group_denied(ctx, req.group_id.0.as_str()) {
        return Ok(Some(
            HeartbeatResponse::default()
                .with_error_code(code(ResponseError::GroupAuthorizationFailed)),
        ));
    }
    let instance = if ctx.api_version >= 3 {
        opt_string(&req.group_instance_id)
    } else {
        None
    };
    let err = ctx
        .broker
        .groups
        .heartbeat(
            req.group_id.0.as_str(),
            req.member_id.as_str(),
            instance.as_deref(),
            req.generation_id,
        )
        .await;
    Ok(Some(HeartbeatResponse::default().with_error_code(err)))
}

pub async fn leave_group(
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> HandlerResult<LeaveGroupResponse> {
    let v = ctx.api_version;
    if group_denied(ctx, req.group_id.0.as_str()) {
        return Ok(Some(
            LeaveGroupResponse::default()
                .with_error_code(code(ResponseError::GroupAuthorizationFailed)),
        ));
    }
    let identities: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_string(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = ctx
        .broker
        .groups
        .leave(req.group_id.0.as_str(), &identities)
        .await;
    let mut resp = LeaveGroupResponse::default();
    let codes = match result {
        Ok(codes) => codes,
        Err(c) if v < 3 => vec![c],
        Err(c) => {
            resp.error_code = c;
            vec![c; identities.len()]
        }
    };
    if v >= 3 {
        resp.members = identities
            .into_iter()
            .zip(&codes)
            .map(|((m, i), c)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(m))
                    .with_group_instance_id(i.map(str_bytes))
                    .with_error_code(*c)
            })
            .collect();
    } else {
        resp.error_code = codes[0];
    }
    Ok(Some(resp))
}

/// A topic of an OffsetCommit: each partition with its slot among the
/// commits sent to the coordinator, or the error it is answered with here.
type TopicLayout = (TopicName, Vec<(i32, Result<usize, i16>)>);

/// Kafka: the group APIs need READ on the group.
fn group_denied(ctx: &RequestContext, group: &str) -> bool {
    !ctx.authorize(Operation::Read, ResourceType::Group, group)
}

pub async fn offset_commit(
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> HandlerResult<OffsetCommitResponse> {
    let v = ctx.api_version;
    let logs = &ctx.broker.logs;
    // Partitions of unknown topics are answered here; the rest are committed.
    let mut layout: Vec<TopicLayout> = Vec::new();
    let mut commits = Vec::new();
    // Kafka: READ on the group, then READ on each topic.
    let group_error = group_denied(ctx, req.group_id.0.as_str())
        .then_some(code(ResponseError::GroupAuthorizationFailed));
    for t in &req.topics {
        let topic = logs.topic(t.name.0.as_str());
        let topic_error = group_error.or_else(|| {
            (!ctx.authorize(Operation::Read, ResourceType::Topic, t.name.0.as_str()))
                .then_some(code(ResponseError::TopicAuthorizationFailed))
        });
        let mut parts = Vec::new();
        for p in &t.partitions {
            if let Some(e) = topic_error {
                parts.push((p.partition_index, Err(e)));
                continue;
            }
            if topic
                .as_ref()
                .and_then(|t| t.partition(p.partition_index))
                .is_none()
            {
                parts.push((
                    p.partition_index,
                    Err(code(ResponseError::UnknownTopicOrPartition)),
                ));
                continue;
            }
            parts.push((p.partition_index, Ok(commits.len())));
            commits.push(OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: opt_string(&p.committed_metadata),
            });
        }
        layout.push((t.name.clone(), parts));
    }
    let instance = if v >= 7 {
        opt_string(&req.group_instance_id)
    } else {
        None
    };
    let result = if commits.is_empty() {
        Ok(Vec::new())
    } else {
        ctx.broker
            .groups
            .commit(
                req.group_id.0.as_str(),
                req.member_id.as_str(),
                instance.as_deref(),
                req.generation_id_or_member_epoch,
                commits,
                v,
            )
            .await
    };
    let topics = layout
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, slot)| {
                    let err = match (slot, &result) {
                        (Err(e), _) => e,
                        (Ok(i), Ok(codes)) => codes[i],
                        (Ok(_), Err(c)) => *c,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(err)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(OffsetCommitResponse::default().with_topics(topics)))
}

/// (offset, leader epoch, metadata) as OffsetFetch reports a partition.
fn fetched(o: Option<CommittedOffset>) -> (i64, i32, String) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}

const UNSTABLE: i16 = ResponseError::UnstableOffsetCommit.code();

/// With `require_stable` (v7+), partitions whose offsets are pending in an
/// open transaction answer UNSTABLE_OFFSET_COMMIT so the consumer retries
/// instead of starting from a position the transaction may still change.
async fn unstable(
    ctx: &RequestContext,
    require_stable: bool,
    group_id: &str,
) -> std::collections::HashSet<(String, i32)> {
    if require_stable {
        ctx.broker.groups.unstable_partitions(group_id).await
    } else {
        Default::default()
    }
}

/// Committed offsets of one topic's partitions.
type Offsets = Vec<(i32, Option<CommittedOffset>)>;
/// Committed offsets of one topic as the coordinator returns them.
type FoundTopic = (String, Offsets);

/// Kafka: topics the caller may not DESCRIBE are left out of an
/// all-topics fetch, and answered TOPIC_AUTHORIZATION_FAILED (no offset)
/// when named.
fn described_topics(
    ctx: &RequestContext,
    found: Vec<FoundTopic>,
    all: bool,
) -> Vec<(String, Offsets, bool)> {
    found
        .into_iter()
        .filter_map(|(t, parts)| {
            let denied = !ctx.authorize(Operation::Describe, ResourceType::Topic, &t);
            match (denied, all) {
                (true, true) => None,
                (true, false) => {
                    Some((t, parts.into_iter().map(|(p, _)| (p, None)).collect(), true))
                }
                (false, _) => Some((t, parts, false)),
            }
        })
        .collect()
}

fn partition_code(denied: bool, unstable: bool) -> i16 {
    if denied {
        code(ResponseError::TopicAuthorizationFailed)
    } else if unstable {
        UNSTABLE
    } else {
        0
    }
}

pub async fn offset_fetch(
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> HandlerResult<OffsetFetchResponse> {
    let v = ctx.api_version;
    let groups = &ctx.broker.groups;
    let mut resp = OffsetFetchResponse::default();
    if v >= 8 {
        for g in req.groups {
            if !ctx.authorize(
                Operation::Describe,
                ResourceType::Group,
                g.group_id.0.as_str(),
            ) {
                resp.groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code(ResponseError::GroupAuthorizationFailed)),
                );
                continue;
            }
            if v >= 9 {
                // KIP-848: a member's fetch is checked against its epoch.
                if let Err(c) = groups
                    .validate_fetch(
                        g.group_id.0.as_str(),
                        g.member_id.as_deref(),
                        g.member_epoch,
                    )
                    .await
                {
                    resp.groups.push(
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(c),
                    );
                    continue;
                }
            }
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let all = topics.is_none();
            let found = groups.fetch_offsets(g.group_id.0.as_str(), topics).await;
            let found = described_topics(ctx, found, all);
            let unstable = unstable(ctx, req.require_stable, g.group_id.0.as_str()).await;
            let topics = found
                .into_iter()
                .map(|(t, parts, denied)| {
                    let partitions = parts
                        .into_iter()
                        .map(|(p, o)| {
                            let is_unstable = unstable.contains(&(t.clone(), p));
                            let (offset, epoch, meta) = fetched(o.filter(|_| !is_unstable));
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(meta)))
                                .with_error_code(partition_code(denied, is_unstable))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&t))
                        .with_partitions(partitions)
                })
                .collect();
            resp.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics),
            );
        }
        return Ok(Some(resp));
    }
    let topics: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if !ctx.authorize(
        Operation::Describe,
        ResourceType::Group,
        req.group_id.0.as_str(),
    ) {
        let denied = code(ResponseError::GroupAuthorizationFailed);
        if v >= 2 {
            resp.error_code = denied;
        } else {
            // v0-1 have no top-level error: every requested partition has it.
            resp.topics = topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&t))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(denied)
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        return Ok(Some(resp));
    }
    let all = topics.is_none();
    let found = groups.fetch_offsets(req.group_id.0.as_str(), topics).await;
    let found = described_topics(ctx, found, all);
    let unstable = unstable(ctx, v >= 7 && req.require_stable, req.group_id.0.as_str()).await;
    resp.topics = found
        .into_iter()
        .map(|(t, parts, denied)| {
            let partitions = parts
                .into_iter()
                .map(|(p, o)| {
                    let is_unstable = unstable.contains(&(t.clone(), p));
                    let (offset, epoch, meta) = fetched(o.filter(|_| !is_unstable));
                    let mut r = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(str_bytes(meta)))
                        .with_error_code(partition_code(denied, is_unstable));
                    if v >= 5 {
                        r.committed_leader_epoch = epoch;
                    }
                    r
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(resp))
}

pub async fn list_groups(
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> HandlerResult<ListGroupsResponse> {
    let v = ctx.api_version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let wants = |kind: &str, state: &str| {
        (types.is_empty() || types.iter().any(|t| t == kind))
            && (states.is_empty() || states.contains(&state.to_lowercase()))
    };
    let listed = |id: String, protocol_type: String, state: &str, kind: &str| {
        let mut g = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(id)))
            .with_protocol_type(str_bytes(protocol_type));
        if v >= 4 {
            g.group_state = str_bytes(state);
        }
        if v >= 5 {
            g.group_type = str_bytes(kind);
        }
        g
    };
    // Kafka: DESCRIBE on the cluster lists every group, else those the
    // caller may DESCRIBE.
    let all = ctx.authorize_cluster(Operation::Describe);
    let may_list = |id: &String| all || ctx.authorize(Operation::Describe, ResourceType::Group, id);
    let mut groups: Vec<ListedGroup> = ctx
        .broker
        .groups
        .list()
        .await
        .into_iter()
        .filter(|(id, _, state, kind)| wants(kind, state) && may_list(id))
        .map(|(id, protocol_type, state, kind)| listed(id, protocol_type, state, kind))
        .collect();
    // Share groups' protocol type is "share", as in Kafka.
    groups.extend(
        ctx.broker
            .share
            .list()
            .await
            .into_iter()
            .filter(|(id, state)| wants("share", state) && may_list(id))
            .map(|(id, state)| listed(id, "share".into(), state, "share")),
    );
    Ok(Some(ListGroupsResponse::default().with_groups(groups)))
}

pub async fn describe_groups(
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> HandlerResult<DescribeGroupsResponse> {
    let v = ctx.api_version;
    let mut out = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let mut g = DescribedGroup::default().with_group_id(id.clone());
        if !ctx.authorize(Operation::Describe, ResourceType::Group, id.0.as_str()) {
            g.error_code = code(ResponseError::GroupAuthorizationFailed);
            out.push(g);
            continue;
        }
        match ctx.broker.groups.describe(id.0.as_str()).await {
            None => {
                g.group_state = str_bytes("Dead");
                if v >= 6 {
                    g.error_code = code(ResponseError::GroupIdNotFound);
                    let msg = if ctx.broker.groups.is_consumer_group(id.0.as_str()).await {
                        format!("Group {} is not a classic group.", id.0.as_str())
                    } else {
                        format!("Group {} not found.", id.0.as_str())
                    };
                    g.error_message = Some(str_bytes(msg));
                }
            }
            Some(d) => {
                if v >= 3 && req.include_authorized_operations {
                    g.authorized_operations =
                        ctx.authorized_operations(ResourceType::Group, id.0.as_str());
                }
                g.group_state = str_bytes(d.state);
                g.protocol_type = str_bytes(d.protocol_type);
                g.protocol_data = str_bytes(d.protocol_name);
                g.members = d
                    .members
                    .into_iter()
                    .map(|(mid, instance, client_id, host, metadata, assignment)| {
                        let mut m = DescribedGroupMember::default()
                            .with_member_id(str_bytes(mid))
                            .with_client_id(str_bytes(client_id))
                            .with_client_host(str_bytes(host))
                            .with_member_metadata(metadata)
                            .with_member_assignment(assignment);
                        if v >= 4 {
                            m.group_instance_id = instance.map(str_bytes);
                        }
                        m
                    })
                    .collect();
            }
        }
        out.push(g);
    }
    Ok(Some(DescribeGroupsResponse::default().with_groups(out)))
}

pub async fn delete_groups(
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> HandlerResult<DeleteGroupsResponse> {
    // Kafka: DELETE on each group; denied ones are not touched.
    let (allowed, denied): (Vec<String>, Vec<String>) = req
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .partition(|g| ctx.authorize(Operation::Delete, ResourceType::Group, g));
    let mut codes = ctx.broker.groups.delete_groups(&allowed).await;
    let mut ids = allowed;
    ids.extend(denied);
    codes.resize(ids.len(), code(ResponseError::GroupAuthorizationFailed));
    // A share group of that id (the classic coordinator does not know it).
    for (id, code) in ids.iter().zip(codes.iter_mut()) {
        if *code == ResponseError::GroupIdNotFound.code()
            && ctx.broker.share.is_share_group(id).await
        {
            *code = match ctx.broker.share.delete_group(id).await {
                Ok(()) => {
                    ctx.broker.group_configs.remove(id);
                    0
                }
                Err(c) => c,
            };
        }
    }
    let results = ids
        .into_iter()
        .zip(codes)
        .map(|(g, c)| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(g)))
                .with_error_code(c)
        })
        .collect();
    Ok(Some(DeleteGroupsResponse::default().with_results(results)))
}

pub async fn offset_delete(
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> HandlerResult<OffsetDeleteResponse> {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let mut resp = OffsetDeleteResponse::default();
    // Kafka: DELETE on the group, READ on each topic.
    if !ctx.authorize(
        Operation::Delete,
        ResourceType::Group,
        req.group_id.0.as_str(),
    ) {
        resp.error_code = code(ResponseError::GroupAuthorizationFailed);
        return Ok(Some(resp));
    }
    let topics: Vec<(String, Vec<i32>)> = topics;
    let (topics, denied): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .partition(|(t, _)| ctx.authorize(Operation::Read, ResourceType::Topic, t));
    match ctx
        .broker
        .groups
        .delete_offsets(req.group_id.0.as_str(), topics)
        .await
    {
        Err(c) => resp.error_code = c,
        Ok(done) => {
            resp.topics = done
                .into_iter()
                .map(|(t, parts)| {
                    let known = ctx.broker.logs.topic(&t);
                    OffsetDeleteResponseTopic::default()
                        .with_name(topic_name(&t))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, c)| {
                                    let c = if known.as_ref().and_then(|k| k.partition(p)).is_none()
                                    {
                                        code(ResponseError::UnknownTopicOrPartition)
                                    } else {
                                        c
                                    };
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(c)
                                })
                                .collect(),
                        )
                })
                .collect();
            resp.topics.extend(denied.into_iter().map(|(t, parts)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(topic_name(&t))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(code(ResponseError::TopicAuthorizationFailed))
                            })
                            .collect(),
                    )
            }));
        }
    }
    Ok(Some(resp))
}
