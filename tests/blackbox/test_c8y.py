"""Cumulocity availability through the real binary: c8y_RequiredAvailability (clamping,
responseInterval + availability.grace), maintenance entering and leaving, the
c8y_Availability / c8y_Connection / c8y_ActiveAlarmsStatus fragments, the PUT {} ping,
state.monitor_by_default, session inactivity expiry, and what a restart keeps.

Long Cumulocity intervals (minutes) are exercised without waiting for them: an activity
carries its own time (`ts`) placed just before the deadline, so the device becomes
unavailable a few hundred milliseconds later.
"""
import datetime
import signal
import time

import pytest

from conftest import (
    assert_device_json,
    assert_error,
    dev_path,
    events_of,
    now_ms,
    read_events,
    wait_events,
    wait_until,
)

MINUTE = 60000


def iso(ms):
    """Wall ms as lastseen writes ISO-8601 times (UTC, milliseconds)."""
    t = datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def put_c8y(c, dev, ri):
    return c.put(dev_path(dev), json_body={"c8y_RequiredAvailability": {"responseInterval": ri}})


def alarms_of(c, dev):
    r = c.get("/api/v1/alarms?source=" + dev)
    assert r.status == 200, r
    return r.body["alarms"]


def test_response_interval_clamped(client):
    for given, stored in ((-32769, -32768), (32768, 32767), (-32768, -32768), (32767, 32767),
                          (10 ** 30, 32767), (-(10 ** 30), -32768), (5, 5), (0, 0)):
        r = put_c8y(client, "clamp", given)
        assert r.status in (200, 201), r
        assert r.body["c8y_RequiredAvailability"] == {"responseInterval": stored}, (given, r.body)
        assert_device_json(r.body)
    r = put_c8y(client, "clamp", 32767)
    assert r.body["inactivityTimeout"] == 32767 * MINUTE + 180000
    assert r.body["inactivityTimeoutSource"] == "c8y_RequiredAvailability"


@pytest.mark.parametrize("fragment", [
    {"responseInterval": 1.5}, {"responseInterval": "5"}, {"responseInterval": None}, {"responseInterval": True},
    {}, {"responseInterval": 5, "other": 1}, 5, "x", [],
])
def test_bad_required_availability(client, fragment):
    assert_error(client.put(dev_path("bad"), json_body={"c8y_RequiredAvailability": fragment}), 422, "invalid")
    assert client.device("bad").status == 404  # nothing was created


def test_fragment_removed_with_null(client):
    put_c8y(client, "rm", 3)
    r = client.put(dev_path("rm"), json_body={"c8y_RequiredAvailability": None})
    assert r.status == 200
    assert "c8y_RequiredAvailability" not in r.body
    assert r.body["inactivityTimeoutSource"] == "default" and r.body["inactivityTimeout"] == 600000


@pytest.mark.bb_timeout(30)
def test_c8y_only_device_as_cumulocity_documents(start_daemon):
    """responseInterval 1 minute + the default 180 s grace: unavailable 240 s after its last
    message, an unavailability alarm, and back to AVAILABLE with the next message."""
    d = start_daemon(sets=["state.monitor_by_default=false"])
    c = d.client()
    r = put_c8y(c, "cum", 1)
    assert r.status == 201
    assert r.body["inactivityTimeout"] == MINUTE + 180000
    assert r.body["c8y_Availability"] == {"status": "UNAVAILABLE"}  # never heard from
    assert r.body["c8y_Connection"] == {"status": "DISCONNECTED"}
    assert r.body["c8y_ActiveAlarmsStatus"] == {}

    ts = now_ms() - (MINUTE + 180000) + 1000  # one second before its deadline
    assert c.activity("cum", ts=ts).status == 202
    dev = c.device("cum").body
    assert dev["active"] is True
    assert dev["c8y_Availability"] == {"status": "AVAILABLE", "lastMessage": iso(ts)}

    raised = wait_events(d.data_dir, "cum", "ALARM_RAISED", timeout=5.0)
    assert len(raised) == 1, read_events(d.data_dir)
    inact = events_of(d.data_dir, "cum", "INACTIVITY_EVENT")
    assert len(inact) == 1 and inact[0]["ts"] == ts + MINUTE + 180000
    alarm = raised[0]["alarm"]
    assert alarm["type"] == "c8y_UnavailabilityAlarm"
    assert alarm["text"] == "No communication with device since " + iso(ts)
    assert alarm["status"] == "ACTIVE" and alarm["severity"] == "MAJOR"
    assert alarm["source"] == "cum" and alarm["count"] == 1
    assert alarm["time"] == alarm["firstOccurrenceTime"]
    dev = c.device("cum").body
    assert dev["c8y_Availability"]["status"] == "UNAVAILABLE"
    assert dev["c8y_ActiveAlarmsStatus"] == {"major": 1}

    # The next message makes it AVAILABLE and clears the alarm.
    assert c.activity("cum").status == 202
    dev = c.device("cum").body
    assert dev["c8y_Availability"]["status"] == "AVAILABLE"
    assert dev["c8y_ActiveAlarmsStatus"] == {}
    cleared = wait_events(d.data_dir, "cum", "ALARM_CLEARED")
    assert len(cleared) == 1 and cleared[0]["alarm"]["id"] == alarm["id"]


