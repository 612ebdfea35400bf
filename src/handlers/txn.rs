//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn and the admin views DescribeProducers, DescribeTransactions and
//! ListTransactions. The decisions live in `txn::coordinator`; these map
//! requests and responses, and PRODUCER_FENCED to INVALID_PRODUCER_EPOCH
//! for request versions that predate it (as Kafka does).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use crate::broker::RequestContext;
use crate::group::OffsetCommit;
use crate::handlers::{str_bytes, topic_name};
use crate::log::now_ms;
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};
use crate::txn::coordinator::{TxnProducer, TxnState};

/// PRODUCER_FENCED for clients that know it (`fenced_since` and later),
/// INVALID_PRODUCER_EPOCH for older ones.
fn fenced(e: ResponseError, version: i16, fenced_since: i16) -> i16 {
    match e {
        ResponseError::ProducerFenced if version < fenced_since => {
            ResponseError::InvalidProducerEpoch.code()
        }
        e => e.code(),
    }
}

fn producer(id: &TransactionalId, producer_id: i64, epoch: i16) -> TxnProducer<'_> {
    TxnProducer {
        id: id.0.as_str(),
        producer_id,
        epoch,
    }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

/// (transactional id, producer id, epoch, verify only, partitions).
type TxnToAdd = (TransactionalId, i64, i16, bool, Vec<(String, i32)>);

/// Groups per-partition codes into the response's topic results.
fn topic_results(codes: Vec<((String, i32), i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: indexmap::IndexMap<String, Vec<AddPartitionsToTxnPartitionResult>> =
        indexmap::IndexMap::new();
    for ((t, p), code) in codes {
        by_topic.entry(t).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code),
        );
    }
    by_topic
        .into_iter()
        .map(|(t, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic_name(&t))
                .with_results_by_partition(parts)
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> HandlerResult<AddPartitionsToTxnResponse> {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    let mut resp = AddPartitionsToTxnResponse::default();
    // Kafka: the batched v4+ form is broker-to-broker: CLUSTER_ACTION.
    if v >= 4 && !ctx.authorize_cluster(Operation::ClusterAction) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    // v0-3: one transaction from a client; v4+: a batch (from brokers,
    // possibly verify-only).
    let txns: Vec<TxnToAdd> = if v < 4 {
        vec![(
            req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            flatten(&req.v3_and_below_topics),
        )]
    } else {
        req.transactions
            .into_iter()
            .map(|t| {
                let parts = flatten(&t.topics);
                (
                    t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    t.verify_only,
                    parts,
                )
            })
            .collect()
    };
    for (id, pid, epoch, verify_only, parts) in txns {
        // Kafka: WRITE on the transactional id, then on every topic; with a
        // denied topic nothing is added (the rest OPERATION_NOT_ATTEMPTED).
        let txn_denied = !ctx.authorize(
            Operation::Write,
            ResourceType::TransactionalId,
            id.0.as_str(),
        );
        let denied_topics: std::collections::HashSet<&String> = parts
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !ctx.authorize(Operation::Write, ResourceType::Topic, t))
            .collect();
        let refused = |code_of: &dyn Fn(&String) -> ResponseError| -> Vec<((String, i32), i16)> {
            parts
                .iter()
                .map(|tp| (tp.clone(), code_of(&tp.0).code()))
                .collect()
        };
        let codes: Vec<((String, i32), i16)> = if txn_denied {
            refused(&|_| ResponseError::TransactionalIdAuthorizationFailed)
        } else if !denied_topics.is_empty() {
            refused(&|t| {
                if denied_topics.contains(t) {
                    ResponseError::TopicAuthorizationFailed
                } else {
                    ResponseError::OperationNotAttempted
                }
            })
        } else {
            let result = if verify_only {
                broker
                    .txns
                    .verify_partitions(producer(&id, pid, epoch), parts.clone())
                    .await
            } else {
                broker
                    .txns
                    .add_partitions(
                        producer(&id, pid, epoch),
                        parts.clone(),
                        broker.participants(),
                    )
                    .await
            };
            match result {
                Ok(per) => per
                    .into_iter()
                    .map(|(tp, e)| (tp, e.map(|e| e.code()).unwrap_or(0)))
                    .collect(),
                // One error for the whole transaction, reported per partition.
                Err(e) => {
                    let code = fenced(e, v, 2);
                    parts.into_iter().map(|tp| (tp, code)).collect()
                }
            }
        };
        let topics = topic_results(codes);
        if v < 4 {
            resp.results_by_topic_v3_and_below = topics;
        } else {
            resp.results_by_transaction.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(id)
                    .with_topic_results(topics),
            );
        }
    }
    Ok(Some(resp))
}

pub async fn add_offsets_to_txn(
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> HandlerResult<AddOffsetsToTxnResponse> {
    let mut resp = AddOffsetsToTxnResponse::default();
    if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        req.transactional_id.0.as_str(),
    ) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    if !ctx.authorize(
        Operation::Read,
        ResourceType::Group,
        req.group_id.0.as_str(),
    ) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    let result = ctx
        .broker
        .txns
        .add_offsets(
            producer(&req.transactional_id, req.producer_id.0, req.producer_epoch),
            req.group_id.0.as_str(),
        )
        .await;
    if let Err(e) = result {
        resp.error_code = fenced(e, ctx.api_version, 2);
    }
    Ok(Some(resp))
}

