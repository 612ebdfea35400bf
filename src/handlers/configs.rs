//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.
//!
//! Topic configs are listed from the one table of known keys, each with its
//! value and source (override or default). Broker configs are the config
//! file's keys under Kafka's dotted names, read-only: the broker is
//! configured by file, not dynamically.

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;

use crate::broker::RequestContext;
use crate::config::Config;
use crate::group::configs::{self as group_configs, GROUP_CONFIGS};
use crate::handlers::str_bytes;
use crate::log::manager::TopicError;
use crate::log::topic_config::{self, Kind, TOPIC_CONFIGS};
use crate::protocol::HandlerResult;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_GROUP: i8 = 32;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// Config sources as Kafka numbers them.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;
pub const SOURCE_GROUP: i8 = 8;

/// One described config entry.
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub kind: Kind,
    pub read_only: bool,
    pub doc: &'static str,
    /// The default this entry would fall back to, for synonyms.
    pub default: Option<String>,
}

/// A known key's effective value: its override (reported with
/// `override_source`) or its default.
fn entry(
    (name, kind, default, doc): (&'static str, Kind, String, &'static str),
    overrides: &IndexMap<String, String>,
    override_source: i8,
) -> ConfigEntry {
    let (value, source) = match overrides.get(name) {
        Some(v) => (v.clone(), override_source),
        None => (default.clone(), SOURCE_DEFAULT),
    };
    ConfigEntry {
        name: name.into(),
        value,
        source,
        kind,
        read_only: false,
        doc,
        default: Some(default),
    }
}

/// Every topic config with its effective value and source.
pub fn topic_config_entries(
    broker: &Config,
    overrides: &IndexMap<String, String>,
) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let def = (d.name, d.kind, (d.default)(broker), d.doc);
            entry(def, overrides, SOURCE_DYNAMIC_TOPIC)
        })
        .collect()
}

/// Every group config with its effective value and source.
fn group_config_entries(broker: &Config, overrides: &IndexMap<String, String>) -> Vec<ConfigEntry> {
    GROUP_CONFIGS
        .iter()
        .map(|d| {
            entry(
                (d.name, d.kind, (d.default)(broker), d.doc),
                overrides,
                SOURCE_GROUP,
            )
        })
        .collect()
}

fn broker_config_entries(broker: &Config) -> Vec<ConfigEntry> {
    let defaults: IndexMap<String, String> =
        Config::default().kafka_properties().into_iter().collect();
    let kinds = toml::Table::try_from(broker).expect("Config serializes");
    broker
        .kafka_properties()
        .into_iter()
        .map(|(name, value)| {
            let kind = match kinds.get(&name.replace('.', "-")) {
                Some(toml::Value::Boolean(_)) => Kind::Boolean,
                Some(toml::Value::Integer(_)) => Kind::Long,
                _ => Kind::String,
            };
            let source = if defaults.get(&name) == Some(&value) {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            ConfigEntry {
                name,
                value,
                source,
                kind,
                read_only: true,
                doc: "",
                default: None,
            }
        })
        .collect()
}

/// Kafka: DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, the group, or
/// the cluster for broker resources; `Some` is the error to answer.
fn config_denied(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: Operation,
) -> Option<(i16, String)> {
    let (kind, name, error) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_GROUP => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
        ),
        _ => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!ctx.authorize(op, kind, name)).then(|| (error.code(), "Authorization failed.".to_string()))
}