def test_grace_is_configurable(start_daemon):
    d = start_daemon(sets=["availability.grace=0s"])
    r = put_c8y(d.client(), "g", 2)
    assert r.body["inactivityTimeout"] == 2 * MINUTE


def test_monitor_by_default_false(start_daemon):
    d = start_daemon(sets=["state.monitor_by_default=false", "state.default_inactivity_timeout=100ms"])
    c = d.client()
    c.activity("plain")
    dev = c.device("plain").body
    assert_device_json(dev)
    assert dev["inactivityTimeout"] is None and dev["inactivityTimeoutSource"] == "default"
    assert "c8y_Availability" not in dev and "c8y_Connection" not in dev
    time.sleep(0.4)
    assert c.device("plain").body["active"] is True  # tracked, never times out
    assert events_of(d.data_dir, "plain", "INACTIVITY_EVENT") == []
    s = c.stats()
    assert s["unmonitored"] == 1 and sum(s["availability"].values()) == 0, s
    # Monitoring it: its deadline (100 ms after its activity) passed long ago.
    r = c.put(dev_path("plain"), json_body={"inactivityTimeout": 100})
    assert r.body["active"] is False and r.body["c8y_Availability"]["status"] == "UNAVAILABLE"
    assert len(wait_events(d.data_dir, "plain", "ALARM_RAISED")) == 1


@pytest.mark.bb_timeout(30)
def test_maintenance_enter_leave_and_dedup(start_daemon):
    """An unavailable device with an open alarm goes into maintenance and comes out of it still
    silent: the alarm is raised again, which counts a second occurrence of the open one."""
    d = start_daemon(sets=["availability.grace=0s"])
    c = d.client()
    put_c8y(c, "m", 1)
    ts = now_ms() - MINUTE + 500
    c.activity("m", ts=ts)
    raised = wait_events(d.data_dir, "m", "ALARM_RAISED", timeout=5.0)
    assert len(raised) == 1
    alarm_id = raised[0]["alarm"]["id"]

    r = put_c8y(c, "m", 0)  # maintenance
    assert r.body["inactivityTimeout"] is None
    assert r.body["c8y_Availability"]["status"] == "MAINTENANCE"
    assert r.body["c8y_Connection"] == {"status": "MAINTENANCE"}
    s = c.stats()
    assert s["availability"]["MAINTENANCE"] == 1 and s["connection"]["MAINTENANCE"] == 1, s
    r = put_c8y(c, "m", -5)  # any value <= 0
    assert r.body["c8y_Availability"]["status"] == "MAINTENANCE"

    r = put_c8y(c, "m", 1)  # leaves maintenance, still silent: UNAVAILABLE again
    assert r.body["c8y_Availability"]["status"] == "UNAVAILABLE"
    updated = wait_events(d.data_dir, "m", "ALARM_UPDATED")
    assert len(updated) == 1, read_events(d.data_dir)
    assert updated[0]["alarm"]["id"] == alarm_id and updated[0]["alarm"]["count"] == 2
    assert len(events_of(d.data_dir, "m", "ALARM_RAISED")) == 1  # no second alarm
    a = c.get("/api/v1/alarms/" + alarm_id).body
    assert a["count"] == 2 and a["status"] == "ACTIVE" and a["time"] > a["firstOccurrenceTime"]


