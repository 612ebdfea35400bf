//! `weir topic create|list|describe|alter-config|add-partitions|delete`.

use clap::Args;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Map, Value};

use super::output::{offset_cell, print_json, Table};
use super::{CliError, Format, TopicCommand};
use crate::client::{check, with_topic, Client};

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Topic name.
    pub name: String,
    /// Partitions [default: the broker's num.partitions].
    #[arg(short = 'p', long)]
    pub partitions: Option<i32>,
    /// Replication factor [default: the broker's].
    #[arg(short = 'r', long)]
    pub replication_factor: Option<i16>,
    /// Topic config, KEY=VALUE (repeatable).
    #[arg(short = 'c', long = "config", value_parser = parse_kv)]
    pub configs: Vec<(String, String)>,
}

#[derive(Args, Debug)]
pub struct AlterConfigArgs {
    /// Topic name.
    pub name: String,
    /// Set KEY=VALUE (repeatable).
    #[arg(long = "set", value_parser = parse_kv, required_unless_present = "delete", num_args = 1..)]
    pub set: Vec<(String, String)>,
    /// Return KEY to its default (repeatable).
    #[arg(long = "delete", num_args = 1..)]
    pub delete: Vec<String>,
}

/// `KEY=VALUE`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn run(mut c: Client, cmd: TopicCommand, format: Format) -> Result<(), CliError> {
    match cmd {
        TopicCommand::Create(a) => create(&mut c, a, format).await,
        TopicCommand::List => list(&mut c, format).await,
        TopicCommand::Describe { name } => describe(&mut c, &name, format).await,
        TopicCommand::AlterConfig(a) => alter_config(&mut c, a, format).await,
        TopicCommand::AddPartitions { name, total } => {
            add_partitions(&mut c, &name, total, format).await
        }
        TopicCommand::Delete { names } => delete(&mut c, names, format).await,
    }
}

async fn create(c: &mut Client, a: CreateArgs, format: Format) -> Result<(), CliError> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(sb(&a.name)))
            .with_num_partitions(a.partitions.unwrap_or(-1))
            .with_replication_factor(a.replication_factor.unwrap_or(-1))
            .with_configs(
                a.configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            )]);
    let conn = c.controller().await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    let t = resp
        .topics
        .first()
        .ok_or_else(|| CliError::Usage("empty response".into()))?;
    check(&addr, t.error_code, t.error_message.as_ref()).map_err(|e| with_topic(e, &a.name))?;
    // v5+ answer with the partition count chosen; older ones do not.
    let partitions = if t.num_partitions > 0 {
        t.num_partitions
    } else {
        a.partitions.unwrap_or(-1)
    };
    match format {
        Format::Text => println!("Created topic {}.", a.name),
        Format::Json => print_json(&json!({
            "topic": a.name,
            "partitions": partitions,
            "replication_factor": t.replication_factor,
        })),
    }
    Ok(())
}

async fn list(c: &mut Client, format: Format) -> Result<(), CliError> {
    let mut topics = c.metadata(None, false).await?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        Format::Text => {
            for t in &topics {
                println!("{}", t.name);
            }
        }
        Format::Json => print_json(&json!({
            "topics": topics.iter().map(|t| json!({
                "topic": t.name,
                "partitions": t.partitions.len(),
                "internal": t.internal,
            })).collect::<Vec<_>>()
        })),
    }
    Ok(())
}

/// Non-default configs of a topic (DescribeConfigs), in the broker's order.
async fn topic_overrides(c: &mut Client, name: &str) -> Result<Vec<(String, String)>, CliError> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(name))
            .with_configuration_keys(None),
    ]);
    let conn = c.any().await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    let mut out = Vec::new();
    for r in resp.results {
        check(&addr, r.error_code, r.error_message.as_ref()).map_err(|e| with_topic(e, name))?;
        for cfg in r.configs {
            // config_source 1 = DYNAMIC_TOPIC_CONFIG: set on the topic.
            if cfg.config_source == 1 {
                out.push((
                    cfg.name.to_string(),
                    cfg.value.map(|v| v.to_string()).unwrap_or_default(),
                ));
            }
        }
    }
    Ok(out)
}

