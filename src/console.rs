//! The web console at `/` of the HTTP listener: what the broker holds,
//! server-rendered HTML with no JavaScript, so every read-only page works
//! in any browser (and in `curl`).
//!
//! Pages: `/` (overview), `/topics`, `/topics/NAME` (partitions, configs
//! and a message browser: `?partition=P&offset=O&limit=N&format=text|hex`),
//! `/groups`, `/groups/ID` (members, committed offsets and lag, reset),
//! `/share-groups`, `/share-groups/ID`, `/transactions`.
//!
//! The one mutating action, resetting a group's offsets, is a POST that
//! needs the process's CSRF token (a random value embedded in the form, so
//! another site cannot forge the request) and an explicit confirmation,
//! and is refused while the group has members (Kafka's rule for
//! `kafka-consumer-groups.sh --reset-offsets`).

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::group::OffsetCommit;
use crate::log::batch::BatchHeader;
use crate::log::partition::Isolation;
use crate::Broker;

/// A page: (status, content type, body, redirect location).
pub struct Page {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

fn page(status: u16, body: String) -> Page {
    Page {
        status,
        body,
        location: None,
    }
}

/// This process's CSRF token (random, 128 bits).
pub fn csrf_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("system randomness");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// HTML text escaping.
fn h(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encoding of a path segment (group ids may hold anything).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-decoding (and `+` as space in form bodies and queries).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` -> pairs, decoded.
pub fn form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2330}\
header{background:#123;color:#fff;padding:.6em 1.2em}header a{color:#cde;margin-right:1.2em;text-decoration:none}\
header strong{margin-right:2em}main{padding:1em 1.2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eef}\
td.num,td.offset,td.partition,td.committed,td.end,td.lag{text-align:right;font-variant-numeric:tabular-nums}\
td.value,td.key{font-family:monospace;max-width:40em;overflow-wrap:anywhere}.muted{color:#778}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - Weir</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>\
<header><strong>Weir</strong><a href=\"/\">Overview</a><a href=\"/topics\">Topics</a>\
<a href=\"/groups\">Consumer groups</a><a href=\"/share-groups\">Share groups</a>\
<a href=\"/transactions\">Transactions</a></header><main>{body}</main></body></html>",
        h(title)
    )
}

fn table(id: &str, heads: &[&str], rows: &[String]) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for head in heads {
        let _ = write!(out, "<th>{}</th>", h(head));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(out, "<tr>{r}</tr>");
    }
    out.push_str("</tbody></table>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
    }
    out
}

/// Renders the page for a GET of `path` with `query`; `None`: not a page.
pub async fn get_page(broker: &Broker, path: &str, query: &str) -> Option<Page> {
    let q = form(query);
    let path = path.trim_end_matches('/');
    Some(match path {
        "" => overview(broker).await,
        "/topics" => topics(broker),
        "/groups" => groups(broker).await,
        "/share-groups" => share_groups(broker).await,
        "/transactions" => transactions(broker).await,
        _ => {
            if let Some(name) = path.strip_prefix("/topics/") {
                topic(broker, &decode(name), &q)
            } else if let Some(id) = path.strip_prefix("/groups/") {
                group(broker, &decode(id)).await
            } else if let Some(id) = path.strip_prefix("/share-groups/") {
                share_group(broker, &decode(id)).await
            } else {
                return None;
            }
        }
    })
}

async fn overview(broker: &Broker) -> Page {
    let topics = broker.logs.topics();
    let partitions: i32 = topics.iter().map(|t| t.partition_count()).sum();
    let bytes: u64 = topics
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| p.size_bytes())
        .sum();
    let groups = broker.groups.list().await.len();
    let shares = broker.share.list().await.len();
    let txns = broker.txns.list().await.len();
    let rows = [
        ("Cluster id", h(broker.logs.cluster_id())),
        (
            "Broker",
            format!(
                "{}:{} (node {})",
                h(&broker.listen_host),
                broker.port,
                broker.config.node_id
            ),
        ),
        ("Version", h(env!("CARGO_PKG_VERSION"))),
        ("Data directory", h(&broker.config.data_dir)),
        (
            "Topics",
            format!(
                "<a href=\"/topics\">{}</a> ({partitions} partitions, {})",
                topics.len(),
                size(bytes)
            ),
        ),
        (
            "Consumer groups",
            format!("<a href=\"/groups\">{groups}</a>"),
        ),
        (
            "Share groups",
            format!("<a href=\"/share-groups\">{shares}</a>"),
        ),
        (
            "Transactional ids",
            format!("<a href=\"/transactions\">{txns}</a>"),
        ),
        ("Connections", broker.metrics.connections().to_string()),
    ];
    let mut body = String::from("<h1>Weir</h1><table id=\"overview\"><tbody>");
    for (k, v) in rows {
        let _ = write!(
            body,
            "<tr><th>{k}</th><td id=\"{}\">{v}</td></tr>",
            enc(&k.to_lowercase().replace(' ', "-"))
        );
    }
    body.push_str("</tbody></table><p class=\"muted\">Metrics: <a href=\"/metrics\">/metrics</a> (Prometheus). Fault injection: <code>/v1/faults</code>.</p>");
    page(200, layout("Overview", &body))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn topics(broker: &Broker) -> Page {
    let mut topics = broker.logs.topics();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<String> = topics
        .iter()
        .map(|t| {
            let parts = t.partitions();
            let size_bytes: u64 = parts.iter().map(|p| p.size_bytes()).sum();
            let records: i64 = parts
                .iter()
                .map(|p| {
                    let o = p.offsets();
                    o.log_end - o.log_start
                })
                .sum();
            let ends: Vec<String> = parts
                .iter()
                .map(|p| p.offsets().log_end.to_string())
                .collect();
            format!(
                "<td class=\"name\"><a href=\"/topics/{}\">{}</a></td><td class=\"num\">{}</td>\
<td class=\"num\">{records}</td><td class=\"num\">{}</td><td class=\"ends\">{}</td>",
                enc(&t.name),
                h(&t.name),
                parts.len(),
                size(size_bytes),
                ends.join(", ")
            )
        })
        .collect();
    let body = format!(
        "<h1>Topics</h1>{}",
        table(
            "topics",
            &["Topic", "Partitions", "Records", "Size", "End offsets"],
            &rows
        )
    );
    page(200, layout("Topics", &body))
}

/// One record, rendered for the browser.
struct Shown {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<bytes::Bytes>,
    value: Option<bytes::Bytes>,
    headers: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
}

/// Up to `limit` records of `partition` from `start`.
fn read_records(p: &crate::log::Partition, start: i64, limit: usize) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut next = start.max(p.offsets().log_start);
    // At most 64 reads of 1 MiB: a page stays cheap whatever the records.
    for _ in 0..64 {
        if out.len() >= limit {
            break;
        }
        let Ok(r) = p.read(next, 1 << 20, true, Isolation::ReadUncommitted) else {
            break;
        };
        if r.records.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < r.records.len() && out.len() < limit {
            let Some(head) = BatchHeader::parse(&r.records[pos..]) else {
                break;
            };
            let end = pos + head.total_len();
            if end > r.records.len() {
                break;
            }
            next = head.next_offset();
            if !head.is_control() {
                if let Ok((_, records)) =
                    crate::log::records::decode(&r.records[pos..end], 64 << 20)
                {
                    for rec in records.into_iter().filter(|r| r.offset >= start) {
                        if out.len() >= limit {
                            break;
                        }
                        out.push(Shown {
                            partition: p.index,
                            offset: rec.offset,
                            timestamp: rec.timestamp,
                            key: rec.key,
                            value: rec.value,
                            headers: rec
                                .headers
                                .into_iter()
                                .map(|hd| (hd.key, hd.value))
                                .collect(),
                        });
                    }
                }
            }
            pos = end;
        }
    }
    out
}

fn bytes_cell(b: &Option<bytes::Bytes>, hex: bool) -> String {
    match b {
        None => "<span class=\"muted\">null</span>".into(),
        Some(b) if hex => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
        Some(b) => h(&crate::cli::escape_bytes(b)),
    }
}

fn topic(broker: &Broker, name: &str, q: &[(String, String)]) -> Page {
    let Some(t) = broker.logs.topic(name) else {
        return page(
            404,
            layout("Not found", &format!("<h1>No topic {}</h1>", h(name))),
        );
    };
    let hex = get(q, "format") == Some("hex");
    let limit = get(q, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize)
        .clamp(1, 500);
    let only: Option<i32> = get(q, "partition").and_then(|v| v.parse().ok());
    let from: Option<i64> = get(q, "offset").and_then(|v| v.parse().ok());
    let parts = t.partitions();
    let part_rows: Vec<String> = parts
        .iter()
        .map(|p| {
            let o = p.offsets();
            format!(
                "<td class=\"partition\"><a href=\"/topics/{}?partition={}&amp;offset={}\">{}</a></td>\
<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                enc(name),
                p.index,
                o.log_start,
                p.index,
                o.log_start,
                o.log_end,
                size(p.size_bytes())
            )
        })
        .collect();
    let config_rows: Vec<String> = t
        .overrides()
        .iter()
        .map(|(k, v)| format!("<td>{}</td><td>{}</td>", h(k), h(v)))
        .collect();
    // Latest `limit` of each partition (newest first overall), or `limit`
    // from `offset` in the chosen partitions.
    let mut shown: Vec<Shown> = parts
        .iter()
        .filter(|p| only.is_none_or(|i| i == p.index))
        .flat_map(|p| {
            let start = from.unwrap_or_else(|| p.offsets().high_watermark - limit as i64);
            read_records(p, start, limit)
        })
        .collect();
    if from.is_none() {
        shown.sort_by_key(|s| std::cmp::Reverse((s.timestamp, s.offset)));
    } else {
        shown.sort_by_key(|s| (s.partition, s.offset));
    }
    shown.truncate(limit);
    let msg_rows: Vec<String> = shown
        .iter()
        .map(|s| {
            let headers: Vec<String> = s
                .headers
                .iter()
                .map(|(k, v)| format!("{}={}", h(&crate::cli::escape_bytes(k)), bytes_cell(v, hex)))
                .collect();
            format!(
                "<td class=\"partition\">{}</td><td class=\"offset\">{}</td><td class=\"timestamp\">{}</td>\
<td class=\"key\">{}</td><td class=\"value\">{}</td><td class=\"headers\">{}</td>",
                s.partition,
                s.offset,
                s.timestamp,
                bytes_cell(&s.key, hex),
                bytes_cell(&s.value, hex),
                headers.join("<br>")
            )
        })
        .collect();
    let other = if hex { "text" } else { "hex" };
    let mut self_query: Vec<String> = q
        .iter()
        .filter(|(k, _)| k != "format")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    self_query.push(format!("format={other}"));
    let body = format!(
        "<h1>Topic {}</h1><p class=\"muted\">id {}</p><h2>Partitions</h2>{}<h2>Configs (set on the topic)</h2>{}\
<h2>Messages</h2><form method=\"get\" action=\"/topics/{}\">Partition <input name=\"partition\" size=\"4\" value=\"{}\"> \
from offset <input name=\"offset\" size=\"10\" value=\"{}\"> limit <input name=\"limit\" size=\"4\" value=\"{limit}\"> \
<select name=\"format\"><option{}>text</option><option{}>hex</option></select> <button>Show</button></form>\
<p class=\"muted\">{} <a href=\"/topics/{}?{}\">as {other}</a></p>{}",
        h(name),
        t.id,
        table("partitions", &["Partition", "Start offset", "End offset", "Size"], &part_rows),
        table("configs", &["Config", "Value"], &config_rows),
        enc(name),
        only.map(|p| p.to_string()).unwrap_or_default(),
        from.map(|o| o.to_string()).unwrap_or_default(),
        if hex { "" } else { " selected" },
        if hex { " selected" } else { "" },
        if from.is_some() { "From the offset given." } else { "The latest messages, newest first." },
        enc(name),
        self_query.join("&amp;"),
        table("messages", &["Partition", "Offset", "Timestamp", "Key", "Value", "Headers"], &msg_rows)
    );
    page(200, layout(&format!("Topic {name}"), &body))
}

async fn groups(broker: &Broker) -> Page {
    let rows: Vec<String> = broker
        .groups
        .list()
        .await
        .into_iter()
        .map(|(id, protocol, state, kind)| {
            format!(
                "<td class=\"name\"><a href=\"/groups/{}\">{}</a></td><td>{kind}</td><td>{}</td><td>{}</td>",
                enc(&id),
                h(&id),
                h(&protocol),
                h(state)
            )
        })
        .collect();
    let body = format!(
        "<h1>Consumer groups</h1>{}",
        table(
            "groups",
            &["Group", "Type", "Protocol type", "State"],
            &rows
        )
    );
    page(200, layout("Consumer groups", &body))
}

/// (member id, client id, host) of a group's members.
async fn members(broker: &Broker, id: &str) -> Vec<(String, String, String)> {
    if broker.groups.is_consumer_group(id).await {
        return broker
            .groups
            .describe_consumer(id)
            .await
            .map(|g| {
                g.members
                    .values()
                    .map(|m| (m.id.clone(), m.client_id.clone(), m.client_host.clone()))
                    .collect()
            })
            .unwrap_or_default();
    }
    broker
        .groups
        .describe(id)
        .await
        .map(|d| d.members.into_iter().map(|m| (m.0, m.2, m.3)).collect())
        .unwrap_or_default()
}

async fn group(broker: &Broker, id: &str) -> Page {
    if !broker.groups.exists(id).await {
        return page(
            404,
            layout(
                "Not found",
                &format!("<h1>No consumer group {}</h1>", h(id)),
            ),
        );
    }
    let member_rows: Vec<String> = members(broker, id)
        .await
        .iter()
        .map(|(m, c, host)| format!("<td>{}</td><td>{}</td><td>{}</td>", h(m), h(c), h(host)))
        .collect();
    let offset_rows: Vec<String> = broker
        .groups
        .committed(id)
        .await
        .into_iter()
        .map(|(topic, partition, committed)| {
            let end = broker
                .logs
                .partition(&topic, partition)
                .map(|p| p.offsets().high_watermark);
            let (end_s, lag) = match end {
                Some(e) => (e.to_string(), (e - committed).max(0).to_string()),
                None => ("-".into(), "-".into()),
            };
            format!(
                "<td class=\"topic\"><a href=\"/topics/{}\">{}</a></td><td class=\"partition\">{partition}</td>\
<td class=\"committed\">{committed}</td><td class=\"end\">{end_s}</td><td class=\"lag\">{lag}</td>",
                enc(&topic),
                h(&topic)
            )
        })
        .collect();
    let body = format!(
        "<h1>Consumer group {}</h1><h2>Members</h2>{}<h2>Committed offsets</h2>{}\
<h2>Reset offsets</h2><form id=\"reset\" method=\"post\" action=\"/groups/{}/reset\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">Move every committed offset to the \
<select name=\"to\"><option value=\"earliest\">earliest</option><option value=\"latest\">latest</option></select> \
offset of its partition. <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\"> I am sure</label> \
<button>Reset</button></form><p class=\"muted\">Only while the group has no members, as Kafka requires.</p>",
        h(id),
        table("members", &["Member", "Client id", "Host"], &member_rows),
        table("offsets", &["Topic", "Partition", "Committed", "End", "Lag"], &offset_rows),
        enc(id),
        csrf_token()
    );
    page(200, layout(&format!("Group {id}"), &body))
}

/// POST `/groups/ID/reset` with the form body.
pub async fn post(broker: &Broker, path: &str, body: &str) -> Option<Page> {
    let id = decode(path.strip_prefix("/groups/")?.strip_suffix("/reset")?);
    let f = form(body);
    let token = get(&f, "csrf").unwrap_or("");
    if !crate::security::constant_time_eq(token.as_bytes(), csrf_token().as_bytes()) {
        return Some(page(
            403,
            layout(
                "Forbidden",
                "<h1>Missing or wrong CSRF token</h1><p>Reload the group's page and try again.</p>",
            ),
        ));
    }
    if get(&f, "confirm") != Some("yes") {
        return Some(page(
            400,
            layout(
                "Not confirmed",
                "<h1>Not reset</h1><p>Tick the confirmation box.</p>",
            ),
        ));
    }
    let latest = match get(&f, "to") {
        Some("earliest") => false,
        Some("latest") => true,
        _ => {
            return Some(page(
                400,
                layout("Bad request", "<h1>to must be earliest or latest</h1>"),
            ))
        }
    };
    if !broker.groups.exists(&id).await {
        return Some(page(
            404,
            layout(
                "Not found",
                &format!("<h1>No consumer group {}</h1>", h(&id)),
            ),
        ));
    }
    if !members(broker, &id).await.is_empty() {
        return Some(page(
            409,
            layout(
                "Group not empty",
                "<h1>Not reset</h1><p>The group has members: stop its consumers first.</p>",
            ),
        ));
    }
    let offsets: Vec<OffsetCommit> = broker
        .groups
        .committed(&id)
        .await
        .into_iter()
        .filter_map(|(topic, partition, _)| {
            let o = broker.logs.partition(&topic, partition)?.offsets();
            Some(OffsetCommit {
                topic,
                partition,
                offset: if latest {
                    o.high_watermark
                } else {
                    o.log_start
                },
                leader_epoch: -1,
                metadata: None,
            })
        })
        .collect();
    if let Err(code) = broker.groups.commit(&id, "", None, -1, offsets, 8).await {
        return Some(page(
            409,
            layout(
                "Not reset",
                &format!("<h1>Not reset</h1><p>Kafka error {code}.</p>"),
            ),
        ));
    }
    tracing::info!(group = %id, to = if latest { "latest" } else { "earliest" }, "offsets reset from the console");
    Some(Page {
        status: 303,
        body: String::new(),
        location: Some(format!("/groups/{}", enc(&id))),
    })
}

async fn share_groups(broker: &Broker) -> Page {
    let rows: Vec<String> = broker
        .share
        .list()
        .await
        .into_iter()
        .map(|(id, state)| {
            format!(
                "<td class=\"name\"><a href=\"/share-groups/{}\">{}</a></td><td>{}</td>",
                enc(&id),
                h(&id),
                h(state)
            )
        })
        .collect();
    let body = format!(
        "<h1>Share groups</h1>{}",
        table("share-groups", &["Group", "State"], &rows)
    );
    page(200, layout("Share groups", &body))
}

async fn share_group(broker: &Broker, id: &str) -> Page {
    let Some(g) = broker.share.describe(id).await else {
        return page(
            404,
            layout("Not found", &format!("<h1>No share group {}</h1>", h(id))),
        );
    };
    let member_rows: Vec<String> = g
        .members
        .values()
        .map(|m| {
            format!(
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                h(&m.id),
                h(&m.client_id),
                h(&m.client_host),
                h(&m.subscribed.join(", "))
            )
        })
        .collect();
    let window_rows: Vec<String> = broker
        .share
        .window_counts()
        .await
        .into_iter()
        .filter(|w| w.0 == id)
        .map(|(_, topic_id, partition, c)| {
            let topic = broker.logs.topic_by_id(topic_id).map(|t| t.name.clone()).unwrap_or_else(|| topic_id.to_string());
            format!(
                "<td class=\"topic\"><a href=\"/topics/{}\">{}</a></td><td class=\"partition\">{partition}</td>\
<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                enc(&topic),
                h(&topic),
                c[0],
                c[1],
                c[2],
                c[3]
            )
        })
        .collect();
    let dlq = broker
        .group_configs
        .value(id, "errors.deadletterqueue.topic.name")
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            format!(
                "<p>Dead-letter topic: <a id=\"dlq\" href=\"/topics/{}\">{}</a></p>",
                enc(&t),
                h(&t)
            )
        })
        .unwrap_or_else(|| {
            "<p class=\"muted\">No dead-letter topic (errors.deadletterqueue.topic.name).</p>"
                .into()
        });
    let body = format!(
        "<h1>Share group {}</h1>{dlq}<h2>Members</h2>{}<h2>In-flight records</h2>{}",
        h(id),
        table(
            "share-members",
            &["Member", "Client id", "Host", "Subscribed"],
            &member_rows
        ),
        table(
            "share-partitions",
            &[
                "Topic",
                "Partition",
                "Acquired",
                "Available",
                "Acknowledged",
                "Archived"
            ],
            &window_rows
        )
    );
    page(200, layout(&format!("Share group {id}"), &body))
}

async fn transactions(broker: &Broker) -> Page {
    let rows: Vec<String> = broker
        .txns
        .list()
        .await
        .into_iter()
        .map(|(id, pid, state, start)| {
            format!(
                "<td>{}</td><td class=\"num\">{pid}</td><td>{}</td><td class=\"num\">{}</td>",
                h(&id),
                h(&format!("{state:?}")),
                if start >= 0 {
                    start.to_string()
                } else {
                    "-".into()
                }
            )
        })
        .collect();
    let body = format!(
        "<h1>Transactions</h1>{}",
        table(
            "transactions",
            &["Transactional id", "Producer id", "State", "Started (ms)"],
            &rows
        )
    );
    page(200, layout("Transactions", &body))
}
