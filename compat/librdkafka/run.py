#!/usr/bin/env python3
"""librdkafka's own regression suite against Weir.

    compat/librdkafka/run.py [--quick] [--consumer-protocol | --security]
                             [--tests 0001,0017] [--timeout SECONDS] [--weir PATH]
                             [--publish]

With --consumer-protocol it runs the tests tagged `consumer` in tests.txt
(the group tests; `cquick` ones with --quick) with
TEST_CONSUMER_GROUP_PROTOCOL=consumer, i.e. KIP-848 consumer groups.

With --security it runs the tests tagged `security*` (`squick` ones with
--quick) against a secured Weir, set up as librdkafka's own trivup clusters
are: a test CA, broker and client certificates made with the openssl CLI
(PEM, DER and PKCS#12, exported in trivup's SSL_* variables);
`ssl-client-auth = "required"`; Kafka's ACL authorizer with
`allow-everyone-if-no-acl-found = true` and super user User:admin;
`connections-max-reauth-ms = 10000` (KIP-368 re-authentication every 10 s,
librdkafka's interactive_broker_version.py default). The test principal is
User:librdkafka, not a super user; its SCRAM credentials are created with
AlterUserScramCredentials. A test runs over each listener its tags name:
`security` SASL_SSL with SCRAM-SHA-512 (the client also presents its
certificate, as under trivup), `security-ssl` SSL (mTLS, principal
User:CN=librdkafka,O=Weir Test), `security-plain` SASL_PLAINTEXT with PLAIN,
`security-plaintext` the PLAINTEXT listener of the same broker (principal
User:ANONYMOUS: the tests that call kafka-acls.sh skip under SASL/SSL).
A test tagged `ssubtests=A|B` runs once per alternative with SUBTESTS=A,
SUBTESTS=B (the subtests a single node can run). kafka-acls.sh is a shim
over confluent_kafka's AdminClient (from .venv). The mode needs librdkafka
built with OpenSSL (libssl-dev; a cached build without it is rebuilt) and
the openssl command.

1. Gets librdkafka's sources from crates.io: `cargo fetch` on
   compat/librdkafka/source/ downloads the rdkafka-sys crate, which bundles
   librdkafka 2.12.1 with its tests/ directory; it is extracted under
   target/librdkafka/.
2. Builds librdkafka and tests/test-runner once (cached there).
3. Starts Weir with the broker defaults the suite assumes (its "default"
   scenario: num.partitions=4; Kafka's group.initial.rebalance.delay.ms=3000
   and session timeout bounds; share lock durations down to 1 s as
   librdkafka's CI configures Kafka), with a kafka-topics.sh shim backed by
   `weir topic` for the tests that shell out to Kafka's tools.
4. Runs each test of the curated list (compat/librdkafka/tests.txt) on its
   own, with a hard timeout, restarting Weir if it ever exits.
5. Writes target/librdkafka/summary.md (passed / failed / skipped per test
   with the failure line) and exits non-zero if a listed test failed.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "compat", "librdkafka")
WORK = os.path.join(ROOT, "target", "librdkafka")
CRATE = "rdkafka-sys-4.10.0+2.12.1"
SRC = os.path.join(WORK, CRATE, "librdkafka")
TESTS_DIR = os.path.join(SRC, "tests")
RUNNER = os.path.join(TESTS_DIR, "test-runner")
# The Kafka version Weir's protocol surface corresponds to (version-gated
# tests decide what to expect from it).
KAFKA_VERSION = "4.1.0"
BROKER_CONFIG = """\
num-partitions = 4
group-initial-rebalance-delay-ms = 3000
group-min-session-timeout-ms = 6000
group-share-min-record-lock-duration-ms = 1000
"""


def log(msg):
    print(f"librdkafka: {msg}", flush=True)


def fetch_source():
    if os.path.isdir(TESTS_DIR):
        return
    os.makedirs(WORK, exist_ok=True)
    log("fetching rdkafka-sys (librdkafka sources and tests) from crates.io")
    subprocess.run(["cargo", "fetch", "--locked", "--manifest-path",
                    os.path.join(HERE, "source", "Cargo.toml")], check=True)
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(os.path.join(cargo_home, "registry", "cache", "*", CRATE + ".crate"))
    if not found:
        sys.exit(f"librdkafka: {CRATE}.crate not found in {cargo_home}/registry/cache")
    with tarfile.open(found[0]) as t:
        t.extractall(WORK, filter="data")


def has_ssl():
    """Whether the cached librdkafka build has OpenSSL (TLS, SCRAM)."""
    try:
        with open(os.path.join(SRC, "config.h")) as f:
            return "#define WITH_SSL 1" in f.read()
    except OSError:
        return False


def build(need_ssl=False):
    if os.path.exists(RUNNER) and (not need_ssl or has_ssl()):
        return
    if os.path.exists(RUNNER):
        # A build from before the runner enabled OpenSSL, or made without
        # its headers.
        log("the cached librdkafka build has no OpenSSL: rebuilding it")
        subprocess.run(["make", "clean"], cwd=SRC, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    log("building librdkafka and tests/test-runner (once; cached in target/librdkafka)")
    # Optional features the suite does not need; OpenSSL is used when its
    # headers are present (the --security mode needs it: TLS, SCRAM).
    subprocess.run(["./configure", "--disable-gssapi", "--disable-curl",
                    "--disable-lz4-ext"], cwd=SRC, check=True, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-j" + jobs, "libs"], cwd=SRC, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-j" + jobs, "build"], cwd=TESTS_DIR, check=True,
                   stdout=subprocess.DEVNULL)
    if need_ssl and not has_ssl():
        sys.exit("librdkafka: built without OpenSSL; --security needs its headers "
                 "(Debian: apt-get install libssl-dev), then run again")


def read_list():
    """(test, tags, reason) from tests.txt; tags: run | quick | known | slow | exclude
    | consumer | cquick | cknown | security | security-ssl | security-plain
    | security-plaintext | squick | sknown | sexclude | ssubtests=A|B."""
    out = []
    with open(os.path.join(HERE, "tests.txt")) as f:
        for line in f:
            line = line.split("#", 1)
            body, reason = line[0].split(), (line[1].strip() if len(line) > 1 else "")
            if not body:
                continue
            out.append((body[0], body[1:], reason))
    return out


def mode_reason(reason, mode, what=False):
    """The part of a tests.txt reason about `mode` (classic, consumer,
    security): `WHAT; classic: ...; consumer: ...; security: ...`; with
    `what`, prefixed by WHAT."""
    parts = re.split(r";\s*(classic|consumer|security):\s*", reason)
    sections = dict(zip(parts[1::2], parts[2::2]))
    if mode in sections:
        return f"{parts[0]}: {sections[mode]}" if what else sections[mode]
    return parts[0]


class Weir:
    def __init__(self, binary, base, extra_config="", listeners=()):
        """listeners: security protocols of extra `[[listeners]]` (their
        ports are picked at the first start and kept across restarts)."""
        self.binary = binary
        self.base = base
        self.proc = None
        self.port = 0
        self.extra_config = extra_config
        self.listeners = {proto: 0 for proto in listeners}
        self.config = os.path.join(base, "weir.toml")
        self.write_config()
        self.log = open(os.path.join(base, "weir.log"), "ab")

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(BROKER_CONFIG + self.extra_config)
            for proto, port in self.listeners.items():
                f.write(f'\n[[listeners]]\naddress = "127.0.0.1:{port}"\n'
                        f'security-protocol = "{proto}"\n')

    def start(self):
        data = os.path.join(self.base, "data")
        os.makedirs(data, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data,
             "--config", self.config],
            stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            sys.exit(f"librdkafka: weir did not start: {line!r}")
        # weir ready: listening on A:P (data dir D); SSL on A:P; SASL_SSL on A:P[; HTTP on A:P]
        self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        extra = [(p, port) for p, port in re.findall(r"; (\w+) on \S+:(\d+)", line) if p != "HTTP"]
        if [p for p, _ in extra] != list(self.listeners):
            sys.exit(f"librdkafka: weir did not open the listeners {list(self.listeners)}: {line!r}")
        if any(port == 0 for port in self.listeners.values()):
            self.listeners = {p: int(port) for p, port in extra}
            self.write_config()

    def bootstrap(self, proto="PLAINTEXT"):
        port = self.port if proto == "PLAINTEXT" else self.listeners[proto]
        return f"127.0.0.1:{port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def kafka_path(base, binary, bootstrap):
    """A KAFKA_PATH whose bin/kafka-topics.sh runs `weir topic`."""
    path = os.path.join(base, "kafka")
    os.makedirs(os.path.join(path, "bin"), exist_ok=True)
    shim = os.path.join(path, "bin", "kafka-topics.sh")
    with open(shim, "w") as f:
        f.write(f"""#!/bin/sh
