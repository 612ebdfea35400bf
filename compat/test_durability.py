"""Acknowledged data survives a graceful restart and a kill -9 of the broker."""
import os
import time

from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from conftest import read_partition0



def produce_confluent(broker, topic, n, prefix):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    acked = []
    for i in range(n):
        p.produce(topic, b"%s-%d" % (prefix, i), partition=0,
                  on_delivery=lambda e, m: acked.append(m.value()) if e is None else None)
    assert p.flush(30) == 0
    return acked


def test_restart_and_kill9_keep_acked_data(own_broker):
    b = own_broker
    acked = produce_confluent(b, "durable", 2000, b"a")
    assert len(acked) == 2000
    b.restart()
    assert read_partition0(b, "durable", 2000, timeout=20) == acked
    more = produce_confluent(b, "durable", 2000, b"b")
    b.kill9()
    assert not os.path.exists(os.path.join(b.data_dir, ".clean-shutdown"))
    b.start()
    assert read_partition0(b, "durable", 4000, timeout=20) == acked + more


def test_kafka_python_restart_and_kill9(own_broker):
    b = own_broker
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
    futures = [p.send("kp", value=b"v%d" % i, partition=0) for i in range(500)]
    p.flush()
    offsets = [f.get(timeout=10).offset for f in futures]
    assert offsets == list(range(500))
    p.close()
    b.kill9()
    b.start()
    tp = KTopicPartition("kp", 0)
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest")
    c.assign([tp])
    got = []
    deadline = time.time() + 20
    while len(got) < 500 and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got.extend(r.value for r in recs)
    assert got == [b"v%d" % i for i in range(500)]
    c.close()
