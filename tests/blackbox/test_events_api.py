"""GET /api/v1/events (replay from the outbox) and GET /api/v1/events/stream (SSE)."""
import json
import threading
import time
import urllib.parse

import pytest

from conftest import Client, assert_error, dev_path, read_events, wait_until
from outputs_util import SSE


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

ALL = ("ACTIVITY_EVENT", "INACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT")


def _committed(c):
    return c.stats()["outbox"]["committedSeq"]


def _make(c, devices, timeout_ms=150):
    """For each device: create it with a short timeout, activity, connect,
    disconnect; it goes inactive timeout_ms later (4 events each)."""
    for dev in devices:
        assert c.put(dev_path(dev), json_body={"inactivityTimeout": timeout_ms}).status == 201
        assert c.post(dev_path(dev, "/activity")).status == 202
        assert c.post(dev_path(dev, "/connect")).status == 202
        assert c.post(dev_path(dev, "/disconnect")).status == 202


def _wait_file(d, n):
    assert wait_until(lambda: len(read_events(d.data_dir)) >= n, 10), len(read_events(d.data_dir))
    return read_events(d.data_dir)


def _page(c, query):
    r = c.get("/api/v1/events?" + query)
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "application/json"
    return r.body


# --------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------


@pytest.mark.bb_timeout(30)
def test_paging_returns_the_log(daemon):
    c = daemon.client()
    _make(c, ["p-%d" % i for i in range(5)])
    events = _wait_file(daemon, 20)
    got, after, pages = [], 0, 0
    while True:
        page = _page(c, "after=%d&limit=3" % after)
        pages += 1
        assert len(page["events"]) <= 3
        got += page["events"]
        assert page["next"] >= after
        assert page["firstSeq"] == 1 and page["committedSeq"] == 20
        after = page["next"]
        if not page["more"]:
            break
    assert pages == 7
    assert got == events  # same objects as events.jsonl, in seq order
    # Caught up: an empty page, next stays, more false.
    page = _page(c, "after=20")
    assert page == {"events": [], "next": 20, "more": False, "firstSeq": 1, "committedSeq": 20}
    page = _page(c, "after=999999")
    assert page["events"] == [] and page["next"] == 999999 and page["more"] is False
    # Defaults: from the oldest, 100 per page.
    assert _page(c, "")["events"] == events
    assert len(_page(c, "limit=1")["events"]) == 1


@pytest.mark.bb_timeout(30)
def test_filters(daemon):
    c = daemon.client()
    odd = 'we"ird/\\id é'
    _make(c, ["f-1", odd, "f-2"])
    events = _wait_file(daemon, 12)

    inact = _page(c, "type=INACTIVITY_EVENT&limit=1000")["events"]
    assert inact == [e for e in events if e["type"] == "INACTIVITY_EVENT"] and len(inact) == 3
    two = _page(c, "type=CONNECT_EVENT,DISCONNECT_EVENT")["events"]
    assert two == [e for e in events if e["type"] in ("CONNECT_EVENT", "DISCONNECT_EVENT")]
    mine = _page(c, "device=" + urllib.parse.quote(odd, safe=""))["events"]
    assert mine == [e for e in events if e["device"] == odd] and len(mine) == 4
    both = _page(c, "device=f-2&type=ACTIVITY_EVENT")
    assert [(e["device"], e["type"]) for e in both["events"]] == [("f-2", "ACTIVITY_EVENT")]
    none = _page(c, "device=nobody")
    assert none["events"] == [] and none["next"] == 12 and none["more"] is False
    # Filters and paging together: next walks past skipped events.
    page = _page(c, "type=INACTIVITY_EVENT&limit=1")
    assert len(page["events"]) == 1 and page["more"] is True
    rest = _page(c, "type=INACTIVITY_EVENT&after=%d" % page["next"])["events"]
    assert page["events"] + rest == inact


@pytest.mark.parametrize("query", [
    "after=-1", "after=abc", "after=1.5", "after=", "after=9223372036854775808", "after=%2B1",
    "limit=0", "limit=1001", "limit=abc", "limit=", "limit=-5",
    "type=", "type=FOO", "type=INACTIVITY_EVENT,FOO", "type=INACTIVITY",
    "device=", "device=%FF", "device=a%00b", "device=%ZZ", "device=" + "x" * 257,
])
def test_bad_parameters(client, query):
    r = client.get("/api/v1/events?" + query)
    assert_error(r, 422, "invalid")
    name = query.split("=")[0]
    assert name in r.body["detail"], r.body


def test_events_methods(client):
    assert_error(client.post("/api/v1/events"), 405, "method_not_allowed")
    assert_error(client.delete("/api/v1/events/stream"), 405, "method_not_allowed")
    assert_error(client.get("/api/v1/events/other"), 404, "not_found")