pub async fn txn_offset_commit(
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> HandlerResult<TxnOffsetCommitResponse> {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    // Kafka: WRITE on the transactional id and READ on the group fail
    // every partition; READ on a topic fails that topic's partitions and
    // the others are committed.
    let all_denied = if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        req.transactional_id.0.as_str(),
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !ctx.authorize(
        Operation::Read,
        ResourceType::Group,
        req.group_id.0.as_str(),
    ) {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else {
        None
    };
    let topic_denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.authorize(Operation::Read, ResourceType::Topic, t.name.0.as_str()))
        .collect();
    let offsets: Vec<OffsetCommit> = req
        .topics
        .iter()
        .zip(&topic_denied)
        .filter(|(_, denied)| !**denied)
        .map(|(t, _)| t)
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let member = (v >= 3).then(|| {
        (
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|s| s.as_str()),
            req.generation_id,
        )
    });
    let result = if let Some(code) = all_denied {
        Ok(vec![code; offsets.len()])
    } else if offsets.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .txns
            .txn_offset_commit(
                producer(&req.transactional_id, req.producer_id.0, req.producer_epoch),
                req.group_id.0.as_str(),
                member,
                offsets,
                broker.participants(),
            )
            .await
    };
    let committed: usize = req
        .topics
        .iter()
        .zip(&topic_denied)
        .filter(|(_, denied)| !**denied)
        .map(|(t, _)| t.partitions.len())
        .sum();
    let mut codes = match result {
        Ok(codes) => codes.into_iter(),
        Err(e) => vec![fenced(e, v, 3); committed].into_iter(),
    };
    let topics = req
        .topics
        .iter()
        .zip(&topic_denied)
        .map(|(t, denied)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let code = match all_denied {
                                Some(c) => c,
                                None if *denied => ResponseError::TopicAuthorizationFailed.code(),
                                None => codes.next().unwrap_or(0),
                            };
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Ok(Some(TxnOffsetCommitResponse::default().with_topics(topics)))
}

pub async fn end_txn(ctx: &RequestContext, req: EndTxnRequest) -> HandlerResult<EndTxnResponse> {
    let broker = &ctx.broker;
    if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        req.transactional_id.0.as_str(),
    ) {
        return Ok(Some(
            EndTxnResponse::default()
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                .with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch),
        ));
    }
    let result = broker
        .txns
        .end_txn(
            producer(&req.transactional_id, req.producer_id.0, req.producer_epoch),
            req.committed,
            broker.participants(),
        )
        .await;
    let mut resp = EndTxnResponse::default()
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch);
    if let Err(e) = result {
        resp.error_code = fenced(e, ctx.api_version, 2);
    }
    Ok(Some(resp))
}

pub async fn describe_producers(
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> HandlerResult<DescribeProducersResponse> {
    let logs = &ctx.broker.logs;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // Kafka: READ on the topic.
            let denied = !ctx.authorize(Operation::Read, ResourceType::Topic, t.name.0.as_str());
            let topic = logs.topic(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let mut out = PartitionResponse::default().with_partition_index(i);
                    match topic.as_ref().and_then(|t| t.partition(i)) {
                        _ if denied => {
                            out.error_code = ResponseError::TopicAuthorizationFailed.code()
                        }
                        None => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => {
                            out.active_producers = p
                                .producers()
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(s.epoch as i32)
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(s.txn_start_offset)
                                })
                                .collect()
                        }
                    }
                    out
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        DescribeProducersResponse::default().with_topics(topics),
    ))
}

pub async fn describe_transactions(
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> HandlerResult<DescribeTransactionsResponse> {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let mut st = describe_transactions_response::TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if !ctx.authorize(
            Operation::Describe,
            ResourceType::TransactionalId,
            id.0.as_str(),
        ) {
            st.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            states.push(st);
            continue;
        }
        match ctx.broker.txns.describe(id.0.as_str()).await {
            None => st.error_code = ResponseError::TransactionalIdNotFound.code(),
            Some(m) => {
                st.transaction_state = str_bytes(m.state.name());
                st.transaction_timeout_ms = m.timeout_ms;
                st.transaction_start_time_ms = m.start_ms;
                st.producer_id = ProducerId(m.producer_id);
                st.producer_epoch = m.epoch;
                let mut by_topic: indexmap::IndexMap<String, Vec<i32>> = indexmap::IndexMap::new();
                for (t, p) in m.partitions {
                    by_topic.entry(t).or_default().push(p);
                }
                st.topics = by_topic
                    .into_iter()
                    .map(|(t, parts)| {
                        TopicData::default()
                            .with_topic(topic_name(&t))
                            .with_partitions(parts)
                    })
                    .collect();
            }
        }
        states.push(st);
    }
    Ok(Some(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    ))
}

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn list_transactions(
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> HandlerResult<ListTransactionsResponse> {
    let mut resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for f in &req.state_filters {
        match STATES.iter().find(|s| s.name() == f.as_str()) {
            Some(s) => states.push(*s),
            None => resp.unknown_state_filters.push(f.clone()),
        }
    }
    let now = now_ms();
    let min_duration = if ctx.api_version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    resp.transaction_states = ctx
        .broker
        .txns
        .list()
        .await
        .into_iter()
        .filter(|(_, _, s, _)| req.state_filters.is_empty() || states.contains(s))
        .filter(|(id, _, _, _)| {
            ctx.authorize(Operation::Describe, ResourceType::TransactionalId, id)
        })
        .filter(|(_, pid, _, _)| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(*pid))
        })
        // Only open transactions have a duration (Kafka: running longer than the filter).
        .filter(|(_, _, s, start)| {
            min_duration < 0 || (*s == TxnState::Ongoing && now - start >= min_duration)
        })
        .map(|(id, pid, s, _)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(pid))
                .with_transaction_state(str_bytes(s.name()))
        })
        .collect();
    Ok(Some(resp))
}
