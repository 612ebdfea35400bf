"""Security against real clients: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
on SASL_PLAINTEXT and SASL_SSL listeners, TLS and mutual TLS, SCRAM
credentials (AlterUserScramCredentials), ACLs (CreateAcls/DescribeAcls/
DeleteAcls and their enforcement), persistence of both across restarts, and
KIP-368 re-authentication, with confluent_kafka, kafka-python and kafkajs.

Certificates come from compat/certs.py (a test CA, a server certificate for
127.0.0.1/localhost, a client certificate CN=client1,O=Weir Test, and an
untrusted CA with a client certificate of the same subject). The kafkajs
scenarios are in compat/kafkajs/security.js.

Every listener port besides `--listen` (PLAINTEXT) is picked by the test, so
it is known in advance and stays the same across restarts.
"""
import dataclasses
import json
import logging
import os
import socket
import subprocess
import time
import uuid

import kafka.errors as kerr
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType
from kafka.admin import NewTopic as KNewTopic
from kafka.admin import ResourcePattern, ResourcePatternFilter
from kafka.admin import ResourceType as KResourceType

from certs import write_pki
from conftest import FAST_GROUPS, Broker, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SECURITY_JS = os.path.join(HERE, "kafkajs", "security.js")

ALL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CLIENTS = ["confluent", "kafka-python", "kafkajs"]
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
# The SCRAM user of the module brokers, created with AlterUserScramCredentials.
SCRAM_USER, SCRAM_PASSWORD = "carol", "carol-secret"
CLUSTER = "kafka-cluster"


# --------------------------------------------------------------------------
# Client endpoints: one description, three clients' configurations.


@dataclasses.dataclass(frozen=True)
class Endpoint:
    bootstrap: str
    protocol: str = "PLAINTEXT"
    mechanism: str = None
    username: str = None
    password: str = None
    ca: str = None
    cert: str = None
    key: str = None

    def user(self, mechanism, username, password):
        return dataclasses.replace(self, mechanism=mechanism, username=username, password=password)

    def tls(self, ca=None, cert=None, key=None):
        return dataclasses.replace(self, ca=ca, cert=cert, key=key)

    def ck(self, **extra):
        """confluent_kafka (librdkafka) configuration."""
        c = {"bootstrap.servers": self.bootstrap, "security.protocol": self.protocol}
        if self.mechanism:
            c.update({"sasl.mechanisms": self.mechanism, "sasl.username": self.username,
                      "sasl.password": self.password})
        if self.ca:
            c["ssl.ca.location"] = self.ca
        if self.cert:
            c.update({"ssl.certificate.location": self.cert, "ssl.key.location": self.key})
        c.update(extra)
        return c

    def kp(self, **extra):
        """kafka-python keyword arguments."""
        c = {"bootstrap_servers": self.bootstrap, "security_protocol": self.protocol}
        if self.mechanism:
            c.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                     sasl_plain_password=self.password)
        if self.ca:
            c["ssl_cafile"] = self.ca
        if self.cert:
            c.update(ssl_certfile=self.cert, ssl_keyfile=self.key)
        c.update(extra)
        return c

    def js(self):
        """kafkajs client description (read by security.js)."""
        c = {"brokers": [self.bootstrap]}
        if self.mechanism:
            c["sasl"] = {"mechanism": self.mechanism.lower(), "username": self.username, "password": self.password}
        if self.protocol in ("SSL", "SASL_SSL"):
            # No CA: Node's default store, which does not trust the test CA.
            c["ssl"] = {k: v for k, v in (("ca", self.ca), ("cert", self.cert), ("key", self.key)) if v} or True
        return c


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def q(s):
    return json.dumps(str(s))  # a TOML basic string


class SecureBroker:
    """A Weir broker with extra listeners: `listeners` maps a name to
    (security protocol, SASL mechanisms or None)."""

    def __init__(self, tmp_path_factory, pki, listeners, *, client_auth="none", acl=False, extra="",
                 key_format="pkcs8"):
        self.pki = pki
        self.listeners = listeners
        self.ports = {name: free_port() for name in listeners}
        chain, key = pki.server[key_format]
        top = [FAST_GROUPS.rstrip("\n"), f"ssl-certificate-location = {q(chain)}", f"ssl-key-location = {q(key)}"]
        if client_auth != "none":
            top += [f"ssl-client-auth = {q(client_auth)}", f"ssl-truststore-location = {q(pki.ca)}"]
        if acl:
            top += ['authorizer = "acl"', 'super-users = ["User:admin"]', "allow-everyone-if-no-acl-found = false"]
        if extra:
            top.append(extra.rstrip("\n"))
        tables = ["[sasl-plain-users]"] + [f"{u} = {q(p)}" for u, p in PLAIN_USERS.items()]
        for name, (protocol, mechanisms) in listeners.items():
            tables += ["", "[[listeners]]", f'address = "127.0.0.1:{self.ports[name]}"',
                       f"security-protocol = {q(protocol)}"]
            if mechanisms:
                tables.append(f"sasl-enabled-mechanisms = {json.dumps(mechanisms)}")
        base = tmp_path_factory.mktemp("weir-sec")
        data = base / "data"
        data.mkdir()
        self.broker = Broker(data, "\n".join(top + [""] + tables) + "\n").start()

    @property
    def plain(self):
        """The PLAINTEXT listener (`--listen`)."""
        return Endpoint(self.broker.bootstrap)

    def endpoint(self, name):
        """A listener, with the test CA trusted if it is a TLS one."""
        protocol = self.listeners[name][0]
        ep = Endpoint(f"127.0.0.1:{self.ports[name]}", protocol)
        return ep.tls(ca=self.pki.ca) if protocol in ("SSL", "SASL_SSL") else ep

    def sasl_user(self, name, user, mechanism="PLAIN"):
        password = PLAIN_USERS.get(user) if mechanism == "PLAIN" else None
        return self.endpoint(name).user(mechanism, user, password)

    def close(self):
        self.broker.close()


# --------------------------------------------------------------------------
# Client helpers.


def run_js(ep, scenario, topic, args=None, timeout=90):
    p = subprocess.run(
        ["node", SECURITY_JS, json.dumps(ep.js()), scenario, topic, json.dumps(args or {})],
        capture_output=True, text=True, timeout=timeout,
    )
    lines = p.stdout.strip().splitlines()
    assert lines, f"kafkajs printed nothing; stderr: {p.stderr[-2000:]}"
    out = json.loads(lines[-1])
    assert p.returncode == 0, out
    return out


_admins = {}


