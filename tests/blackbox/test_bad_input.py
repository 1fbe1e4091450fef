"""
lastseen against bad input: malformed JSON, oversized bodies, bad ids,
timestamps, timeouts, types, unknown fields, routes and methods, bad query
parameters, bulk requests with bad items, and garbage bytes on a raw socket.

Every case runs on its own daemon (http.max_body=1KiB) and ends by checking
that the daemon is still healthy: /healthz answers 200 and a normal activity
is accepted and visible.
"""

import itertools
import json
import os
import random
import socket
import struct
import time

import pytest

from conftest import (
    assert_error,
    dev_path,
    now_ms,
    raw_exchange,
)

MAX_BODY = 1024
_probe_ids = itertools.count()


@pytest.fixture
def d(start_daemon):
    return start_daemon(sets=["http.max_body=1KiB"])


@pytest.fixture
def c(d):
    cl = d.client()
    yield cl
    cl.close()


def assert_healthy(daemon):
    """/healthz answers 200 on a fresh connection and a normal activity works."""
    cl = daemon.client()
    try:
        r = cl.get("/healthz")
        assert r.status == 200 and r.body == {"status": "ok"}, r
        probe = "probe-%d" % next(_probe_ids)
        r = cl.activity(probe)
        assert r.status == 202 and r.body == {"accepted": 1}, r
        r = cl.device(probe)
        assert r.status == 200 and r.body["active"] is True, r
    finally:
        cl.close()
    assert daemon.proc.poll() is None, "daemon exited"


def assert_raw_error(result, status, code):
    st, hdrs, body, _ = result
    assert st == status, "expected %d, got %r" % (status, result[3][:400])
    assert hdrs.get("content-type", "").split(";")[0].strip().lower() == "application/json", hdrs
    doc = json.loads(body)
    assert doc.get("error") == code and isinstance(doc.get("detail"), str) and doc["detail"], doc


def http_bytes(method, path, body=b"", headers=None, chunked=False, chunk=100):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Connection: close"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                           for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
    else:
        lines.append("Content-Length: %d" % len(body))
        payload = body
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


# --------------------------------------------------------------------------
# Malformed JSON (400)
# --------------------------------------------------------------------------

MALFORMED = [
    b"{",
    b'{"ts": }',
    b'{"ts": 1,}',
    b"nul",
    b"{'ts': 1}",
    b'{"ts": 1} trailing',
    b'{"ts": 1}{"ts": 2}',
    b"\xff\xfe{}",
    b'{"ts": 1',
    b'{"ts": 01}',
    b'{"ts": NaN}',
]


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b))
def test_malformed_json_activity(d, c, body):
    r = c.post(dev_path("mj", "/activity"), body=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_request")
    assert c.device("mj").status == 404, "a rejected request must not create the device"
    assert_healthy(d)


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b))
def test_malformed_json_put(d, c, body):
    r = c.put(dev_path("mj"), body=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_request")
    assert c.device("mj").status == 404
    assert_healthy(d)


@pytest.mark.parametrize("body", [b"[", b'["a",', b'["a" "b"]', b'["a",]', b'["a"] x', b'[{"id": "a"',
                                  b'[{"id": "a", }]', b"[\xff]", b"[nul]"],
                         ids=lambda b: repr(b))
def test_malformed_json_bulk_array(d, c, body):
    r = c.post("/api/v1/activity", body=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "bad_request")
    assert c.device("a").status == 404, "a rejected bulk must apply nothing"
    assert_healthy(d)


@pytest.mark.parametrize("body", [b"[1]", b'"x"', b"5", b"null", b"true"], ids=lambda b: repr(b))
def test_non_object_body_activity(d, c, body):
    r = c.post(dev_path("no", "/activity"), body=body)
    assert_error(r, 400, "bad_request")
    assert c.device("no").status == 404
    assert_healthy(d)


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"5", b"null", b"", b"true"], ids=lambda b: repr(b))
def test_non_object_body_put(d, c, body):
    r = c.put(dev_path("no"), body=body)
    assert_error(r, 400, "bad_request")
    assert c.device("no").status == 404
    assert_healthy(d)


