"""Builds the request fuzzer's seed corpus (tests/fuzz-corpus/) from real
clients: kafka-python, confluent_kafka (librdkafka) and kafkajs talk to a
Weir broker through a recording proxy, and every distinct request frame they
send is saved as `<api key>-<version>-<hash>.bin` (the frame without its
4-byte size prefix).

The proxy listens on 127.0.0.1:P and the broker on 127.0.0.2:P with
`advertised-host = 127.0.0.1`, so the connections clients open after
Metadata also go through the proxy.

    make fuzz-corpus      # or: .venv/bin/python compat/capture_corpus.py

Not part of `make test`: the corpus is committed, this only refreshes it.
"""
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.path.join(ROOT, "target", "release", "weir")
OUT = os.path.join(ROOT, "tests", "fuzz-corpus")
# Larger frames add little to a mutation fuzzer and bloat the repository.
MAX_FRAME = 16 * 1024
PER_VERSION = 6

saved = {}
lock = threading.Lock()


def save(frame):
    if len(frame) < 8 or len(frame) > MAX_FRAME:
        return
    key = int.from_bytes(frame[0:2], "big", signed=True)
    version = int.from_bytes(frame[2:4], "big", signed=True)
    digest = hashlib.sha256(frame).hexdigest()[:12]
    with lock:
        same = [d for (k, v, d) in saved if k == key and v == version]
        if len(same) >= PER_VERSION or (key, version, digest) in saved:
            return
        saved[(key, version, digest)] = True
    with open(os.path.join(OUT, f"{key:02d}-{version:02d}-{digest}.bin"), "wb") as f:
        f.write(frame)


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    size = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + size:
                        break
                    save(buf[4:4 + size])
                    buf = buf[4 + size:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen, upstream):
    def serve():
        while True:
            try:
                client, _ = listen.accept()
            except OSError:
                return
            server = socket.create_connection(upstream)
            threading.Thread(target=pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=pump, args=(server, client, False), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()


def drive_kafka_python(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kp", 2, 1, topic_configs={"retention.ms": "100000"})])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp")])
    admin.create_partitions({"kp": NewPartitions(3)})
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    for i in range(50):
        p.send("kp", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"1")])
    p.flush()
    p.close()
    c = KafkaConsumer("kp", bootstrap_servers=bootstrap, group_id="kpg",
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    for _ in c:
        pass
    c.commit()
    c.close()
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition("kp", 0)
    c.offsets_for_times({tp: 0})
    c.close()
    admin.list_groups()
    admin.describe_groups(["kpg"])
    admin.list_group_offsets("kpg")
    admin.delete_groups(["kpg"])
    admin.delete_topics(["kp"])
    admin.close()


def drive_confluent(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("ck", 2, 1, config={"cleanup.policy": "delete"})])["ck"].result(10)
    admin.describe_configs([ConfigResource("topic", "ck")])[ConfigResource("topic", "ck")].result(10)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "lz4"})
    for i in range(50):
        p.produce("ck", key=b"k%d" % i, value=b"v%d" % i, headers=[("a", b"b")])
    p.flush(10)
    t = Producer({"bootstrap.servers": bootstrap, "transactional.id": "cx"})
    t.init_transactions(10)
    t.begin_transaction()
    t.produce("ck", value=b"in-txn")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ckg", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe(["ck"])
    got = 0
    deadline = time.time() + 10
    while got < 50 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    t.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 10)
    t.commit_transaction(10)
    c.commit(asynchronous=False)
    c.offsets_for_times([TopicPartition("ck", 0, 0)], 5)
    c.close()
    admin.create_partitions([NewPartitions("ck", 3)])["ck"].result(10)
    admin.list_consumer_groups().result(10)
    admin.describe_consumer_groups(["ckg"])["ckg"].result(10)
    admin.delete_records([TopicPartition("ck", 0, 1)])
    admin.delete_topics(["ck"])["ck"].result(10)


