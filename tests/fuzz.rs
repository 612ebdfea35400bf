//! A mutation fuzzer for the request path: frame -> header -> decode ->
//! handler -> response, on the stable toolchain.
//!
//! Seeds are real client requests (`tests/fuzz-corpus/`, captured from
//! kafka-python, confluent_kafka and kafkajs by `compat/capture_corpus.py`).
//! Each execution mutates one or two of them and hands the frame to
//! [`weir::protocol::handle_frame`] against an in-process broker with a
//! temporary data directory. It fails if any input
//!
//! - panics (the input is saved to `target/fuzz-crashes/`),
//! - makes a handler that never waits run for more than a second,
//! - produces a response that is not a well-formed frame decodable at the
//!   request's version, with the request's correlation id,
//! - makes the broker allocate more than 32 MiB at once (decoders must
//!   bound allocations by the frame, not by counts the frame claims).
//!
//! `WEIR_FUZZ_SECONDS` (default 5; `make fuzz` runs 60) bounds the run and
//! `WEIR_FUZZ_SEED` replays one (the seed is printed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use weir::protocol::{self, Handled};
use weir::security::sasl::AuthState;
use weir::security::{Listener, SecurityProtocol};
use weir::{Broker, Config};

/// Tracks the largest single allocation.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: allocated by `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MAX_ALLOCATION: usize = 32 << 20;

/// xorshift64*: small, deterministic, seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const INTERESTING: &[i64] = &[
    0,
    1,
    -1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    -0x8000,
    0xffff,
    0x7fff_ffff,
    -0x8000_0000,
    1 << 20,
    1 << 30,
    i64::MAX,
    i64::MIN,
];

/// One to four stacked mutations of `seed` (sometimes spliced with `other`).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    // The header's first 8 bytes (key, version, correlation id) are kept
    // most of the time so that decoders, not the dispatcher, see the input.
    let protect = if rng.chance(90) { 8 } else { 0 };
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        if len <= protect {
            b.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8));
            continue;
        }
        let at = protect + rng.below(len - protect);
        match rng.below(11) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let bytes = v.to_be_bytes();
                for (i, byte) in bytes[8 - width..].iter().enumerate() {
                    if at + i < b.len() {
                        b[at + i] = *byte;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(16);
                let insert: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, insert);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(len);
                b.drain(at..end);
            }
            5 => b.truncate(at),
            6 => {
                let from = protect + rng.below(len - protect);
                let n = (1 + rng.below(64)).min(len - from);
                let chunk = b[from..from + n].to_vec();
                b.splice(at..at, chunk);
            }
            7 if other.len() > protect => {
                let cut = protect + rng.below(other.len() - protect);
                b.truncate(at);
                b.extend_from_slice(&other[cut..]);
            }
            8 => {
                // The longest varint, for compact lengths and counts.
                b.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            9 if b.len() >= 4 => {
                let version = rng.below(20) as i16;
                b[2..4].copy_from_slice(&version.to_be_bytes());
            }
            _ if b.len() >= 2 => {
                let key = rng.below(70) as i16;
                b[0..2].copy_from_slice(&key.to_be_bytes());
            }
            _ => b[at] = rng.next() as u8,
        }
    }
    b
}

/// APIs whose handlers may legitimately wait (long polls, rebalances).
fn may_wait(key: i16) -> bool {
    matches!(key, 1 | 11 | 14 | 78)
}

/// The harness bounds the work one request may ask for: a mutated
/// CreateTopics or CreatePartitions could otherwise create up to 100,000
/// partitions (files) per execution.
fn too_much_work(frame: &Bytes) -> bool {
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return false;
    };
    let mut body = frame.clone();
    if RequestHeader::decode(&mut body, api.request_header_version(version)).is_err() {
        return false;
    }
    match api {
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut body, version)
            .map(|r| {
                r.topics
                    .iter()
                    .map(|t| t.num_partitions.max(1) as i64)
                    .sum::<i64>()
                    > 64
            })
            .unwrap_or(false),
        ApiKey::CreatePartitions => CreatePartitionsRequest::decode(&mut body, version)
            .map(|r| r.topics.iter().any(|t| t.count > 64))
            .unwrap_or(false),
        _ => false,
    }
}

/// A response must be one frame with the request's correlation id whose
/// body decodes at the request's version.
fn check_response(key: i16, version: i16, correlation: i32, out: &[u8]) -> Result<(), String> {
    if out.len() < 8 {
        return Err(format!("response of {} bytes", out.len()));
    }
    let size = i32::from_be_bytes(out[0..4].try_into().unwrap());
    if size as usize != out.len() - 4 {
        return Err(format!("size prefix {size} for {} bytes", out.len() - 4));
    }
    let api = ApiKey::try_from(key).map_err(|_| "answered an unknown key".to_string())?;
    let mut body = Bytes::copy_from_slice(&out[4..]);
    // ApiVersions above the served range is answered in v0 by design.
    let version = if api == ApiKey::ApiVersions && version > 4 {
        0
    } else {
        version
    };
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(|e| format!("response header: {e}"))?;
    if header.correlation_id != correlation {
        return Err(format!(
            "correlation id {} for request {correlation}",
            header.correlation_id
        ));
    }
    macro_rules! decodes {
        ($($k:ident => $t:ty),* $(,)?) => {
            match api {
                $(ApiKey::$k => <$t>::decode(&mut body, version).map(|_| ()),)*
                _ => Ok(()),
            }
        };
    }
    decodes!(
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        Metadata => MetadataResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        SyncGroup => SyncGroupResponse,
        DescribeGroups => DescribeGroupsResponse,
        ListGroups => ListGroupsResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        DeleteRecords => DeleteRecordsResponse,
        InitProducerId => InitProducerIdResponse,
        DescribeConfigs => DescribeConfigsResponse,
        CreatePartitions => CreatePartitionsResponse,
        DeleteGroups => DeleteGroupsResponse,
    )
    .map_err(|e| format!("response body: {e}"))
}

