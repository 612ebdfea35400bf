//! Share group APIs (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe,
//! ShareFetch, ShareAcknowledge, Describe/Alter/DeleteShareGroupOffsets.
//! Thin: translate to [`crate::share::ShareCoordinator`] calls.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::broker::RequestContext;
use crate::handlers::{str_bytes, topic_name};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};
use crate::share::group::Heartbeat;
use crate::share::partition::AckBatch;
use crate::share::{AcknowledgeRequest, FetchRequest, PartitionResult};

/// (topic id, partitions) of every existing topic among `names`.
fn resolve(ctx: &RequestContext, names: &[String]) -> crate::share::group::Assignment {
    names
        .iter()
        .filter_map(|n| ctx.broker.logs.topic(n))
        .map(|t| (t.id, (0..t.partition_count()).collect()))
        .collect()
}

pub async fn share_group_heartbeat(
    ctx: &RequestContext,
    req: ShareGroupHeartbeatRequest,
) -> HandlerResult<ShareGroupHeartbeatResponse> {
    let b = &ctx.broker;
    let group = req.group_id.0.to_string();
    let mut resp = ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(req.member_id.clone()))
        .with_member_epoch(req.member_epoch);
    let invalid = req.member_id.is_empty()
        || group.is_empty()
        || req.rack_id.as_ref().is_some_and(|r| r.is_empty())
        || req.member_epoch < -1;
    // A group id has one type: a classic group's id is not a share group.
    let error = if invalid {
        Some(ResponseError::InvalidRequest.code())
    } else if !ctx.authorize(Operation::Read, ResourceType::Group, &group) {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else if req
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|t| !ctx.authorize(Operation::Read, ResourceType::Topic, t.as_str()))
    {
        // Members only get partitions of topics they may read, so share
        // fetches never reach a topic the principal may not READ.
        Some(ResponseError::TopicAuthorizationFailed.code())
    } else if b.groups.exists(&group).await {
        Some(ResponseError::GroupIdNotFound.code())
    } else {
        None
    };
    if let Some(code) = error {
        resp.error_code = code;
        return Ok(Some(resp));
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack: req.rack_id.map(|r| r.to_string()),
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.peer_addr.ip().to_string(),
    };
    let resolver = |names: &[String]| resolve(ctx, names);
    match b.share.heartbeat(&group, hb, &resolver).await {
        Ok(out) => {
            resp.member_epoch = out.member_epoch;
            resp.heartbeat_interval_ms =
                b.group_configs.int(&group, "share.heartbeat.interval.ms") as i32;
            resp.assignment = out.assignment.map(|a| {
                share_group_heartbeat_response::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, parts)| {
                            share_group_heartbeat_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(parts)
                        })
                        .collect(),
                )
            });
        }
        Err(code) => resp.error_code = code,
    }
    Ok(Some(resp))
}

pub async fn share_group_describe(
    ctx: &RequestContext,
    req: ShareGroupDescribeRequest,
) -> HandlerResult<ShareGroupDescribeResponse> {
    let b = &ctx.broker;
    let mut groups = Vec::new();
    for id in req.group_ids {
        let mut g =
            share_group_describe_response::DescribedGroup::default().with_group_id(id.clone());
        if !ctx.authorize(Operation::Describe, ResourceType::Group, id.0.as_str()) {
            g.error_code = ResponseError::GroupAuthorizationFailed.code();
            groups.push(g);
            continue;
        }
        match b.share.describe(id.0.as_str()).await {
            None => {
                g.error_code = ResponseError::GroupIdNotFound.code();
                g.error_message = Some(str_bytes(format!(
                    "share group {} not found",
                    id.0.as_str()
                )));
                g.group_state = str_bytes("Dead");
            }
            Some(sg) => {
                g.group_state = str_bytes(sg.state());
                g.group_epoch = sg.epoch;
                g.assignment_epoch = sg.epoch;
                g.assignor_name = str_bytes("simple");
                if req.include_authorized_operations {
                    g.authorized_operations =
                        ctx.authorized_operations(ResourceType::Group, id.0.as_str());
                }
                g.members = sg
                    .members
                    .values()
                    .map(|m| {
                        let parts = resolve(ctx, &m.subscribed);
                        share_group_describe_response::Member::default()
                            .with_member_id(str_bytes(m.id.clone()))
                            .with_rack_id(m.rack.clone().map(str_bytes))
                            .with_member_epoch(m.epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed.iter().map(|t| topic_name(t)).collect(),
                            )
                            .with_assignment(
                                share_group_describe_response::Assignment::default()
                                    .with_topic_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(id, ps)| {
                                            let name = b
                                                .logs
                                                .topic_by_id(id)
                                                .map(|t| t.name.clone())
                                                .unwrap_or_default();
                                            share_group_describe_response::TopicPartitions::default(
                                            )
                                            .with_topic_id(id)
                                            .with_topic_name(topic_name(&name))
                                            .with_partitions(ps)
                                        })
                                        .collect(),
                                ),
                            )
                    })
                    .collect();
            }
        }
        groups.push(g);
    }
    Ok(Some(
        ShareGroupDescribeResponse::default().with_groups(groups),
    ))
}

