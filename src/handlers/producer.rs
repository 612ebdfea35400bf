//! InitProducerId for idempotent producers (no transactional id): a fresh
//! producer id, unique across restarts, at epoch 0. Transactional ids are
//! refused until transactions exist.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::RequestContext;
use crate::protocol::HandlerResult;

pub async fn init_producer_id(
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> HandlerResult<InitProducerIdResponse> {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Non-retriable on purpose: a retriable code would make clients
        // spin forever on a feature that is not there.
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Ok(Some(resp));
    }
    match ctx.broker.producer_ids.next() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot persist producer id block");
            resp.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    Ok(Some(resp))
}