# --------------------------------------------------------------------------
# Oversized bodies (413, http.max_body=1KiB)
# --------------------------------------------------------------------------


def padded_object(size, text='{"ts": %d' % 1):
    body = text.encode() + b" " * size
    return body[: size - 1] + b"}"


def padded_array(size, ids=("big-a", "big-b")):
    body = json.dumps(list(ids)).encode()
    return body[:-1] + b" " * (size - len(body)) + b"]"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("method,path,body", [
    ("POST", dev_path("big", "/activity"), padded_object(2048, '{"ts": %d' % (now_ms() - 10))),
    ("PUT", dev_path("big"), padded_object(2048, '{"type": "x"')),
    ("POST", "/api/v1/activity", padded_array(2048, ("big",))),
    ("POST", "/api/v1/activity", padded_array(1024 * 1024, ("big",))),
], ids=["activity", "put", "bulk", "bulk-1MiB"])
def test_oversized_body(d, c, method, path, body, chunked):
    res = raw_exchange(d.host, d.port, http_bytes(method, path, body, chunked=chunked), timeout=5.0)
    assert_raw_error(res, 413, "payload_too_large")
    assert c.device("big").status == 404, "an oversized request must apply nothing"
    assert_healthy(d)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_size_boundary(d, c, chunked):
    ok = padded_array(MAX_BODY, ("edge-a", "edge-b"))
    assert len(ok) == MAX_BODY
    res = raw_exchange(d.host, d.port, http_bytes("POST", "/api/v1/activity", ok, chunked=chunked))
    assert res[0] == 202, res[3][:400]
    assert json.loads(res[2])["accepted"] == 2
    over = padded_array(MAX_BODY + 1, ("edge-c",))
    res = raw_exchange(d.host, d.port, http_bytes("POST", "/api/v1/activity", over, chunked=chunked))
    assert_raw_error(res, 413, "payload_too_large")
    assert c.device("edge-c").status == 404
    assert_healthy(d)


def test_oversized_with_http_client(d, c):
    """The same through the keep-alive client: 413 with a JSON error."""
    r = c.post("/api/v1/activity", body=padded_array(4096, ("big",)))
    assert_error(r, 413, "payload_too_large")
    assert_healthy(d)


# --------------------------------------------------------------------------
# Bad device ids (422)
# --------------------------------------------------------------------------

BAD_IDS = {
    "257-bytes": "a" * 257,
    "257-bytes-multibyte": "%C3%A9" * 128 + "a",
    "nul": "%00",
    "nul-inside": "a%00b",
    "c0-0x01": "%01",
    "c0-0x1f": "x%1F",
    "tab": "a%09b",
    "newline": "a%0Ab",
    "del": "%7F",
    "c1-0x80": "%C2%80",
    "c1-0x9f": "ab%C2%9F",
    "invalid-0xff": "%FF",
    "lone-continuation": "%80",
    "overlong-slash": "%C0%AF",
    "overlong-nul": "%C0%80",
    "overlong-3byte": "%E0%80%80",
    "surrogate": "%ED%A0%80",
    "above-10ffff": "%F4%90%80%80",
    "truncated": "%E2%82",
    "truncated-at-end": "abc%E2",
}


@pytest.mark.parametrize("raw", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_bad_id_activity(d, c, raw):
    assert_error(c.post("/api/v1/devices/%s/activity" % raw), 422, "invalid")
    assert c.stats()["devices"] == 0
    assert_healthy(d)


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "", None),
    ("PUT", "", b"{}"),
    ("DELETE", "", None),
    ("POST", "/connect", None),
    ("POST", "/disconnect", None),
    ("POST", "/activity", b'{"ts": 1}'),
])
@pytest.mark.parametrize("raw", ["%00", "%FF", "%C2%80", "a" * 257], ids=["nul", "ff", "c1", "long"])
def test_bad_id_every_endpoint(d, c, method, suffix, body, raw):
    r = c.request(method, "/api/v1/devices/" + raw + suffix, body=body)
    assert_error(r, 422, "invalid")
    assert c.stats()["devices"] == 0
    assert_healthy(d)


