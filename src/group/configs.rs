//! Group configs (the GROUP resource type of DescribeConfigs and
//! IncrementalAlterConfigs, KIP-848/KIP-932): per-group overrides of the
//! consumer and share protocols' settings, with Kafka's names; defaults
//! and bounds come from the broker config (`group-share-*` keys) where
//! Kafka has a broker setting for them. A group need not exist to have
//! configs, as in Kafka.
//!
//! Persisted in `<data-dir>/meta/group-configs.toml` (written atomically:
//! a temporary file, fsync, rename), a table per group of key = value
//! strings as clients set them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;

use crate::config::Config;
use crate::log::manager::write_atomic;
use crate::log::topic_config::Kind;

/// One group config: Kafka's name, kind, default and validator.
pub struct GroupConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn(&Config) -> String,
    pub validate: fn(&str, &Config) -> Result<(), String>,
    pub doc: &'static str,
}

fn int_in(v: &str, min: i64, max: i64) -> Result<(), String> {
    match v.trim().parse::<i32>() {
        Ok(n) if (n as i64) >= min && (n as i64) <= max => Ok(()),
        Ok(_) => Err(format!("must be in [{min}, {max}]")),
        Err(_) => Err("not a valid int".into()),
    }
}

/// Kafka's broker bounds (`group.consumer.min/max.session.timeout.ms`,
/// `group.share.min/max.record.lock.duration.ms`, ...).
pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        kind: Kind::Int,
        default: |c| c.group_consumer_heartbeat_interval_ms.to_string(),
        validate: |v, c| {
            int_in(
                v,
                c.group_consumer_min_heartbeat_interval_ms,
                c.group_consumer_max_heartbeat_interval_ms,
            )
        },
        doc: "heartbeat interval of consumer-protocol members, within group-consumer-min/max-heartbeat-interval-ms",
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        kind: Kind::Int,
        default: |c| c.group_consumer_session_timeout_ms.to_string(),
        validate: |v, c| {
            int_in(
                v,
                c.group_consumer_min_session_timeout_ms,
                c.group_consumer_max_session_timeout_ms,
            )
        },
        doc: "session timeout of consumer-protocol members, within group-consumer-min/max-session-timeout-ms",
    },
    GroupConfigDef {
        name: "errors.deadletterqueue.topic.name",
        kind: Kind::String,
        default: |_| String::new(),
        validate: |v, _| {
            let v = v.trim();
            if v.is_empty() {
                return Ok(());
            }
            if v.starts_with("__") {
                return Err("a dead-letter topic may not start with __".into());
            }
            crate::log::manager::validate_topic_name(v).map_err(|e| e.to_string())
        },
        doc: "share groups: topic that receives a copy of each record archived by REJECT or the delivery limit (KIP-1191's name); empty = none",
    },
    GroupConfigDef {
        name: "share.auto.offset.reset",
        kind: Kind::String,
        default: |_| "latest".into(),
        validate: |v, _| match v.trim() {
            "earliest" | "latest" => Ok(()),
            s if s.starts_with("by_duration:") => Ok(()),
            _ => Err("must be earliest, latest or by_duration:<ISO-8601 duration>".into()),
        },
        doc: "where a share group starts in a partition without a start offset",
    },
    GroupConfigDef {
        name: "share.delivery.count.limit",
        kind: Kind::Int,
        default: |c| c.group_share_delivery_count_limit.to_string(),
        validate: |v, _| int_in(v, 2, 10),
        doc: "deliveries of a record before it is archived",
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        kind: Kind::Int,
        default: |c| c.group_share_heartbeat_interval_ms.to_string(),
        validate: |v, _| int_in(v, 1000, 15000),
        doc: "heartbeat interval of share group members",
    },
    GroupConfigDef {
        name: "share.isolation.level",
        kind: Kind::String,
        default: |_| "read_uncommitted".into(),
        validate: |v, _| match v.trim() {
            "read_committed" | "read_uncommitted" => Ok(()),
            _ => Err("must be read_committed or read_uncommitted".into()),
        },
        doc: "which records a share group delivers",
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        kind: Kind::Int,
        default: |c| c.group_share_record_lock_duration_ms.to_string(),
        validate: |v, c| {
            int_in(
                v,
                c.group_share_min_record_lock_duration_ms,
                c.group_share_max_record_lock_duration_ms,
            )
        },
        doc: "acquisition lock duration (visibility timeout), within group-share-min/max-record-lock-duration-ms",
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        kind: Kind::Int,
        default: |c| c.group_share_session_timeout_ms.to_string(),
        validate: |v, _| int_in(v, 1000, 60000),
        doc: "session timeout of share group members",
    },
];

