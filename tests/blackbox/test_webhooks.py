"""Webhooks: lastseen POSTs committed events to a receiver running in the test.

Each test starts a real HTTP receiver on a free loopback port (outputs_util.
Receiver) and the real daemon configured with [webhook.NAME] through --set.
"""
import json
import subprocess
import time

import pytest

from conftest import LASTSEEN_BIN, dev_path, read_events, wait_until
from outputs_util import NO_PROXY_ENV, Receiver, signature


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start


def _hook(name, receiver, **keys):
    sets = ["webhook.%s.url=%s" % (name, receiver.url)]
    sets += ["webhook.%s.%s=%s" % (name, k, v) for k, v in keys.items()]
    return sets


def _webhook_stats(client, name):
    for w in client.stats()["webhooks"]:
        if w["name"] == name:
            return w
    raise AssertionError("no webhook %s in stats" % name)


def _all_four_types(c):
    """Produces one event of each type, in this order of seq: ACTIVITY, CONNECT,
    DISCONNECT, INACTIVITY (a 200 ms timeout)."""
    assert c.put(dev_path("pump/7"), json_body={"inactivityTimeout": 200}).status == 201
    assert c.post(dev_path("pump/7", "/activity")).status == 202
    assert c.post(dev_path("pump/7", "/connect")).status == 202
    assert c.post(dev_path("pump/7", "/disconnect")).status == 202


@pytest.mark.bb_timeout(30)
def test_each_event_type_is_posted_signed(start_daemon):
    rx = Receiver()
    try:
        d = start_daemon(sets=_hook("pager", rx, secret="s3cr3t-key"), env=NO_PROXY_ENV)
        c = d.client()
        _all_four_types(c)
        seqs = rx.wait_seqs(4, 10)
        assert sorted(seqs) == [1, 2, 3, 4], seqs
        types = [e["type"] for e in rx.events()]
        assert types == ["ACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT", "INACTIVITY_EVENT"], types
        file_lines = {e["seq"]: e for e in read_events(d.data_dir)}
        for headers, body in rx.bodies():
            assert headers["content-type"] == "application/json"
            assert headers["x-lastseen-webhook"] == "pager"
            assert headers["user-agent"].startswith("lastseen/")
            # The signature covers the exact bytes received.
            assert headers["x-lastseen-signature"] == signature("s3cr3t-key", body)
            assert headers["x-lastseen-signature"] != signature("other-key", body)
            ev = json.loads(body)
            assert isinstance(ev, dict)  # batch = 1: the body is the event itself
            assert ev == file_lines[ev["seq"]], "webhook and events.jsonl disagree"
            assert ev["device"] == "pump/7"
        w = _webhook_stats(c, "pager")
        assert w["delivered"] == 4 and w["failedAttempts"] == 0 and w["lastStatus"] == 200
        assert w["lastError"] is None and w["lag"] == 0 and w["cursor"] == 4
        sinks = {s["name"]: s for s in c.stats()["outbox"]["sinks"]}
        assert sinks["webhook.pager"]["cursor"] == 4
    finally:
        rx.stop()


@pytest.mark.bb_timeout(30)
def test_no_secret_no_signature_header(start_daemon):
    rx = Receiver()
    try:
        d = start_daemon(sets=_hook("plain", rx), env=NO_PROXY_ENV)
        assert d.client().post(dev_path("x", "/activity")).status == 202
        assert rx.wait_seqs(1, 10) == [1]
        headers, _ = rx.bodies()[0]
        assert "x-lastseen-signature" not in headers
    finally:
        rx.stop()


