//! DescribeCluster: this broker is the whole cluster and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::broker::RequestContext;
use crate::handlers::str_bytes;
use crate::protocol::HandlerResult;
use crate::security::acl::ResourceType;

pub async fn describe_cluster(
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> HandlerResult<DescribeClusterResponse> {
    let b = &ctx.broker;
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(b.logs.cluster_id()))
        .with_controller_id(BrokerId(b.node_id()));
    // endpoint_type 1 = brokers (v1+); 2 = controllers, which a combined
    // single node does not expose separately.
    if ctx.api_version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != 1 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.error_message = Some(str_bytes("only broker endpoints (1) are described"));
            return Ok(Some(resp));
        }
    }
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            ctx.authorized_operations(ResourceType::Cluster, crate::security::acl::CLUSTER_NAME);
    }
    resp.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.node_id()))
        .with_host(str_bytes(ctx.advertised_host()))
        .with_port(ctx.advertised_port())];
    Ok(Some(resp))
}
