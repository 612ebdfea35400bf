#!/usr/bin/env python3
"""What security costs: produce throughput (1 KiB records, acks=1, one
partition) and connection set-up time over each kind of listener of ONE
broker, and with the ACL authorizer on, against the release binary
(confluent_kafka, i.e. librdkafka with OpenSSL).

    .venv/bin/python benches/security_throughput.py [--records N] [--rounds R]

Listeners: PLAINTEXT, SSL, SASL_PLAINTEXT (PLAIN and SCRAM-SHA-512),
SASL_SSL (SCRAM-SHA-512). The authorizer run is a second broker with
`authorizer = "acl"` and one prefixed WRITE ACL, produced to over
PLAINTEXT. Rounds alternate the order of the variants; the medians are
reported as ratios to PLAINTEXT measured in the same rounds. Each producer
runs in its own process. Certificates come from compat/certs.py.
"""
import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.path.join(ROOT, "target", "release", "weir")
sys.path.insert(0, os.path.join(ROOT, "compat"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(config, data):
    proc = subprocess.Popen([WEIR, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                             "--config", config], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    assert "listening on" in line, line
    return proc, line.split("listening on ")[1].split()[0]


def produce(conf, topic, records, out):
    from confluent_kafka import Producer
    p = Producer({**conf, "acks": "1", "linger.ms": "5", "compression.type": "none",
                  "queue.buffering.max.messages": 1000000,
                  "queue.buffering.max.kbytes": 1048576})
    p.list_topics(topic, timeout=10)
    payload = b"\x42" * 1024
    t0 = time.time()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, payload)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0
    out.put(records * 1024 / (time.time() - t0) / 1e6)


def connect_ms(conf, n):
    """Median ms from a new client to its first Metadata answer (TCP, TLS
    handshake, ApiVersions, SASL)."""
    from confluent_kafka.admin import AdminClient
    times = []
    for _ in range(n):
        t0 = time.time()
        a = AdminClient(conf)
        a.list_topics(timeout=10)
        times.append((time.time() - t0) * 1000)
        del a
    return statistics.median(times)


def rate(conf, topic, records):
    q = mp.Queue()
    p = mp.Process(target=produce, args=(conf, topic, records, q))
    p.start()
    r = q.get(timeout=600)
    p.join()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import certs
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       AdminClient, ResourcePatternType, ResourceType,
                                       ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    tmp = tempfile.mkdtemp(prefix="weir-secbench-")
    os.makedirs(os.path.join(tmp, "pki"))
    pki = certs.write_pki(os.path.join(tmp, "pki"))
    ports = {name: free_port() for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL")}
    tls = (f'ssl-certificate-location = "{pki.server_chain}"\n'
           f'ssl-key-location = "{pki.server_key}"\n')
    cfg = os.path.join(tmp, "secure.toml")
    with open(cfg, "w") as f:
        f.write(tls + '[sasl-plain-users]\nbench = "bench-secret"\n')
        for name, port in ports.items():
            f.write(f'[[listeners]]\naddress = "127.0.0.1:{port}"\nsecurity-protocol = "{name}"\n')
    acl_cfg = os.path.join(tmp, "acl.toml")
    acl_admin_port = free_port()
    with open(acl_cfg, "w") as f:
        f.write('authorizer = "acl"\nsuper-users = ["User:admin"]\n'
                '[sasl-plain-users]\nadmin = "admin-secret"\n'
                f'[[listeners]]\naddress = "127.0.0.1:{acl_admin_port}"\n'
                'security-protocol = "SASL_PLAINTEXT"\n')
    broker, plain = start(cfg, os.path.join(tmp, "data"))
    acl_broker, acl_plain = start(acl_cfg, os.path.join(tmp, "data-acl"))
    # The authorizer's baseline: a broker like the ACL one, without it.
    base_cfg = os.path.join(tmp, "base.toml")
    open(base_cfg, "w").close()
    base_broker, base_plain = start(base_cfg, os.path.join(tmp, "data-base"))
    try:
        admin = AdminClient({"bootstrap.servers": plain})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("bench", info, b"bench-secret")])["bench"].result(10)
        # ANONYMOUS may create and write bench-* (WRITE implies DESCRIBE);
        # the ACLs come from the super user over SASL.
        acls = [AclBinding(ResourceType.TOPIC, "bench-", ResourcePatternType.PREFIXED,
                           "User:ANONYMOUS", "*", op, AclPermissionType.ALLOW)
                for op in (AclOperation.WRITE, AclOperation.CREATE)]
        acl_admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{acl_admin_port}",
                                 "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                 "sasl.username": "admin", "sasl.password": "admin-secret"})
        for fut in acl_admin.create_acls(acls).values():
            fut.result(10)
        sasl = {"sasl.username": "bench", "sasl.password": "bench-secret"}
        variants = {
            "PLAINTEXT": {"bootstrap.servers": plain},
            "SSL": {"bootstrap.servers": f"127.0.0.1:{ports['SSL']}", "security.protocol": "SSL",
                    "ssl.ca.location": pki.ca},
            "SASL_PLAINTEXT PLAIN": {"bootstrap.servers": f"127.0.0.1:{ports['SASL_PLAINTEXT']}",
                                     "security.protocol": "SASL_PLAINTEXT",
                                     "sasl.mechanism": "PLAIN", **sasl},
            "SASL_PLAINTEXT SCRAM-SHA-512": {
                "bootstrap.servers": f"127.0.0.1:{ports['SASL_PLAINTEXT']}",
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", **sasl},
            "SASL_SSL SCRAM-SHA-512": {"bootstrap.servers": f"127.0.0.1:{ports['SASL_SSL']}",
                                       "security.protocol": "SASL_SSL", "ssl.ca.location": pki.ca,
                                       "sasl.mechanism": "SCRAM-SHA-512", **sasl},
            "PLAINTEXT, second broker": {"bootstrap.servers": base_plain},
            "PLAINTEXT, authorizer on": {"bootstrap.servers": acl_plain},
        }
        rates = {k: [] for k in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                topic = f"bench-{r}-{abs(hash(name))}"
                mbs = rate(variants[name], topic, args.records)
                rates[name].append(mbs)
                # Deleted at once: page cache growth must not favour the
                # variants measured first (docs/performance.md).
                owner = acl_admin if name.endswith("authorizer on") else AdminClient(
                    {"bootstrap.servers": base_plain if "second" in name else plain})
                owner.delete_topics([topic])[topic].result(10)
                print(f"round {r}: {name}: {mbs:.0f} MB/s", flush=True)
        base = statistics.median(rates["PLAINTEXT"])
        second = statistics.median(rates["PLAINTEXT, second broker"])
        print(f"\nproduce {args.records} x 1 KiB, acks=1, medians of {args.rounds} rounds:\n")
        print("| listener | MB/s | vs PLAINTEXT | connect to first Metadata (ms, median of 20) |")
        print("|---|---|---|---|")
        for name, conf in variants.items():
            m = statistics.median(rates[name])
            ref = second if name.endswith("authorizer on") else base
            print(f"| {name} | {m:.0f} | {m / ref:.2f}x | {connect_ms(conf, 20):.1f} |", flush=True)
        print("\n(the authorizer row is relative to the second broker, the same without it)")
    finally:
        for p in (broker, acl_broker, base_broker):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
