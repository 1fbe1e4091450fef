"""
lastseen-sim against the real daemon (over HTTP and UDP, and for MQTT a
real mosquitto broker): its devices appear with the timeout it sets, the
silent ones go inactive and stay so, the flapping ones go inactive and come
back, the rate limit holds, and its errors are clear.

The simulator is $LASTSEEN_SIM, or lastseen-sim next to $LASTSEEN_BIN.
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import LASTSEEN_BIN, events_of, wait_until


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

SIM_BIN = os.environ.get("LASTSEEN_SIM", os.path.join(os.path.dirname(LASTSEEN_BIN), "lastseen-sim"))
STATUS_RE = re.compile(r"sent (\d+) \(\d+/s\) accepted (\d+) rejected (\d+) failed (\d+)")


def sim(*args, timeout=30):
    return subprocess.run([SIM_BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def start_sim(*args):
    return subprocess.Popen([SIM_BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def last_status(out):
    """(sent, accepted, rejected, failed) of the last status line."""
    m = STATUS_RE.findall(out)
    assert m, "no status line in:\n" + out
    return tuple(int(x) for x in m[-1])


def devices_with(client, prefix):
    devs, after = [], None
    while True:
        r = client.get("/api/v1/devices?limit=1000&q=" + prefix + ("&after=" + after if after else ""))
        assert r.status == 200, r
        devs += [d for d in r.body["devices"] if d["id"].startswith(prefix)]
        after = r.body["next"]
        if after is None:
            return devs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _sim_present():
    if not os.access(SIM_BIN, os.X_OK):
        pytest.fail("lastseen-sim not found: %s (set LASTSEEN_SIM)" % SIM_BIN)


@pytest.mark.bb_timeout(60)
def test_fleet_reports_and_silent_devices_go_inactive(daemon):
    c = daemon.client()
    url = "http://%s:%d" % (daemon.host, daemon.port)
    # A timeout of 10 intervals: a loaded machine must not make a steady device miss it.
    p = start_sim("--devices", "60", "--interval", "300ms", "--silent", "10%", "--flap", "0", "--timeout", "3s",
                  "--url", url, "--prefix", "simt-", "--duration", "12s", "--status", "1s", "--seed", "7")
    try:
        # All 60 appear with the timeout the simulator set on them...
        def configured():
            devs = devices_with(c, "simt-")
            ok = [d for d in devs if d["inactivityTimeout"] == 3000 and d["inactivityTimeoutSource"] == "device"]
            return devs if len(devs) == 60 and len(ok) == 60 else None

        devs = wait_until(configured, 6, interval=0.1)
        assert devs, devices_with(c, "simt-")
        # ...and the 6 silent ones (10%) go inactive 3 s after their only report.
        def six_inactive():
            devs = devices_with(c, "simt-")
            return devs if sum(not d["active"] for d in devs) == 6 else None

        devs = wait_until(six_inactive, 8, interval=0.1)
        assert devs, "expected 6 inactive: %r" % [(d["id"], d["active"]) for d in devices_with(c, "simt-")]
        silent = sorted(d["id"] for d in devs if not d["active"])
        # They stay silent; the others keep reporting and stay active.
        time.sleep(2)
        devs = devices_with(c, "simt-")
        assert sorted(d["id"] for d in devs if not d["active"]) == silent
        inact = events_of(daemon.data_dir, type_="INACTIVITY_EVENT")
        assert sorted(e["device"] for e in inact) == silent
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert "60 devices (simt-00 .. simt-59)" in out
    assert "6 go silent after one report" in out
    sent, accepted, rejected, failed = last_status(out)
    # 54 devices every 300 ms +-20% for 12 s, plus 6 single reports: some 2200.
    assert 1200 <= sent <= 3000, out
    assert accepted == sent and rejected == 0 and failed == 0, out
    assert "silent 6/6 stopped" in out
    assert c.stats()["activities"] == accepted


@pytest.mark.bb_timeout(60)
def test_flapping_devices_go_inactive_and_come_back(daemon):
    url = "http://%s:%d" % (daemon.host, daemon.port)
    p = start_sim("--devices", "20", "--interval", "200ms", "--jitter", "0", "--silent", "0", "--flap", "50%",
                  "--timeout", "1s", "--url", url, "--prefix", "flap-", "--duration", "12s", "--seed", "3")
    try:
        # Reporting 0.4-1.2 s, then silent 1.5-2.5 s: within a few seconds every
        # flapper has gone inactive and most have come back.
        def flapped():
            evs = events_of(daemon.data_dir)
            went = {e["device"] for e in evs if e["type"] == "INACTIVITY_EVENT"}
            back = {e["device"] for e in evs
                    if e["type"] == "ACTIVITY_EVENT" and e["state"]["inactivityAlarmTime"] > 0}
            return (went, back) if len(went) >= 10 and len(back) >= 5 else None

        got = wait_until(flapped, 10, interval=0.1)
        assert got, events_of(daemon.data_dir, type_="INACTIVITY_EVENT")
        went, back = got
        # Only the flappers (the simulator is still running: the others report).
        assert len(went) == 10, went
        assert back <= went
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert "10 flap" in out


@pytest.mark.bb_timeout(60)
def test_rate_limit(daemon):
    url = "http://%s:%d" % (daemon.host, daemon.port)
    r = sim("--devices", "2000", "--interval", "1s", "--silent", "0", "--flap", "0", "--timeout", "0",
            "--rate", "200/s", "--url", url, "--prefix", "rate-", "--duration", "3s")
    assert r.returncode == 0, r
    sent, accepted, _, failed = last_status(r.stdout)
    # 2000 due every second, 200 a second allowed (plus a 0.2 s burst).
    assert 300 <= sent <= 200 * 3 + 40 + 1, r.stdout
    assert accepted == sent and failed == 0
    assert "at most 200 reports/s" in r.stdout
    # Behind schedule, and it says so.
    lags = [int(x) for x in re.findall(r"lag (\d+) ms", r.stdout)]
    assert max(lags) > 500, r.stdout
    # --timeout 0: the daemon's default timeout is left alone.
    c = daemon.client()
    d = c.device(devices_with(c, "rate-")[0]["id"]).body
    assert d["inactivityTimeoutSource"] == "default"


@pytest.mark.bb_timeout(60)
def test_udp_heartbeats(start_daemon):
    d = start_daemon(sets=["udp.listen=127.0.0.1:0"])
    m = re.search(r"receiving heartbeats on ([0-9.]+):(\d+)", d.stderr_text())
    assert m, d.stderr_text()
    c = d.client()
    p = start_sim("--protocol", "udp", "--url", "udp://%s:%s" % m.groups(), "--api",
                  "http://%s:%d" % (d.host, d.port), "--devices", "40", "--interval", "300ms", "--silent", "10%",
                  "--flap", "0", "--timeout", "3s", "--prefix", "udp-", "--duration", "10s", "--seed", "5")
    try:
        # The heartbeats create the devices; the API gives them their timeout;
        # the 4 silent ones go inactive.
        def settled():
            devs = devices_with(c, "udp-")
            own = [x for x in devs if x["inactivityTimeoutSource"] == "device" and x["inactivityTimeout"] == 3000]
            quiet = [x for x in devs if not x["active"]]
            return devs if len(devs) == 40 and len(own) == 40 and len(quiet) == 4 else None

        assert wait_until(settled, 10, interval=0.1), devices_with(c, "udp-")
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    sent, accepted, rejected, failed = last_status(out)
    assert sent > 300 and accepted == sent and rejected == 0 and failed == 0, out
    # Every datagram the kernel took on loopback reached the daemon.
    udp = wait_until(lambda: (lambda u: u if u["activities"] == accepted else None)(c.stats()["udp"]), 3)
    assert udp, (c.stats()["udp"], accepted)
    assert sum(udp["rejected"].values()) == 0


def test_unreachable_daemon_is_a_clear_error():
    port = free_port()
    r = sim("--devices", "5", "--interval", "100ms", "--url", "http://127.0.0.1:%d" % port, "--duration", "1s",
            "--status", "500ms")
    assert r.returncode == 1, r
    assert "Couldn't connect to server" in r.stdout, r.stdout
    sent, accepted, _, failed = last_status(r.stdout)
    assert sent > 0 and accepted == 0 and failed == sent


@pytest.mark.parametrize(
    "args,message",
    [
        (["--protocol", "udp", "--url", "udp://no-port"], "expected udp://HOST:PORT"),
        (["--protocol", "udp", "--prefix", "a b"], "cannot contain a space"),
        (["--protocol", "carrier-pigeon"], "expected http, mqtt or udp"),
        (["--devices", "0"], "--devices 0"),
        (["--devices", "ten"], "--devices ten"),
        (["--interval", "5ms"], "at least 10ms"),
        (["--interval", "5 parsecs"], "--interval"),
        (["--jitter", "95%"], "--jitter"),
        (["--silent", "60%", "--flap", "50%"], "more than 100%"),
        (["--silent", "101%"], "--silent"),
        (["--rate", "fast"], "--rate"),
        (["--url", "ftp://x"], "expected http://"),
        (["--prefix", "a\x01b"], "control"),
        (["stray"], "unexpected argument"),
    ],
)
def test_bad_arguments(args, message):
    r = sim(*args)
    assert r.returncode == 2, r
    assert message in r.stderr, r.stderr


def test_help():
    r = sim("--help")
    assert r.returncode == 0
    for opt in ("--devices", "--interval", "--jitter", "--silent", "--flap", "--protocol", "--url", "--prefix",
                "--rate", "--duration", "--timeout"):
        assert opt in r.stdout


@pytest.mark.bb_timeout(40)
def test_mqtt_publishes_to_a_real_broker(tmp_path):
    broker = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    sub_bin = shutil.which("mosquitto_sub")
    probe = sim("--protocol", "mqtt", "--url", "mqtt://127.0.0.1:1", "--duration", "0.1s", "--timeout", "0")
    if "not built" in probe.stderr:
        pytest.skip("lastseen-sim was built without libmosquitto")
    assert broker and sub_bin, "mosquitto and mosquitto_sub are needed (Debian: mosquitto, mosquitto-clients)"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    b = subprocess.Popen([broker, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sub = None
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_until(up, 5, interval=0.05), "mosquitto did not start"
        sub = subprocess.Popen([sub_bin, "-h", "127.0.0.1", "-p", str(port), "-t", "devices/+/telemetry", "-v",
                                "-C", "40", "-W", "15"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the subscription is in place
        r = sim("--protocol", "mqtt", "--url", "mqtt://127.0.0.1:%d" % port, "--devices", "10", "--interval",
                "200ms", "--silent", "0", "--flap", "0", "--timeout", "0", "--prefix", "mq-", "--duration", "3s")
        assert r.returncode == 0, r
        sent, accepted, _, failed = last_status(r.stdout)
        assert sent >= 40 and accepted == sent and failed == 0, r.stdout
        out, _ = sub.communicate(timeout=15)
        lines = out.splitlines()
        assert len(lines) == 40, out
        for line in lines:
            m = re.fullmatch(r'devices/(mq-\d)/telemetry \{"ts":(\d+)\}', line)
            assert m, line
            assert abs(int(m.group(2)) - time.time() * 1000) < 60000
    finally:
        for proc in (sub, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
