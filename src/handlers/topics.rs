//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DeleteRecords. All synchronous: when the response is sent, the change is
//! visible to every other request.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;

use crate::broker::RequestContext;
use crate::handlers::configs::topic_config_entries;
use crate::handlers::{str_bytes, topic_name};
use crate::log::manager::TopicError;
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

pub async fn create_topics(
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> HandlerResult<CreateTopicsResponse> {
    let v = ctx.api_version;
    let b = &ctx.broker;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    // Kafka: CREATE on the cluster, or on the topic.
    let cluster_create = ctx.authorize_cluster(Operation::Create);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default().with_name(t.name.clone());
        let outcome: Result<(i32, uuid::Uuid), (i16, String)> = (|| {
            if !cluster_create && !ctx.authorize(Operation::Create, ResourceType::Topic, &name) {
                return Err((
                    ResponseError::TopicAuthorizationFailed.code(),
                    "Authorization failed.".into(),
                ));
            }
            if seen[&name] > 1 {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("topic '{name}' appears more than once in the request"),
                ));
            }
            let mut configs = IndexMap::new();
            for c in &t.configs {
                let Some(value) = &c.value else {
                    return Err((
                        ResponseError::InvalidConfig.code(),
                        format!("null value for config {}", c.name.as_str()),
                    ));
                };
                configs.insert(c.name.to_string(), value.to_string());
            }
            let (partitions, replication) = if t.assignments.is_empty() {
                (t.num_partitions, t.replication_factor)
            } else {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return Err((
                        ResponseError::InvalidRequest.code(),
                        "num_partitions and replication_factor must be -1 with manual assignments"
                            .into(),
                    ));
                }
                let mut sorted: Vec<i32> =
                    t.assignments.iter().map(|a| a.partition_index).collect();
                sorted.sort_unstable();
                let contiguous = sorted.iter().enumerate().all(|(i, p)| *p == i as i32);
                if !contiguous
                    || t.assignments
                        .iter()
                        .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != b.node_id())
                {
                    return Err((
                        ResponseError::InvalidReplicaAssignment.code(),
                        format!(
                            "every partition must be assigned to exactly broker {}",
                            b.node_id()
                        ),
                    ));
                }
                (t.assignments.len() as i32, 1)
            };
            let err = |e: TopicError| (e.code(), e.to_string());
            if req.validate_only {
                let n = b
                    .logs
                    .validate_new_topic(&name, partitions, replication, &configs)
                    .map_err(err)?;
                Ok((n, uuid::Uuid::nil()))
            } else {
                let topic = b
                    .logs
                    .create_topic(&name, partitions, replication, configs)
                    .map_err(err)?;
                Ok((topic.partition_count(), topic.id))
            }
        })();
        match outcome {
            Ok((partitions, id)) => {
                if v >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    let overrides = b
                        .logs
                        .topic(&name)
                        .map(|t| t.overrides())
                        .unwrap_or_default();
                    r.configs = Some(
                        topic_config_entries(&b.config, &overrides)
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(e.name))
                                    .with_value(Some(str_bytes(e.value)))
                                    .with_config_source(e.source)
                            })
                            .collect(),
                    );
                }
                if v >= 7 {
                    r.topic_id = id;
                }
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(str_bytes(message));
                if v >= 5 {
                    r.num_partitions = -1;
                    r.replication_factor = -1;
                }
            }
        }
        results.push(r);
    }
    Ok(Some(CreateTopicsResponse::default().with_topics(results)))
}

pub async fn delete_topics(
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> HandlerResult<DeleteTopicsResponse> {
    let v = ctx.api_version;
    let logs = &ctx.broker.logs;
    // v6 names topics by name or id; older versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if v >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => Ok(n.clone()),
            None => logs.topic_by_id(id).map(|t| t.name.clone()).ok_or((
                ResponseError::UnknownTopicId.code(),
                format!("unknown topic id {id}"),
            )),
        };
        // Kafka: DELETE on the topic.
        let resolved = resolved.and_then(|n| {
            if ctx.authorize(Operation::Delete, ResourceType::Topic, &n) {
                Ok(n)
            } else {
                Err((
                    ResponseError::TopicAuthorizationFailed.code(),
                    "Authorization failed.".into(),
                ))
            }
        });
        let result = resolved.and_then(|n| {
            logs.delete_topic(&n)
                .map(|id| (n, id))
                .map_err(|e| (e.code(), e.to_string()))
        });
        let mut r = DeletableTopicResult::default();
        match result {
            Ok((n, deleted_id)) => {
                r.name = Some(topic_name(&n));
                if v >= 6 {
                    r.topic_id = deleted_id;
                }
            }
            Err((code, message)) => {
                r.name = name.as_deref().map(topic_name);
                r.error_code = code;
                if v >= 6 {
                    r.topic_id = id;
                }
                if v >= 5 {
                    r.error_message = Some(str_bytes(message));
                }
            }
        }
        responses.push(r);
    }
    Ok(Some(
        DeleteTopicsResponse::default().with_responses(responses),
    ))
}

pub async fn create_partitions(
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> HandlerResult<CreatePartitionsResponse> {
    let b = &ctx.broker;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
                a.iter()
                    .any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != b.node_id())
            });
            // Kafka: ALTER on the topic.
            let result = if !ctx.authorize(Operation::Alter, ResourceType::Topic, &name) {
                Err((
                    ResponseError::TopicAuthorizationFailed.code(),
                    "Authorization failed.".into(),
                ))
            } else if bad_assignment {
                Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("partitions can only be assigned to broker {}", b.node_id()),
                ))
            } else {
                b.logs
                    .create_partitions(&name, t.count, req.validate_only)
                    .map_err(|e| (e.code(), e.to_string()))
            };
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
            if let Err((code, message)) = result {
                r.error_code = code;
                r.error_message = Some(str_bytes(message));
            }
            r
        })
        .collect();
    Ok(Some(
        CreatePartitionsResponse::default().with_results(results),
    ))
}

pub async fn delete_records(
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> HandlerResult<DeleteRecordsResponse> {
    let logs = &ctx.broker.logs;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // Kafka: DELETE on the topic.
            let denied = !ctx.authorize(Operation::Delete, ResourceType::Topic, t.name.0.as_str());
            let topic = logs.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|dp| {
                    let mut r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(dp.partition_index)
                        .with_low_watermark(-1);
                    match topic.as_ref().and_then(|t| t.partition(dp.partition_index)) {
                        _ if denied => {
                            r.error_code = ResponseError::TopicAuthorizationFailed.code()
                        }
                        None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        // Kafka: records of a compact-only log are removed
                        // by the cleaner, not by DeleteRecords.
                        Some(p) if !p.config().cleanup_delete => {
                            r.error_code = ResponseError::PolicyViolation.code()
                        }
                        Some(p) => match p.delete_records_before(dp.offset) {
                            Ok(low) => r.low_watermark = low,
                            Err(e) => r.error_code = e.code(),
                        },
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(DeleteRecordsResponse::default().with_topics(topics)))
}
