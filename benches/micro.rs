//! Micro-benchmarks of the hot paths: batch validation (CRC-32C), append to
//! a partition (with segment rolls), index lookup, reading a Fetch range,
//! request decode and response encode. `cargo bench --manifest-path benches/Cargo.toml`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use weir::config::Config;
use weir::log::batch::{encode_uncompressed, validate_produce_batch, PlainRecord};
use weir::log::index::{Load, OffsetIndex};
use weir::log::partition::Isolation;
use weir::log::topic_config::TopicConfig;
use weir::log::Partition;

/// An uncompressed batch of `count` records of `size` bytes each.
fn batch(count: usize, size: usize) -> Bytes {
    let value = Bytes::from(vec![0x5au8; size]);
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| PlainRecord {
            key: None,
            value: Some(value.clone()),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    encode_uncompressed(&records, None)
}

fn topic_config(pairs: &[(&str, &str)]) -> Arc<TopicConfig> {
    let o: IndexMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(TopicConfig::resolve(&Config::default(), &o))
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate_batch");
    for (name, b) in [("1KiB", batch(1, 1000)), ("16KiB", batch(16, 1000))] {
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| validate_produce_batch(black_box(&b), 1 << 20).unwrap())
        });
    }
    g.finish();
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("append");
    for (name, b) in [("1KiB", batch(1, 1000)), ("16KiB", batch(16, 1000))] {
        let dir = tempfile::tempdir().unwrap();
        // Small segments so rolls are part of what is measured.
        let p = Partition::create(
            dir.path(),
            "bench",
            0,
            topic_config(&[("segment.bytes", "16777216")]),
        )
        .unwrap();
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| rt.block_on(p.append(black_box(&b), 0)).unwrap())
        });
    }
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0, 10 << 20, Load::Empty).unwrap();
    for i in 0..1_000_000i64 {
        idx.append(i * 4, (i * 4096) as u32);
    }
    let mut x = 12345u64;
    c.bench_function("offset_index_lookup_1M_entries", |bench| {
        bench.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            black_box(idx.lookup((x % 4_000_000) as i64))
        })
    });
}

fn fetch_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::create(dir.path(), "bench", 0, topic_config(&[])).unwrap();
    let b = batch(16, 1000);
    for _ in 0..4096 {
        rt.block_on(p.append(&b, 0)).unwrap();
    }
    let end = p.offsets().log_end;
    let mut g = c.benchmark_group("fetch_read");
    g.throughput(Throughput::Bytes(1 << 20));
    let mut x = 1u64;
    g.bench_function("1MiB_from_64MiB_log", |bench| {
        bench.iter(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let offset = (x % (end as u64 - 2000)) as i64;
            black_box(
                p.read(offset, 1 << 20, true, Isolation::ReadUncommitted)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let b = batch(16, 1000);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(b.clone())),
            ])]);
    let mut encoded = BytesMut::new();
    req.encode(&mut encoded, 9).unwrap();
    let encoded = encoded.freeze();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("decode_produce_v9_16KiB", |bench| {
        bench.iter_batched(
            || encoded.clone(),
            |mut buf| ProduceRequest::decode(&mut buf, 9).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let records = Bytes::from(vec![7u8; 1 << 20]);
    let resp = FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(vec![
                fetch_response::PartitionData::default().with_records(Some(records))
            ]),
    ]);
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("encode_fetch_v12_1MiB", |bench| {
        bench.iter(|| {
            let mut out = BytesMut::with_capacity((1 << 20) + 256);
            resp.encode(&mut out, 12).unwrap();
            black_box(out)
        })
    });
    g.finish();
}

/// One cleaning pass over a compacted log of 16 MiB of dirty data (1 KiB
/// values, 16 records per batch, 1000 distinct keys, so about 94% of the
/// records are superseded). Throughput is dirty bytes cleaned per second:
/// the offset map over the dirty segments plus the rewrite.
fn cleaner(c: &mut Criterion) {
    use weir::log::cleaner::{clean_partition, CleanerConfig};
    use weir::log::compression::Codec;
    use weir::log::records::{encode, BatchSpec, Record};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let value = Bytes::from(vec![0x5au8; 1000]);
    let keyed = |n: usize| -> Vec<u8> {
        let records: Vec<Record> = (0..16)
            .map(|i| Record {
                offset: i,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(format!("key-{}", (n * 16 + i as usize) % 1000))),
                value: Some(value.clone()),
                headers: vec![],
            })
            .collect();
        encode(&BatchSpec::plain(Codec::None), &records).unwrap()
    };
    let batches: Vec<Vec<u8>> = (0..1000).map(keyed).collect();
    let dirty: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let cfg = CleanerConfig {
        dedupe_buffer_bytes: 128 << 20,
        io_max_bytes_per_second: f64::INFINITY,
    };
    let mut g = c.benchmark_group("cleaner");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(dirty));
    g.bench_function("pass_16MiB_dirty_1000_keys", |bench| {
        bench.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let p = Partition::create(
                    dir.path(),
                    "bench",
                    0,
                    topic_config(&[("cleanup.policy", "compact"), ("segment.bytes", "1048576")]),
                )
                .unwrap();
                rt.block_on(async {
                    for b in &batches {
                        p.append(b, 0).await.unwrap();
                    }
                });
                (dir, p)
            },
            |(dir, p)| {
                let stats = clean_partition(&p, None, &cfg, 0).unwrap().expect("a pass");
                black_box((stats, dir))
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    validate,
    append,
    index_lookup,
    fetch_read,
    codec,
    cleaner
);
criterion_main!(benches);
