"""The web console on the broker's HTTP listener, in a real browser: headless
Chromium renders each page and the assertions read the DOM it dumps
(`--dump-dom`), so what is checked is what a browser shows. The pages are
served without JavaScript being needed (one dump with scripts off). The
offset-reset form is driven with urllib like a browser would post it: token
from the form, cookies kept, redirects not followed. Screenshots of every
page land in target/console-screenshots/."""
import http.cookiejar
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (`make chromium-deps` installs the Debian package)"
)

SCREENSHOTS = os.path.join(ROOT, "target", "console-screenshots")
ORDERS, PAYMENTS, GROUP = "orders", "payments", "billing"
ORDER_PARTITIONS = 3
COMMIT_AT = 10  # billing's committed offset per partition: min(COMMIT_AT, end)


# --- the DOM Chromium dumped -----------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs):
        self.tag = tag
        self.attrs = {k: (v if v is not None else "") for k, v in attrs}
        self.children = []

    @property
    def text(self):
        """Text content with whitespace collapsed."""
        return " ".join(self.raw_text().split())

    def raw_text(self):
        return "".join(c if isinstance(c, str) else c.raw_text() for c in self.children)

    @property
    def classes(self):
        return self.attrs.get("class", "").split()

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        return [
            n for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]

    def by_id(self, ident):
        found = self.find_all(id=ident)
        return found[0] if found else None

    def excerpt(self, limit=1500):
        """The node's text for assertion messages."""
        return self.raw_text()[:limit]


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [])
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs)
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, attrs))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html):
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


def table(doc, ident, html=""):
    t = doc.by_id(ident)
    assert t is not None and t.tag == "table", f'no <table id="{ident}"> in:\n{html[:3000]}'
    return t


def data_rows(t):
    """The table's rows that have <td> cells (header rows left out)."""
    return [tr for tr in t.find_all("tr") if tr.find_all("td")]


def cells(tr):
    return [td.text for td in tr.find_all("td")]


def by_class(tr):
    """{class: text} over the row's cells."""
    out = {}
    for td in tr.find_all("td"):
        for c in td.classes:
            out[c] = td.text
    return out


def link_path(a):
    return urllib.parse.urlsplit(a.attrs.get("href", "")).path


def links(doc):
    return {link_path(a) for a in doc.find_all("a")}


def column(t, word):
    """Index of the header cell whose text contains `word`, or None."""
    for tr in t.find_all("tr"):
        ths = tr.find_all("th")
        if ths:
            for i, th in enumerate(ths):
                if word in th.text.lower():
                    return i
            return None
    return None


# --- Chromium ----------------------------------------------------------------

def chromium(profile, *args, timeout=60):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
           "--no-first-run", "--no-default-browser-check", *args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{r.stderr.decode(errors='replace')[-3000:]}"
    return r


class Browser:
    def __init__(self, address, base):
        self.http = address
        # A profile of our own (not ~/.config/chromium), and one whose
        # content settings block JavaScript. `--blink-settings=
        # scriptEnabled=false` can't be used for this: --dump-dom reads the
        # DOM through script, so with it Chromium dumps nothing at all.
        self.profile = base / "chromium"
        self.nojs_profile = base / "chromium-nojs"
        (self.nojs_profile / "Default").mkdir(parents=True)
        (self.nojs_profile / "Default" / "Preferences").write_text(
            '{"profile": {"default_content_setting_values": {"javascript": 2}}}'
        )

    def url(self, path):
        return f"http://{self.http}{path}"

    def dump(self, path, js=True):
        """(parsed DOM, html) of the page as Chromium rendered it. The page
        must answer 200 with HTML first (Chromium would render an error page
        just the same)."""
        if not path.startswith("data:"):
            status, headers, body = http_get(self.http, path)
            assert status == 200, f"GET {path}: {status}\n{body[:2000]!r}"
            assert "text/html" in headers.get("Content-Type", ""), f"GET {path}: {headers.get('Content-Type')!r}"
            path = self.url(path)
        r = chromium(self.profile if js else self.nojs_profile, "--dump-dom", path)
        html = r.stdout.decode("utf-8", errors="replace")
        assert "<html" in html, f"Chromium dumped no DOM for {path}:\n{r.stderr.decode(errors='replace')[-3000:]}"
        return parse(html), html

    def screenshot(self, path, out):
        chromium(self.profile, "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={out}", self.url(path))