fn load_corpus() -> Vec<Bytes> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| Bytes::from(std::fs::read(p).unwrap()))
        .collect()
}

#[derive(Default)]
struct Stats {
    executions: u64,
    answered: u64,
    closed: u64,
    waits_abandoned: u64,
    skipped: u64,
    failures: Vec<String>,
    by_api: BTreeMap<i16, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_request_path() {
    let seconds: u64 = std::env::var("WEIR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("WEIR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let corpus = load_corpus();
    assert!(corpus.len() >= 50, "seed corpus missing");
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_string_lossy().into(),
        // Keep what executions append small.
        log_segment_bytes: 1 << 20,
        log_retention_bytes: 4 << 20,
        group_min_session_timeout_ms: 10,
        // Every request goes through the authorizer; ACLs the fuzzer
        // creates then deny some of what follows, which is more paths.
        authorizer: "acl".into(),
        allow_everyone_if_no_acl_found: true,
        ..Config::default()
    };
    let addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
    let broker = Arc::new(Broker::open(Arc::new(config), addr).unwrap());
    let listener = Arc::new(Listener {
        protocol: SecurityProtocol::Plaintext,
        mechanisms: Vec::new(),
        port: addr.port(),
    });
    let conn = Arc::new(protocol::Connection {
        broker: broker.clone(),
        local_addr: addr,
        peer_addr: "127.0.0.1:40000".parse().unwrap(),
        id: 1,
        listener: listener.clone(),
        auth: std::sync::Mutex::new(AuthState::new(&listener, None)),
    });
    let crash_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    LARGEST.store(0, Ordering::Relaxed);
    while Instant::now() < deadline {
        let a = &corpus[rng.below(corpus.len())];
        let b = &corpus[rng.below(corpus.len())];
        let input = Bytes::from(mutate(&mut rng, a, b));
        if input.len() >= 4 && too_much_work(&input) {
            stats.skipped += 1;
            continue;
        }
        stats.executions += 1;
        let key = if input.len() >= 2 {
            i16::from_be_bytes([input[0], input[1]])
        } else {
            -1
        };
        *stats.by_api.entry(key).or_default() += 1;
        let limit = if may_wait(key) {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        let c = conn.clone();
        let frame = input.clone();
        let task = tokio::spawn(async move {
            let mut out = BytesMut::new();
            let handled = tokio::time::timeout(limit, protocol::handle_frame(&c, frame, &mut out))
                .await
                .map(|r| r.map(|h| matches!(h, Handled::Answered(true))));
            (handled, out)
        });
        let mut fail = |what: String| {
            std::fs::create_dir_all(&crash_dir).unwrap();
            let path = crash_dir.join(format!("crash-{seed}-{}.bin", stats.executions));
            std::fs::write(&path, &input).unwrap();
            stats
                .failures
                .push(format!("{what} (input saved to {})", path.display()));
        };
        match task.await {
            Err(e) if e.is_panic() => fail("panic".into()),
            Err(e) => fail(format!("task failed: {e}")),
            Ok((Err(_), _)) if may_wait(key) => stats.waits_abandoned += 1,
            Ok((Err(_), _)) => fail(format!("API {key} ran for more than {limit:?}")),
            Ok((Ok(Err(_)), _)) => stats.closed += 1,
            Ok((Ok(Ok(false)), _)) => stats.answered += 1,
            Ok((Ok(Ok(true)), out)) => {
                stats.answered += 1;
                let version = i16::from_be_bytes([input[2], input[3]]);
                let correlation = i32::from_be_bytes(input[4..8].try_into().unwrap());
                if let Err(e) = check_response(key, version, correlation, &out) {
                    fail(format!("API {key} v{version}: {e}"));
                }
            }
        }
        if stats.executions % 2000 == 0 {
            // What executions appended stays bounded (retention.bytes).
            broker.logs.run_maintenance(weir::log::now_ms(), true).await;
        }
        if stats.failures.len() >= 10 {
            break;
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: seed {seed}, {} executions in {elapsed:.1} s ({:.0}/s) from {} seeds; \
         {} answered, {} closed, {} waits abandoned, {} skipped; largest allocation {} KiB; \
         {} failures",
        stats.executions,
        stats.executions as f64 / elapsed,
        corpus.len(),
        stats.answered,
        stats.closed,
        stats.waits_abandoned,
        stats.skipped,
        largest >> 10,
        stats.failures.len()
    );
    let served: Vec<String> = stats
        .by_api
        .iter()
        .filter(|(k, _)| protocol::find_api(**k).is_some())
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    eprintln!("fuzz: executions by served API key {}", served.join(" "));
    assert!(
        stats.failures.is_empty(),
        "fuzz failures:\n{}",
        stats.failures.join("\n")
    );
    assert!(
        largest <= MAX_ALLOCATION,
        "an input made the broker allocate {largest} bytes at once"
    );
    assert!(stats.answered > 0 && stats.closed > 0);
}
