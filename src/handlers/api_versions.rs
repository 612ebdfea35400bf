//! ApiVersions: generated from the dispatch table, so the two agree.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::RequestContext;
use crate::protocol::{HandlerResult, SUPPORTED_APIS};

pub async fn handle(
    _ctx: &RequestContext,
    _req: ApiVersionsRequest,
) -> HandlerResult<ApiVersionsResponse> {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.advertised.min)
                .with_max_version(a.advertised.max)
        })
        .collect();
    Ok(Some(ApiVersionsResponse::default().with_api_keys(api_keys)))
}
