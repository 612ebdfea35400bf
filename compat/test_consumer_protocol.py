"""The KIP-848 consumer protocol (`group.protocol=consumer`) with confluent_kafka.

The broker computes assignments; members reconcile incrementally. These run
against the real binary with its default consumer-group timings except where a
test sets the group's `consumer.session.timeout.ms` through the admin API.
"""
import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

from conftest import wait_for


def create(broker, name, partitions):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(10)


def produce(broker, topic, n, partitions, prefix=b""):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2})
    for i in range(n):
        p.produce(topic, prefix + b"%d" % i, partition=i % partitions)
    assert p.flush(20) == 0


def consumer(broker, group, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest"}
    conf.update(extra)
    return Consumer(conf)


def parts(c):
    return sorted((tp.topic, tp.partition) for tp in c.assignment())


def pump(consumers, until, timeout=20.0, sink=None):
    """Polls every consumer round-robin until `until()` holds; records go to `sink`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            m = c.poll(0.02)
            if m is None:
                continue
            assert not m.error() or m.error().code() == KafkaError._PARTITION_EOF, m.error()
            if sink is not None and not m.error():
                sink.append((m.topic(), m.partition(), m.offset()))
        if until():
            return
    raise AssertionError("condition not met in time")


def test_split_every_record_once_with_commits_and_handover(broker, topic_name):
    create(broker, topic_name, 6)
    group = f"g-{topic_name}"
    a = consumer(broker, group, **{"enable.auto.commit": False})
    b = consumer(broker, group, **{"enable.auto.commit": False})
    a.subscribe([topic_name])
    b.subscribe([topic_name])
    pump([a, b], lambda: len(parts(a)) == 3 and len(parts(b)) == 3)
    assert set(parts(a)).isdisjoint(parts(b))
    produce(broker, topic_name, 600, 6)
    # Read half, commit synchronously (member epoch checked by the broker).
    consumed = {}
    deadline = time.time() + 20
    while len(consumed) < 300 and time.time() < deadline:
        for c in (a, b):
            m = c.poll(0.02)
            if m is not None and not m.error():
                consumed[(m.partition(), m.offset())] = c
                c.commit(message=m, asynchronous=False)
    assert len(consumed) >= 300
    # a leaves: its partitions are handed over to b, which resumes at the
    # committed offsets: every record exactly once overall.
    a.close()
    rest = []
    pump([b], lambda: len(parts(b)) == 6 and len(consumed) + len(rest) >= 600, sink=rest)
    keys = list(consumed) + [(p, o) for _, p, o in rest]
    assert len(keys) == len(set(keys)) == 600
    b.close()


def test_leave_handover_time_and_first_record(broker, topic_name):
    """Measures what the closing note quotes: subscribe -> first record and
    leave -> partitions consumed elsewhere, classic vs consumer protocol."""
    create(broker, topic_name, 4)
    produce(broker, topic_name, 4000, 4)
    results = {}
    for proto in ("classic", "consumer"):
        group = f"{proto}-{topic_name}"
        extra = {"group.protocol": proto}
        if proto == "classic":
            extra.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                          "partition.assignment.strategy": "cooperative-sticky"})
        t0 = time.time()
        a = consumer(broker, group, **extra)
        a.subscribe([topic_name])
        got = []
        pump([a], lambda: len(got) > 0, sink=got)
        first = time.time() - t0
        b = consumer(broker, group, **extra)
        b.subscribe([topic_name])
        pump([a, b], lambda: len(parts(a)) == 2 and len(parts(b)) == 2)
        t0 = time.time()
        a.close()
        later = []
        pump([b], lambda: {p for _, p, _ in later} >= {0, 1, 2, 3}, sink=later)
        results[proto] = (first, time.time() - t0)
        b.close()
    print(f"\nsubscribe->first record, leave->consumed elsewhere: {results}")
    # The consumer protocol hands over within about one heartbeat interval
    # (1 s by default); never needs a stop-the-world rebalance.
    assert results["consumer"][1] < 5


def test_crashed_member_times_out_per_group_session_config(broker, topic_name):
    create(broker, topic_name, 2)
    group = f"crash-{topic_name}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "2000", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(10)
    described = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)])
    [cfg] = [f.result(10) for f in described.values()]
    assert cfg["consumer.session.timeout.ms"].value == "2000"
    # A member in another process, killed with SIGKILL: no leave heartbeat.
    script = f"""
import sys, time
from confluent_kafka import Consumer
c = Consumer({{"bootstrap.servers": "{broker.bootstrap}", "group.id": "{group}",
              "group.protocol": "consumer"}})
c.subscribe(["{topic_name}"])
while len(c.assignment()) == 0:
    c.poll(0.05)
print("assigned", flush=True)
while True:
    c.poll(0.1)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"assigned"
        b = consumer(broker, group)
        b.subscribe([topic_name])
        pump([b], lambda: len(parts(b)) == 1)
        proc.kill()
        proc.wait()
        t0 = time.time()
        pump([b], lambda: len(parts(b)) == 2, timeout=15)
        took = time.time() - t0
        assert took < 6, took  # 2 s session + at most a heartbeat interval
        b.close()
    finally:
        proc.kill()


def test_static_member_restart_does_not_move_others(broker, topic_name):
    create(broker, topic_name, 4)
    group = f"static-{topic_name}"
    events = []
    other = consumer(broker, group)
    other.subscribe([topic_name],
                    on_assign=lambda c, ps: events.append(("assign", len(ps))),
                    on_revoke=lambda c, ps: events.append(("revoke", len(ps))))
    s1 = consumer(broker, group, **{"group.instance.id": "static-1"})
    s1.subscribe([topic_name])
    pump([other, s1], lambda: len(parts(other)) == 2 and len(parts(s1)) == 2)
    mine = parts(s1)
    settled = list(events)
    # The static member goes away (leave with epoch -2) and comes back as a
    # new process with the same instance id: same partitions, and the other
    # member sees no revocation or assignment.
    s1.close()
    pump([other], lambda: False if time.time() < 0 else True, timeout=1)
    s2 = consumer(broker, group, **{"group.instance.id": "static-1"})
    s2.subscribe([topic_name])
    pump([other, s2], lambda: len(parts(s2)) == 2)
    assert parts(s2) == mine
    t_end = time.time() + 2
    while time.time() < t_end:
        other.poll(0.05)
        s2.poll(0.05)
    assert events == settled, events
    # A second process with the same instance id while s2 is alive gets
    # UNRELEASED_INSTANCE_ID (fatal for it); the others keep their partitions.
    dup = consumer(broker, group, **{"group.instance.id": "static-1"})
    dup.subscribe([topic_name])
    errors = []
    deadline = time.time() + 10
    while not errors and time.time() < deadline:
        m = dup.poll(0.1)
        if m is not None and m.error():
            errors.append(m.error())
        other.poll(0.01)
        s2.poll(0.01)
    # librdkafka raises it as a fatal error (_FATAL) naming UNRELEASED_INSTANCE_ID's text.
    assert errors and errors[0].code() == KafkaError._FATAL, errors
    assert "instance ID is still used by another member" in errors[0].str(), errors
    assert parts(s2) == mine
    dup.close()
    s2.close()
    other.close()


def test_regex_subscription_picks_up_topics_created_later(broker, topic_name):
    prefix = f"rx-{topic_name}"
    create(broker, f"{prefix}-a", 2)
    c = consumer(broker, f"regex-{topic_name}")
    c.subscribe([f"^{prefix}-.*"])
    got = []
    produce(broker, f"{prefix}-a", 10, 2)
    pump([c], lambda: len(got) == 10, sink=got)
    # Full-name match: "^prefix" alone would not match "prefix-b".
    create(broker, f"{prefix}-b", 3)
    create(broker, f"x{prefix}-c", 1)
    produce(broker, f"{prefix}-b", 30, 3)
    produce(broker, f"x{prefix}-c", 5, 1)
    pump([c], lambda: len(got) == 40, sink=got)
    assert {t for t, _, _ in got} == {f"{prefix}-a", f"{prefix}-b"}
    assert {t for t, _ in parts(c)} == {f"{prefix}-a", f"{prefix}-b"}
    c.close()


def test_admin_describes_and_lists_by_group_type(broker, topic_name):
    create(broker, topic_name, 3)
    new_group, old_group = f"new-{topic_name}", f"old-{topic_name}"
    c = consumer(broker, new_group, **{"client.id": "new-client"})
    c.subscribe([topic_name])
    classic = consumer(broker, old_group, **{"group.protocol": "classic"})
    classic.subscribe([topic_name])
    pump([c, classic], lambda: len(parts(c)) == 3 and len(parts(classic)) == 3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [d] = [f.result(10) for f in admin.describe_consumer_groups([new_group]).values()]
    assert d.type == ConsumerGroupType.CONSUMER
    assert str(d.state).endswith("STABLE")
    assert [m.client_id for m in d.members] == ["new-client"]
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1, 2]
    [d] = [f.result(10) for f in admin.describe_consumer_groups([old_group]).values()]
    assert d.type == ConsumerGroupType.CLASSIC
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(10)
    ids = {g.group_id for g in listed.valid}
    assert new_group in ids and old_group not in ids
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(10)
    ids = {g.group_id for g in listed.valid}
    assert old_group in ids and new_group not in ids
    # The CLI describes both kinds (ConsumerGroupDescribe first, as Kafka's admin).
    weir = os.environ.get("WEIR_BIN", os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "target", "release", "weir"))
    out = subprocess.run([weir, "group", "describe", new_group, "--format", "json", "-b",
                          broker.bootstrap], capture_output=True, check=True).stdout
    d = json.loads(out)
    assert (d["state"], d["protocol_type"], d["protocol"]) == ("Stable", "consumer", "uniform")
    assert [m["client_id"] for m in d["members"]] == ["new-client"]
    assert sorted(a["partition"] for a in d["members"][0]["assignment"]) == [0, 1, 2]
    out = subprocess.run([weir, "group", "list", "--format", "json", "-b", broker.bootstrap],
                         capture_output=True, check=True).stdout
    types = {g["group"]: g["type"] for g in json.loads(out)["groups"]}
    assert (types[new_group], types[old_group]) == ("consumer", "classic")
    c.close()
    classic.close()


