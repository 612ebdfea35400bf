"""`emulate-kafka-version`: every emulated release's ApiVersions answer
against what real Kafka brokers of that release answered (as kafka-python
recorded them), and real clients against a broker that advertises what Kafka
2.8 advertised (no KIP-848, no share groups, Produce up to v9)."""
import socket
import struct

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.protocol.broker_version_data import BROKER_API_VERSIONS

from conftest import FAST_GROUPS, make_broker

RELEASES = ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.0", "3.1", "3.2",
            "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "4.0", "4.1", "4.2"]


def api_versions(bootstrap):
    """{key: (min, max)} from an ApiVersions v0 request on a plain socket
    (independent of any client's negotiation)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        client_id = b"emulation-test"
        req = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
        s.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
    body = buf[4:]
    corr, err, n = struct.unpack(">ihi", body[:10])
    assert (corr, err) == (7, 0)
    return {k: (lo, hi) for k, lo, hi in (struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i]) for i in range(n))}


@pytest.fixture(scope="module")
def weir_own_versions(tmp_path_factory):
    b = make_broker(tmp_path_factory)
    try:
        yield api_versions(b.bootstrap)
    finally:
        b.close()


@pytest.mark.parametrize("release", RELEASES)
def test_an_emulated_release_answers_as_that_kafka_did(tmp_path_factory, weir_own_versions, release):
    """The emulated ApiVersions answer is the real broker's (kafka-python's
    capture of it), limited to what Weir serves at all: an API Weir has is
    advertised over the overlap of both ranges, and nothing else is."""
    real = dict(BROKER_API_VERSIONS[tuple(int(x) for x in release.split("."))])
    if release == "4.0":
        # Weir emulates the newest 4.0 patch release: 4.0.1 advertises
        # JoinGroup from v0 again (KAFKA-19444); kafka-python recorded 4.0.0.
        assert real[11] == (2, 9)
        real[11] = (0, 9)
    own = weir_own_versions
    expected = {}
    for key, (lo, hi) in real.items():
        if key in own:
            lo, hi = max(lo, own[key][0]), min(hi, own[key][1])
            if lo <= hi:
                expected[key] = (lo, hi)
    b = make_broker(tmp_path_factory, f'emulate-kafka-version = "{release}"\n')
    try:
        got = api_versions(b.bootstrap)
        p = KafkaProducer(bootstrap_servers=b.bootstrap)
        identified = p.config["api_version"]
        p.close()
    finally:
        b.close()
    assert got == expected
    # Not Weir's own answer (each release differs from it somewhere).
    assert got != own
    # kafka-python identifies the release from the answer, except where its
    # probe is an API version Weir does not serve at all: 2.6 is told by
    # DescribeClientQuotas, 3.4 by LeaderAndIsr v7 (broker-internal), 4.2 by
    # ListOffsets v11 (Weir stops at v10).
    told_apart_as = {"2.6": (2, 5), "3.4": (3, 3), "4.2": (4, 1)}
    assert identified == told_apart_as.get(release, tuple(int(x) for x in release.split(".")))


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
