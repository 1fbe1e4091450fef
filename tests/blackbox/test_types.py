"""Device types (profiles) through the real binary: the routes and their errors, the timeout
precedence (own inactivityTimeout > own c8y_RequiredAvailability > type > default), a type
change applied at once to its devices only, `monitored`, the counts by type, and restarts."""
import time

import pytest

from conftest import assert_error, dev_path, events_of, wait_events

TYPE_FIELDS = {"type", "configured", "inactivityTimeout", "responseInterval", "monitored", "alarmSeverity",
               "devices", "active"}


def type_path(name):
    import urllib.parse
    return "/api/v1/device-types/" + urllib.parse.quote(name, safe="")


def test_crud(client):
    r = client.put(type_path("meter"), json_body={"inactivityTimeout": 30000})
    assert r.status == 201, r
    assert set(r.body) == TYPE_FIELDS
    assert r.body == {"type": "meter", "configured": True, "inactivityTimeout": 30000, "responseInterval": None,
                      "monitored": None, "alarmSeverity": "MAJOR", "devices": 0, "active": 0}
    # Unset fields keep their value; null resets one.
    r = client.put(type_path("meter"), json_body={"responseInterval": 99999, "alarmSeverity": "MINOR",
                                                  "monitored": True, "type": "meter"})
    assert r.status == 200
    assert r.body["inactivityTimeout"] == 30000 and r.body["responseInterval"] == 32767  # clamped
    assert r.body["monitored"] is True and r.body["alarmSeverity"] == "MINOR"
    r = client.put(type_path("meter"), json_body={"inactivityTimeout": None, "monitored": None})
    assert r.body["inactivityTimeout"] is None and r.body["monitored"] is None
    assert client.get(type_path("meter")).body == r.body
    names = [t["type"] for t in client.get("/api/v1/device-types").body["types"]]
    assert names == ["default", "meter"]
    assert client.delete(type_path("meter")).status == 204
    t = client.get(type_path("meter")).body  # the name stays known, without settings
    assert t["configured"] is False and t["alarmSeverity"] == "MAJOR" and t["responseInterval"] is None
    assert_error(client.delete(type_path("meter")), 404, "not_found")
    assert_error(client.get(type_path("never-seen")), 404, "not_found")
    # UTF-8 and an encoded '/' work like device ids.
    assert client.put(type_path("capteur/é"), json_body={}).status == 201
    assert client.get(type_path("capteur/é")).body["type"] == "capteur/é"


@pytest.mark.parametrize("body", [
    {"inactivityTimeout": 0}, {"inactivityTimeout": 315360000001}, {"inactivityTimeout": "5"},
    {"inactivityTimeout": 1.5}, {"responseInterval": 1.5}, {"responseInterval": "x"}, {"monitored": 1},
    {"monitored": "yes"}, {"alarmSeverity": "major"}, {"alarmSeverity": "FATAL"}, {"alarmSeverity": 2},
    {"type": "other"}, {"unknown": 1},
])
def test_bad_bodies(client, body):
    assert_error(client.put(type_path("t"), json_body=body), 422, "invalid")
    assert_error(client.get(type_path("t")), 404, "not_found")  # nothing was created


def test_bad_requests(client):
    assert_error(client.put(type_path("t"), body="[]"), 400, "bad_request")
    assert_error(client.put(type_path("t"), body=""), 400, "bad_request")
    assert_error(client.put(type_path("t"), body='{"a":1,"a":2}'), 400, "bad_request")
    assert_error(client.put("/api/v1/device-types/a%zz", json_body={}), 400, "bad_request")
    assert_error(client.put(type_path("x" * 65), json_body={}), 422, "invalid")
    assert_error(client.put("/api/v1/device-types/a%0Ab", json_body={}), 422, "invalid")
    assert_error(client.put("/api/v1/device-types/", json_body={}), 422, "invalid")
    assert_error(client.get("/api/v1/device-types/a/b"), 404, "not_found")
    assert_error(client.get("/api/v1/device-typesx"), 404, "not_found")
    assert_error(client.post(type_path("t"), json_body={}), 405, "method_not_allowed")
    assert_error(client.delete("/api/v1/device-types"), 405, "method_not_allowed")


def test_precedence(client):
    client.put(type_path("p"), json_body={"inactivityTimeout": 40000, "responseInterval": 2})
    r = client.put(dev_path("d"), json_body={"type": "p"})
    assert r.body["inactivityTimeout"] == 40000 and r.body["inactivityTimeoutSource"] == "type"
    client.put(type_path("p"), json_body={"inactivityTimeout": None})  # responseInterval is next
    assert client.device("d").body["inactivityTimeout"] == 2 * 60000 + 180000
    r = client.put(dev_path("d"), json_body={"c8y_RequiredAvailability": {"responseInterval": 3}})
    assert r.body["inactivityTimeout"] == 3 * 60000 + 180000
    assert r.body["inactivityTimeoutSource"] == "c8y_RequiredAvailability"
    r = client.put(dev_path("d"), json_body={"inactivityTimeout": 1234})
    assert r.body["inactivityTimeout"] == 1234 and r.body["inactivityTimeoutSource"] == "device"
    r = client.put(dev_path("d"), json_body={"inactivityTimeout": None, "c8y_RequiredAvailability": None})
    assert r.body["inactivityTimeoutSource"] == "type"
    client.delete(type_path("p"))
    r = client.device("d")
    assert r.body["inactivityTimeout"] == 600000 and r.body["inactivityTimeoutSource"] == "default"


