"""Wall-clock steps, while running and across a restart, raise no false events.

The daemon runs under Debian's libfaketime (LD_PRELOAD) with
FAKETIME_DONT_FAKE_MONOTONIC=1, so only CLOCK_REALTIME is offset, as with a real
clock step (NTP, an RTC fixed at boot, a resumed VM), and with
FAKETIME_TIMESTAMP_FILE + FAKETIME_NO_CACHE=1, so the test changes the offset
while the daemon runs by rewriting that file.  The test itself runs on the real
clocks; `lastActivityTime`s and `detectedAt`s prove the daemon saw the step.
"""
import glob
import os
import threading
import time

import pytest

from conftest import dev_path, now_ms, wait_until

HOUR_MS = 3600 * 1000


def libfaketime():
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime not installed (Debian package faketime, in the Makefile's DEB_PKGS)")
    return found[0]


class FakeClock:
    """The offset of the daemon's wall clock, changed by rewriting a file atomically."""

    def __init__(self, tmp_path, offset_s=0):
        self.path = str(tmp_path / "faketime.rc")
        self.set(offset_s)

    def set(self, offset_s):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+d\n" % offset_s)
        os.rename(tmp, self.path)

    def env(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        return {
            "LD_PRELOAD": libfaketime(),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_TIMESTAMP_FILE": self.path,
            "FAKETIME_NO_CACHE": "1",
            # An ASan build wants its runtime first; libfaketime only wraps clock calls.
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
        }


def inactivity_events(d):
    return [e for e in d.events() if e["type"] == "INACTIVITY_EVENT"]


def activate(c, dev, timeout_ms):
    assert c.put(dev_path(dev), json_body={"inactivityTimeout": timeout_ms}).status in (200, 201)
    assert c.post(dev_path(dev, "/activity")).status == 202
    body = c.device(dev).body
    assert body["active"] is True, body
    return body["lastActivityTime"]


def _report(client, devices, stop, errors):
    """Reports activity (no ts: the daemon's own time) for `devices` every 100 ms."""
    while not stop.is_set():
        for dev in devices:
            try:
                r = client.post(dev_path(dev, "/activity"))
                if r.status != 202:
                    errors.append(r)
            except Exception as e:  # noqa: BLE001 - reported by the test
                errors.append(e)
                return
        stop.wait(0.1)


@pytest.mark.bb_timeout(60)
def test_clock_steps_while_running(start_daemon, tmp_path):
    clock = FakeClock(tmp_path)
    d = start_daemon(env=clock.env())
    c = d.client()
    busy = ["busy-%d" % i for i in range(5)]
    for dev in busy:
        activate(c, dev, 1500)
    quiet_t0 = time.monotonic()  # before its activity: its deadline is >= quiet_t0 + 5 s
    quiet_last = activate(c, "quiet", 5000)

    stop, errors = threading.Event(), []
    reporter = threading.Thread(target=_report, args=(d.client(), busy, stop, errors))
    reporter.start()
    try:
        time.sleep(0.5)
        clock.set(3600)  # one hour ahead
        assert wait_until(lambda: c.device(busy[0]).body["lastActivityTime"] > now_ms() + HOUR_MS - 60000, 3.0), \
            "the daemon did not see the step forward"
        ahead = c.device(busy[0]).body["lastActivityTime"]
        time.sleep(0.7)
        assert time.monotonic() - quiet_t0 < 4.5, "setup too slow to tell an early expiry"
        assert c.device("quiet").body["active"] is True, "a step forward fired a deadline early"
        clock.set(-3600)  # two hours back: one hour behind the truth
        probe = activate(c, "probe", 600000)
        assert probe < now_ms() - HOUR_MS + 60000, "the daemon did not see the step back"
        # The silent device goes inactive after its timeout in real time: not at
        # the step forward, not an hour late after the step back.
        while c.device("quiet").body["active"]:
            assert time.monotonic() - quiet_t0 < 9.0, "quiet device still active 9 s after a 5 s timeout"
            time.sleep(0.02)
        elapsed = time.monotonic() - quiet_t0
        assert elapsed >= 4.99, "quiet device went inactive after %.2f s, timeout 5 s" % elapsed
        time.sleep(1.0)  # busy devices keep reporting past their 1.5 s timeout
    finally:
        stop.set()
        reporter.join(timeout=10)
    assert not errors, errors[:3]

    for dev in busy:
        body = c.device(dev).body
        assert body["active"] is True, body
        # lastActivityTime never moves back: it keeps the value from the hour ahead.
        assert body["lastActivityTime"] >= ahead, body
    inact = wait_until(lambda: inactivity_events(d), 2.0)
    assert [e["device"] for e in inact] == ["quiet"], inact
    ev = inact[0]
    assert ev["ts"] == quiet_last + 5000
    # Detected on the stepped-back clock: its detectedAt is an hour behind the truth,
    # and before its own ts (docs/semantics.md, "Two clocks").
    assert abs(ev["detectedAt"] - (now_ms() - HOUR_MS)) < 60000, ev
    assert ev["detectedAt"] < ev["ts"]


def _first_run(start_daemon, data, devices, policy):
    """Creates active devices {id: timeout}, stops cleanly; returns {id: lastActivityTime}."""
    d = start_daemon(data_dir=data, sets=["state.restart_policy=%s" % policy])
    c = d.client()
    last = {dev: activate(c, dev, timeout) for dev, timeout in devices.items()}
    d.stop_and_check()
    return last


@pytest.mark.bb_timeout(60)
def test_restart_with_clock_ahead_grace_raises_nothing(start_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    last = _first_run(start_daemon, data, {"short": 3000, "hour": HOUR_MS, "long": 3 * HOUR_MS}, "grace")
    clock = FakeClock(tmp_path, 7200)  # the clock was stepped 2 h ahead while lastseen was down
    t0 = time.monotonic()  # before the restart: a full timeout after it is >= t0 + 3 s
    d = start_daemon(data_dir=data, env=clock.env())
    c = d.client()
    assert activate(c, "probe", 600000) > now_ms() + 2 * HOUR_MS - 60000, "the daemon did not see the step"
    time.sleep(1.0)
    assert inactivity_events(d) == []
    for dev in last:
        assert c.device(dev).body["active"] is True, dev
    # Grace counts a full timeout from the restart, in real time.
    inact = wait_until(lambda: inactivity_events(d), 6.0)
    assert [e["device"] for e in inact] == ["short"], inact
    assert time.monotonic() - t0 >= 2.99
    assert inact[0]["ts"] == last["short"] + 3000
    time.sleep(0.5)
    assert [e["device"] for e in inactivity_events(d)] == ["short"]


@pytest.mark.bb_timeout(60)
def test_restart_with_clock_ahead_strict_fires_passed_wall_deadlines(start_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    timeouts = {"short": 3000, "hour": HOUR_MS, "long": 3 * HOUR_MS}
    last = _first_run(start_daemon, data, timeouts, "strict")
    clock = FakeClock(tmp_path, 7200)
    d = start_daemon(data_dir=data, sets=["state.restart_policy=strict"], env=clock.env())
    c = d.client()
    inact = wait_until(lambda: (lambda evs: evs if len(evs) >= 2 else None)(inactivity_events(d)), 5.0)
    assert inact and sorted(e["device"] for e in inact) == ["hour", "short"], inact
    for e in inact:
        assert e["ts"] == last[e["device"]] + timeouts[e["device"]], e  # the real deadline
        assert e["detectedAt"] > now_ms() + 2 * HOUR_MS - 60000, e     # on the stepped clock
    assert c.device("short").body["active"] is False
    assert c.device("hour").body["active"] is False
    assert c.device("long").body["active"] is True
    time.sleep(0.5)
    assert len(inactivity_events(d)) == 2


@pytest.mark.parametrize("policy", ["grace", "strict"])
@pytest.mark.bb_timeout(60)
def test_restart_with_clock_behind_raises_nothing_early_or_late(start_daemon, tmp_path, policy):
    data = tmp_path / "data"
    data.mkdir()
    last = _first_run(start_daemon, data, {"short": 3000, "hour": HOUR_MS}, policy)
    clock = FakeClock(tmp_path, -7200)  # the clock was stepped 2 h back
    t0 = time.monotonic()
    d = start_daemon(data_dir=data, sets=["state.restart_policy=%s" % policy], env=clock.env())
    c = d.client()
    assert activate(c, "probe", 600000) < now_ms() - 2 * HOUR_MS + 60000, "the daemon did not see the step"
    time.sleep(1.0)
    assert inactivity_events(d) == []
    assert c.device("short").body["active"] is True
    assert c.device("hour").body["active"] is True
    # Its last activity now lies in the daemon's future; the device still goes
    # inactive a timeout after the restart (real time), not two hours later.
    inact = wait_until(lambda: inactivity_events(d), 8.0)
    assert [e["device"] for e in inact] == ["short"], inact
    assert time.monotonic() - t0 >= 2.99
    assert inact[0]["ts"] == last["short"] + 3000
    assert c.device("hour").body["active"] is True
