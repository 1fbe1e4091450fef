"""AUDIT events: every admin change (device and type configuration,
deletes, alarm status) made with a credential is an event of the outbox,
with who (the token's name), what, when, and the thing before and after;
it is committed with the change and flows to every sink: events.jsonl, the
events API, the event stream, webhooks.  audit.events says when
(docs/semantics.md#audit-events)."""
import json

import pytest

from conftest import bearer, dev_path, make_token, read_events, wait_until
from outputs_util import NO_PROXY_ENV, SSE, Receiver


def _audits(d):
    return [e for e in read_events(d.data_dir) if e["type"] == "AUDIT"]


@pytest.fixture
def setup(start_daemon, tmp_path):
    data = tmp_path / "audit"
    ops = make_token(data, "ops", "read,ingest,admin")
    gw = make_token(data, "gw", "ingest")
    rx = Receiver()
    sets = ["webhook.audit.url=" + rx.url, "webhook.audit.events=AUDIT"]
    d = start_daemon(data_dir=data, sets=sets, env=NO_PROXY_ENV)
    yield d, ops, gw, rx
    rx.stop()


@pytest.mark.bb_timeout(40)
def test_admin_changes_are_audited(setup):
    d, ops, gw, rx = setup
    c = d.client()
    h = bearer(ops)
    stream = SSE(d.host, d.port, "/api/v1/events/stream?type=AUDIT", headers=h)
    try:
        # A device: created, configured, pinged (not audited), deleted.
        r = c.put(dev_path("pump/7"), json_body={"inactivityTimeout": 60000}, headers=h)
        assert r.status == 201
        r = c.put(dev_path("pump/7"), json_body={"inactivityTimeout": 1, "type": "pump"}, headers=h)
        assert r.status == 200
        assert c.put(dev_path("pump/7"), json_body={}, headers=bearer(gw)).status == 200
        assert c.post(dev_path("pump/7", "/activity"), headers=bearer(gw)).status == 202
        # A type: configured, then dropped.
        assert c.put("/api/v1/device-types/pump", json_body={"alarmSeverity": "CRITICAL"},
                     headers=h).status == 201
        # An alarm: pump/7 goes inactive at once (1 ms); acknowledged.
        alarms = wait_until(lambda: c.get("/api/v1/alarms?status=ACTIVE", headers=h).body["alarms"], 5)
        assert alarms
        aid = alarms[0]["id"]
        assert c.put("/api/v1/alarms/" + aid, json_body={"status": "ACKNOWLEDGED"}, headers=h).status == 200
        assert c.put("/api/v1/alarms/" + aid, json_body={"status": "ACKNOWLEDGED"}, headers=h).status == 200
        assert c.delete("/api/v1/device-types/pump", headers=h).status == 204
        assert c.delete(dev_path("pump/7"), headers=h).status == 204

        audits = _audits(d)  # in the file before the answers came
        acts = [(e["audit"]["action"], e["audit"]["target"]) for e in audits]
        assert acts == [("device.put", "pump/7"), ("device.put", "pump/7"),
                        ("deviceType.put", "pump"), ("alarm.status", aid),
                        ("deviceType.delete", "pump"), ("device.delete", "pump/7")], acts
        for e in audits:
            assert e["audit"]["who"] == "ops"
            assert e["ts"] == e["detectedAt"] and e["ts"] > 0
            assert "state" not in e
        created, changed, tput, ack, tdel, ddel = audits
        assert created["device"] == "pump/7" and created["audit"]["before"] is None
        assert created["audit"]["after"]["inactivityTimeout"] == 60000
        assert changed["audit"]["before"]["inactivityTimeout"] == 60000
        assert changed["audit"]["after"]["inactivityTimeout"] == 1
        assert changed["audit"]["after"]["type"] == "pump"
        assert tput["device"] == "pump"  # the type's name, as SOURCE_* carry the source's
        assert tput["audit"]["before"]["configured"] is False
        assert tput["audit"]["after"]["alarmSeverity"] == "CRITICAL"
        assert ack["device"] == "pump/7"
        assert ack["audit"]["before"]["status"] == "ACTIVE"
        assert ack["audit"]["after"]["status"] == "ACKNOWLEDGED"
        assert tdel["audit"]["before"]["configured"] is True
        assert tdel["audit"]["after"]["configured"] is False  # pump/7 still has the name
        assert ddel["audit"]["before"]["id"] == "pump/7" and ddel["audit"]["after"] is None
        # The events API, the stream and the webhook: the same lines.
        page = c.get("/api/v1/events?type=AUDIT", headers=h).body
        assert page["events"] == audits
        page = c.get("/api/v1/events?type=AUDIT&device=pump%2F7", headers=h).body
        assert [e["audit"]["action"] for e in page["events"]] == [
            "device.put", "device.put", "alarm.status", "device.delete"]
        frames = stream.events(6, 10)
        assert [json.loads(f["data"]) for f in frames] == audits
        assert all(f["event"] == "AUDIT" for f in frames)
        seqs = rx.wait_seqs(6, 10)
        assert sorted(seqs) == [e["seq"] for e in audits]
        assert c.get("/api/v1/stats", headers=h).body["events"]["AUDIT"] == 6
    finally:
        stream.close()


