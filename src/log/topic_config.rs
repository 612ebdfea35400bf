//! Topic-level configuration, with Kafka's dotted names on the wire.
//!
//! A topic stores only its overrides (name -> string value, as the client
//! sent them); [`TopicConfig::resolve`] combines them with the broker
//! defaults into typed values. [`TOPIC_CONFIGS`] is the one table of known
//! keys: DescribeConfigs lists it, CreateTopics/AlterConfigs validate against it.

use indexmap::IndexMap;

use crate::config::Config;
use crate::log::compression::Codec;

/// Value kinds, as DescribeConfigs v3+ reports them (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One known topic config: its name, kind, broker default and validator.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn(&Config) -> String,
    /// Checks a candidate value; `Err` carries the reason for INVALID_CONFIG.
    pub validate: fn(&str) -> Result<(), String>,
    pub doc: &'static str,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("must be >= {min}")),
        Err(_) => Err("not a valid long".into()),
    }
}

fn int_at_least(min: i32) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.trim().parse::<i32>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("must be >= {min}")),
        Err(_) => Err("not a valid int".into()),
    }
}

fn v_long_neg1(v: &str) -> Result<(), String> {
    long_at_least(-1)(v)
}
fn v_long0(v: &str) -> Result<(), String> {
    long_at_least(0)(v)
}
fn v_long1(v: &str) -> Result<(), String> {
    long_at_least(1)(v)
}
fn v_int0(v: &str) -> Result<(), String> {
    int_at_least(0)(v)
}
fn v_int1(v: &str) -> Result<(), String> {
    int_at_least(1)(v)
}
fn v_segment_bytes(v: &str) -> Result<(), String> {
    int_at_least(14)(v)
}
fn v_index_bytes(v: &str) -> Result<(), String> {
    int_at_least(8)(v)
}
fn v_bool(v: &str) -> Result<(), String> {
    match v.trim() {
        "true" | "false" => Ok(()),
        _ => Err("must be true or false".into()),
    }
}
fn v_ratio(v: &str) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(()),
        _ => Err("must be a number in [0, 1]".into()),
    }
}
fn v_timestamp_type(v: &str) -> Result<(), String> {
    match v.trim() {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err("must be CreateTime or LogAppendTime".into()),
    }
}
fn v_cleanup_policy(v: &str) -> Result<(), String> {
    parse_cleanup_policy(v)
        .map(|_| ())
        .ok_or_else(|| "must be delete, compact or delete,compact".into())
}
fn v_compression(v: &str) -> Result<(), String> {
    match v.trim() {
        "producer" => Ok(()),
        other if Codec::from_name(other).is_some() => Ok(()),
        _ => Err("must be producer, uncompressed, gzip, snappy, lz4 or zstd".into()),
    }
}

/// `(delete, compact)` flags of a cleanup.policy list.
pub fn parse_cleanup_policy(v: &str) -> Option<(bool, bool)> {
    let (mut delete, mut compact) = (false, false);
    for part in v.split(',').map(str::trim) {
        match part {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => return None,
        }
    }
    Some((delete, compact))
}

macro_rules! def {
    ($name:expr, $kind:ident, $default:expr, $validate:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            kind: Kind::$kind,
            default: $default,
            validate: $validate,
            doc: $doc,
        }
    };
}

/// Every topic config Weir knows, in Kafka's alphabetical order. Keys that
/// have no effect on a single node (replication, compaction tuning) are
/// accepted and stored so tools that set them keep working; the doc says so.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        |c| c.log_cleanup_policy.clone(),
        v_cleanup_policy,
        "delete retains by time/size; compact is stored but not performed yet"
    ),
    def!(
        "compression.type",
        String,
        |_| "producer".into(),
        v_compression,
        "producer keeps the producer's codec; otherwise batches in another codec are recompressed on append"
    ),
    def!(
        "delete.retention.ms",
        Long,
        |_| "86400000".into(),
        v_long0,
        "compacted topics: how long a tombstone is kept after the cleaning pass that first saw it"
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        |_| "60000".into(),
        v_long0,
        "stored; segments are deleted at once"
    ),
    def!(
        "flush.messages",
        Long,
        |c| c.log_flush_interval_messages.to_string(),
        v_long1,
        "fsync after this many messages; 1 = fsync before ack"
    ),
    def!(
        "flush.ms",
        Long,
        |c| c.log_flush_interval_ms.to_string(),
        v_long0,
        "fsync when the oldest unflushed write is this old"
    ),
    def!(
        "index.interval.bytes",
        Int,
        |c| c.log_index_interval_bytes.to_string(),
        v_int0,
        "bytes between offset index entries"
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        |_| i64::MAX.to_string(),
        v_long1,
        "compacted topics: a record is compacted at most this long after it was written (the active segment rolls by then)"
    ),
    def!(
        "max.message.bytes",
        Int,
        |c| c.message_max_bytes.to_string(),
        v_int0,
        "largest record batch accepted"
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        |_| i64::MAX.to_string(),
        v_long0,
        "stored; not enforced"
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        |_| i64::MAX.to_string(),
        v_long0,
        "stored; not enforced"
    ),
    def!(
        "message.timestamp.type",
        String,
        |c| c.log_message_timestamp_type.clone(),
        v_timestamp_type,
        "CreateTime or LogAppendTime"
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        |_| "0.5".into(),
        v_ratio,
        "compacted topics: clean when dirty bytes / all bytes exceed this"
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        |_| "0".into(),
        v_long0,
        "compacted topics: records younger than this are not compacted"
    ),
    def!(
        "min.insync.replicas",
        Int,
        |_| "1".into(),
        v_int1,
        "stored; a single node is always in sync"
    ),
    def!(
        "preallocate",
        Boolean,
        |_| "false".into(),
        v_bool,
        "stored; index files are always preallocated"
    ),
    def!(
        "retention.bytes",
        Long,
        |c| c.log_retention_bytes.to_string(),
        v_long_neg1,
        "partition size limit, -1 for none"
    ),
    def!(
        "retention.ms",
        Long,
        |c| c.log_retention_ms.to_string(),
        v_long_neg1,
        "segment age limit, -1 for none"
    ),
    def!(
        "segment.bytes",
        Int,
        |c| c.log_segment_bytes.to_string(),
        v_segment_bytes,
        "roll a segment at this size"
    ),
    def!(
        "segment.index.bytes",
        Int,
        |c| c.log_index_size_max_bytes.to_string(),
        v_index_bytes,
        "preallocated index size"
    ),
    def!(
        "segment.jitter.ms",
        Long,
        |_| "0".into(),
        v_long0,
        "stored; no jitter is applied"
    ),
    def!(
        "segment.ms",
        Long,
        |c| c.log_roll_ms.to_string(),
        v_long1,
        "roll a segment at this age"
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        |_| "false".into(),
        v_bool,
        "stored; a single node has no elections"
    ),
];