# --- HTTP without a browser -----------------------------------------------

def http_get(address, path):
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 303 itself is what is checked


class FormClient:
    """Posts the console's forms the way a browser does: same cookies as the
    page the token came from, the page's origin, no redirects followed."""

    def __init__(self, address):
        self.http = address
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )

    def get(self, path):
        with self.opener.open(f"http://{self.http}{path}", timeout=10) as r:
            assert r.status == 200, (path, r.status)
            return parse(r.read().decode("utf-8", errors="replace"))

    def csrf(self, path):
        doc = self.get(path)
        form = doc.by_id("reset")
        assert form is not None, f'no <form id="reset"> on {path}'
        inputs = form.find_all("input", name="csrf")
        assert inputs and inputs[0].attrs.get("value"), f"no csrf token in the form on {path}"
        return inputs[0].attrs["value"]

    def post(self, path, fields):
        """(status, Location header)."""
        req = urllib.request.Request(
            f"http://{self.http}{path}",
            data=urllib.parse.urlencode(fields).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"http://{self.http}",
                "Referer": f"http://{self.http}{path.rsplit('/', 1)[0]}",
            },
        )
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, r.headers.get("Location")
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, e.headers.get("Location")


# --- the cluster the pages show -------------------------------------------

class Cluster:
    pass


@pytest.fixture(scope="module")
def broker(http_broker):
    return http_broker


@pytest.fixture(scope="module")
def cluster(broker):
    c = Cluster()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([
        NewTopic(ORDERS, ORDER_PARTITIONS, 1),
        NewTopic(PAYMENTS, 1, 1, config={"retention.ms": "3600000"}),
    ])
    for f in futures.values():
        f.result(10)
    c.cluster_id = admin.list_topics(timeout=10).cluster_id
    assert c.cluster_id

    # orders: keyed, so partitioned by key; where each record went comes
    # from the delivery reports.
    c.orders = {}  # (partition, offset) -> (key, value)
    delivered = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(30):
        p.produce(ORDERS, key=b"k%d" % i, value=b"order-%d" % i, headers=[("source", b"test")],
                  on_delivery=lambda err, msg: delivered.append((err, msg)))
    c.payment_values = [b"\xff\xfe-pay-%d" % i for i in range(5)]
    for v in c.payment_values:
        p.produce(PAYMENTS, value=v, on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert p.flush(20) == 0
    assert len(delivered) == 35 and all(err is None for err, _ in delivered), delivered
    for _, msg in delivered:
        if msg.topic() == ORDERS:
            c.orders[(msg.partition(), msg.offset())] = (msg.key(), msg.value())
    c.last_order = next(pos for pos, (_, v) in c.orders.items() if v == b"order-29")

    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "console-probe"})
    try:
        c.ends = {}
        for part in range(ORDER_PARTITIONS):
            low, high = probe.get_watermark_offsets(TopicPartition(ORDERS, part), timeout=10)
            assert low == 0
            c.ends[part] = high
        assert sum(c.ends.values()) == 30
        assert probe.get_watermark_offsets(TopicPartition(PAYMENTS, 0), timeout=10) == (0, 5)
    finally:
        probe.close()

    # billing: joins, commits explicit offsets, leaves; so it is empty with
    # a known lag per partition.
    c.committed = {part: min(COMMIT_AT, end) for part, end in c.ends.items()}
    billing = group_consumer(broker, GROUP)
    try:
        billing.subscribe([ORDERS])
        wait_assigned(billing, ORDER_PARTITIONS)
        billing.commit(offsets=[TopicPartition(ORDERS, part, o) for part, o in c.committed.items()],
                       asynchronous=False)
    finally:
        billing.close()
    assert committed_offsets(broker, GROUP) == c.committed
    return c