fn ack_batches<'a>(batches: impl Iterator<Item = (i64, i64, &'a Vec<i8>)>) -> Vec<AckBatch> {
    batches
        .map(|(first, last, types)| AckBatch {
            first_offset: first,
            last_offset: last,
            types: types.clone(),
        })
        .collect()
}

fn node_endpoint(ctx: &RequestContext) -> (BrokerId, kafka_protocol::protocol::StrBytes, i32) {
    (
        BrokerId(ctx.broker.node_id()),
        str_bytes(ctx.advertised_host()),
        ctx.advertised_port(),
    )
}

pub async fn share_fetch(
    ctx: &RequestContext,
    req: ShareFetchRequest,
) -> HandlerResult<ShareFetchResponse> {
    let b = &ctx.broker;
    let (node, host, port) = node_endpoint(ctx);
    let mut resp = ShareFetchResponse::default().with_node_endpoints(vec![
        share_fetch_response::NodeEndpoint::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
    ]);
    let (Some(group), Some(member)) = (req.group_id, req.member_id) else {
        resp.error_code = ResponseError::InvalidRequest.code();
        return Ok(Some(resp));
    };
    // Kafka: READ on the share group and on each topic.
    if !ctx.authorize(Operation::Read, ResourceType::Group, group.0.as_str()) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    let mut denied = BTreeMap::new();
    // The same topic may appear more than once: merge by (topic, partition).
    let mut topics: Vec<(Uuid, i32, Vec<AckBatch>)> = Vec::new();
    for t in &req.topics {
        if !may_read_topic(ctx, t.topic_id) {
            for p in &t.partitions {
                denied.insert((t.topic_id, p.partition_index), topic_denied());
            }
            continue;
        }
        for p in &t.partitions {
            let acks = ack_batches(
                p.acknowledgement_batches
                    .iter()
                    .map(|a| (a.first_offset, a.last_offset, &a.acknowledge_types)),
            );
            match topics
                .iter_mut()
                .find(|(id, pi, _)| *id == t.topic_id && *pi == p.partition_index)
            {
                Some(entry) => entry.2.extend(acks),
                None => topics.push((t.topic_id, p.partition_index, acks)),
            }
        }
    }
    let forgotten = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let fetch = FetchRequest {
        group: group.0.to_string(),
        member: member.to_string(),
        epoch: req.share_session_epoch,
        max_wait_ms: req.max_wait_ms as i64,
        max_bytes: req.max_bytes.max(0) as usize,
        max_records: req.max_records.max(0) as usize,
        topics,
        forgotten,
        connection: ctx.connection_id,
    };
    match b.share.fetch(&b.logs, &b.group_configs, fetch).await {
        Err(code) => resp.error_code = code,
        Ok((lock_ms, mut results)) => {
            results.extend(denied);
            resp.acquisition_lock_timeout_ms = lock_ms;
            resp.responses = group_by_topic(results, |p, r| {
                share_fetch_response::PartitionData::default()
                    .with_partition_index(p)
                    .with_error_code(r.error)
                    .with_acknowledge_error_code(r.ack_error.unwrap_or(0))
                    .with_current_leader(
                        share_fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(node.0)
                            .with_leader_epoch(0),
                    )
                    // Never null: librdkafka cannot parse a null record set.
                    .with_records(Some(r.records))
                    .with_acquired_records(
                        r.acquired
                            .iter()
                            .map(|a| {
                                share_fetch_response::AcquiredRecords::default()
                                    .with_first_offset(a.first_offset)
                                    .with_last_offset(a.last_offset)
                                    .with_delivery_count(a.delivery_count)
                            })
                            .collect(),
                    )
            })
            .into_iter()
            .map(|(id, partitions)| {
                share_fetch_response::ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)
            })
            .collect();
        }
    }
    Ok(Some(resp))
}