# kafka-topics.sh --bootstrap-server B --create|--alter|--delete --topic T
#   [--partitions N] [--replication-factor N] [--config K=V]...
# translated to `weir topic`.
action=; topic=; parts=; rf=; configs=
while [ $# -gt 0 ]; do
  case "$1" in
    --create) action=create ;; --alter) action=alter ;; --delete) action=delete ;;
    --topic) topic=$2; shift ;; --partitions) parts=$2; shift ;;
    --replication-factor|--replication_factor) rf=$2; shift ;;
    --config) configs="$configs -c $2"; shift ;;
    --bootstrap-server|--zookeeper) shift ;;
  esac
  shift
done
W={binary}
B="-b {bootstrap}"
case "$action" in
  create) exec $W topic create "$topic" ${{parts:+-p $parts}} ${{rf:+-r $rf}} $configs $B ;;
  alter) exec $W topic add-partitions "$topic" --total "$parts" $B ;;
  delete) exec $W topic delete "$topic" $B ;;
  *) echo "kafka-topics.sh shim: unsupported arguments" >&2; exit 1 ;;
esac
""")
    os.chmod(shim, 0o755)
    return path


# --security: the secured broker and what its clients need.
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"  # super user: setup, kafka-acls.sh
TEST_USER, TEST_PASSWORD = "librdkafka", "librdkafka-secret"  # the tests' principal
KEY_PASSWORD = "weir-librdkafka"  # the client's PKCS#12 (trivup: ssl_key_pass)
# tests.txt tag -> (listener, SASL mechanism)
TRANSPORTS = {
    "security": ("SASL_SSL", "SCRAM-SHA-512"),
    "security-ssl": ("SSL", None),
    "security-plain": ("SASL_PLAINTEXT", "PLAIN"),
    "security-plaintext": ("PLAINTEXT", None),
}
SECURITY_CONFIG = """\
authorizer = "acl"
super-users = ["User:{admin}"]
allow-everyone-if-no-acl-found = true
connections-max-reauth-ms = 10000
ssl-certificate-location = "{pki}/server-chain.pem"
ssl-key-location = "{pki}/server-key.pem"
ssl-client-auth = "required"
ssl-truststore-location = "{pki}/ca.pem"