@pytest.mark.bb_timeout(30)
def test_batch_sends_arrays_in_order(start_daemon):
    rx = Receiver(secret="k")
    try:
        d = start_daemon(sets=_hook("bulk", rx, batch=5, secret="k"), env=NO_PROXY_ENV)
        c = d.client()
        # 23 new devices in one request: 23 ACTIVITY_EVENTs in one commit.
        r = c.post("/api/v1/activity", json_body=["dev-%02d" % i for i in range(23)])
        assert r.status == 202 and r.body["accepted"] == 23
        seqs = rx.wait_seqs(23, 10)
        assert seqs == list(range(1, 24)), seqs
        sizes = []
        for headers, body in rx.bodies():
            v = json.loads(body)
            assert isinstance(v, list) and 1 <= len(v) <= 5, v
            sizes.append(len(v))
            assert headers["x-lastseen-signature"] == signature("k", body)
        assert max(sizes) == 5  # they were all committed before the first POST could finish
        # In seq order; across devices the seq order is the order their shards
        # applied them (engine.shards), so compare the devices as a set.
        assert [e["seq"] for e in rx.events()] == list(range(1, 24))
        assert sorted(e["device"] for e in rx.events()) == ["dev-%02d" % i for i in range(23)]
    finally:
        rx.stop()


@pytest.mark.bb_timeout(30)
def test_events_filter_skips_and_acknowledges(start_daemon):
    rx = Receiver()
    try:
        d = start_daemon(sets=_hook("down_only", rx, events="INACTIVITY_EVENT,disconnect_event"),
                         env=NO_PROXY_ENV)
        c = d.client()
        _all_four_types(c)
        assert wait_until(lambda: len(rx.events()) >= 2, 10)
        time.sleep(0.3)
        assert [e["type"] for e in rx.events()] == ["DISCONNECT_EVENT", "INACTIVITY_EVENT"]
        assert rx.seqs() == [3, 4]
        # The skipped events are acknowledged too: nothing is left to deliver.
        assert wait_until(lambda: _webhook_stats(c, "down_only")["lag"] == 0, 5)
        w = _webhook_stats(c, "down_only")
        assert w["delivered"] == 2 and w["skipped"] == 2 and w["cursor"] == 4
        # Skipped at the end of the outbox: acknowledged without any POST.
        assert c.post(dev_path("other", "/activity")).status == 202
        assert wait_until(lambda: _webhook_stats(c, "down_only")["cursor"] == 5, 5)
        assert len(rx.bodies()) == 2
    finally:
        rx.stop()


@pytest.mark.bb_timeout(90)
def test_outage_then_everything_in_order_no_gap(start_daemon):
    """The receiver refuses connections, then answers 500, then recovers:
    every event arrives once, in seq order; a second webhook is not held up."""
    rx = Receiver()
    healthy = Receiver()
    try:
        rx.stop()  # down: connections refused
        d = start_daemon(sets=_hook("flaky", rx) + _hook("healthy", healthy), env=NO_PROXY_ENV)
        c = d.client()
        for i in range(10):
            assert c.post(dev_path("a-%d" % i, "/activity")).status == 202
        # The healthy webhook gets them all meanwhile.
        assert healthy.wait_seqs(10, 10) == list(range(1, 11))
        assert wait_until(lambda: _webhook_stats(c, "flaky")["failedAttempts"] >= 3, 10)
        w = _webhook_stats(c, "flaky")
        assert w["delivered"] == 0 and w["lastStatus"] == 0 and w["lastError"] and w["lag"] == 10
        assert "webhook.flaky: POST of seq 1..1 failed" in d.stderr_text()

        # Up, but failing with 500: still nothing accepted, attempts go on.
        rx.mode = "fail"
        rx.start()
        for i in range(10, 20):
            assert c.post(dev_path("a-%d" % i, "/activity")).status == 202
        assert wait_until(lambda: rx.failed >= 2, 15)
        assert wait_until(lambda: _webhook_stats(c, "flaky")["lastStatus"] == 500, 5)
        assert _webhook_stats(c, "flaky")["lastError"] == "HTTP 500"
        assert rx.accepted == []

        rx.mode = "ok"
        for i in range(20, 25):
            assert c.post(dev_path("a-%d" % i, "/activity")).status == 202
        seqs = rx.wait_seqs(25, 40)
        assert seqs == list(range(1, 26)), seqs  # in order, no gap, no duplicate
        assert healthy.wait_seqs(25, 10) == list(range(1, 26))
        assert wait_until(lambda: _webhook_stats(c, "flaky")["lag"] == 0, 5)
        w = _webhook_stats(c, "flaky")
        assert w["delivered"] == 25 and w["lastStatus"] == 200 and w["lastError"] is None
        assert "webhook.flaky: delivering again after" in d.stderr_text()
    finally:
        rx.stop()
        healthy.stop()