def test_no_alarm_in_maintenance(start_daemon):
    d = start_daemon()
    c = d.client()
    # Its own 200 ms timeout still makes it inactive, but in maintenance no alarm is raised.
    c.put(dev_path("mt"), json_body={"inactivityTimeout": 200, "c8y_RequiredAvailability": {"responseInterval": 0}})
    c.activity("mt")
    assert len(wait_events(d.data_dir, "mt", "INACTIVITY_EVENT", timeout=3.0)) == 1
    time.sleep(0.1)
    assert events_of(d.data_dir, "mt", "ALARM_RAISED") == []
    dev = c.device("mt").body
    assert dev["active"] is False and dev["c8y_Availability"]["status"] == "MAINTENANCE"
    # Leaving maintenance while inactive: it is UNAVAILABLE, so now the alarm comes.
    put_c8y(c, "mt", 10)
    assert len(wait_events(d.data_dir, "mt", "ALARM_RAISED")) == 1


def test_connection_status(start_daemon):
    d = start_daemon()
    c = d.client()
    put_c8y(c, "conn", 5)
    c.post(dev_path("conn", "/connect"))
    dev = c.device("conn").body
    assert dev["c8y_Connection"] == {"status": "CONNECTED"}
    assert dev["c8y_Availability"]["status"] == "AVAILABLE"
    assert c.stats()["connection"]["CONNECTED"] == 1
    c.post(dev_path("conn", "/disconnect"))
    dev = c.device("conn").body
    assert dev["c8y_Connection"] == {"status": "DISCONNECTED"}
    assert dev["c8y_Availability"]["status"] == "AVAILABLE"  # heard within its interval
    c.post(dev_path("conn", "/connect"))
    put_c8y(c, "conn", 0)
    assert c.device("conn").body["c8y_Connection"] == {"status": "MAINTENANCE"}


def test_ping(start_daemon):
    d = start_daemon()
    c = d.client()
    # Creating with an empty PUT is not a message from the device: it starts inactive.
    r = c.put(dev_path("p"), json_body={})
    assert r.status == 201 and r.body["active"] is False and r.body["lastActivityTime"] == 0
    # On an existing device, {} and {"id": ...} are pings: an activity, nothing else.
    c.put(dev_path("p"), json_body={"inactivityTimeout": 300, "type": "pinged"})
    before = now_ms()
    r = c.put(dev_path("p"), json_body={})
    assert r.status == 200, r
    assert r.body["active"] is True and r.body["lastActivityTime"] >= before - 1  # clocks agree to 1 ms
    assert r.body["inactivityTimeout"] == 300 and r.body["type"] == "pinged"
    assert len(events_of(d.data_dir, "p", "ACTIVITY_EVENT")) == 1  # committed before the answer
    assert len(wait_events(d.data_dir, "p", "ALARM_RAISED", timeout=3.0)) == 1
    last = c.device("p").body["lastActivityTime"]
    time.sleep(0.01)
    r = c.put(dev_path("p"), json_body={"id": "p"})
    assert r.status == 200 and r.body["active"] is True and r.body["lastActivityTime"] > last
    assert c.device("p").body["c8y_ActiveAlarmsStatus"] == {}
    assert len(events_of(d.data_dir, "p", "ALARM_CLEARED")) == 1
    # A PUT that configures something is not a ping.
    last = c.device("p").body["lastActivityTime"]
    time.sleep(0.01)
    r = c.put(dev_path("p"), json_body={"id": "p", "inactivityTimeout": 60000})
    assert r.body["lastActivityTime"] == last


