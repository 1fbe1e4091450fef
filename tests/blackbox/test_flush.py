"""Flush passes: lastActivityTime of tens of thousands of busy devices is written in
chunks and slices while transitions, configuration and deletions are committed
around it.  kill -9 in the middle of such a flush loses nothing but
lastActivityTime precision, and the restart raises no false alarm.

Each test runs the real daemon on one data directory across several processes.
"""
import random
import threading
import time

import pytest

from conftest import dev_path, now_ms, read_events, wait_until
from outputs_util import parse_exposition, sample

N = 40000
BULK = 10000
FAST = 50  # store.flush_interval in ms: passes run back to back under load


def _ids(prefix, n):
    return ["%s-%06d" % (prefix, i) for i in range(n)]


def _send(client, ids, ts):
    """One round of activity with its own ts; every id must be accepted."""
    for i in range(0, len(ids), BULK):
        r = client.post("/api/v1/activity", json_body=[{"id": x, "ts": ts} for x in ids[i:i + BULK]])
        assert r.status in (200, 202), r
        assert r.body["accepted"] == len(ids[i:i + BULK]), r.body


def _flushes(client):
    return client.stats()["store"]["flushes"]


def _store_figures_ok(client):
    s = client.stats()["store"]
    return s["flushes"] > 0 and s["flushedRecords"] > 0 and s["committerLockMaxUs"] > 0


