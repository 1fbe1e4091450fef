"""Signed UDP heartbeats (udp.auth = hmac): "<id> <ts> <source>:<mac>" lines
with the first 16 bytes of HMAC-SHA256(key, "<id> <ts>"), signed here with
Python's hmac module; forged, unsigned and out-of-window lines counted by
reason and dropped; a replayed line cannot bring a device back after its
deadline nor push the deadline later; keys rotated with SIGHUP."""
import hashlib
import hmac
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import LASTSEEN_BIN, now_ms, read_events, wait_until

UDP_RE = re.compile(r"receiving heartbeats on ([0-9.]+):(\d+)")
KEY_A = bytes(range(16))
KEY_B = bytes(range(100, 132))
KEY_C = b"\x5a" * 24


def sign(key, source, device, ts):
    msg = ("%s %d" % (device, ts)).encode()
    mac = hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]
    return b"%s %s:%s" % (msg, source.encode(), mac.encode())


def write_keys(path, *entries):
    """entries: (source, key) pairs, one line each."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write("# source  key\n")
        for source, key in entries:
            f.write("%s %s\n" % (source, key.hex()))
    os.chmod(tmp, 0o600)
    os.rename(tmp, str(path))


class UdpDaemon:
    def __init__(self, start_daemon, keys, sets=()):
        self.d = start_daemon(sets=["udp.listen=127.0.0.1:0", "udp.auth=hmac", "udp.keys_file=%s" % keys,
                                    "alarms.enabled=false"] + list(sets))
        m = UDP_RE.search(self.d.stderr_text())
        assert m, self.d.stderr_text()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((m.group(1), int(m.group(2))))
        self.c = self.d.client()

    def send(self, data):
        self.sock.send(data)

    def udp(self):
        return self.c.stats()["udp"]

    def settle(self, total):
        """Waits until `total` lines were applied or rejected."""
        def done():
            u = self.udp()
            return u["activities"] + sum(u["rejected"].values()) >= total
        assert wait_until(done, 5), self.udp()
        return self.udp()


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "udp.keys"
    write_keys(path, ("gw-1", KEY_A), ("gw-2", KEY_B))
    return path


def test_signed_accepted_and_the_rest_counted(start_daemon, keys):
    u = UdpDaemon(start_daemon, keys, sets=["udp.auth_window=10s"])
    assert "loaded 2 keys of 2 sources from %s" % keys in u.d.stderr_text()
    t = now_ms() - 1000
    good = [sign(KEY_A, "gw-1", "s-1", t), sign(KEY_B, "gw-2", "s-2", t)]
    bad = {
        "unsigned": [b"s-3", b"s-3 %d" % t],
        "unknown_source": [sign(KEY_A, "gw-9", "s-4", t)],
        "forged": [sign(KEY_B, "gw-1", "s-5", t),                       # another source's key
                   sign(KEY_A, "gw-1", "s-1", t).replace(b"s-1", b"s-6"),  # moved to another device
                   sign(KEY_A, "gw-1", "s-1", t).replace(b"%d" % t, b"%d" % (t + 60000)),  # to later
                   b"s-7 %d gw-1:00112233" % t],
        "out_of_window": [sign(KEY_A, "gw-1", "s-8", now_ms() - 11000),
                          sign(KEY_A, "gw-1", "s-9", now_ms() + 60000)],
    }
    lines = good + [x for v in bad.values() for x in v]
    u.send(b"\n".join(lines) + b"\n")
    st = u.settle(len(lines))
    assert st["activities"] == 2, st
    for why, v in bad.items():
        assert st["rejected"][why] == len(v), (why, st)
    assert u.c.device("s-1").body["lastActivityTime"] == t
    assert u.c.device("s-2").status == 200
    for dev in ("s-3", "s-4", "s-5", "s-6", "s-7", "s-8", "s-9"):
        assert u.c.device(dev).status == 404, dev
    text = u.c.get("/metrics").raw.decode()
    assert 'lastseen_rejected_inputs_total{source="udp",reason="unauthenticated"} 9' in text


def _heartbeat(u, device, timeout_ms):
    """A device with its own timeout sends one signed line, which an attacker
    captures; returns (its ts, the line) once the device is active."""
    assert u.c.put("/api/v1/devices/" + device, json_body={"inactivityTimeout": timeout_ms}).status == 201
    t0 = now_ms()
    captured = sign(KEY_A, "gw-1", device, t0)
    u.send(captured)
    assert wait_until(lambda: u.c.device(device).body["active"] is True, 3)
    return t0, captured


@pytest.mark.bb_timeout(60)
def test_replay_after_the_deadline_raises_no_activity_event(start_daemon, keys):
    u = UdpDaemon(start_daemon, keys)
    t0, captured = _heartbeat(u, "r-1", 1000)
    assert wait_until(lambda: u.c.device("r-1").body["active"] is False, 5)
    stale = u.c.stats()["staleActivities"]
    # The attacker sends the captured line again, well within udp.auth_window.
    u.send(captured)
    st = u.settle(2)
    assert st["activities"] == 2 and sum(st["rejected"].values()) == 0, st
    assert wait_until(lambda: u.c.stats()["staleActivities"] == stale + 1, 3)
    time.sleep(0.5)
    body = u.c.device("r-1").body
    assert body["active"] is False and body["lastActivityTime"] == t0, body
    types = [e["type"] for e in read_events(u.d.data_dir) if e.get("device") == "r-1"]
    assert types == ["ACTIVITY_EVENT", "INACTIVITY_EVENT"], types


@pytest.mark.bb_timeout(60)
def test_replay_before_the_deadline_does_not_extend_it(start_daemon, keys):
    u = UdpDaemon(start_daemon, keys)
    t0, captured = _heartbeat(u, "r-2", 1500)
    time.sleep(0.7)
    u.send(captured)
    u.settle(2)
    assert wait_until(lambda: [e for e in read_events(u.d.data_dir)
                               if e.get("device") == "r-2" and e["type"] == "INACTIVITY_EVENT"], 5)
    ev = [e for e in read_events(u.d.data_dir) if e.get("device") == "r-2" and e["type"] == "INACTIVITY_EVENT"][0]
    # The deadline is the original line's ts + the timeout, not the replay's arrival + the timeout.
    assert ev["ts"] == t0 + 1500, ev
    assert u.c.device("r-2").body["lastActivityTime"] == t0


@pytest.mark.bb_timeout(60)
def test_keys_rotated_with_sighup(start_daemon, tmp_path):
    path = tmp_path / "rot.keys"
    write_keys(path, ("gw-1", KEY_A))
    u = UdpDaemon(start_daemon, path)
    t = now_ms()
    u.send(sign(KEY_C, "gw-1", "k-1", t))
    assert u.settle(1)["rejected"]["forged"] == 1
    # Rotation: the new key first (signers use it), the old one still accepted.
    write_keys(path, ("gw-1", KEY_C), ("gw-1", KEY_A))
    u.d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded 2 keys of 1 sources" in u.d.stderr_text(), 5), u.d.stderr_text()
    u.send(sign(KEY_C, "gw-1", "k-2", now_ms()) + b"\n" + sign(KEY_A, "gw-1", "k-3", now_ms()))
    assert u.settle(3)["activities"] == 2
    # The old key retired.
    write_keys(path, ("gw-1", KEY_C))
    u.d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded 1 keys of 1 sources" in u.d.stderr_text(), 5)
    u.send(sign(KEY_A, "gw-1", "k-4", now_ms()))
    assert u.settle(4)["rejected"]["forged"] == 2
    # A file that does not parse leaves the keys in use.
    with open(path, "w") as f:
        f.write("gw-1 not-a-key\n")
    u.d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "UDP keys not reloaded" in u.d.stderr_text(), 5)
    assert "line 1: a key is" in u.d.stderr_text()
    u.send(sign(KEY_C, "gw-1", "k-5", now_ms()))
    assert u.settle(5)["activities"] == 3
    for dev in ("k-2", "k-3", "k-5"):
        assert u.c.device(dev).status == 200


def test_sim_signs(start_daemon, keys):
    u = UdpDaemon(start_daemon, keys)
    sim = os.path.join(os.path.dirname(LASTSEEN_BIN), "lastseen-sim")
    if not os.path.exists(sim):
        pytest.skip("no lastseen-sim next to %s" % LASTSEEN_BIN)
    port = u.sock.getpeername()[1]
    r = subprocess.run([sim, "--protocol", "udp", "--url", "udp://127.0.0.1:%d" % port, "--devices", "50",
                        "--interval", "1s", "--duration", "2s", "--udp-keys", str(keys), "--udp-source", "gw-2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    st = u.settle(50)
    assert st["activities"] >= 50 and sum(st["rejected"].values()) == 0, st


def test_auth_config_errors(tmp_path):
    r = subprocess.run([LASTSEEN_BIN, "--set", "udp.auth=hmac", "--check-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "udp.auth = hmac needs udp.keys_file" in r.stderr
    missing = tmp_path / "missing.keys"
    r = subprocess.run([LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0", "--set",
                        "store.data_dir=%s" % (tmp_path / "data"), "--set", "udp.listen=127.0.0.1:0",
                        "--set", "udp.auth=hmac", "--set", "udp.keys_file=%s" % missing],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "udp.keys_file %s: cannot read" % missing in r.stderr, r.stderr
