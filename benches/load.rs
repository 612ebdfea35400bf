//! Load benchmark: librdkafka (the rdkafka crate) against the release `weir`
//! binary and, alternately, against librdkafka's in-process mock cluster,
//! reporting Weir's throughput as a ratio of the mock's. Also: loopback TCP
//! and disk baselines, consume rate, latency at fixed offered rates, broker
//! CPU per GB, peak and idle RSS, start-up time.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin load -- \
//!     [--quick] [--weir PATH] [--sustained-runs N]
//!     [--only footprint|produce|sustained|pressure|scrape|recompress|consume|latency]
//!     [--compare OLD_WEIR]
//! ```
//!
//! `--compare OLD_WEIR` is the A/B mode: the same produce and consume runs
//! against two broker binaries, alternating, reporting new/old ratios, so a
//! change is judged side by side on the same machine at the same moment.
//!
//! Absolute numbers on shared machines move a lot between runs; the ratios
//! measured side by side are the figures to compare.

mod ceiling;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};

struct Opts {
    quick: bool,
    /// Runs of 1 GB in the sustained section (`--sustained-runs`, default 5).
    sustained_runs: usize,
    weir: String,
    only: Option<String>,
    compare: Option<String>,
}

impl Opts {
    fn section(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    Opts {
        quick: args.iter().any(|a| a == "--quick"),
        sustained_runs: value("--sustained-runs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
        weir: value("--weir").unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weir").to_string()
        }),
        only: value("--only"),
        compare: value("--compare"),
    }
}

/// A running broker process.
struct Weir {
    child: Child,
    addr: String,
    /// The HTTP listener's address, when the readiness line names one.
    http: Option<String>,
    _dir: tempfile::TempDir,
    started_in: Duration,
}

impl Weir {
    fn start(bin: &str, fsync: bool) -> Weir {
        Weir::start_with(
            bin,
            if fsync {
                "log-flush-interval-messages = 1\n"
            } else {
                ""
            },
        )
    }

    /// A broker with these config lines on top of the benchmark's.
    fn start_with(bin: &str, config: &str) -> Weir {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("weir.toml");
        let text = format!("group-min-session-timeout-ms = 500\n{config}");
        std::fs::write(&cfg, text).unwrap();
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin}: {e} (build it with cargo build --release)")
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .nth(4)
            .expect("readiness line")
            .to_string();
        TcpStream::connect(&addr).expect("accepting connections");
        let started_in = t0.elapsed();
        let http = line
            .split("; HTTP on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        Weir {
            child,
            addr,
            http,
            _dir: dir,
            started_in,
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    fn proc_field(&self, file: &str, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id()))
            .unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        self.proc_field("status", "VmRSS:")
    }

    fn peak_rss_kib(&self) -> u64 {
        self.proc_field("status", "VmHWM:")
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts deliveries and records the latency of each from the send time
/// embedded in the first 8 bytes of its payload (nanoseconds since `origin`).
struct Counter {
    origin: Instant,
    delivered: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Vec<u64>>,
    record_latency: bool,
}

impl ClientContext for Counter {}
impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if self.record_latency {
                    if let Some(p) = m.payload() {
                        let sent = u64::from_be_bytes(p[..8].try_into().unwrap());
                        let now = self.origin.elapsed().as_nanos() as u64;
                        self.latencies
                            .lock()
                            .unwrap()
                            .push(now.saturating_sub(sent));
                    }
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn producer(
    bootstrap: &str,
    acks: &str,
    record_latency: bool,
    linger_ms: &str,
) -> BaseProducer<Counter> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", linger_ms)
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Counter {
            origin: Instant::now(),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            record_latency,
        })
        .expect("producer")
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    // Weir creates topics on Metadata; ask for it by producing nothing but
    // a metadata request through a throwaway admin-less consumer.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
    let _ = c.fetch_metadata(Some(topic), Duration::from_secs(5));
    let _ = partitions;
}