def drive_share(bootstrap):
    from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewTopic, ResourceType)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("sq", 1, 1)])["sq"].result(10)
    res = ConfigResource(ResourceType.GROUP, "sqg", incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(10)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        p.produce("sq", value=b"q%d" % i)
    p.flush(10)
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": "sqg",
                       "share.acknowledgement.mode": "explicit"})
    c.subscribe(["sq"])
    kinds = [AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT]
    deadline = time.time() + 10
    seen = 0
    while seen < 20 and time.time() < deadline:
        for m in c.poll(0.5):
            if not m.error():
                c.acknowledge(m, kinds[seen % 3])
                seen += 1
        c.commit_sync(5)
    c.close()


def drive_consumer_protocol(bootstrap):
    """KIP-848: ConsumerGroupHeartbeat (joins, acks, leave), ConsumerGroupDescribe,
    OffsetCommit/OffsetFetch v9 with member epochs."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("cp", 2, 1)])["cp"].result(10)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        p.produce("cp", key=b"k%d" % i, value=b"v%d" % i)
    p.flush(10)
    cs = [Consumer({"bootstrap.servers": bootstrap, "group.id": "cpg", "group.protocol": "consumer",
                    "auto.offset.reset": "earliest", "group.instance.id": f"i{n}" if n else None,
                    "enable.auto.commit": False} if n else
                   {"bootstrap.servers": bootstrap, "group.id": "cpg", "group.protocol": "consumer",
                    "auto.offset.reset": "earliest", "enable.auto.commit": False})
          for n in range(2)]
    cs[0].subscribe(["cp"])
    cs[1].subscribe(["^c.*"])
    deadline = time.time() + 8
    while time.time() < deadline:
        for c in cs:
            m = c.poll(0.1)
            if m is not None and not m.error():
                c.commit(message=m, asynchronous=False)
    admin.describe_consumer_groups(["cpg"])["cpg"].result(10)
    for c in cs:
        c.close()


def drive_security(bootstrap):
    """ACL and SCRAM credential admin APIs (the broker has no authorizer:
    the ACL requests are answered SECURITY_DISABLED, which is fine for seeds)."""
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, AdminClient, ResourcePatternType,
                                       ResourceType, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    acl = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.PREFIXED, "User:alice", "*",
                     AclOperation.WRITE, AclPermissionType.ALLOW)
    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    for fut in [*admin.create_acls([acl]).values(), admin.describe_acls(flt),
                *admin.delete_acls([flt]).values()]:
        try:
            fut.result(10)
        except Exception:
            pass
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    for fut in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("alice", info, b"pw")]).values():
        fut.result(10)
    admin.describe_user_scram_credentials(["alice"])
    for fut in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)]).values():
        fut.result(10)


def drive_kafkajs(bootstrap):
    script = os.path.join(ROOT, "compat", "kafkajs", "scenarios.js")
    for scenario in ["idempotent", "transactions", "sendOffsets", "fencing"]:
        subprocess.run(["node", script, bootstrap, scenario, f"js-{uuid.uuid4().hex[:6]}"],
                       capture_output=True, timeout=120)


def main():
    os.makedirs(OUT, exist_ok=True)
    listen = socket.socket()
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.bind(("127.0.0.1", 0))
    listen.listen(64)
    port = listen.getsockname()[1]
    data = tempfile.mkdtemp(prefix="weir-corpus-")
    broker = subprocess.Popen([WEIR, "serve", "--listen", f"127.0.0.2:{port}", "--data-dir", data,
                               "--advertised-host", "127.0.0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert b"listening on" in broker.stdout.readline()
    proxy(listen, ("127.0.0.2", port))
    bootstrap = f"127.0.0.1:{port}"
    try:
        drivers = (drive_kafka_python, drive_confluent, drive_share, drive_consumer_protocol,
                   drive_security, drive_kafkajs)
        only = os.environ.get("CORPUS_DRIVERS")  # e.g. "drive_consumer_protocol"
        for drive in drivers:
            if only and drive.__name__ not in only.split(","):
                continue
            try:
                drive(bootstrap)
            except Exception as e:  # a partial run still yields frames
                print(f"{drive.__name__}: {e}", file=sys.stderr)
    finally:
        listen.close()
        broker.terminate()
        broker.wait()
    print(f"{len(saved)} request frames in {OUT}")


if __name__ == "__main__":
    main()