def admin_of(ep):
    """A confluent_kafka AdminClient for an endpoint, kept alive: the
    futures of a client that was garbage-collected fail with _DESTROY."""
    if ep not in _admins:
        _admins[ep] = AdminClient(ep.ck())
    return _admins[ep]


def kafka_error(excinfo):
    """The KafkaError of a confluent_kafka KafkaException."""
    return excinfo.value.args[0]


def ck_create_topic(ep, topic, partitions=1):
    admin_of(ep).create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=15)


def ck_produce(ep, topic, values, **conf):
    """Produces `values`; returns their delivery errors (None = delivered)."""
    reports = []
    p = Producer(ep.ck(**{"message.timeout.ms": 5000, "socket.timeout.ms": 5000, **conf}))
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(20) == 0
    return reports


def ck_codes(reports):
    return [None if e is None else e.code() for e in reports]


def ck_attempt(ep, topic, **conf):
    """A producer that is expected to be refused: returns (errors reported
    to error_cb, delivery errors)."""
    errors = []
    reports = []
    p = Producer(ep.ck(**{"error_cb": errors.append, "message.timeout.ms": 2000, "socket.timeout.ms": 3000,
                          "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500, **conf}))
    p.produce(topic, b"refused", on_delivery=lambda err, msg: reports.append(err))
    p.flush(10)
    p.poll(0.2)
    return errors, reports


def ck_read(ep, topic, expected, partition=0, timeout=15, **conf):
    """Values of one partition from the start, by assignment (no group)."""
    c = Consumer(ep.ck(**{"group.id": f"probe-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False, **conf}))
    c.assign([TopicPartition(topic, partition, 0)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m.value().decode())
    c.close()
    return out


def end_offset(ep, topic, partition=0):
    c = Consumer(ep.ck(**{"group.id": f"probe-{uuid.uuid4().hex[:8]}"}))
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    c.close()
    return hi


def ck_first_error(c, timeout=15):
    """Polls until the consumer reports an error; returns (error, values seen)."""
    values = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.3)
        if m is None:
            continue
        if m.error():
            return m.error(), values
        values.append(m.value().decode())
    return None, values


def ck_round_trip(ep, topic, n):
    ck_create_topic(ep, topic)
    values = [f"ck-{i}" for i in range(n)]
    assert ck_codes(ck_produce(ep, topic, values)) == [None] * n
    c = Consumer(ep.ck(**{"group.id": f"ck-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    c.commit(asynchronous=False)
    [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
    c.close()
    return values, got, tp.offset


def kp_round_trip(ep, topic, n):
    a = KafkaAdminClient(**ep.kp())
    a.create_topics([KNewTopic(topic, 1, 1)])
    a.close()
    values = [f"kp-{i}" for i in range(n)]
    p = KafkaProducer(**ep.kp())
    for v in values:
        p.send(topic, v.encode()).get(timeout=10)
    p.close()
    c = KafkaConsumer(topic, group_id=f"kp-{topic}", auto_offset_reset="earliest", enable_auto_commit=False,
                      **ep.kp())
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got.extend(r.value.decode() for r in recs)
    c.commit()
    committed = c.committed(KTP(topic, 0))
    c.close()
    return values, got, committed


def js_round_trip(ep, topic, n):
    assert n == 5, "security.js produces 5 records"
    r = run_js(ep, "roundTrip", topic)
    assert r["partitions"] == 1
    assert r["baseOffset"] == 0
    return [f"js-{i}" for i in range(n)], r["values"], int(r["committed"])


def round_trip(client, ep, topic, reader):
    """Create a topic, produce 5 records, consume them with a group and
    commit, all through `ep` with `client`; `reader` (another endpoint)
    reads the partition back independently."""
    n = 5
    fn = {"confluent": ck_round_trip, "kafka-python": kp_round_trip, "kafkajs": js_round_trip}[client]
    values, got, committed = fn(ep, topic, n)
    assert got == values
    assert committed == n
    assert ck_read(reader, topic, n) == values


def assert_sasl_refused(client, ep, topic, caplog=None):
    """The client reports an authentication failure and delivers nothing."""
    if client == "confluent":
        errors, reports = ck_attempt(ep, topic)
        assert len(reports) == 1 and reports[0] is not None, "a refused producer delivered a record"
        assert KafkaError._AUTHENTICATION in [e.code() for e in errors], [e.str() for e in errors]
    elif client == "kafka-python":
        # kafka-python 3.0.12 retries a failed authentication until its
        # bootstrap timeout; the broker's error is in its log.
        with caplog.at_level(logging.WARNING, logger="kafka"):
            with pytest.raises((kerr.SaslAuthenticationFailedError, kerr.KafkaTimeoutError)):
                p = KafkaProducer(**ep.kp(bootstrap_timeout_ms=1500, max_block_ms=1500))
                p.send(topic, b"refused").get(timeout=5)
        assert "SaslAuthenticationFailedError" in caplog.text, caplog.text[-1500:]
    else:
        r = run_js(ep, "produce", topic)
        assert not r["ok"], r
        assert "KafkaJSSASLAuthenticationError" in r["error"]["names"], r


def assert_tls_refused(client, ep, caplog, server_untrusted):
    """No connection: the TLS handshake (or the first read after it, when
    the broker rejects a client certificate under TLS 1.3) fails."""
    if client == "confluent":
        errors = []
        a = AdminClient(ep.ck(**{"error_cb": errors.append, "socket.timeout.ms": 3000,
                                 "reconnect.backoff.max.ms": 500}))
        with pytest.raises(KafkaException):
            a.list_topics(timeout=2)
        a.poll(0.5)
        messages = [e.str() for e in errors]
        assert {e.code() for e in errors} & {KafkaError._SSL, KafkaError._TRANSPORT}, messages
        assert KafkaError._AUTHENTICATION not in [e.code() for e in errors], messages
        if server_untrusted:
            assert any("certificate verify failed" in m for m in messages), messages
    elif client == "kafka-python":
        with caplog.at_level(logging.WARNING, logger="kafka"):
            with pytest.raises((kerr.KafkaTimeoutError, kerr.KafkaConnectionError)):
                a = KafkaAdminClient(**ep.kp(bootstrap_timeout_ms=1500))
                a.close()
        if server_untrusted:
            assert "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text[-2000:]
    else:
        r = run_js(ep, "connect", "-")
        assert not r["ok"], r
        if server_untrusted:
            assert any("certificate" in m.lower() for m in r["error"]["messages"]), r


def acl_binding(restype, name, principal, op, perm=AclPermissionType.ALLOW, pattern=ResourcePatternType.LITERAL):
    return AclBinding(restype, name, pattern, principal, "*", op, perm)


def any_acl_of(principal, restype=ResourceType.ANY):
    return AclBindingFilter(restype, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def create_acls(ep, *bindings):
    futures = admin_of(ep).create_acls(list(bindings))
    for b, f in futures.items():
        assert f.result(timeout=10) is None, b


def describe_acls(ep, acl_filter):
    return set(admin_of(ep).describe_acls(acl_filter).result(timeout=10))


def delete_acls(ep, *filters):
    futures = admin_of(ep).delete_acls(list(filters))
    return {flt: set(f.result(timeout=10)) for flt, f in futures.items()}


def upsert_scram(ep, user, password, mechanisms=((ScramMechanism.SCRAM_SHA_256, 4096),
                                                 (ScramMechanism.SCRAM_SHA_512, 4096))):
    alterations = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, it), password.encode())
                   for m, it in mechanisms]
    futures = admin_of(ep).alter_user_scram_credentials(alterations)
    for f in futures.values():
        assert f.result(timeout=15) is None


def scram_infos(ep, user):
    """{mechanism: iterations} of a user's SCRAM credentials."""
    d = admin_of(ep).describe_user_scram_credentials([user])[user].result(timeout=10)
    assert d.user == user
    return {i.mechanism: i.iterations for i in d.scram_credential_infos}


def credentials(mechanism):
    """The module brokers' user for a mechanism (PLAIN users are in the
    config file, the SCRAM user was created with AlterUserScramCredentials)."""
    if mechanism == "PLAIN":
        return "alice", PLAIN_USERS["alice"]
    return SCRAM_USER, SCRAM_PASSWORD


# --------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return write_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def sec(tmp_path_factory, pki):
    """No authorizer: SASL_PLAINTEXT (all mechanisms), SSL, SASL_SSL with
    SCRAM-SHA-512 only; carol's SCRAM credentials created by admin over PLAIN."""
    b = SecureBroker(tmp_path_factory, pki, {
        "sasl": ("SASL_PLAINTEXT", ALL_MECHANISMS),
        "ssl": ("SSL", None),
        "sasl_ssl": ("SASL_SSL", ["SCRAM-SHA-512"]),
    })
    try:
        upsert_scram(b.sasl_user("sasl", "admin"), SCRAM_USER, SCRAM_PASSWORD,
                     [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)])
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, pki):
    """ssl-client-auth = required, no authorizer."""
    b = SecureBroker(tmp_path_factory, pki, {"ssl": ("SSL", None)}, client_auth="required")
    yield b
    b.close()


@pytest.fixture(scope="module")
def aclb(tmp_path_factory, pki):
    """authorizer = acl, super user admin; SASL_PLAINTEXT (all mechanisms)
    and SSL with ssl-client-auth = requested (a client certificate, when
    sent, gives its subject as principal; none gives User:ANONYMOUS)."""
    b = SecureBroker(tmp_path_factory, pki, {
        "sasl": ("SASL_PLAINTEXT", ALL_MECHANISMS),
        "ssl": ("SSL", None),
    }, client_auth="requested", acl=True)
    try:
        b.admin = b.sasl_user("sasl", "admin")
        b.alice = b.sasl_user("sasl", "alice")
        b.bob = b.sasl_user("sasl", "bob")
        yield b
    finally:
        b.close()


@pytest.fixture
def uid():
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------
# Listeners and SASL.


def test_metadata_advertises_the_listener_used(sec):
    """A client stays on the listener it bootstrapped from: Metadata names
    that listener's host:port as broker 1."""
    for ep in [sec.plain, sec.sasl_user("sasl", "alice"), sec.endpoint("ssl"),
               sec.endpoint("sasl_ssl").user("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD)]:
        md = AdminClient(ep.ck()).list_topics(timeout=10)
        assert [(b.id, f"{b.host}:{b.port}") for b in md.brokers.values()] == [(1, ep.bootstrap)], ep


def test_scram_credentials_described(sec):
    admin = sec.sasl_user("sasl", "admin")
    assert scram_infos(admin, SCRAM_USER) == {ScramMechanism.SCRAM_SHA_256: 4096, ScramMechanism.SCRAM_SHA_512: 8192}
    # All users (None): carol is there; the PLAIN users of the config file are not SCRAM users.
    everyone = admin_of(admin).describe_user_scram_credentials().result(timeout=10)
    assert SCRAM_USER in everyone and not set(PLAIN_USERS) & set(everyone)
    # kafka-python reads the same.
    a = KafkaAdminClient(**admin.kp())
    d = a.describe_user_scram_credentials([SCRAM_USER])
    a.close()
    assert d[SCRAM_USER]["error"] is None
    assert {(int(i["mechanism"]), i["iterations"]) for i in d[SCRAM_USER]["credential_infos"]} == {(1, 4096), (2, 8192)}
    # A user without credentials: RESOURCE_NOT_FOUND.
    with pytest.raises(KafkaException) as e:
        admin_of(admin).describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=10)
    assert kafka_error(e).code() == KafkaError.RESOURCE_NOT_FOUND


@pytest.mark.parametrize("iterations", [1000, 16385])
def test_scram_iterations_out_of_range_refused(sec, iterations):
    admin = sec.sasl_user("sasl", "admin")
    f = admin_of(admin).alter_user_scram_credentials([UserScramCredentialUpsertion(
        "dan", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, iterations), b"dan-secret")])["dan"]
    with pytest.raises(KafkaException) as e:
        f.result(timeout=10)
    assert kafka_error(e).code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    with pytest.raises(KafkaException):
        admin_of(admin).describe_user_scram_credentials(["dan"])["dan"].result(timeout=10)


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_round_trip(sec, client, mechanism, topic_name):
    ep = sec.endpoint("sasl").user(mechanism, *credentials(mechanism))
    round_trip(client, ep, topic_name, reader=sec.plain)


@pytest.mark.parametrize("case", ["wrong-password", "unknown-user"])
@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_bad_credentials_refused(sec, client, mechanism, case, topic_name, caplog):
    user, password = credentials(mechanism)
    if case == "wrong-password":
        password = "not-" + password
    else:
        user, password = "mallory", "mallory-secret"
    ck_create_topic(sec.plain, topic_name)
    assert_sasl_refused(client, sec.endpoint("sasl").user(mechanism, user, password), topic_name, caplog)
    assert end_offset(sec.plain, topic_name) == 0


def test_plain_user_is_not_a_scram_user(sec, topic_name):
    """PLAIN users (config file) and SCRAM users (AlterUserScramCredentials)
    are separate, as in Kafka."""
    ck_create_topic(sec.plain, topic_name)
    assert_sasl_refused("confluent", sec.endpoint("sasl").user("SCRAM-SHA-256", "alice", PLAIN_USERS["alice"]),
                        topic_name)
    assert_sasl_refused("confluent", sec.endpoint("sasl").user("PLAIN", SCRAM_USER, SCRAM_PASSWORD), topic_name)
    assert end_offset(sec.plain, topic_name) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_mechanism_not_enabled_on_listener_refused(sec, client, caplog, topic_name):
    """The SASL_SSL listener enables SCRAM-SHA-512 only: PLAIN with good
    credentials gets UNSUPPORTED_SASL_MECHANISM."""
    ep = sec.endpoint("sasl_ssl").user("PLAIN", "alice", PLAIN_USERS["alice"])
    ck_create_topic(sec.plain, topic_name)
    if client == "confluent":
        errors, reports = ck_attempt(ep, topic_name)
        messages = [e.str() for e in errors]
        assert reports[0] is not None
        assert KafkaError._AUTHENTICATION in [e.code() for e in errors], messages
        # librdkafka quotes the broker's list of enabled mechanisms.
        assert any("SCRAM-SHA-512" in m and "PLAIN" in m for m in messages), messages
    elif client == "kafka-python":
        # kafka-python retries an unsupported mechanism until its bootstrap timeout.
        with caplog.at_level(logging.WARNING, logger="kafka"):
            with pytest.raises((kerr.UnsupportedSaslMechanismError, kerr.KafkaTimeoutError)):
                KafkaProducer(**ep.kp(bootstrap_timeout_ms=1500))
        assert "UnsupportedSaslMechanism" in caplog.text, caplog.text[-2000:]
    else:
        r = run_js(ep, "produce", topic_name)
        assert not r["ok"], r
        assert "UNSUPPORTED_SASL_MECHANISM" in r["error"]["types"], r
    assert end_offset(sec.plain, topic_name) == 0


def test_sasl_listener_refuses_a_plaintext_client(sec):
    """A client speaking Kafka without SASL to a SASL listener gets nothing
    (Kafka closes the connection: ApiVersions is allowed, Metadata is not)."""
    a = AdminClient(Endpoint(sec.endpoint("sasl").bootstrap).ck(**{"socket.timeout.ms": 3000}))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=2)


# --------------------------------------------------------------------------
# TLS.


@pytest.mark.parametrize("client", CLIENTS)
def test_ssl_round_trip(sec, client, topic_name):
    round_trip(client, sec.endpoint("ssl"), topic_name, reader=sec.plain)


@pytest.mark.parametrize("trust", ["default-store", "rogue-ca"])
@pytest.mark.parametrize("client", CLIENTS)
def test_ssl_client_not_trusting_the_ca_refused(sec, pki, client, trust, caplog):
    ep = sec.endpoint("ssl").tls(ca=None if trust == "default-store" else pki.rogue_ca)
    assert_tls_refused(client, ep, caplog, server_untrusted=True)


@pytest.mark.parametrize("key_format", ["pkcs1", "sec1"])
def test_ssl_server_key_formats(tmp_path_factory, pki, key_format, topic_name):
    """PKCS#8 is what the other brokers use; PKCS#1 RSA and SEC1 EC keys work too."""
    b = SecureBroker(tmp_path_factory, pki, {"ssl": ("SSL", None)}, key_format=key_format)
    try:
        ep = b.endpoint("ssl")
        ck_create_topic(ep, topic_name)
        assert ck_codes(ck_produce(ep, topic_name, ["tls"])) == [None]
        a = KafkaAdminClient(**ep.kp())
        assert topic_name in a.list_topics()
        a.close()
    finally:
        b.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_ssl_scram_sha_512_round_trip(sec, client, topic_name):
    ep = sec.endpoint("sasl_ssl").user("SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD)
    round_trip(client, ep, topic_name, reader=sec.plain)


@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_ssl_wrong_password_refused(sec, client, topic_name, caplog):
    ck_create_topic(sec.plain, topic_name)
    ep = sec.endpoint("sasl_ssl").user("SCRAM-SHA-512", SCRAM_USER, "not-" + SCRAM_PASSWORD)
    assert_sasl_refused(client, ep, topic_name, caplog)
    assert end_offset(sec.plain, topic_name) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_mtls_client_certificate_accepted(mtls, pki, client, topic_name):
    ep = mtls.endpoint("ssl").tls(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    round_trip(client, ep, topic_name, reader=mtls.plain)


@pytest.mark.parametrize("case", ["no-certificate", "untrusted-ca-certificate"])
@pytest.mark.parametrize("client", CLIENTS)
def test_mtls_without_a_trusted_client_certificate_refused(mtls, pki, client, case, caplog):
    ep = mtls.endpoint("ssl")
    if case == "untrusted-ca-certificate":
        ep = ep.tls(ca=pki.ca, cert=pki.rogue_client_cert, key=pki.rogue_client_key)
    assert_tls_refused(client, ep, caplog, server_untrusted=False)


# --------------------------------------------------------------------------
# ACLs.


def test_acl_apis_security_disabled_without_authorizer(sec):
    admin = sec.sasl_user("sasl", "admin")
    # (librdkafka's DescribeAcls ignores the response's top-level error and
    # returns no bindings; kafka-python below checks the error itself.)
    assert admin_of(admin).describe_acls(any_acl_of("User:alice")).result(timeout=10) == []
    binding = acl_binding(ResourceType.TOPIC, "t", "User:alice", AclOperation.READ)
    with pytest.raises(KafkaException) as e:
        admin_of(admin).create_acls([binding])[binding].result(timeout=10)
    assert kafka_error(e).code() == KafkaError.SECURITY_DISABLED
    a = KafkaAdminClient(**admin.kp())
    with pytest.raises(kerr.SecurityDisabledError):
        a.describe_acls(ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                  ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY)))
    a.close()


def test_acl_admin_apis_confluent(aclb, uid):
    principal = f"User:ck-{uid}"
    t = f"acl-{uid}"
    b_read = acl_binding(ResourceType.TOPIC, t, principal, AclOperation.READ)
    b_prefix = acl_binding(ResourceType.TOPIC, f"{t}-", principal, AclOperation.WRITE,
                           pattern=ResourcePatternType.PREFIXED)
    b_wild = acl_binding(ResourceType.TOPIC, "*", principal, AclOperation.DESCRIBE)
    b_group = acl_binding(ResourceType.GROUP, f"g-{t}", principal, AclOperation.READ, AclPermissionType.DENY)
    b_cluster = acl_binding(ResourceType.BROKER, CLUSTER, principal, AclOperation.IDEMPOTENT_WRITE)
    b_txn = acl_binding(ResourceType.TRANSACTIONAL_ID, f"tx-{t}", principal, AclOperation.WRITE)
    everything = {b_read, b_prefix, b_wild, b_group, b_cluster, b_txn}
    create_acls(aclb.admin, *everything)
    assert describe_acls(aclb.admin, any_acl_of(principal)) == everything
    # Creating the same binding again is not an error, and adds nothing.
    create_acls(aclb.admin, b_read)
    assert describe_acls(aclb.admin, any_acl_of(principal)) == everything
    # Filters: resource type, permission, exact literal name, MATCH.
    assert describe_acls(aclb.admin, any_acl_of(principal, ResourceType.GROUP)) == {b_group}
    assert describe_acls(aclb.admin, AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY,
        AclPermissionType.DENY)) == {b_group}
    assert describe_acls(aclb.admin, AclBindingFilter(
        ResourceType.TOPIC, t, ResourcePatternType.LITERAL, principal, None, AclOperation.ANY,
        AclPermissionType.ANY)) == {b_read}
    # MATCH on a name: literal equal, wildcard, and prefixes of it.
    assert describe_acls(aclb.admin, AclBindingFilter(
        ResourceType.TOPIC, f"{t}-x", ResourcePatternType.MATCH, principal, None, AclOperation.ANY,
        AclPermissionType.ANY)) == {b_prefix, b_wild}
    assert describe_acls(aclb.admin, AclBindingFilter(
        ResourceType.TOPIC, t, ResourcePatternType.MATCH, principal, None, AclOperation.ANY,
        AclPermissionType.ANY)) == {b_read, b_wild}
    # A principal filter really filters.
    assert describe_acls(aclb.admin, any_acl_of(f"User:other-{uid}")) == set()
    # Delete the topic ACLs, then the rest.
    deleted = delete_acls(aclb.admin, any_acl_of(principal, ResourceType.TOPIC))
    assert list(deleted.values()) == [{b_read, b_prefix, b_wild}]
    assert describe_acls(aclb.admin, any_acl_of(principal)) == {b_group, b_cluster, b_txn}
    deleted = delete_acls(aclb.admin, any_acl_of(principal))
    assert list(deleted.values()) == [{b_group, b_cluster, b_txn}]
    assert describe_acls(aclb.admin, any_acl_of(principal)) == set()

    # Only a principal with ALTER on the cluster (here: the super user) may
    # create ACLs; DescribeAcls needs DESCRIBE on the cluster.
    with pytest.raises(KafkaException) as e:
        admin_of(aclb.alice).create_acls([b_read])[b_read].result(timeout=10)
    assert kafka_error(e).code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert describe_acls(aclb.admin, any_acl_of(principal)) == set()
    # DescribeAcls by alice: CLUSTER_AUTHORIZATION_FAILED (kafka-python
    # raises it; librdkafka ignores DescribeAcls' top-level error, but must
    # at least get no bindings).
    create_acls(aclb.admin, b_read)
    assert admin_of(aclb.alice).describe_acls(any_acl_of(principal)).result(timeout=10) == []
    a = KafkaAdminClient(**aclb.alice.kp())
    try:
        with pytest.raises(kerr.ClusterAuthorizationFailedError):
            a.describe_acls(ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                      ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        a.close()
    delete_acls(aclb.admin, any_acl_of(principal))


def test_acl_admin_apis_kafka_python(aclb, uid):
    principal = f"User:kp-{uid}"
    t = f"acl-{uid}"
    acls = [
        ACL(principal, "*", ACLOperation.READ, ACLPermissionType.ALLOW, ResourcePattern(KResourceType.TOPIC, t)),
        ACL(principal, "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(KResourceType.TOPIC, f"{t}-", ACLResourcePatternType.PREFIXED)),
        ACL(principal, "*", ACLOperation.READ, ACLPermissionType.DENY, ResourcePattern(KResourceType.GROUP, f"g-{t}")),
        ACL(principal, "*", ACLOperation.IDEMPOTENT_WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(KResourceType.CLUSTER, CLUSTER)),
        ACL(principal, "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(KResourceType.TRANSACTIONAL_ID, f"tx-{t}")),
    ]
    any_filter = ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY,
                           ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY))
    a = KafkaAdminClient(**aclb.admin.kp())
    try:
        r = a.create_acls(acls)
        assert r["failed"] == [] and len(r["succeeded"]) == len(acls)
        found, err = a.describe_acls(any_filter)
        assert err is kerr.NoError
        assert set(found) == set(acls)
        found, _ = a.describe_acls(ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                             ResourcePatternFilter(KResourceType.TOPIC, f"{t}-x",
                                                                   ACLResourcePatternType.MATCH)))
        assert set(found) == {acls[1]}
        [(_, deleted, err)] = a.delete_acls([ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                                       ResourcePatternFilter(KResourceType.TOPIC, None,
                                                                             ACLResourcePatternType.ANY))])
        assert err is kerr.NoError
        assert set(deleted) == set(acls[:2])
        assert set(a.describe_acls(any_filter)[0]) == set(acls[2:])
        [(_, deleted, _)] = a.delete_acls([any_filter])
        assert set(deleted) == set(acls[2:])
        assert a.describe_acls(any_filter)[0] == []
    finally:
        a.close()
    # alice is no super user: her CreateAcls fails per creation.
    a = KafkaAdminClient(**aclb.alice.kp())
    try:
        r = a.create_acls(acls[:1])
        assert r["succeeded"] == [] and r["failed"] == [kerr.ClusterAuthorizationFailedError]
    finally:
        a.close()


def test_acl_admin_apis_kafkajs(aclb, uid):
    principal = f"User:js-{uid}"
    t = f"acl-{uid}"
    r = run_js(aclb.admin, "acls", t, {"principal": principal})

    def flat(resources):
        return sorted((res["resourceType"], res["resourceName"], res["resourcePatternType"], a["principal"],
                       a["host"], a["operation"], a["permissionType"]) for res in resources for a in res["acls"])

    # (resource type, name, pattern, principal, host, operation, permission), kafkajs' numbers:
    # TOPIC 2, GROUP 3; LITERAL 3, PREFIXED 4; READ 3, WRITE 4; DENY 2, ALLOW 3.
    read = (2, t, 3, principal, "*", 3, 3)
    prefixed = (2, f"{t}-", 4, principal, "*", 4, 3)
    group = (3, f"g-{t}", 3, principal, "*", 3, 2)
    assert flat(r["all"]) == sorted([read, prefixed, group])
    assert flat(r["matched"]) == [prefixed]
    [resp] = r["deleted"]
    assert resp["errorCode"] == 0
    assert [(m["resourceType"], m["resourceName"], m["resourcePatternType"], m["principal"], m["host"],
             m["operation"], m["permissionType"]) for m in resp["matchingAcls"]] == [prefixed]
    assert flat(r["after"]) == sorted([read, group])
    delete_acls(aclb.admin, any_acl_of(principal))


def test_acl_produce_enforcement(aclb, uid):
    prefix = f"ap-{uid}-"
    ta, tb, denied, other = prefix + "a", prefix + "b", prefix + "denied", f"other-{uid}"
    readonly = f"ro-{uid}"
    for t in (ta, tb, denied, other, readonly):
        ck_create_topic(aclb.admin, t)
    alice = aclb.alice

    # No ACL at all: alice can neither write nor see the topic.
    assert ck_codes(ck_produce(alice, ta, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    md = AdminClient(alice.ck()).list_topics(timeout=10)
    assert not {ta, tb, denied, other} & set(md.topics)
    md = AdminClient(alice.ck()).list_topics(topic=ta, timeout=10)
    assert md.topics[ta].error is not None and md.topics[ta].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    p = KafkaProducer(**alice.kp(max_block_ms=5000))
    with pytest.raises(kerr.TopicAuthorizationFailedError):
        p.send(ta, b"no").get(timeout=10)
    p.close()
    r = run_js(alice, "produce", ta)
    assert not r["ok"] and "TOPIC_AUTHORIZATION_FAILED" in r["error"]["types"], r
    # The super user sees everything.
    assert {ta, tb, denied, other} <= set(AdminClient(aclb.admin.ck()).list_topics(timeout=10).topics)

    # WRITE on the prefix (DENY WRITE on one topic of it): writes to the
    # matching topics only. WRITE implies DESCRIBE: they are listed.
    allow_prefix = acl_binding(ResourceType.TOPIC, prefix, "User:alice", AclOperation.WRITE,
                               pattern=ResourcePatternType.PREFIXED)
    deny = acl_binding(ResourceType.TOPIC, denied, "User:alice", AclOperation.WRITE, AclPermissionType.DENY)
    create_acls(aclb.admin, allow_prefix, deny)
    assert ck_codes(ck_produce(alice, ta, ["ck-a"])) == [None]
    assert ck_codes(ck_produce(alice, tb, ["ck-b"])) == [None]
    assert ck_codes(ck_produce(alice, denied, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert ck_codes(ck_produce(alice, other, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    visible = set(AdminClient(alice.ck()).list_topics(timeout=10).topics)
    assert {ta, tb} <= visible and other not in visible
    # READ only: the topic is visible (READ implies DESCRIBE), so the
    # refusal comes from Produce itself.
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, readonly, "User:alice", AclOperation.READ))
    assert readonly in AdminClient(alice.ck()).list_topics(timeout=10).topics
    assert ck_codes(ck_produce(alice, readonly, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    p = KafkaProducer(**alice.kp(max_block_ms=5000))
    p.send(ta, b"kp-a").get(timeout=10)
    with pytest.raises(kerr.TopicAuthorizationFailedError):
        p.send(other, b"no").get(timeout=10)
    p.close()
    r = run_js(alice, "produce", ta, {"value": "js-a"})
    assert r["ok"], r
    # An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE
    # on some topic: alice has WRITE on the prefix.
    assert ck_codes(ck_produce(alice, ta, ["idem-a"], **{"enable.idempotence": True})) == [None]

    # Without WRITE on any topic (only READ, so the topic is visible), bob's
    # idempotent producer cannot get a producer id.
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, other, "User:bob", AclOperation.READ))
    p = Producer(aclb.bob.ck(**{"enable.idempotence": True, "message.timeout.ms": 3000}))
    p.produce(other, b"no")
    fatal = None
    deadline = time.time() + 10
    while fatal is None and time.time() < deadline:
        try:
            p.poll(0.2)
        except KafkaException as e:  # librdkafka raises the fatal error
            fatal = e.args[0]
    assert fatal is not None and fatal.fatal(), "bob's idempotent producer got a producer id"
    assert fatal.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, fatal
    del p

    # Deleting the ACL revokes the access.
    deleted = delete_acls(aclb.admin, AclBindingFilter(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED,
                                                       "User:alice", None, AclOperation.ANY, AclPermissionType.ANY))
    assert list(deleted.values()) == [{allow_prefix}]
    assert ck_codes(ck_produce(alice, ta, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert ta not in AdminClient(alice.ck()).list_topics(timeout=10).topics

    assert ck_read(aclb.admin, ta, 4) == ["ck-a", "kp-a", "js-a", "idem-a"]
    assert end_offset(aclb.admin, ta) == 4
    assert end_offset(aclb.admin, tb) == 1
    assert end_offset(aclb.admin, denied) == 0
    assert end_offset(aclb.admin, other) == 0
    assert end_offset(aclb.admin, readonly) == 0
    delete_acls(aclb.admin, any_acl_of("User:alice"), any_acl_of("User:bob"))


def test_acl_consume_enforcement(aclb, uid):
    t, t2 = f"cons-{uid}", f"cons2-{uid}"
    g, g2 = f"g-{uid}", f"g2-{uid}"
    for topic in (t, t2):
        ck_create_topic(aclb.admin, topic)
    assert ck_codes(ck_produce(aclb.admin, t, ["r0", "r1", "r2"])) == [None] * 3
    assert ck_codes(ck_produce(aclb.admin, t2, ["s0"])) == [None]
    alice = aclb.alice

    def group_consumer(group, **conf):
        c = Consumer(alice.ck(**{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                 **conf}))
        c.subscribe([t])
        return c

    # No ACLs at all: nothing to read (refused on the group or the topic,
    # whichever the client asks first).
    c = Consumer(alice.ck(**{"group.id": g, "enable.auto.commit": False}))
    c.assign([TopicPartition(t, 0, 0)])
    err, values = ck_first_error(c)
    c.close()
    assert values == []
    assert err is not None and err.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                              KafkaError.TOPIC_AUTHORIZATION_FAILED), err

    # READ on the topic but not on the group: the group is refused.
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, t, "User:alice", AclOperation.READ))
    c = group_consumer(g)
    err, values = ck_first_error(c)
    c.close()
    assert values == []
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err

    # And READ on group g: consuming with g works, commits too.
    create_acls(aclb.admin, acl_binding(ResourceType.GROUP, g, "User:alice", AclOperation.READ))
    c = group_consumer(g)
    got = []
    deadline = time.time() + 20
    while len(got) < 3 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    assert got == ["r0", "r1", "r2"]
    c.commit(asynchronous=False)
    assert c.committed([TopicPartition(t, 0)], timeout=10)[0].offset == 3
    c.close()

    # kafka-python with the same group reads from the committed offset (nothing new).
    kc = KafkaConsumer(t, group_id=g, auto_offset_reset="earliest", enable_auto_commit=False, **alice.kp())
    assert kc.committed(KTP(t, 0)) == 3
    kc.close()

    # Another group: GROUP_AUTHORIZATION_FAILED.
    c = group_consumer(g2)
    err, values = ck_first_error(c)
    c.close()
    assert values == []
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    kc = KafkaConsumer(t, group_id=g2, auto_offset_reset="earliest", enable_auto_commit=False,
                       **alice.kp(bootstrap_timeout_ms=5000))
    try:
        with pytest.raises(kerr.GroupAuthorizationFailedError):
            deadline = time.time() + 15
            while time.time() < deadline:
                assert kc.poll(timeout_ms=500) == {}
    finally:
        kc.close()

    # DESCRIBE only on t2: it is visible, but Fetch needs READ, and so does
    # committing an offset of it (even in a group alice may READ).
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, t2, "User:alice", AclOperation.DESCRIBE))
    c = Consumer(alice.ck(**{"group.id": g, "enable.auto.commit": False}))
    c.assign([TopicPartition(t2, 0, 0)])
    err, values = ck_first_error(c)
    assert values == []
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    code = None
    try:
        result = c.commit(offsets=[TopicPartition(t2, 0, 1)], asynchronous=False)
        code = result[0].error.code() if result[0].error else None
    except KafkaException as e:
        code = e.args[0].code()
    c.close()
    assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED
    delete_acls(aclb.admin, any_acl_of("User:alice"))


def test_acl_transactional_producer(aclb, uid):
    t, tid = f"txn-{uid}", f"tx-{uid}"
    ck_create_topic(aclb.admin, t)
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, t, "User:alice", AclOperation.WRITE))

    # WRITE on the topic but not on the transactional id.
    p = Producer(aclb.alice.ck(**{"transactional.id": tid, "socket.timeout.ms": 5000}))
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert kafka_error(e).code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, kafka_error(e)
    del p

    create_acls(aclb.admin, acl_binding(ResourceType.TRANSACTIONAL_ID, tid, "User:alice", AclOperation.WRITE))
    p = Producer(aclb.alice.ck(**{"transactional.id": tid}))
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(3):
        p.produce(t, f"tx-{i}".encode())
    p.commit_transaction(15)
    assert ck_read(aclb.admin, t, 3, **{"isolation.level": "read_committed"}) == ["tx-0", "tx-1", "tx-2"]
    delete_acls(aclb.admin, any_acl_of("User:alice"))


def test_acl_create_topics(aclb, uid):
    t = f"mk-{uid}"
    a = AdminClient(aclb.alice.ck())
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(t, 1, 1)])[t].result(timeout=10)
    assert kafka_error(e).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # CREATE on a prefix is enough (no CREATE on the cluster).
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, "mk-", "User:alice", AclOperation.CREATE,
                                        pattern=ResourcePatternType.PREFIXED))
    a.create_topics([NewTopic(t, 1, 1)])[t].result(timeout=10)
    assert t in AdminClient(aclb.admin.ck()).list_topics(timeout=10).topics
    delete_acls(aclb.admin, any_acl_of("User:alice"))