/// Produces `count` records of `size` bytes round-robin over `partitions`;
/// returns MB/s from first send to last acknowledgement.
fn produce_run(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    size: usize,
    count: u64,
    acks: &str,
) -> f64 {
    let p = producer(bootstrap, acks, false, "5");
    let payload = vec![0x42u8; size];
    let t0 = Instant::now();
    for i in 0..count {
        let mut rec = BaseRecord::<(), [u8]>::to(topic)
            .payload(&payload)
            .partition((i % partitions as u64) as i32);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    let delivered = p.context().delivered.load(Ordering::Relaxed);
    assert_eq!(
        delivered,
        count,
        "all records acknowledged ({} failed)",
        p.context().failed.load(Ordering::Relaxed)
    );
    (count * size as u64) as f64 / secs / 1e6
}

/// Consumes `count` records of `partitions` from offset 0; MB/s.
fn consume_run(bootstrap: &str, topic: &str, partitions: i32, count: u64) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        // librdkafka's fetch sizes are kept: 10 MiB partition fetches
        // measured slower (0.16x vs 0.21x loopback) than the 1 MiB default.
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let (mut n, mut bytes) = (0u64, 0u64);
    let t0 = Instant::now();
    while n < count && t0.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            n += 1;
            bytes += m.payload_len() as u64;
        }
    }
    if n < count {
        eprintln!("consume from {bootstrap}: only {n} of {count} records in time");
        return 0.0;
    }
    bytes as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Offers `rate` msgs/s of 1 KiB for `secs`, each sent at its scheduled
