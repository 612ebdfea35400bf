//! Produce: validate and append one batch per partition. acks=0 gets no
//! response; if such a produce fails the connection is closed, the only
//! signal a fire-and-forget client can notice.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::broker::RequestContext;
use crate::handlers::{str_bytes, topic_name};
use crate::log::now_ms;
use crate::protocol::{HandlerResult, ProtocolError};

pub async fn handle(ctx: &RequestContext, req: ProduceRequest) -> HandlerResult<ProduceResponse> {
    let v = ctx.api_version;
    let logs = &ctx.broker.logs;
    let acks_valid = matches!(req.acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut first_error: Option<String> = None;
    for td in req.topic_data {
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
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let mut out = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let partition = topic.as_ref().and_then(|t| t.partition(pd.index));
            let result = match (&partition, pd.records.as_ref()) {
                _ if !acks_valid => Err((
                    ResponseError::InvalidRequiredAcks.code(),
                    "acks must be -1, 0 or 1".to_string(),
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
                    .append(records, now_ms())
                    .await
                    .map_err(|e| (e.code(), e.to_string())),
            };
            match result {
                Ok(info) => {
                    out.base_offset = info.base_offset;
                    out.log_append_time_ms = info.log_append_time;
                    if v >= 5 {
                        out.log_start_offset = info.log_start_offset;
                    }
                }
                Err((code, message)) => {
                    out.error_code = code;
                    if v >= 8 {
                        out.error_message = Some(str_bytes(message.clone()));
                    }
                    first_error.get_or_insert(format!(
                        "{}-{}: {message}",
                        td.name.0.as_str(),
                        pd.index
                    ));
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
    if req.acks == 0 {
        return match first_error {
            Some(e) => Err(ProtocolError::Acks0Failure(e)),
            None => Ok(None),
        };
    }
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}
