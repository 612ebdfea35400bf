"""Log compaction (cleanup.policy=compact) with real clients.

Topics are created with small segments, a short segment.ms and a low dirty
ratio so the cleaner (woken by segment rolls) compacts within seconds.
"""
import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer

from conftest import make_broker, wait_for

FAST = {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "2000"}


@pytest.fixture(scope="module")
def cbroker(tmp_path_factory):
    # Internal logs in small segments, so the group log compacts too.
    b = make_broker(tmp_path_factory, "offsets-topic-segment-bytes = 16384\n")
    yield b
    b.close()


def create(broker, name, configs, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(name, partitions, 1, config=configs)]).values():
        f.result(10)


def read_all(broker, topic):
    """(offset, key, value) of every record, from the start to the end."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"r-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.partition.eof": True,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + 20
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def produce(broker, topic, records, **conf):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})
    for k, v in records:
        p.produce(topic, key=k, value=v)
    assert p.flush(20) == 0


def latest(records):
    """Offset and value of the last record of every key."""
    out = {}
    for offset, k, v in records:
        out[k] = (offset, v)
    return out


def roll_and_wait(broker, topic, tag, keyed):
    """Filler records with fresh keys roll the segments holding the history
    (and are new dirty data); waits until the non-filler records number
    `keyed`, and returns them."""
    produce(broker, topic, [(b"filler-%s%d" % (tag, i), b"x" * 200) for i in range(60)])
    time.sleep(0.3)
    produce(broker, topic, [(b"filler-%s-last" % tag, b"y")])

    def settled():
        got = [r for r in read_all(broker, topic) if not r[1].startswith(b"filler")]
        return got if len(got) == keyed else None

    return wait_for(settled, timeout=20, interval=0.5)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_keyed_topic_compacts_to_latest_values_at_original_offsets(cbroker, topic_name, codec):
    create(cbroker, topic_name, FAST)
    written = []
    # 20 versions of 50 keys; keys 0-9 end with a tombstone.
    for version in range(20):
        batch = [(b"k%d" % k, None if (version == 19 and k < 10) else b"v%d-%d" % (version, k) * 8)
                 for k in range(50)]
        produce(cbroker, topic_name, batch, **{"compression.type": codec})
        written.extend(batch)
    # One producer, one partition: record i got offset i. The cleaner may
    # already have run while they were written (segments roll at 4 KiB).
    want = latest([(i, k, v) for i, (k, v) in enumerate(written)])
    got = roll_and_wait(cbroker, topic_name, b"a", keyed=50)
    # Exactly the latest record of every key, at its original offset;
    # tombstones are still there within delete.retention.ms.
    assert {k: (o, v) for o, k, v in got} == want
    assert [o for o, _, _ in got] == sorted(o for o, _ in want.values())
    assert sum(1 for _, _, v in got if v is None) == 10

    # After delete.retention.ms, a later pass (new dirty data) drops them.
    time.sleep(2.2)
    got = roll_and_wait(cbroker, topic_name, b"b", keyed=40)
    assert all(v is not None for _, _, v in got)
    assert {k: (o, v) for o, k, v in got} == {k: ov for k, ov in want.items() if ov[1] is not None}


def test_keyless_records_are_refused_on_a_compacted_topic(cbroker, topic_name):
    create(cbroker, topic_name, FAST)
    errors = []
    p = Producer({"bootstrap.servers": cbroker.bootstrap, "linger.ms": 50})
    for i in range(10):
        p.produce(topic_name, key=None if i % 5 == 0 else b"k%d" % i, value=b"v",
                  on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    codes = [e.code() if e else None for e in errors]
    # One batch: the two key-less records get INVALID_RECORD, the others
    # are refused with them (_INVALID_DIFFERENT_RECORD), nothing appended.
    assert codes.count(KafkaError.INVALID_RECORD) == 2, codes
    assert all(c is not None for c in codes), codes
    assert read_all(cbroker, topic_name) == []


def test_consumers_read_through_gaps(cbroker, topic_name):
    create(cbroker, topic_name, FAST)
    produce(cbroker, topic_name, [(b"a", b"%d" % i) for i in range(200)] + [(b"b", b"last")])
    produce(cbroker, topic_name, [(b"f%d" % i, b"x" * 300) for i in range(40)])
    time.sleep(0.3)
    produce(cbroker, topic_name, [(b"end", b"y")])
    wait_for(lambda: len([r for r in read_all(cbroker, topic_name) if r[1] == b"a"]) == 1,
             timeout=20, interval=0.5)
    # kafka-python from offset 0 and from an offset inside a removed range.
    for start in (0, 57):
        c = KafkaConsumer(bootstrap_servers=cbroker.bootstrap, enable_auto_commit=False,
                          consumer_timeout_ms=3000)
        from kafka import TopicPartition as KTP
        tp = KTP(topic_name, 0)
        c.assign([tp])
        c.seek(tp, start)
        got = [(m.offset, m.key, m.value) for m in c]
        c.close()
        assert got[0][1:] == (b"a", b"199") and got[0][0] == 199
        assert got[1][1:] == (b"b", b"last")
        assert [o for o, _, _ in got] == sorted(o for o, _, _ in got)


def test_group_log_stays_small_after_thousands_of_commits(cbroker, topic_name):
    create(cbroker, topic_name, {}, partitions=1)
    produce(cbroker, topic_name, [(b"k", b"v")])
    c = Consumer({"bootstrap.servers": cbroker.bootstrap, "group.id": f"g-{topic_name}",
                  "enable.auto.commit": False})
    for i in range(3000):
        c.commit(offsets=[TopicPartition(topic_name, 0, i + 1)], asynchronous=False)
    c.close()
    log_dir = os.path.join(cbroker.data_dir, "__consumer_offsets-0")

    def size():
        return sum(os.path.getsize(os.path.join(log_dir, f)) for f in os.listdir(log_dir)
                   if f.endswith(".log"))

    # ~3000 x 130 bytes written; compaction keeps the live keys (plus the
    # active segment).
    wait_for(lambda: size() < 60_000, timeout=20, interval=0.5)
    cbroker.restart()
    c = Consumer({"bootstrap.servers": cbroker.bootstrap, "group.id": f"g-{topic_name}"})
    [tp] = c.committed([TopicPartition(topic_name, 0)], timeout=10)
    assert tp.offset == 3000
    c.close()


@pytest.mark.parametrize("topic_codec", ["gzip", "snappy", "lz4", "zstd", "uncompressed", "producer"])
def test_topic_compression_type_is_read_back_by_every_client(cbroker, topic_name, topic_codec):
    """Batches in another codec are recompressed to the topic's on append;
    every client reads the same records back."""
    import subprocess
    import json
    from kafka import KafkaProducer
    create(cbroker, topic_name, {"compression.type": topic_codec})
    produce(cbroker, topic_name, [(b"c%d" % i, b"confluent-%d" % i) for i in range(50)],
            **{"compression.type": "lz4"})
    kp = KafkaProducer(bootstrap_servers=cbroker.bootstrap, compression_type="gzip", linger_ms=5)
    for i in range(50):
        kp.send(topic_name, key=b"k%d" % i, value=b"kafka-python-%d" % i)
    kp.flush()
    kp.close()
    want = [b"confluent-%d" % i for i in range(50)] + [b"kafka-python-%d" % i for i in range(50)]
    assert [v for _, _, v in read_all(cbroker, topic_name)] == want
    c = KafkaConsumer(bootstrap_servers=cbroker.bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=3000)
    from kafka import TopicPartition as KTP
    c.assign([KTP(topic_name, 0)])
    assert [m.value for m in c] == want
    c.close()
    if topic_codec in ("gzip", "uncompressed"):
        # kafkajs reads gzip and plain batches without codec plugins.
        here = os.path.dirname(os.path.abspath(__file__))
        p = subprocess.run(["node", os.path.join(here, "kafkajs", "scenarios.js"), cbroker.bootstrap,
                            "readOnly", topic_name], capture_output=True, text=True, timeout=60)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["values"] == [v.decode() for v in want], out
