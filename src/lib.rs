//! Weir: a Kafka wire-protocol-compatible single-node broker.
//!
//! # Layout
//!
//! Data flows top to bottom and back:
//!
//! - [`server`]: accept loop, connection limit, graceful shutdown; `run` is
//!   what the binary and the integration tests both call.
//! - [`connection`]: length-prefixed frames, one request at a time per
//!   connection, responses in order; frame size bounded before allocation.
//! - [`protocol`]: header decode, the ONE table of supported APIs and
//!   versions (dispatch and ApiVersions both read it), response encoding.
//! - [`handlers`]: one module per API family; thin: decode -> domain -> response.
//! - [`log`]: the storage engine: LogManager -> Topic -> Partition -> Segment
//!   with offset and time indexes, recovery, retention, and the log cleaner
//!   (compaction).
//! - [`group`]: the group coordinator: classic and consumer-protocol
//!   (KIP-848) groups with the server-side assignors, committed offsets,
//!   and their internal log.
//! - [`share`]: share groups (KIP-932 queues): membership, share sessions,
//!   share-partition windows next to the logs they read, durable state,
//!   dead-letter topics.
//! - [`security`]: TLS listeners, SASL (PLAIN, SCRAM) and the ACL
//!   authorizer with their durable stores.
//! - [`txn`]: exactly-once: producer ids, per-partition producer state
//!   (sequences, open transactions, LSO) and the transaction coordinator.
//! - [`broker`]: the shared state handlers see (config, logs, identity).
//! - [`client`]: a small Kafka client (bootstrap, routing, a classic group
//!   member) for the command-line tools; separate from the handlers.
//! - [`cli`]: the `weir topic|produce|consume|group|cluster` commands.
//! - [`config`]: broker configuration (TOML, kebab-case, documented defaults).
//! - [`http`]: the HTTP listener (`http-listen`); [`metrics`]: what its
//!   `/metrics` shows, counted on the request path without locks;
//!   [`faults`]: fault injection (`/v1/faults`) applied in [`protocol`];
//!   [`console`]: the web console (server-rendered pages).

pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod console;
pub mod faults;
pub mod group;
pub mod handlers;
pub mod http;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod security;
pub mod server;
pub mod share;
pub mod txn;

pub use broker::Broker;
pub use config::Config;
pub use server::run;