def test_type_change_applies_at_once_to_its_devices_only(daemon, client):
    client.put(type_path("fast"), json_body={"inactivityTimeout": 60000})
    for i in range(5):
        client.put(dev_path("f%d" % i), json_body={"type": "fast"})
        client.activity("f%d" % i)
        client.activity("o%d" % i)  # default type
    time.sleep(0.2)
    client.activity("f4")  # heard again just now
    r = client.put(type_path("fast"), json_body={"inactivityTimeout": 150})
    assert r.status == 200 and r.body["devices"] == 5
    # Four were silent for longer than 150 ms: inactive before the answer, deadline as ts.
    assert r.body["active"] == 1
    for i in range(4):
        dev = client.device("f%d" % i).body
        assert dev["active"] is False, dev
        ev = events_of(daemon.data_dir, "f%d" % i, "INACTIVITY_EVENT")
        assert len(ev) == 1 and ev[0]["ts"] == dev["lastActivityTime"] + 150
    assert all(client.device("o%d" % i).body["active"] for i in range(5))
    # f4 goes 150 ms after its last activity.
    assert len(wait_events(daemon.data_dir, "f4", "INACTIVITY_EVENT", timeout=3.0)) == 1
    s = client.stats()
    assert s["types"]["fast"] == {"devices": 5, "active": 0, "configured": True}, s
    assert s["types"]["default"]["devices"] == 5, s


def test_monitored(start_daemon):
    d = start_daemon(sets=["state.monitor_by_default=false", "state.default_inactivity_timeout=150ms"])
    c = d.client()
    c.put(type_path("watched"), json_body={"monitored": True})
    c.put(type_path("ignored"), json_body={"monitored": False, "inactivityTimeout": 100})
    c.put(dev_path("w"), json_body={"type": "watched"})
    c.put(dev_path("i"), json_body={"type": "ignored"})
    c.activity("w")
    c.activity("i")
    w = c.device("w").body
    assert w["inactivityTimeout"] == 150 and "c8y_Availability" in w
    i = c.device("i").body
    assert i["inactivityTimeout"] is None and i["inactivityTimeoutSource"] == "type"
    assert "c8y_Availability" not in i
    assert len(wait_events(d.data_dir, "w", "INACTIVITY_EVENT", timeout=3.0)) == 1
    time.sleep(0.2)
    assert events_of(d.data_dir, "i", "INACTIVITY_EVENT") == []
    assert c.device("i").body["active"] is True


def test_type_severity_and_maintenance(daemon, client):
    client.put(type_path("svc"), json_body={"alarmSeverity": "WARNING", "responseInterval": 0})
    client.put(dev_path("s1"), json_body={"type": "svc", "inactivityTimeout": 100})
    client.activity("s1")
    dev = client.device("s1").body
    assert dev["c8y_Availability"]["status"] == "MAINTENANCE"  # the type's responseInterval <= 0
    assert len(wait_events(daemon.data_dir, "s1", "INACTIVITY_EVENT", timeout=3.0)) == 1
    time.sleep(0.05)
    assert events_of(daemon.data_dir, "s1", "ALARM_RAISED") == []
    # The type leaves maintenance: its inactive device is unavailable now, with the type's severity.
    r = client.put(type_path("svc"), json_body={"responseInterval": 5})
    assert r.status == 200
    raised = wait_events(daemon.data_dir, "s1", "ALARM_RAISED")
    assert len(raised) == 1 and raised[0]["alarm"]["severity"] == "WARNING"
    assert client.device("s1").body["c8y_ActiveAlarmsStatus"] == {"warning": 1}


def test_types_survive_restart(start_daemon, tmp_path):
    data = tmp_path / "types"
    data.mkdir()
    d = start_daemon(data_dir=data)
    c = d.client()
    c.put(type_path("keep"), json_body={"inactivityTimeout": 7000, "responseInterval": -3, "monitored": False,
                                        "alarmSeverity": "CRITICAL"})
    c.put(type_path("drop"), json_body={"inactivityTimeout": 1000})
    c.delete(type_path("drop"))
    c.put(dev_path("k"), json_body={"type": "keep"})
    before = c.get(type_path("keep")).body
    d.stop_and_check()
    c2 = start_daemon(data_dir=data).client()
    assert c2.get(type_path("keep")).body == before
    t = c2.get("/api/v1/device-types").body["types"]
    assert {x["type"]: x["configured"] for x in t} == {"default": False, "keep": True}
    assert c2.device("k").body["inactivityTimeoutSource"] == "type"
