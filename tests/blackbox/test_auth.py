"""API credentials: tokens and scopes (docs/security.md, docs/api.md#credentials).

The route walk: every route of docs/api.md is requested with no credential,
a wrong one (bearer and Basic), and a token of each scope, and gets the
status its row of ROUTES says.  ROUTES is checked against the binary's own
route table (`lastseen --routes-markdown`), and that table against
docs/api.md, so that a route added without a credential column, or
documented with another, fails here.

Also: `lastseen token` itself, revocation and creation taking effect in a
running daemon, the refusal of a public address without a token, a ping
with an ingest token, HTTP Basic, and the switches of /healthz and /metrics.
"""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import (LASTSEEN_BIN, Client, assert_error, bearer, dev_path, make_token,
                      raw_exchange, token_cmd, wait_until)
from outputs_util import SSE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCOPES = ("read", "ingest", "admin")

# method, pattern (as the route table writes it), the path requested, the body
# sent, the statuses a credential with the scope may get, and what it needs:
# a scope, "public" (never a credential), or "healthz"/"metrics" (their
# switches).  A `setup` name says what must exist before each request.
ROUTES = [
    ("GET", "/healthz", "/healthz", None, (200,), "healthz", None),
    ("GET", "/", "/", None, (200,), "public", None),
    ("GET", "/ui/{file*}", "/ui/app.js", None, (200,), "public", None),
    ("GET", "/metrics", "/metrics", None, (200,), "metrics", None),
    ("GET", "/api/v1/stats", "/api/v1/stats", None, (200,), "read", None),
    ("GET", "/api/v1/stats/history", "/api/v1/stats/history", None, (200,), "read", None),
    ("GET", "/api/v1/events", "/api/v1/events", None, (200,), "read", None),
    ("GET", "/api/v1/events/stream", "/api/v1/events/stream", None, (200,), "read", None),
    ("GET", "/api/v1/events/recent", "/api/v1/events/recent", None, (200,), "read", None),
    ("POST", "/api/v1/activity", "/api/v1/activity", '["walk-bulk"]', (202,), "ingest", None),
    ("GET", "/api/v1/devices", "/api/v1/devices", None, (200,), "read", None),
    ("GET", "/api/v1/devices/{id}", "/api/v1/devices/walk-dev", None, (200,), "read", None),
    ("PUT", "/api/v1/devices/{id}", "/api/v1/devices/walk-dev", '{"inactivityTimeout": 600000}',
     (200,), "admin", None),
    ("DELETE", "/api/v1/devices/{id}", "/api/v1/devices/walk-del", None, (204,), "admin", "device"),
    ("POST", "/api/v1/devices/{id}/activity", "/api/v1/devices/walk-dev/activity", None, (202,),
     "ingest", None),
    ("POST", "/api/v1/devices/{id}/connect", "/api/v1/devices/walk-dev/connect", None, (202,),
     "ingest", None),
    ("POST", "/api/v1/devices/{id}/disconnect", "/api/v1/devices/walk-dev/disconnect", None, (202,),
     "ingest", None),
    ("GET", "/api/v1/device-types", "/api/v1/device-types", None, (200,), "read", None),
    ("GET", "/api/v1/device-types/{type}", "/api/v1/device-types/walk-type", None, (200,), "read",
     None),
    ("PUT", "/api/v1/device-types/{type}", "/api/v1/device-types/walk-type",
     '{"inactivityTimeout": 600000}', (200,), "admin", None),
    ("DELETE", "/api/v1/device-types/{type}", "/api/v1/device-types/walk-deltype", None, (204,),
     "admin", "type"),
    ("GET", "/api/v1/alarms", "/api/v1/alarms", None, (200,), "read", None),
    ("GET", "/api/v1/alarms/{alarm}", "/api/v1/alarms/ALARM", None, (200,), "read", None),
    ("PUT", "/api/v1/alarms/{alarm}", "/api/v1/alarms/ALARM", '{"status": "ACKNOWLEDGED"}', (200,),
     "admin", None),
]

# What the route table's credential column says for each kind of row.
ACCESS_TEXT = {
    "public": "none",
    "healthz": "none; any with `http.auth_healthz = true`",
    "metrics": "read; none with `http.auth_metrics = false`",
    "read": "read",
    "ingest": "ingest",
    "admin": "admin",
}