/// Kafka: share fetches and acknowledgements need READ on each topic
/// (unknown ids pass: the coordinator answers them UNKNOWN_TOPIC_ID).
fn may_read_topic(ctx: &RequestContext, id: Uuid) -> bool {
    ctx.broker
        .logs
        .topic_by_id(id)
        .is_none_or(|t| ctx.authorize(Operation::Read, ResourceType::Topic, &t.name))
}

fn topic_denied() -> PartitionResult {
    PartitionResult {
        error: ResponseError::TopicAuthorizationFailed.code(),
        ..PartitionResult::default()
    }
}

fn group_by_topic<T>(
    results: BTreeMap<(Uuid, i32), PartitionResult>,
    f: impl Fn(i32, PartitionResult) -> T,
) -> Vec<(Uuid, Vec<T>)> {
    let mut out: Vec<(Uuid, Vec<T>)> = Vec::new();
    for ((id, p), r) in results {
        match out.last_mut() {
            Some((last, v)) if *last == id => v.push(f(p, r)),
            _ => out.push((id, vec![f(p, r)])),
        }
    }
    out
}

pub async fn share_acknowledge(
    ctx: &RequestContext,
    req: ShareAcknowledgeRequest,
) -> HandlerResult<ShareAcknowledgeResponse> {
    let b = &ctx.broker;
    let (node, host, port) = node_endpoint(ctx);
    let mut resp = ShareAcknowledgeResponse::default().with_node_endpoints(vec![
        share_acknowledge_response::NodeEndpoint::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
    ]);
    let (Some(group), Some(member)) = (req.group_id, req.member_id) else {
        resp.error_code = ResponseError::InvalidRequest.code();
        return Ok(Some(resp));
    };
    if !ctx.authorize(Operation::Read, ResourceType::Group, group.0.as_str()) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    let denied: BTreeMap<(Uuid, i32), PartitionResult> = req
        .topics
        .iter()
        .filter(|t| !may_read_topic(ctx, t.topic_id))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.topic_id, p.partition_index), topic_denied()))
        })
        .collect();
    let acks: Vec<(Uuid, i32, Vec<AckBatch>)> = req
        .topics
        .iter()
        .filter(|t| may_read_topic(ctx, t.topic_id))
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.topic_id,
                    p.partition_index,
                    ack_batches(
                        p.acknowledgement_batches
                            .iter()
                            .map(|a| (a.first_offset, a.last_offset, &a.acknowledge_types)),
                    ),
                )
            })
        })
        .collect();
    let request = AcknowledgeRequest {
        group: group.0.to_string(),
        member: member.to_string(),
        epoch: req.share_session_epoch,
        acks,
        connection: ctx.connection_id,
    };
    match b
        .share
        .acknowledge(&b.logs, &b.group_configs, request)
        .await
    {
        Err(code) => resp.error_code = code,
        Ok(mut results) => {
            results.extend(denied);
            resp.responses = group_by_topic(results, |p, r| {
                share_acknowledge_response::PartitionData::default()
                    .with_partition_index(p)
                    .with_error_code(r.ack_error.unwrap_or(r.error))
                    .with_current_leader(
                        share_acknowledge_response::LeaderIdAndEpoch::default()
                            .with_leader_id(node.0)
                            .with_leader_epoch(0),
                    )
            })
            .into_iter()
            .map(|(id, partitions)| {
                share_acknowledge_response::ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)
            })
            .collect();
        }
    }
    Ok(Some(resp))
}

