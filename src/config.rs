//! Broker configuration: serde + TOML, kebab-case versions of Kafka's broker
//! property names. Every field documents its default; `config/weir.toml`
//! ships every key with its default and a test keeps the two equal.

use serde::{Deserialize, Serialize};

/// Broker configuration. Defaults follow Kafka unless a doc line says why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:9092`.
    pub listen: String,
    /// Directory for logs and metadata. Default `./data`.
    pub data_dir: String,
    /// Host advertised in Metadata. Default `""`: the listen host, or, when
    /// listening on a wildcard address, the local address each client
    /// connected to (so `0.0.0.0` works from containers and VMs unchanged).
    pub advertised_host: String,
    /// This broker's id, also reported as controller id. Default `1`.
    pub node_id: i32,
    /// Default partition count for auto-created topics and CreateTopics
    /// with `num_partitions = -1`. Default `1` (Kafka's).
    pub num_partitions: i32,
    /// Create a topic when Metadata asks for an unknown one and the request
    /// allows it. Default `true`.
    pub auto_create_topics_enable: bool,
    /// Allow DeleteTopics. Default `true`.
    pub delete_topic_enable: bool,
    /// Largest record batch accepted (topic `max.message.bytes`). Default `1048588`.
    pub message_max_bytes: i32,
    /// Largest request frame; larger frames close the connection before any
    /// allocation. Default `104857600`.
    pub socket_request_max_bytes: i32,
    /// Maximum simultaneous client connections; more are closed on accept.
    /// Default `10000` (Kafka's is unbounded; a bound is the safer default).
    pub max_connections: u32,
    /// Maximum simultaneous connections from one IP address; more are
    /// closed on accept. Default `2147483647` (unlimited, as in Kafka).
    pub max_connections_per_ip: u32,
    /// Close a connection with no request in flight for this long; a
    /// partial request that stalls counts as idle. Default `600000` (Kafka's).
    pub connections_max_idle_ms: u64,
    /// Bytes of requests the broker holds at once (being read or handled),
    /// across all connections. When used up, connections stop being read
    /// until requests finish (back-pressure); a single request larger than
    /// this closes its connection. Default `268435456` (256 MiB; Kafka's
    /// `queued.max.request.bytes` is unbounded by default).
    pub queued_max_request_bytes: u64,
    /// Segment size before rolling (topic `segment.bytes`). Default `1073741824`.
    pub log_segment_bytes: i64,
    /// Segment age before rolling (topic `segment.ms`). Default `604800000` (7 days).
    pub log_roll_ms: i64,
    /// Delete closed segments older than this; -1 keeps forever (topic
    /// `retention.ms`). Default `604800000` (7 days).
    pub log_retention_ms: i64,
    /// Delete oldest closed segments while the partition is larger than this;
    /// -1 for no limit (topic `retention.bytes`). Default `-1`.
    pub log_retention_bytes: i64,
    /// How often retention runs. Default `300000`.
    pub log_retention_check_interval_ms: u64,
    /// Preallocated size of each segment's offset and time index
    /// (topic `segment.index.bytes`). Default `10485760`.
    pub log_index_size_max_bytes: i32,
    /// Bytes between offset index entries (topic `index.interval.bytes`). Default `4096`.
    pub log_index_interval_bytes: i32,
    /// fsync after this many messages (topic `flush.messages`). `1` means
    /// every produce is fsynced before it is acknowledged, with concurrent
    /// produces sharing one fsync (group commit). Default
    /// `9223372036854775807`: rely on the page cache, as Kafka does; a process
    /// crash still loses nothing acknowledged.
    pub log_flush_interval_messages: i64,
    /// fsync a partition whose oldest unflushed write is older than this
    /// (topic `flush.ms`). Default `9223372036854775807` (never).
    pub log_flush_interval_ms: i64,
    /// Advertise and serve exactly the API versions this Apache Kafka
    /// release's broker did ("2.1" to "4.2"), within what Weir serves, to
    /// test a client against an older Kafka. Empty: Weir's own table.
    /// Command line: `--emulate-kafka-version`. Default `""`.
    pub emulate_kafka_version: String,
    /// The HTTP listener's address (`/metrics`); empty disables it. If the
    /// address is in use the broker runs without it (and logs a warning).
    /// Default `127.0.0.1:9644`: loopback only.
    pub http_listen: String,
    /// Bytes at the end of each partition's log kept in the page cache for
    /// consumers near the tail. Appends start writeback of each MiB as it
    /// fills and drop written-back data older than this from the page
    /// cache; reads of such older (cold) data drop what they read. Keeps
    /// the cost of an append independent of how much the page cache holds
    /// ("The write path" in `docs/performance.md`). `-1` leaves the page
    /// cache to the kernel, as Kafka does. Default `16777216` (16 MiB).
    pub log_tail_cache_bytes: i64,
    /// `CreateTime` or `LogAppendTime` (topic `message.timestamp.type`). Default `CreateTime`.
    pub log_message_timestamp_type: String,
    /// `delete`, `compact` or `delete,compact` (topic `cleanup.policy`).
    /// Default `delete`.
    pub log_cleanup_policy: String,
    /// Upper bound of one Fetch response. Default `57671680`.
    pub fetch_max_bytes: i32,
    /// Smallest session timeout a group member may ask for. Default `6000`;
    /// lower it for fast failure detection in tests.
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a group member may ask for. Default `1800000`.
    pub group_max_session_timeout_ms: i32,
    /// How long the first rebalance of an empty group waits for more
    /// members. Default `0` (Kafka: 3000): a lone consumer starts at once,
    /// and consumers joining together still settle in one rebalance because
    /// the join waits for every member that was just handed an id.
    pub group_initial_rebalance_delay_ms: i32,
    /// Maximum members per group. Default `2147483647`.
    pub group_max_size: i32,
    /// Keep committed offsets of an empty group this long. Default `10080` (7 days).
    pub offsets_retention_minutes: i64,
    /// Largest offset commit metadata string. Default `4096`.
    pub offset_metadata_max_bytes: i32,
    /// Largest `transaction.timeout.ms` a transactional producer may ask
    /// for (INVALID_TRANSACTION_TIMEOUT above it). Default `900000`.
    pub transaction_max_timeout_ms: i64,
    /// Forget a transactional id with no open transaction after this long.
    /// Default `604800000` (7 days).
    pub transactional_id_expiration_ms: i64,
    /// Forget an idle producer's sequence state in a partition this long
    /// after its last batch's timestamp. Default `86400000` (1 day).
    pub producer_id_expiration_ms: i64,
    /// Share groups: how long a delivered record stays locked to its
    /// consumer (the visibility timeout). Default `30000`.
    pub group_share_record_lock_duration_ms: i64,
    /// Smallest `share.record.lock.duration.ms` a group may set. Default
    /// `15000` (Kafka's); can go down to 1000 for fast tests.
    pub group_share_min_record_lock_duration_ms: i64,
    /// Largest `share.record.lock.duration.ms` a group may set. Default `60000`.
    pub group_share_max_record_lock_duration_ms: i64,
    /// Deliveries of a record before it is archived. Default `5`.
    pub group_share_delivery_count_limit: i64,
    /// Heartbeat interval given to share group members. Default `5000`.
    pub group_share_heartbeat_interval_ms: i64,
    /// A share group member silent this long is removed. Default `45000`.
    pub group_share_session_timeout_ms: i64,
    /// In-flight records (acquired or waiting) per share-partition; when
    /// reached, no new records are delivered until earlier ones complete.
    /// Default `2000`.
    pub group_share_partition_max_record_locks: i64,
    /// Members per share group. Default `200`.
    pub group_share_max_size: i64,
    /// Consumer-protocol groups (KIP-848): heartbeat interval given to
    /// members. Default `1000` (Kafka: 5000); a partition moves between
    /// members within about two intervals.
    pub group_consumer_heartbeat_interval_ms: i64,
    /// A silent consumer-protocol member is removed after this. Default
    /// `10000` (Kafka: 45000).
    pub group_consumer_session_timeout_ms: i64,
    /// Bounds of the group configs `consumer.heartbeat.interval.ms`
    /// (defaults `100`..`15000`; Kafka: 5000..15000) and
    /// `consumer.session.timeout.ms` (`1000`..`60000`; Kafka: 45000..60000).
    pub group_consumer_min_heartbeat_interval_ms: i64,
    pub group_consumer_max_heartbeat_interval_ms: i64,
    pub group_consumer_min_session_timeout_ms: i64,
    pub group_consumer_max_session_timeout_ms: i64,
    /// Server-side assignors, the first being the default. Default
    /// `["uniform", "range"]` (Kafka's).
    pub group_consumer_assignors: Vec<String>,
    /// Members per consumer-protocol group. Default `2147483647`.
    pub group_consumer_max_size: i64,
    /// Segment size of the group coordinator's internal log (committed
    /// offsets, group membership) and of the share-group state log; they
    /// are compacted, so their size follows the live keys. Default
    /// `10485760` (Kafka: 104857600; smaller here so a laptop's log
    /// compacts and replays quickly).
    pub offsets_topic_segment_bytes: u64,
    /// Segment size of the transaction coordinator's internal log. Default
    /// `10485760` (Kafka: 104857600).
    pub transaction_state_log_segment_bytes: u64,
    /// Run the log cleaner (compaction of `cleanup.policy=compact` topics).
    /// Default `true`.
    pub log_cleaner_enable: bool,
    /// How often the cleaner looks for dirty logs when nothing woke it (a
    /// compacted log rolling a segment does). Default `1000` (Kafka: 15000).
    pub log_cleaner_backoff_ms: u64,
    /// Logs cleaned at once. Default `1`.
    pub log_cleaner_threads: u32,
    /// Read + write throughput of the cleaner, bytes/s. Default
    /// `1.7976931348623157e308` (unlimited, Kafka's Double.MAX_VALUE).
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// Memory for one pass's key -> offset map; a pass that fills it stops
    /// at a segment boundary and the next continues. Default `134217728`.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// PEM certificate chain (the broker's certificate first) of the SSL and
    /// SASL_SSL listeners. Default `""`.
    pub ssl_certificate_location: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate. Default `""`.
    pub ssl_key_location: String,
    /// Client certificates on SSL listeners: `none`, `requested` (checked
    /// when sent) or `required` (mutual TLS; the principal is the
    /// certificate's subject). SASL_SSL listeners identify clients by SASL
    /// and ask for no certificate (Kafka, KIP-684). Default `none` (Kafka's).
    pub ssl_client_auth: String,
    /// PEM CA certificates client certificates must chain to. Default `""`.
    pub ssl_truststore_location: String,
    /// Users of SASL/PLAIN, user = password. Default: none.
    pub sasl_plain_users: std::collections::BTreeMap<String, String>,
    /// A SASL session lasts this long; clients re-authenticate on the same
    /// connection before it ends (KIP-368), and a connection whose session
    /// ended is closed at its next request. `0` = forever. Default `0` (Kafka's).
    pub connections_max_reauth_ms: i64,
    /// After a failed SASL handshake or authentication, the error response
    /// is sent and the connection closed this much later (Kafka's
    /// `connection.failed.authentication.delay.ms`): clients that drop
    /// bytes arriving with the close still read the error, and password
    /// guessing slows down. Default `100`.
    pub connection_failed_authentication_delay_ms: u64,
    /// `acl` turns on Kafka's ACL authorizer; `""` authorizes everything.
    /// Default `""`.
    pub authorizer: String,
    /// Principals allowed everything when the authorizer is on (`User:admin`).
    /// Default: none.
    pub super_users: Vec<String>,
    /// With the authorizer on, allow an operation on a resource no ACL
    /// names at all. Default `false` (Kafka's).
    pub allow_everyone_if_no_acl_found: bool,
    /// Listeners besides `listen` (which is PLAINTEXT). Default: none.
    pub listeners: Vec<ListenerConfig>,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenerConfig {
    /// HOST:PORT to bind.
    pub address: String,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
    /// Mechanisms of a SASL listener. Default `["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]`.
    #[serde(default = "default_mechanisms")]
    pub sasl_enabled_mechanisms: Vec<String>,
}