/// time; latency is measured from the schedule, so a slow broker cannot hide
/// behind a slowed-down sender. Returns (p50, p99, p99.9) in ms.
fn latency_run(bootstrap: &str, topic: &str, rate: f64, secs: f64) -> (f64, f64, f64) {
    let p = producer(bootstrap, "1", true, "0");
    let origin = p.context().origin;
    let total = (rate * secs) as u64;
    let mut payload = vec![0u8; 1024];
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / rate);
        // Wait without spinning: on 2 cores a busy sender starves the
        // broker and librdkafka's own threads, and the latency measured is
        // then the scheduler's (both brokers showed p99 of 20-30 ms).
        loop {
            let now = origin.elapsed();
            if now >= due {
                break;
            }
            let left = due - now;
            if left >= Duration::from_millis(2) {
                p.poll(Duration::from_millis(1)); // serves delivery reports while waiting
            } else {
                std::thread::sleep(left);
            }
        }
        payload[..8].copy_from_slice(&(due.as_nanos() as u64).to_be_bytes());
        let mut rec = BaseRecord::<(), [u8]>::to(topic)
            .payload(&payload)
            .partition(0);
        while let Err((_, r)) = p.send(rec) {
            rec = r;
            p.poll(Duration::from_millis(1));
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let mut l = p.context().latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |q: f64| {
        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    (pct(0.50), pct(0.99), pct(0.999))
}

/// Plain socket copy over loopback: the ceiling for consume throughput. MB/s.
fn loopback_bandwidth(total: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < total {
            n += s.read(&mut buf).unwrap();
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    reader.join().unwrap();
    total as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Sequential 1 MiB writes into the page cache of a new file, no fsync: what
/// the kernel takes for appends (the mock keeps records in reused heap
/// memory and pays none of this). MB/s.
fn page_cache_bandwidth(total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("pagecache.bench")).unwrap();
    let chunk = vec![5u8; 1 << 20];
    let t0 = Instant::now();
    let mut pos = 0u64;
    while (pos as usize) < total {
        f.write_all_at(&chunk, pos).unwrap();
        pos += chunk.len() as u64;
    }
    total as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// `dd if=/dev/zero bs=1M oflag=direct` into a new file: what the disk
/// takes with the page cache bypassed. MB/s (dd's own run time, spawn
/// included; negligible at this size).
fn direct_bandwidth(total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let of = dir.path().join("direct.bench");
    let t0 = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", of.display()))
        .args(["bs=1M", "oflag=direct"])
        .arg(format!("count={}", (total >> 20).max(1)))
        .stderr(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        // A file system without O_DIRECT (tmpfs): no baseline.
        return f64::NAN;
    }
    (total >> 20).max(1) as f64 * (1 << 20) as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Sequential writes with fdatasync every 1 MiB: the ceiling for
/// fsync-before-ack produce. MB/s.
fn disk_bandwidth(total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("disk.bench")).unwrap();
    let chunk = vec![3u8; 1 << 20];
    let t0 = Instant::now();
    let mut pos = 0u64;
    while (pos as usize) < total {
        f.write_all_at(&chunk, pos).unwrap();
        f.sync_data().unwrap();
        pos += chunk.len() as u64;
    }
    total as f64 / t0.elapsed().as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let o = opts();
    let scale = if o.quick { 20 } else { 1 };
    let rounds = if o.quick { 1 } else { 3 };
    println!(
        "# Weir load benchmark ({} run)\n",
        if o.quick { "quick smoke" } else { "full" }
    );
    if let Some(old) = &o.compare {
        compare(&o, old, scale, rounds);
        return;
    }
    if o.section("footprint") {
        footprint(&o);
    }
    let loopback = loopback_bandwidth((2usize << 30) / scale);
    let disk = disk_bandwidth((256usize << 20) / scale);
    let direct = direct_bandwidth((512usize << 20) / scale);
    println!("loopback TCP copy: {loopback:.0} MB/s; sequential write + fdatasync per MiB: {disk:.0} MB/s; dd bs=1M oflag=direct: {direct:.0} MB/s\n");
    // Warm-up: the first gigabyte written on a fresh VM pays for first-touch
    // page cache allocation; do it before anything is measured.
    {
        let w = Weir::start(&o.weir, false);
        create_topic(&w.addr, "warmup", 1);
        produce_run(&w.addr, "warmup", 1, 1024, 1_000_000 / scale as u64, "1");
    }
    let mock = MockCluster::new(1).expect("mock cluster");
    if o.section("produce") {
        produce_table(&o, &mock, scale, rounds, disk, direct);
    }
    if o.section("sustained") {
        sustained_table(&o, &mock, scale);
    }
    if o.section("pressure") {
        pressure_table(&o, scale);
    }
    if o.section("scrape") {
        scrape_table(&o, scale, rounds);
    }
    if o.section("recompress") {
        recompression_table(&o, scale, rounds);
    }
    if o.section("consume") {
        let count = 1_000_000 / scale as u64;
        let (mut rates, mut ceilings) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let w = Weir::start(&o.weir, false);
            create_topic(&w.addr, "c", 1);
            produce_run(&w.addr, "c", 1, 1024, count, "1");
            // The same batches served from memory by a do-nothing responder.
            let ceiling = ceiling::serve(&w.data_dir().join("c-0"), "c");
            let weir_run = || {
                let cpu0 = w.cpu_seconds();
                let rate = consume_run(&w.addr, "c", 1, count);
                let cpu = w.cpu_seconds() - cpu0;
                (rate, cpu / (count as f64 * 1024.0 / 1e9))
            };
            let ((rate, cpu), ceil) = if r % 2 == 0 {
                let a = weir_run();
                (a, consume_run(&ceiling, "c", 1, count))
            } else {
                let c = consume_run(&ceiling, "c", 1, count);
                (weir_run(), c)
            };
            println!("consume run: weir {rate:.0} MB/s (broker {cpu:.2} CPU-s/GB), in-memory responder {ceil:.0} MB/s");
            rates.push(rate);
            ceilings.push(ceil);
        }
        let (c, ceil) = (median(rates), median(ceilings));
        println!(
            "consume 1 KiB from offset 0 (all but the last 16 MiB read from disk): {c:.0} MB/s = {:.2}x loopback TCP, {:.2}x the in-memory responder ({ceil:.0} MB/s = {:.2}x loopback)\n",
            c / loopback,
            c / ceil,
            ceil / loopback
        );
    }
    if o.section("latency") {
        latency_table(&o, &mock);
    }
}

/// Start-up time and idle RSS.
fn footprint(o: &Opts) {
    let mut starts = Vec::new();
    let mut idle = 0;
    for _ in 0..5 {
        let w = Weir::start(&o.weir, false);
        starts.push(w.started_in.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        idle = w.rss_kib();
    }
    println!("start-up to accepting connections: {:.1} ms (median of 5, process spawn included); idle RSS {:.1} MiB\n", median(starts), idle as f64 / 1024.0);
}

/// Produce throughput, Weir vs mock, per scenario.
fn produce_table(
    o: &Opts,
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    scale: usize,
    rounds: usize,
    disk: f64,
    direct: f64,
) {
    let page_cache = page_cache_bandwidth((1usize << 30) / scale);
    println!("page cache write (1 MiB pwrites to a new file, no fsync): {page_cache:.0} MB/s\n");
    println!("| scenario | weir MB/s | mock MB/s | ratio |");
    println!("|---|---|---|---|");
    let scenarios: &[(&str, usize, i32, &str, bool)] = &[
        ("produce 1 KiB, 1 partition, acks=1", 1024, 1, "1", false),
        ("produce 100 B, 1 partition, acks=1", 100, 1, "1", false),
        ("produce 1 KiB, 8 partitions, acks=1", 1024, 8, "1", false),
        ("produce 100 B, 8 partitions, acks=1", 100, 8, "1", false),
        (
            "produce 1 KiB, 1 partition, acks=all",
            1024,
            1,
            "all",
            false,
        ),
        (
            "produce 1 KiB, 8 partitions, acks=all",
            1024,
            8,
            "all",
            false,
        ),
        (
            "produce 1 KiB, 1 partition, acks=all, fsync before ack",
            1024,
            1,
            "all",
            true,
        ),
        (
            "produce 100 B, 1 partition, acks=all, fsync before ack",
            100,
            1,
            "all",
            true,
        ),
    ];
    let mut cpu_line = String::new();
    let mut fsync_1k = 0.0f64;
    for (i, (name, size, parts, acks, fsync)) in scenarios.iter().enumerate() {
        let count = ((if *size >= 1024 {
            1_000_000u64
        } else {
            4_000_000
        }) / scale as u64)
            .max(1000);
        let (mut w_rates, mut m_rates) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate which side goes first.
            let run_mock = |tag: String, measure: bool| {
                mock.create_topic(&tag, *parts, 1).unwrap();
                // (Consuming from the mock is not comparable: its fetch path
                // returned ~5k records a minute, so only produce is compared.)
                let _ = measure;
                produce_run(&mock.bootstrap_servers(), &tag, *parts, *size, count, acks)
            };
            let run_weir = |tag: String, measure: bool| {
                let w = Weir::start(&o.weir, *fsync);
                create_topic(&w.addr, &tag, *parts);
                let w_conf = w.addr.clone();
                set_partitions(&w_conf, &tag, *parts);
                let cpu0 = w.cpu_seconds();
                let rate = produce_run(&w.addr, &tag, *parts, *size, count, acks);
                let cpu = w.cpu_seconds() - cpu0;
                let gb = (count * *size as u64) as f64 / 1e9;
                let mut extra = String::new();
                if measure {
                    extra = format!(
                        "broker CPU for produce 1 KiB acks=1: {:.2} CPU-s/GB; peak RSS {:.1} MiB",
                        cpu / gb,
                        w.peak_rss_kib() as f64 / 1024.0
                    );
                }
                (rate, extra)
            };
            let tag = format!("s{i}r{r}");
            if r % 2 == 0 {
                m_rates.push(run_mock(format!("{tag}m"), i == 0 && r == 0));
                let (rate, extra) = run_weir(format!("{tag}w"), i == 0 && r == 0);
                w_rates.push(rate);
                if !extra.is_empty() {
                    cpu_line = extra;
                }
            } else {
                let (rate, _) = run_weir(format!("{tag}w"), false);
                w_rates.push(rate);
                m_rates.push(run_mock(format!("{tag}m"), false));
            }
        }
        let (w, m) = (median(w_rates), median(m_rates));
        if i == 0 {
            cpu_line.push_str(&format!(
                "\nproduce 1 KiB, 1 partition: {w:.0} MB/s = {:.2}x the page cache write rate",
                w / page_cache
            ));
        }
        if i == 6 {
            fsync_1k = w;
        }
        println!("| {name} | {w:.1} | {m:.1} | {:.2}x |", w / m);
    }
    println!("\n{cpu_line}");
    println!("fsync before ack, 1 KiB: {fsync_1k:.1} MB/s = {:.2}x of sequential write + fdatasync per MiB, {:.2}x of dd oflag=direct\n", fsync_1k / disk, fsync_1k / direct);
}

/// The kernel's page cache size (`Cached:` of /proc/meminfo), in MB.
fn page_cache_mb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Cached:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Sustained produce: consecutive runs of 1M x 1 KiB (1 partition,
/// acks=1) into one topic of one long-lived broker, nothing deleted in
/// between, so a write path that leaves every byte in the page cache grows
/// it by the total. Weir and the mock alternate run by run; then the same
/// loop with `log-tail-cache-bytes = -1` (the page cache left to the
/// kernel, as Kafka does), separately, so its page-cache growth does not
/// weigh on Weir's own runs.
fn sustained_table(
    o: &Opts,
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    scale: usize,
) {
    let runs = if o.quick { 2 } else { o.sustained_runs };
    let count = (1_000_000u64 / scale as u64).max(1000);
    let gb = (count * 1024) as f64 / 1e9;
    let total = gb * runs as f64;
    for (label, config) in [
        ("weir", ""),
        (
            "weir, page cache left to the kernel",
            "log-tail-cache-bytes = -1\n",
        ),
    ] {
        let w = Weir::start_with(&o.weir, config);
        let topic = format!("sus{}", config.len());
        create_topic(&w.addr, &topic, 1);
        mock.create_topic(&topic, 1, 1).unwrap();
        let cpu0 = w.cpu_seconds();
        let mut growth = 0.0;
        println!("| run | GB into the broker | {label} MB/s | mock MB/s | ratio |");
        println!("|---|---|---|---|---|");
        let (mut w_all, mut ratios) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let mut weir_run = || {
                let before = page_cache_mb();
                let rate = produce_run(&w.addr, &topic, 1, 1024, count, "1");
                growth += page_cache_mb() - before;
                rate
            };
            let mock_run = || produce_run(&mock.bootstrap_servers(), &topic, 1, 1024, count, "1");
            let (rate, m) = if r % 2 == 0 {
                let m = mock_run();
                (weir_run(), m)
            } else {
                let rate = weir_run();
                (rate, mock_run())
            };
            println!(
                "| {} | {:.1} | {rate:.0} | {m:.0} | {:.2}x |",
                r + 1,
                gb * (r + 1) as f64,
                rate / m
            );
            w_all.push(rate);
            ratios.push(rate / m);
        }
        println!(
            "\n{label}, sustained, {total:.1} GB into one broker: {:.2}x the mock (median of runs, {:.2}-{:.2}x), last/first run {:.2}x; \
page cache growth {growth:.0} MB; broker {:.2} CPU-s/GB\n",
            median(ratios.clone()),
            ratios.iter().cloned().fold(f64::MAX, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
            w_all[runs - 1] / w_all[0],
            (w.cpu_seconds() - cpu0) / total,
        );
    }
}

/// One `GET /metrics`; (bytes, seconds).
fn scrape(http: &str) -> (usize, f64) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "scrape failed");
    (body.len(), t0.elapsed().as_secs_f64())
}

/// The cost of `/metrics`: produce 100 B records (request-heavy: the
/// per-request counters are on this path) with and without a scraper
/// hitting `/metrics` ten times a second (Prometheus' default is every
/// 15 s), alternating, on one broker with 50 topics and a committed group.
fn scrape_table(o: &Opts, scale: usize, rounds: usize) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let w = Weir::start_with(&o.weir, "http-listen = \"127.0.0.1:0\"\n");
    let http = w.http.clone().expect("HTTP listener");
    for t in 0..50 {
        create_topic(&w.addr, &format!("other-{t}"), 1);
    }
    let count = (2_000_000u64 / scale as u64).max(1000);
    let (mut plain, mut scraped, mut sizes, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds.max(2) {
        for with in [r % 2 == 0, r % 2 != 0] {
            let topic = format!("scrape-{r}-{with}");
            create_topic(&w.addr, &topic, 1);
            let stop = Arc::new(AtomicBool::new(false));
            let scraper = with.then(|| {
                let (http, stop) = (http.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        samples.push(scrape(&http));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    samples
                })
            });
            let rate = produce_run(&w.addr, &topic, 1, 100, count, "1");
            stop.store(true, Ordering::Relaxed);
            if let Some(s) = scraper {
                let samples = s.join().unwrap();
                sizes.extend(samples.iter().map(|s| s.0 as f64));
                times.extend(samples.iter().map(|s| s.1 * 1000.0));
                scraped.push(rate);
            } else {
                plain.push(rate);
            }
        }
    }
    let (p, s) = (median(plain), median(scraped));
    println!(
        "produce 100 B with /metrics scraped 10x/s: {s:.1} MB/s vs {p:.1} MB/s unscraped = {:.2}x; \
one scrape: {:.0} KB in {:.2} ms (medians)\n",
        s / p,
        median(sizes) / 1000.0,
        median(times)
    );
}

