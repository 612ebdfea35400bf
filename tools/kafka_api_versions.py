#!/usr/bin/env python3
"""Generates src/protocol/kafka_versions.rs: the API versions each Apache Kafka
release's broker advertised in ApiVersions (default configuration), from
Kafka's own message specs.

    python3 tools/kafka_api_versions.py generate KAFKA_GIT SITE_GIT > src/protocol/kafka_versions.rs
    python3 tools/kafka_api_versions.py check KAFKA_GIT SITE_GIT
    python3 tools/kafka_api_versions.py extract protocol_messages.html > tools/kafka-docs/X.Y.txt

KAFKA_GIT is a clone (bare is fine) of apache/kafka with its release tags,
SITE_GIT one of apache/kafka-site (the published documentation).

Two sources, both Kafka's:

1. The message specs (clients/src/main/resources/common/message/*Request.json)
   at the newest patch tag of each minor, 2.2 to 3.9. A request spec counts
   when the broker served it:
   - specs with "listeners" (2.8 and later): a ZooKeeper-mode broker
     ("zkBroker") for 2.8-3.9;
   - earlier specs have no listeners: every request spec is a broker API,
     except the KIP-500 quorum APIs that 2.7 already defined but did not
     serve (Vote, BeginQuorumEpoch, EndQuorumEpoch, DescribeQuorum);
   - "latestVersionUnstable": the last version was not advertised (brokers
     hide unstable versions unless unstable.api.versions.enable is set).

2. The protocol documentation Kafka generates from those specs for each
   release (Protocol.toHtml: every broker API, every request version, and
   since 4.0 "This version of the request is unstable." under an unstable
   version), for the releases whose specs are not at hand: 2.1 (its source
   predates the JSON specs) from SITE_GIT's 21/generated/protocol_messages.html,
   and 4.0-4.2 from the extracts in tools/kafka-docs/ (this script's
   `extract` output format; the pages are kafka-site's 40/, 41/ and 42/
   protocol pages). From 4.0 a broker is a KRaft broker, and two rules of
   its ApiVersions answer are not in the pages:
   - its default configuration has no client-telemetry receiver, so it does
     not advertise GetTelemetrySubscriptions (71) and PushTelemetry (72)
     (ApiVersionsResponse.intersectForwardableApis);
   - it advertises Produce from v0 though it serves only v3 and later
     (ApiKeys.PRODUCE_API_VERSIONS_RESPONSE_MIN_VERSION, KAFKA-18659: older
     librdkafka refuses to produce compressed data to a broker without
     Produce v0). The table holds the advertised range; Weir serves Produce
     from v3 anyway.
   Each minor's page is that of its newest patch release (4.0 is 4.0.1's:
   JoinGroup from v0 again, KAFKA-19444; 4.0.0 advertised it from v2).

compat/test_emulation.py compares every table with the ApiVersions answers
kafka-python records from real brokers of each release.

`check` parses the documentation of 2.2-3.2 too and fails unless it gives
exactly the tables the specs give (later pages add KRaft-only broker APIs a
ZooKeeper broker did not serve, and before 4.0 they did not mark unstable
versions, so they are not comparable).
"""
import json
import os
import re
import subprocess
import sys

SPEC_RELEASES = ["2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8",
                 "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9"]
DOCS_RELEASES = ["2.1", "4.0", "4.1", "4.2"]
CHECKED_RELEASES = ["2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.0", "3.1", "3.2"]
QUORUM_ONLY = {"VoteRequest", "BeginQuorumEpochRequest", "EndQuorumEpochRequest", "DescribeQuorumRequest"}
TELEMETRY = {71, 72}
PRODUCE = 0
DIR = "clients/src/main/resources/common/message"
EXTRACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka-docs")


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def release_key(release):
    return [int(x) for x in release.split(".")]


# --- source 1: the message specs -------------------------------------------

def ref_for(repo, release):
    """The newest X.Y.Z tag of the minor, else its release branch."""
    tags = [t for t in git(repo, "tag", "--list", f"{release}.*").split() if re.fullmatch(r"\d+\.\d+\.\d+", t)]
    if tags:
        return max(tags, key=release_key)
    return release  # a branch of a release without a tag in the mirror


def strip_comments(text):
    return "\n".join(re.sub(r"^\s*//.*$", "", line) for line in text.splitlines())


def top_level(text):
    """The spec's top-level keys this needs. Read with patterns, not a JSON
    parser: some older specs are not strict JSON (trailing text after
    the object); each key occurs once, before the fields."""
    spec = {
        "apiKey": int(re.search(r'"apiKey"\s*:\s*(\d+)', text).group(1)),
        "name": re.search(r'"name"\s*:\s*"(\w+)"', text).group(1),
        "validVersions": re.search(r'"validVersions"\s*:\s*"([\d-]+)"', text).group(1),
    }
    listeners = re.search(r'"listeners"\s*:\s*\[([^\]]*)\]', text)
    if listeners:
        spec["listeners"] = json.loads("[" + listeners.group(1) + "]")
    if re.search(r'"latestVersionUnstable"\s*:\s*true', text):
        spec["latestVersionUnstable"] = True
    return spec


def spec_versions(spec):
    lo, _, hi = spec["validVersions"].partition("-")
    lo, hi = int(lo), int(hi or lo)
    if spec.get("latestVersionUnstable"):
        hi -= 1
    listeners = spec.get("listeners")
    if listeners is not None:
        if "zkBroker" not in listeners:
            return None
    elif spec["name"] in QUORUM_ONLY:
        return None
    return (lo, hi) if hi >= lo else None


