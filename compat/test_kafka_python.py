"""kafka-python (pure Python, non-flexible protocol versions) against Weir."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError, UnknownTopicOrPartitionError


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap)


def consume_all(broker, tp, expected, timeout=15):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    c.assign([tp])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            out.extend(recs)
    c.close()
    return out


def test_topic_admin_lifecycle(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 2, 1, topic_configs={"retention.ms": "123456", "cleanup.policy": "delete"})])
    with pytest.raises(TopicAlreadyExistsError):
        a.create_topics([NewTopic(topic_name, 2, 1)])
    assert topic_name in a.list_topics()
    [desc] = a.describe_topics([topic_name])
    assert desc["error_code"] == 0 and len(desc["partitions"]) == 2
    configs = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)], config_filter="all")
    topic_cfg = configs["TOPIC"][topic_name] if "TOPIC" in configs else list(list(configs.values())[0].values())[0]
    assert topic_cfg["retention.ms"]["value"] == "123456"
    assert topic_cfg["segment.bytes"]["value"] == "1073741824"
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "777"})])
    configs = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)], config_filter="all")
    topic_cfg = list(list(configs.values())[0].values())[0]
    assert topic_cfg["retention.ms"]["value"] == "777"
    a.create_partitions({topic_name: NewPartitions(total_count=4)})
    [desc] = a.describe_topics([topic_name])
    assert len(desc["partitions"]) == 4
    # Data in the old topic, then delete and recreate: the new one is empty.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    p.send(topic_name, b"old", partition=0).get(timeout=10)
    p.close()
    a.delete_topics([topic_name])
    assert topic_name not in a.list_topics()
    a.create_topics([NewTopic(topic_name, 1, 1)])
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    assert c.end_offsets([TopicPartition(topic_name, 0)])[TopicPartition(topic_name, 0)] == 0
    c.close()
    with pytest.raises(UnknownTopicOrPartitionError):
        a.delete_topics(["no-such-topic-" + topic_name])
    a.close()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_codecs_headers_nulls(broker, topic_name, codec):
    admin(broker).create_topics([NewTopic(topic_name, 1, 1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=5)
    n = 300
    # kafka-python refuses a record whose key and value are both null.
    key_of = lambda i: None if i % 3 == 0 else b"k%d" % i  # noqa: E731
    value_of = lambda i: None if i % 7 == 0 and i % 3 else b"value-%d" % i  # noqa: E731
    for i in range(n):
        key, value = key_of(i), value_of(i)
        p.send(topic_name, key=key, value=value, headers=[("dup", b"1"), ("dup", b"2"), ("x", b"")])
    p.flush(timeout=30)
    p.close()
    recs = consume_all(broker, TopicPartition(topic_name, 0), n)
    assert [r.offset for r in recs] == list(range(n))
    for i, r in enumerate(recs):
        assert (r.key, r.value) == (key_of(i), value_of(i))
        # Duplicate header keys survive in order (KIP-82).
        assert r.headers == [("dup", b"1"), ("dup", b"2"), ("x", b"")]


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks_and_large_message(broker, topic_name, acks):
    admin(broker).create_topics([NewTopic(topic_name, 1, 1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=acks, max_request_size=1048576)
    big = bytes(range(256)) * 3900  # ~1 MB
    futures = [p.send(topic_name, value=b"m%d" % i) for i in range(50)]
    futures.append(p.send(topic_name, value=big))
    p.flush(timeout=30)
    for f in futures:
        f.get(timeout=10)
    p.close()
    recs = consume_all(broker, TopicPartition(topic_name, 0), 51)
    assert len(recs) == 51
    assert recs[-1].value == big


def test_message_too_large(broker, topic_name):
    admin(broker).create_topics([NewTopic(topic_name, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    with pytest.raises(MessageSizeTooLargeError):
        p.send(topic_name, value=b"x" * 10000).get(timeout=10)
    p.send(topic_name, value=b"small").get(timeout=10)
    p.close()


def test_offsets_for_times_and_delete_records(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 1, 1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    base = 1_700_000_000_000
    for i in range(10):
        p.send(topic_name, value=b"v%d" % i, timestamp_ms=base + i * 1000).get(timeout=10)
    p.close()
    tp = TopicPartition(topic_name, 0)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    found = c.offsets_for_times({tp: base + 4500})[tp]
    assert (found.offset, found.timestamp) == (5, base + 5000)
    assert c.offsets_for_times({tp: base + 99_000})[tp] is None
    assert c.beginning_offsets([tp])[tp] == 0
    a.delete_records({tp: 4})
    assert c.beginning_offsets([tp])[tp] == 4
    assert c.end_offsets([tp])[tp] == 10
    c.close()
    recs = consume_all(broker, tp, 6)
    assert [r.offset for r in recs] == list(range(4, 10))