@pytest.mark.parametrize("suffix", ["/activity", "/connect", "/disconnect"])
def test_empty_id_segment(d, c, suffix):
    assert_error(c.post("/api/v1/devices/" + suffix), 422, "invalid")
    assert c.stats()["devices"] == 0
    assert_healthy(d)


@pytest.mark.parametrize("raw", ["%", "a%2", "%G1", "%zz"])
def test_malformed_percent_escape(d, c, raw):
    """Not a valid percent-encoding: a malformed request (400, docs/api.md);
    never a device with that literal id."""
    r = c.post("/api/v1/devices/%s/activity" % raw)
    assert_error(r, 400, "bad_request")
    assert c.stats()["devices"] == 0
    assert_healthy(d)


def test_bad_id_in_bulk_rejects_only_that_item(d, c):
    items = ["ok-1", "", "a" * 257, "a\u0001b", "\u0085", "ok-2", "a\u007f", "\u00e9" * 128 + "x"]
    r = c.post("/api/v1/activity", body=json.dumps(items, ensure_ascii=False).encode())
    assert r.status == 202, r
    assert r.body["accepted"] == 2, r.body
    assert sorted(x["index"] for x in r.body["rejected"]) == [1, 2, 3, 4, 6, 7], r.body
    assert c.stats()["devices"] == 2
    assert_healthy(d)


def test_nul_escape_in_bulk_id_rejects_only_that_item(d, c):
    """"a\\u0000b" is valid JSON naming an invalid id (it contains NUL): only
    that item is rejected, not the whole request."""
    r = c.post("/api/v1/activity", body=b'["ok-1", "a\\u0000b", "ok-2"]')
    assert r.status == 202, r
    assert r.body["accepted"] == 2, r.body
    assert [x["index"] for x in r.body["rejected"]] == [1], r.body
    assert_healthy(d)


def test_nul_escape_in_put_type(d, c):
    r = c.put(dev_path("nt"), body=b'{"type": "a\\u0000b"}')
    assert_error(r, 422, "invalid")
    assert c.device("nt").status == 404
    assert_healthy(d)


# --------------------------------------------------------------------------
# Bad timestamps (422)
# --------------------------------------------------------------------------

BAD_TS = {
    "negative": b"-1",
    "zero": b"0",
    "string": b'"1700000000000"',
    "float": b"1.5",
    "float-integral": b"1700000000000.0",
    "exponent": b"1e12",
    "huge-int64-overflow": b"9223372036854775808",
    "huge-beyond-uint64": b"99999999999999999999999",
    "huge-negative": b"-9223372036854775809",
    "bool": b"true",
    "null": b"null",
    "array": b"[1]",
    "object": b'{"ms": 1}',
}


@pytest.mark.parametrize("ts", list(BAD_TS.values()), ids=list(BAD_TS))
def test_bad_ts_single(d, c, ts):
    r = c.post(dev_path("bt", "/activity"), body=b'{"ts": ' + ts + b"}")
    assert_error(r, 422, "invalid")
    assert c.device("bt").status == 404
    assert_healthy(d)


@pytest.mark.parametrize("ts", list(BAD_TS.values()), ids=list(BAD_TS))
def test_bad_ts_bulk_item(d, c, ts):
    body = b'["good-1", {"id": "bad", "ts": ' + ts + b'}, {"id": "good-2", "ts": %d}]' % (now_ms() - 5)
    r = c.post("/api/v1/activity", body=body)
    assert r.status == 202, r
    assert r.body["accepted"] == 2, r.body
    assert [x["index"] for x in r.body["rejected"]] == [1], r.body
    assert c.device("bad").status == 404
    assert c.device("good-1").status == 200 and c.device("good-2").status == 200
    assert_healthy(d)


