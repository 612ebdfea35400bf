"""`emulate-kafka-version`: real clients against a broker that advertises what
Kafka 2.8 advertised (no KIP-848, no share groups, Produce up to v9)."""
import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer

from conftest import FAST_GROUPS, make_broker


@pytest.fixture(scope="module")
def old_broker(tmp_path_factory):
    b = make_broker(tmp_path_factory, FAST_GROUPS + 'emulate-kafka-version = "2.8"\n')
    yield b
    b.close()


def test_kafka_python_sees_a_2_8_broker(old_broker):
    """kafka-python infers the broker's version from ApiVersions: 2.8, not Weir's own."""
    p = KafkaProducer(bootstrap_servers=old_broker.bootstrap)
    try:
        assert p.config["api_version"] == (2, 8)
    finally:
        p.close()


def test_confluent_kafka_produces_and_consumes(old_broker, topic_name):
    """librdkafka picks 2.8's versions (Produce v9 at most) and works."""
    p = Producer({"bootstrap.servers": old_broker.bootstrap})
    for i in range(10):
        p.produce(topic_name, f"v{i}".encode())
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": old_broker.bootstrap, "group.id": "g-" + topic_name,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic_name])
    got = []
    for _ in range(100):
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
        if len(got) == 10:
            break
    c.close()
    assert got == [f"v{i}" for i in range(10)]


def test_kafka_python_produces_and_consumes(old_broker, topic_name):
    p = KafkaProducer(bootstrap_servers=old_broker.bootstrap)
    for i in range(5):
        p.send(topic_name, f"k{i}".encode()).get(timeout=10)
    p.close()
    c = KafkaConsumer(topic_name, bootstrap_servers=old_broker.bootstrap,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id="kg-" + topic_name)
    assert [m.value.decode() for m in c] == [f"k{i}" for i in range(5)]
    c.close()


def test_the_kip_848_consumer_gets_nothing(old_broker, topic_name):
    """A 2.8 broker has no ConsumerGroupHeartbeat: librdkafka's KIP-848
    consumer never joins, so it gets no assignment and no records, where the
    classic consumer above reads the same kind of topic at once."""
    p = Producer({"bootstrap.servers": old_broker.bootstrap})
    p.produce(topic_name, b"x")
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": old_broker.bootstrap, "group.id": "n-" + topic_name,
                  "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe([topic_name])
    got = []
    for _ in range(20):
        m = c.poll(0.25)
        if m is not None and m.error() is None:
            got.append(m.value())
    assignment = c.assignment()
    c.close()
    assert got == [] and assignment == []
