//! Produce: validate and append one batch per partition. acks=0 gets no
//! response; if such a produce fails the connection is closed, the only
//! signal a fire-and-forget client can notice.
//!
//! Two phases: [`append_all`] appends every batch to the page cache at once
//! (no await: the appends of a connection's pipelined requests happen in
//! request order); [`finish`] then waits for the fsyncs that
//! fsync-before-ack topics need before the response may go out. The server
//! runs `finish` of one request while it appends the next, so a single
//! producer connection still gets group commit.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::broker::RequestContext;
use crate::handlers::{str_bytes, topic_name};
use crate::log::{now_ms, LogError, Partition};
use crate::protocol::{HandlerResult, ProtocolError};
use crate::security::acl::{Operation, ResourceType};

/// A produce request whose batches are in the page cache.
pub struct Appended {
    version: i16,
    acks: i16,
    resp: ProduceResponse,
    /// (partition, flush target, topic index, partition index in the response).
    waits: Vec<(Arc<Partition>, i64, usize, usize)>,
    first_error: Option<String>,
}

impl Appended {
    /// Whether acknowledging needs an fsync first.
    pub fn must_wait(&self) -> bool {
        !self.waits.is_empty()
    }
}

pub async fn handle(ctx: &RequestContext, req: ProduceRequest) -> HandlerResult<ProduceResponse> {
    finish(append_all(ctx, req)).await
}

fn fail(out: &mut PartitionProduceResponse, version: i16, code: i16, message: String) {
    out.error_code = code;
    out.base_offset = -1;
    if version >= 8 {
        out.error_message = Some(str_bytes(message));
    }
}

/// KIP-467 (v8+): which records of the batch caused the error.
fn record_errors(out: &mut PartitionProduceResponse, version: i16, e: &LogError) {
    if let (true, LogError::KeylessRecords { indexes }) = (version >= 8, e) {
        out.record_errors = indexes
            .iter()
            .map(|i| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(*i)
                    .with_batch_index_error_message(Some(str_bytes(
                        "Compacted topic cannot accept message without key.",
                    )))
            })
            .collect();
    }
}

/// Appends every partition's batch; nothing here awaits.
/// Whether some partition's first batch has the transactional attribute
/// (bit 4 of the attributes at byte 21 of a v2 batch header).
fn has_transactional_batch(req: &ProduceRequest) -> bool {
    req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records
                .as_ref()
                .and_then(|r| r.get(21..23))
                .is_some_and(|a| i16::from_be_bytes([a[0], a[1]]) & 0x10 != 0)
        })
    })
}

pub fn append_all(ctx: &RequestContext, req: ProduceRequest) -> Appended {
    let v = ctx.api_version;
    let logs = &ctx.broker.logs;
    let acks_valid = matches!(req.acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut waits = Vec::new();
    let mut first_error: Option<String> = None;
    // Kafka: WRITE on the transactional id fails the whole request;
    // WRITE on each topic, per topic.
    // Kafka checks requests with transactional batches: they need a
    // transactional id the caller may WRITE, so a principal with only
    // topic WRITE cannot append into another producer's transaction.
    let txn_denied = ctx.broker.authorizer.is_some()
        && (req.transactional_id.is_some() || has_transactional_batch(&req))
        && !req
            .transactional_id
            .as_ref()
            .is_some_and(|t| ctx.authorize(Operation::Write, ResourceType::TransactionalId, t));
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        // v13 names topics by id only.
        let topic = if v >= 13 {
            logs.topic_by_id(td.topic_id)
        } else {
            logs.topic(td.name.0.as_str())
        };
        let unknown_code = if v >= 13 {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let name = match &topic {
            Some(t) => t.name.as_str(),
            None => td.name.0.as_str(),
        };
        let topic_denied = (topic.is_some() || v < 13)
            && !ctx.authorize(Operation::Write, ResourceType::Topic, name);
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        for (pi, pd) in td.partition_data.into_iter().enumerate() {
            let mut out = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let partition = topic.as_ref().and_then(|t| t.partition(pd.index));
            let result = match (&partition, pd.records.as_ref()) {
                _ if !acks_valid => Err((
                    ResponseError::InvalidRequiredAcks.code(),
                    "acks must be -1, 0 or 1".to_string(),
                )),
                _ if txn_denied => Err((
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    "Transactional id authorization failed".to_string(),
                )),
                _ if topic_denied => Err((
                    ResponseError::TopicAuthorizationFailed.code(),
                    "Topic authorization failed".to_string(),
                )),
                (None, _) => Err((
                    if topic.is_some() {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        unknown_code
                    },
                    "unknown topic or partition".to_string(),
                )),
                (Some(_), None) => Err((
                    ResponseError::InvalidRecord.code(),
                    "null records".to_string(),
                )),
                (Some(p), Some(records)) => p
                    .append_nowait(records, now_ms())
                    .inspect(|_| {
                        if let Some(t) = &topic {
                            t.count_bytes_in(records.len());
                        }
                    })
                    .map_err(|e| {
                        record_errors(&mut out, v, &e);
                        (e.code(), e.to_string())
                    }),
            };
            match result {
                Ok((info, flush)) => {
                    out.base_offset = info.base_offset;
                    out.log_append_time_ms = info.log_append_time;
                    if v >= 5 {
                        out.log_start_offset = info.log_start_offset;
                    }
                    if let (Some(target), Some(p)) = (flush, &partition) {
                        waits.push((p.clone(), target, ti, pi));
                    }
                }
                Err((code, message)) => {
                    first_error.get_or_insert(format!(
                        "{}-{}: {message}",
                        td.name.0.as_str(),
                        pd.index
                    ));
                    fail(&mut out, v, code, message);
                }
            }
            partitions.push(out);
        }
        let mut tr = TopicProduceResponse::default().with_partition_responses(partitions);
        if v >= 13 {
            tr.topic_id = td.topic_id;
        } else {
            tr.name = topic_name(td.name.0.as_str());
        }
        responses.push(tr);
    }
    Appended {
        version: v,
        acks: req.acks,
        resp: ProduceResponse::default().with_responses(responses),
        waits,
        first_error,
    }
}

/// Waits for the fsyncs the appends need, then gives the response (none
/// for acks=0). A failed fsync fails its partition's result.
pub async fn finish(mut a: Appended) -> HandlerResult<ProduceResponse> {
    for (p, target, ti, pi) in std::mem::take(&mut a.waits) {
        if let Err(e) = p.flush_to(target).await {
            let message = e.to_string();
            a.first_error
                .get_or_insert(format!("{}-{}: {message}", p.topic, p.index));
            let out = &mut a.resp.responses[ti].partition_responses[pi];
            fail(out, a.version, e.code(), message);
        }
    }
    if a.acks == 0 {
        return match a.first_error {
            Some(e) => Err(ProtocolError::Acks0Failure(e)),
            None => Ok(None),
        };
    }
    Ok(Some(a.resp))
}
