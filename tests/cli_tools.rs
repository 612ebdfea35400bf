//! The command-line tools (`weir topic|produce|consume|group|cluster`)
//! against a broker started by the test: output, JSON parsed back, exit
//! codes and the error paths.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_weir");

/// Runs `weir ARGS` against `addr` with `stdin`, off the async runtime.
async fn weir(addr: &str, args: &[&str], stdin: &[u8]) -> Output {
    let addr = addr.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("WEIR_BOOTSTRAP_SERVER", &addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}{}", stdout(o), stderr(o));
    stdout(o)
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Exit status 1 and one stderr line naming the broker and `error`.
fn fails_with(o: &Output, addr: &str, error: &str) {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(o), stderr(o));
    let err = stderr(o);
    let line = err.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("weir: ") && line.contains(addr) && line.contains(error),
        "stderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_list_describe_alter_grow_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let addr = b.addr.to_string();
    let a = addr.as_str();

    let o = weir(
        a,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=60000",
        ],
        b"",
    )
    .await;
    assert_eq!(ok(&o).trim(), "Created topic orders.");
    let o = weir(a, &["topic", "create", "events", "--format", "json"], b"").await;
    assert_eq!(json(&o)["partitions"], 1, "the broker's default");
    fails_with(
        &weir(a, &["topic", "create", "orders"], b"").await,
        a,
        "TOPIC_ALREADY_EXISTS",
    );
    fails_with(
        &weir(
            a,
            &["topic", "create", "bad", "-c", "retention.ms=abc"],
            b"",
        )
        .await,
        a,
        "INVALID_CONFIG",
    );
    fails_with(
        &weir(a, &["topic", "create", "x", "-r", "3"], b"").await,
        a,
        "INVALID_REPLICATION_FACTOR",
    );

    assert_eq!(
        ok(&weir(a, &["topic", "list"], b"").await),
        "events\norders\n"
    );
    let list = json(&weir(a, &["topic", "list", "--format", "json"], b"").await);
    assert_eq!(list["topics"][1]["topic"], "orders");
    assert_eq!(list["topics"][1]["partitions"], 3);

    let d = json(&weir(a, &["topic", "describe", "orders", "--format", "json"], b"").await);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(d["configs"]["retention.ms"], "60000");
    assert_eq!(d["id"].as_str().unwrap().len(), 36);
    let text = ok(&weir(a, &["topic", "describe", "orders"], b"").await);
    assert!(
        text.contains("PartitionCount: 3") && text.contains("retention.ms=60000"),
        "{text}"
    );
    fails_with(
        &weir(a, &["topic", "describe", "nope"], b"").await,
        a,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );

    ok(&weir(
        a,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=1000",
            "segment.ms=5000",
        ],
        b"",
    )
    .await);
    let d = json(&weir(a, &["topic", "describe", "orders", "--format", "json"], b"").await);
    assert_eq!(d["configs"]["retention.ms"], "1000");
    assert_eq!(d["configs"]["segment.ms"], "5000");
    ok(&weir(
        a,
        &[
            "topic",
            "alter-config",
            "orders",
            "--delete",
            "retention.ms",
        ],
        b"",
    )
    .await);
    let d = json(&weir(a, &["topic", "describe", "orders", "--format", "json"], b"").await);
    assert!(d["configs"].get("retention.ms").is_none());
    fails_with(
        &weir(
            a,
            &["topic", "alter-config", "orders", "--set", "no.such=1"],
            b"",
        )
        .await,
        a,
        "INVALID_CONFIG",
    );

    ok(&weir(
        a,
        &["topic", "add-partitions", "orders", "--total", "5"],
        b"",
    )
    .await);
    let d = json(&weir(a, &["topic", "describe", "orders", "--format", "json"], b"").await);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 5);
    fails_with(
        &weir(
            a,
            &["topic", "add-partitions", "orders", "--total", "2"],
            b"",
        )
        .await,
        a,
        "INVALID_PARTITIONS",
    );

    // One of two fails: the other is still deleted, and the exit is 1.
    let o = weir(a, &["topic", "delete", "events", "ghost"], b"").await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("Deleted topic events."));
    assert!(stderr(&o).contains("UNKNOWN_TOPIC_OR_PARTITION"));
    assert_eq!(ok(&weir(a, &["topic", "list"], b"").await), "orders\n");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_keys_headers_compression_json() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let addr = b.addr.to_string();
    let a = addr.as_str();
    ok(&weir(a, &["topic", "create", "t", "-p", "4"], b"").await);
    let input = b"alpha|1\nbeta|2\ngamma|3\nalpha|4\n";
    ok(&weir(
        a,
        &[
            "produce",
            "t",
            "--key-separator",
            "|",
            "--header",
            "src=cli",
            "--header",
            "src=twice",
            "--compression",
            "zstd",
        ],
        input,
    )
    .await);
    let o = weir(
        a,
        &[
            "consume",
            "t",
            "--from-beginning",
            "--max-messages",
            "4",
            "--format",
            "json",
        ],
        b"",
    )
    .await;
    let records: Vec<Value> = ok(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    let mut seen: Vec<(String, String, i64)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["headers"][0]["key"], "src");
            assert_eq!(
                r["headers"][1]["value"], "twice",
                "duplicate header keys kept in order"
            );
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
                r["partition"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    // Both "alpha" records land on one partition (Kafka's murmur2 partitioner).
    assert_eq!(seen[0].2, seen[1].2);
    assert_eq!(
        seen.iter()
            .map(|s| (s.0.as_str(), s.1.as_str()))
            .collect::<Vec<_>>(),
        [
            ("alpha", "1"),
            ("alpha", "4"),
            ("beta", "2"),
            ("gamma", "3")
        ]
    );
    let alpha_partition = weir::client::partition_for_key(b"alpha", 4) as i64;
    assert_eq!(seen[0].2, alpha_partition);

    // Text output: headers, key, value, in offset order per partition.
    let on_alpha = seen.iter().filter(|s| s.2 == alpha_partition).count();
    let o = weir(
        a,
        &[
            "consume",
            "t",
            "--from-beginning",
            "--partition",
            &alpha_partition.to_string(),
            "--max-messages",
            &on_alpha.to_string(),
            "--print-key",
            "--print-headers",
        ],
        b"",
    )
    .await;
    let out = ok(&o);
    let alpha: Vec<&str> = out.lines().filter(|l| l.contains("\talpha\t")).collect();
    assert_eq!(
        alpha,
        ["src:cli,src:twice\talpha\t1", "src:cli,src:twice\talpha\t4"]
    );
    // A missing key separator fails, naming the line.
    let o = weir(
        a,
        &["produce", "t", "--key-separator", "|"],
        b"no separator here\n",
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));

    // Non-UTF-8 bytes: escaped in text, base64 in JSON.
    let mut c = b.client().await;
    assert_eq!(c.create_topic("bin", 1, &[]).await, 0);
    c.produce(9, "bin", 0, batch(&[b"ok\xff\x00"], 0)).await;
    let o = weir(
        a,
        &["consume", "bin", "--from-beginning", "--max-messages", "1"],
        b"",
    )
    .await;
    assert_eq!(ok(&o), "ok\\xff\x00\n");
    let o = weir(
        a,
        &[
            "consume",
            "bin",
            "--from-beginning",
            "--max-messages",
            "1",
            "--format",
            "json",
        ],
        b"",
    )
    .await;
    let r: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(
        (r["value"].as_str(), r["value_encoding"].as_str()),
        (Some("b2v/AA=="), Some("base64"))
    );

    // --offset and --timeout-ms: stops by itself when nothing more comes.
    let start = Instant::now();
    let o = weir(
        a,
        &["consume", "bin", "--offset", "0", "--timeout-ms", "700"],
        b"",
    )
    .await;
    assert_eq!(ok(&o), "ok\\xff\x00\n");
    assert!(start.elapsed() < Duration::from_secs(10));
    fails_with(
        &weir(a, &["consume", "ghost", "--max-messages", "1"], b"").await,
        a,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_reset_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let addr = b.addr.to_string();
    let a = addr.as_str();
    ok(&weir(a, &["topic", "create", "work", "-p", "1"], b"").await);
    let lines: String = (0..10).map(|i| format!("job-{i}\n")).collect();
    ok(&weir(a, &["produce", "work"], lines.as_bytes()).await);

    // A partial consume commits what it printed: lag = 10 - 4.
    let o = weir(
        a,
        &[
            "consume",
            "work",
            "--group",
            "crew",
            "--from-beginning",
            "--max-messages",
            "4",
        ],
        b"",
    )
    .await;
    assert_eq!(ok(&o), "job-0\njob-1\njob-2\njob-3\n");
    let d = json(&weir(a, &["group", "describe", "crew", "--format", "json"], b"").await);
    assert_eq!(d["state"], "Empty");
    let p = &d["offsets"][0];
    assert_eq!(
        (
            p["committed"].as_i64(),
            p["end"].as_i64(),
            p["lag"].as_i64()
        ),
        (Some(4), Some(10), Some(6))
    );
    let text = ok(&weir(a, &["group", "describe", "crew"], b"").await);
    assert!(text.contains("LAG"), "{text}");
    let list = json(&weir(a, &["group", "list", "--format", "json"], b"").await);
    assert_eq!(list["groups"][0]["group"], "crew");

    // The group resumes where it committed.
    let o = weir(
        a,
        &["consume", "work", "--group", "crew", "--max-messages", "2"],
        b"",
    )
    .await;
    assert_eq!(ok(&o), "job-4\njob-5\n");

    // Reset: a dry run changes nothing; --execute does; describe shows it.
    let o = weir(
        a,
        &[
            "group",
            "reset-offsets",
            "crew",
            "--topic",
            "work",
            "--to-earliest",
        ],
        b"",
    )
    .await;
    assert!(ok(&o).contains("6"), "plan shows the current offset");
    let d = json(&weir(a, &["group", "describe", "crew", "--format", "json"], b"").await);
    assert_eq!(d["offsets"][0]["committed"], 6);
    let r = json(
        &weir(
            a,
            &[
                "group",
                "reset-offsets",
                "crew",
                "--topic",
                "work",
                "--to-offset",
                "3",
                "--execute",
                "--format",
                "json",
            ],
            b"",
        )
        .await,
    );
    assert_eq!(r["partitions"][0]["new"], 3);
    let d = json(&weir(a, &["group", "describe", "crew", "--format", "json"], b"").await);
    assert_eq!(
        (
            d["offsets"][0]["committed"].as_i64(),
            d["offsets"][0]["lag"].as_i64()
        ),
        (Some(3), Some(7))
    );
    ok(&weir(
        a,
        &[
            "group",
            "reset-offsets",
            "crew",
            "--topic",
            "work",
            "--to-latest",
            "--execute",
        ],
        b"",
    )
    .await);
    let d = json(&weir(a, &["group", "describe", "crew", "--format", "json"], b"").await);
    assert_eq!(d["offsets"][0]["lag"], 0);

    fails_with(
        &weir(a, &["group", "describe", "nobody"], b"").await,
        a,
        "GROUP_ID_NOT_FOUND",
    );
    let o = weir(a, &["group", "delete", "crew", "nobody"], b"").await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("Deleted group crew."));
    assert!(stderr(&o).contains("GROUP_ID_NOT_FOUND"));
    let list = json(&weir(a, &["group", "list", "--format", "json"], b"").await);
    assert_eq!(list["groups"].as_array().unwrap().len(), 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_and_unreachable_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let addr = b.addr.to_string();
    let info = json(&weir(&addr, &["cluster", "info", "--format", "json"], b"").await);
    assert_eq!(info["controller"], 1);
    assert_eq!(info["brokers"][0]["port"], b.addr.port());
    assert_eq!(info["cluster_id"].as_str().unwrap().len(), 22);
    let produce = info["api_versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "Produce")
        .unwrap();
    assert_eq!(produce["max"], 13);
    // The second bootstrap address is used when the first is down.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    ok(&weir(&format!("{dead},{addr}"), &["topic", "list"], b"").await);
    b.stop().await;

    // Refused, and accepted but never answered: both fail within seconds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    for target in [dead.as_str(), silent_addr.as_str()] {
        let start = Instant::now();
        let o = weir(target, &["topic", "list"], b"").await;
        assert!(start.elapsed() < Duration::from_secs(8), "{target}");
        fails_with(&o, target, "cannot connect");
    }
    drop(silent);
}

/// `consume` without a limit streams until Ctrl-C, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_streams_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let addr = b.addr.to_string();
    ok(&weir(&addr, &["topic", "create", "live"], b"").await);
    let child = Command::new(BIN)
        .args(["consume", "live", "--group", "watchers", "-b", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ok(&weir(&addr, &["produce", "live"], b"first\nsecond\n").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "first\nsecond\n");
    // It committed what it printed before leaving.
    let d = json(
        &weir(
            &addr,
            &["group", "describe", "watchers", "--format", "json"],
            b"",
        )
        .await,
    );
    assert_eq!(d["offsets"][0]["committed"], 2);
    b.stop().await;
}

/// A log written to a pipe carries no ANSI colour codes.
#[test]
fn redirected_log_has_no_colour_codes() {
    let (child, _) = spawn_weir(Stdio::piped());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in: {log:?}");
}
