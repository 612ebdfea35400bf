"""confluent_kafka (librdkafka, flexible protocol versions) against Weir."""
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, OffsetSpec)


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, name, partitions=1, config=None):
    a = admin(broker)  # must outlive its futures
    for f in a.create_topics([NewTopic(name, partitions, 1, config=config or {})]).values():
        f.result(10)


def consume_all(broker, tp, expected, timeout=15):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append(m)
    c.close()
    return out


def test_topic_admin_lifecycle(broker, topic_name):
    a = admin(broker)
    create(broker, topic_name, 2, {"retention.ms": "123456"})
    with pytest.raises(KafkaException) as e:
        list(a.create_topics([NewTopic(topic_name, 2, 1)]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as e:
        list(a.create_topics([NewTopic(topic_name + "x", 1, 1, config={"retention.ms": "soon"})]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    md = a.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 2
    res = ConfigResource("topic", topic_name)
    cfg = list(a.describe_configs([res]).values())[0].result(10)
    assert cfg["retention.ms"].value == "123456"
    assert cfg["max.message.bytes"].value == "1048588"
    alter = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "4242", incremental_operation=AlterConfigOpType.SET)])
    list(a.incremental_alter_configs([alter]).values())[0].result(10)
    cfg = list(a.describe_configs([res]).values())[0].result(10)
    assert cfg["retention.ms"].value == "4242"
    list(a.create_partitions([NewPartitions(topic_name, 3)]).values())[0].result(10)
    assert len(a.list_topics(timeout=10).topics[topic_name].partitions) == 3
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, b"old", partition=0)
    assert p.flush(10) == 0
    list(a.delete_topics([topic_name]).values())[0].result(10)
    create(broker, topic_name, 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 0)
    c.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_codecs_headers_nulls(broker, topic_name, codec):
    create(broker, topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 5})
    n = 300
    for i in range(n):
        key = None if i % 3 == 0 else b"k%d" % i
        value = None if i % 7 == 0 else b"value-%d" % i
        p.produce(topic_name, key=key, value=value, partition=0, headers=[("dup", b"1"), ("dup", b"2"), ("x", b"")])
    assert p.flush(30) == 0
    msgs = consume_all(broker, TopicPartition(topic_name, 0), n)
    assert [m.offset() for m in msgs] == list(range(n))
    for i, m in enumerate(msgs):
        assert m.key() == (None if i % 3 == 0 else b"k%d" % i)
        assert m.value() == (None if i % 7 == 0 else b"value-%d" % i)
        assert m.headers() == [("dup", b"1"), ("dup", b"2"), ("x", b"")]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_and_large_message(broker, topic_name, acks):
    create(broker, topic_name)
    conf = {"bootstrap.servers": broker.bootstrap, "acks": acks}
    if acks != "all":
        conf["enable.idempotence"] = False
    p = Producer(conf)
    errors = []
    big = bytes(range(256)) * 3900
    for i in range(50):
        p.produce(topic_name, b"m%d" % i, partition=0, on_delivery=lambda e, m: errors.append(e) if e else None)
    p.produce(topic_name, big, partition=0, on_delivery=lambda e, m: errors.append(e) if e else None)
    assert p.flush(30) == 0
    assert errors == []
    msgs = consume_all(broker, TopicPartition(topic_name, 0), 51)
    assert len(msgs) == 51 and msgs[-1].value() == big


def test_message_too_large(broker, topic_name):
    create(broker, topic_name, config={"max.message.bytes": "2000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none"})
    results = []
    p.produce(topic_name, b"x" * 10000, partition=0, on_delivery=lambda e, m: results.append(e))
    p.flush(10)
    assert results[0] is not None and results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_offsets_for_times_list_offsets_and_delete_records(broker, topic_name):
    create(broker, topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(10):
        p.produce(topic_name, b"v%d" % i, partition=0, timestamp=base + i * 1000)
        p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    [found] = c.offsets_for_times([TopicPartition(topic_name, 0, base + 4500)], timeout=10)
    assert found.offset == 5
    [none] = c.offsets_for_times([TopicPartition(topic_name, 0, base + 99_000)], timeout=10)
    assert none.offset == -1
    a = admin(broker)
    tp = TopicPartition(topic_name, 0)
    latest = list(a.list_offsets({tp: OffsetSpec.latest()}).values())[0].result(10)
    assert latest.offset == 10
    max_ts = list(a.list_offsets({tp: OffsetSpec.max_timestamp()}).values())[0].result(10)
    assert (max_ts.offset, max_ts.timestamp) == (9, base + 9000)
    deleted = list(a.delete_records([TopicPartition(topic_name, 0, 4)]).values())[0].result(10)
    assert deleted.low_watermark == 4
    assert c.get_watermark_offsets(tp, timeout=10) == (4, 10)
    c.close()
    msgs = consume_all(broker, tp, 6)
    assert [m.offset() for m in msgs] == list(range(4, 10))
