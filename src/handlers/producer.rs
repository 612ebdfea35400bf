//! InitProducerId. Without a transactional id: a fresh producer id, unique
//! across restarts, at epoch 0 (idempotent producers). With one: the
//! transaction coordinator bumps the id's epoch, fencing (and aborting the
//! open transaction of) any previous producer with that id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::RequestContext;
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType};

pub async fn init_producer_id(
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> HandlerResult<InitProducerIdResponse> {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let result = match req.transactional_id {
        // Kafka: WRITE on the transactional id; an idempotent producer
        // needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic
        // (KIP-679).
        Some(id)
            if !ctx.authorize(
                Operation::Write,
                ResourceType::TransactionalId,
                id.0.as_str(),
            ) =>
        {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        }
        None if !ctx.authorize_cluster(Operation::IdempotentWrite)
            && !ctx.authorize_any(Operation::Write, ResourceType::Topic) =>
        {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
        None => broker.producer_ids.next().map(|id| (id, 0)).map_err(|e| {
            tracing::error!(error = %e, "cannot persist producer id block");
            ResponseError::KafkaStorageError
        }),
        Some(id) => {
            // v3+ (KIP-360): a producer that had an id sends it to get its
            // epoch bumped instead of a new id.
            let expected = (v >= 3 && req.producer_id.0 >= 0)
                .then_some((req.producer_id.0, req.producer_epoch));
            broker
                .txns
                .init_producer_id(
                    id.0.as_str(),
                    req.transaction_timeout_ms,
                    expected,
                    broker.participants(),
                )
                .await
        }
    };
    match result {
        Ok((id, epoch)) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = epoch;
        }
        // PRODUCER_FENCED arrived with v4; older clients know the old code.
        Err(ResponseError::ProducerFenced) if v < 4 => {
            resp.error_code = ResponseError::InvalidProducerEpoch.code()
        }
        Err(e) => resp.error_code = e.code(),
    }
    Ok(Some(resp))
}
