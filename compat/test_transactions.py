"""Exactly-once with real clients: idempotent producers (confluent_kafka and
kafka-python), transactions committed and aborted as seen by read_committed
and read_uncommitted consumers, consume-transform-produce with
send_offsets_to_transaction, zombie fencing, the transaction timeout, and
transactions across a broker kill -9."""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from conftest import FAST_GROUPS, make_broker


def create(broker, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def txn_producer(broker, tid, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "transactional.id": tid, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(10)
    return p


def consume_all(broker, topic, isolation, partitions=1, expect=None, timeout=8.0):
    """Every record value from offset 0 of each partition, stopping at the
    end of the log (as the consumer's isolation level sees it)."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"reader-{uuid.uuid4().hex[:6]}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, eof = [], set()
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                if len(eof) == partitions and (expect is None or len(got) >= expect):
                    break
            continue
        got.append(m.value())
    c.close()
    return got


def high(broker, topic, isolation, partition=0):
    """The end offset as ListOffsets answers it for the isolation level
    (read_committed: the last stable offset)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


def test_confluent_idempotent_producer_writes_each_record_once(broker, topic_name):
    create(broker, topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2})
    for i in range(2000):
        p.produce(topic_name, value=b"%d" % i)
    assert p.flush(20) == 0
    got = consume_all(broker, topic_name, "read_uncommitted", expect=2000)
    assert got == [b"%d" % i for i in range(2000)]


def test_kafka_python_idempotent_producer(broker, topic_name):
    create(broker, topic_name)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    futures = [p.send(topic_name, b"v%d" % i) for i in range(500)]
    offsets = [f.get(timeout=10).offset for f in futures]
    p.close()
    assert offsets == list(range(500))
    c = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=3000)
    values = [m.value for m in c]
    c.close()
    assert values == [b"v%d" % i for i in range(500)]


def test_commit_and_abort_by_isolation_level(broker, topic_name):
    create(broker, topic_name, partitions=2)
    p = txn_producer(broker, f"tid-{topic_name}")
    p.begin_transaction()
    for i in range(6):
        p.produce(topic_name, value=b"c1-%d" % i, partition=i % 2)
    p.commit_transaction(10)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic_name, value=b"ab-%d" % i, partition=i % 2)
    p.flush(10)
    p.abort_transaction(10)
    p.begin_transaction()
    p.produce(topic_name, value=b"c2", partition=1)
    p.commit_transaction(10)

    committed = consume_all(broker, topic_name, "read_committed", partitions=2, expect=7)
    assert sorted(committed) == sorted([b"c1-%d" % i for i in range(6)] + [b"c2"])
    everything = consume_all(broker, topic_name, "read_uncommitted", partitions=2, expect=11)
    assert sorted(everything) == sorted(
        [b"c1-%d" % i for i in range(6)] + [b"ab-%d" % i for i in range(4)] + [b"c2"])


def test_open_transaction_holds_back_read_committed(broker, topic_name):
    create(broker, topic_name)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic_name, value=b"before")
    plain.flush(10)
    p = txn_producer(broker, f"tid-{topic_name}")
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=b"open-%d" % i)
    p.flush(10)
    # Records after the open transaction's first offset are not stable,
    # even a non-transactional one written later.
    plain.produce(topic_name, value=b"after")
    plain.flush(10)
    assert high(broker, topic_name, "read_uncommitted") == 5
    assert high(broker, topic_name, "read_committed") == 1
    assert consume_all(broker, topic_name, "read_committed", timeout=3) == [b"before"]
    p.commit_transaction(10)
    # The marker takes an offset: 1 + 3 + 1 + marker.
    assert high(broker, topic_name, "read_committed") == 6
    assert consume_all(broker, topic_name, "read_committed", expect=5) == [
        b"before", b"open-0", b"open-1", b"open-2", b"after"]


def test_consume_transform_produce_commits_offsets_with_the_transaction(broker, topic_name):
    source, sink = topic_name + "-in", topic_name + "-out"
    create(broker, source)
    create(broker, sink)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(source, value=b"%d" % i)
    plain.flush(10)
    group = f"etl-{topic_name}"

    def run(commit, count):
        consumer = Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "isolation.level": "read_committed",
        })
        consumer.subscribe([source])
        p = txn_producer(broker, f"etl-{topic_name}")
        p.begin_transaction()
        seen = []
        deadline = time.time() + 15
        while len(seen) < count and time.time() < deadline:
            m = consumer.poll(0.2)
            if m is None or m.error():
                continue
            seen.append(m.value())
            p.produce(sink, value=b"x" + m.value())
        assert len(seen) == count
        p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                      consumer.consumer_group_metadata(), 10)
        if commit:
            p.commit_transaction(10)
        else:
            p.abort_transaction(10)
        consumer.close()
        return seen

    # An aborted run leaves neither output nor committed offsets...
    first = run(commit=False, count=4)
    assert first == [b"0", b"1", b"2", b"3"]
    # ...so the next run starts over from the beginning, and commits.
    second = run(commit=True, count=10)
    assert second == [b"%d" % i for i in range(10)]
    assert consume_all(broker, sink, "read_committed", expect=10) == [b"x%d" % i for i in range(10)]
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    [tp] = check.committed([TopicPartition(source, 0)], timeout=10)
    check.close()
    assert tp.offset == 10


