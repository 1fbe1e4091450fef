"""
What the dashboard stands on, driven from outside: the embedded files at /
and /ui/ (content types, ETag revalidation, HEAD, errors), the fleet history
ring (GET /api/v1/stats/history), the newest-first event query
(GET /api/v1/events/recent) with its filters and paging, and the id search
(q=) of the device list.  The page itself is tested in a real browser by
tests/browser/.
"""

import os
import urllib.parse

import pytest

from conftest import assert_error, dev_path, now_ms, read_events, wait_until


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")


@pytest.fixture
def start_daemon(start_daemon):
    """These tests count events one by one: unavailability alarms (their own
    events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=["alarms.enabled=false"] + list(sets), **kw)

    return start


def web_file(name):
    with open(os.path.join(WEB_DIR, name), "rb") as f:
        return f.read()


# --------------------------------------------------------------------------
# Embedded files
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,name,ctype",
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/ui/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "style.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "favicon.svg", "image/svg+xml"),
    ],
)
def test_asset_served_as_built(client, path, name, ctype):
    r = client.get(path)
    assert r.status == 200, r
    assert r.headers["Content-Type"] == ctype
    assert r.raw == web_file(name)
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 18, etag


def test_page_has_a_strict_content_security_policy(client):
    csp = client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    # The page only loads its own files: no CDN.
    html = web_file("index.html").decode()
    assert "http://" not in html and "https://" not in html
    assert "http://" not in web_file("app.js").decode().replace("http://www.w3.org/2000/svg", "")


def test_etags_differ_per_file(client):
    tags = {client.get(p).headers["ETag"] for p in ("/", "/ui/app.js", "/ui/style.css", "/ui/favicon.svg")}
    assert len(tags) == 4


def test_if_none_match_gives_304_without_body(client):
    etag = client.get("/ui/app.js").headers["ETag"]
    for header in (etag, 'W/' + etag, '"0000000000000000", ' + etag, "*"):
        r = client.get("/ui/app.js", headers={"If-None-Match": header})
        assert r.status == 304, (header, r)
        assert r.raw == b""
        assert r.headers["ETag"] == etag
    r = client.get("/ui/app.js", headers={"If-None-Match": '"0000000000000000"'})
    assert r.status == 200 and r.raw == web_file("app.js")


def test_head_has_the_headers_and_no_body(client):
    for path, name in (("/", "index.html"), ("/ui/app.js", "app.js")):
        r = client.request("HEAD", path)
        assert r.status == 200
        assert r.raw == b""
        assert int(r.headers["Content-Length"]) == len(web_file(name))
        assert r.headers["ETag"] == client.get(path).headers["ETag"]


@pytest.mark.parametrize("path", ["/ui/missing.js", "/ui/", "/ui", "/ui/app.js/x", "/ui/../ui/app.js",
                                  "/ui/%61pp.js", "/index.html", "/favicon.ico"])
def test_unknown_asset_is_404_json(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_asset_methods(client, method):
    for path in ("/", "/ui/app.js"):
        r = client.request(method, path, body=b"")
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "GET, HEAD"


# --------------------------------------------------------------------------
# GET /api/v1/stats/history
# --------------------------------------------------------------------------


@pytest.mark.bb_timeout(40)
def test_history_samples_every_ten_seconds(daemon, client):
    t0 = now_ms()
    h = client.get("/api/v1/stats/history").body
    assert h["stepMs"] == 10000
    # The first sample is taken when the timer loop first turns: an empty fleet.
    assert len(h["samples"]) == 1
    first = h["samples"][0]
    assert first["devices"] == first["active"] == first["inactive"] == 0
    assert t0 - 15000 <= first["t"] <= t0 + 5
    # "now" is the counts at the time of the request.
    for i in range(3):
        assert client.post(dev_path("h-%d" % i, "/activity")).status == 202
    assert client.put(dev_path("h-idle"), json_body={}).status == 201
    h = client.get("/api/v1/stats/history").body
    assert h["now"]["devices"] == 4 and h["now"]["active"] == 3 and h["now"]["inactive"] == 1
    assert h["now"]["t"] >= first["t"]
    # Ten seconds after the first, a second sample with the new counts.
    h = wait_until(lambda: (lambda b: b if len(b["samples"]) >= 2 else None)(client.get("/api/v1/stats/history").body),
                   15, interval=0.2)
    assert h, "no second sample within 15 s"
    second = h["samples"][1]
    assert (second["devices"], second["active"], second["inactive"]) == (4, 3, 1)
    assert 9900 <= second["t"] - first["t"] <= 11500, (first, second)
    assert_error(client.post("/api/v1/stats/history", body=b""), 405, "method_not_allowed")


# --------------------------------------------------------------------------
# GET /api/v1/events/recent
# --------------------------------------------------------------------------


def recent(client, **params):
    r = client.get("/api/v1/events/recent?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote))
    assert r.status == 200, r
    return r.body


def committed(client, seq):
    assert wait_until(lambda: client.stats()["outbox"]["committedSeq"] >= seq, 5)


def make_transitions(client, ids):
    """Each id: created with a 1 ms timeout, one activity: ACTIVITY then INACTIVITY."""
    for i in ids:
        assert client.put(dev_path(i), json_body={"inactivityTimeout": 1}).status == 201
        assert client.post(dev_path(i, "/activity")).status == 202


def test_recent_events_newest_first_as_in_the_log(daemon, client):
    assert recent(client) == {"events": [], "next": None}
    make_transitions(client, ["r-%d" % i for i in range(5)])
    committed(client, 10)
    body = recent(client)
    log = read_events(daemon.data_dir)
    assert len(log) == 10
    assert body["events"] == list(reversed(log))  # every field, exactly as in events.jsonl
    assert body["next"] is None
    body = recent(client, limit=3)
    assert [e["seq"] for e in body["events"]] == [10, 9, 8]
    assert body["next"] == "8"
    body = recent(client, limit=3, before=8)
    assert [e["seq"] for e in body["events"]] == [7, 6, 5]


def test_recent_events_paging_walks_every_event_once(client):
    # 1500 devices in one bulk request: 1500 ACTIVITY events, more than one read window.
    ids = ["w-%04d" % i for i in range(1500)]
    r = client.post("/api/v1/activity", json_body=ids)
    assert r.status == 202 and r.body["accepted"] == 1500
    committed(client, 1500)
    seen, before, pages = [], None, 0
    while True:
        params = {"limit": 500}
        if before:
            params["before"] = before
        body = recent(client, **params)
        seen += [e["seq"] for e in body["events"]]
        pages += 1
        before = body["next"]
        if before is None:
            break
        assert pages < 10
    assert seen == list(range(1500, 0, -1))


def test_recent_events_of_one_device(client):
    # Ids that contain each other, and ids that need JSON escaping.
    tricky = ['a', 'ab', 'xa', 'q"uote', 'back\\slash', 'caf\u00e9 \u2603', 'a/b']
    make_transitions(client, tricky)
    # Bury them under more than a read window of other devices' events.
    assert client.post("/api/v1/activity", json_body=["z-%d" % i for i in range(1100)]).status == 202
    committed(client, 2 * len(tricky) + 1100)
    for dev in tricky:
        body = recent(client, device=dev)
        assert [e["type"] for e in body["events"]] == ["INACTIVITY_EVENT", "ACTIVITY_EVENT"], (dev, body)
        assert all(e["device"] == dev for e in body["events"])
        assert body["next"] is None
    body = recent(client, device="a", limit=1)
    assert [e["type"] for e in body["events"]] == ["INACTIVITY_EVENT"]
    more = recent(client, device="a", limit=1, before=body["next"])
    assert [e["type"] for e in more["events"]] == ["ACTIVITY_EVENT"]
    assert more["events"][0]["seq"] < body["events"][0]["seq"]
    assert recent(client, device="never-seen") == {"events": [], "next": None}
    # The longest ids: 256 bytes, 768 when percent-encoded.
    longest = "\u00e9" * 128
    make_transitions(client, [longest])
    committed(client, 2 * len(tricky) + 1102)
    assert [e["device"] for e in recent(client, device=longest)["events"]] == [longest, longest]


def test_recent_events_of_one_type(client):
    make_transitions(client, ["t-%d" % i for i in range(4)])
    assert client.post(dev_path("t-s", "/connect")).status == 202
    assert client.post(dev_path("t-s", "/disconnect")).status == 202
    committed(client, 11)
    assert [e["device"] for e in recent(client, type="INACTIVITY_EVENT")["events"]] == ["t-3", "t-2", "t-1", "t-0"]
    assert [e["type"] for e in recent(client, type="DISCONNECT_EVENT")["events"]] == ["DISCONNECT_EVENT"]
    both = recent(client, type="ACTIVITY_EVENT", device="t-s")["events"]
    assert [(e["type"], e["device"]) for e in both] == [("ACTIVITY_EVENT", "t-s")]
    # Several types, separated by commas, as for GET /api/v1/events.
    sessions = recent(client, type="CONNECT_EVENT,DISCONNECT_EVENT")["events"]
    assert [e["type"] for e in sessions] == ["DISCONNECT_EVENT", "CONNECT_EVENT"]


def test_recent_events_after(client):
    make_transitions(client, ["f-%d" % i for i in range(5)])
    committed(client, 10)
    # Only what is newer than a seq already seen: newest first, down to it.
    body = recent(client, after=6)
    assert [e["seq"] for e in body["events"]] == [10, 9, 8, 7]
    assert body["next"] is None
    body = recent(client, after=6, limit=2)
    assert [e["seq"] for e in body["events"]] == [10, 9]
    assert [e["seq"] for e in recent(client, after=6, before=body["next"])["events"]] == [8, 7]
    assert recent(client, after=10) == {"events": [], "next": None}
    assert [e["seq"] for e in recent(client, after=0, limit=1)["events"]] == [10]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=abc", "limit=-1", "before=0", "before=x", "before=-3",
     "before=99999999999999999999999", "type=NOPE", "type=", "device=", "device=%00",
     "device=%FF", "device=" + "a" * 257, "limit=%zz", "after=-1", "after=x"],
)
def test_recent_events_bad_query(client, query):
    assert_error(client.get("/api/v1/events/recent?" + query), 422, "invalid")


def test_recent_events_methods(client):
    r = client.post("/api/v1/events/recent", body=b"")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET"


# --------------------------------------------------------------------------
# q= on the device list
# --------------------------------------------------------------------------


def list_ids(client, **params):
    """Walks every page; returns the ids in order and the number of pages."""
    ids, after, pages = [], None, 0
    while True:
        p = dict(params)
        if after:
            p["after"] = after
        r = client.get("/api/v1/devices?" + urllib.parse.urlencode(p, quote_via=urllib.parse.quote))
        assert r.status == 200, r
        ids += [d["id"] for d in r.body["devices"]]
        assert len(r.body["devices"]) <= int(p.get("limit", 100))
        pages += 1
        after = r.body["next"]
        if after is None:
            return ids, pages
        assert pages < 1000


def test_device_search(client):
    names = ["Pump-North-1", "pump-south-2", "valve-1", "PUMPHOUSE", "meter-pump", "caf\u00e9-pump", "a+b", "a b"]
    for n in names:
        assert client.post(dev_path(n, "/activity")).status == 202
    assert client.put(dev_path("pump-idle"), json_body={}).status == 201  # inactive
    ids, _ = list_ids(client, q="pump")
    assert sorted(ids) == sorted(["Pump-North-1", "pump-south-2", "PUMPHOUSE", "meter-pump", "caf\u00e9-pump",
                                  "pump-idle"])
    # Combined with the state filter and paged 2 at a time: each match once.
    ids, pages = list_ids(client, q="PUMP", active="true", limit=2)
    assert sorted(ids) == sorted(["Pump-North-1", "pump-south-2", "PUMPHOUSE", "meter-pump", "caf\u00e9-pump"])
    assert pages >= 3
    assert list_ids(client, q="pump", active="false")[0] == ["pump-idle"]
    # Case folding is ASCII only; the match is on bytes otherwise.
    assert list_ids(client, q="CAF\u00c9")[0] == []
    assert list_ids(client, q="caf\u00e9")[0] == ["caf\u00e9-pump"]
    # "+" is a plus; a space is %20.
    assert list_ids(client, q="a+b")[0] == ["a+b"]
    assert list_ids(client, q="a b")[0] == ["a b"]
    assert list_ids(client, q="nothing-like-it")[0] == []
    # An empty q is no filter.
    assert len(list_ids(client, q="")[0]) == len(names) + 1


def test_device_search_bad_query(client):
    assert_error(client.get("/api/v1/devices?q=" + "a" * 257), 422, "invalid")
    assert_error(client.get("/api/v1/devices?q=%00"), 422, "invalid")
    assert_error(client.get("/api/v1/devices?q=%zz"), 422, "invalid")
    assert client.get("/api/v1/devices?q=" + "a" * 256).status == 200
    # The limit is on the decoded bytes: 128 x "é" is 256 bytes (768 encoded); one more byte is not.
    assert client.get("/api/v1/devices?q=" + "%C3%A9" * 128).status == 200
    assert_error(client.get("/api/v1/devices?q=" + "%C3%A9" * 128 + "a"), 422, "invalid")
