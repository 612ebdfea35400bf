"""The fault-injection HTTP API (`/v1/faults`) and `weir fault`, driven by real
clients: injected retriable errors are retried without duplicating data,
permanent ones surface as the right exception, and disconnects, delays and
throttles reach the wire exactly as many times as asked."""
import http.client
import json
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import TopicAuthorizationFailedError

from conftest import WEIR, read_partition0, wait_for

METADATA = 3


@pytest.fixture(scope="module")
def broker(http_broker):
    return http_broker


@pytest.fixture(autouse=True)
def no_faults(broker):
    """Every test starts and ends with no rules, so none leaks into the next."""
    assert http_json(broker, "DELETE")[0] == 200
    yield
    http_json(broker, "DELETE")


# --- HTTP -------------------------------------------------------------------

def http_json(broker, method, body=None, content_type="application/json", path="/v1/faults"):
    """(status, decoded JSON body); a non-JSON body comes back as bytes."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{broker.http}{path}", data=data, method=method)
    if data is not None and content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def add_rule(broker, **rule):
    status, body = http_json(broker, "POST", rule)
    assert status == 201, (rule, status, body)
    return body


def rules(broker):
    status, body = http_json(broker, "GET")
    assert status == 200, body
    return body


# --- raw Kafka frames -------------------------------------------------------

def frame(api_key, version, correlation_id, body, client_id=b"weir-faults-test"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def metadata_v1(correlation_id):
    """Metadata v1 for no topics (an empty array; null would mean all)."""
    return frame(METADATA, 1, correlation_id, struct.pack(">i", 0))


def metadata_v4(correlation_id):
    """Metadata v4: topics null (all), allow_auto_topic_creation false."""
    return frame(METADATA, 4, correlation_id, struct.pack(">ib", -1, 0))


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_frame(s):
    """One response frame without its length prefix, or None when the broker
    closed the connection instead of answering."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = s.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf
    head = exact(4)
    if head is None:
        return None
    return exact(struct.unpack(">i", head)[0])


def roundtrip(s, request):
    s.sendall(request)
    return read_frame(s)


def metadata_v4_throttle(s, correlation_id):
    """Sends Metadata v4 and returns the response's throttle_time_ms."""
    resp = roundtrip(s, metadata_v4(correlation_id))
    assert resp is not None, "connection closed"
    corr, throttle = struct.unpack(">ii", resp[:8])
    assert corr == correlation_id
    return throttle


# --- clients ----------------------------------------------------------------

def create_topics(broker, *names):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(10)


def watermarks(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def weir_fault(*args):
    return subprocess.run([WEIR, "fault", *args], capture_output=True, timeout=30)


# --- retriable errors -------------------------------------------------------

@pytest.mark.parametrize("idempotent,n", [(True, 10), (False, 1)], ids=["idempotent-10", "plain-1"])
def test_confluent_retries_injected_not_leader_exactly_once(broker, topic_name, idempotent, n):
    """Two NOT_LEADER_OR_FOLLOWER answers on Produce are retried by librdkafka;
    the failed requests were not executed (the non-idempotent single record is
    stored once) and the rule is used up (fired twice)."""
    create_topics(broker, topic_name)
    rule = add_rule(broker, api="Produce", error="NOT_LEADER_OR_FOLLOWER", count=2, topic=topic_name)
    assert isinstance(rule.pop("id"), int)
    assert rule == {"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 2, "remaining": 2, "fired": 0,
                    "topic": topic_name, "delay_ms": None, "disconnect": False, "throttle_ms": None}
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": idempotent,
                  "retry.backoff.ms": 50})
    errors, delivered = [], []
    for i in range(n):
        p.produce(topic_name, b"v%d" % i, partition=0,
                  on_delivery=lambda e, m: errors.append(e) if e else delivered.append(m.value()))
    assert p.flush(30) == 0
    del p
    assert errors == []
    assert sorted(delivered) == sorted(b"v%d" % i for i in range(n))
    assert rules(broker) == []  # both injected failures were consumed
    assert watermarks(broker, topic_name) == (0, n)
    assert sorted(read_partition0(broker, topic_name, n)) == sorted(b"v%d" % i for i in range(n))


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_kafka_python_retries_injected_not_leader_exactly_once(broker, topic_name, idempotent):
    """kafka-python retries NotLeaderForPartitionError from an injected rule;
    every record is stored exactly once."""
    create_topics(broker, topic_name)
    add_rule(broker, api="Produce", error="NOT_LEADER_OR_FOLLOWER", count=2, topic=topic_name)
    n = 10
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=5, retry_backoff_ms=50,
                      enable_idempotence=idempotent)
    futures = [p.send(topic_name, value=b"v%d" % i, partition=0) for i in range(n)]
    p.flush(timeout=30)
    offsets = sorted(f.get(timeout=10).offset for f in futures)
    p.close()
    assert offsets == list(range(n))
    assert rules(broker) == []
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    tp = KTopicPartition(topic_name, 0)
    c.assign([tp])
    assert c.end_offsets([tp])[tp] == n
    values = []
    deadline = time.time() + 15
    while len(values) < n and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            values.extend(r.value for r in recs)
    c.close()
    assert sorted(values) == sorted(b"v%d" % i for i in range(n))