async fn describe(c: &mut Client, name: &str, format: Format) -> Result<(), CliError> {
    let t = c.topic(name, false).await?;
    let offsets = c.offsets(&t, 0).await?;
    let configs = topic_overrides(c, name).await?;
    let replication = t.partitions.first().map(|p| p.2.len()).unwrap_or(0);
    match format {
        Format::Text => {
            let cfg: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "Topic: {}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {}  Configs: {}",
                t.name,
                t.id.as_deref().unwrap_or("-"),
                t.partitions.len(),
                replication,
                cfg.join(",")
            );
            let mut table = Table::new(&[
                "PARTITION",
                "LEADER",
                "REPLICAS",
                "ISR",
                "START-OFFSET",
                "END-OFFSET",
            ]);
            for (p, leader, replicas, isr) in &t.partitions {
                let (start, end) = offsets.get(p).copied().unwrap_or((-1, -1));
                table.row(vec![
                    p.to_string(),
                    leader.to_string(),
                    join(replicas),
                    join(isr),
                    offset_cell(start),
                    offset_cell(end),
                ]);
            }
            table.print();
        }
        Format::Json => {
            let mut cfg = Map::new();
            for (k, v) in configs {
                cfg.insert(k, Value::String(v));
            }
            print_json(&json!({
                "topic": t.name,
                "id": t.id,
                "replication_factor": replication,
                "configs": cfg,
                "partitions": t.partitions.iter().map(|(p, leader, replicas, isr)| {
                    let (start, end) = offsets.get(p).copied().unwrap_or((-1, -1));
                    json!({
                        "partition": p, "leader": leader, "replicas": replicas, "isr": isr,
                        "start_offset": start, "end_offset": end,
                    })
                }).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(())
}

fn join(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn alter_config(c: &mut Client, a: AlterConfigArgs, format: Format) -> Result<(), CliError> {
    let mut configs: Vec<_> = a
        .set
        .iter()
        .map(|(k, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(0)
                .with_value(Some(sb(v)))
        })
        .collect();
    configs.extend(a.delete.iter().map(|k| {
        incremental_alter_configs_request::AlterableConfig::default()
            .with_name(sb(k))
            .with_config_operation(1)
            .with_value(None)
    }));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(&a.name))
            .with_configs(configs),
    ]);
    let conn = c.controller().await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    for r in resp.responses {
        check(&addr, r.error_code, r.error_message.as_ref()).map_err(|e| with_topic(e, &a.name))?;
    }
    match format {
        Format::Text => println!("Altered configs of topic {}.", a.name),
        Format::Json => print_json(&json!({
            "topic": a.name,
            "set": a.set.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>(),
            "deleted": a.delete,
        })),
    }
    Ok(())
}

async fn add_partitions(
    c: &mut Client,
    name: &str,
    total: i32,
    format: Format,
) -> Result<(), CliError> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_count(total)
                .with_assignments(None),
        ]);
    let conn = c.controller().await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    for r in resp.results {
        check(&addr, r.error_code, r.error_message.as_ref()).map_err(|e| with_topic(e, name))?;
    }
    match format {
        Format::Text => println!("Topic {name} now has {total} partitions."),
        Format::Json => print_json(&json!({"topic": name, "partitions": total})),
    }
    Ok(())
}

async fn delete(c: &mut Client, names: Vec<String>, format: Format) -> Result<(), CliError> {
    let conn = c.controller().await?;
    let req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    // v6+ name topics in `topics` (by name or id); older versions in `topic_names`.
    let req = if conn.version_for::<DeleteTopicsRequest>()? >= 6 {
        req.with_topics(
            names
                .iter()
                .map(|n| {
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(TopicName(sb(n))))
                })
                .collect(),
        )
    } else {
        req.with_topic_names(names.iter().map(|n| TopicName(sb(n))).collect())
    };
    let addr = conn.addr().to_string();
    let resp = conn.send(&req).await?;
    let mut failed = 0;
    let mut results = Vec::new();
    for r in resp.responses {
        let name = r.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        match check(&addr, r.error_code, r.error_message.as_ref()) {
            Ok(()) => {
                if format == Format::Text {
                    println!("Deleted topic {name}.");
                }
                results.push(json!({"topic": name, "deleted": true}));
            }
            Err(e) => {
                failed += 1;
                let e = with_topic(e, &name);
                eprintln!("weir: {e}");
                results.push(json!({"topic": name, "deleted": false, "error": e.to_string()}));
            }
        }
    }
    if format == Format::Json {
        print_json(&json!({ "results": results }));
    }
    if failed > 0 {
        return Err(CliError::Partial(format!(
            "{failed} of {} topics not deleted",
            names.len()
        )));
    }
    Ok(())
}