pub fn find_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates one override: a known key with a valid value.
pub fn validate_override(name: &str, value: &str) -> Result<(), String> {
    match find_def(name) {
        None => Err(format!("unknown topic config `{name}`")),
        Some(def) => (def.validate)(value).map_err(|e| format!("{name}: {e}")),
    }
}

/// Typed, resolved settings the log consults on every operation.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: usize,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub log_append_time: bool,
    pub cleanup_delete: bool,
    /// `cleanup.policy` includes `compact`: records must have keys.
    pub cleanup_compact: bool,
    /// `compression.type`: `None` for `producer` (batches kept as sent).
    pub compression: Option<Codec>,
    /// Compaction (`cleanup_compact`): `min.cleanable.dirty.ratio`,
    /// `min.compaction.lag.ms`, `max.compaction.lag.ms`, `delete.retention.ms`.
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    /// The broker's `log-tail-cache-bytes` (no topic override): `None`
    /// leaves the page cache to the kernel.
    pub tail_cache_bytes: Option<u64>,
}

impl TopicConfig {
    /// Combines validated overrides with the broker defaults.
    pub fn resolve(broker: &Config, overrides: &IndexMap<String, String>) -> TopicConfig {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| (find_def(name).expect("known config").default)(broker))
        };
        let long = |name: &str| get(name).trim().parse::<i64>().unwrap_or(0);
        TopicConfig {
            segment_bytes: long("segment.bytes").max(14) as u64,
            segment_ms: long("segment.ms"),
            segment_index_bytes: long("segment.index.bytes").max(8) as usize,
            index_interval_bytes: long("index.interval.bytes").max(0) as u64,
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            max_message_bytes: long("max.message.bytes").max(0) as usize,
            flush_messages: long("flush.messages").max(1),
            flush_ms: long("flush.ms"),
            log_append_time: get("message.timestamp.type").trim() == "LogAppendTime",
            cleanup_delete: parse_cleanup_policy(&get("cleanup.policy"))
                .map(|p| p.0)
                .unwrap_or(true),
            cleanup_compact: parse_cleanup_policy(&get("cleanup.policy"))
                .map(|p| p.1)
                .unwrap_or(false),
            compression: Codec::from_name(get("compression.type").trim()),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms").max(1),
            delete_retention_ms: long("delete.retention.ms"),
            tail_cache_bytes: u64::try_from(broker.log_tail_cache_bytes).ok(),
        }
    }

    /// When the active segment rolls by age: compacted logs also roll at
    /// `max.compaction.lag.ms`, so the cleaner can reach their records
    /// (Kafka's `maxSegmentMs`).
    pub fn roll_ms(&self) -> i64 {
        if self.cleanup_compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// Fsync before acknowledging (flush.messages = 1).
    pub fn fsync_before_ack(&self) -> bool {
        self.flush_messages <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_validates() {
        let c = Config::default();
        for d in TOPIC_CONFIGS {
            assert!(
                (d.validate)(&(d.default)(&c)).is_ok(),
                "{} default invalid",
                d.name
            );
        }
    }

    #[test]
    fn overrides_take_effect() {
        let mut o = IndexMap::new();
        o.insert("segment.bytes".to_string(), "1024".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let t = TopicConfig::resolve(&Config::default(), &o);
        assert_eq!(t.segment_bytes, 1024);
        assert!(t.log_append_time);
        assert_eq!(t.retention_ms, 604_800_000);
    }

    #[test]
    fn validation_messages() {
        assert!(validate_override("retention.ms", "abc").is_err());
        assert!(validate_override("retention.ms", "-2").is_err());
        assert!(validate_override("no.such", "1").is_err());
        assert!(validate_override("compression.type", "gzip").is_ok());
        assert!(validate_override("compression.type", "brotli").is_err());
        assert!(validate_override("cleanup.policy", "compact,delete").is_ok());
    }
}