# --------------------------------------------------------------------------
# PUT: bad timeouts, types, unknown fields (422)
# --------------------------------------------------------------------------

BAD_PUT = {
    "timeout-zero": b'{"inactivityTimeout": 0}',
    "timeout-negative": b'{"inactivityTimeout": -1000}',
    "timeout-string": b'{"inactivityTimeout": "1000"}',
    "timeout-float": b'{"inactivityTimeout": 1000.5}',
    "timeout-too-large": b'{"inactivityTimeout": 315360000001}',
    "timeout-huge": b'{"inactivityTimeout": 9223372036854775808}',
    "timeout-bool": b'{"inactivityTimeout": true}',
    "timeout-object": b'{"inactivityTimeout": {}}',
    "type-empty": b'{"type": ""}',
    "type-65-bytes": b'{"type": "' + b"x" * 65 + b'"}',
    "type-33-two-byte-chars": ('{"type": "%s"}' % ("\u00e9" * 33)).encode(),
    "type-control": b'{"type": "a\\u0001b"}',
    "type-newline": b'{"type": "a\\nb"}',
    "type-del": b'{"type": "a\\u007f"}',
    "type-c1": b'{"type": "a\\u0085"}',
    "type-number": b'{"type": 5}',
    "type-null": b'{"type": null}',
    "type-array": b'{"type": ["a"]}',
    "unknown-field": b'{"foo": 1}',
    "unknown-with-good": b'{"inactivityTimeout": 5000, "extra": true}',
    "field-case": b'{"InactivityTimeout": 5000}',
    "other-id": b'{"id": "someone-else"}',
    "id-number": b'{"id": 5}',
}


@pytest.mark.parametrize("body", list(BAD_PUT.values()), ids=list(BAD_PUT))
def test_bad_put_new_device(d, c, body):
    r = c.put(dev_path("bp"), body=body, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "invalid")
    assert c.device("bp").status == 404, "a rejected PUT must not create the device"
    assert_healthy(d)


@pytest.mark.parametrize("body", list(BAD_PUT.values()), ids=list(BAD_PUT))
def test_bad_put_existing_device_unchanged(d, c, body):
    r = c.put(dev_path("bp"), json_body={"inactivityTimeout": 4321, "type": "orig"})
    assert r.status == 201
    before = r.body
    r = c.put(dev_path("bp"), body=body)
    assert_error(r, 422, "invalid")
    assert c.device("bp").body == before, "a rejected PUT must change nothing"
    assert_healthy(d)


# --------------------------------------------------------------------------
# Unknown routes (404) and wrong methods (405 + Allow)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("GET", "/api"),
    ("GET", "/api/v1"),
    ("GET", "/api/v1/nope"),
    ("GET", "/api/v2/devices"),
    ("GET", "/api/v1/devices/x/nope"),
    ("POST", "/api/v1/devices/x/nope"),
    ("POST", "/api/v1/devices/x/activity/extra"),
    ("GET", "/api/v1/devices/x/y/z"),
    ("GET", "/healthz/x"),
    ("GET", "/api/v1/stats/x"),
    ("POST", "/API/V1/ACTIVITY"),
])
def test_unknown_route(d, c, method, path):
    assert_error(c.request(method, path), 404, "not_found")
    assert_healthy(d)


