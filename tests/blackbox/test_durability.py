"""Durability: kill -9 under load loses nothing acknowledged; restarts raise no false alarms.

Each test runs the real daemon on one data directory across several processes.
"""
import json
import random
import signal
import threading
import time

import pytest

from conftest import dev_path, now_ms, read_events


def _load(client, prefix, acked, stop):
    """Sends a steady mix of configuration, sessions and activity until stopped or the
    daemon dies; records each acknowledged operation."""
    i = 0
    while not stop.is_set() and i < 100000:
        dev = "%s-%d" % (prefix, i)
        try:
            r = client.put(dev_path(dev), json_body={"inactivityTimeout": 60000 + i, "type": "t%d" % (i % 3)})
            if r.status in (200, 201):
                acked["put"][dev] = 60000 + i
            r = client.post(dev_path(dev, "/connect"))
            if r.status == 202:
                acked["connect"].add(dev)
            r = client.post(dev_path(dev, "/activity"))
        except Exception:
            return
        i += 1


@pytest.mark.bb_timeout(120)
def test_kill9_cycles_lose_nothing_acknowledged(start_daemon, tmp_path):
    data = tmp_path / "crash"
    data.mkdir()
    acked = {"put": {}, "connect": set()}
    by_seq = {}
    rng = random.Random(7)
    for cycle in range(6):
        d = start_daemon(data_dir=data)
        c = d.client()
        # Everything acknowledged before is here, with its configuration.
        for dev, timeout in acked["put"].items():
            r = c.device(dev)
            assert r.status == 200, (cycle, dev, r)
            assert r.body["inactivityTimeout"] == timeout
            assert r.body["type"].startswith("t")
        for dev in acked["connect"]:
            assert c.device(dev).body["lastConnectTime"] > 0, (cycle, dev)
        if cycle == 5:
            break
        stop = threading.Event()
        t = threading.Thread(target=_load, args=(d.client(), "c%d" % cycle, acked, stop))
        t.start()
        time.sleep(0.2 + rng.random() * 0.6)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=5)
        d.stopped = True
        stop.set()
        t.join(timeout=10)
        # seq never names two different events, across all processes so far.
        for ev in read_events(str(data)):
            key = json.dumps(ev, sort_keys=True)
            assert by_seq.setdefault(ev["seq"], key) == key, "seq %d reused" % ev["seq"]
    assert len(acked["put"]) > 50
    events = read_events(str(data))
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "events.jsonl out of order or duplicated"
    # No device was silent for its timeout (60 s): any inactivity is false.
    assert not [e for e in events if e["type"] == "INACTIVITY_EVENT"]


def _wait_inactivity_events(d, seconds=5.0):
    """Polls events.jsonl (bounded) until an INACTIVITY_EVENT is there.  The
    device's in-memory state turns inactive a moment before the event's
    commit reaches the file."""
    deadline = time.time() + seconds
    while True:
        inact = [e for e in d.events() if e["type"] == "INACTIVITY_EVENT"]
        if inact or time.time() > deadline:
            return inact
        time.sleep(0.02)


def _active_device(c, dev, timeout):
    assert c.put(dev_path(dev), json_body={"inactivityTimeout": timeout}).status in (200, 201)
    assert c.post(dev_path(dev, "/activity")).status == 202
    return c.device(dev).body["lastActivityTime"]


@pytest.mark.bb_timeout(60)
def test_grace_restart_raises_no_inactivity_for_downtime(start_daemon, tmp_path):
    data = tmp_path / "grace"
    data.mkdir()
    d = start_daemon(data_dir=data)
    last = _active_device(d.client(), "g", 1000)
    d.stop_and_check()
    time.sleep(1.5)  # longer than the device's timeout
    restarted = now_ms()
    d2 = start_daemon(data_dir=data)
    time.sleep(0.5)
    assert d2.client().device("g").body["active"] is True
    assert not [e for e in d2.events() if e["type"] == "INACTIVITY_EVENT"]
    # Silent for a full timeout after the restart: then it is inactive.
    inact = _wait_inactivity_events(d2)
    assert len(inact) == 1
    assert d2.client().device("g").body["active"] is False
    assert inact[0]["detectedAt"] >= restarted + 1000 - 5
    assert inact[0]["ts"] == last + 1000


@pytest.mark.bb_timeout(60)
def test_strict_restart_fires_passed_deadlines_with_real_ts(start_daemon, tmp_path):
    data = tmp_path / "strict"
    data.mkdir()
    d = start_daemon(data_dir=data, sets=["state.restart_policy=strict"])
    last = _active_device(d.client(), "s", 1000)
    d.stop_and_check()
    time.sleep(1.5)
    d2 = start_daemon(data_dir=data, sets=["state.restart_policy=strict"])
    inact = _wait_inactivity_events(d2)
    assert len(inact) == 1
    assert d2.client().device("s").body["active"] is False
    assert inact[0]["ts"] == last + 1000  # its real deadline, during the downtime


@pytest.mark.bb_timeout(60)
def test_delete_survives_restart(start_daemon, tmp_path):
    data = tmp_path / "del"
    data.mkdir()
    d = start_daemon(data_dir=data)
    c = d.client()
    assert c.put(dev_path("x"), json_body={"inactivityTimeout": 5000}).status == 201
    assert c.delete(dev_path("x")).status == 204
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=5)
    d.stopped = True
    d2 = start_daemon(data_dir=data)
    assert d2.client().device("x").status == 404


@pytest.mark.bb_timeout(60)
def test_corrupted_store_is_a_clear_error(start_daemon, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    d = start_daemon(data_dir=data)
    d.stop_and_check()
    with open(data / "store" / "data.mdb", "r+b") as f:
        f.write(b"not an lmdb file" * 64)
    from conftest import LASTSEEN_BIN
    import subprocess
    p = subprocess.run([LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0", "--set",
                        "store.data_dir=%s" % data], capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"store" in p.stderr and b"data.mdb" in p.stderr or b"damaged" in p.stderr or b"corrupt" in p.stderr.lower(), p.stderr
