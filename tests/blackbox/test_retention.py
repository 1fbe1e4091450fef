"""The event outbox: retention pruning, its accounting in /api/v1/stats, commits shared by
concurrent requests, and the start-up phase while devices load."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import LASTSEEN_BIN, LISTEN_RE, Client, dev_path, read_events, wait_until


def _outbox(client):
    return client.stats()["outbox"]


def _make_events(client, prefix, n):
    """n INACTIVITY/ACTIVITY pairs' worth of transitions: each device is created
    with a 1 ms timeout and so goes inactive at once."""
    for i in range(n):
        dev = "%s-%d" % (prefix, i)
        r = client.put(dev_path(dev), json_body={"inactivityTimeout": 1})
        assert r.status in (200, 201), r
        assert client.post(dev_path(dev, "/activity")).status == 202


@pytest.mark.bb_timeout(60)
def test_retention_prunes_delivered_events(start_daemon):
    d = start_daemon(sets=["events.retention=2s"])
    c = d.client()
    _make_events(c, "old", 20)
    assert wait_until(lambda: _outbox(c)["committedSeq"] >= 40, 5)
    first = _outbox(c)
    assert first["firstSeq"] == 1 and first["prunedEvents"] == 0
    assert first["sinks"][0]["name"] == "events.jsonl"
    # Older than the retention and delivered to the file: pruned by later commits.
    time.sleep(2.5)

    def pruned():
        _make_events(c, "new-%d" % time.monotonic_ns(), 1)
        return _outbox(c)["prunedEvents"] >= 40

    assert wait_until(pruned, 10, interval=0.3)
    ob = _outbox(c)
    assert ob["firstSeq"] > 40
    assert ob["sinksBehindRetention"] == 0
    assert ob["sinks"][0]["lag"] == 0
    # The file keeps everything; pruning only trims the outbox.
    seqs = [e["seq"] for e in read_events(d.data_dir)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= ob["committedSeq"] - 2
    # The pruned position survives a restart: seq continues, nothing is replayed.
    d.stop_and_check()
    last = read_events(d.data_dir)[-1]["seq"]
    d2 = start_daemon(data_dir=d.data_dir, sets=["events.retention=2s"])
    c2 = d2.client()
    ob2 = _outbox(c2)
    assert ob2["firstSeq"] >= ob["firstSeq"]
    assert ob2["committedSeq"] == last
    _make_events(c2, "after", 1)
    assert wait_until(lambda: len(read_events(d2.data_dir)) >= last + 2, 5)
    seqs = [e["seq"] for e in read_events(d2.data_dir)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_retention_keeps_young_events(start_daemon):
    d = start_daemon()  # default retention: 7 days
    c = d.client()
    _make_events(c, "young", 10)
    assert wait_until(lambda: _outbox(c)["committedSeq"] >= 20, 5)
    ob = _outbox(c)
    assert ob["firstSeq"] == 1 and ob["prunedEvents"] == 0


@pytest.mark.parametrize("value", ["0s", "500ms", "-1d", "forever"])
def test_retention_bad_values_refused(tmp_path, value):
    r = subprocess.run([LASTSEEN_BIN, "--set", "events.retention=" + value, "--check-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "events.retention" in r.stderr


@pytest.mark.bb_timeout(180)
def test_healthz_reports_starting_while_loading(start_daemon, tmp_path):
    """HTTP is up while the devices load: /healthz says "starting" (503) and every
    other route answers 503 with Retry-After instead of touching a half-loaded
    engine; once loaded, everything is there."""
    n = 1000000
    d = start_daemon()
    c = d.client(timeout=60)
    batch = 100000
    for start in range(0, n, batch):
        ids = ["load-%07d" % i for i in range(start, start + batch)]
        r = c.post("/api/v1/activity", json_body=ids)
        assert r.status == 202, r
    assert c.stats()["devices"] == n
    d.stop_and_check()

    # Start by hand: the fixture waits for 200, this test wants what comes before.
    err = open(tmp_path / "starting.stderr", "wb")
    proc = subprocess.Popen([LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0",
                             "--set", "store.data_dir=%s" % d.data_dir],
                            stdout=subprocess.DEVNULL, stderr=err, cwd=str(tmp_path))
    try:
        seen = []
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            m = LISTEN_RE.search((tmp_path / "starting.stderr").read_text())
            if m:
                port = int(m.group(2))
            assert proc.poll() is None
            time.sleep(0.001)
        assert port
        cl = Client("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            r = cl.get("/healthz")
            seen.append(r.status)
            if r.status == 200:
                assert r.body == {"status": "ok"}
                break
            assert r.status == 503, r
            assert r.body["status"] == "starting"
            assert 0 <= r.body["devicesLoaded"] <= n
            other = cl.get(dev_path("load-0000001"))
            if other.status == 503:
                assert other.body["error"] == "starting"
                assert other.headers.get("retry-after") == "1"
            else:  # finished loading in between
                assert other.status == 200
        assert seen and seen[-1] == 200
        assert 503 in seen, "loading %d devices finished before the first /healthz" % n
        assert cl.stats()["devices"] == n
        assert cl.device("load-0999999").status == 200
        m = re.search(r"loaded (\d+) devices", (tmp_path / "starting.stderr").read_text())
        assert m and int(m.group(1)) == n
        cl.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        err.close()
    assert proc.returncode == 0


@pytest.mark.bb_timeout(60)
def test_concurrent_changes_share_commits_and_survive_kill9(start_daemon):
    """Many clients changing state at once: each answer waits for its commit
    (connections are parked, not threads), and every acknowledged change
    survives kill -9."""
    import threading

    d = start_daemon()
    acked, errors = [], []

    def worker(k):
        c = d.client(timeout=10)
        for i in range(25):
            dev = "cc-%d-%d" % (k, i)
            r = c.put(dev_path(dev), json_body={"inactivityTimeout": 1000 + i})
            if r.status == 201 and r.body["inactivityTimeout"] == 1000 + i:
                acked.append(dev)
            else:
                errors.append(r)
            r = c.post(dev_path(dev, "/connect"))
            if r.status != 202 or r.body != {"sessions": 1}:
                errors.append(r)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert len(acked) == 48 * 25
    d.kill()
    d2 = start_daemon(data_dir=d.data_dir)
    c2 = d2.client()
    assert c2.stats()["devices"] == len(acked)
    for dev in acked[::37]:
        r = c2.device(dev)
        assert r.status == 200 and r.body["sessions"] == 1 and r.body["lastConnectTime"] > 0