def test_zombie_producer_is_fenced(broker, topic_name):
    create(broker, topic_name)
    tid = f"tid-{topic_name}"
    zombie = txn_producer(broker, tid)
    zombie.begin_transaction()
    zombie.produce(topic_name, value=b"zombie")
    zombie.flush(10)
    fresh = txn_producer(broker, tid)  # fences the zombie, aborting its transaction
    fresh.begin_transaction()
    fresh.produce(topic_name, value=b"fresh")
    fresh.commit_transaction(10)
    zombie.produce(topic_name, value=b"zombie-2")
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(10)
    err = e.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH)
    assert consume_all(broker, topic_name, "read_committed", expect=1) == [b"fresh"]
    assert high(broker, topic_name, "read_committed") == high(broker, topic_name, "read_uncommitted")


def test_transaction_timeout_aborts_and_max_timeout_is_enforced(tmp_path_factory, topic_name):
    b = make_broker(tmp_path_factory, FAST_GROUPS + "transaction-max-timeout-ms = 60000\n")
    try:
        with pytest.raises(KafkaException) as e:
            txn_producer(b, "too-long", **{"transaction.timeout.ms": 120000})
        assert e.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT
        create(b, topic_name)
        p = txn_producer(b, f"tid-{topic_name}", **{"transaction.timeout.ms": 1000})
        p.begin_transaction()
        p.produce(topic_name, value=b"late")
        p.flush(10)
        assert high(b, topic_name, "read_committed") == 0
        # The broker aborts it (a marker moves the LSO past it).
        deadline = time.time() + 10
        while high(b, topic_name, "read_committed") != 2 and time.time() < deadline:
            time.sleep(0.2)
        assert high(b, topic_name, "read_committed") == 2
        with pytest.raises(KafkaException):
            p.commit_transaction(10)
        assert consume_all(b, topic_name, "read_committed", timeout=3) == []
    finally:
        b.close()


def test_transactions_across_kill9(own_broker, topic_name):
    b = own_broker
    create(b, topic_name)
    tid = f"tid-{topic_name}"
    p = txn_producer(b, tid)
    p.begin_transaction()
    p.produce(topic_name, value=b"committed")
    p.commit_transaction(10)
    p.begin_transaction()
    p.produce(topic_name, value=b"in-flight")
    p.flush(10)
    b.kill9()
    b.start()
    # The open transaction is still open after the crash: nothing past it is stable.
    assert high(b, topic_name, "read_committed") == 2
    # A new instance with the same id aborts it.
    p2 = txn_producer(b, tid)
    p2.begin_transaction()
    p2.produce(topic_name, value=b"after-restart")
    p2.commit_transaction(10)
    b.kill9()
    b.start()
    assert consume_all(b, topic_name, "read_committed", expect=2) == [b"committed", b"after-restart"]
    assert high(b, topic_name, "read_committed") == high(b, topic_name, "read_uncommitted")


def test_exactly_once_with_kill9_inside_transactions(own_broker, topic_name):
    """30 transactions of 20 records over 3 partitions, every third aborted;
    the broker is killed (-9) and restarted twice between a transaction's
    produce and its commit. A read_committed consumer must then see every
    committed transaction whole, exactly once, and nothing aborted."""
    b = own_broker
    create(b, topic_name, partitions=3)
    p = txn_producer(b, f"tid-{topic_name}")
    committed, aborted = set(), set()
    for i in range(30):
        p.begin_transaction()
        for j in range(20):
            p.produce(topic_name, value=f"t{i}-{j}".encode(), partition=j % 3)
        if i in (10, 20):
            p.flush(15)
            b.kill9()
            b.start()
        if i % 3:
            p.commit_transaction(30)
            committed.add(i)
        else:
            p.flush(15)
            p.abort_transaction(30)
            aborted.add(i)
    values = consume_all(b, topic_name, "read_committed", partitions=3, expect=20 * len(committed))
    assert len(values) == len(set(values)), "no duplicates"
    per_txn = {}
    for v in values:
        t = int(v.decode().split("-")[0][1:])
        per_txn[t] = per_txn.get(t, 0) + 1
    assert set(per_txn) == committed
    assert all(n == 20 for n in per_txn.values()), per_txn
    assert high(b, topic_name, "read_committed") == high(b, topic_name, "read_uncommitted")
