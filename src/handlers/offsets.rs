//! ListOffsets (earliest, latest, max timestamp, by timestamp) and
//! OffsetForLeaderEpoch. Weir's leader epoch is always 0.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::broker::RequestContext;
use crate::log::{LogError, Partition};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

const LEADER_EPOCH: i32 = 0;

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

/// Checks a client's `current_leader_epoch` against ours (-1 = no check).
fn check_epoch(current: i32) -> Result<(), i16> {
    match current {
        c if c < 0 || c == LEADER_EPOCH => Ok(()),
        c if c > LEADER_EPOCH => Err(ResponseError::UnknownLeaderEpoch.code()),
        _ => Err(ResponseError::FencedLeaderEpoch.code()),
    }
}

/// (offset, timestamp) for one ListOffsets query.
fn lookup(p: &Partition, timestamp: i64, read_committed: bool) -> Result<(i64, i64), LogError> {
    let offsets = p.offsets();
    Ok(match timestamp {
        EARLIEST | EARLIEST_LOCAL => (offsets.log_start, -1),
        LATEST if read_committed => (offsets.last_stable, -1),
        LATEST => (offsets.high_watermark, -1),
        LATEST_TIERED => (-1, -1),
        MAX_TIMESTAMP => p.max_timestamp_offset()?.unwrap_or((-1, -1)),
        t => p.offset_for_timestamp(t)?.unwrap_or((-1, -1)),
    })
}

pub async fn list_offsets(
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> HandlerResult<ListOffsetsResponse> {
    let v = ctx.api_version;
    let logs = &ctx.broker.logs;
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // Kafka: DESCRIBE on the topic.
            let denied =
                !ctx.authorize(Operation::Describe, ResourceType::Topic, t.name.0.as_str());
            let topic = logs.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|lp| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index);
                    let result = match topic.as_ref().and_then(|t| t.partition(lp.partition_index))
                    {
                        _ if denied => Err(ResponseError::TopicAuthorizationFailed.code()),
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                        Some(p) => check_epoch(if v >= 4 { lp.current_leader_epoch } else { -1 })
                            .and_then(|_| {
                                lookup(&p, lp.timestamp, read_committed).map_err(|e| e.code())
                            }),
                    };
                    match result {
                        Ok((offset, ts)) => {
                            out.offset = offset;
                            out.timestamp = ts;
                            if v >= 4 {
                                out.leader_epoch = LEADER_EPOCH;
                            }
                        }
                        Err(code) => out.error_code = code,
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(ListOffsetsResponse::default().with_topics(topics)))
}

/// librdkafka validates positions with this after every reassignment; with
/// one constant epoch the answer is the log end offset for epoch 0.
pub async fn offset_for_leader_epoch(
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> HandlerResult<OffsetForLeaderEpochResponse> {
    let logs = &ctx.broker.logs;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let denied =
                !ctx.authorize(Operation::Describe, ResourceType::Topic, t.topic.0.as_str());
            let topic = logs.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|lp| {
                    let mut out = EpochEndOffset::default().with_partition(lp.partition);
                    match topic.as_ref().and_then(|t| t.partition(lp.partition)) {
                        _ if denied => {
                            out.error_code = ResponseError::TopicAuthorizationFailed.code()
                        }
                        None => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => match check_epoch(lp.current_leader_epoch) {
                            Err(code) => out.error_code = code,
                            // An epoch newer than ours is unknown: undefined offset.
                            Ok(()) if lp.leader_epoch > LEADER_EPOCH => {
                                out.leader_epoch = -1;
                                out.end_offset = -1;
                            }
                            Ok(()) => {
                                out.leader_epoch = LEADER_EPOCH;
                                out.end_offset = p.offsets().log_end;
                            }
                        },
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}
