//! `weir fault add|list|clear`: the fault injection API (`/v1/faults`) of
//! a Weir broker's HTTP listener, from the command line. A plain HTTP/1.1
//! exchange over one connection: the API is three calls on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct FaultArgs {
    /// The broker's HTTP listener (its `http-listen`).
    #[arg(
        long,
        default_value = "127.0.0.1:9644",
        env = "WEIR_HTTP",
        global = true
    )]
    pub http: String,
    #[command(subcommand)]
    pub command: FaultCommand,
}

#[derive(Subcommand, Debug)]
pub enum FaultCommand {
    /// Add a rule: the next matching requests fail, wait, disconnect or
    /// are throttled. Prints the rule.
    Add(AddArgs),
    /// The active rules, with remaining and fired counts.
    List,
    /// Remove every rule.
    Clear,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Kafka's API name: Produce, Fetch, Metadata, OffsetCommit, ...
    #[arg(long)]
    pub api: String,
    /// Answer with this Kafka error (name, e.g. NOT_LEADER_OR_FOLLOWER, or code).
    #[arg(long)]
    pub error: Option<String>,
    /// Handle matching requests after this delay.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Close the connection instead of answering.
    #[arg(long)]
    pub disconnect: bool,
    /// Answer with this throttle_time_ms.
    #[arg(long)]
    pub throttle_ms: Option<i32>,
    /// Apply to this many requests (default: until cleared).
    #[arg(long)]
    pub count: Option<u64>,
    /// Only requests naming this topic.
    #[arg(long)]
    pub topic: Option<String>,
}

/// Runs one `weir fault` command: 0 on success, 1 with one error line.
pub fn run(a: FaultArgs) -> std::process::ExitCode {
    let result = match &a.command {
        FaultCommand::List => call(&a.http, "GET", None),
        FaultCommand::Clear => call(&a.http, "DELETE", None),
        FaultCommand::Add(add) => {
            let mut rule = serde_json::json!({ "api": add.api });
            if let Some(e) = &add.error {
                rule["error"] = match e.parse::<i64>() {
                    Ok(code) => code.into(),
                    Err(_) => e.as_str().into(),
                };
            }
            if let Some(ms) = add.delay_ms {
                rule["delay_ms"] = ms.into();
            }
            if add.disconnect {
                rule["disconnect"] = true.into();
            }
            if let Some(ms) = add.throttle_ms {
                rule["throttle_ms"] = ms.into();
            }
            if let Some(n) = add.count {
                rule["count"] = n.into();
            }
            if let Some(t) = &add.topic {
                rule["topic"] = t.as_str().into();
            }
            call(&a.http, "POST", Some(rule.to_string()))
        }
    };
    match result {
        Ok(body) => {
            print!("{body}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir fault: {}: {e}", a.http);
            std::process::ExitCode::from(1)
        }
    }
}

/// One request to `/v1/faults`; the body of a 2xx answer, else the error.
fn call(addr: &str, method: &str, body: Option<String>) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(10));
    s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} /v1/faults HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    if (200..300).contains(&status) {
        Ok(body.to_string())
    } else {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        Err(format!("HTTP {status}: {message}"))
    }
}
