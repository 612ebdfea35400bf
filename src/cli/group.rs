//! `weir group list|describe|reset-offsets|delete` and `weir cluster info`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use clap::Args;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::output::{offset_cell, print_json, Table};
use super::{CliError, Format, GroupCommand};
use crate::client::group::{commit_offsets, coordinator_node, fetch_committed, parse_assignment};
use crate::client::{api_name, check, Client, ClientError};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_time"])))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose partitions are reset.
    #[arg(long)]
    pub topic: String,
    /// To each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (clamped to each partition's start and end).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    /// To the first offset with a timestamp at or after MS (epoch ms).
    #[arg(long, value_name = "MS")]
    pub to_time: Option<i64>,
    /// Apply the change (without it, only show it).
    #[arg(long)]
    pub execute: bool,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn run(mut c: Client, cmd: GroupCommand, format: Format) -> Result<(), CliError> {
    match cmd {
        GroupCommand::List => list(&mut c, format).await,
        GroupCommand::Describe { group } => describe(&mut c, &group, format).await,
        GroupCommand::ResetOffsets(a) => reset(&mut c, a, format).await,
        GroupCommand::Delete { groups } => delete(&mut c, groups, format).await,
    }
}

async fn list(c: &mut Client, format: Format) -> Result<(), CliError> {
    let conn = c.any().await?;
    let addr = conn.addr().to_string();
    let resp = conn.send(&ListGroupsRequest::default()).await?;
    check(&addr, resp.error_code, None)?;
    let mut groups: Vec<_> = resp.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    match format {
        Format::Text => {
            let mut t = Table::new(&["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE"]);
            for g in groups {
                t.row(vec![
                    g.group_id.to_string(),
                    g.group_state.to_string(),
                    g.group_type.to_string(),
                    g.protocol_type.to_string(),
                ]);
            }
            t.print();
        }
        Format::Json => print_json(&json!({
            "groups": groups.iter().map(|g| json!({
                "group": g.group_id.to_string(),
                "state": g.group_state.to_string(),
                "type": g.group_type.to_string(),
                "protocol_type": g.protocol_type.to_string(),
            })).collect::<Vec<_>>()
        })),
    }
    Ok(())
}

/// A group as `describe` shows it, from ConsumerGroupDescribe (KIP-848
/// consumer-protocol groups) or DescribeGroups (classic groups).
struct GroupView {
    state: String,
    protocol_type: String,
    /// The classic protocol (assignor) or the consumer group's server assignor.
    protocol: String,
    members: Vec<MemberView>,
}

struct MemberView {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    partitions: Vec<(String, i32)>,
}