@pytest.mark.bb_timeout(30)
def test_session_inactivity_timeout(start_daemon):
    d = start_daemon(sets=["transport.session_inactivity_timeout=300ms"])
    c = d.client()
    t0 = now_ms()
    assert c.post(dev_path("s", "/connect")).body == {"sessions": 1}
    assert c.post(dev_path("s", "/connect")).body == {"sessions": 2}
    time.sleep(0.15)
    c.activity("s")  # keeps its sessions open
    evs = wait_events(d.data_dir, "s", "DISCONNECT_EVENT", timeout=3.0)
    assert len(evs) == 1
    dev = c.device("s").body
    assert dev["sessions"] == 0 and dev["active"] is True
    assert dev["lastDisconnectTime"] == evs[0]["ts"]
    assert evs[0]["ts"] - t0 >= 300 + 150 - 20, (evs[0], t0)  # counted from the last activity
    assert c.stats()["sessionsExpired"] == 1
    # Disconnect with nothing open is harmless.
    assert c.post(dev_path("s", "/disconnect")).body == {"sessions": 0}


def test_session_inactivity_timeout_disabled(start_daemon):
    d = start_daemon(sets=["transport.session_inactivity_timeout=0s", "state.default_inactivity_timeout=100ms"])
    c = d.client()
    c.post(dev_path("s", "/connect"))
    time.sleep(0.5)
    assert c.device("s").body["sessions"] == 1
    assert events_of(d.data_dir, "s", "DISCONNECT_EVENT") == []


@pytest.mark.bb_timeout(60)
def test_restart_keeps_c8y_types_and_alarms(start_daemon, tmp_path):
    data = tmp_path / "keep"
    data.mkdir()
    d = start_daemon(data_dir=data, sets=["availability.grace=0s"])
    c = d.client()
    assert c.put("/api/v1/device-types/crit", json_body={"alarmSeverity": "CRITICAL"}).status == 201
    c.put(dev_path("k"), json_body={"type": "crit", "c8y_RequiredAvailability": {"responseInterval": 1}})
    c.activity("k", ts=now_ms() - MINUTE + 300)
    raised = wait_events(str(data), "k", "ALARM_RAISED", timeout=5.0)
    assert len(raised) == 1 and raised[0]["alarm"]["severity"] == "CRITICAL"
    alarm_id = raised[0]["alarm"]["id"]
    r = c.put("/api/v1/alarms/" + alarm_id, json_body={"status": "ACKNOWLEDGED"})
    assert r.status == 200
    before = c.get("/api/v1/alarms/" + alarm_id).body
    dev_before = c.device("k").body
    # kill -9 right after the acknowledged answer: it must be on disk.
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=5)
    d.stopped = True

    d2 = start_daemon(data_dir=data, sets=["availability.grace=0s"])
    c2 = d2.client()
    assert c2.get("/api/v1/alarms/" + alarm_id).body == before
    dev = c2.device("k").body
    assert dev["c8y_RequiredAvailability"] == {"responseInterval": 1}
    assert dev["type"] == "crit" and dev["active"] is False
    assert dev["c8y_ActiveAlarmsStatus"] == {"critical": 1}
    assert dev["c8y_Availability"] == dev_before["c8y_Availability"]
    t = c2.get("/api/v1/device-types/crit").body
    assert t["alarmSeverity"] == "CRITICAL" and t["configured"] is True and t["devices"] == 1
    # No duplicate: maintenance in and out counts on the restored alarm.
    put_c8y(c2, "k", 0)
    put_c8y(c2, "k", 1)
    a = wait_until(lambda: (lambda a: a if a["count"] == 2 else None)(
        c2.get("/api/v1/alarms/" + alarm_id).body), 2.0)
    assert a and a["status"] == "ACKNOWLEDGED", a
    assert len(alarms_of(c2, "k")) == 1
    # New alarms continue the ids.
    c2.put(dev_path("k2"), json_body={"inactivityTimeout": 100})
    c2.activity("k2")
    r2 = wait_events(str(data), "k2", "ALARM_RAISED", timeout=3.0)
    assert len(r2) == 1 and int(r2[0]["alarm"]["id"]) > int(alarm_id)