[sasl-plain-users]
{admin} = "{admin_password}"
{user} = "{user_password}"
"""
PKI_EXTENSIONS = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_pki(pki):
    """A test CA, the broker's certificate (127.0.0.1, localhost) and a
    client certificate (CN=librdkafka,O=Weir Test) with the openssl CLI, the
    client's in the forms trivup's SslApp writes (PEM, DER, PKCS#12).
    Returns trivup's SSL_* variables, which 0097 reads."""
    if not shutil.which("openssl"):
        sys.exit("librdkafka: --security needs the openssl command (Debian: apt-get install openssl)")
    os.makedirs(pki, exist_ok=True)
    ext = os.path.join(pki, "ext.cnf")
    with open(ext, "w") as f:
        f.write(PKI_EXTENSIONS)

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=pki, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def cert(name, subject, section, signer):
        ssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", f"{name}-key.pem")
        ssl("req", "-new", "-config", ext, "-key", f"{name}-key.pem", "-subj", subject,
            "-out", f"{name}.csr")
        sign = (["-signkey", "ca-key.pem"] if signer is None else
                ["-CA", "ca.pem", "-CAkey", "ca-key.pem", "-set_serial", str(signer)])
        ssl("x509", "-req", "-in", f"{name}.csr", *sign, "-days", "7", "-sha256",
            "-extfile", ext, "-extensions", section, "-out", f"{name}.pem")

    cert("ca", "/O=Weir Test/CN=Weir librdkafka test CA", "ca", None)
    cert("server", "/O=Weir Test/CN=localhost", "server", 2)
    cert("client", "/O=Weir Test/CN=librdkafka", "client", 3)
    with open(os.path.join(pki, "server-chain.pem"), "w") as f:
        f.write(open(os.path.join(pki, "server.pem")).read() + open(os.path.join(pki, "ca.pem")).read())
    ssl("x509", "-in", "ca.pem", "-outform", "der", "-out", "ca.der")
    ssl("x509", "-in", "client.pem", "-outform", "der", "-out", "client.der")
    ssl("rsa", "-in", "client-key.pem", "-outform", "der", "-out", "client-key.der")
    ssl("pkcs12", "-export", "-in", "client.pem", "-inkey", "client-key.pem",
        "-certfile", "ca.pem", "-passout", f"pass:{KEY_PASSWORD}", "-out", "client.p12")
    at = lambda f: os.path.join(pki, f)  # noqa: E731
    return {
        "SSL_ca_pem": at("ca.pem"), "SSL_ca_der": at("ca.der"), "SSL_all_cas_pem": at("ca.pem"),
        "SSL_pub_pem": at("client.pem"), "SSL_pub_der": at("client.der"),
        "SSL_priv_pem": at("client-key.pem"), "SSL_priv_der": at("client-key.der"),
        "SSL_pkcs": at("client.p12"), "SSL_password": KEY_PASSWORD,
        "SSL_client_auth": "required",
    }


def admin_python(code, *args):
    """Runs `code` with .venv's Python (confluent_kafka) as the super user."""
    r = subprocess.run([VENV_PYTHON, "-c", code, *args], capture_output=True, text=True,
                       timeout=60)
    if r.returncode:
        sys.exit(f"librdkafka: security setup failed: {r.stderr.strip() or r.stdout.strip()}")


# The SCRAM credentials of the test principal (both mechanisms), with
# AlterUserScramCredentials over SASL/PLAIN as the super user.
SCRAM_SETUP = """
import sys
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
bootstrap, admin, admin_password, user, password = sys.argv[1:]
a = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                 "sasl.mechanism": "PLAIN", "sasl.username": admin,
                 "sasl.password": admin_password})
ups = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())
       for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
for f in a.alter_user_scram_credentials(ups).values():
    f.result(timeout=30)
"""

# bin/kafka-acls.sh: the arguments librdkafka's tests pass (0109, 0115,
# 0119), as CreateAcls / DeleteAcls of the super user.
KAFKA_ACLS = """#!{python}
# kafka-acls.sh --bootstrap-server B (--add | --remove [--force])
#   (--allow-principal P | --deny-principal P) --operation OP
#   [--allow-host H | --deny-host H] (--topic T | --group G | --cluster
#   | --transactional-id T) [--resource-pattern-type literal|prefixed]
# as CreateAcls / DeleteAcls of the broker's super user.
import re
import sys
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)
args, action, principals, ops, hosts, resources = sys.argv[1:], None, [], [], [], []
pattern = ResourcePatternType.LITERAL
while args:
    a = args.pop(0)
    if a in ("--add", "--remove"):
        action = a
    elif a in ("--allow-principal", "--deny-principal"):
        principals.append((args.pop(0), AclPermissionType.ALLOW if a.startswith("--allow")
                           else AclPermissionType.DENY))
    elif a in ("--allow-host", "--deny-host"):
        hosts.append(args.pop(0))
    elif a == "--operation":
        ops.append(AclOperation[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", args.pop(0)).upper()])
    elif a == "--topic":
        resources.append((ResourceType.TOPIC, args.pop(0)))
    elif a == "--group":
        resources.append((ResourceType.GROUP, args.pop(0)))
    elif a == "--transactional-id":
        resources.append((ResourceType.TRANSACTIONAL_ID, args.pop(0)))
    elif a == "--cluster":
        resources.append((ResourceType.BROKER, "kafka-cluster"))
    elif a == "--resource-pattern-type":
        pattern = ResourcePatternType[args.pop(0).upper()]
    elif a == "--bootstrap-server":
        args.pop(0)
    elif a != "--force":
        sys.exit("kafka-acls.sh shim: unsupported argument " + a)
if not (action and principals and ops and resources):
    sys.exit("kafka-acls.sh shim: unsupported arguments")
bindings = [AclBinding(rt, name, pattern, p, h, op, perm)
            for rt, name in resources for p, perm in principals for op in ops
            for h in (hosts or ["*"])]
admin = AdminClient({{"bootstrap.servers": "{bootstrap}", "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanism": "PLAIN", "sasl.username": "{admin}",
                     "sasl.password": "{admin_password}"}})
if action == "--add":
    futures = admin.create_acls(bindings).values()
else:
    futures = admin.delete_acls([AclBindingFilter(b.restype, b.name, b.resource_pattern_type,
                                                  b.principal, b.host, b.operation,
                                                  b.permission_type) for b in bindings]).values()
for f in futures:
    f.result(timeout=30)
print("kafka-acls.sh shim: %s %d ACL(s)" % (action[2:], len(bindings)))
"""


def security_setup(base, weir):
    """Writes kafka-acls.sh and one test.conf per transport; creates the
    SCRAM credentials. Returns {tag: test.conf path}."""
    sasl_plaintext = weir.bootstrap("SASL_PLAINTEXT")
    admin_python(SCRAM_SETUP, sasl_plaintext, ADMIN_USER, ADMIN_PASSWORD, TEST_USER, TEST_PASSWORD)
    shim = os.path.join(base, "kafka", "bin", "kafka-acls.sh")
    with open(shim, "w") as f:
        f.write(KAFKA_ACLS.format(python=VENV_PYTHON, bootstrap=sasl_plaintext, admin=ADMIN_USER,
                                  admin_password=ADMIN_PASSWORD))
    os.chmod(shim, 0o755)
    pki = os.path.join(base, "pki")
    confs = {}
    for tag, (proto, mechanism) in TRANSPORTS.items():
        lines = [f"metadata.broker.list={weir.bootstrap(proto)}",
                 f"security.protocol={proto}"]
        if mechanism:
            lines += [f"sasl.mechanisms={mechanism}", f"sasl.username={TEST_USER}",
                      f"sasl.password={TEST_PASSWORD}"]
        if "SSL" in proto:
            # As trivup's LibrdkafkaTestApp: the CA, and the client's own
            # certificate (presented on SASL_SSL too).
            lines += [f"ssl.ca.location={pki}/ca.pem",
                      f"ssl.certificate.location={pki}/client.pem",
                      f"ssl.key.location={pki}/client-key.pem",
                      f"ssl.key.password={KEY_PASSWORD}"]
        confs[tag] = os.path.join(base, f"test-{tag}.conf")
        with open(confs[tag], "w") as f:
            f.write("\n".join(lines) + "\n")
    return confs


ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")
SUMMARY_ROW = re.compile(r"\|\s*(\d{4}_\S+)\s*\|\s*(\w+)\s*\|\s*[\d.]+s\s*\|?[ \t]*([^|\n]*)")


def run_test(test, env, timeout, logdir, logname=None):
    """(status, detail, seconds) for one test number."""
    start = time.time()
    logfile = os.path.join(logdir, f"{logname or test}.log")
    with open(logfile, "wb") as out:
        p = subprocess.Popen([RUNNER, "-p1", "-L", test], cwd=TESTS_DIR, env=env,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return "FAILED", f"timed out after {timeout} s", time.time() - start
    text = ANSI.sub("", open(logfile, errors="replace").read())
    rows = SUMMARY_ROW.findall(text)
    states = {s for _, s, _ in rows}
    if rc == 0 and rows and states <= {"PASSED", "SKIPPED"}:
        if states == {"SKIPPED"}:
            reason = next((r.strip() for _, s, r in rows if s == "SKIPPED" and r.strip()),
                          "skipped by the test")
            return "SKIPPED", reason, time.time() - start
        return "PASSED", "", time.time() - start
    lines = text.splitlines()
    detail = f"exit status {rc}"
    for i, l in enumerate(lines):
        # ### Test "NAME (subtest)" failed at FILE:LINE:FUNC() at DATE: ###
        # followed by the assertion or message.
        if l.startswith("### Test ") and " failed at " in l:
            where = l.split(" failed at ", 1)[1].split(" at ", 1)[0]
            detail = f"{where}: {lines[i + 1].strip() if i + 1 < len(lines) else ''}"
            break
    return "FAILED", detail[:300], time.time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the tests tagged quick")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--consumer-protocol", action="store_true",
                      help="TEST_CONSUMER_GROUP_PROTOCOL=consumer (KIP-848)")
    mode.add_argument("--security", action="store_true",
                      help="the SASL/SSL/ACL tests (tagged security*) against a secured Weir")
    ap.add_argument("--tests", help="comma-separated test numbers (overrides the list)")
    ap.add_argument("--share", action="store_true",
                    help="the share-consumer tests (0170-0186) of the bundled librdkafka, if it has them")
    ap.add_argument("--timeout", type=int, default=300,
                    help="per test, seconds (tests tagged slow get four times as long)")
    ap.add_argument("--weir", default=os.path.join(ROOT, "target", "release", "weir"))
    ap.add_argument("--publish", action="store_true",
                    help="also write the summary to docs/compat/librdkafka.md "
                    "(-consumer-protocol.md, -security.md)")
    args = ap.parse_args()

    if args.security and not os.path.exists(VENV_PYTHON):
        sys.exit(f"librdkafka: --security needs {VENV_PYTHON} with confluent-kafka "
                 "(make .venv/.installed)")
    fetch_source()
    build(need_ssl=args.security)
    listed = read_list()
    if args.share:
        found = sorted({os.path.basename(f)[:4] for f in glob.glob(os.path.join(TESTS_DIR, "01[78]*.c"))
                        if 170 <= int(os.path.basename(f)[:4]) <= 186})
        if not found:
            log(f"librdkafka {CRATE.split('+')[1]} has no share-consumer tests (0170-0186 came with 2.15)")
            return
        args.tests = ",".join(found)
        os.environ["TEST_KAFKA_VERSION"] = "4.2.0"  # the share tests are gated on 4.2
    # (test, transports): transports are the tags of TRANSPORTS (--security)
    # or [None] (the broker's PLAINTEXT listener, no security).
    if args.tests:
        by_test = {t: tags for t, tags, _ in listed}
        wanted = []
        for t in args.tests.split(","):
            transports = [tag for tag in by_test.get(t, []) if tag in TRANSPORTS]
            wanted.append((t, (transports or ["security"]) if args.security else [None]))
    elif args.security:
        # The SASL/SSL/ACL tests, over the listeners their tags name
        # (squick: also in the quick subset).
        wanted = [(t, [tag for tag in tags if tag in TRANSPORTS]) for t, tags, _ in listed
                  if any(tag in TRANSPORTS for tag in tags) and (not args.quick or "squick" in tags)]
    elif args.consumer_protocol:
        # The group tests, with the KIP-848 protocol: tagged consumer
        # (cquick: also in the quick subset).
        wanted = [(t, [None]) for t, tags, r in listed
                  if "consumer" in tags and (not args.quick or "cquick" in tags)]
    else:
        wanted = [(t, [None]) for t, tags, r in listed
                  if "run" in tags and (not args.quick or "quick" in tags)]
    # ssubtests=A|B (security run): the test runs once per alternative with
    # SUBTESTS=A, then SUBTESTS=B (librdkafka runs the subtests whose name
    # contains it): the subtests a single node can run.
    subtests = {t: tag.split("=", 1)[1].split("|") for t, tags, _ in listed for tag in tags
                if tag.startswith("ssubtests=")} if args.security else {}
    # Known failures are per mode: `known` (classic), `cknown` (consumer),
    # `sknown` (security).
    mode_name = "consumer" if args.consumer_protocol else "security" if args.security else "classic"
    known_tag = {"consumer": "cknown", "security": "sknown", "classic": "known"}[mode_name]
    known = {t: mode_reason(r, mode_name) for t, tags, r in listed if known_tag in tags}
    slow = {t for t, tags, _ in listed if "slow" in tags}
    not_run = [(t, mode_reason(r, "classic", what=True)) for t, tags, r in listed
               if "run" not in tags]
    skipped_security = [(t, mode_reason(r, "security", what=True)) for t, tags, r in listed
                        if "sexclude" in tags]

    base = tempfile.mkdtemp(prefix="weir-librdkafka-")
    env = dict(os.environ)
    if args.security:
        pki = os.path.join(base, "pki")
        env.update(make_pki(pki))
        weir = Weir(args.weir, base,
                    SECURITY_CONFIG.format(pki=pki, admin=ADMIN_USER, admin_password=ADMIN_PASSWORD,
                                           user=TEST_USER, user_password=TEST_PASSWORD),
                    listeners=("SASL_SSL", "SSL", "SASL_PLAINTEXT"))
    else:
        weir = Weir(args.weir, base)
    weir.start()
    bootstrap = weir.bootstrap()
    # A test.conf of this run's own (runs may overlap: the build is shared).
    test_conf = os.path.join(base, "test.conf")
    with open(test_conf, "w") as f:
        f.write(f"metadata.broker.list={bootstrap}\n")
    env.update({
        "TEST_KAFKA_VERSION": os.environ.get("TEST_KAFKA_VERSION", KAFKA_VERSION),
        "BROKERS": bootstrap,
        "KAFKA_PATH": kafka_path(base, args.weir, bootstrap),
        "TEST_LEVEL": "2",
        "RDKAFKA_TEST_CONF": test_conf,
        # test-runner links librdkafka dynamically from the build tree.
        "LD_LIBRARY_PATH": os.path.join(SRC, "src") + ":" + os.path.join(SRC, "src-cpp"),
    })
    confs = security_setup(base, weir) if args.security else {}
    if args.consumer_protocol:
        env["TEST_CONSUMER_GROUP_PROTOCOL"] = "consumer"
    logdir = os.path.join(WORK, "logs")
    os.makedirs(logdir, exist_ok=True)
    results = []
    started = time.time()
    try:
        runs = [(test, transport, sub) for test, transports in wanted
                for transport in transports for sub in subtests.get(test, [None])]
        for test, transport, sub in runs:
            if not weir.alive():
                log("weir exited; restarting it")
                weir.start()
                if args.security:
                    security_setup(base, weir)
            name = test if transport is None else f"{test} {TRANSPORTS[transport][0]}"
            run_env = env if transport is None else dict(env, RDKAFKA_TEST_CONF=confs[transport])
            if sub:
                name += f" ({sub})"
                run_env = dict(run_env, SUBTESTS=sub)
            timeout = args.timeout * (4 if test in slow else 1)
            status, detail, secs = run_test(test, run_env, timeout, logdir,
                                            re.sub(r"[ ()]+", "-", name).strip("-"))
            if status == "FAILED" and test in known:
                # Owned by another open issue (named in tests.txt and
                # compat/FINDINGS.md): reported, not counted as a failure.
                status, detail = "KNOWN", f"{detail} [{known[test]}]"
            results.append((name, status, detail, secs))
            log(f"{name} {status} ({secs:.0f} s){': ' + detail if detail else ''}")
    finally:
        weir.stop()
    total = time.time() - started
    counts = {s: sum(1 for r in results if r[1] == s)
              for s in ("PASSED", "FAILED", "SKIPPED", "KNOWN")}
    if args.security:
        mode = ("security (SASL_SSL SCRAM-SHA-512, SSL with client certificates, "
                "SASL_PLAINTEXT PLAIN and PLAINTEXT; ACL authorizer on)")
    else:
        mode = "group protocol " + ("consumer (KIP-848)" if args.consumer_protocol else "classic")
    lines = [
        f"# librdkafka {CRATE.split('+')[1]} test suite against Weir",
        "",
        f"{time.strftime('%Y-%m-%d')}, {mode}, "
        f"{'quick subset' if args.quick else 'curated list'}: "
        f"**{counts['PASSED']} passed, {counts['FAILED']} failed, {counts['SKIPPED']} skipped, "
        f"{counts['KNOWN']} known failures owned by other open issues** "
        f"in {total / 60:.1f} min.",
        "",
        "| test | result | seconds | detail |",
        "|---|---|---|---|",
    ]
    if args.security:
        lines[4:4] = [
            "The broker, set up as librdkafka's trivup clusters are: a test CA, broker and "
            "client certificates made with openssl; SASL_SSL, SSL and SASL_PLAINTEXT "
            "listeners beside PLAINTEXT; `ssl-client-auth = \"required\"`; "
            "`authorizer = \"acl\"` with `super-users = [\"User:admin\"]` and "
            "`allow-everyone-if-no-acl-found = true`; `connections-max-reauth-ms = 10000`. "
            f"The tests' principal is User:{TEST_USER} (not a super user; its SCRAM "
            "credentials made with AlterUserScramCredentials), over SSL the client "
            "certificate's subject (User:CN=librdkafka,O=Weir Test), over PLAINTEXT "
            "User:ANONYMOUS. A row names the listener, and the SUBTESTS filter when the "
            "test ran in parts (`ssubtests` in tests.txt).",
            "",
        ]
    for test, status, detail, secs in results:
        lines.append(f"| {test} | {status} | {secs:.0f} | {detail.replace('|', '/')} |")
    if not args.tests and args.security:
        lines += ["", "Not run (reason):", ""]
        lines += [f"- {t}: {r}" for t, r in skipped_security]
    elif not args.tests and not args.consumer_protocol:
        lines += ["", "Not run (reason):", ""]
        lines += [f"- {t}: {r}" for t, r in not_run]
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(WORK, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    if args.publish:
        doc, target, flags = (
            ("librdkafka-consumer-protocol.md", "compat-librdkafka-consumer",
             "--consumer-protocol --publish") if args.consumer_protocol else
            ("librdkafka-security.md", "compat-librdkafka-security", "--security --publish")
            if args.security else ("librdkafka.md", "compat-librdkafka", "--publish"))
        doc = os.path.join(ROOT, "docs", "compat", doc)
        os.makedirs(os.path.dirname(doc), exist_ok=True)
        with open(doc, "w") as f:
            f.write(summary.replace(
                "\n\n", f"\n\nReproduce with `make {target}` (this file: "
                f"`python3 compat/librdkafka/run.py {flags}`). The list and the reason for "
                "every test not run are in `compat/librdkafka/tests.txt`; known failures "
                "are owned by the open issues named there and in `compat/FINDINGS.md`. "
                f"Sources: the rdkafka-sys crate {CRATE.split('-', 2)[2]}.\n\n", 1))
    # The plain closing line CI reads.
    print(f"librdkafka: {counts['KNOWN']} known failures owned by other open issues")
    print(f"librdkafka: {counts['PASSED']} passed, {counts['FAILED']} failed, "
          f"{counts['SKIPPED']} skipped")
    shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if counts["FAILED"] else 0)


if __name__ == "__main__":
    main()
