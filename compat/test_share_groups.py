"""Share groups (KIP-932 queues) with confluent_kafka's ShareConsumer:
competing consumers on one partition, per-message ack, release and
redelivery, the visibility timeout (acquisition lock), the delivery limit,
dead-letter topics, durability across kill -9, and group configs."""
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, ShareConsumer, AcknowledgeType, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

from conftest import FAST_GROUPS, make_broker

# Lock durations down to 1 s (as librdkafka's CI runs Kafka) for fast tests.
SHARE_CONFIG = FAST_GROUPS + "group-share-min-record-lock-duration-ms = 1000\n"


@pytest.fixture(scope="module")
def qbroker(tmp_path_factory):
    b = make_broker(tmp_path_factory, SHARE_CONFIG)
    yield b
    b.close()


@pytest.fixture
def own_qbroker(tmp_path_factory):
    b = make_broker(tmp_path_factory, SHARE_CONFIG)
    yield b
    b.close()


def group_config(broker, group, **configs):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
        for k, v in configs.items()])
    return a.incremental_alter_configs([res])[res].result(10)


def setup(broker, topic, n, group, **configs):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    group_config(broker, group, share_auto_offset_reset="earliest", **configs)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"job-%d" % i, partition=0,
                  headers=[("trace", b"t%d" % i)])
    assert p.flush(10) == 0


def consumer(broker, group, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group,
            "share.acknowledgement.mode": "explicit"}
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return ShareConsumer(conf)


def poll_until(c, want, timeout=20.0, ack=AcknowledgeType.ACCEPT):
    """Polls until `want` records arrived; acks each with `ack` (None: no ack)."""
    got = []
    deadline = time.time() + timeout
    while len(got) < want and time.time() < deadline:
        for m in c.poll(0.5):
            if m.error():
                continue
            got.append(m)
            if ack is not None:
                c.acknowledge(m, ack)
    return got