# --------------------------------------------------------------------------
# Stream
# --------------------------------------------------------------------------


def _stream(d, path="/api/v1/events/stream", headers=None, **kw):
    s = SSE(d.host, d.port, path, headers=headers, **kw)
    assert s.status == 200, s.status
    assert s.headers["content-type"] == "text/event-stream"
    assert s.headers["cache-control"] == "no-cache"
    first = s.frame(5)
    assert first is not None and first.get("retry") == "1000", first
    return s


def _check_frame(f, by_seq):
    ev = json.loads(f["data"])
    assert int(f["id"]) == ev["seq"]
    assert f["event"] == ev["type"]
    assert ev == by_seq[ev["seq"]]  # exactly the events.jsonl line
    return ev


@pytest.mark.bb_timeout(30)
def test_stream_live_events(daemon):
    c = daemon.client()
    assert c.post(dev_path("before", "/activity")).status == 202
    assert wait_until(lambda: _committed(c) == 1, 5)
    s = _stream(daemon)
    try:
        # Live only: "before" (seq 1) is not replayed.
        _make(c, ["live-1"])
        frames = s.events(4, 10)
        by_seq = {e["seq"]: e for e in _wait_file(daemon, 5)}
        evs = [_check_frame(f, by_seq) for f in frames]
        assert [e["seq"] for e in evs] == [2, 3, 4, 5]
        assert [e["type"] for e in evs] == ["ACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT",
                                            "INACTIVITY_EVENT"]
        assert c.stats()["streams"]["open"] == 1
        # Other requests are served while the stream is open.
        for _ in range(20):
            assert c.get("/healthz").status == 200
    finally:
        s.close()


@pytest.mark.bb_timeout(30)
def test_streams_in_a_thread_pool(start_daemon):
    """With http.threads > 1 streams live on several MHD threads; all of them
    get every event and other requests are still served."""
    d = start_daemon(sets=["http.threads=3"])
    c = d.client()
    streams = [_stream(d) for _ in range(6)]
    try:
        for round_ in range(3):
            assert c.post(dev_path("pool-%d" % round_, "/activity")).status == 202
            for s in streams:
                f = s.events(1, 10)
                assert [int(x["id"]) for x in f] == [round_ + 1]
            assert c.get("/healthz").status == 200
        assert c.stats()["streams"]["open"] == 6
    finally:
        for s in streams:
            s.close()


@pytest.mark.bb_timeout(30)
def test_stream_resume_with_last_event_id(daemon):
    c = daemon.client()
    _make(c, ["r-1", "r-2"])
    events = _wait_file(daemon, 8)
    by_seq = {e["seq"]: e for e in events}

    s = _stream(daemon, headers={"Last-Event-ID": "3"})
    try:
        got = [_check_frame(f, by_seq)["seq"] for f in s.events(5, 10)]
        assert got == [4, 5, 6, 7, 8]
        # Then live, with no gap.
        _make(c, ["r-3"])
        by_seq = {e["seq"]: e for e in _wait_file(daemon, 12)}
        got = [_check_frame(f, by_seq)["seq"] for f in s.events(4, 10)]
        assert got == [9, 10, 11, 12]
    finally:
        s.close()
    # ?after= works too, and Last-Event-ID wins over it (a reconnecting EventSource).
    s = _stream(daemon, path="/api/v1/events/stream?after=10")
    try:
        assert [int(f["id"]) for f in s.events(2, 10)] == [11, 12]
    finally:
        s.close()
    s = _stream(daemon, path="/api/v1/events/stream?after=1", headers={"Last-Event-ID": "11"})
    try:
        assert [int(f["id"]) for f in s.events(1, 10)] == [12]
        assert s.events(1, 0.5) == []
    finally:
        s.close()


@pytest.mark.bb_timeout(30)
def test_stream_filters(daemon):
    c = daemon.client()
    s = _stream(daemon, path="/api/v1/events/stream?after=0&type=INACTIVITY_EVENT,CONNECT_EVENT&device=s-2")
    try:
        _make(c, ["s-1", "s-2", "s-3"])
        frames = s.events(2, 10)
        by_seq = {e["seq"]: e for e in _wait_file(daemon, 12)}
        evs = [_check_frame(f, by_seq) for f in frames]
        assert [(e["device"], e["type"]) for e in evs] == [("s-2", "CONNECT_EVENT"), ("s-2", "INACTIVITY_EVENT")]
        assert s.events(1, 0.5) == []
    finally:
        s.close()


