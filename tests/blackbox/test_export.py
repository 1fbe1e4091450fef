"""`lastseen export` and `lastseen import`, and the data directory lock.

Export is checked line by line against the API's own GET of each device
(byte for byte, the whole object) while the daemon runs and after it
stopped, for devices with every timeout source and in every state; import
is checked by exporting again and by starting a daemon on the imported
directory, whose GET must equal the original's (alarms are not exported:
c8y_ActiveAlarmsStatus is {} there, as docs/api.md says).  Bad input files
must be refused whole, naming FILE:LINE.  The lock: no import and no second
daemon on a directory a daemon uses; a killed daemon leaves nothing that
blocks the next one.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import TIMEOUT_SOURCES, LASTSEEN_BIN, dev_path, now_ms, wait_events, wait_until

RUN_TIMEOUT = 20
DEFAULT = "state.default_inactivity_timeout=120s"


def run(args, stdin_bytes=None, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LASTSEEN_")}
    full_env.update(env or {})
    return subprocess.run([LASTSEEN_BIN] + list(args), input=stdin_bytes if stdin_bytes is not None else b"",
                          capture_output=True, env=full_env, timeout=RUN_TIMEOUT)


def export(data_dir, *extra):
    p = run(["export", "--data-dir", str(data_dir)] + list(extra))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout == b"" or p.stdout.endswith(b"\n"), p.stdout[-200:]
    return p.stdout


def import_(path, data_dir, *extra, stdin_bytes=None):
    return run(["import", str(path), "--data-dir", str(data_dir)] + list(extra), stdin_bytes=stdin_bytes)


def lines_of(raw):
    return raw.decode().splitlines()


def get_raw(client, device_id):
    """The device as GET returns it, byte for byte."""
    r = client.device(device_id)
    assert r.status == 200, (device_id, r)
    return r.raw.decode()


ALARMS_RE = re.compile(r'"c8y_ActiveAlarmsStatus":\{[^}]*\}')


def without_alarms(raw):
    """A device's JSON (or export lines) as it reads after an import: alarms
    are not exported, so c8y_ActiveAlarmsStatus is {}."""
    return ALARMS_RE.sub('"c8y_ActiveAlarmsStatus":{}', raw)


def make_fleet(d):
    """Devices in every state the API can produce; returns their ids."""
    c = d.client()
    ids = []

    def put(i, body, expect=(200, 201)):
        r = c.put(dev_path(i), json_body=body)
        assert r.status in expect, (i, r)
        ids.append(i)

    put("own-timeout", {"inactivityTimeout": 90000, "type": "pump"})
    assert c.activity("own-timeout").status == 202
    put("typed-only", {"type": "meter"})  # never active, default timeout
    put("goes-inactive", {"inactivityTimeout": 200, "type": "fast"})
    assert c.activity("goes-inactive").status == 202
    for _ in range(2):
        assert c.post(dev_path("two-sessions", "/connect")).status == 202
    ids.append("two-sessions")
    assert c.post(dev_path("closed-session", "/connect")).status == 202
    assert c.post(dev_path("closed-session", "/disconnect")).status == 202
    ids.append("closed-session")
    assert c.activity("with-ts", ts=now_ms() - 1500).status == 202
    ids.append("with-ts")
    odd = 'méter "7"/\\x'
    put(odd, {"inactivityTimeout": 300000})
    assert c.activity(odd).status == 202
    put("deleted", {"type": "gone"})
    assert c.delete(dev_path("deleted")).status == 204
    ids.remove("deleted")
    bulk = ["bulk-%03d" % i for i in range(150)]
    r = c.post("/api/v1/activity", json_body=bulk)
    assert r.status in (200, 202), r
    ids += bulk
    # The short-timeout device goes inactive (INACTIVITY_EVENT on disk).
    assert wait_events(d.data_dir, device="goes-inactive", type_="INACTIVITY_EVENT", timeout=5.0)
    # Last, a plain activity of an active device: it reaches the store only
    # with the next flush (store.flush_interval).
    time.sleep(0.01)
    assert c.activity("own-timeout").status == 202
    return ids


def export_matches_api(data_dir, client, ids, *extra):
    """Export (while the daemon runs) equals the GET of every device, in id byte order."""
    out = export(data_dir, *extra)
    want = [get_raw(client, i) for i in sorted(ids, key=lambda s: s.encode())]
    return out if lines_of(out) == want else None


@pytest.mark.bb_timeout(90)
def test_export_equals_api_and_import_round_trips(start_daemon, tmp_path):
    d = start_daemon(sets=[DEFAULT])
    ids = make_fleet(d)
    c = d.client()
    # lastActivityTime of plain activity reaches the store within store.flush_interval (1 s).
    out = wait_until(lambda: export_matches_api(d.data_dir, c, ids, "--set", DEFAULT), 5.0, interval=0.2)
    if not out:
        got = lines_of(export(d.data_dir, "--set", DEFAULT))
        want = [get_raw(c, i) for i in sorted(ids, key=lambda s: s.encode())]
        assert got == want
    lines = lines_of(out)
    assert len(lines) == len(ids) == c.stats()["devices"]
    by_id = {json.loads(x)["id"]: json.loads(x) for x in lines}
    assert by_id["own-timeout"]["inactivityTimeoutSource"] == "device"
    assert by_id["typed-only"]["inactivityTimeout"] == 120000
    assert by_id["goes-inactive"]["active"] is False and by_id["goes-inactive"]["inactivityAlarmTime"] > 0
    assert by_id["two-sessions"]["sessions"] == 2
    assert by_id["closed-session"]["lastDisconnectTime"] > 0
    # Without the daemon's setting, export reports its own configuration's default.
    other = {json.loads(x)["id"]: json.loads(x) for x in lines_of(export(d.data_dir))}
    assert other["typed-only"]["inactivityTimeout"] == 600000
    assert other["own-timeout"]["inactivityTimeout"] == 90000

    # The daemon is unaffected by a reader: it keeps writing, and export sees it.
    assert c.put(dev_path("after-export"), json_body={"type": "late"}).status == 201
    assert any(json.loads(x)["id"] == "after-export" for x in lines_of(export(d.data_dir)))
    assert c.delete(dev_path("after-export")).status == 204
    gets = {i: get_raw(c, i) for i in ids}
    d.stop_and_check()

    # Import into a fresh directory: the same export, byte for byte, but for
    # the alarms, which are not exported (the device that went inactive has one).
    assert by_id["goes-inactive"]["c8y_ActiveAlarmsStatus"] == {"major": 1}
    assert without_alarms(out.decode()) != out.decode()
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(out)
    fresh = tmp_path / "fresh" / "nested"
    p = import_(dump, fresh)
    assert p.returncode == 0, p.stderr
    assert ("imported %d devices" % len(ids)).encode() in p.stderr
    assert export(fresh, "--set", DEFAULT).decode() == without_alarms(out.decode())

    # A daemon started there serves the same devices.
    d2 = start_daemon(sets=[DEFAULT], data_dir=fresh)
    c2 = d2.client()
    for i in ids:
        assert get_raw(c2, i) == without_alarms(gets[i]), i
    assert c2.stats()["devices"] == len(ids)
    d2.stop_and_check()


# The configuration the daemon and export both run with: not the defaults,
# so that export visibly resolves with what it is given.
SOURCES_SETS = ["state.default_inactivity_timeout=150s", "availability.grace=60s"]
TYPES = {
    "typed": {"inactivityTimeout": 120000},
    "typed-ri": {"responseInterval": 2},
    "quiet": {"monitored": False},
    "watched": {"monitored": True},
    "maint": {"responseInterval": 0},
    "fastcrit": {"inactivityTimeout": 300, "alarmSeverity": "CRITICAL"},
}


def make_sources_fleet(c):
    """Devices with every timeout source, class and state; returns the ids
    that go inactive (with an alarm) and all ids."""
    for name, body in TYPES.items():
        assert c.put("/api/v1/device-types/" + name, json_body=body).status == 201, name
    settings = {
        "own": {"inactivityTimeout": 300000},
        "by-type": {"type": "typed"},
        "by-type-ri": {"type": "typed-ri"},
        "by-c8y": {"c8y_RequiredAvailability": {"responseInterval": 5}},
        "by-default": {},
        "own-over-c8y": {"inactivityTimeout": 250000, "c8y_RequiredAvailability": {"responseInterval": 9}},
        "c8y-over-type": {"type": "typed", "c8y_RequiredAvailability": {"responseInterval": 3}},
        "unmonitored": {"type": "quiet"},
        "watched": {"type": "watched"},
        "maint-own": {"c8y_RequiredAvailability": {"responseInterval": 0}},
        "maint-type": {"type": "maint"},
        "never-seen": {"type": "typed"},
        "session-open": {"type": "typed"},
        "session-closed": {},
        "gone-inactive": {"inactivityTimeout": 300},
        "critical": {"type": "fastcrit"},
        "acknowledged": {"inactivityTimeout": 300},
        "came-back": {"inactivityTimeout": 300},
    }
    for i, body in settings.items():
        assert c.put(dev_path(i), json_body=body).status == 201, i
    for i in settings:
        if i not in ("never-seen", "session-open", "session-closed", "maint-type"):
            assert c.activity(i).status == 202, i
    assert c.post(dev_path("session-open", "/connect")).status == 202
    assert c.post(dev_path("session-closed", "/connect")).status == 202
    assert c.post(dev_path("session-closed", "/disconnect")).status == 202
    inactive = ["gone-inactive", "critical", "acknowledged", "came-back"]
    return inactive, sorted(settings)


@pytest.mark.bb_timeout(90)
@pytest.mark.parametrize("monitor_by_default", ["true", "false"])
def test_export_equals_get_for_every_source_and_state(start_daemon, tmp_path, monitor_by_default):
    sets = SOURCES_SETS + ["state.monitor_by_default=" + monitor_by_default]
    extra = [a for s_ in sets for a in ("--set", s_)]
    d = start_daemon(sets=sets)
    c = d.client()
    inactive, ids = make_sources_fleet(c)
    for i in inactive:
        assert wait_events(d.data_dir, device=i, type_="ALARM_RAISED", timeout=5.0), i
    alarm = wait_events(d.data_dir, device="acknowledged", type_="ALARM_RAISED")[0]["alarm"]
    assert c.put("/api/v1/alarms/" + alarm["id"], json_body={"status": "ACKNOWLEDGED"}).status == 200
    assert c.activity("came-back").status == 202  # clears its alarm
    assert wait_events(d.data_dir, device="came-back", type_="ALARM_CLEARED")

    gets = {i: get_raw(c, i) for i in ids}
    g = {i: json.loads(raw) for i, raw in gets.items()}
    # The fleet covers what it is meant to: every source, class and state.
    assert {x["inactivityTimeoutSource"] for x in g.values()} == set(TIMEOUT_SOURCES)
    assert g["own"]["inactivityTimeoutSource"] == "device" and g["own"]["inactivityTimeout"] == 300000
    assert g["by-type"]["inactivityTimeoutSource"] == "type" and g["by-type"]["inactivityTimeout"] == 120000
    assert g["by-type-ri"]["inactivityTimeout"] == 2 * 60000 + 60000
    assert g["by-c8y"]["inactivityTimeoutSource"] == "c8y_RequiredAvailability"
    assert g["by-c8y"]["inactivityTimeout"] == 5 * 60000 + 60000
    assert g["own-over-c8y"]["inactivityTimeoutSource"] == "device"
    assert g["c8y-over-type"]["inactivityTimeout"] == 3 * 60000 + 60000
    assert g["watched"]["inactivityTimeout"] == 150000
    if monitor_by_default == "true":
        assert g["by-default"]["inactivityTimeout"] == 150000
        assert g["by-default"]["c8y_Availability"]["status"] == "AVAILABLE"
    else:
        assert g["by-default"]["inactivityTimeout"] is None
        assert "c8y_Availability" not in g["by-default"]
    assert g["unmonitored"]["inactivityTimeout"] is None and "c8y_Connection" not in g["unmonitored"]
    for i in ("maint-own", "maint-type"):
        assert g[i]["inactivityTimeout"] is None and g[i]["c8y_Availability"]["status"] == "MAINTENANCE", i
    assert g["never-seen"]["active"] is False and g["never-seen"]["lastActivityTime"] == 0
    assert "lastMessage" not in g["never-seen"]["c8y_Availability"]
    assert g["session-open"]["sessions"] == 1 and g["session-open"]["c8y_Connection"]["status"] == "CONNECTED"
    assert g["session-closed"]["lastDisconnectTime"] > 0
    assert g["gone-inactive"]["active"] is False and g["gone-inactive"]["inactivityAlarmTime"] > 0
    assert g["gone-inactive"]["c8y_ActiveAlarmsStatus"] == {"major": 1}
    assert g["critical"]["c8y_ActiveAlarmsStatus"] == {"critical": 1}
    assert g["acknowledged"]["c8y_ActiveAlarmsStatus"] == {"major": 1}
    assert g["came-back"]["active"] is True and g["came-back"]["c8y_ActiveAlarmsStatus"] == {}

    # Next to the running daemon, export catches up within store.flush_interval.
    want = [gets[i] for i in sorted(ids, key=lambda x: x.encode())]
    assert wait_until(lambda: lines_of(export(d.data_dir, *extra)) == want, 5.0, interval=0.2), (
        lines_of(export(d.data_dir, *extra)), want)
    d.stop_and_check()

    # Stopped: each line is the device's GET, the whole object, field by field.
    out = export(d.data_dir, *extra)
    lines = lines_of(out)
    assert [json.loads(x)["id"] for x in lines] == sorted(ids, key=lambda x: x.encode())
    for x in lines:
        got = json.loads(x)
        assert got == g[got["id"]], got["id"]
        assert x == gets[got["id"]]  # and byte for byte

    # Round trip: the types into a fresh directory first (a daemon on it), then
    # the devices by import; a daemon there serves the same GET but for the
    # alarms, which are not exported.
    fresh = tmp_path / "fresh"
    d2 = start_daemon(sets=sets, data_dir=fresh)
    for name, body in TYPES.items():
        assert d2.client().put("/api/v1/device-types/" + name, json_body=body).status == 201
    d2.stop_and_check()
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(out)
    p = import_(dump, fresh)
    assert p.returncode == 0, p.stderr
    assert export(fresh, *extra).decode() == without_alarms(out.decode())
    d3 = start_daemon(sets=sets, data_dir=fresh)
    c3 = d3.client()
    for i in ids:
        again = json.loads(get_raw(c3, i))
        want = dict(g[i], c8y_ActiveAlarmsStatus={})
        assert again == want, i
    d3.stop_and_check()


def test_import_upserts_and_accepts_minimal_lines(tmp_path):
    data = tmp_path / "data"
    first = (
        b'{"id":"keep","type":"t1","inactivityTimeout":5000,"inactivityTimeoutSource":"device"}\n'
        b'{"id":"replace","sessions":3}\n'
    )
    p = import_("-", data, stdin_bytes=first)
    assert p.returncode == 0, p.stderr
    assert b"imported 2 devices" in p.stderr
    second = (
        b"\n"
        b'   \r\n'
        # unknown fields are ignored; "default" source drops the timeout; CRLF is fine
        b'{"id":"replace","type":"t2","active":true,"lastActivityTime":1700000000000,'
        b'"inactivityTimeout":7000,"inactivityTimeoutSource":"default","extra":{"x":[1,2]}}\r\n'
        b'{"id":"new","inactivityTimeout":null}'  # no final newline
    )
    f = tmp_path / "second.jsonl"
    f.write_bytes(second)
    p = import_(f, data)
    assert p.returncode == 0, p.stderr
    assert b"imported 2 devices" in p.stderr
    got = {json.loads(x)["id"]: json.loads(x) for x in lines_of(export(data))}
    assert sorted(got) == ["keep", "new", "replace"]
    assert got["keep"]["type"] == "t1" and got["keep"]["inactivityTimeout"] == 5000
    assert got["keep"]["inactivityTimeoutSource"] == "device"
    r = got["replace"]
    assert r["type"] == "t2" and r["active"] is True and r["lastActivityTime"] == 1700000000000
    assert r["sessions"] == 0 and r["inactivityTimeoutSource"] == "default" and r["inactivityTimeout"] == 600000
    n = got["new"]
    assert n["type"] == "default" and n["active"] is False and n["lastActivityTime"] == 0
    assert n["inactivityTimeoutSource"] == "default"


BAD_LINES = [
    ("not json at all", "malformed JSON"),
    ('{"id": "a', "malformed JSON"),
    ('{"id": "ctl\\u0001char"}', "invalid id: control character"),
    ('{"id": "nul\\u0000"}', "invalid id: control character"),
    ('{"id": ""}', "invalid id: empty"),
    ('{"id": "%s"}' % ("x" * 257), "invalid id"),
    ('{"id": 7}', "id must be a string"),
    ('{"type": "no-id"}', "no id"),
    ('{"id": "t", "inactivityTimeout": 0, "inactivityTimeoutSource": "device"}', "inactivityTimeout must be"),
    ('{"id": "t", "inactivityTimeout": 315360000001, "inactivityTimeoutSource": "device"}',
     "inactivityTimeout must be"),
    ('{"id": "t", "inactivityTimeout": -5}', "inactivityTimeout must be"),
    ('{"id": "t", "inactivityTimeoutSource": "device"}', "no inactivityTimeout"),
    ('{"id": "t", "lastActivityTime": -1}', "lastActivityTime must be"),
    ('{"id": "t", "lastConnectTime": 1.5}', "lastConnectTime must be"),
    ('{"id": "t", "inactivityAlarmTime": 99999999999999999999}', "inactivityAlarmTime must be"),
    ('{"id": "t", "lastDisconnectTime": "0"}', "lastDisconnectTime must be"),
    ('{"id": "t", "sessions": -1}', "sessions must be"),
    ('{"id": "t", "sessions": 4294967296}', "sessions must be"),
    ('{"id": "t", "active": "yes"}', "active must be"),
    ('{"id": "t", "type": ""}', "type must be"),
    ('{"id": "t", "type": "%s"}' % ("y" * 65), "type must be"),
    ('{"id": "t", "id": "u"}', "malformed JSON"),
    ("[1, 2]", "not a JSON object"),
    ("42", "not a JSON object"),
    ('"a string"', "not a JSON object"),
    ("null", "not a JSON object"),
]


@pytest.mark.parametrize("line,reason", BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_import_refuses_a_bad_line(tmp_path, line, reason):
    data = tmp_path / "data"
    f = tmp_path / "in.jsonl"
    good = '{"id":"good-%d","type":"ok"}\n'
    f.write_text(good % 1 + "\n" + good % 2 + line + "\n" + good % 3)
    p = import_(f, data)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, err
    assert "%s:4: " % f in err and reason in err, err
    assert "nothing imported" in err
    # Nothing was written: not even an empty store.
    e = run(["export", "--data-dir", str(data)])
    assert e.returncode == 1 and e.stdout == b"", e


def test_import_bad_file_leaves_existing_store_untouched(tmp_path):
    data = tmp_path / "data"
    p = import_("-", data, stdin_bytes=b'{"id":"old","type":"a"}\n')
    assert p.returncode == 0, p.stderr
    before = export(data)
    lines = ['{"id":"new-%d"}' % i for i in range(30000)]  # more than one write batch
    lines[5] = '{"id":"bad","sessions":-3}'
    lines[29998] = "{oops"
    p = import_("-", data, stdin_bytes=("\n".join(lines) + "\n").encode())
    err = p.stderr.decode()
    assert p.returncode == 1
    assert "<stdin>:6: sessions must be" in err and "<stdin>:29999: malformed JSON" in err, err
    assert "2 bad lines" in err
    assert export(data) == before


def test_import_reports_many_bad_lines_briefly(tmp_path):
    data = tmp_path / "data"
    p = import_("-", data, stdin_bytes=b"x\n" * 100)
    err = p.stderr.decode()
    assert p.returncode == 1
    assert err.count("<stdin>:") == 20 + 1  # 20 lines shown, then one summary
    assert "and 80 more bad lines" in err and "100 bad lines" in err


def test_import_refused_while_daemon_runs(start_daemon, tmp_path):
    d = start_daemon()
    f = tmp_path / "one.jsonl"
    f.write_text('{"id":"sneaky","type":"x"}\n')
    p = import_(f, d.data_dir)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "stop the daemon first or use the HTTP API" in err, err
    assert "pid %d" % d.proc.pid in err, err
    assert "nothing imported" in err
    c = d.client()
    assert c.device("sneaky").status == 404
    d.stop_and_check()
    assert b"sneaky" not in export(d.data_dir)
    # Stopped: now it is allowed.
    p = import_(f, d.data_dir)
    assert p.returncode == 0, p.stderr
    assert b"sneaky" in export(d.data_dir)


def test_second_daemon_on_same_data_dir_refused(start_daemon, tmp_path):
    d = start_daemon()
    c = d.client()
    assert c.put(dev_path("held"), json_body={"type": "a"}).status == 201
    p = run(["--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=%s" % d.data_dir])
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "in use by another lastseen process" in err and "pid %d" % d.proc.pid in err, err
    assert "refusing to start a second daemon" in err
    assert "listening on" not in err
    # The first one is unharmed.
    assert c.device("held").status == 200
    assert c.get("/healthz").status == 200
    # kill -9 leaves the lock file behind, but the lock dies with the process.
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=5)
    d.stopped = True
    assert os.path.exists(os.path.join(d.data_dir, "lastseen.lock"))
    d2 = start_daemon(data_dir=d.data_dir)
    assert d2.client().device("held").status == 200


def test_export_missing_store(tmp_path):
    missing = tmp_path / "nothing-here"
    p = run(["export", "--data-dir", str(missing)])
    err = p.stderr.decode()
    assert p.returncode == 1 and p.stdout == b""
    assert "no store in %s" % (missing / "store") in err, err
    assert not missing.exists(), "export created the data directory"
    missing.mkdir()
    p = run(["export", "--data-dir", str(missing)])
    assert p.returncode == 1 and b"no store" in p.stderr
    assert os.listdir(str(missing)) == [], "export created files"


def test_export_damaged_store(tmp_path):
    data = tmp_path / "data"
    (data / "store").mkdir(parents=True)
    (data / "store" / "data.mdb").write_bytes(b"\x00garbage" * 2000)
    p = run(["export", "--data-dir", str(data)])
    assert p.returncode == 1 and p.stdout == b""
    assert b"cannot open the store" in p.stderr and b"damaged" in p.stderr, p.stderr


def test_data_dir_from_configuration_layers(tmp_path):
    data = tmp_path / "from-env"
    p = run(["import", "-"], stdin_bytes=b'{"id":"env"}\n', env={"LASTSEEN_STORE_DATA_DIR": str(data)})
    assert p.returncode == 0, p.stderr
    ini = tmp_path / "l.ini"
    ini.write_text("[store]\ndata_dir = %s\n" % data)
    p = run(["export", "-c", str(ini)])
    assert p.returncode == 0 and b'"id":"env"' in p.stdout, p
    p = run(["export", "--set", "store.data_dir=%s" % data])
    assert p.returncode == 0 and b'"id":"env"' in p.stdout, p
    # --data-dir beats every layer.
    p = run(["export", "-c", str(ini), "--data-dir", str(tmp_path / "other")])
    assert p.returncode == 1 and b"no store" in p.stderr


def test_command_line_usage(tmp_path):
    p = run(["--help"])
    assert p.returncode == 0 and b"lastseen export" in p.stdout and b"lastseen import" in p.stdout
    for cmd in ("export", "import"):
        p = run([cmd, "--help"])
        assert p.returncode == 0 and b"--data-dir" in p.stdout, p
    p = run(["import", "--data-dir", str(tmp_path)])
    assert p.returncode == 2 and b"which file" in p.stderr
    p = run(["export", "--bogus"])
    assert p.returncode == 2 and b"--bogus" in p.stderr
    p = run(["export", "--data-dir"])
    assert p.returncode == 2 and b"needs a value" in p.stderr
    p = run(["import", "a", "b", "--data-dir", str(tmp_path)])
    assert p.returncode == 2
    p = run(["export", "--set", "nosuch.key=1", "--data-dir", str(tmp_path)])
    assert p.returncode == 2 and b"nosuch.key" in p.stderr
    p = run(["import", str(tmp_path / "absent.jsonl"), "--data-dir", str(tmp_path / "d")])
    assert p.returncode == 1 and b"cannot open" in p.stderr
    assert not (tmp_path / "d").exists()


def test_required_availability_round_trips(start_daemon, tmp_path):
    """A device's own c8y_RequiredAvailability is stored configuration: export
    carries it and import restores it."""
    d = start_daemon()
    c = d.client()
    body = {"c8y_RequiredAvailability": {"responseInterval": 5}}
    assert c.put(dev_path("boiler"), json_body=body).status == 201
    assert c.put(dev_path("plain"), json_body={"inactivityTimeout": 60000}).status == 201
    d.stop_and_check()
    out = export(d.data_dir)
    rows = {json.loads(l)["id"]: json.loads(l) for l in lines_of(out)}
    assert rows["boiler"]["c8y_RequiredAvailability"] == {"responseInterval": 5}
    assert "c8y_RequiredAvailability" not in rows["plain"]
    f = tmp_path / "devs.jsonl"
    f.write_bytes(out)
    other = tmp_path / "other"
    r = import_(str(f), other)
    assert r.returncode == 0, r.stderr
    assert export(other) == out
    d2 = start_daemon(data_dir=other)
    got = d2.client().device("boiler").body
    assert got["c8y_RequiredAvailability"] == {"responseInterval": 5}
    # Values are clamped on import as on the API; a bad shape is refused with its line.
    f.write_text('{"id": "x", "c8y_RequiredAvailability": {"responseInterval": 99999}}\n'
                 '{"id": "y", "c8y_RequiredAvailability": 5}\n')
    r = import_(str(f), tmp_path / "third")
    assert r.returncode == 1 and b":2: c8y_RequiredAvailability" in r.stderr