/// Like Kafka's admin client: ConsumerGroupDescribe first, DescribeGroups
/// for classic groups (GROUP_ID_NOT_FOUND) or brokers without it.
async fn describe_group(
    c: &mut Client,
    coordinator: i32,
    group: &str,
) -> Result<GroupView, CliError> {
    let conn = c.broker(coordinator).await?;
    let addr = conn.addr().to_string();
    let modern = conn
        .send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]))
        .await
        .ok()
        .and_then(|r| r.groups.into_iter().next())
        .filter(|g| g.error_code == 0);
    if let Some(g) = modern {
        return Ok(GroupView {
            state: g.group_state.to_string(),
            protocol_type: "consumer".into(),
            protocol: g.assignor_name.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| MemberView {
                    member_id: m.member_id.to_string(),
                    instance_id: m.instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    partitions: m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|tp| {
                            tp.partitions
                                .iter()
                                .map(|p| (tp.topic_name.to_string(), *p))
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    let resp = conn
        .send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]))
        .await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Usage("empty DescribeGroups response".into()))?;
    let missing = g.error_code == ResponseError::GroupIdNotFound.code();
    if !missing {
        check(&addr, g.error_code, g.error_message.as_ref())?;
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    Ok(GroupView {
        state: if missing {
            "Dead".into()
        } else {
            g.group_state.to_string()
        },
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members: g
            .members
            .into_iter()
            .map(|m| MemberView {
                partitions: if consumer {
                    parse_assignment(&m.member_assignment)
                } else {
                    Vec::new()
                },
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
            })
            .collect(),
    })
}

async fn describe(c: &mut Client, group: &str, format: Format) -> Result<(), CliError> {
    let coordinator = coordinator_node(c, group).await?;
    let g = describe_group(c, coordinator, group).await?;
    let committed = fetch_committed(c, coordinator, group, None).await?;
    if g.state == "Dead" && committed.is_empty() {
        return Err(ClientError::Kafka {
            addr: c.bootstrap(),
            code: ResponseError::GroupIdNotFound.code(),
            message: Some(format!("consumer group '{group}' does not exist")),
        }
        .into());
    }
    // Owner of each partition, from the members' assignments.
    let mut owner: HashMap<(String, i32), String> = HashMap::new();
    for m in &g.members {
        for tp in &m.partitions {
            owner.insert(tp.clone(), m.member_id.clone());
        }
    }
    let mut partitions: BTreeSet<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(owner.keys().cloned());
    let topics: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for t in topics {
        if let Ok(info) = c.topic(&t, false).await {
            for (p, (o, _)) in c.list_offsets(&info, -1, 0).await? {
                ends.insert((t.clone(), p), o);
            }
        }
    }
    let rows: Vec<_> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).copied().unwrap_or(-1);
            let end = ends.get(tp).copied().unwrap_or(-1);
            let lag = if current >= 0 && end >= 0 {
                (end - current).max(0)
            } else {
                -1
            };
            (tp, current, end, lag, owner.get(tp).cloned())
        })
        .collect();
    match format {
        Format::Text => {
            println!(
                "Group: {}  State: {}  Protocol: {}  Members: {}",
                group,
                g.state,
                if g.protocol.is_empty() {
                    "-"
                } else {
                    g.protocol.as_str()
                },
                g.members.len()
            );
            if !g.members.is_empty() {
                println!();
                let mut t = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"]);
                for m in &g.members {
                    let parts: Vec<String> = m
                        .partitions
                        .iter()
                        .map(|(t, p)| format!("{t}-{p}"))
                        .collect();
                    t.row(vec![
                        m.member_id.clone(),
                        m.client_id.clone(),
                        m.host.clone(),
                        parts.join(","),
                    ]);
                }
                t.print();
            }
            println!();
            let mut t = Table::new(&[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "MEMBER-ID",
            ]);
            for ((topic, p), current, end, lag, member) in &rows {
                t.row(vec![
                    topic.clone(),
                    p.to_string(),
                    offset_cell(*current),
                    offset_cell(*end),
                    offset_cell(*lag),
                    member.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            t.print();
        }
        Format::Json => print_json(&json!({
            "group": group,
            "state": g.state,
            "protocol_type": g.protocol_type,
            "protocol": g.protocol,
            "members": g.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": m.partitions.iter()
                    .map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|((topic, p), current, end, lag, member)| json!({
                "topic": topic, "partition": p,
                "committed": (*current >= 0).then_some(*current),
                "end": (*end >= 0).then_some(*end),
                "lag": (*lag >= 0).then_some(*lag),
                "member_id": member,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}

async fn reset(c: &mut Client, a: ResetArgs, format: Format) -> Result<(), CliError> {
    let coordinator = coordinator_node(c, &a.group).await?;
    let topic = c.topic(&a.topic, false).await?;
    let bounds = c.offsets(&topic, 0).await?;
    let targets: BTreeMap<i32, i64> = if let Some(ts) = a.to_time {
        c.list_offsets(&topic, ts, 0)
            .await?
            .into_iter()
            .map(|(p, (o, _))| (p, if o < 0 { bounds[&p].1 } else { o }))
            .collect()
    } else {
        bounds
            .iter()
            .map(|(p, (start, end))| {
                let o = if a.to_earliest {
                    *start
                } else if a.to_latest {
                    *end
                } else {
                    a.to_offset.unwrap_or(0).clamp(*start, *end)
                };
                (*p, o)
            })
            .collect()
    };
    let committed = fetch_committed(c, coordinator, &a.group, None).await?;
    if a.execute {
        let g = describe_group(c, coordinator, &a.group).await?;
        if !matches!(g.state.as_str(), "Empty" | "Dead") {
            return Err(ClientError::Kafka {
                addr: c.bootstrap(),
                code: ResponseError::NonEmptyGroup.code(),
                message: Some(format!(
                    "offsets can only be reset while group '{}' is inactive; it is {}",
                    a.group, g.state
                )),
            }
            .into());
        }
        let offsets = targets
            .iter()
            .map(|(p, o)| ((a.topic.clone(), *p), *o))
            .collect();
        commit_offsets(c, coordinator, &a.group, -1, "", &offsets).await?;
    }
    match format {
        Format::Text => {
            let mut t = Table::new(&[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET",
            ]);
            for (p, o) in &targets {
                let current = committed.get(&(a.topic.clone(), *p)).copied().unwrap_or(-1);
                t.row(vec![
                    a.group.clone(),
                    a.topic.clone(),
                    p.to_string(),
                    offset_cell(current),
                    o.to_string(),
                ]);
            }
            t.print();
            if !a.execute {
                eprintln!("Dry run: nothing changed. Add --execute to apply.");
            }
        }
        Format::Json => print_json(&json!({
            "group": a.group,
            "topic": a.topic,
            "executed": a.execute,
            "partitions": targets.iter().map(|(p, o)| json!({
                "partition": p,
                "current": committed.get(&(a.topic.clone(), *p)),
                "new": o,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}

async fn delete(c: &mut Client, groups: Vec<String>, format: Format) -> Result<(), CliError> {
    let mut failed = 0;
    let mut results = Vec::new();
    for g in &groups {
        let outcome = async {
            let coordinator = coordinator_node(c, g).await?;
            let conn = c.broker(coordinator).await?;
            let addr = conn.addr().to_string();
            let resp = conn
                .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(g))]))
                .await?;
            let code = resp.results.first().map(|r| r.error_code).unwrap_or(0);
            check(&addr, code, None).map_err(|e| match e {
                ClientError::Kafka { addr, code, .. } => ClientError::Kafka {
                    addr,
                    code,
                    message: Some(format!("group '{g}'")),
                },
                other => other,
            })
        }
        .await;
        match outcome {
            Ok(()) => {
                if format == Format::Text {
                    println!("Deleted group {g}.");
                }
                results.push(json!({"group": g, "deleted": true}));
            }
            Err(e) => {
                failed += 1;
                eprintln!("weir: {e}");
                results.push(json!({"group": g, "deleted": false, "error": e.to_string()}));
            }
        }
    }
    if format == Format::Json {
        print_json(&json!({ "results": results }));
    }
    if failed > 0 {
        return Err(CliError::Partial(format!(
            "{failed} of {} groups not deleted",
            groups.len()
        )));
    }
    Ok(())
}

/// `weir cluster info`.
pub async fn cluster_info(mut c: Client, format: Format) -> Result<(), CliError> {
    c.metadata(Some(Vec::new()), false).await?;
    let conn = c.any().await?;
    let addr = conn.addr().to_string();
    let mut apis: Vec<(i16, (i16, i16))> =
        conn.api_versions().iter().map(|(k, v)| (*k, *v)).collect();
    apis.sort();
    let resp = conn.send(&DescribeClusterRequest::default()).await.ok();
    let brokers: Vec<(i32, String, i32)> = match &resp {
        Some(r) if r.error_code == 0 => r
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect(),
        _ => Vec::new(),
    };
    let cluster_id = resp
        .as_ref()
        .map(|r| r.cluster_id.to_string())
        .or(c.cluster_id.clone())
        .unwrap_or_default();
    let controller = resp
        .as_ref()
        .map(|r| r.controller_id.0)
        .unwrap_or(c.controller);
    match format {
        Format::Text => {
            println!("Cluster ID: {cluster_id}");
            println!("Controller: {controller}");
            let mut t = Table::new(&["BROKER", "HOST", "PORT"]);
            for (id, host, port) in &brokers {
                t.row(vec![id.to_string(), host.clone(), port.to_string()]);
            }
            t.print();
            println!("\nAPI versions of {addr}:");
            let mut t = Table::new(&["KEY", "API", "MIN", "MAX"]);
            for (k, (min, max)) in &apis {
                t.row(vec![
                    k.to_string(),
                    api_name(*k),
                    min.to_string(),
                    max.to_string(),
                ]);
            }
            t.print();
        }
        Format::Json => print_json(&json!({
            "cluster_id": cluster_id,
            "controller": controller,
            "brokers": brokers.iter().map(|(id, host, port)| json!({"id": id, "host": host, "port": port})).collect::<Vec<_>>(),
            "api_versions": apis.iter().map(|(k, (min, max))| json!({"key": k, "name": api_name(*k), "min": min, "max": max})).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}