@pytest.mark.bb_timeout(30)
def test_stream_keepalive(start_daemon):
    d = start_daemon(sets=["http.stream_keepalive=300ms"])
    s = _stream(d)
    try:
        t0 = time.monotonic()
        f = s.frame(5)
        assert f is not None and f["comments"] == ["keep-alive"] and "data" not in f, f
        f = s.frame(5)
        assert f is not None and f["comments"] == ["keep-alive"], f
        assert time.monotonic() - t0 < 4
    finally:
        s.close()


@pytest.mark.bb_timeout(30)
def test_departed_client_frees_its_slot(start_daemon):
    """A client that goes away while its stream sleeps is noticed at the next
    keep-alive at the latest, and its slot is freed."""
    d = start_daemon(sets=["http.stream_keepalive=300ms", "http.max_streams=1"])
    c = d.client()
    s = _stream(d)
    assert c.stats()["streams"]["open"] == 1
    assert_error(c.get("/api/v1/events/stream"), 503, "too_many_streams")
    s.close()
    assert wait_until(lambda: c.stats()["streams"]["open"] == 0, 5)
    s = _stream(d)  # the slot is free again
    s.close()


@pytest.mark.bb_timeout(60)
def test_stream_skipped_events_move_the_id(daemon):
    """A filter that passes over 10,000 events sends an id-only frame."""
    c = daemon.client()
    s = _stream(daemon, path="/api/v1/events/stream?after=0&device=never")
    try:
        r = c.post("/api/v1/activity", json_body=["skip-%d" % i for i in range(12000)])
        assert r.status == 202 and r.body["accepted"] == 12000
        f = s.frame(10)
        assert f is not None and f.get("id") == "10000" and "data" not in f and "event" not in f, f
        assert s.events(1, 0.5) == []
    finally:
        s.close()


@pytest.mark.bb_timeout(30)
def test_stream_limit_and_bad_parameters(start_daemon):
    d = start_daemon(sets=["http.max_streams=2"])
    c = d.client()
    a, b = _stream(d), _stream(d)
    try:
        r = c.get("/api/v1/events/stream")
        assert_error(r, 503, "too_many_streams")
        assert r.headers["Retry-After"] == "1"
        assert c.stats()["streams"] == {"open": 2, "dropped": 0, "refused": 1}
    finally:
        a.close()
        b.close()
    for path, hdrs in [("?after=x", {}), ("?type=NOPE", {}), ("?device=%ZZ", {}), ("?limit=0", None),
                       ("", {"Last-Event-ID": "abc"}), ("", {"Last-Event-ID": "-3"})]:
        if hdrs is None:
            continue  # limit is not a stream parameter: ignored
        r = c.get("/api/v1/events/stream" + path, headers=hdrs)
        assert_error(r, 422, "invalid")


@pytest.mark.bb_timeout(90)
def test_slow_consumer_is_dropped_and_nothing_stalls(start_daemon):
    d = start_daemon(sets=["http.stream_max_backlog=2000"])
    c = d.client()
    slow = _stream(d, rcvbuf=4096)  # reads its first frame, then never again
    fast = _stream(d)
    got = []
    reader = threading.Thread(target=lambda: got.extend(int(f["id"]) for f in fast.events(40000, 60)))
    reader.start()
    try:
        # ~40,000 events, some 15 MB of stream: far more than the slow
        # client's socket buffers hold.
        for part in range(4):
            r = c.post("/api/v1/activity", json_body=["slow-%d-%d" % (part, i) for i in range(10000)])
            assert r.status == 202 and r.body["accepted"] == 10000
        # Everything else keeps answering at once.
        for _ in range(10):
            t0 = time.monotonic()
            assert Client(d.host, d.port, timeout=5).get("/healthz").status == 200
            assert time.monotonic() - t0 < 2.0
        assert wait_until(lambda: c.stats()["streams"]["dropped"] == 1, 20), c.stats()["streams"]
        assert "dropped:" in d.stderr_text() and "over http.stream_max_backlog" in d.stderr_text()
        # The client that keeps reading got every event, in order.
        reader.join(60)
        assert got == list(range(1, 40001)), (len(got), got[:3], got[-3:])
        # The slow client finds its stream closed once it reads again.
        assert slow.drain_until_closed(20)
        assert wait_until(lambda: c.stats()["streams"]["open"] == 1, 5)
    finally:
        slow.close()
        fast.close()
        reader.join(5)


@pytest.mark.bb_timeout(30)
def test_daemon_stops_cleanly_with_open_streams(start_daemon):
    d = start_daemon()
    streams = [_stream(d) for _ in range(3)]
    try:
        assert d.stop() == 0
        for s in streams:
            assert s.drain_until_closed(5)
    finally:
        for s in streams:
            s.close()