def allow_set(resp):
    allow = resp.headers.get("Allow")
    assert allow is not None, "405 without an Allow header: %r" % resp
    return {m.strip().upper() for m in allow.split(",") if m.strip()}


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/api/v1/devices/x/activity", {"POST"}),
    ("PUT", "/api/v1/devices/x/activity", {"POST"}),
    ("DELETE", "/api/v1/devices/x/activity", {"POST"}),
    ("GET", "/api/v1/devices/x/connect", {"POST"}),
    ("DELETE", "/api/v1/devices/x/disconnect", {"POST"}),
    ("GET", "/api/v1/activity", {"POST"}),
    ("PUT", "/api/v1/activity", {"POST"}),
    ("POST", "/api/v1/devices/x", {"GET", "PUT", "DELETE"}),
    ("PATCH", "/api/v1/devices/x", {"GET", "PUT", "DELETE"}),
    ("POST", "/api/v1/devices", {"GET"}),
    ("DELETE", "/api/v1/devices", {"GET"}),
    ("POST", "/api/v1/stats", {"GET"}),
    ("DELETE", "/healthz", {"GET"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method(d, c, method, path, allowed):
    r = c.request(method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert_error(r, 405, "method_not_allowed")
    got = allow_set(r)
    assert allowed <= got, "Allow %r lacks %r" % (got, allowed)
    assert method not in got, "Allow %r lists the refused method" % (got,)
    assert c.device("x").status == 404
    assert_healthy(d)


# --------------------------------------------------------------------------
# Bad query parameters (422)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "active=yes",
    "active=",
    "active=2",
    "limit=0",
    "limit=1001",
    "limit=-1",
    "limit=abc",
    "limit=1.5",
    "limit=",
    "limit=99999999999999999999",
    "after=not-a-cursor",
    "after=-1",
    "after=%00",
    "active=true&limit=0",
])
def test_bad_query(d, c, query):
    c.activity("q")
    assert_error(c.get("/api/v1/devices?" + query), 422, "invalid")
    assert_healthy(d)


def test_good_query_bounds(d, c):
    c.post("/api/v1/activity", json_body=["g%d" % i for i in range(3)])
    for q in ("limit=1", "limit=1000", "active=true", "active=false", "active=true&limit=2"):
        r = c.get("/api/v1/devices?" + q)
        assert r.status == 200, (q, r)
    assert_healthy(d)


# --------------------------------------------------------------------------
# Bulk with mixed items
# --------------------------------------------------------------------------


def test_bulk_array_mixed(d, c):
    ts = now_ms() - 100
    items = [
        "good-a",                         # 0
        {"id": "good-b", "ts": ts},       # 1
        5,                                # 2 wrong type
        {"id": ""},                       # 3 bad id
        {"id": "bad-ts", "ts": -1},       # 4 bad ts
        "z" * 257,                        # 5 id too long
        {"ts": ts},                       # 6 no id
        {"id": "good-c"},                 # 7
        None,                             # 8 wrong type
        {"id": "bad-ts2", "ts": "x"},     # 9 bad ts
        ["good-x"],                       # 10 wrong type
        {"id": 7},                        # 11 id not a string
        "good-d",                         # 12
    ]
    r = c.post("/api/v1/activity", json_body=items)
    assert r.status == 202, r
    assert r.body["accepted"] == 4, r.body
    rej = r.body["rejected"]
    assert [x["index"] for x in rej] == [2, 3, 4, 5, 6, 8, 9, 10, 11], rej
    for x in rej:
        assert isinstance(x["error"], str) and x["error"], x
    for good in ("good-a", "good-b", "good-c", "good-d"):
        assert c.device(good).body["active"] is True, good
    assert c.device("good-b").body["lastActivityTime"] == ts
    for bad in ("bad-ts", "bad-ts2", "good-x"):
        assert c.device(bad).status == 404, bad
    assert c.stats()["devices"] == 4
    assert_healthy(d)


def test_bulk_ndjson_mixed(d, c):
    ts = now_ms() - 100
    body = "\n".join([
        '"nd-a"',                               # 0
        "",                                     # (blank: not counted)
        '{"id": "nd-b", "ts": %d}' % ts,        # 1
        "{bad json",                            # 2
        "5",                                    # 3 wrong type
        '{"id": "nd-c", "ts": -5}',             # 4 bad ts
        "   ",                                  # (blank)
        '["nd-x"]',                             # 5 wrong type
        '"nd-d"',                               # 6
        '"a\\u0000b"',                          # 7 bad id
        '{"id": "nd-e"}',                       # 8
    ]) + "\n"
    r = c.post("/api/v1/activity", body=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 202, r
    assert r.body["accepted"] == 4, r.body
    assert [x["index"] for x in r.body["rejected"]] == [2, 3, 4, 5, 7], r.body
    for good in ("nd-a", "nd-b", "nd-d", "nd-e"):
        assert c.device(good).status == 200, good
    assert c.device("nd-b").body["lastActivityTime"] == ts
    assert c.device("nd-c").status == 404
    assert c.stats()["devices"] == 4
    assert_healthy(d)


def test_bulk_ndjson_invalid_utf8_line(d, c):
    body = b'"ok-1"\n"\xff\xfe"\n"ok-2"\n'
    r = c.post("/api/v1/activity", body=body)
    assert r.status == 202, r
    assert r.body["accepted"] == 2 and [x["index"] for x in r.body["rejected"]] == [1], r.body
    assert_healthy(d)


# --------------------------------------------------------------------------
# Garbage on a raw socket
# --------------------------------------------------------------------------

# name: (bytes, may a 2xx answer be acceptable)
GARBAGE = {
    "binary": b"\x00\x01\x02garbage\xff\xfe\r\n\r\n",
    "tls-client-hello": bytes.fromhex("16030100a5010000a10303") + bytes(range(256)) * 2,
    "random-64k": random.Random(1).randbytes(65536),
    "http-9": b"GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n",
    "no-version": b"GET\r\n\r\n",
    "no-host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "header-without-colon": b"GET /healthz HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n",
    "bad-content-length": b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n[]",
    "negative-content-length": b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n[]",
    "two-content-lengths": b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                           b"Content-Length: 9\r\n\r\n[]",
    "bad-chunk-size": b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    "huge-chunk-size": b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"ffffffffffffffff\r\nabc",
    "nul-in-path": b"GET /api/v1/devices/a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
    "space-in-path": b"GET /api/v1/devices/a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "huge-header": b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 200000 + b"\r\n\r\n",
    "huge-url": b"GET /api/v1/devices/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "short-body-then-close": b"POST /api/v1/devices/sb/activity HTTP/1.1\r\nHost: a\r\n"
                             b"Content-Length: 100\r\n\r\n{\"ts\"",
    "partial-request-line": b"GET /heal",
}


LENIENT = {"two-content-lengths", "no-host"}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_on_raw_socket(d, name):
    data = GARBAGE[name]
    status, hdrs, body, raw = raw_exchange(d.host, d.port, data, timeout=3.0, half_close=True)
    # Either the connection is dropped, or the answer is a client error
    # (505 for an unknown HTTP version); never a server failure, and never a
    # success for bytes that are not a valid request.
    ok = status is None or 400 <= status < 500 or status == 505
    if name in LENIENT:
        ok = ok or 200 <= status < 300
    assert ok, raw[:300]
    c = d.client()
    assert c.device("sb").status == 404
    assert_healthy(d)


def test_idle_and_partial_connections_do_not_block(d):
    socks = []
    try:
        for i in range(8):
            s = socket.create_connection((d.host, d.port), timeout=2.0)
            if i % 2:
                s.sendall(b"POST /api/v1/activity HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n[")
            socks.append(s)
        t0 = time.monotonic()
        assert_healthy(d)
        assert time.monotonic() - t0 < 2.0, "requests stalled behind idle connections"
    finally:
        for s in socks:
            s.close()
    assert_healthy(d)


def test_many_bad_requests_in_a_row_on_one_connection(d, c):
    for i in range(50):
        r = c.post(dev_path("r", "/activity"), body=b"{" if i % 2 else b'{"ts": -1}')
        assert r.status in (400, 422), r
    assert_healthy(d)


def test_abrupt_disconnects(d):
    for i in range(20):
        s = socket.create_connection((d.host, d.port), timeout=2.0)
        s.sendall(http_bytes("POST", "/api/v1/activity", b'["ab-%d"]' % i))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST, maybe before the answer
    assert_healthy(d)
    assert os.path.isdir(d.data_dir)