def group_consumer(broker, group):
    return Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 2000, "heartbeat.interval.ms": 200,
    })


def wait_assigned(consumer, n, timeout=20):
    deadline = time.time() + timeout
    while len(consumer.assignment()) < n:
        assert time.time() < deadline, f"assignment {consumer.assignment()} after {timeout}s"
        consumer.poll(0.1)


def committed_offsets(broker, group):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(ORDERS, p) for p in range(ORDER_PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser(broker, cluster, tmp_path_factory):
    return Browser(broker.http, tmp_path_factory.mktemp("browser"))


def offsets_rows(doc, html=""):
    """{partition: {class: text}} of the offsets table's rows for `orders`."""
    t = table(doc, "offsets", html)
    rows = {}
    for tr in data_rows(t):
        row = by_class(tr)
        for cls in ("topic", "partition", "committed", "end", "lag"):
            assert cls in row, f'offsets row without a cell of class "{cls}": {cells(tr)}'
        if row["topic"] == ORDERS:
            rows[int(row["partition"])] = row
    return rows


def assert_offsets(rows, committed, ends):
    assert sorted(rows) == list(range(ORDER_PARTITIONS)), rows
    for part, row in rows.items():
        got = (int(row["committed"]), int(row["end"]), int(row["lag"]))
        assert got == (committed[part], ends[part], ends[part] - committed[part]), (part, row)


def message_rows(doc, html=""):
    t = table(doc, "messages", html)
    rows = []
    for tr in data_rows(t):
        row = by_class(tr)
        if "offset" in row:
            for cls in ("partition", "timestamp", "key", "value", "headers"):
                assert cls in row, f'message row without a cell of class "{cls}": {cells(tr)}'
            rows.append(row)
    return rows


# --- pages -------------------------------------------------------------------

def test_overview_shows_the_cluster_and_links_every_page(browser, cluster):
    doc, html = browser.dump("/")
    h1 = doc.find_all("h1")
    assert h1 and "Weir" in h1[0].text, html[:2000]
    assert cluster.cluster_id in doc.text, f"cluster id {cluster.cluster_id} not on the overview:\n{doc.excerpt()}"
    assert {"/topics", "/groups", "/share-groups", "/transactions"} <= links(doc), links(doc)


def test_topics_lists_both_topics_with_their_partition_counts(browser, cluster):
    doc, html = browser.dump("/topics")
    t = table(doc, "topics", html)
    col = column(t, "partition")
    found = {}
    for tr in data_rows(t):
        anchors = [a for a in tr.find_all("a") if link_path(a) in ("/topics/" + ORDERS, "/topics/" + PAYMENTS)]
        if anchors:
            name = anchors[0].text
            assert link_path(anchors[0]) == "/topics/" + name, anchors[0].attrs
            found[name] = cells(tr)
    assert set(found) == {ORDERS, PAYMENTS}, f"topic rows: {[cells(tr) for tr in data_rows(t)]}"
    for name, partitions in ((ORDERS, ORDER_PARTITIONS), (PAYMENTS, 1)):
        row = found[name]
        if col is not None:
            assert row[col] == str(partitions), (name, row)
        else:
            assert str(partitions) in row, (name, row)


def test_topic_page_shows_partitions_configs_and_the_latest_messages(browser, cluster):
    doc, html = browser.dump(f"/topics/{ORDERS}")
    parts = {}
    for tr in data_rows(table(doc, "partitions", html)):
        row = cells(tr)
        parts[int(row[0])] = row
    assert sorted(parts) == list(range(ORDER_PARTITIONS)), parts
    for part, row in parts.items():
        assert row[1:3] == ["0", str(cluster.ends[part])], (part, row)  # start, end offsets
        assert len(row) >= 4 and row[3], (part, row)  # size
    table(doc, "configs", html)

    rows = message_rows(doc, html)
    assert 0 < len(rows) <= 20, f"{len(rows)} messages by default (limit 20)"
    last = [r for r in rows if "order-29" in r["value"]]
    assert last, f"order-29 not among the latest messages: {[r['value'] for r in rows]}"
    row = last[0]
    assert (int(row["partition"]), int(row["offset"])) == cluster.last_order, row
    assert "k29" in row["key"] and row["timestamp"], row
    assert "source" in row["headers"] and "test" in row["headers"], row
    # Every message shown is one that was produced, at its place.
    for r in rows:
        key, value = cluster.orders[(int(r["partition"]), int(r["offset"]))]
        assert value.decode() in r["value"] and key.decode() in r["key"], r


def test_topic_page_from_an_offset_of_one_partition(browser, cluster):
    doc, html = browser.dump(f"/topics/{ORDERS}?partition=0&offset=0&limit=5")
    rows = message_rows(doc, html)
    want = list(range(min(5, cluster.ends[0])))
    assert [int(r["offset"]) for r in rows] == want, [(r["partition"], r["offset"]) for r in rows]
    for r in rows:
        assert r["partition"] == "0", r
        assert cluster.orders[(0, int(r["offset"]))][1].decode() in r["value"], r


def test_non_utf8_values_as_escaped_text_and_as_hex(browser, cluster):
    doc, html = browser.dump(f"/topics/{PAYMENTS}")
    rows = message_rows(doc, html)
    assert len(rows) == 5, [r["value"] for r in rows]
    for r in rows:
        assert re.search(r"\\x(ff|FF)\\x(fe|FE)-pay-\d", r["value"]), f"not hex-escaped: {r['value']!r}"
        assert "\ufffd" not in r["value"], f"bytes replaced, not escaped: {r['value']!r}"
    configs = table(doc, "configs", html)
    assert "retention.ms" in configs.text and "3600000" in configs.text, configs.text

    doc, html = browser.dump(f"/topics/{PAYMENTS}?format=hex")
    rows = message_rows(doc, html)
    assert len(rows) == 5, [r["value"] for r in rows]
    want = {v.hex() for v in cluster.payment_values}
    got = {re.sub(r"\s+", "", r["value"]).lower() for r in rows}
    assert got == want, [r["value"] for r in rows]


def test_groups_lists_billing(browser, cluster):
    doc, html = browser.dump("/groups")
    t = table(doc, "groups", html)
    rows = [tr for tr in data_rows(t) if any(link_path(a) == f"/groups/{GROUP}" for a in tr.find_all("a"))]
    assert len(rows) == 1, [cells(tr) for tr in data_rows(t)]
    a = [a for a in rows[0].find_all("a") if link_path(a) == f"/groups/{GROUP}"][0]
    assert a.text == GROUP
    row = [c.lower() for c in cells(rows[0])]
    assert "classic" in row, cells(rows[0])  # type
    assert "empty" in row, cells(rows[0])  # state: everyone left


def test_group_page_shows_committed_offsets_lag_and_the_reset_form(browser, cluster):
    doc, html = browser.dump(f"/groups/{GROUP}")
    table(doc, "members", html)
    assert_offsets(offsets_rows(doc, html), cluster.committed, cluster.ends)

    form = doc.by_id("reset")
    assert form is not None and form.tag == "form", html[:3000]
    assert form.attrs.get("method", "").lower() == "post", form.attrs
    assert form.attrs.get("action") == f"/groups/{GROUP}/reset", form.attrs
    csrf = form.find_all("input", name="csrf")
    assert csrf and csrf[0].attrs.get("type") == "hidden" and csrf[0].attrs.get("value"), form.attrs
    choices = {o.attrs.get("value") for o in form.find_all("option")} | \
              {i.attrs.get("value") for i in form.find_all("input", name="to", type="radio")}
    if form.find_all("select", name="to"):
        choices = {o.attrs.get("value") for s in form.find_all("select", name="to") for o in s.find_all("option")}
    assert {"earliest", "latest"} <= choices, f"`to` choices: {choices}"
    confirm = form.find_all("input", name="confirm")
    assert confirm and confirm[0].attrs.get("type") == "checkbox" and confirm[0].attrs.get("value") == "yes", \
        [i.attrs for i in form.find_all("input")]


@pytest.mark.parametrize("path,table_id", [("/share-groups", "share-groups"), ("/transactions", "transactions")])
def test_share_groups_and_transactions_pages_render(browser, cluster, path, table_id):
    doc, html = browser.dump(path)
    table(doc, table_id, html)


def test_read_only_pages_work_without_javascript(browser, cluster):
    # The profile really has scripts off: a script that writes doesn't run.
    doc, _ = browser.dump("data:text/html,<body><script>document.write('SCRIPT-RAN')</script></body>", js=False)
    assert "SCRIPT-RAN" not in doc.text.replace("document.write('SCRIPT-RAN')", "")
    doc, html = browser.dump(f"/groups/{GROUP}", js=False)
    assert_offsets(offsets_rows(doc, html), cluster.committed, cluster.ends)


PAGES = [
    ("overview", "/"),
    ("topics", "/topics"),
    ("topic-orders", f"/topics/{ORDERS}"),
    ("groups", "/groups"),
    ("group-billing", f"/groups/{GROUP}"),
    ("share-groups", "/share-groups"),
    ("transactions", "/transactions"),
]


@pytest.mark.parametrize("name,path", PAGES)
def test_screenshot(browser, cluster, name, path):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    out = os.path.join(SCREENSHOTS, f"{name}.png")
    if os.path.exists(out):
        os.remove(out)
    browser.screenshot(path, out)
    assert os.path.exists(out), f"no screenshot of {path}"
    assert os.path.getsize(out) > 5 * 1024, f"{out}: {os.path.getsize(out)} bytes"
    docs_png = os.path.join(ROOT, "docs", "console.png")
    if name == "topic-orders" and not os.path.exists(docs_png):
        shutil.copyfile(out, docs_png)


# --- resetting offsets (last: it changes billing's offsets) -----------------

def test_reset_offsets_needs_token_and_confirmation_then_moves_them(broker, cluster):
    forms = FormClient(broker.http)
    page, reset = f"/groups/{GROUP}", f"/groups/{GROUP}/reset"

    assert forms.post(reset, {"to": "latest", "confirm": "yes"})[0] == 403
    assert forms.post(reset, {"csrf": "not-the-token", "to": "latest", "confirm": "yes"})[0] == 403
    assert forms.post(reset, {"csrf": forms.csrf(page), "to": "latest"})[0] == 400
    assert forms.post(reset, {"csrf": forms.csrf(page), "to": "latest", "confirm": "no"})[0] == 400
    assert committed_offsets(broker, GROUP) == cluster.committed, "a refused reset moved offsets"

    status, location = forms.post(reset, {"csrf": forms.csrf(page), "to": "latest", "confirm": "yes"})
    assert (status, urllib.parse.urlsplit(location or "").path) == (303, page), (status, location)
    assert committed_offsets(broker, GROUP) == cluster.ends
    assert_offsets(offsets_rows(forms.get(page)), cluster.ends, cluster.ends)  # lag 0

    status, location = forms.post(reset, {"csrf": forms.csrf(page), "to": "earliest", "confirm": "yes"})
    assert (status, urllib.parse.urlsplit(location or "").path) == (303, page), (status, location)
    zero = {part: 0 for part in cluster.ends}
    assert committed_offsets(broker, GROUP) == zero
    assert_offsets(offsets_rows(forms.get(page)), zero, cluster.ends)


def test_reset_refused_while_the_group_has_members(broker, cluster):
    group = "auditors"
    c = group_consumer(broker, group)
    try:
        c.subscribe([ORDERS])
        wait_assigned(c, ORDER_PARTITIONS)
        forms = FormClient(broker.http)
        doc = forms.get(f"/groups/{group}")
        assert data_rows(table(doc, "members")), "the group's member is not listed"
        status, _ = forms.post(f"/groups/{group}/reset",
                               {"csrf": forms.csrf(f"/groups/{group}"), "to": "earliest", "confirm": "yes"})
        assert status == 409
    finally:
        c.close()
