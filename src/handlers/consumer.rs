//! Consumer-protocol group APIs (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Thin: validate the request on its own (Kafka's
//! `throwIfConsumerGroupHeartbeatRequestIsInvalid`), then call the group
//! coordinator's [`crate::group::consumer`] state machine.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, RequestContext};
use crate::group::assignor::Assignment;
use crate::group::consumer::{self, Heartbeat, Settings, TopicImage};
use crate::handlers::{str_bytes, topic_name};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

/// Every topic a consumer group may subscribe to, by name.
pub fn topic_image(b: &Broker) -> TopicImage {
    b.logs
        .topics()
        .into_iter()
        .map(|t| (t.name.clone(), (t.id, t.partition_count())))
        .collect()
}

fn blank(s: &Option<StrBytes>) -> bool {
    s.as_ref().is_some_and(|s| s.trim().is_empty())
}

/// The request-level checks, before any group state is touched.
fn validate(v: i16, req: &ConsumerGroupHeartbeatRequest, b: &Broker) -> Result<(), (i16, String)> {
    let invalid = |msg: &str| Err((ResponseError::InvalidRequest.code(), msg.to_string()));
    if req.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if blank(&req.instance_id) {
        return invalid("InstanceId can't be empty.");
    }
    if blank(&req.rack_id) {
        return invalid("RackId can't be empty.");
    }
    // v1 (KIP-1082): the client always generates its member id.
    let needs_id = v >= 1 || req.member_epoch > 0 || req.member_epoch == -1;
    if needs_id && req.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            // Kafka also refuses a null TopicPartitions and a missing
            // RebalanceTimeoutMs here. librdkafka <= 2.12 sends both when a
            // consumer subscribes again right after unsubscribing, and
            // takes INVALID_REQUEST as fatal (its test 0113 "u" trips on
            // it), so Weir reads them as "owns nothing" and "unchanged or
            // the default" (compat/FINDINGS.md).
            if req.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            let names = req
                .subscribed_topic_names
                .as_ref()
                .is_some_and(|n| !n.is_empty());
            let regex = req
                .subscribed_topic_regex
                .as_ref()
                .is_some_and(|r| !r.is_empty());
            if !names && !regex {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        -2 if req.instance_id.is_none() => {
            return invalid("InstanceId can't be null.");
        }
        e if e < -2 => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(a) = &req.server_assignor {
        if !b
            .config
            .group_consumer_assignors
            .iter()
            .any(|n| n == a.as_str())
        {
            return Err((
                ResponseError::UnsupportedAssignor.code(),
                format!("ServerAssignor {} is not supported.", a.as_str()),
            ));
        }
    }
    if let Some(re) = req
        .subscribed_topic_regex
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        if let Err(e) = consumer::compile_regex(re) {
            return Err((
                ResponseError::InvalidRegularExpression.code(),
                format!(
                    "SubscribedTopicRegex `{}` is not a valid regular expression: {e}",
                    re.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn owned(parts: &[consumer_group_heartbeat_request::TopicPartitions]) -> Assignment {
    let mut a = Assignment::new();
    for tp in parts {
        a.entry(tp.topic_id)
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    a
}

pub async fn consumer_group_heartbeat(
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> HandlerResult<ConsumerGroupHeartbeatResponse> {
    let b = &ctx.broker;
    let v = ctx.api_version;
    let group = req.group_id.0.to_string();
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    let fail = |mut resp: ConsumerGroupHeartbeatResponse, (code, msg): (i16, String)| {
        resp.error_code = code;
        resp.error_message = Some(str_bytes(msg));
        Ok(Some(resp))
    };
    if let Err(e) = validate(v, &req, b) {
        return fail(resp, e);
    }
    // Kafka: READ on the group; DESCRIBE on every topic subscribed by name.
    if !ctx.authorize(Operation::Read, ResourceType::Group, &group) {
        return fail(
            resp,
            (
                ResponseError::GroupAuthorizationFailed.code(),
                "Group authorization failed.".into(),
            ),
        );
    }
    let denied: Vec<&str> = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|t| t.as_str())
        .filter(|t| !ctx.authorize(Operation::Describe, ResourceType::Topic, t))
        .collect();
    if !denied.is_empty() {
        return fail(
            resp,
            (
                ResponseError::TopicAuthorizationFailed.code(),
                format!("Unauthorized topics: {}", denied.join(", ")),
            ),
        );
    }
    if b.share.is_share_group(&group).await {
        return fail(
            resp,
            (
                ResponseError::GroupIdNotFound.code(),
                format!("Group {group} is not a consumer group."),
            ),
        );
    }
    let member_id = if req.member_id.is_empty() {
        // v0 join without an id: the broker names the member.
        uuid::Uuid::new_v4().to_string()
    } else {
        req.member_id.to_string()
    };
    let hb = Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.as_deref().map(owned),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer_addr.ip()),
    };
    let settings = Settings {
        session_timeout_ms: b.group_configs.int(&group, "consumer.session.timeout.ms"),
        assignors: b.config.group_consumer_assignors.clone(),
        max_size: usize::try_from(b.config.group_consumer_max_size).unwrap_or(usize::MAX),
    };
    let image = topic_image(b);
    match b
        .groups
        .consumer_heartbeat(&group, hb, &image, &settings)
        .await
    {
        Err(e) => return fail(resp, e),
        Ok(out) => {
            resp.member_id = Some(str_bytes(out.member_id));
            resp.member_epoch = out.member_epoch;
            resp.heartbeat_interval_ms =
                b.group_configs
                    .int(&group, "consumer.heartbeat.interval.ms") as i32;
            resp.assignment = out.assignment.map(|a| {
                consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, parts)| {
                            consumer_group_heartbeat_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(parts.into_iter().collect())
                        })
                        .collect(),
                )
            });
        }
    }
    Ok(Some(resp))
}

fn described(b: &Broker, a: &Assignment) -> consumer_group_describe_response::Assignment {
    consumer_group_describe_response::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, parts)| {
                let name = b
                    .logs
                    .topic_by_id(*id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                consumer_group_describe_response::TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(topic_name(&name))
                    .with_partitions(parts.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn consumer_group_describe(
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> HandlerResult<ConsumerGroupDescribeResponse> {
    let b = &ctx.broker;
    let v = ctx.api_version;
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let mut g =
            consumer_group_describe_response::DescribedGroup::default().with_group_id(id.clone());
        if !ctx.authorize(Operation::Describe, ResourceType::Group, id.0.as_str()) {
            g.error_code = ResponseError::GroupAuthorizationFailed.code();
            groups.push(g);
            continue;
        }
        match b.groups.describe_consumer(id.0.as_str()).await {
            Err((code, msg)) => {
                g.error_code = code;
                g.error_message = Some(str_bytes(msg));
                g.group_state = str_bytes("Dead");
            }
            Ok(cg) => {
                g.group_state = str_bytes(cg.state());
                g.group_epoch = cg.group_epoch;
                g.assignment_epoch = cg.assignment_epoch;
                g.assignor_name = str_bytes(cg.assignor.clone());
                if req.include_authorized_operations {
                    g.authorized_operations =
                        ctx.authorized_operations(ResourceType::Group, id.0.as_str());
                }
                let empty = Assignment::new();
                g.members = cg
                    .members
                    .values()
                    .map(|m| {
                        let mut out = consumer_group_describe_response::Member::default()
                            .with_member_id(str_bytes(m.id.clone()))
                            .with_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.topic_names.iter().map(|t| topic_name(t)).collect(),
                            )
                            .with_subscribed_topic_regex(m.regex.clone().map(str_bytes))
                            .with_assignment(described(b, &m.assigned))
                            .with_target_assignment(described(
                                b,
                                cg.target.get(&m.id).unwrap_or(&empty),
                            ));
                        if v >= 1 {
                            // 1 = a consumer-protocol member (0 would be classic).
                            out.member_type = 1;
                        }
                        out
                    })
                    .collect();
            }
        }
        groups.push(g);
    }
    Ok(Some(
        ConsumerGroupDescribeResponse::default().with_groups(groups),
    ))
}
