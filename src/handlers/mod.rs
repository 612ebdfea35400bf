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
pub mod security;
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
