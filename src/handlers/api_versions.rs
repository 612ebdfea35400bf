//! ApiVersions: generated from the broker's API table (the dispatch table,
//! limited to an emulated Kafka release's versions), so the two agree.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::RequestContext;
use crate::protocol::HandlerResult;

pub async fn handle(
    ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> HandlerResult<ApiVersionsResponse> {
    let mut api_keys: Vec<ApiVersion> = ctx
        .broker
        .apis
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.advertised.min)
                .with_max_version(a.advertised.max)
        })
        .collect();
    // The SASL keys only where SASL is spoken: a client that sees them
    // may try to authenticate (handled before dispatch, in `protocol`).
    if ctx.listener.protocol.sasl() {
        for (key, max) in ctx.broker.sasl_versions() {
            api_keys.push(
                ApiVersion::default()
                    .with_api_key(key)
                    .with_min_version(0)
                    .with_max_version(max),
            );
        }
        api_keys.sort_by_key(|a| a.api_key);
    }
    Ok(Some(ApiVersionsResponse::default().with_api_keys(api_keys)))
}