def test_offsets_and_membership_survive_broker_restart(own_broker, topic_name):
    b = own_broker
    create(b, topic_name, 2)
    produce(b, topic_name, 100, 2)
    group = f"restart-{topic_name}"
    c = consumer(b, group, **{"enable.auto.commit": False})
    c.subscribe([topic_name])
    got = []
    pump([c], lambda: len(got) >= 60, sink=got)
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    # The member keeps heartbeating through a restart with its epoch: it is
    # still known (no fatal GROUP_ID_NOT_FOUND) and keeps its partitions.
    before = parts(c)
    b.restart()
    produce(b, topic_name, 100, 2, prefix=b"after-")
    pump([c], lambda: len(got) >= 200, sink=got, timeout=30)
    assert parts(c) == before
    c.close()
    # A new member of the group resumes from the committed offsets.
    c2 = consumer(b, group)
    after = c2.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    assert [tp.offset for tp in after] >= [tp.offset for tp in committed]
    assert all(tp.offset > 0 for tp in committed)
    c2.close()


def test_classic_and_consumer_groups_side_by_side(broker, topic_name):
    create(broker, topic_name, 4)
    produce(broker, topic_name, 400, 4)
    classic = [consumer(broker, f"c-{topic_name}", **{"group.protocol": "classic"}) for _ in range(2)]
    modern = [consumer(broker, f"m-{topic_name}") for _ in range(2)]
    for c in classic + modern:
        c.subscribe([topic_name])
    got_classic, got_modern = [], []
    deadline = time.time() + 30
    while (len(got_classic) < 400 or len(got_modern) < 400) and time.time() < deadline:
        for c in classic:
            m = c.poll(0.02)
            if m is not None and not m.error():
                got_classic.append((m.partition(), m.offset()))
        for c in modern:
            m = c.poll(0.02)
            if m is not None and not m.error():
                got_modern.append((m.partition(), m.offset()))
    # Each group reads the whole topic once (fan-out), whatever its protocol.
    assert len(got_classic) == len(set(got_classic)) == 400
    assert len(got_modern) == len(set(got_modern)) == 400
    # A classic member cannot join the live consumer group.
    intruder = consumer(broker, f"m-{topic_name}", **{"group.protocol": "classic"})
    intruder.subscribe([topic_name])
    err = None
    deadline = time.time() + 10
    while err is None and time.time() < deadline:
        m = intruder.poll(0.1)
        if m is not None and m.error():
            err = m.error()
        for c in modern:
            c.poll(0.01)
    assert err is not None and err.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL, err
    intruder.close()
    for c in classic + modern:
        c.close()


def test_client_chosen_range_assignor_co_partitions(broker, topic_name):
    t1, t2 = f"{topic_name}-1", f"{topic_name}-2"
    create(broker, t1, 2)
    create(broker, t2, 2)
    group = f"range-{topic_name}"
    cs = [consumer(broker, group, **{"group.remote.assignor": "range"}) for _ in range(2)]
    for c in cs:
        c.subscribe([t1, t2])
    pump(cs, lambda: all(len(parts(c)) == 2 for c in cs))
    # Range over co-partitioned topics: each member gets the same partition
    # number of both topics (uniform would give each member one topic).
    for c in cs:
        [(ta, pa), (tb, pb)] = parts(c)
        assert {ta, tb} == {t1, t2} and pa == pb, parts(c)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [d] = [f.result(10) for f in admin.describe_consumer_groups([group]).values()]
    assert d.partition_assignor == "range"
    for c in cs:
        c.close()
