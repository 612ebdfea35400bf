#!/usr/bin/env python3
"""librdkafka's own regression suite against Weir.

    compat/librdkafka/run.py [--quick] [--consumer-protocol] [--tests 0001,0017]
                             [--timeout SECONDS] [--weir PATH] [--publish]

With --consumer-protocol it runs the tests tagged `consumer` in tests.txt
(the group tests; `cquick` ones with --quick) with
TEST_CONSUMER_GROUP_PROTOCOL=consumer, i.e. KIP-848 consumer groups.

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


def build():
    if os.path.exists(RUNNER):
        return
    log("building librdkafka and tests/test-runner (once; cached in target/librdkafka)")
    # Optional features the suite does not need against a PLAINTEXT broker.
    subprocess.run(["./configure", "--disable-ssl", "--disable-gssapi", "--disable-curl",
                    "--disable-lz4-ext"], cwd=SRC, check=True, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-j" + jobs, "libs"], cwd=SRC, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-j" + jobs, "build"], cwd=TESTS_DIR, check=True,
                   stdout=subprocess.DEVNULL)


def read_list():
    """(test, tags, reason) from tests.txt; tags: run | quick | known | slow | exclude
    | consumer | cquick | cknown."""
    out = []
    with open(os.path.join(HERE, "tests.txt")) as f:
        for line in f:
            line = line.split("#", 1)
            body, reason = line[0].split(), (line[1].strip() if len(line) > 1 else "")
            if not body:
                continue
            out.append((body[0], body[1:], reason))
    return out


class Weir:
    def __init__(self, binary, base):
        self.binary = binary
        self.base = base
        self.proc = None
        self.port = 0
        self.config = os.path.join(base, "weir.toml")
        with open(self.config, "w") as f:
            f.write(BROKER_CONFIG)
        self.log = open(os.path.join(base, "weir.log"), "ab")

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
        self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])

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


ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")
SUMMARY_ROW = re.compile(r"\|\s*(\d{4}_\S+)\s*\|\s*(\w+)\s*\|\s*[\d.]+s\s*\|?[ \t]*([^|\n]*)")


def run_test(test, env, timeout, logdir):
    """(status, detail, seconds) for one test number."""
    start = time.time()
    logfile = os.path.join(logdir, f"{test}.log")
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
    ap.add_argument("--consumer-protocol", action="store_true",
                    help="TEST_CONSUMER_GROUP_PROTOCOL=consumer (KIP-848)")
    ap.add_argument("--tests", help="comma-separated test numbers (overrides the list)")
    ap.add_argument("--share", action="store_true",
                    help="the share-consumer tests (0170-0186) of the bundled librdkafka, if it has them")
    ap.add_argument("--timeout", type=int, default=300,
                    help="per test, seconds (tests tagged slow get four times as long)")
    ap.add_argument("--weir", default=os.path.join(ROOT, "target", "release", "weir"))
    ap.add_argument("--publish", action="store_true",
                    help="also write the summary to docs/compat/librdkafka.md")
    args = ap.parse_args()

    fetch_source()
    build()
    listed = read_list()
    if args.share:
        found = sorted({os.path.basename(f)[:4] for f in glob.glob(os.path.join(TESTS_DIR, "01[78]*.c"))
                        if 170 <= int(os.path.basename(f)[:4]) <= 186})
        if not found:
            log(f"librdkafka {CRATE.split('+')[1]} has no share-consumer tests (0170-0186 came with 2.15)")
            return
        args.tests = ",".join(found)
        os.environ["TEST_KAFKA_VERSION"] = "4.2.0"  # the share tests are gated on 4.2
    if args.tests:
        wanted = [(t, ["run"], "") for t in args.tests.split(",")]
        known = {}
        slow = {t for t, tags, _ in listed if "slow" in tags}
    elif args.consumer_protocol:
        # The group tests, with the KIP-848 protocol: tagged consumer
        # (cquick: also in the quick subset).
        wanted = [(t, tags, r) for t, tags, r in listed
                  if "consumer" in tags and (not args.quick or "cquick" in tags)]
    else:
        wanted = [(t, tags, r) for t, tags, r in listed
                  if "exclude" not in tags and (not args.quick or "quick" in tags)]
    # Known failures are per protocol: `known` (classic), `cknown` (consumer).
    known_tag = "cknown" if args.consumer_protocol else "known"
    known = {t: r for t, tags, r in listed if known_tag in tags}
    slow = {t for t, tags, _ in listed if "slow" in tags}
    excluded = [(t, r) for t, tags, r in listed if "exclude" in tags]

    base = tempfile.mkdtemp(prefix="weir-librdkafka-")
    weir = Weir(args.weir, base)
    weir.start()
    bootstrap = f"127.0.0.1:{weir.port}"
    # A test.conf of this run's own (runs may overlap: the build is shared).
    test_conf = os.path.join(base, "test.conf")
    with open(test_conf, "w") as f:
        f.write(f"metadata.broker.list={bootstrap}\n")
    env = dict(os.environ)
    env.update({
        "TEST_KAFKA_VERSION": os.environ.get("TEST_KAFKA_VERSION", KAFKA_VERSION),
        "BROKERS": bootstrap,
        "KAFKA_PATH": kafka_path(base, args.weir, bootstrap),
        "TEST_LEVEL": "2",
        "RDKAFKA_TEST_CONF": test_conf,
        # test-runner links librdkafka dynamically from the build tree.
        "LD_LIBRARY_PATH": os.path.join(SRC, "src") + ":" + os.path.join(SRC, "src-cpp"),
    })
    if args.consumer_protocol:
        env["TEST_CONSUMER_GROUP_PROTOCOL"] = "consumer"
    logdir = os.path.join(WORK, "logs")
    os.makedirs(logdir, exist_ok=True)
    results = []
    started = time.time()
    try:
        for test, _, _ in wanted:
            if not weir.alive():
                log("weir exited; restarting it")
                weir.start()
            timeout = args.timeout * (4 if test in slow else 1)
            status, detail, secs = run_test(test, env, timeout, logdir)
            if status == "FAILED" and test in known:
                # Owned by another open issue (named in tests.txt and
                # compat/FINDINGS.md): reported, not counted as a failure.
                status, detail = "KNOWN", f"{detail} [{known[test]}]"
            results.append((test, status, detail, secs))
            log(f"{test} {status} ({secs:.0f} s){': ' + detail if detail else ''}")
    finally:
        weir.stop()
    total = time.time() - started
    counts = {s: sum(1 for r in results if r[1] == s)
              for s in ("PASSED", "FAILED", "SKIPPED", "KNOWN")}
    mode = "consumer (KIP-848)" if args.consumer_protocol else "classic"
    lines = [
        f"# librdkafka {CRATE.split('+')[1]} test suite against Weir",
        "",
        f"{time.strftime('%Y-%m-%d')}, group protocol {mode}, "
        f"{'quick subset' if args.quick else 'curated list'}: "
        f"**{counts['PASSED']} passed, {counts['FAILED']} failed, {counts['SKIPPED']} skipped, "
        f"{counts['KNOWN']} known failures owned by other open issues** "
        f"in {total / 60:.1f} min.",
        "",
        "| test | result | seconds | detail |",
        "|---|---|---|---|",
    ]
    for test, status, detail, secs in results:
        lines.append(f"| {test} | {status} | {secs:.0f} | {detail.replace('|', '/')} |")
    if not args.tests and not args.consumer_protocol:
        lines += ["", "Not run (reason):", ""]
        lines += [f"- {t}: {r}" for t, r in excluded]
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(WORK, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    if args.publish:
        doc = os.path.join(ROOT, "docs", "compat",
                           "librdkafka-consumer-protocol.md" if args.consumer_protocol
                           else "librdkafka.md")
        os.makedirs(os.path.dirname(doc), exist_ok=True)
        target, flags = (("compat-librdkafka-consumer", "--consumer-protocol --publish")
                         if args.consumer_protocol else ("compat-librdkafka", "--publish"))
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
