//! Fetch: whole batches from each partition's fetch offset, bounded by the
//! request's byte limits (KIP-74: the first partition with data returns at
//! least one batch), parked until `min_bytes` arrive or `max_wait_ms` passes.
//!
//! Isolation: read_uncommitted reads up to the high watermark;
//! read_committed up to the last stable offset, with the aborted
//! transactions among the returned records listed (sorted by first offset)
//! so the client can drop their records.
//!
//! Sessions (v7+): Weir never creates fetch sessions; replying with
//! `session_id = 0` tells clients to keep sending full fetches. An unknown
//! non-zero session id gets FETCH_SESSION_ID_NOT_FOUND so the client resets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use crate::broker::RequestContext;
use crate::handlers::topic_name;
use crate::log::manager::Topic;
use crate::log::partition::Isolation;
use crate::log::LogError;
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

pub async fn handle(ctx: &RequestContext, req: FetchRequest) -> HandlerResult<FetchResponse> {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    if v >= 7 && req.session_id != 0 && req.session_epoch != -1 {
        let mut resp = FetchResponse::default();
        resp.error_code = ResponseError::FetchSessionIdNotFound.code();
        return Ok(Some(resp));
    }
    let max_bytes = (req.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes as usize);
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    // Kafka: READ on each topic; a denied topic is answered
    // TOPIC_AUTHORIZATION_FAILED and never read.
    let topics: Vec<(Option<Arc<Topic>>, &FetchTopic, bool)> = req
        .topics
        .iter()
        .map(|ft| {
            let topic = if v >= 13 {
                broker.logs.topic_by_id(ft.topic_id)
            } else {
                broker.logs.topic(ft.topic.0.as_str())
            };
            let name = topic
                .as_ref()
                .map_or(ft.topic.0.as_str(), |t| t.name.as_str());
            let denied = (topic.is_some() || v < 13)
                && !ctx.authorize(Operation::Read, ResourceType::Topic, name);
            (if denied { None } else { topic }, ft, denied)
        })
        .collect();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    loop {
        // Subscribe before reading so an append between the read and the
        // wait still wakes us.
        let mut watches: Vec<_> = topics
            .iter()
            .flat_map(|(t, ft, _)| {
                ft.partitions
                    .iter()
                    .filter_map(move |fp| t.as_ref().and_then(|t| t.partition(fp.partition)))
            })
            .map(|p| p.subscribe())
            .collect();
        let (responses, bytes, errored) = build(v, &topics, max_bytes, read_committed);
        if bytes >= min_bytes
            || errored
            || req.max_wait_ms <= 0
            || tokio::time::Instant::now() >= deadline
            || watches.is_empty()
        {
            count_bytes_out(&topics, &responses);
            return Ok(Some(FetchResponse::default().with_responses(responses)));
        }
        let mut changes: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = watches
            .iter_mut()
            .map(|w| Box::pin(w.changed()) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect();
        let any_change = std::future::poll_fn(|cx| {
            if changes.iter_mut().any(|f| f.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        if tokio::time::timeout_at(deadline, any_change).await.is_err() {
            let (responses, _, _) = build(v, &topics, max_bytes, read_committed);
            count_bytes_out(&topics, &responses);
            return Ok(Some(FetchResponse::default().with_responses(responses)));
        }
    }
}

/// Record bytes returned, per topic (`/metrics`); `build` answers the
/// topics in request order.
fn count_bytes_out(
    topics: &[(Option<Arc<Topic>>, &FetchTopic, bool)],
    responses: &[FetchableTopicResponse],
) {
    for ((topic, ..), r) in topics.iter().zip(responses) {
        if let Some(t) = topic {
            let n = r
                .partitions
                .iter()
                .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
                .sum();
            t.count_bytes_out(n);
        }
    }
}

/// Reads every requested partition once. Returns the response topics, the
/// record bytes gathered, and whether any partition had an error.
fn build(
    v: i16,
    topics: &[(Option<Arc<Topic>>, &FetchTopic, bool)],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errored = false;
    let mut out = Vec::with_capacity(topics.len());
    for (topic, ft, denied) in topics {
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1);
            if !read_committed {
                pd.aborted_transactions = None;
            }
            let partition = topic.as_ref().and_then(|t| t.partition(fp.partition));
            let Some(partition) = partition else {
                pd.error_code = if *denied {
                    ResponseError::TopicAuthorizationFailed.code()
                } else if topic.is_none() && v >= 13 {
                    ResponseError::UnknownTopicId.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                errored = true;
                partitions.push(pd);
                continue;
            };
            let budget = max_bytes.saturating_sub(total);
            let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
            // KIP-74: until some partition returned data, the next one with
            // data returns at least one whole batch whatever the limits.
            let min_one = total == 0;
            let isolation = if read_committed {
                Isolation::ReadCommitted
            } else {
                Isolation::ReadUncommitted
            };
            match partition.read(fp.fetch_offset, limit, min_one, isolation) {
                Ok(r) => {
                    total += r.records.len();
                    pd.high_watermark = r.high_watermark;
                    pd.last_stable_offset = r.last_stable_offset;
                    if read_committed {
                        pd.aborted_transactions = Some(
                            r.aborted
                                .iter()
                                .map(|t| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(t.producer_id))
                                        .with_first_offset(t.first_offset)
                                })
                                .collect(),
                        );
                    }
                    if v >= 5 {
                        pd.log_start_offset = r.log_start_offset;
                    }
                    pd.records = Some(r.records);
                }
                Err(e) => {
                    pd.error_code = e.code();
                    if matches!(e, LogError::Io(_) | LogError::Offline) {
                        tracing::error!(partition = %format!("{}-{}", partition.topic, partition.index), error = %e, "fetch read failed");
                    }
                    errored = true;
                }
            }
            partitions.push(pd);
        }
        let mut tr = FetchableTopicResponse::default().with_partitions(partitions);
        if v >= 13 {
            tr.topic_id = ft.topic_id;
        } else {
            tr.topic = topic_name(ft.topic.0.as_str());
        }
        out.push(tr);
    }
    (out, total, errored)
}