@pytest.mark.bb_timeout(90)
def test_kill9_while_receiver_down_then_everything_arrives(start_daemon, tmp_path):
    data = tmp_path / "wh"
    data.mkdir()
    rx = Receiver()
    try:
        d = start_daemon(data_dir=data, sets=_hook("pager", rx), env=NO_PROXY_ENV)
        c = d.client()
        for i in range(5):
            assert c.post(dev_path("k-%d" % i, "/activity")).status == 202
        assert rx.wait_seqs(5, 10) == [1, 2, 3, 4, 5]
        rx.stop()
        for i in range(5, 12):
            assert c.post(dev_path("k-%d" % i, "/activity")).status == 202
        assert wait_until(lambda: _webhook_stats(c, "pager")["failedAttempts"] >= 1, 10)
        d.kill()  # SIGKILL while the receiver is down

        d2 = start_daemon(data_dir=data, sets=_hook("pager", rx), env=NO_PROXY_ENV)
        c2 = d2.client()
        assert c2.post(dev_path("k-12", "/activity")).status == 202
        time.sleep(0.5)
        rx.start()
        seqs = rx.wait_seqs(13, 40)
        # Duplicates are allowed only across the restart (the last
        # acknowledgement may not have been saved); order and bodies hold.
        first = {}
        for headers, body in rx.bodies():
            ev = json.loads(body)
            first.setdefault(ev["seq"], body)
            assert first[ev["seq"]] == body, "seq %d redelivered with another body" % ev["seq"]
        dedup = list(dict.fromkeys(seqs))
        assert dedup == list(range(1, 14)), seqs
        assert all(s <= 5 for s in seqs[5:][: len(seqs) - 13]), seqs  # only 1..5 may repeat
        assert wait_until(lambda: _webhook_stats(c2, "pager")["lag"] == 0, 5)
    finally:
        rx.stop()


@pytest.mark.bb_timeout(30)
def test_slow_endpoint_times_out_and_is_retried(start_daemon):
    """An endpoint slower than the webhook's timeout is a failed attempt."""
    import http.server
    import threading

    hits = []

    class Slow(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.append(time.monotonic())
            time.sleep(1.0)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/slow" % srv.server_address[1]
        d = start_daemon(sets=["webhook.slow.url=" + url, "webhook.slow.timeout=200ms"], env=NO_PROXY_ENV)
        c = d.client()
        assert c.post(dev_path("x", "/activity")).status == 202
        assert wait_until(lambda: _webhook_stats(c, "slow")["failedAttempts"] >= 2, 10)
        w = _webhook_stats(c, "slow")
        assert w["delivered"] == 0 and w["lastStatus"] == 0 and "timed out" in w["lastError"]
        assert len(hits) >= 2
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("sets,want", [
    (["webhook.p.batch=2"], "webhook.p: url is required"),
    (["webhook.p.url=ftp://x/"], "must start with http:// or https://"),
    (["webhook.p.url=http://x/", "webhook.p.events=SOMETIMES"], "webhook.p.events"),
    (["webhook.p.url=http://x/", "webhook.p.retries=3"], "unknown key"),
    (["webhook.bad.name.url=http://x/"], "expected webhook.NAME.key"),
])
def test_bad_webhook_configuration_is_refused(sets, want):
    cmd = [LASTSEEN_BIN, "--check-config"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert want in r.stderr, r.stderr


def test_webhook_from_environment(start_daemon):
    rx = Receiver()
    try:
        env = dict(NO_PROXY_ENV, LASTSEEN_WEBHOOK_ON_CALL_URL=rx.url, LASTSEEN_WEBHOOK_ON_CALL_SECRET="e")
        d = start_daemon(env=env)
        assert d.client().post(dev_path("y", "/activity")).status == 202
        assert rx.wait_seqs(1, 10) == [1]
        headers, body = rx.bodies()[0]
        assert headers["x-lastseen-webhook"] == "on_call"
        assert headers["x-lastseen-signature"] == signature("e", body)
    finally:
        rx.stop()