def route_table():
    """The binary's route table: {(method, pattern): credential}."""
    p = subprocess.run([LASTSEEN_BIN, "--routes-markdown"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, p
    rows = {}
    for line in p.stdout.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for m in cells[0].split(", "):
            rows[(m, cells[1].strip("`"))] = cells[2]
    return rows, p.stdout


def test_routes_table_matches_the_binary_and_the_docs():
    rows, text = route_table()
    ours = {(m, pat): a for m, pat, _, _, _, a, _ in ROUTES}
    # Every row of the binary's table is walked (HEAD rows with their GET).
    assert {k for k in rows if k[0] != "HEAD"} == set(ours), sorted(set(rows) ^ set(ours))
    for k, a in ours.items():
        want = ACCESS_TEXT[a]
        if k == ("PUT", "/api/v1/devices/{id}"):
            want = "admin; a ping: ingest"
        assert rows[k] == want, (k, rows[k], want)
    with open(os.path.join(REPO, "docs", "api.md"), encoding="utf-8") as f:
        doc = f.read()
    m = re.search(r"<!-- BEGIN ROUTES -->\n(.*?)<!-- END ROUTES -->", doc, re.S)
    assert m and m.group(1) == text, "docs/api.md's route table is out of date: scripts/config-docs.sh"
    # Every endpoint heading of docs/api.md is a row (the docs name parameters their own way).
    documented = set()
    for method, path in re.findall(r"^#{3,4} `(GET|POST|PUT|DELETE) (/[^`]*)`", doc, re.M):
        path = path.replace("/ui/{file}", "/ui/{file*}").replace("/alarms/{id}", "/alarms/{alarm}")
        documented.add((method, path))
    ui = ("GET", "/ui/{file*}")  # documented in the section of GET /
    assert documented == set(ours) - {ui}, sorted(documented ^ (set(ours) - {ui}))
    assert "`GET /ui/{file}`" in doc


def _walk_setup(start_daemon, data, sets=()):
    """A daemon with a token of each scope, one with all of them, and the
    things the routes act on; returns it, the tokens and an alarm's id."""
    tokens = {s: make_token(data, "t-" + s, s) for s in SCOPES}
    tokens["all"] = make_token(data, "t-all", "read,ingest,admin")
    d = start_daemon(data_dir=data, sets=sets, ready_headers=bearer(tokens["read"]))
    c = d.client()
    h = bearer(tokens["all"])
    assert c.put(dev_path("walk-dev"), json_body={}, headers=h).status == 201
    assert c.put("/api/v1/device-types/walk-type", json_body={}, headers=h).status == 201
    # An alarm: a device that goes inactive at once.
    assert c.put(dev_path("walk-alarm"), json_body={"inactivityTimeout": 1}, headers=h).status == 201
    assert c.post(dev_path("walk-alarm", "/activity"), headers=h).status == 202
    alarms = wait_until(lambda: c.get("/api/v1/alarms", headers=h).body["alarms"], 5)
    assert alarms, "no alarm raised"
    return d, tokens, alarms[0]["id"]


@pytest.fixture
def walk(start_daemon, tmp_path):
    return _walk_setup(start_daemon, tmp_path / "walk")


def _request(d, c, method, path, body, headers):
    if path == "/api/v1/events/stream":
        s = SSE(d.host, d.port, path, headers=headers)
        try:
            return s.status, s.headers
        finally:
            s.close()
    r = c.request(method, path, body=body, headers=headers)
    return r.status, r.headers


def _setup(d, token, what):
    c = d.client()
    if what == "device":
        assert c.put(dev_path("walk-del"), json_body={}, headers=bearer(token)).status in (200, 201)
    elif what == "type":
        assert c.put("/api/v1/device-types/walk-deltype", json_body={},
                     headers=bearer(token)).status in (200, 201)


def _expect(need, have, switches):
    """The status class a credential with scopes `have` (None: no or a wrong
    credential) gets on a route that needs `need`."""
    if need == "public" or (need == "healthz" and not switches["healthz"]) or \
            (need == "metrics" and not switches["metrics"]):
        return "ok"
    if have is None:
        return 401
    want = {"healthz": set(SCOPES), "metrics": {"read"}}.get(need, {need})
    return "ok" if want & have else 403


def _walk(d, tokens, alarm, switches):
    creds = [
        ("none", None, {}),
        ("wrong bearer", None, bearer("lst_" + "A" * 43)),
        ("wrong basic", None, {"Authorization": "Basic dC1yZWFkOm5vcGU="}),  # t-read:nope
        ("garbage", None, {"Authorization": "Token x"}),
    ] + [(s, {s}, bearer(tokens[s])) for s in SCOPES] + [("all", set(SCOPES), bearer(tokens["all"]))]
    failures = []
    c = d.client()
    for method, pattern, path, body, ok, need, setup in ROUTES:
        path = path.replace("ALARM", alarm)
        for name, have, headers in creds:
            want = _expect(need, have, switches)
            if want == "ok" and setup:
                _setup(d, tokens["all"], setup)
            status, hdrs = _request(d, c, method, path, body, headers)
            good = status in ok if want == "ok" else status == want
            if not good:
                failures.append("%s %s with %s: %s, want %s" % (method, path, name, status,
                                                                ok if want == "ok" else want))
            if status == 401:
                # (the stream's raw reader keeps one value of a repeated header)
                challenges = hdrs.get_all("WWW-Authenticate") if hasattr(hdrs, "get_all") else \
                    ["Bearer"] if "www-authenticate" in hdrs else []
                if not any(ch.startswith("Bearer") for ch in challenges or []):
                    failures.append("%s %s: 401 without a Bearer challenge" % (method, path))
    assert not failures, "\n".join(failures)


@pytest.mark.bb_timeout(90)
def test_route_walk(walk):
    d, tokens, alarm = walk
    _walk(d, tokens, alarm, {"healthz": False, "metrics": True})


@pytest.mark.bb_timeout(90)
def test_route_walk_with_the_switches_flipped(start_daemon, tmp_path):
    d, tokens, alarm = _walk_setup(start_daemon, tmp_path / "flipped",
                                   sets=["http.auth_healthz=true", "http.auth_metrics=false"])
    _walk(d, tokens, alarm, {"healthz": True, "metrics": False})


def test_unknown_paths_and_methods_need_a_credential(walk):
    d, tokens, _ = walk
    c = d.client()
    for method, path in (("GET", "/nope"), ("GET", "/api/v1/devices/x/reboot"),
                         ("DELETE", "/api/v1/stats"), ("POST", "/metrics")):
        assert_error(c.request(method, path), 401, "unauthorized")
        r = c.request(method, path, headers=bearer(tokens["ingest"]))
        assert r.status in (404, 405), (method, path, r)


def test_errors_and_challenges(walk):
    d, tokens, _ = walk
    c = d.client()
    r = c.get("/api/v1/stats")
    assert_error(r, 401, "unauthorized")
    assert r.headers.get_all("WWW-Authenticate") == [
        'Bearer realm="lastseen"', 'Basic realm="lastseen", charset="UTF-8"']
    r = c.get("/api/v1/stats", headers=bearer("lst_wrong"))
    assert_error(r, 401, "unauthorized")
    assert r.headers.get_all("WWW-Authenticate")[0] == 'Bearer realm="lastseen", error="invalid_token"'
    r = c.get("/api/v1/stats", headers=bearer(tokens["ingest"]))
    assert_error(r, 403, "forbidden")
    assert "t-ingest" in r.body["detail"] and "read" in r.body["detail"], r.body
    assert r.headers["WWW-Authenticate"] == \
        'Bearer realm="lastseen", error="insufficient_scope", scope="read"'
    # The scheme's name in any case; HTTP Basic with the token's name.
    assert c.get("/api/v1/stats", headers={"Authorization": "bearer " + tokens["read"]}).status == 200
    import base64
    basic = base64.b64encode(("t-read:" + tokens["read"]).encode()).decode()
    assert c.get("/api/v1/stats", headers={"Authorization": "Basic " + basic}).status == 200
    basic = base64.b64encode(("t-admin:" + tokens["read"]).encode()).decode()
    assert_error(c.get("/api/v1/stats", headers={"Authorization": "Basic " + basic}), 401,
                 "unauthorized")
    # Refused and counted in the request metrics like any answer.
    m = c.get("/metrics", headers=bearer(tokens["read"]))
    assert re.search(r'lastseen_http_requests_total\{route="/api/v1/stats",method="GET",code="401"\} [1-9]',
                     m.body.decode()), m.body[:2000]


def test_refused_body_is_discarded_and_the_connection_kept(walk):
    d, tokens, _ = walk
    c = d.client()
    body = b'["x"]' + b" " * 200000
    r = c.post("/api/v1/activity", body=body)
    assert_error(r, 401, "unauthorized")
    # The same connection goes on; nothing was applied.
    r = c.get(dev_path("x"), headers=bearer(tokens["read"]))
    assert_error(r, 404, "not_found")
    # A body announced larger than http.max_body: answered at once.
    head = (b"POST /api/v1/activity HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    status, _, _, _ = raw_exchange(d.host, d.port, head)
    assert status == 401


def test_ping_with_an_ingest_token(walk):
    d, tokens, _ = walk
    c = d.client()
    gw = bearer(tokens["ingest"])
    r = c.put(dev_path("walk-dev"), json_body={}, headers=gw)
    assert r.status == 200 and r.body["active"] is True, r
    assert c.put(dev_path("walk-dev"), json_body={"id": "walk-dev"}, headers=gw).status == 200
    r = c.put(dev_path("unknown-dev"), json_body={}, headers=gw)
    assert_error(r, 403, "forbidden")
    assert "admin" in r.body["detail"]
    assert_error(c.put(dev_path("walk-dev"), json_body={"type": "x"}, headers=gw), 403, "forbidden")
    assert_error(c.put(dev_path("walk-dev"), json_body={}, headers=bearer(tokens["read"])), 403,
                 "forbidden")
    assert c.get(dev_path("unknown-dev"), headers=bearer(tokens["read"])).status == 404


# --------------------------------------------------------------------------
# lastseen token, and changes while the daemon runs
# --------------------------------------------------------------------------


def test_token_command(tmp_path):
    data = tmp_path / "data"
    p = token_cmd(data, "create", "ops", "--scope", "read,admin")
    assert p.returncode == 0, p
    tok = p.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"lst_[A-Za-z0-9_-]{43}", tok), p.stdout
    assert os.stat(data / "tokens").st_mode & 0o777 == 0o600
    with open(data / "tokens") as f:
        assert tok[4:] not in f.read()
    p = token_cmd(data, "list")
    assert p.returncode == 0 and re.search(r"^ops\s+read,admin\s+\d{4}-", p.stdout, re.M), p
    assert tok not in p.stdout
    assert token_cmd(data, "create", "ops", "--scope", "read").returncode == 1
    assert token_cmd(data, "create", "x", "--scope", "write").returncode == 2
    assert token_cmd(data, "create", "bad:name", "--scope", "read").returncode == 2
    assert token_cmd(data, "create", "x").returncode == 2
    assert token_cmd(data, "revoke", "nobody").returncode == 1
    p = token_cmd(data, "revoke", "ops")
    assert p.returncode == 0, p
    p = token_cmd(data, "list")
    assert "ops" not in p.stdout
    assert token_cmd(data, "frobnicate").returncode == 2


@pytest.mark.bb_timeout(60)
def test_revoke_and_create_without_restart(start_daemon, tmp_path):
    data = tmp_path / "live"
    ops = make_token(data, "ops", "read,ingest,admin")
    gw = make_token(data, "gw", "ingest")
    d = start_daemon(data_dir=data)
    c = d.client()
    assert c.post(dev_path("pump", "/activity"), headers=bearer(gw)).status == 202

    assert token_cmd(data, "revoke", "gw").returncode == 0
    t0 = time.monotonic()
    assert wait_until(lambda: c.post(dev_path("pump", "/activity"), headers=bearer(gw)).status == 401,
                      3.0, interval=0.05), "a revoked token still works 3 s later"
    assert time.monotonic() - t0 < 2.5
    assert c.get("/api/v1/stats", headers=bearer(ops)).status == 200

    gw2 = make_token(data, "gw2", "ingest")
    assert wait_until(lambda: c.post(dev_path("pump", "/activity"), headers=bearer(gw2)).status == 202,
                      3.0, interval=0.05), "a new token is not taken within 3 s"
    assert "API tokens in" in d.stderr_text()

    # The last token revoked: on loopback the API needs no credential again.
    assert token_cmd(data, "revoke", "ops").returncode == 0
    assert token_cmd(data, "revoke", "gw2").returncode == 0
    assert wait_until(lambda: c.get("/api/v1/stats").status == 200, 3.0, interval=0.05)


@pytest.mark.bb_timeout(60)
def test_revoked_token_ends_its_event_stream(start_daemon, tmp_path):
    data = tmp_path / "stream"
    ops = make_token(data, "ops", "read,ingest,admin")
    viewer = make_token(data, "viewer", "read")
    d = start_daemon(data_dir=data)
    kept = SSE(d.host, d.port, "/api/v1/events/stream", headers=bearer(ops))
    gone = SSE(d.host, d.port, "/api/v1/events/stream", headers=bearer(viewer))
    try:
        assert kept.status == 200 and gone.status == 200
        c = d.client()
        assert c.post(dev_path("s-1", "/activity"), headers=bearer(ops)).status == 202
        assert len(gone.events(1, 5)) == 1 and len(kept.events(1, 5)) == 1
        assert token_cmd(data, "revoke", "viewer").returncode == 0
        # No request comes meanwhile: the streams' own pump looks at the file.
        # The stream ends (its last chunk) without another event.
        deadline = time.monotonic() + 4.0
        while not gone.eof and time.monotonic() < deadline:
            f = gone.frame(max(0.0, deadline - time.monotonic()))
            assert f is None or "data" not in f, f
        assert gone.eof, "the revoked token's stream is still open"
        assert "its credential (token \"viewer\") is no longer valid" in d.stderr_text()
        assert c.post(dev_path("s-2", "/activity"), headers=bearer(ops)).status == 202
        assert [e["device"] for e in (json.loads(f["data"]) for f in kept.events(1, 5))] == ["s-2"]
    finally:
        kept.close()
        gone.close()


@pytest.mark.bb_timeout(60)
def test_first_token_turns_credentials_on(daemon, tmp_path):
    c = daemon.client()
    assert c.get("/api/v1/stats").status == 200
    tok = make_token(daemon.data_dir, "ops", "read")
    assert wait_until(lambda: c.get("/api/v1/stats").status == 401, 3.0, interval=0.05)
    assert c.get("/api/v1/stats", headers=bearer(tok)).status == 200


def test_bad_token_file_is_refused_at_start_and_kept_while_running(start_daemon, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "tokens").write_text("not a token file\n")
    p = subprocess.run([LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0",
                        "--set", "store.data_dir=%s" % data], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and "tokens: line 1" in p.stderr, p
    os.unlink(data / "tokens")
    tok = make_token(data, "ops", "read")
    d = start_daemon(data_dir=data)
    c = d.client()
    assert c.get("/api/v1/stats", headers=bearer(tok)).status == 200
    with open(data / "tokens", "a") as f:
        f.write("garbage\n")
    assert wait_until(lambda: c.get("/api/v1/stats", headers=bearer(tok)).status == 200 and
                      "keeping the 1 tokens read before" in d.stderr_text(), 3.0, interval=0.05)
    assert c.get("/api/v1/stats", headers=bearer(tok)).status == 200


# --------------------------------------------------------------------------
# A public address
# --------------------------------------------------------------------------


def _run(data, *args):
    cmd = [LASTSEEN_BIN, "--set", "store.data_dir=%s" % data]
    for a in args:
        cmd += ["--set", a] if "=" in a else [a]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_public_address_without_token_is_refused(tmp_path, listen):
    data = tmp_path / "pub"
    p = _run(data, "http.listen=" + listen)
    assert p.returncode == 2, p
    assert "not a loopback address and no API token exists" in p.stderr, p.stderr
    assert "lastseen token create" in p.stderr and "http.auth = off" in p.stderr
    assert not (data / "store").exists(), "refused, yet it created its store"
    p = _run(data, "http.listen=" + listen, "--check-config")
    assert p.returncode == 2 and "not a loopback address" in p.stderr, p


def test_public_address_with_a_token_or_auth_off(start_daemon, tmp_path):
    data = tmp_path / "pub"
    tok = make_token(data, "ops", "read")
    d = start_daemon(data_dir=data, listen=False, sets=["http.listen=0.0.0.0:0"])
    c = Client("127.0.0.1", d.port)
    assert_error(c.get("/api/v1/stats"), 401, "unauthorized")
    assert c.get("/api/v1/stats", headers=bearer(tok)).status == 200
    # Revoking the last token does not open a public address: nobody gets in.
    assert token_cmd(data, "revoke", "ops").returncode == 0
    assert wait_until(lambda: c.get("/api/v1/stats", headers=bearer(tok)).status == 401, 3.0,
                      interval=0.05)
    assert_error(c.get("/api/v1/stats"), 401, "unauthorized")
    c.close()

    d2 = start_daemon(listen=False, sets=["http.listen=0.0.0.0:0", "http.auth=off"])
    c = Client("127.0.0.1", d2.port)
    assert c.get("/api/v1/stats").status == 200
    assert "http.auth = off" in d2.stderr_text()
    c.close()
