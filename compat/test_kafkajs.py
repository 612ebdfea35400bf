"""kafkajs 2.2.4 (an old, non-flexible client whose consumers read
committed by default) against the real broker: idempotent producer,
transactions committed and aborted, sendOffsets with a transaction, and
fencing of a zombie transactional producer. The scenarios are in
compat/kafkajs/scenarios.js; each prints one JSON result."""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def run(broker, scenario, topic):
    p = subprocess.run(
        ["node", os.path.join(HERE, "kafkajs", "scenarios.js"), broker.bootstrap, scenario, topic],
        capture_output=True, text=True, timeout=120,
    )
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0, out
    return out


def test_kafkajs_idempotent_producer(broker, topic_name):
    r = run(broker, "idempotent", topic_name)
    assert r["offsets"] == list(range(0, 200, 10))
    assert r["values"] == [f"v{i}" for i in range(200)]


def test_kafkajs_transactions_commit_and_abort(broker, topic_name):
    r = run(broker, "transactions", topic_name)
    # The default consumer reads committed: the aborted transaction is gone.
    assert r["values"] == sorted(f"{t}-{i}" for t in ("c1", "c2") for i in range(3))


def test_kafkajs_send_offsets_commit_with_the_transaction(broker, topic_name):
    r = run(broker, "sendOffsets", topic_name)
    assert r["before"] == "-1", "offsets stay invisible until the commit"
    assert r["after"] == "5"
    assert r["sink"] == ["out"]


def test_kafkajs_zombie_is_fenced(broker, topic_name):
    r = run(broker, "fencing", topic_name)
    # kafkajs speaks EndTxn v1, which predates PRODUCER_FENCED.
    assert r["zombieError"] == "INVALID_PRODUCER_EPOCH"
    assert r["values"] == ["fresh"]