def spec_table(repo, release):
    ref = ref_for(repo, release)
    names = [n for n in git(repo, "ls-tree", "--name-only", f"{ref}:{DIR}").split() if n.endswith("Request.json")]
    out = {}
    for n in names:
        spec = top_level(strip_comments(git(repo, "show", f"{ref}:{DIR}/{n}")))
        v = spec_versions(spec)
        if v is not None:
            out[spec["apiKey"]] = v
    return ref, dict(sorted(out.items()))


# --- source 2: the generated protocol documentation ------------------------

def parse_docs(html):
    """{key: (name, [request versions], [unstable versions])} from a
    protocol_messages page: each "<Name> API (Key: K):" heading, the
    "<Name> Request (Version: N)" schemas before its "Responses:", and the
    unstable note that follows a request schema."""
    heads = [(m.start(), m.group(1), int(m.group(2)))
             for m in re.finditer(r">(\w+) API \(Key: (\d+)\):</a>", html)]
    apis = {}
    for i, (pos, name, key) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(html)
        requests = html[pos:end].split("<b>Responses:</b>")[0]
        parts = re.split(re.escape(name) + r" Request \(Version: (\d+)\)", requests)
        versions, unstable = [], []
        for j in range(1, len(parts), 2):
            versions.append(int(parts[j]))
            if "This version of the request is unstable." in parts[j + 1]:
                unstable.append(int(parts[j]))
        apis[key] = (name, versions, unstable)
    return apis


def format_versions(vs):
    if vs and vs == list(range(vs[0], vs[-1] + 1)):
        return f"{vs[0]}-{vs[-1]}"
    return ",".join(map(str, vs))


def parse_versions(text):
    if "-" in text and "," not in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(v) for v in text.split(",")]


def extract(apis, source):
    lines = [f"# source: {source}",
             "# one line per API: key, name, request versions listed, versions marked unstable."]
    for key, (name, vs, unstable) in sorted(apis.items()):
        lines.append(f"{key} {name} {format_versions(vs)} unstable={format_versions(unstable) or '-'}")
    return "\n".join(lines) + "\n"


def read_extract(path):
    apis, source = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# source:"):
                source = line.removeprefix("# source:").strip()
            if line.startswith("#"):
                continue
            if not line:
                continue
            key, name, vs, unstable = line.split()
            unstable = unstable.removeprefix("unstable=")
            apis[int(key)] = (name, parse_versions(vs), [] if unstable == "-" else parse_versions(unstable))
    return source, apis


def docs_table(apis, release):
    out = {}
    for key, (name, vs, unstable) in apis.items():
        if release_key(release) >= [4, 0] and key in TELEMETRY:
            continue
        stable = sorted(v for v in vs if v not in unstable)
        if not stable:
            continue
        if stable != list(range(stable[0], stable[-1] + 1)):
            sys.exit(f"{release}: {name} has non-contiguous stable versions {stable}")
        out[key] = (stable[0], stable[-1])
    if release_key(release) >= [4, 0] and PRODUCE in out:
        out[PRODUCE] = (0, out[PRODUCE][1])
    return dict(sorted(out.items()))


def site_page(site, release):
    return git(site, "show", f"HEAD:{release.replace('.', '')}/generated/protocol_messages.html")


def docs_source(site, release):
    if release == "2.1":
        return "kafka-site 21/generated/protocol_messages.html", parse_docs(site_page(site, release))
    return read_extract(os.path.join(EXTRACTS, f"{release}.txt"))


# --- commands ----------------------------------------------------------------

def generate(kafka, site):
    releases = {}
    for release in SPEC_RELEASES:
        releases[release] = spec_table(kafka, release)
    for release in DOCS_RELEASES:
        source, apis = docs_source(site, release)
        releases[release] = (source, docs_table(apis, release))
    print("// Generated by tools/kafka_api_versions.py from Apache Kafka's message specs:")
    print("// clients/src/main/resources/common/message/*Request.json at each release tag,")
    print("// or the protocol documentation Kafka generates from them (2.1, 4.0-4.2).")
    print("// Do not edit: regenerate.")
    print()
    print("/// What one Kafka release's broker advertised in ApiVersions.")
    print("pub struct Release {")
    print("    /// The release as `emulate-kafka-version` names it (\"2.8\").")
    print("    pub name: &'static str,")
    print("    /// Where the versions were read: the tag (or release branch) of the")
    print("    /// specs, or the documentation page.")
    print("    pub source: &'static str,")
    print("    /// (api key, min version, max version).")
    print("    pub apis: &'static [(i16, i16, i16)],")
    print("}")
    print()
    print("#[rustfmt::skip]")
    print("pub static KAFKA_RELEASES: &[Release] = &[")
    for release in sorted(releases, key=release_key):
        source, t = releases[release]
        rows = ", ".join(f"({k}, {lo}, {hi})" for k, (lo, hi) in t.items())
        print(f'    Release {{ name: "{release}", source: "{source}", apis: &[{rows}] }},')
    print("];")


def check(kafka, site):
    failed = False
    for release in CHECKED_RELEASES:
        ref, specs = spec_table(kafka, release)
        docs = docs_table(parse_docs(site_page(site, release)), release)
        diffs = [f"{k}: specs {specs.get(k)} docs {docs.get(k)}"
                 for k in sorted(set(specs) | set(docs)) if specs.get(k) != docs.get(k)]
        print(f"{release} ({ref}): {'same' if not diffs else '; '.join(diffs)}")
        failed |= bool(diffs)
    sys.exit(1 if failed else 0)


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "generate":
        generate(*args)
    elif cmd == "check":
        check(*args)
    elif cmd == "extract":
        with open(args[0]) as f:
            sys.stdout.write(extract(parse_docs(f.read()), args[0]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