fn default_mechanisms() -> Vec<String> {
    crate::security::MECHANISMS
        .iter()
        .map(|m| m.to_string())
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".into(),
            data_dir: "./data".into(),
            advertised_host: String::new(),
            node_id: 1,
            num_partitions: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            max_connections: 10_000,
            max_connections_per_ip: 2_147_483_647,
            connections_max_idle_ms: 600_000,
            queued_max_request_bytes: 256 << 20,
            log_segment_bytes: 1_073_741_824,
            log_roll_ms: 604_800_000,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_index_size_max_bytes: 10_485_760,
            log_index_interval_bytes: 4096,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: i64::MAX,
            log_tail_cache_bytes: 16 << 20,
            http_listen: "127.0.0.1:9644".into(),
            emulate_kafka_version: String::new(),
            log_message_timestamp_type: "CreateTime".into(),
            log_cleanup_policy: "delete".into(),
            fetch_max_bytes: 57_671_680,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 0,
            group_max_size: i32::MAX,
            offsets_retention_minutes: 10_080,
            offset_metadata_max_bytes: 4096,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            producer_id_expiration_ms: 86_400_000,
            group_share_record_lock_duration_ms: 30_000,
            group_share_min_record_lock_duration_ms: 15_000,
            group_share_max_record_lock_duration_ms: 60_000,
            group_share_delivery_count_limit: 5,
            group_share_heartbeat_interval_ms: 5_000,
            group_share_session_timeout_ms: 45_000,
            group_share_partition_max_record_locks: 2_000,
            group_share_max_size: 200,
            group_consumer_heartbeat_interval_ms: 1_000,
            group_consumer_session_timeout_ms: 10_000,
            group_consumer_min_heartbeat_interval_ms: 100,
            group_consumer_max_heartbeat_interval_ms: 15_000,
            group_consumer_min_session_timeout_ms: 1_000,
            group_consumer_max_session_timeout_ms: 60_000,
            group_consumer_assignors: vec!["uniform".into(), "range".into()],
            group_consumer_max_size: i32::MAX as i64,
            offsets_topic_segment_bytes: 10 << 20,
            transaction_state_log_segment_bytes: 10 << 20,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 1_000,
            log_cleaner_threads: 1,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_dedupe_buffer_size: 128 << 20,
            ssl_certificate_location: String::new(),
            ssl_key_location: String::new(),
            ssl_client_auth: "none".into(),
            ssl_truststore_location: String::new(),
            sasl_plain_users: Default::default(),
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            authorizer: String::new(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            listeners: Vec::new(),
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// The group coordinator's settings.
    pub fn group_config(&self) -> crate::group::GroupConfig {
        crate::group::GroupConfig {
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            max_group_size: self.group_max_size as usize,
            offset_metadata_max_bytes: self.offset_metadata_max_bytes as usize,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
        }
    }

    /// The transaction coordinator's settings.
    pub fn txn_config(&self) -> crate::txn::TxnConfig {
        crate::txn::TxnConfig {
            max_timeout_ms: self.transaction_max_timeout_ms,
            id_expiration_ms: self.transactional_id_expiration_ms,
        }
    }

    /// Reads and validates a TOML file; missing keys take their defaults.
    pub fn from_file(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and enumerations; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(invalid(
                "listen",
                format!("`{}` is not HOST:PORT", self.listen),
            ));
        }
        if self.data_dir.is_empty() {
            return Err(invalid("data-dir", "must not be empty"));
        }
        if self.node_id < 0 {
            return Err(invalid("node-id", "must be >= 0"));
        }
        if self.num_partitions < 1 {
            return Err(invalid("num-partitions", "must be >= 1"));
        }
        if self.message_max_bytes < 0 {
            return Err(invalid("message-max-bytes", "must be >= 0"));
        }
        if self.socket_request_max_bytes < 1024 {
            return Err(invalid("socket-request-max-bytes", "must be >= 1024"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max-connections", "must be >= 1"));
        }
        if self.max_connections_per_ip == 0 {
            return Err(invalid("max-connections-per-ip", "must be >= 1"));
        }
        if self.connections_max_idle_ms == 0 {
            return Err(invalid("connections-max-idle-ms", "must be >= 1"));
        }
        if self.queued_max_request_bytes < 1024 {
            return Err(invalid("queued-max-request-bytes", "must be >= 1024"));
        }
        if self.log_segment_bytes < 14 || self.log_segment_bytes > i32::MAX as i64 {
            return Err(invalid("log-segment-bytes", "must be in 14..=2147483647"));
        }
        if self.log_roll_ms < 1 {
            return Err(invalid("log-roll-ms", "must be >= 1"));
        }
        if self.log_retention_ms < -1 {
            return Err(invalid("log-retention-ms", "must be >= -1"));
        }
        if self.log_retention_check_interval_ms == 0 {
            return Err(invalid("log-retention-check-interval-ms", "must be >= 1"));
        }
        if self.log_index_size_max_bytes < 8 {
            return Err(invalid("log-index-size-max-bytes", "must be >= 8"));
        }
        if self.log_index_interval_bytes < 0 {
            return Err(invalid("log-index-interval-bytes", "must be >= 0"));
        }
        if self.log_flush_interval_messages < 1 {
            return Err(invalid("log-flush-interval-messages", "must be >= 1"));
        }
        if self.log_flush_interval_ms < 0 {
            return Err(invalid("log-flush-interval-ms", "must be >= 0"));
        }
        if !self.emulate_kafka_version.is_empty() {
            crate::protocol::emulation_release(&self.emulate_kafka_version)
                .map_err(|e| invalid("emulate-kafka-version", e))?;
        }
        if self.log_tail_cache_bytes < -1 {
            return Err(invalid("log-tail-cache-bytes", "must be >= -1"));
        }
        if !matches!(
            self.log_message_timestamp_type.as_str(),
            "CreateTime" | "LogAppendTime"
        ) {
            return Err(invalid(
                "log-message-timestamp-type",
                "must be CreateTime or LogAppendTime",
            ));
        }
        if crate::log::topic_config::parse_cleanup_policy(&self.log_cleanup_policy).is_none() {
            return Err(invalid(
                "log-cleanup-policy",
                "must be delete, compact or delete,compact",
            ));
        }
        if self.fetch_max_bytes < 0 {
            return Err(invalid("fetch-max-bytes", "must be >= 0"));
        }
        if self.group_min_session_timeout_ms < 1 {
            return Err(invalid("group-min-session-timeout-ms", "must be >= 1"));
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return Err(invalid(
                "group-max-session-timeout-ms",
                "must be >= group-min-session-timeout-ms",
            ));
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return Err(invalid("group-initial-rebalance-delay-ms", "must be >= 0"));
        }
        if self.group_max_size < 1 {
            return Err(invalid("group-max-size", "must be >= 1"));
        }
        if self.offsets_retention_minutes < 1 {
            return Err(invalid("offsets-retention-minutes", "must be >= 1"));
        }
        if self.offset_metadata_max_bytes < 0 {
            return Err(invalid("offset-metadata-max-bytes", "must be >= 0"));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(invalid("transaction-max-timeout-ms", "must be >= 1"));
        }
        if self.transactional_id_expiration_ms < 1 {
            return Err(invalid("transactional-id-expiration-ms", "must be >= 1"));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(invalid("producer-id-expiration-ms", "must be >= 1"));
        }
        if !(1000..=30_000).contains(&self.group_share_min_record_lock_duration_ms) {
            return Err(invalid(
                "group-share-min-record-lock-duration-ms",
                "must be in 1000..=30000",
            ));
        }
        if !(30_000..=3_600_000).contains(&self.group_share_max_record_lock_duration_ms) {
            return Err(invalid(
                "group-share-max-record-lock-duration-ms",
                "must be in 30000..=3600000",
            ));
        }
        if self.group_share_record_lock_duration_ms < self.group_share_min_record_lock_duration_ms
            || self.group_share_record_lock_duration_ms
                > self.group_share_max_record_lock_duration_ms
        {
            return Err(invalid(
                "group-share-record-lock-duration-ms",
                "must be within group-share-min/max-record-lock-duration-ms",
            ));
        }
        if !(2..=10).contains(&self.group_share_delivery_count_limit) {
            return Err(invalid(
                "group-share-delivery-count-limit",
                "must be in 2..=10",
            ));
        }
        if self.group_share_heartbeat_interval_ms < 100 {
            return Err(invalid(
                "group-share-heartbeat-interval-ms",
                "must be >= 100",
            ));
        }
        if self.group_share_session_timeout_ms <= self.group_share_heartbeat_interval_ms {
            return Err(invalid(
                "group-share-session-timeout-ms",
                "must be larger than group-share-heartbeat-interval-ms",
            ));
        }
        let (hb, hb_min, hb_max) = (
            self.group_consumer_heartbeat_interval_ms,
            self.group_consumer_min_heartbeat_interval_ms,
            self.group_consumer_max_heartbeat_interval_ms,
        );
        if hb_min < 10 || hb_max < hb_min || !(hb_min..=hb_max).contains(&hb) {
            return Err(invalid(
                "group-consumer-heartbeat-interval-ms",
                "must be within group-consumer-min/max-heartbeat-interval-ms (min >= 10)",
            ));
        }
        let (st, st_min, st_max) = (
            self.group_consumer_session_timeout_ms,
            self.group_consumer_min_session_timeout_ms,
            self.group_consumer_max_session_timeout_ms,
        );
        if st_max < st_min || !(st_min..=st_max).contains(&st) || st <= hb {
            return Err(invalid(
                "group-consumer-session-timeout-ms",
                "must be within group-consumer-min/max-session-timeout-ms and above the heartbeat interval",
            ));
        }
        if self.group_consumer_assignors.is_empty()
            || self
                .group_consumer_assignors
                .iter()
                .any(|a| !crate::group::assignor::ASSIGNORS.contains(&a.as_str()))
        {
            return Err(invalid(
                "group-consumer-assignors",
                "must list one or more of uniform, range",
            ));
        }
        if !(1..=i32::MAX as i64).contains(&self.group_consumer_max_size) {
            return Err(invalid("group-consumer-max-size", "must be >= 1"));
        }
        if self.offsets_topic_segment_bytes < 1024 {
            return Err(invalid("offsets-topic-segment-bytes", "must be >= 1024"));
        }
        if self.transaction_state_log_segment_bytes < 1024 {
            return Err(invalid(
                "transaction-state-log-segment-bytes",
                "must be >= 1024",
            ));
        }
        if self.log_cleaner_threads == 0 || self.log_cleaner_threads > 64 {
            return Err(invalid("log-cleaner-threads", "must be in 1..=64"));
        }
        if self.log_cleaner_backoff_ms == 0 {
            return Err(invalid("log-cleaner-backoff-ms", "must be >= 1"));
        }
        if self.log_cleaner_io_max_bytes_per_second.is_nan()
            || self.log_cleaner_io_max_bytes_per_second <= 0.0
        {
            return Err(invalid(
                "log-cleaner-io-max-bytes-per-second",
                "must be > 0",
            ));
        }
        if self.log_cleaner_dedupe_buffer_size < 1 << 20 {
            return Err(invalid(
                "log-cleaner-dedupe-buffer-size",
                "must be >= 1048576",
            ));
        }
        if !(100..=10_000).contains(&self.group_share_partition_max_record_locks) {
            return Err(invalid(
                "group-share-partition-max-record-locks",
                "must be in 100..=10000",
            ));
        }
        if self.group_share_max_size < 1 {
            return Err(invalid("group-share-max-size", "must be >= 1"));
        }
        self.validate_security()
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        use crate::security::SecurityProtocol;
        if !matches!(
            self.ssl_client_auth.as_str(),
            "none" | "requested" | "required"
        ) {
            return Err(invalid(
                "ssl-client-auth",
                "must be none, requested or required",
            ));
        }
        if self.ssl_client_auth != "none" && self.ssl_truststore_location.is_empty() {
            return Err(invalid(
                "ssl-truststore-location",
                "must be set when ssl-client-auth is requested or required",
            ));
        }
        if !matches!(self.authorizer.as_str(), "" | "acl") {
            return Err(invalid("authorizer", "must be \"acl\" or \"\""));
        }
        for p in &self.super_users {
            if crate::security::Principal::parse(p).is_none() {
                return Err(invalid(
                    "super-users",
                    format!("`{p}` is not TYPE:NAME (User:admin)"),
                ));
            }
        }
        if self.connections_max_reauth_ms < 0 {
            return Err(invalid("connections-max-reauth-ms", "must be >= 0"));
        }
        for l in &self.listeners {
            if l.address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(
                    "listeners.address",
                    format!("`{}` is not HOST:PORT", l.address),
                ));
            }
            let Some(protocol) = SecurityProtocol::parse(&l.security_protocol) else {
                return Err(invalid(
                    "listeners.security-protocol",
                    format!(
                        "`{}` is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                        l.security_protocol
                    ),
                ));
            };
            if protocol.tls()
                && (self.ssl_certificate_location.is_empty() || self.ssl_key_location.is_empty())
            {
                return Err(invalid(
                    "ssl-certificate-location",
                    format!(
                        "a {} listener needs ssl-certificate-location and ssl-key-location",
                        l.security_protocol
                    ),
                ));
            }
            if protocol.sasl() {
                if l.sasl_enabled_mechanisms.is_empty() {
                    return Err(invalid(
                        "listeners.sasl-enabled-mechanisms",
                        "a SASL listener needs at least one mechanism",
                    ));
                }
                for m in &l.sasl_enabled_mechanisms {
                    if !crate::security::MECHANISMS.contains(&m.as_str()) {
                        return Err(invalid(
                            "listeners.sasl-enabled-mechanisms",
                            format!("`{m}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Broker configs as Kafka names them (`log-retention-ms` ->
    /// `log.retention.ms`) with their current values, for DescribeConfigs.
    pub fn kafka_properties(&self) -> Vec<(String, String)> {
        let table = toml::Table::try_from(self).expect("Config serializes to a table");
        table
            .into_iter()
            // Passwords are never shown (Kafka reports its JAAS configs as
            // sensitive); listeners are not one value.
            .filter(|(k, _)| k != "sasl-plain-users" && k != "listeners")
            .map(|(k, v)| {
                let value = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k.replace('-', "."), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_equals_defaults() {
        let text = include_str!("../config/weir.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("num-partitions = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("num-partitions"), "{e}");
        let e = Config::from_toml("no-such-key = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-key"), "{e}");
        let e = Config::from_toml("log-message-timestamp-type = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("log-message-timestamp-type"), "{e}");
        let e = Config::from_toml("message-max-bytes = \"big\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("message-max-bytes"), "{e}");
    }

    #[test]
    fn passwords_are_never_broker_configs() {
        let mut c = Config::default();
        c.sasl_plain_users
            .insert("alice".into(), "alice-secret".into());
        assert!(c
            .kafka_properties()
            .iter()
            .all(|(k, v)| !v.contains("alice-secret") && !k.starts_with("sasl.plain")));
    }

    #[test]
    fn security_settings_are_checked() {
        let e = Config::from_toml(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nsecurity-protocol = \"SSL\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ssl-certificate-location"), "{e}");
        let e = Config::from_toml(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nsecurity-protocol = \"SASL_PLAINTEXT\"\nsasl-enabled-mechanisms = [\"GSSAPI\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sasl-enabled-mechanisms"), "{e}");
        let e = Config::from_toml("super-users = [\"admin\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("super-users"), "{e}");
        let ok = Config::from_toml(
            "authorizer = \"acl\"\n[sasl-plain-users]\nalice = \"x\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\nsecurity-protocol = \"SASL_PLAINTEXT\"",
        )
        .unwrap();
        assert_eq!(ok.listeners[0].sasl_enabled_mechanisms.len(), 3);
    }

    #[test]
    fn kafka_names_are_dotted() {
        let props = Config::default().kafka_properties();
        assert!(props
            .iter()
            .any(|(k, v)| k == "log.retention.ms" && v == "604800000"));
        assert!(props.iter().any(|(k, v)| k == "num.partitions" && v == "1"));
    }
}