@pytest.mark.bb_timeout(240)
def test_kill9_mid_flush_loses_only_activity_precision(start_daemon, tmp_path):
    data = tmp_path / "flush"
    data.mkdir()
    sets = ["store.flush_interval=%dms" % FAST, "state.default_inactivity_timeout=120s"]
    d = start_daemon(data_dir=data, sets=sets)
    c = d.client(timeout=30)
    ids = _ids("m", N)
    t1 = now_ms() - 2000
    _send(c, ids, t1)  # creates them: transitions, committed with their events
    # Round 2: activity only, written by flush passes.  Once a pass that began
    # after it has ended, every device has t2 on disk.
    t2 = t1 + 1000
    _send(c, ids, t2)
    f0 = _flushes(c)
    assert wait_until(lambda: _flushes(c) >= f0 + 2, 60, 0.05), "no flush pass completed"
    assert _store_figures_ok(c)

    # Round 3 keeps passes busy while acknowledged changes go around them: the
    # load sends to all but the churn devices, which this thread makes dirty
    # (activity only) right before deleting, re-creating or configuring them.
    churn, steady = ids[N - 1200:], ids[:N - 1200]
    stop = threading.Event()
    sent = {"rounds": 0}

    def load():
        lc = d.client(timeout=30)
        ts = t2
        while not stop.is_set():
            ts += 1
            try:
                _send(lc, steady, ts)
            except Exception:  # the daemon was killed under us
                return
            sent["rounds"] += 1

    t = threading.Thread(target=load)
    t.start()
    deleted, recreated, configured, silent = [], [], {}, []
    rng = random.Random(5)
    for k in range(60):
        group = churn[k * 20:(k + 1) * 20]
        _send(c, group, t2 + 1)
        # Somewhere in the next pass: maybe staged, not yet written.
        time.sleep(rng.random() * 0.15)
        dev = group[0]
        if k % 3 == 0:
            r = c.delete(dev_path(dev))
            assert r.status == 204, r
            deleted.append(dev)
        elif k % 3 == 1:
            again = deleted.pop()
            r = c.put(dev_path(again), json_body={"type": "again", "inactivityTimeout": 90000})
            assert r.status == 201, r
            recreated.append(again)
            r = c.delete(dev_path(dev))
            assert r.status == 204, r
            deleted.append(dev)
        else:
            r = c.put(dev_path(dev), json_body={"inactivityTimeout": 100000 + k})
            assert r.status == 200, r
            configured[dev] = 100000 + k
    # Devices that go silent: their own short timeout, their INACTIVITY_EVENT.
    for k in range(5):
        dev = "quiet-%d" % k
        assert c.put(dev_path(dev), json_body={"inactivityTimeout": 200}).status == 201
        assert c.post(dev_path(dev, "/activity")).status == 202
        silent.append(dev)
    assert wait_until(lambda: len([e for e in read_events(str(data)) if e["type"] == "INACTIVITY_EVENT"]) >= 5,
                      30, 0.05), "the silent devices were not reported"
    wait_until(lambda: sent["rounds"] >= 2, 60, 0.05)
    f1 = _flushes(c)
    wait_until(lambda: _flushes(c) > f1, 30, 0.01)
    d.kill()  # kill -9, the load still running: passes run back to back
    stop.set()
    t.join(timeout=60)
    gone = set(deleted) - set(recreated)

    before = read_events(str(data))
    inactive = {e["device"] for e in before if e["type"] == "INACTIVITY_EVENT"}
    assert set(silent) <= inactive

    # Strict restart: a device whose stored lastActivityTime were older than its
    # timeout (120 s, far longer than the test) would be reported inactive at once.
    d2 = start_daemon(data_dir=data, sets=sets + ["state.restart_policy=strict"])
    c2 = d2.client(timeout=30)
    st = c2.stats()
    assert st["devices"] == N - len(gone) + len(silent)
    for dev in gone:
        assert c2.device(dev).status == 404, dev
    for dev in recreated:
        r = c2.device(dev)
        assert r.status == 200, dev
        assert r.body["type"] == "again" and r.body["inactivityTimeout"] == 90000, r.body
    for dev, timeout in configured.items():
        if dev in gone:
            continue
        r = c2.device(dev)
        assert r.status == 200 and r.body["inactivityTimeout"] == timeout, (dev, r.body)
    for dev in silent:
        r = c2.device(dev)
        assert r.body["active"] is False and r.body["inactivityAlarmTime"] > 0, r.body
    # lastActivityTime: at least what a completed pass wrote, at most what was sent.
    for dev in ids[:: N // 400] + list(configured):
        if dev in gone or dev in recreated:
            continue
        r = c2.device(dev)
        assert r.status == 200, dev
        assert r.body["active"] is True, r.body
        assert t2 <= r.body["lastActivityTime"] <= t2 + sent["rounds"] + 1, r.body
    # No false alarm: the restart reports nothing of the devices that kept sending.
    time.sleep(1.0)
    after = read_events(str(d2.data_dir))
    new = [e for e in after[len(before):] if e["type"] == "INACTIVITY_EVENT"]
    assert not new, new[:3]
    d2.stop_and_check()


@pytest.mark.bb_timeout(120)
def test_clean_stop_writes_every_pending_activity(start_daemon, tmp_path):
    """A SIGTERM while activity is only in memory: the final flush writes it all."""
    data = tmp_path / "stop"
    data.mkdir()
    # A flush interval far longer than the test: only the stop can write round 2.
    sets = ["store.flush_interval=1h"]
    d = start_daemon(data_dir=data, sets=sets)
    c = d.client(timeout=30)
    ids = _ids("s", 20000)
    t1 = now_ms() - 5000
    _send(c, ids, t1)
    _send(c, ids, t1 + 777)
    assert c.stats()["store"]["flushes"] == 0
    d.stop_and_check()
    d2 = start_daemon(data_dir=data, sets=sets)
    c2 = d2.client(timeout=30)
    for dev in ids[::97]:
        assert c2.device(dev).body["lastActivityTime"] == t1 + 777, dev
    d2.stop_and_check()


def test_flush_figures_in_stats_and_metrics(start_daemon):
    """A pass writes the devices that only reported activity, and says so."""
    d = start_daemon(sets=["store.flush_interval=20ms"])
    c = d.client(timeout=30)
    ids = _ids("f", 3000)
    _send(c, ids, now_ms() - 1000)  # created: urgent, with their events
    before = c.stats()["store"]
    _send(c, ids, now_ms() - 500)  # activity only: the passes' work
    assert wait_until(lambda: c.stats()["store"]["flushedRecords"] >= before["flushedRecords"] + len(ids),
                      30, 0.02)
    st = c.stats()["store"]
    assert st["flushes"] > before["flushes"] and st["flushSlices"] > 0
    assert st["commits"] > 0 and st["committerLockMaxUs"] > 0
    r = c.get("/metrics")
    assert r.status == 200
    fam = parse_exposition(r.raw.decode("utf-8"))
    assert sample(fam, "lastseen_store_flushed_records_total") >= st["flushedRecords"]
    assert sample(fam, "lastseen_committer_lock_hold_seconds", "lastseen_committer_lock_hold_seconds_count") > 0
    assert sample(fam, "lastseen_store_flush_duration_seconds",
                  "lastseen_store_flush_duration_seconds_count") >= st["flushes"]
    assert sample(fam, "lastseen_committer_lock_hold_max_seconds") > 0
    d.stop_and_check()
