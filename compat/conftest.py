"""Real Kafka clients against the real `weir` binary.

The `broker` fixture starts the release binary on an ephemeral port with a
fresh data directory and yields a handle that can stop (SIGTERM), kill -9 and
restart it on the same port and data directory.
"""
import os
import signal
import subprocess
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.environ.get("WEIR_BIN", os.path.join(ROOT, "target", "release", "weir"))


class Broker:
    def __init__(self, data_dir, extra_config=""):
        self.data_dir = str(data_dir)
        self.config = os.path.join(self.data_dir, "..", f"weir-{uuid.uuid4().hex[:8]}.toml")
        with open(self.config, "w") as f:
            # Small groups of knobs tests rely on; everything else default.
            f.write(extra_config)
        self.port = 0
        self.http = None  # "host:port" of the HTTP API, when the broker announced one
        self.proc = None
        self.log = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.log = open(os.path.join(self.data_dir, "..", "weir.log"), "ab")
        self.proc = subprocess.Popen(
            [WEIR, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, "--config", self.config],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline().decode()
        assert "listening on" in line, f"no readiness line: {line!r}"
        self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        self.http = line.split("; HTTP on ", 1)[1].split()[0] if "; HTTP on " in line else None
        return self

    def stop(self):
        """Graceful: SIGTERM, must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()


# Groups with short session timeouts fail over quickly in tests.
FAST_GROUPS = "group-min-session-timeout-ms = 500\n"


def make_broker(tmp_path_factory, extra_config=FAST_GROUPS):
    base = tmp_path_factory.mktemp("weir")
    data = base / "data"
    data.mkdir()
    return Broker(data, extra_config).start()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = make_broker(tmp_path_factory)
    yield b
    b.close()


@pytest.fixture
def own_broker(tmp_path_factory):
    """A broker of the test's own, for restarts and kills."""
    b = make_broker(tmp_path_factory)
    yield b
    b.close()


@pytest.fixture(scope="module")
def http_broker(tmp_path_factory):
    """A broker with its HTTP listener on a free port (`Broker.http`)."""
    b = make_broker(tmp_path_factory, FAST_GROUPS + 'http-listen = "127.0.0.1:0"\n')
    assert b.http is not None, "readiness line did not announce the HTTP listener"
    yield b
    b.close()


def read_partition0(broker, topic, expected, timeout=15):
    """Values of partition 0 of `topic` from offset 0, until `expected`
    records arrived or `timeout` seconds passed (confluent_kafka, no group)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value())
    c.close()
    return out


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