/// Page-cache pressure: a tail consumer follows a topic produced at a fixed
/// rate; in the second half, another consumer replays a large topic (written
/// first, so the tail window has long left it) from offset 0, starting over
/// when it reaches the end. The tail consumer's rate and end-to-end latency
/// in each half are the figures; the replay's rate is printed too.
fn pressure_table(o: &Opts, scale: usize) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let (rate, secs) = if o.quick {
        (5_000.0, 1.0)
    } else {
        (50_000.0, 10.0)
    };
    let history = (2_000_000u64 / scale as u64).max(1000);
    let w = Weir::start_with(&o.weir, "");
    create_topic(&w.addr, "history", 1);
    create_topic(&w.addr, "live", 1);
    produce_run(&w.addr, "history", 1, 1024, history, "1");
    let origin = Instant::now();
    // The producer starts a second in, once the tail consumer is connected
    // and waiting at the (empty) topic's end.
    let lead = 1.0;
    let stop = Arc::new(AtomicBool::new(false));
    // Tail consumer: (receive time, latency) of every record, in ns.
    let tail = {
        let (addr, stop) = (w.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", "tail")
                .set("fetch.wait.max.ms", "10")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("live", 0, rdkafka::Offset::Beginning)
                .unwrap();
            c.assign(&tpl).unwrap();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    let now = origin.elapsed().as_nanos() as u64;
                    if let Some(p) = m.payload() {
                        let sent = u64::from_be_bytes(p[..8].try_into().unwrap());
                        seen.push((now, now.saturating_sub(sent)));
                    }
                }
            }
            seen
        })
    };
    // Replaying consumer, in the second half: bytes read.
    let replay = {
        let (addr, stop) = (w.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(lead + secs));
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", "replay")
                .set("enable.partition.eof", "true")
                .create()
                .unwrap();
            let assign = || {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset("history", 0, rdkafka::Offset::Beginning)
                    .unwrap();
                c.assign(&tpl).unwrap();
            };
            assign();
            let (t0, mut bytes) = (Instant::now(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => bytes += m.payload_len() as u64,
                    Some(Err(KafkaError::PartitionEOF(_))) => assign(),
                    _ => {}
                }
            }
            bytes as f64 / t0.elapsed().as_secs_f64() / 1e6
        })
    };
    // Fixed-rate producer on `live` for both halves.
    let p = producer(&w.addr, "1", false, "5");
    let mut payload = vec![0u8; 1024];
    let total = (rate * 2.0 * secs) as u64;
    for i in 0..total {
        let due = Duration::from_secs_f64(lead + i as f64 / rate);
        while origin.elapsed() < due {
            p.poll(Duration::from_millis(1));
        }
        payload[..8].copy_from_slice(&(origin.elapsed().as_nanos() as u64).to_be_bytes());
        let mut rec = BaseRecord::<(), [u8]>::to("live")
            .payload(&payload)
            .partition(0);
        while let Err((_, r)) = p.send(rec) {
            rec = r;
            p.poll(Duration::from_millis(1));
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let seen = tail.join().unwrap();
    let replay_rate = replay.join().unwrap();
    // The first half second of each half is left out (start-up, the
    // replay's first fetches).
    let half = |from: f64, to: f64| {
        let (a, b) = ((from * 1e9) as u64, (to * 1e9) as u64);
        let mut lat: Vec<u64> = seen
            .iter()
            .filter(|(t, _)| *t >= a && *t < b)
            .map(|(_, l)| *l)
            .collect();
        let n = lat.len() as f64;
        lat.sort_unstable();
        let pct = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1e6
        };
        (n * 1024.0 / (to - from) / 1e6, pct(0.5), pct(0.99))
    };
    let (ra, la50, la99) = half(lead + 0.5, lead + secs);
    let (rb, lb50, lb99) = half(lead + secs + 0.5, lead + 2.0 * secs);
    println!("| tail consumer, {:.0} MB/s offered (1 KiB, acks=1) | MB/s received | p50 / p99 end-to-end ms |", rate * 1024.0 / 1e6);
    println!("|---|---|---|");
    println!("| alone | {ra:.1} | {la50:.2} / {la99:.2} |");
    println!("| while another consumer replays {:.1} GB from offset 0 ({replay_rate:.0} MB/s) | {rb:.1} | {lb50:.2} / {lb99:.2} |", history as f64 * 1024.0 / 1e9);
    println!(
        "\ntail consumer while replaying vs alone: {:.2}x the rate\n",
        rb / ra
    );
}