def test_scram_alter_needs_cluster_alter(aclb):
    """With the authorizer on, AlterUserScramCredentials needs ALTER on the
    cluster: the super user may, alice may not."""
    with pytest.raises(KafkaException) as e:
        admin_of(aclb.alice).alter_user_scram_credentials([UserScramCredentialUpsertion(
            "eve", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"eve-secret")])["eve"].result(timeout=10)
    assert kafka_error(e).code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    upsert_scram(aclb.admin, "eve", "eve-secret", [(ScramMechanism.SCRAM_SHA_256, 4096)])
    assert scram_infos(aclb.admin, "eve") == {ScramMechanism.SCRAM_SHA_256: 4096}


def test_mtls_principal_acl(aclb, pki, uid):
    """On the SSL listener (ssl-client-auth = requested) a client
    certificate makes the principal its subject: an ACL for
    User:CN=client1,O=Weir Test lets that client write, and nobody else."""
    t = f"mtls-{uid}"
    ck_create_topic(aclb.admin, t)
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, t, pki.client_principal, AclOperation.WRITE))
    ssl = aclb.endpoint("ssl")
    client1 = ssl.tls(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)

    assert ck_codes(ck_produce(client1, t, ["ck"])) == [None]
    p = KafkaProducer(**client1.kp())
    p.send(t, b"kp").get(timeout=10)
    p.close()
    r = run_js(client1, "produce", t, {"value": "js"})
    assert r["ok"], r

    # TLS without a certificate (User:ANONYMOUS), PLAINTEXT (User:ANONYMOUS), SASL alice.
    for ep in (ssl, aclb.plain, aclb.alice):
        assert ck_codes(ck_produce(ep, t, ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED], ep
    # A certificate with the same subject from an untrusted CA is never client1.
    rogue = ssl.tls(ca=pki.ca, cert=pki.rogue_client_cert, key=pki.rogue_client_key)
    errors, reports = ck_attempt(rogue, t)
    assert reports[0] is not None, "a certificate from an untrusted CA was authorized as client1"

    assert ck_read(aclb.admin, t, 3) == ["ck", "kp", "js"]
    assert end_offset(aclb.admin, t) == 3
    delete_acls(aclb.admin, any_acl_of(pki.client_principal))


def test_requested_client_auth_refuses_an_untrusted_certificate(aclb, pki, caplog, topic_name):
    """ssl-client-auth = requested makes a certificate optional, not its
    verification: a certificate that does not chain to the truststore fails
    the handshake (kafka-python and kafkajs send it). librdkafka does not
    send a certificate whose issuer is not among the CA names the broker
    lists ("No matching issuer found in server trusted certificate
    authorities, not sending any client certificates"), as it does against
    Kafka, so it connects as User:ANONYMOUS - never as client1."""
    ck_create_topic(aclb.admin, topic_name)
    # ANONYMOUS may see the topic: a connection that got through would get
    # metadata and TOPIC_AUTHORIZATION_FAILED instead of a transport error.
    create_acls(aclb.admin, acl_binding(ResourceType.TOPIC, topic_name, "User:ANONYMOUS", AclOperation.DESCRIBE))
    rogue = aclb.endpoint("ssl").tls(ca=pki.ca, cert=pki.rogue_client_cert, key=pki.rogue_client_key)
    try:
        errors, reports = ck_attempt(rogue, topic_name)
        assert reports[0] is not None and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports
        for client in ["kafka-python", "kafkajs"]:
            assert_tls_refused(client, rogue, caplog, server_untrusted=False)
    finally:
        delete_acls(aclb.admin, any_acl_of("User:ANONYMOUS"))


# --------------------------------------------------------------------------
# Persistence.


def test_acls_and_scram_credentials_survive_restarts(tmp_path_factory, pki, uid):
    b = SecureBroker(tmp_path_factory, pki, {"sasl": ("SASL_PLAINTEXT", ALL_MECHANISMS)}, acl=True)
    try:
        admin = b.sasl_user("sasl", "admin")
        t = f"keep-{uid}"
        ck_create_topic(admin, t)
        upsert_scram(admin, "dave", "dave-secret", [(ScramMechanism.SCRAM_SHA_256, 8192)])
        upsert_scram(admin, "erin", "erin-secret", [(ScramMechanism.SCRAM_SHA_512, 4096)])
        kept = {
            acl_binding(ResourceType.TOPIC, t, "User:dave", AclOperation.WRITE),
            acl_binding(ResourceType.TOPIC, "keep-", "User:dave", AclOperation.DESCRIBE,
                        pattern=ResourcePatternType.PREFIXED),
            acl_binding(ResourceType.GROUP, "g-dave", "User:dave", AclOperation.READ, AclPermissionType.DENY),
        }
        dropped = acl_binding(ResourceType.TOPIC, "gone", "User:dave", AclOperation.READ)
        create_acls(admin, *kept, dropped)
        deleted = delete_acls(admin, AclBindingFilter(ResourceType.TOPIC, "gone", ResourcePatternType.LITERAL,
                                                      None, None, AclOperation.ANY, AclPermissionType.ANY))
        assert list(deleted.values()) == [{dropped}]
        futures = admin_of(admin).alter_user_scram_credentials(
            [UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)])
        futures["erin"].result(timeout=10)

        dave = b.endpoint("sasl").user("SCRAM-SHA-256", "dave", "dave-secret")
        assert ck_codes(ck_produce(dave, t, ["before"])) == [None]

        b.broker.restart()

        assert describe_acls(admin, any_acl_of("User:dave")) == kept
        assert scram_infos(admin, "dave") == {ScramMechanism.SCRAM_SHA_256: 8192}
        with pytest.raises(KafkaException) as e:
            scram_infos(admin, "erin")
        assert kafka_error(e).code() == KafkaError.RESOURCE_NOT_FOUND
        assert ck_codes(ck_produce(dave, t, ["after"])) == [None]
        # The authorizer is still on: dave may write t only.
        ck_create_topic(admin, f"other-{uid}")
        assert ck_codes(ck_produce(dave, f"other-{uid}", ["no"])) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
        assert_sasl_refused("confluent", dave.user("SCRAM-SHA-256", "dave", "not-dave-secret"), t)
        assert_sasl_refused("confluent", b.endpoint("sasl").user("SCRAM-SHA-512", "erin", "erin-secret"), t)

        # Credentials and ACLs written just before a kill -9 are there too.
        later = acl_binding(ResourceType.TOPIC, f"later-{uid}", "User:dave", AclOperation.READ)
        create_acls(admin, later)
        upsert_scram(admin, "frank", "frank-secret", [(ScramMechanism.SCRAM_SHA_512, 4096)])
        b.broker.kill9()
        b.broker.start()
        assert describe_acls(admin, any_acl_of("User:dave")) == kept | {later}
        frank = b.endpoint("sasl").user("SCRAM-SHA-512", "frank", "frank-secret")
        assert AdminClient(frank.ck()).list_topics(timeout=10).brokers
        assert ck_read(admin, t, 2) == ["before", "after"]

        # Stored salted: no password is in the data directory.
        for root, _, files in os.walk(b.broker.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for secret in (b"dave-secret", b"frank-secret", b"erin-secret"):
                    assert secret not in data, os.path.join(root, name)
    finally:
        b.close()


# --------------------------------------------------------------------------
# KIP-368 re-authentication.


def test_sasl_reauthentication(tmp_path_factory, pki, topic_name):
    """connections-max-reauth-ms: a client re-authenticates on its
    connection (no reconnect) and keeps working; once its password is
    changed, its next re-authentication fails and it is cut off."""
    b = SecureBroker(tmp_path_factory, pki, {"sasl": ("SASL_PLAINTEXT", ALL_MECHANISMS)},
                     extra="connections-max-reauth-ms = 2000")
    try:
        admin = b.sasl_user("sasl", "admin")
        upsert_scram(admin, "gina", "gina-secret", [(ScramMechanism.SCRAM_SHA_256, 4096)])
        ck_create_topic(admin, topic_name)
        gina = b.endpoint("sasl").user("SCRAM-SHA-256", "gina", "gina-secret")

        stats = []
        errors = []
        reports = []
        p = Producer(gina.ck(**{"statistics.interval.ms": 500, "stats_cb": stats.append,
                                "error_cb": errors.append, "message.timeout.ms": 5000}))
        kp = KafkaProducer(**gina.kp())
        # 6 s with 2 s sessions: re-authenticated at least twice.
        for i in range(12):
            p.produce(topic_name, f"ck-{i}".encode(), on_delivery=lambda err, msg: reports.append(err))
            p.flush(5)
            kp.send(topic_name, f"kp-{i}".encode()).get(timeout=10)
            time.sleep(0.5)
        assert reports == [None] * 12
        assert errors == [], [e.str() for e in errors]
        p.poll(1.0)
        last = json.loads(stats[-1])
        node = [br for br in last["brokers"].values() if br["nodeid"] == 1]
        assert node and node[0]["connects"] == 1, "librdkafka had to reconnect instead of re-authenticating"

        # Change gina's password: the live connections' next re-authentication fails.
        upsert_scram(admin, "gina", "new-gina-secret", [(ScramMechanism.SCRAM_SHA_256, 4096)])

        def cut_off():
            p.poll(0.2)
            return KafkaError._AUTHENTICATION in [e.code() for e in errors]

        wait_for(cut_off, timeout=8)
        reports.clear()
        p.produce(topic_name, b"cut-off", on_delivery=lambda err, msg: reports.append(err))
        p.flush(8)
        assert reports and reports[0] is not None
        kp.close(timeout=1)
        assert end_offset(b.plain, topic_name) == 24
    finally:
        b.close()
