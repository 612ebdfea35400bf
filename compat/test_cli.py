"""The `weir` command-line tools and real clients agree: keys, headers,
offsets, compression, group offsets and transactions, in both directions."""
import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer

from conftest import WEIR


def weir(broker, *args, stdin=b"", check=True):
    p = subprocess.run([WEIR, *args, "-b", broker.bootstrap], input=stdin,
                       capture_output=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def consume_json(broker, topic, n, *extra):
    out = weir(broker, "consume", topic, "--from-beginning", "--max-messages", str(n),
               "--format", "json", *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def confluent_read(broker, topic, n, group="reader"):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    return got


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_cli_produce_is_read_by_confluent_and_kafka_python(broker, topic_name, codec):
    weir(broker, "topic", "create", topic_name, "-p", "3")
    lines = b"".join(b"k%d=v%d\n" % (i, i) for i in range(30))
    weir(broker, "produce", topic_name, "--key-separator", "=", "--header", "origin=cli",
         "--compression", codec, stdin=lines)
    got = confluent_read(broker, topic_name, 30)
    assert sorted((m.key(), m.value()) for m in got) == sorted(
        (b"k%d" % i, b"v%d" % i) for i in range(30))
    assert all(m.headers() == [("origin", b"cli")] for m in got)
    # Keyed records land where Kafka's Java/kafka-python partitioner puts them.
    cli = consume_json(broker, topic_name, 30)
    by_key = {r["key"]: r["partition"] for r in cli}
    assert {m.key().decode(): m.partition() for m in got} == by_key
    kp = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                       consumer_timeout_ms=5000)
    assert sorted(r.value for r in kp) == sorted(b"v%d" % i for i in range(30))
    kp.close()


def test_confluent_produce_is_printed_by_the_cli(broker, topic_name):
    weir(broker, "topic", "create", topic_name, "-p", "2")
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "linger.ms": 5})
    for i in range(10):
        p.produce(topic_name, key=b"key-%d" % i, value=b"value-%d" % i, partition=i % 2,
                  headers=[("a", b"1"), ("a", b"2"), ("n", None)])
    assert p.flush(10) == 0
    records = consume_json(broker, topic_name, 10)
    assert sorted((r["partition"], r["offset"], r["key"], r["value"]) for r in records) == sorted(
        (i % 2, i // 2, "key-%d" % i, "value-%d" % i) for i in range(10))
    assert records[0]["headers"] == [{"key": "a", "value": "1"}, {"key": "a", "value": "2"},
                                     {"key": "n", "value": None}]
    text = weir(broker, "consume", topic_name, "--partition", "1", "--offset", "2",
                "--max-messages", "1", "--print-key").stdout
    assert text == b"key-5\tvalue-5\n"


def test_group_offsets_agree_and_reset_moves_a_real_consumer(broker, topic_name):
    weir(broker, "topic", "create", topic_name, "-p", "1")
    weir(broker, "produce", topic_name, stdin=b"".join(b"m%d\n" % i for i in range(20)))
    group = f"g-{topic_name}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic_name])
    got = []
    while len(got) < 8:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m)
    c.commit(offsets=[TopicPartition(topic_name, 0, 8)], asynchronous=False)
    c.close()
    d = json.loads(weir(broker, "group", "describe", group, "--format", "json").stdout)
    assert d["offsets"] == [{"topic": topic_name, "partition": 0, "committed": 8, "end": 20,
                             "lag": 12, "member_id": None}]
    weir(broker, "group", "reset-offsets", group, "--topic", topic_name, "--to-offset", "15",
         "--execute")
    resumed = confluent_read(broker, topic_name, 1, group=group)
    assert resumed[0].offset() == 15 and resumed[0].value() == b"m15"


def test_read_committed_hides_aborted_transactions(broker, topic_name):
    weir(broker, "topic", "create", topic_name, "-p", "1")
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tx-{topic_name}"})
    p.init_transactions(10)
    for label, commit in [(b"c1", True), (b"a1", False), (b"c2", True)]:
        p.begin_transaction()
        for i in range(3):
            p.produce(topic_name, value=b"%s-%d" % (label, i), partition=0)
        p.flush(10)  # abort_transaction would drop unsent records
        if commit:
            p.commit_transaction(10)
        else:
            p.abort_transaction(10)
    committed = weir(broker, "consume", topic_name, "--from-beginning", "--isolation",
                     "read_committed", "--timeout-ms", "1500").stdout.split()
    assert committed == [b"c1-0", b"c1-1", b"c1-2", b"c2-0", b"c2-1", b"c2-2"]
    everything = weir(broker, "consume", topic_name, "--from-beginning",
                      "--timeout-ms", "1500").stdout.split()
    assert len(everything) == 9
