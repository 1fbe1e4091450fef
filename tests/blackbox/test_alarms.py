"""Unavailability alarms through the real binary: raised on inactivity, cleared by the next
activity (not by a late report), acknowledged then cleared through the API, CLEARED being
final, listing with filters and pages, severity from the device type, deletion, the
fleet-wide counts, alarms.enabled, and bad input."""
import time

import pytest

from conftest import assert_error, dev_path, events_of, now_ms, read_events, wait_events, wait_until

ALARM_FIELDS = {"id", "type", "text", "status", "severity", "source", "time", "firstOccurrenceTime",
                "lastUpdated", "count"}


def go_unavailable(d, c, dev, timeout=150):
    """Gives `dev` a short timeout, one activity, and waits for its alarm; returns the alarm."""
    before = len(events_of(d.data_dir, dev, "ALARM_RAISED"))
    c.put(dev_path(dev), json_body={"inactivityTimeout": timeout})
    c.activity(dev)
    raised = wait_events(d.data_dir, dev, "ALARM_RAISED", count=before + 1, timeout=3.0)
    assert len(raised) == before + 1, read_events(d.data_dir)
    return raised[-1]["alarm"]


def test_raise_and_auto_clear(daemon, client):
    a = go_unavailable(daemon, client, "a1")
    assert set(a) == ALARM_FIELDS, a
    assert a["status"] == "ACTIVE" and a["count"] == 1 and a["severity"] == "MAJOR"
    assert a["text"].startswith("No communication with device since ")
    assert isinstance(a["id"], str) and a["id"].isdigit()
    # The event comes right after the INACTIVITY_EVENT that caused it.
    evs = [e for e in read_events(daemon.data_dir) if e["device"] == "a1"]
    kinds = [e["type"] for e in evs]
    assert kinds[-2:] == ["INACTIVITY_EVENT", "ALARM_RAISED"], kinds
    assert evs[-1]["seq"] == evs[-2]["seq"] + 1
    assert client.get("/api/v1/alarms/" + a["id"]).body == a
    dev = client.device("a1").body
    assert dev["c8y_ActiveAlarmsStatus"] == {"major": 1}

    assert client.activity("a1").status == 202
    cleared = wait_events(daemon.data_dir, "a1", "ALARM_CLEARED")
    assert len(cleared) == 1
    ca = cleared[0]["alarm"]
    assert ca["id"] == a["id"] and ca["status"] == "CLEARED" and ca["count"] == 1
    assert client.device("a1").body["c8y_ActiveAlarmsStatus"] == {}
    # The next unavailability is a new alarm.
    b = go_unavailable(daemon, client, "a1")
    assert int(b["id"]) > int(a["id"])


def test_late_report_does_not_clear(daemon, client):
    a = go_unavailable(daemon, client, "late", timeout=200)
    # A reading from before the deadline, arriving now: recorded, not a sign of life.
    r = client.activity("late", ts=now_ms() - 5000)
    assert r.status == 202
    time.sleep(0.1)
    assert client.get("/api/v1/alarms/" + a["id"]).body["status"] == "ACTIVE"
    assert client.device("late").body["active"] is False


def test_acknowledge_then_clear(daemon, client):
    a = go_unavailable(daemon, client, "ack")
    path = "/api/v1/alarms/" + a["id"]
    r = client.put(path, json_body={"status": "ACKNOWLEDGED"})
    assert r.status == 200 and r.body["status"] == "ACKNOWLEDGED"
    assert r.body["lastUpdated"] >= a["lastUpdated"]
    upd = events_of(daemon.data_dir, "ack", "ALARM_UPDATED")  # committed before the answer
    assert len(upd) == 1 and upd[0]["alarm"]["status"] == "ACKNOWLEDGED"
    # Acknowledged alarms still count as active ones for the device and the fleet.
    assert client.device("ack").body["c8y_ActiveAlarmsStatus"] == {"major": 1}
    s = client.stats()
    assert s["alarms"]["ACKNOWLEDGED"] == 1 and s["c8y_ActiveAlarmsStatus"] == {"major": 1}, s
    # Same status again: no change, no event.
    assert client.put(path, json_body={"status": "ACKNOWLEDGED"}).status == 200
    assert len(events_of(daemon.data_dir, "ack", "ALARM_UPDATED")) == 1

    r = client.put(path, json_body={"status": "CLEARED"})
    assert r.status == 200 and r.body["status"] == "CLEARED"
    assert len(events_of(daemon.data_dir, "ack", "ALARM_CLEARED")) == 1
    assert client.device("ack").body["c8y_ActiveAlarmsStatus"] == {}
    # CLEARED is final.
    assert_error(client.put(path, json_body={"status": "ACKNOWLEDGED"}), 409, "conflict")
    assert client.put(path, json_body={"status": "CLEARED"}).status == 200
    s = client.stats()
    assert s["alarms"]["CLEARED"] == 1 and s["alarms"]["ACKNOWLEDGED"] == 0 and s["c8y_ActiveAlarmsStatus"] == {}
    # The device's next activity has nothing left to clear.
    client.activity("ack")
    time.sleep(0.05)
    assert len(events_of(daemon.data_dir, "ack", "ALARM_CLEARED")) == 1


