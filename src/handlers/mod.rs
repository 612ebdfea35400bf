//! Request handlers, one module per API family. Each is thin: read the
//! request, call the log layer, build the response, setting version-gated
//! fields only at versions that have them.

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod consumer;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer;
pub mod share;
pub mod topics;
pub mod txn;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Resource types whose authorized operations responses report.
#[derive(Debug, Clone, Copy)]
pub enum AclResource {
    Topic,
    Group,
    Cluster,
}

/// The `*_authorized_operations` bit field (bit = Kafka's AclOperation
/// code) for what a caller may do on a resource. Without an authorizer
/// that is every operation Kafka supports on the resource type
/// (`AclEntry.supportedOperations`), as Kafka answers.
pub fn authorized_operations(resource: AclResource) -> i32 {
    // READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
    // CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
    // IDEMPOTENT_WRITE 12.
    let ops: &[i32] = match resource {
        AclResource::Topic => &[3, 4, 5, 8, 6, 7, 10, 11],
        AclResource::Group => &[3, 8, 6, 10, 11],
        AclResource::Cluster => &[5, 9, 10, 11, 12, 7, 8],
    };
    ops.iter().fold(0, |bits, op| bits | 1 << op)
}