pub async fn describe_share_group_offsets(
    ctx: &RequestContext,
    req: DescribeShareGroupOffsetsRequest,
) -> HandlerResult<DescribeShareGroupOffsetsResponse> {
    let b = &ctx.broker;
    let mut groups = Vec::new();
    for g in req.groups {
        let group = g.group_id.0.to_string();
        let mut out =
            describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup::default(
            )
            .with_group_id(g.group_id.clone());
        if !ctx.authorize(Operation::Describe, ResourceType::Group, &group) {
            out.error_code = ResponseError::GroupAuthorizationFailed.code();
            groups.push(out);
            continue;
        }
        let wanted: Vec<(String, Vec<i32>)> = match g.topics {
            Some(ts) => ts
                .iter()
                .map(|t| (t.topic_name.0.to_string(), t.partitions.clone()))
                .collect(),
            None => {
                let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (id, p, _) in b.share.group_partitions(&group).await {
                    if let Some(t) = b.logs.topic_by_id(id) {
                        by.entry(t.name.clone()).or_default().push(p);
                    }
                }
                // Topics the caller may not describe are left out.
                by.into_iter()
                    .filter(|(t, _)| ctx.authorize(Operation::Describe, ResourceType::Topic, t))
                    .collect()
            }
        };
        for (name, parts) in wanted {
            let mut topic = describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic_name(&name));
            // Kafka: DESCRIBE on the topic; no id for a denied one.
            let found = if ctx.authorize(Operation::Describe, ResourceType::Topic, &name) {
                b.logs
                    .topic(&name)
                    .ok_or(ResponseError::UnknownTopicOrPartition)
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            };
            match found {
                Err(e) => {
                    topic.partitions = parts
                        .iter()
                        .map(|p| {
                            describe_share_group_offsets_response::DescribeShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(*p)
                                .with_start_offset(-1)
                                .with_error_code(e.code())
                        })
                        .collect();
                }
                Ok(t) => {
                    topic.topic_id = t.id;
                    topic.partitions = b
                        .share
                        .start_offsets(&group, t.id, &parts)
                        .await
                        .into_iter()
                        .map(|(p, start)| {
                            describe_share_group_offsets_response::DescribeShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(p)
                                .with_start_offset(start)
                                .with_leader_epoch(0)
                        })
                        .collect();
                }
            }
            out.topics.push(topic);
        }
        groups.push(out);
    }
    Ok(Some(
        DescribeShareGroupOffsetsResponse::default().with_groups(groups),
    ))
}

pub async fn alter_share_group_offsets(
    ctx: &RequestContext,
    req: AlterShareGroupOffsetsRequest,
) -> HandlerResult<AlterShareGroupOffsetsResponse> {
    let b = &ctx.broker;
    let group = req.group_id.0.to_string();
    if !ctx.authorize(Operation::Read, ResourceType::Group, &group) {
        return Ok(Some(
            AlterShareGroupOffsetsResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        ));
    }
    let mut changes = Vec::new();
    let mut results = Vec::new();
    for t in &req.topics {
        let topic = b.logs.topic(t.topic_name.0.as_str());
        // Kafka: READ on each topic.
        let denied = !ctx.authorize(
            Operation::Read,
            ResourceType::Topic,
            t.topic_name.0.as_str(),
        );
        let mut r =
            alter_share_group_offsets_response::AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone());
        for p in &t.partitions {
            let mut pr = alter_share_group_offsets_response::AlterShareGroupOffsetsResponsePartition::default()
                .with_partition_index(p.partition_index);
            match topic
                .as_ref()
                .filter(|tp| tp.partition(p.partition_index).is_some())
            {
                _ if denied => pr.error_code = ResponseError::TopicAuthorizationFailed.code(),
                Some(tp) => {
                    r.topic_id = tp.id;
                    changes.push((tp.id, p.partition_index, Some(p.start_offset)));
                }
                None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            r.partitions.push(pr);
        }
        results.push(r);
    }
    let mut resp = AlterShareGroupOffsetsResponse::default();
    match b.share.set_start(&group, changes).await {
        Ok(()) => resp.responses = results,
        Err(code) => resp.error_code = code,
    }
    Ok(Some(resp))
}

pub async fn delete_share_group_offsets(
    ctx: &RequestContext,
    req: DeleteShareGroupOffsetsRequest,
) -> HandlerResult<DeleteShareGroupOffsetsResponse> {
    let b = &ctx.broker;
    let group = req.group_id.0.to_string();
    if !ctx.authorize(Operation::Delete, ResourceType::Group, &group) {
        return Ok(Some(
            DeleteShareGroupOffsetsResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        ));
    }
    let mut changes = Vec::new();
    let mut results = Vec::new();
    for t in &req.topics {
        let mut r =
            delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone());
        match b.logs.topic(t.topic_name.0.as_str()) {
            // Kafka: READ on each topic.
            _ if !ctx.authorize(
                Operation::Read,
                ResourceType::Topic,
                t.topic_name.0.as_str(),
            ) =>
            {
                r.error_code = ResponseError::TopicAuthorizationFailed.code()
            }
            Some(tp) => {
                r.topic_id = tp.id;
                for (id, p, _) in b.share.group_partitions(&group).await {
                    if id == tp.id {
                        changes.push((id, p, None));
                    }
                }
            }
            None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
        }
        results.push(r);
    }
    let mut resp = DeleteShareGroupOffsetsResponse::default();
    match b.share.set_start(&group, changes).await {
        Ok(()) => resp.responses = results,
        Err(code) => resp.error_code = code,
    }
    Ok(Some(resp))
}