@pytest.mark.bb_timeout(30)
def test_failed_changes_and_reads_are_not_audited(setup):
    d, ops, gw, rx = setup
    c = d.client()
    h = bearer(ops)
    assert c.put(dev_path("x"), json_body={"inactivityTimeout": -1}, headers=h).status == 422
    assert c.delete(dev_path("nobody"), headers=h).status == 404
    assert c.delete("/api/v1/device-types/nothing", headers=h).status == 404
    assert c.put("/api/v1/alarms/99", json_body={"status": "CLEARED"}, headers=h).status == 404
    assert c.put(dev_path("x"), json_body={"type": "y"}, headers=bearer(gw)).status == 403
    assert c.get(dev_path("x"), headers=h).status == 404
    assert c.post(dev_path("x", "/activity"), headers=h).status == 202
    assert c.get("/api/v1/events?type=AUDIT", headers=h).body["events"] == []


@pytest.mark.bb_timeout(30)
def test_audit_events_setting(start_daemon):
    # auto (the default): no credential, no AUDIT event.
    d = start_daemon()
    c = d.client()
    assert c.put(dev_path("a"), json_body={"inactivityTimeout": 5000}).status == 201
    assert c.delete(dev_path("a")).status == 204
    assert _audits(d) == []
    # on: audited without a credential too, who null.
    d = start_daemon(sets=["audit.events=on"])
    c = d.client()
    assert c.put(dev_path("a"), json_body={"inactivityTimeout": 5000}).status == 201
    audits = _audits(d)
    assert len(audits) == 1 and audits[0]["audit"]["who"] is None
    assert audits[0]["audit"]["action"] == "device.put"


@pytest.mark.bb_timeout(30)
def test_audit_events_off(start_daemon, tmp_path):
    data = tmp_path / "off"
    ops = make_token(data, "ops", "admin")
    d = start_daemon(data_dir=data, sets=["audit.events=off"])
    c = d.client()
    assert c.put(dev_path("a"), json_body={"inactivityTimeout": 5000}, headers=bearer(ops)).status == 201
    assert _audits(d) == []


@pytest.mark.bb_timeout(30)
def test_audit_survives_kill(start_daemon, tmp_path):
    """The AUDIT event is in the commit of its change: acknowledged, it
    survives kill -9, in the outbox as in the file."""
    data = tmp_path / "kill"
    ops = make_token(data, "ops", "read,admin")
    d = start_daemon(data_dir=data)
    c = d.client()
    assert c.put(dev_path("k"), json_body={"inactivityTimeout": 5000}, headers=bearer(ops)).status == 201
    d.kill()
    d2 = start_daemon(data_dir=data)
    page = d2.client().get("/api/v1/events?type=AUDIT", headers=bearer(ops)).body
    assert [(e["audit"]["who"], e["audit"]["action"]) for e in page["events"]] == [("ops", "device.put")]