def test_alarm_put_errors(daemon, client):
    a = go_unavailable(daemon, client, "err")
    path = "/api/v1/alarms/" + a["id"]
    for body in ({"status": "ACTIVE"}, {"status": "acknowledged"}, {"status": 1}, {},
                 {"status": "CLEARED", "x": 1}, {"severity": "MINOR"}):
        assert_error(client.put(path, json_body=body), 422, "invalid")
    assert_error(client.put(path, body="[]"), 400, "bad_request")
    assert_error(client.put(path, body="{"), 400, "bad_request")
    assert_error(client.put("/api/v1/alarms/999999", json_body={"status": "CLEARED"}), 404, "not_found")
    assert_error(client.get("/api/v1/alarms/999999"), 404, "not_found")
    for bad in ("abc", "0", "-1", "1.0", "99999999999999999999"):
        assert_error(client.get("/api/v1/alarms/" + bad), 422, "invalid")
    assert_error(client.get("/api/v1/alarms/1/x"), 404, "not_found")
    assert_error(client.get("/api/v1/alarmsx"), 404, "not_found")
    assert_error(client.delete(path), 405, "method_not_allowed")
    assert_error(client.post("/api/v1/alarms", json_body={}), 405, "method_not_allowed")
    assert client.get(path).body["status"] == "ACTIVE"  # nothing changed


def test_list_filters_and_paging(daemon, client):
    assert client.put("/api/v1/device-types/hot", json_body={"alarmSeverity": "CRITICAL"}).status == 201
    ids = []
    for i in range(6):
        dev = "l%d" % i
        if i % 2:
            client.put(dev_path(dev), json_body={"type": "hot"})
        ids.append(go_unavailable(daemon, client, dev)["id"])
    client.activity("l0")  # clears alarm 0
    wait_events(daemon.data_dir, "l0", "ALARM_CLEARED")

    def listing(q):
        r = client.get("/api/v1/alarms" + q)
        assert r.status == 200, r
        return r.body

    body = listing("")
    assert [a["id"] for a in body["alarms"]] == ids and body["next"] is None
    assert [a["id"] for a in listing("?status=ACTIVE")["alarms"]] == ids[1:]
    assert [a["id"] for a in listing("?status=CLEARED")["alarms"]] == ids[:1]
    assert [a["source"] for a in listing("?severity=CRITICAL")["alarms"]] == ["l1", "l3", "l5"]
    assert [a["id"] for a in listing("?source=l4")["alarms"]] == [ids[4]]
    assert listing("?source=nobody")["alarms"] == []
    assert [a["source"] for a in listing("?severity=MAJOR&status=ACTIVE")["alarms"]] == ["l2", "l4"]
    # Pages of 2.
    seen, after = [], ""
    for _ in range(10):
        page = listing("?limit=2" + ("&after=" + after if after else ""))
        seen += [a["id"] for a in page["alarms"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == ids
    for q in ("?status=OPEN", "?severity=major", "?limit=0", "?limit=1001", "?after=x", "?source=%00"):
        assert_error(client.get("/api/v1/alarms" + q), 422, "invalid")
    s = client.stats()
    assert s["c8y_ActiveAlarmsStatus"] == {"critical": 3, "major": 2}, s
    assert s["alarms"]["ACTIVE"] == 5 and s["alarms"]["CLEARED"] == 1 and s["alarms"]["raised"] == 6, s
    assert client.device("l3").body["c8y_ActiveAlarmsStatus"] == {"critical": 1}


def test_delete_device_clears_its_alarm(daemon, client):
    a = go_unavailable(daemon, client, "gone")
    assert client.delete(dev_path("gone")).status == 204
    cleared = events_of(daemon.data_dir, "gone", "ALARM_CLEARED")
    assert len(cleared) == 1 and cleared[0]["alarm"]["id"] == a["id"]
    assert client.get("/api/v1/alarms/" + a["id"]).body["status"] == "CLEARED"


def test_alarms_disabled(start_daemon):
    d = start_daemon(sets=["alarms.enabled=false"])
    c = d.client()
    c.put(dev_path("q"), json_body={"inactivityTimeout": 100})
    c.activity("q")
    assert len(wait_events(d.data_dir, "q", "INACTIVITY_EVENT", timeout=3.0)) == 1
    time.sleep(0.1)
    assert events_of(d.data_dir, "q", "ALARM_RAISED") == []
    assert c.get("/api/v1/alarms").body["alarms"] == []


@pytest.mark.bb_timeout(30)
def test_cleared_alarms_pruned_after_retention(start_daemon, tmp_path):
    data = tmp_path / "prune"
    data.mkdir()
    d = start_daemon(data_dir=data, sets=["alarms.retention=1s"])
    c = d.client()
    a = go_unavailable(d, c, "old")
    assert c.put("/api/v1/alarms/" + a["id"], json_body={"status": "CLEARED"}).status == 200
    b = go_unavailable(d, c, "open")
    # Checked every quarter of the retention: gone 1 s after it was cleared, bounded wait.
    assert wait_until(lambda: c.get("/api/v1/alarms/" + a["id"]).status == 404, 5.0)
    assert c.get("/api/v1/alarms/" + b["id"]).body["status"] == "ACTIVE"  # open ones stay
    assert c.stats()["alarms"]["pruned"] == 1
    d.stop_and_check()
    c2 = start_daemon(data_dir=data, sets=["alarms.retention=1s"]).client()
    assert c2.get("/api/v1/alarms/" + a["id"]).status == 404  # deleted from the store too
    assert c2.get("/api/v1/alarms/" + b["id"]).status == 200