def test_competing_consumers_split_one_partition_and_accepted_work_is_done_once(qbroker, topic_name):
    group = f"g-{topic_name}"
    # 5 ms of "work" per job: one consumer alone would need 3 s, so the
    # others are surely up before the queue is empty.
    setup(qbroker, topic_name, 600, group)
    results = {}

    def work(name):
        c = consumer(qbroker, group, max_poll_records=20)
        c.subscribe([topic_name])
        seen = []
        idle_since = time.time()
        while time.time() - idle_since < 4:
            msgs = c.poll(0.5)
            for m in msgs:
                if m.error():
                    continue
                time.sleep(0.005)
                seen.append(m.value())
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                idle_since = time.time()
        c.commit_sync(10)
        c.close()
        results[name] = seen

    threads = [threading.Thread(target=work, args=(f"c{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [v for seen in results.values() for v in seen]
    assert sorted(everything) == sorted(b"job-%d" % i for i in range(600)), "each job exactly once"
    busy = [n for n, seen in results.items() if seen]
    assert len(busy) >= 2, f"work was not shared: {[len(s) for s in results.values()]}"


def test_release_redelivers_and_stuck_consumer_loses_its_lock(qbroker, topic_name):
    group = f"g-{topic_name}"
    setup(qbroker, topic_name, 5, group, share_record_lock_duration_ms=2000)
    a = consumer(qbroker, group)
    a.subscribe([topic_name])
    first = poll_until(a, 5, ack=AcknowledgeType.RELEASE)
    assert [m.delivery_count() for m in first] == [1] * 5
    again = poll_until(a, 5, ack=None)
    assert sorted(m.value() for m in again) == sorted(m.value() for m in first)
    assert all(m.delivery_count() == 2 for m in again), "released work comes back, counted"
    # `a` is now stuck on them: another consumer gets them once the lock
    # (the visibility timeout) expires.
    b = consumer(qbroker, group)
    b.subscribe([topic_name])
    stuck_at = time.time()
    third = poll_until(b, 5, timeout=15)
    waited = time.time() - stuck_at
    assert len(third) == 5 and all(m.delivery_count() == 3 for m in third)
    assert 1.0 <= waited < 8.0, f"redelivered after {waited:.1f} s with a 2 s lock"
    print(f"\nlock expiry -> redelivery to another consumer: {waited:.2f} s (lock 2 s)")
    # The stuck consumer's late ack is refused: the records are no longer its own.
    for m in again:
        a.acknowledge(m, AcknowledgeType.ACCEPT)
    results = a.commit_sync(10)
    assert any(err is not None for err in results.values()), results
    b.commit_sync(10)
    a.close()
    b.close()


def read_topic(broker, topic, n, timeout=15):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "dlq-reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out


def test_reject_and_delivery_limit_go_to_the_dead_letter_topic(qbroker, topic_name):
    group = f"g-{topic_name}"
    dlq = f"{topic_name}.dlq"
    setup(qbroker, topic_name, 3, group, share_delivery_count_limit=2,
          errors_deadletterqueue_topic_name=dlq)
    c = consumer(qbroker, group)
    c.subscribe([topic_name])
    got = poll_until(c, 3, ack=None)
    by_value = {m.value(): m for m in got}
    c.acknowledge(by_value[b"job-0"], AcknowledgeType.REJECT)       # poison message
    c.acknowledge(by_value[b"job-1"], AcknowledgeType.RELEASE)      # try again
    c.acknowledge(by_value[b"job-2"], AcknowledgeType.ACCEPT)
    c.commit_sync(10)
    retry = poll_until(c, 1, ack=AcknowledgeType.RELEASE)           # 2nd delivery, released again
    assert [m.value() for m in retry] == [b"job-1"] and retry[0].delivery_count() == 2
    c.commit_sync(10)
    assert poll_until(c, 1, timeout=3) == [], "archived at the delivery limit"
    c.close()
    letters = read_topic(qbroker, dlq, 2)
    assert len(letters) == 2
    by_origin = {}
    for m in letters:
        h = dict((k, v) for k, v in m.headers())
        assert h["__dlq.errors.topic"] == topic_name.encode()
        assert h["__dlq.errors.partition"] == b"0"
        assert h["__dlq.errors.group"] == group.encode()
        assert h["trace"] == m.value().replace(b"job-", b"t"), "original headers kept"
        by_origin[int(h["__dlq.errors.offset"])] = (m.key(), m.value(), h["__dlq.errors.reason"],
                                                    h["__dlq.errors.delivery.count"])
    assert by_origin == {0: (b"k0", b"job-0", b"rejected", b"1"),
                         1: (b"k1", b"job-1", b"delivery_count_limit", b"2")}


def test_acknowledged_work_is_not_redelivered_after_kill9(own_qbroker, topic_name):
    b = own_qbroker
    group = f"g-{topic_name}"
    setup(b, topic_name, 100, group)
    c = consumer(b, group, max_poll_records=10)
    c.subscribe([topic_name])
    done = poll_until(c, 50)  # 50 or a few more: all of them accepted
    assert all(err is None for err in c.commit_sync(10).values())
    c.close()
    done_values = {m.value() for m in done}
    b.kill9()
    b.start()
    c = consumer(b, group)
    c.subscribe([topic_name])
    rest = poll_until(c, 100, timeout=10)
    c.commit_sync(10)
    c.close()
    rest_values = [m.value() for m in rest]
    assert not done_values & set(rest_values), "acknowledged work came back after kill -9"
    assert done_values | set(rest_values) == {b"job-%d" % i for i in range(100)}


def test_group_configs_are_validated(qbroker):
    assert group_config(qbroker, "cfg-group", share_record_lock_duration_ms=1500) is None
    with pytest.raises(Exception, match="INVALID_CONFIG|share.record.lock.duration.ms"):
        group_config(qbroker, "cfg-group", share_record_lock_duration_ms=999999)
    with pytest.raises(Exception):
        group_config(qbroker, "cfg-group", share_isolation_level="sometimes")


def test_read_committed_share_group_skips_aborted_and_open_transactions(qbroker, topic_name):
    group = f"g-{topic_name}"
    setup(qbroker, topic_name, 0, group, share_isolation_level="read_committed")
    p = Producer({"bootstrap.servers": qbroker.bootstrap, "transactional.id": f"tx-{topic_name}"})
    p.init_transactions(10)
    for label, commit in [(b"c1", True), (b"a1", False), (b"c2", True)]:
        p.begin_transaction()
        for i in range(3):
            p.produce(topic_name, value=b"%s-%d" % (label, i), partition=0)
        p.flush(10)
        if commit:
            p.commit_transaction(10)
        else:
            p.abort_transaction(10)
    p.begin_transaction()
    p.produce(topic_name, value=b"open-0", partition=0)
    p.flush(10)  # left open: beyond the last stable offset
    c = consumer(qbroker, group)
    c.subscribe([topic_name])
    got = poll_until(c, 6, timeout=15)
    assert sorted(m.value() for m in got) == sorted(
        [b"c1-0", b"c1-1", b"c1-2", b"c2-0", b"c2-1", b"c2-2"])
    assert poll_until(c, 1, timeout=2) == [], "nothing aborted or open is delivered"
    c.commit_sync(10)
    c.close()
    p.abort_transaction(10)