# --- permanent errors -------------------------------------------------------

def test_confluent_sees_injected_topic_authorization_failed(broker, topic_name):
    """A non-retriable injected error reaches the delivery callback with its
    code, and the rejected record is not stored."""
    create_topics(broker, topic_name)
    add_rule(broker, api="Produce", error="TOPIC_AUTHORIZATION_FAILED", count=1, topic=topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False})
    results = []
    p.produce(topic_name, b"denied", partition=0, on_delivery=lambda e, m: results.append(e))
    p.flush(15)
    del p
    assert len(results) == 1 and results[0] is not None
    assert results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert rules(broker) == []
    assert watermarks(broker, topic_name) == (0, 0)


def test_kafka_python_sees_injected_topic_authorization_failed(broker, topic_name):
    """kafka-python raises TopicAuthorizationFailedError for the injected
    error, without retrying it, and nothing is stored."""
    create_topics(broker, topic_name)
    add_rule(broker, api="Produce", error="TOPIC_AUTHORIZATION_FAILED", count=1, topic=topic_name)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=5, enable_idempotence=False)
    with pytest.raises(TopicAuthorizationFailedError):
        p.send(topic_name, value=b"denied", partition=0).get(timeout=15)
    p.close()
    assert rules(broker) == []
    assert watermarks(broker, topic_name) == (0, 0)


def test_topic_filter_spares_other_topics(broker, topic_name):
    """A rule naming topic A fails every produce to A (no count: until
    cleared) and never touches produce to B; only A's request is counted."""
    a, b = topic_name + "-a", topic_name + "-b"
    create_topics(broker, a, b)
    add_rule(broker, api="Produce", error="TOPIC_AUTHORIZATION_FAILED", topic=a)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0, enable_idempotence=False)
    for i in range(3):
        assert p.send(b, value=b"ok%d" % i, partition=0).get(timeout=10).offset == i
    for _ in range(2):
        with pytest.raises(TopicAuthorizationFailedError):
            p.send(a, value=b"denied", partition=0).get(timeout=10)
    p.close()
    [rule] = rules(broker)
    assert (rule["topic"], rule["fired"]) == (a, 2)
    assert watermarks(broker, a) == (0, 0)
    assert watermarks(broker, b) == (0, 3)


def test_numeric_error_code_is_accepted(broker, topic_name):
    """"error" may be a numeric Kafka code: 29 is TOPIC_AUTHORIZATION_FAILED."""
    create_topics(broker, topic_name)
    rule = add_rule(broker, api="Produce", error=29, count=1, topic=topic_name)
    assert rule["error"] in ("TOPIC_AUTHORIZATION_FAILED", 29)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, enable_idempotence=False)
    with pytest.raises(TopicAuthorizationFailedError):
        p.send(topic_name, value=b"x", partition=0).get(timeout=10)
    p.close()