/// Latency at 10%, 50% and 80% of the maximum rate of the latency run's own
/// producer settings (linger.ms=0, acks=1), measured on Weir; the same
/// offered rates also run against the mock, whose figures are the client's
/// own share of the latency.
fn latency_table(o: &Opts, mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>) {
    let secs = if o.quick { 1.0 } else { 5.0 };
    let count = if o.quick { 20_000 } else { 400_000 };
    // The three rates write ~7x the maximum per second of data: warm that
    // much page cache first, or the VM's first-touch cost of fresh pages
    // (not the broker) decides the tail (in one pair of runs: p50 of 280 ms
    // at 50% without it, 0.4 ms with it).
    {
        let w = Weir::start(&o.weir, false);
        create_topic(&w.addr, "warm", 1);
        let n = if o.quick { 20_000 } else { 4_000_000 };
        produce_run(&w.addr, "warm", 1, 1024, n, "1");
    }
    let w = Weir::start(&o.weir, false);
    create_topic(&w.addr, "lat", 1);
    let max = {
        let p = producer(&w.addr, "1", false, "0");
        let payload = vec![0u8; 1024];
        let t0 = Instant::now();
        for _ in 0..count {
            let mut rec = BaseRecord::<(), [u8]>::to("lat")
                .payload(&payload)
                .partition(0);
            while let Err((_, r)) = p.send(rec) {
                rec = r;
                p.poll(Duration::from_millis(1));
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
        count as f64 / t0.elapsed().as_secs_f64()
    };
    mock.create_topic("lat", 1, 1).unwrap();
    println!("max rate with linger.ms=0, acks=1, 1 KiB: {max:.0} msg/s\n");
    println!("| offered rate (1 KiB, acks=1, linger.ms=0) | weir p50 / p99 / p99.9 ms | weir CPU (cores) | mock p50 / p99 / p99.9 ms |");
    println!("|---|---|---|---|");
    for frac in [0.1, 0.5, 0.8] {
        let rate = (max * frac).max(100.0);
        let cpu0 = w.cpu_seconds();
        let (a50, a99, a999) = latency_run(&w.addr, "lat", rate, secs);
        let busy = (w.cpu_seconds() - cpu0) / secs;
        let (m50, m99, m999) = latency_run(&mock.bootstrap_servers(), "lat", rate, secs);
        println!(
            "| {:.0}% = {:.0} msg/s | {a50:.2} / {a99:.2} / {a999:.2} | {busy:.2} | {m50:.2} / {m99:.2} / {m999:.2} |",
            frac * 100.0,
            rate
        );
    }
}

/// A/B: produce 1 KiB and 100 B (1 partition, acks=1) and consume 1 KiB
/// against the new binary (`--weir`) and an old one, alternating which goes
/// first, medians of `rounds`; prints new/old ratios.
fn compare(o: &Opts, old: &str, scale: usize, rounds: usize) {
    let count_1k = 1_000_000 / scale as u64;
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("produce 1 KiB", vec![], vec![]),
        ("produce 100 B", vec![], vec![]),
        ("consume 1 KiB", vec![], vec![]),
        ("produce 1 KiB, acks=all, fsync before ack", vec![], vec![]),
    ];
    // Warm the page cache allocator first, as in the full run.
    {
        let w = Weir::start(old, false);
        produce_run(&w.addr, "warmup", 1, 1024, count_1k, "1");
    }
    for r in 0..rounds.max(3) {
        let order: [(&str, bool); 2] = if r % 2 == 0 {
            [(o.weir.as_str(), true), (old, false)]
        } else {
            [(old, false), (o.weir.as_str(), true)]
        };
        for (bin, is_new) in order {
            let w = Weir::start(bin, false);
            create_topic(&w.addr, "ab", 1);
            let p1k = produce_run(&w.addr, "ab", 1, 1024, count_1k, "1");
            let c1k = consume_run(&w.addr, "ab", 1, count_1k);
            let p100 = produce_run(&w.addr, "ab100", 1, 100, count_1k * 4, "1");
            drop(w);
            let w = Weir::start(bin, true);
            create_topic(&w.addr, "abf", 1);
            let fsync = produce_run(&w.addr, "abf", 1, 1024, count_1k / 2, "all");
            for (row, v) in rows.iter_mut().zip([p1k, p100, c1k, fsync]) {
                if is_new {
                    row.1.push(v)
                } else {
                    row.2.push(v)
                }
            }
        }
    }
    println!("| A/B | new MB/s | old MB/s | new/old |");
    println!("|---|---|---|---|");
    for (name, new, old) in rows {
        let (n, d) = (median(new), median(old));
        println!("| {name} | {n:.0} | {d:.0} | {:.2}x |", n / d);
    }
}

/// Weir auto-creates with the default partition count (1); grow the topic
/// to `parts` through the admin API when more are wanted.
/// The cost of a topic-level `compression.type`: the producer sends
/// uncompressed 1 KiB records (linger 5 ms batches) and the broker
/// recompresses every batch on append, against the same topic with
/// `producer` (stored as sent); alternating, on the same broker binary.
fn recompression_table(o: &Opts, scale: usize, rounds: usize) {
    let count = (1_000_000u64 / scale as u64).max(1000);
    println!("| topic compression.type (producer sends none, 1 KiB, acks=1) | weir MB/s | vs `producer` |");
    println!("|---|---|---|");
    let run = |codec: &str, tag: String| {
        let w = Weir::start(&o.weir, false);
        create_topic(&w.addr, &tag, 1);
        if codec != "producer" {
            set_topic_config(&w.addr, &tag, "compression.type", codec);
        }
        produce_run(&w.addr, &tag, 1, 1024, count, "1")
    };
    let mut base = Vec::new();
    let mut rows: Vec<(&str, Vec<f64>)> = ["lz4", "zstd", "gzip"]
        .iter()
        .map(|c| (*c, Vec::new()))
        .collect();
    for r in 0..rounds {
        base.push(run("producer", format!("rc{r}p")));
        for (codec, rates) in rows.iter_mut() {
            rates.push(run(codec, format!("rc{r}{codec}")));
        }
    }
    let base = median(base);
    println!("| producer (as sent) | {base:.1} | 1.00x |");
    for (codec, rates) in rows {
        let m = median(rates);
        println!("| {codec} | {m:.1} | {:.2}x |", m / base);
    }
    println!();
}

/// An admin client and a runtime to drive its futures.
fn admin(
    bootstrap: &str,
) -> (
    rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    tokio::runtime::Runtime,
) {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (admin, rt)
}

fn set_topic_config(bootstrap: &str, topic: &str, key: &str, value: &str) {
    use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
    let (admin, rt) = admin(bootstrap);
    let results = rt
        .block_on(admin.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value)],
            &AdminOptions::new(),
        ))
        .unwrap();
    for r in results {
        r.expect("topic config set");
    }
}

fn set_partitions(bootstrap: &str, topic: &str, parts: i32) {
    if parts <= 1 {
        return;
    }
    use rdkafka::admin::{AdminOptions, NewPartitions};
    let (admin, rt) = admin(bootstrap);
    rt.block_on(admin.create_partitions(
        &[NewPartitions::new(topic, parts as usize)],
        &AdminOptions::new(),
    ))
    .unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(1))
            .unwrap();
        if md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0)
            == parts as usize
        {
            break;
        }
    }
}
