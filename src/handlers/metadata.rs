//! Metadata: brokers (this one), cluster and controller id, topics with
//! their ids and partitions; auto-creation when broker and request allow it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use crate::broker::RequestContext;
use crate::handlers::{str_bytes, topic_name};
use crate::log::manager::{Topic, TopicError};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

pub async fn handle(ctx: &RequestContext, req: MetadataRequest) -> HandlerResult<MetadataResponse> {
    let v = ctx.api_version;
    let b = &ctx.broker;
    let node = BrokerId(b.node_id());
    let mut resp =
        MetadataResponse::default().with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(ctx.advertised_host()))
            .with_port(ctx.advertised_port())]);
    if v >= 1 {
        resp.controller_id = node;
    }
    if v >= 2 {
        resp.cluster_id = Some(str_bytes(b.logs.cluster_id()));
    }
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && v == 0 => None,
        Some(t) => Some(t),
    };
    // Auto-creation: always allowed by v0-3 requests, by the flag from v4.
    let allow_create =
        b.config.auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => {
            // Topics the caller may not describe are left out.
            for t in b.logs.topics() {
                if ctx.authorize(Operation::Describe, ResourceType::Topic, &t.name) {
                    topics.push(describe(&t, node, v));
                }
            }
        }
        Some(list) => {
            for rt in list {
                // Clients naming a topic by id send a null (or empty) name.
                let by_name = rt.name.filter(|n| !n.0.is_empty() || rt.topic_id.is_nil());
                match by_name {
                    Some(name) => {
                        let name = name.0.to_string();
                        let may_create = || {
                            ctx.authorize_cluster(Operation::Create)
                                || ctx.authorize(Operation::Create, ResourceType::Topic, &name)
                        };
                        let found = match b.logs.topic(&name) {
                            _ if !ctx.authorize(
                                Operation::Describe,
                                ResourceType::Topic,
                                &name,
                            ) =>
                            {
                                Err(None)
                            }
                            Some(t) => Ok(t),
                            None if allow_create && !may_create() => Err(None),
                            None if allow_create => b
                                .logs
                                .create_topic(&name, -1, -1, Default::default())
                                .or_else(|e| match e {
                                    // Lost a race with a concurrent creator: fine.
                                    TopicError::AlreadyExists(_) => b.logs.topic(&name).ok_or(e),
                                    other => Err(other),
                                })
                                .map_err(Some),
                            None => Err(Some(TopicError::Unknown(name.clone()))),
                        };
                        // `Err(None)`: not authorized (to describe, or to
                        // auto-create), which hides whether it exists.
                        topics.push(match found {
                            Ok(t) => describe(&t, node, v),
                            Err(e) => {
                                let code = e
                                    .map_or(ResponseError::TopicAuthorizationFailed.code(), |e| {
                                        e.code()
                                    });
                                error_topic(Some(&name), Uuid::nil(), code, v)
                            }
                        });
                    }
                    None => match b.logs.topic_by_id(rt.topic_id) {
                        Some(t)
                            if !ctx.authorize(
                                Operation::Describe,
                                ResourceType::Topic,
                                &t.name,
                            ) =>
                        {
                            topics.push(error_topic(
                                None,
                                rt.topic_id,
                                ResponseError::TopicAuthorizationFailed.code(),
                                v,
                            ))
                        }
                        Some(t) => topics.push(describe(&t, node, v)),
                        None => topics.push(error_topic(
                            None,
                            rt.topic_id,
                            ResponseError::UnknownTopicId.code(),
                            v,
                        )),
                    },
                }
            }
        }
    }
    if v >= 8 && req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            t.topic_authorized_operations = ctx.authorized_operations(ResourceType::Topic, &name);
        }
    }
    if (8..=10).contains(&v) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            ctx.authorized_operations(ResourceType::Cluster, crate::security::acl::CLUSTER_NAME);
    }
    resp.topics = topics;
    Ok(Some(resp))
}

fn error_topic(name: Option<&str>, id: Uuid, code: i16, v: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(topic_name));
    if v >= 10 {
        t.topic_id = id;
    }
    t
}

fn describe(t: &Topic, node: BrokerId, v: i16) -> MetadataResponseTopic {
    let partitions = (0..t.partition_count())
        .map(|i| {
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(node)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if v >= 7 {
                p.leader_epoch = 0;
            }
            p
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_partitions(partitions);
    if v >= 10 {
        topic.topic_id = t.id;
    }
    topic
}