# --- disconnect, delay, throttle --------------------------------------------

def test_disconnect_closes_the_connection_once(broker):
    """A disconnect rule closes the connection instead of answering Metadata;
    with count 1 the next connection is answered normally."""
    add_rule(broker, api="Metadata", disconnect=True, count=1)
    with connect(broker) as s:
        assert roundtrip(s, metadata_v1(7)) is None
    assert rules(broker) == []
    with connect(broker) as s:
        resp = roundtrip(s, metadata_v1(8))
    assert resp is not None and struct.unpack(">i", resp[:4])[0] == 8


def test_confluent_reconnects_after_injected_disconnect(broker):
    """librdkafka survives a dropped Metadata connection: the rule is used up
    on one of its requests, and list_topics on the same client works again
    (the dropped call itself may fail with a transport error: librdkafka
    does not retry it, and which connection carries it varies)."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert a.list_topics(timeout=10).brokers  # connected
    add_rule(broker, api="Metadata", disconnect=True, count=1)
    try:
        a.list_topics(timeout=10)
    except KafkaException as e:
        assert e.args[0].code() == KafkaError._TRANSPORT
    wait_for(lambda: rules(broker) == [], timeout=5)
    assert a.list_topics(timeout=10).brokers
    assert a.list_topics(timeout=10).brokers


def test_delay_holds_one_response(broker):
    """A delay rule holds the Metadata response for delay_ms; with count 1
    the next request is answered at once."""
    add_rule(broker, api="Metadata", delay_ms=700, count=1)
    with connect(broker) as s:
        t0 = time.monotonic()
        assert roundtrip(s, metadata_v1(1)) is not None
        slow = time.monotonic() - t0
        t0 = time.monotonic()
        assert roundtrip(s, metadata_v1(2)) is not None
        fast = time.monotonic() - t0
    assert slow >= 0.7, slow
    assert fast < 0.5, fast


def test_throttle_sets_throttle_time_ms(broker):
    """A throttle rule puts throttle_time_ms into the response (Metadata v4
    carries it right after the correlation id); the next one carries 0."""
    add_rule(broker, api="Metadata", throttle_ms=300, count=1)
    with connect(broker) as s:
        assert metadata_v4_throttle(s, 1) == 300
        assert metadata_v4_throttle(s, 2) == 0


def test_confluent_reports_injected_produce_throttle(broker, topic_name):
    """librdkafka reports the injected Produce throttle through throttle_cb
    and still delivers the record."""
    create_topics(broker, topic_name)
    add_rule(broker, api="Produce", throttle_ms=300, count=1, topic=topic_name)
    events, errors = [], []
    p = Producer({"bootstrap.servers": broker.bootstrap, "throttle_cb": events.append})
    p.produce(topic_name, b"slow", partition=0, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(15) == 0
    wait_deadline = time.time() + 5
    while not events and time.time() < wait_deadline:
        p.poll(0.1)
    del p
    assert errors == [None]
    assert events, "no throttle event"
    assert round(events[0].throttle_time, 3) == 0.3, [str(e) for e in events]
    assert rules(broker) == []
    assert watermarks(broker, topic_name) == (0, 1)


# --- the HTTP API itself ----------------------------------------------------

@pytest.mark.parametrize("body", [
    {"api": "NoSuchApi", "error": "NOT_LEADER_OR_FOLLOWER"},
    {"api": "Produce", "error": "NO_SUCH_ERROR"},
    {"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "delay_ms": 10},
    {"api": "Produce", "disconnect": True, "throttle_ms": 10},
    {"api": "Produce"},
    {"error": "NOT_LEADER_OR_FOLLOWER"},
    b"{not json",
], ids=["unknown-api", "unknown-error", "error+delay", "disconnect+throttle", "no-action", "no-api", "bad-json"])
def test_bad_rule_is_400_and_adds_nothing(broker, body):
    """Malformed rules answer 400 with a JSON error and add no rule."""
    status, resp = http_json(broker, "POST", body)
    assert status == 400, resp
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str) and resp["error"]
    assert rules(broker) == []


def test_post_without_json_content_type_is_415(broker):
    """Only application/json bodies are accepted: text/plain and a missing
    Content-Type both answer 415, and no rule is added."""
    good = json.dumps({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1}).encode()
    assert http_json(broker, "POST", good, content_type="text/plain")[0] == 415
    host, port = broker.http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/faults", body=good)  # http.client adds no Content-Type
    assert conn.getresponse().status == 415
    conn.close()
    assert rules(broker) == []


def test_list_counts_down_and_delete_clears(broker):
    """GET shows remaining falling and fired rising with each matching
    request; a used-up rule leaves the list; DELETE reports how many it
    removed."""
    first = add_rule(broker, api="Metadata", throttle_ms=5, count=3)
    with connect(broker) as s:
        for i in (1, 2):
            assert metadata_v4_throttle(s, i) == 5
            [rule] = rules(broker)
            assert (rule["id"], rule["remaining"], rule["fired"]) == (first["id"], 3 - i, i)
        assert metadata_v4_throttle(s, 3) == 5
        assert rules(broker) == []
        assert metadata_v4_throttle(s, 4) == 0
    a = add_rule(broker, api="Fetch", delay_ms=500)
    b = add_rule(broker, api="JoinGroup", error="COORDINATOR_NOT_AVAILABLE", count=5)
    assert a["id"] != b["id"]
    listed = rules(broker)
    assert sorted(r["id"] for r in listed) == sorted([a["id"], b["id"]])
    assert {r["id"]: r for r in listed}[b["id"]] == b
    assert http_json(broker, "DELETE") == (200, {"cleared": 2})
    assert rules(broker) == []
    assert http_json(broker, "DELETE") == (200, {"cleared": 0})


# --- CLI --------------------------------------------------------------------

def test_cli_add_list_clear(broker, topic_name):
    """`weir fault add/list/clear` talk to the same API and print its JSON."""
    p = weir_fault("add", "--http", broker.http, "--api", "Produce", "--error", "NOT_LEADER_OR_FOLLOWER",
                   "--count", "2", "--topic", topic_name)
    assert p.returncode == 0, p.stderr.decode()
    added = json.loads(p.stdout)
    assert {k: v for k, v in added.items() if k != "id"} == {
        "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 2, "remaining": 2, "fired": 0,
        "topic": topic_name, "delay_ms": None, "disconnect": False, "throttle_ms": None}
    for args, field, value in [(["--api", "Fetch", "--delay-ms", "250"], "delay_ms", 250),
                               (["--api", "Metadata", "--disconnect", "--count", "1"], "disconnect", True),
                               (["--api", "Produce", "--throttle-ms", "40"], "throttle_ms", 40)]:
        p = weir_fault("add", "--http", broker.http, *args)
        assert p.returncode == 0, p.stderr.decode()
        assert json.loads(p.stdout)[field] == value
    p = weir_fault("list", "--http", broker.http)
    assert p.returncode == 0, p.stderr.decode()
    listed = json.loads(p.stdout)
    assert listed == rules(broker)
    assert len(listed) == 4 and added in listed
    p = weir_fault("clear", "--http", broker.http)
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout) == {"cleared": 4}
    p = weir_fault("list", "--http", broker.http)
    assert p.returncode == 0 and json.loads(p.stdout) == []


def test_cli_failures_exit_1_with_one_line(broker):
    """No broker listening, or a rule the API rejects: exit 1, one stderr
    line, and nothing is added."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = f"127.0.0.1:{s.getsockname()[1]}"
    p = weir_fault("list", "--http", free)
    assert p.returncode == 1
    assert len(p.stderr.decode().strip().splitlines()) == 1, p.stderr
    p = weir_fault("add", "--http", broker.http, "--api", "NoSuchApi", "--error", "NOT_LEADER_OR_FOLLOWER")
    assert p.returncode == 1
    assert len(p.stderr.decode().strip().splitlines()) == 1, p.stderr
    assert rules(broker) == []
