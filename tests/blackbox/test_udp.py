"""UDP heartbeat input: lines "<device-id>[ <ts-ms>]", bad lines counted by reason,
the daemon unharmed by garbage."""
import os
import re
import socket
import time

import pytest

from conftest import now_ms, read_events, wait_until


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

UDP_RE = re.compile(r"receiving heartbeats on ([0-9.]+):(\d+)")


@pytest.fixture
def udp_daemon(start_daemon):
    d = start_daemon(sets=["udp.listen=127.0.0.1:0"])
    m = UDP_RE.search(d.stderr_text())
    assert m, d.stderr_text()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((m.group(1), int(m.group(2))))
    yield d, s
    s.close()


def _udp(d, client):
    return client.stats()["udp"]


def test_udp_off_by_default(daemon, client):
    assert "udp" not in client.stats()
    assert "receiving heartbeats" not in daemon.stderr_text()


def test_lines_become_activities(udp_daemon):
    d, s = udp_daemon
    c = d.client()
    ts = now_ms() - 1000
    s.send(b"u-1\nu-2 %d\r\n\n  u-3  \n" % ts)
    s.send(b"u-1")
    assert wait_until(lambda: _udp(d, c)["activities"] == 4, 3)
    st = _udp(d, c)
    assert st["datagrams"] == 2
    assert sum(st["rejected"].values()) == 0
    assert c.device("u-2").body["lastActivityTime"] == ts
    for dev in ("u-1", "u-3"):
        body = c.device(dev).body
        assert body["active"] is True and abs(body["lastActivityTime"] - now_ms()) < 5000
    # Activity events reach the log like any other input's.
    assert wait_until(lambda: {e["device"] for e in read_events(d.data_dir)} >= {"u-1", "u-2", "u-3"}, 3)


def test_bad_lines_counted_and_skipped(udp_daemon):
    d, s = udp_daemon
    c = d.client()
    s.send(b"ok-1\nbad\x01id\nok-2 12x\nok-3 1 2\nok-4 0\n" + b"a" * 300 + b"\nok-5\n")
    assert wait_until(lambda: _udp(d, c)["activities"] == 2, 3)
    st = _udp(d, c)
    assert st["rejected"]["bad_id"] == 2
    assert st["rejected"]["bad_ts"] == 2
    assert st["rejected"]["bad_line"] == 1
    assert c.device("ok-1").status == 200 and c.device("ok-5").status == 200
    for dev in ("ok-2", "ok-3", "ok-4"):
        assert c.device(dev).status == 404
    # The same counts in /metrics, by the common reasons.
    text = c.get("/metrics").raw.decode()
    assert 'lastseen_activities_total{source="udp"} 2' in text
    assert 'lastseen_rejected_inputs_total{source="udp",reason="invalid"} 4' in text
    assert 'lastseen_rejected_inputs_total{source="udp",reason="malformed"} 1' in text


def test_garbage_never_hurts(udp_daemon):
    d, s = udp_daemon
    c = d.client()
    rnd = os.urandom(200000)
    for i in range(0, len(rnd), 1000):
        s.send(rnd[i:i + 1000])
    s.send(b"")  # an empty datagram
    s.send(b"\n" * 60000)
    s.send(b"big-" + b"x" * 60000 + b"\n")  # an over-long id in a large datagram
    s.send(b"after-garbage\n")
    assert wait_until(lambda: c.device("after-garbage").status == 200, 5)
    st = _udp(d, c)
    assert st["datagrams"] >= 203
    assert st["rejected"]["bad_id"] >= 1
    assert c.get("/healthz").status == 200
    d.stop_and_check()


def test_state_max_devices_refusals_counted(start_daemon):
    d = start_daemon(sets=["udp.listen=127.0.0.1:0", "state.max_devices=2"])
    port = int(UDP_RE.search(d.stderr_text()).group(2))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"m-1\nm-2\nm-3\nm-1\n", ("127.0.0.1", port))
    c = d.client()
    assert wait_until(lambda: _udp(d, c)["activities"] + _udp(d, c)["rejected"]["refused"] == 4, 3)
    assert c.stats()["devices"] == 2
    # Which two devices got in depends on the order the shards applied the
    # lines (engine.shards > 1 keeps order per device only); every line of
    # the one left out was refused, every other line taken.
    kept = {dev["id"] for dev in c.get("/api/v1/devices").body["devices"]}
    lines = ["m-1", "m-2", "m-3", "m-1"]
    assert len(kept) == 2 and kept <= set(lines)
    assert _udp(d, c)["rejected"]["refused"] == sum(1 for x in lines if x not in kept)
    assert _udp(d, c)["activities"] == sum(1 for x in lines if x in kept)
    s.close()


def test_silent_udp_device_goes_inactive(udp_daemon):
    d, s = udp_daemon
    c = d.client()
    assert c.put("/api/v1/devices/hb-1", json_body={"inactivityTimeout": 300}).status == 201
    s.send(b"hb-1\n")
    assert wait_until(lambda: c.device("hb-1").body["active"] is True, 3)
    assert wait_until(lambda: c.device("hb-1").body["active"] is False, 3)
    s.send(b"hb-1\n")
    assert wait_until(lambda: c.device("hb-1").body["active"] is True, 3)
    types = [e["type"] for e in read_events(d.data_dir) if e["device"] == "hb-1"]
    assert wait_until(lambda: [e["type"] for e in read_events(d.data_dir) if e["device"] == "hb-1"][-3:] ==
                      ["ACTIVITY_EVENT", "INACTIVITY_EVENT", "ACTIVITY_EVENT"], 3), types


@pytest.mark.parametrize("value", ["8081", "127.0.0.1:", "127.0.0.1:99999", "[::1"])
def test_bad_listen_refused(value):
    import subprocess
    from conftest import LASTSEEN_BIN
    r = subprocess.run([LASTSEEN_BIN, "--set", "udp.listen=" + value, "--check-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "udp.listen" in r.stderr