pub fn find_def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates one override: a known key with a valid value.
pub fn validate(name: &str, value: &str, broker: &Config) -> Result<(), String> {
    match find_def(name) {
        None => Err(format!("unknown group config `{name}`")),
        Some(d) => (d.validate)(value, broker).map_err(|e| format!("{name}: {e}")),
    }
}

/// Every group's overrides, persisted.
pub struct GroupConfigStore {
    path: PathBuf,
    broker: std::sync::Arc<Config>,
    /// A std mutex: held for map updates and the small file write.
    groups: Mutex<BTreeMap<String, IndexMap<String, String>>>,
}

impl GroupConfigStore {
    pub fn open(meta_dir: &Path, broker: std::sync::Arc<Config>) -> io::Result<GroupConfigStore> {
        let path = meta_dir.join("group-configs.toml");
        let groups = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(GroupConfigStore {
            path,
            broker,
            groups: Mutex::new(groups),
        })
    }

    /// A group's overrides.
    pub fn overrides(&self, group: &str) -> IndexMap<String, String> {
        self.lock().get(group).cloned().unwrap_or_default()
    }

    /// The effective value of `name` for `group`.
    pub fn value(&self, group: &str, name: &str) -> Option<String> {
        let def = find_def(name)?;
        Some(
            self.lock()
                .get(group)
                .and_then(|o| o.get(name).cloned())
                .unwrap_or_else(|| (def.default)(&self.broker)),
        )
    }

    /// Replaces a group's overrides after validating all of them.
    pub fn set(
        &self,
        group: &str,
        overrides: IndexMap<String, String>,
        validate_only: bool,
    ) -> Result<(), String> {
        for (k, v) in &overrides {
            validate(k, v, &self.broker)?;
        }
        if validate_only {
            return Ok(());
        }
        let mut groups = self.lock();
        let previous = if overrides.is_empty() {
            groups.remove(group)
        } else {
            groups.insert(group.to_string(), overrides)
        };
        let text = toml::to_string(&*groups).expect("string tables serialize");
        if let Err(e) = write_atomic(&self.path, text.as_bytes()) {
            // Not durable: not applied.
            match previous {
                Some(p) => groups.insert(group.to_string(), p),
                None => groups.remove(group),
            };
            return Err(format!("cannot persist group configs: {e}"));
        }
        Ok(())
    }

    /// Forgets a deleted group's configs.
    /// The effective integer value of `name` for `group`.
    pub fn int(&self, group: &str, name: &str) -> i64 {
        self.value(group, name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn broker(&self) -> &Config {
        &self.broker
    }

    pub fn remove(&self, group: &str) {
        if self.lock().contains_key(group) {
            let _ = self.set(group, IndexMap::new(), false);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, IndexMap<String, String>>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bounds_hold() {
        let c = Config::default();
        for d in GROUP_CONFIGS {
            assert!((d.validate)(&(d.default)(&c), &c).is_ok(), "{}", d.name);
        }
        assert!(validate("consumer.session.timeout.ms", "50000", &c).is_ok());
        assert!(validate("consumer.session.timeout.ms", "999", &c).is_err());
        assert!(validate("consumer.session.timeout.ms", "60001", &c).is_err());
        assert!(validate("share.isolation.level", "read_committed", &c).is_ok());
        assert!(validate("no.such", "1", &c).is_err());
        // The lock bounds are the broker's: librdkafka's CI lowers the minimum.
        assert!(validate("share.record.lock.duration.ms", "3000", &c).is_err());
        let low = Config {
            group_share_min_record_lock_duration_ms: 1000,
            ..Config::default()
        };
        assert!(validate("share.record.lock.duration.ms", "3000", &low).is_ok());
        assert!(validate("errors.deadletterqueue.topic.name", "__bad", &c).is_err());
        assert!(validate("errors.deadletterqueue.topic.name", "orders.dlq", &c).is_ok());
    }

    #[test]
    fn overrides_persist_and_invalid_ones_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::sync::Arc::new(Config::default());
        let s = GroupConfigStore::open(dir.path(), c.clone()).unwrap();
        let mut o = IndexMap::new();
        o.insert(
            "share.record.lock.duration.ms".to_string(),
            "20000".to_string(),
        );
        s.set("g", o.clone(), false).unwrap();
        o.insert("share.delivery.count.limit".to_string(), "99".to_string());
        assert!(s.set("g", o, false).is_err());
        drop(s);
        let s = GroupConfigStore::open(dir.path(), c).unwrap();
        assert_eq!(
            s.value("g", "share.record.lock.duration.ms").unwrap(),
            "20000"
        );
        assert_eq!(s.value("g", "share.delivery.count.limit").unwrap(), "5");
        assert_eq!(
            s.value("other", "share.record.lock.duration.ms").unwrap(),
            "30000"
        );
        s.remove("g");
        assert!(s.overrides("g").is_empty());
    }
}
