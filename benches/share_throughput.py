#!/usr/bin/env python3
"""Share groups: records/s acknowledged by 1 and by 4 share consumers on
ONE partition, against the release binary (confluent_kafka ShareConsumer,
implicit acknowledgement: each poll accepts the previous one's records).

    .venv/bin/python benches/share_throughput.py [--records N]

Each consumer is its own process (librdkafka work is in C threads, but one
Python poll loop per process keeps the GIL out of the measurement).
"""
import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.path.join(ROOT, "target", "release", "weir")


def consume(bootstrap, group, topic, stop_after_idle, out):
    from confluent_kafka import ShareConsumer
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "max.poll.records": 500})
    c.subscribe([topic])
    n, first, last = 0, None, time.time()
    while time.time() - last < stop_after_idle:
        msgs = c.poll(0.2)
        got = sum(1 for m in msgs if not m.error())
        if got:
            first = first or time.time()
            n += got
            last = time.time()
    c.commit_sync(10)
    c.close()
    out.put((n, first, last))


def run(bootstrap, topic, consumers, records):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ResourceType)
    group = f"bench-{consumers}-{time.time_ns()}"
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    q = mp.Queue()
    procs = [mp.Process(target=consume, args=(bootstrap, group, topic, 3.0, q)) for _ in range(consumers)]
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    total = sum(r[0] for r in results)
    start = min(r[1] for r in results if r[1])
    end = max(r[2] for r in results)
    return total, total / (end - start), [r[0] for r in results]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    data = tempfile.mkdtemp(prefix="weir-share-bench-")
    broker = subprocess.Popen([WEIR, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = broker.stdout.readline().decode()
    bootstrap = "127.0.0.1:" + line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("work", 1, 1)])["work"].result(10)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for i in range(args.records):
            p.produce("work", value=b"x" * 100, partition=0)
            if i % 10000 == 0:
                p.poll(0)
        p.flush(60)
        for n in (1, 4):
            total, rate, split = run(bootstrap, "work", n, args.records)
            print(f"{n} share consumer(s), one partition: {total} records acknowledged, "
                  f"{rate:,.0f} records/s (per consumer: {split})")
            assert total == args.records, "every record exactly once"
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    sys.exit(main())