pub async fn describe_configs(
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> HandlerResult<DescribeConfigsResponse> {
    let v = ctx.api_version;
    let b = &ctx.broker;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let mut denied = config_denied(
                ctx,
                res.resource_type,
                res.resource_name.as_str(),
                Operation::DescribeConfigs,
            );
            let entries = match res.resource_type {
                _ if denied.is_some() => Err(denied.take().expect("checked")),
                RESOURCE_TOPIC => match b.logs.topic(res.resource_name.as_str()) {
                    Some(t) => Ok(topic_config_entries(&b.config, &t.overrides())),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition.code(),
                        format!("unknown topic '{}'", res.resource_name.as_str()),
                    )),
                },
                RESOURCE_BROKER => {
                    let name = res.resource_name.as_str();
                    if name.is_empty() || name == b.node_id().to_string() {
                        Ok(broker_config_entries(&b.config))
                    } else {
                        Err((
                            ResponseError::InvalidRequest.code(),
                            format!("unknown broker '{name}'"),
                        ))
                    }
                }
                RESOURCE_BROKER_LOGGER => Ok(Vec::new()),
                RESOURCE_GROUP => Ok(group_config_entries(
                    &b.config,
                    &b.group_configs.overrides(res.resource_name.as_str()),
                )),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null lists every key; an empty list none (as Kafka).
                    let keys = res
                        .configuration_keys
                        .as_ref()
                        .map(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
                    out.configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                        .map(|e| {
                            let mut r = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(e.name.clone()))
                                .with_value(Some(str_bytes(e.value.clone())))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source);
                            if req.include_synonyms {
                                let mut syn = Vec::new();
                                if e.source != SOURCE_DEFAULT {
                                    syn.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(e.name.clone()))
                                            .with_value(Some(str_bytes(e.value.clone())))
                                            .with_source(e.source),
                                    );
                                }
                                if let Some(d) = e.default {
                                    syn.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(e.name.clone()))
                                            .with_value(Some(str_bytes(d)))
                                            .with_source(SOURCE_DEFAULT),
                                    );
                                }
                                r.synonyms = syn;
                            }
                            if v >= 3 {
                                r.config_type = e.kind as i8;
                                if req.include_documentation && !e.doc.is_empty() {
                                    r.documentation = Some(str_bytes(e.doc));
                                }
                            }
                            r
                        })
                        .collect();
                }
                Err((code, message)) => {
                    out.error_code = code;
                    out.error_message = Some(str_bytes(message));
                }
            }
            out
        })
        .collect();
    Ok(Some(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

/// Builds the per-resource result; AlterConfigs and IncrementalAlterConfigs
/// have structurally identical but distinct response types.
macro_rules! resource_response {
    ($ty:ty, $resource_type:expr, $name:expr, $result:expr) => {{
        let mut r = <$ty>::default()
            .with_resource_type($resource_type)
            .with_resource_name($name);
        if let Err((code, message)) = $result {
            r.error_code = code;
            r.error_message = Some(str_bytes(message));
        }
        r
    }};
}

fn non_topic_error(resource_type: i8) -> (i16, String) {
    match resource_type {
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => (
            ResponseError::InvalidRequest.code(),
            "broker configs are static in Weir: set them in the config file".into(),
        ),
        other => (
            ResponseError::InvalidRequest.code(),
            format!("unsupported resource type {other}"),
        ),
    }
}

fn topic_error(e: TopicError) -> (i16, String) {
    (e.code(), e.to_string())
}

/// AlterConfigs: the given set replaces all of a topic's overrides.
pub async fn alter_configs(
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> HandlerResult<AlterConfigsResponse> {
    let logs = &ctx.broker.logs;
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let denied = config_denied(
                ctx,
                res.resource_type,
                res.resource_name.as_str(),
                Operation::AlterConfigs,
            );
            let result = if let Some(e) = denied {
                Err(e)
            } else if res.resource_type != RESOURCE_TOPIC {
                Err(non_topic_error(res.resource_type))
            } else {
                let overrides: IndexMap<String, String> = res
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                logs.set_topic_configs(res.resource_name.as_str(), overrides, req.validate_only)
                    .map_err(topic_error)
            };
            resource_response!(
                AlterConfigsResourceResponse,
                res.resource_type,
                res.resource_name,
                result
            )
        })
        .collect();
    Ok(Some(
        AlterConfigsResponse::default().with_responses(responses),
    ))
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies IncrementalAlterConfigs operations to `overrides`. `def_of`
/// gives a known key's kind and default, `None` for an unknown key.
fn apply_ops(
    overrides: &mut IndexMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    def_of: impl Fn(&str) -> Option<(Kind, String)>,
) -> Result<(), (i16, String)> {
    let invalid = |m: String| (ResponseError::InvalidConfig.code(), m);
    for c in ops {
        let key = c.name.to_string();
        let (kind, default) =
            def_of(&key).ok_or_else(|| invalid(format!("unknown config `{key}`")))?;
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            OP_SET => {
                let v = value.ok_or_else(|| invalid(format!("null value for {key}")))?;
                overrides.insert(key, v);
            }
            OP_DELETE => {
                overrides.shift_remove(&key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if kind != Kind::List {
                    return Err(invalid(format!("{key} is not a list config")));
                }
                let current = overrides.get(&key).cloned().unwrap_or(default);
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if c.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                overrides.insert(key, items.join(","));
            }
            op => {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("unknown config operation {op}"),
                ))
            }
        }
    }
    Ok(())
}

/// IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT applied to the
/// current overrides of a topic or a group, validated as a whole, then
/// persisted.
pub async fn incremental_alter_configs(
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> HandlerResult<IncrementalAlterConfigsResponse> {
    let b = &ctx.broker;
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.as_str();
            let mut denied = config_denied(ctx, res.resource_type, name, Operation::AlterConfigs);
            let result = match res.resource_type {
                _ if denied.is_some() => Err(denied.take().expect("checked")),
                RESOURCE_TOPIC => b
                    .logs
                    .topic(name)
                    .ok_or_else(|| topic_error(TopicError::Unknown(name.into())))
                    .and_then(|topic| {
                        let mut overrides = topic.overrides();
                        apply_ops(&mut overrides, &res.configs, |k| {
                            topic_config::find_def(k).map(|d| (d.kind, (d.default)(&b.config)))
                        })?;
                        b.logs
                            .set_topic_configs(name, overrides, req.validate_only)
                            .map_err(topic_error)
                    }),
                RESOURCE_GROUP => {
                    let mut overrides = b.group_configs.overrides(name);
                    apply_ops(&mut overrides, &res.configs, |k| {
                        group_configs::find_def(k).map(|d| (d.kind, (d.default)(&b.config)))
                    })
                    .and_then(|()| {
                        b.group_configs
                            .set(name, overrides, req.validate_only)
                            .map_err(|m| (ResponseError::InvalidConfig.code(), m))
                    })
                }
                other => Err(non_topic_error(other)),
            };
            resource_response!(
                kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse,
                res.resource_type,
                res.resource_name,
                result
            )
        })
        .collect();
    Ok(Some(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    ))
}
