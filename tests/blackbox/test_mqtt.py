"""
MQTT input against a real Mosquitto broker: topic patterns, payload_ts,
presence by status topic (Last Will) and Sparkplug B, persistent sessions,
MQTT 5, TLS, malformed input, and the broker outage that must not make a
single device inactive (source gating).

Each test starts its own broker on a free loopback port (mqtt_util.Broker)
and its own lastseen; both are stopped at teardown.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import DEVICE_FIELDS, LASTSEEN_BIN, events_of, now_ms, read_events, wait_events, wait_until
import mqtt_util
from mqtt_util import sparkplug_payload

pytestmark = pytest.mark.bb_timeout(90)


def mstats(d):
    c = d.client()
    try:
        return c.stats()["mqtt"]
    finally:
        c.close()


def start(start_daemon, broker, timeout="600s", data_dir=None, sets=(), **mqtt):
    """lastseen reading from `broker`, waited for until its source is up."""
    all_sets = broker.daemon_sets(**mqtt) + ["state.default_inactivity_timeout=" + timeout] + list(sets)
    d = start_daemon(sets=all_sets, data_dir=data_dir)
    assert wait_until(lambda: mstats(d)["state"] == "up", 10, 0.02), (mstats(d), d.stderr_text())
    return d


def device(d, dev_id):
    c = d.client()
    try:
        return c.device(dev_id)
    finally:
        c.close()


def ids(events):
    return sorted(e["device"] for e in events)


# --------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------


def test_several_patterns(start_daemon, broker):
    d = start(start_daemon, broker,
              topics="devices/{device}/telemetry, devices/{device}/attributes, sensors/+/{device}/#")
    t0 = now_ms()
    broker.pub("devices/a/telemetry", '{"t": 1}')
    broker.pub("devices/b/attributes", "x")
    broker.pub("sensors/site-1/c/temp/1", "x")
    broker.pub("sensors/site-1/c2", "x")  # '#' matches no level at all
    broker.pub("devices/z/other", "x")    # no pattern: not even delivered
    evs = wait_events(d.data_dir, type_="ACTIVITY_EVENT", count=4, timeout=5)
    assert ids(evs) == ["a", "b", "c", "c2"], evs
    t1 = now_ms()
    a = device(d, "a").body
    assert a["active"] is True and t0 <= a["lastActivityTime"] <= t1, a
    assert device(d, "z").status == 404
    s = mstats(d)
    assert s["activities"] == 4 and s["received"] >= 5, s  # + the sync marker
    # More messages from an active device: activity, no event.
    for _ in range(3):
        broker.pub("devices/a/telemetry", "x")
    assert wait_until(lambda: mstats(d)["activities"] == 7, 5), mstats(d)
    assert len(events_of(d.data_dir, "a")) == 1


def test_payload_ts(start_daemon, broker):
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", payload_ts="ts")
    ts = now_ms() - 3000
    broker.pub("devices/p1/telemetry", '{"v": 1, "ts": %d}' % ts)
    broker.pub("devices/p2/telemetry", "21.5")          # not JSON: receive time
    broker.pub("devices/p3/telemetry", '{"v": 1}')      # no field: receive time
    bad = ['{"ts": "yesterday"}', '{"ts": -5}', '{"ts": 1.7e12}', '{"ts": 1', '{"ts": 0}',
           '{"ts": 99999999999999999999999}']
    for i, p in enumerate(bad):
        broker.pub("devices/b%d/telemetry" % i, p)
    assert wait_until(lambda: mstats(d)["badTimestamps"] == len(bad) and mstats(d)["activities"] == 3, 5), \
        mstats(d)
    assert device(d, "p1").body["lastActivityTime"] == ts
    for i in range(len(bad)):
        assert device(d, "b%d" % i).status == 404
    assert device(d, "p2").body["active"] is True


def test_retained_data_is_not_activity(start_daemon, broker):
    broker.pub("devices/old/telemetry", "last reading, a month ago", retain=True)
    d = start(start_daemon, broker, topics="devices/{device}/telemetry")
    assert wait_until(lambda: mstats(d)["retainedSkipped"] >= 1, 5), mstats(d)
    assert device(d, "old").status == 404
    broker.pub("devices/old/telemetry", "live")
    wait_events(d.data_dir, "old", "ACTIVITY_EVENT", 1, 5)
    assert device(d, "old").body["active"] is True


# --------------------------------------------------------------------------
# Presence: status topic and Last Will
# --------------------------------------------------------------------------


def test_last_will_disconnects(start_daemon, broker):
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", status_topic="devices/{device}/status")
    # The device: a real client that registers "offline" as its Last Will,
    # then announces itself "online" (both retained, as devices do).
    dev = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-i", "w1", "-t",
                            "devices/w1/cmd", "--will-topic", "devices/w1/status", "--will-payload", "offline",
                            "--will-retain", "--will-qos", "1"], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: "w1" in broker.log_text(), 5)
        broker.pub("devices/w1/status", "online", retain=True)
        wait_events(d.data_dir, "w1", "CONNECT_EVENT", 1, 5)
        assert device(d, "w1").body["sessions"] == 1
        assert events_of(d.data_dir, "w1", "DISCONNECT_EVENT") == []
        dev.kill()  # no DISCONNECT packet: the broker publishes the Will
    finally:
        dev.kill()
        dev.wait(5)
    evs = wait_events(d.data_dir, "w1", "DISCONNECT_EVENT", 1, 5)
    assert len(evs) == 1, read_events(d.data_dir)
    st = device(d, "w1").body
    assert st["sessions"] == 0 and st["lastDisconnectTime"] >= st["lastConnectTime"] > 0, st
    assert st["active"] is True  # a disconnect is not silence
    assert mstats(d)["disconnects"] == 1


def test_retained_status_on_resubscribe(start_daemon, broker, tmp_path):
    broker.pub("devices/r1/status", "online", retain=True)
    data = tmp_path / "data-r"
    data.mkdir()
    d = start(start_daemon, broker, status_topic="devices/{device}/status", data_dir=data)
    wait_events(data, "r1", "CONNECT_EVENT", 1, 5)
    d.stop_and_check()
    # Restart: the broker delivers the retained "online" again on subscribe;
    # the device's session is already open, so nothing happens.
    d = start(start_daemon, broker, status_topic="devices/{device}/status", data_dir=data)
    time.sleep(0.5)
    assert len(events_of(data, "r1", "CONNECT_EVENT")) == 1
    assert device(d, "r1").body["sessions"] == 1
    broker.pub("devices/r1/status", "offline", retain=True)
    wait_events(data, "r1", "DISCONNECT_EVENT", 1, 5)
    d.stop_and_check()
    d = start(start_daemon, broker, status_topic="devices/{device}/status", data_dir=data)
    time.sleep(0.5)
    assert len(events_of(data, "r1", "DISCONNECT_EVENT")) == 1
    assert len(events_of(data, "r1", "CONNECT_EVENT")) == 1
    # Other payloads on the status topic are plain activity.
    broker.pub("devices/r1/status", "rebooting")
    assert wait_until(lambda: mstats(d)["activities"] == 1, 5), mstats(d)
    assert device(d, "r1").body["sessions"] == 0


# --------------------------------------------------------------------------
# Sparkplug B
# --------------------------------------------------------------------------


def test_sparkplug(start_daemon, broker):
    d = start(start_daemon, broker, sparkplug="true")
    broker.pub("spBv1.0/G/NBIRTH/N1", sparkplug_payload(bdseq=1, extra_metrics=[("Node Control/Rebirth", 0)]))
    broker.pub("spBv1.0/G/DBIRTH/N1/D1", sparkplug_payload(extra_metrics=[("temp", 21)]))
    broker.pub("spBv1.0/G/DBIRTH/N1/D2", sparkplug_payload())
    wait_events(d.data_dir, type_="CONNECT_EVENT", count=3, timeout=5)
    assert ids(events_of(d.data_dir, type_="CONNECT_EVENT")) == ["G/N1", "G/N1/D1", "G/N1/D2"]
    broker.pub("spBv1.0/G/DDATA/N1/D1", sparkplug_payload(extra_metrics=[("temp", 22)]))
    broker.pub("spBv1.0/G/NDATA/N1", b"not even protobuf: data is not decoded")
    assert wait_until(lambda: mstats(d)["activities"] == 2, 5), mstats(d)
    # The device D2 dies on its own.
    broker.pub("spBv1.0/G/DDEATH/N1/D2", sparkplug_payload())
    wait_events(d.data_dir, "G/N1/D2", "DISCONNECT_EVENT", 1, 5)

    # The node reconnects (bdSeq 2) before the broker fired the old Will:
    # the late NDEATH with bdSeq 1 is stale and changes nothing.
    broker.pub("spBv1.0/G/NBIRTH/N1", sparkplug_payload(bdseq=2))
    broker.pub("spBv1.0/G/NDEATH/N1", sparkplug_payload(bdseq=1))
    assert wait_until(lambda: mstats(d)["sparkplug"]["staleDeaths"] == 1, 5), mstats(d)
    time.sleep(0.2)
    assert events_of(d.data_dir, "G/N1", "DISCONNECT_EVENT") == []
    assert len(events_of(d.data_dir, "G/N1", "CONNECT_EVENT")) == 1  # the rebirth opened no second session
    assert device(d, "G/N1").body["sessions"] == 1

    # The real death takes the node and its remaining device D1 offline.
    broker.pub("spBv1.0/G/NDEATH/N1", sparkplug_payload(bdseq=2))
    evs = wait_events(d.data_dir, type_="DISCONNECT_EVENT", count=3, timeout=5)
    assert ids(evs) == ["G/N1", "G/N1/D1", "G/N1/D2"], evs
    assert device(d, "G/N1/D1").body["sessions"] == 0

    # Garbage where a certificate should be: counted, nothing created.
    broker.pub("spBv1.0/G/NBIRTH/N2", b"\xff\xff\xff\xff")
    broker.pub("spBv1.0/G/DBIRTH/N2/D9", b"\x0a\x50short")
    broker.pub("spBv1.0/G/NCMD/N1", sparkplug_payload())
    broker.pub("spBv1.0/G/NBIRTH", sparkplug_payload(bdseq=1))  # no node level
    assert wait_until(lambda: mstats(d)["sparkplug"]["badPayloads"] == 2, 5), mstats(d)
    sp = mstats(d)["sparkplug"]
    assert sp["ignored"] == 1 and sp["badTopics"] == 1, sp
    assert device(d, "G/N2").status == 404 and device(d, "G/N2/D9").status == 404


# --------------------------------------------------------------------------
# Sessions kept by the broker while lastseen is away
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_backlog_is_read_before_source_up(start_daemon, broker, tmp_path, protocol):
    data = tmp_path / "data-b"
    data.mkdir()
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", protocol=protocol, data_dir=data)
    broker.pub("devices/early/telemetry", "x")
    wait_events(data, "early", "ACTIVITY_EVENT", 1, 5)
    d.stop_and_check()
    # lastseen is away: the broker queues these for its persistent session.
    pub = broker.client()
    try:
        infos = [pub.publish("devices/queued-%d/telemetry" % i, b"x", qos=1) for i in range(500)]
        for info in infos:
            info.wait_for_publish()
    finally:
        pub.close()
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", protocol=protocol, data_dir=data)
    wait_events(data, type_="SOURCE_UP", count=2, timeout=5)
    time.sleep(0.3)  # anything delivered after the marker would show now
    evs = read_events(data)
    ups = [e["seq"] for e in evs if e["type"] == "SOURCE_UP"]
    queued = [e["seq"] for e in evs if e["device"].startswith("queued-")]
    assert len(queued) == 500, evs
    assert len(ups) == 2 and max(queued) < ups[-1], (queued, ups)


def test_clean_session_forgets(start_daemon, broker, tmp_path):
    data = tmp_path / "data-c"
    data.mkdir()
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", clean_session="true", data_dir=data)
    d.stop_and_check()
    broker.pub("devices/missed/telemetry", "x", qos=1)
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", clean_session="true", data_dir=data)
    time.sleep(0.3)
    assert device(d, "missed").status == 404


# --------------------------------------------------------------------------
# Broker outage: source gating
# --------------------------------------------------------------------------


class Publisher:
    """Devices that keep reporting every `period` s through a paho client that
    reconnects by itself (as real devices do)."""

    def __init__(self, broker, devs, period=0.2):
        import paho.mqtt.client as paho
        self.c = paho.Client(client_id="fleet")
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.2)
        self.c.connect("127.0.0.1", broker.port, keepalive=5)
        self.c.loop_start()
        self.devs = devs
        self.period = period
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            for dev in self.devs:
                self.c.publish("devices/%s/telemetry" % dev, b"x", qos=0)
            self.stop_ev.wait(self.period)

    def close(self):
        self.stop_ev.set()
        self.t.join(5)
        self.c.disconnect()
        self.c.loop_stop()


def outage(start_daemon, broker, gate):
    timeout = 2000
    d = start(start_daemon, broker, timeout="%dms" % timeout, topics="devices/{device}/telemetry", gate=gate)
    live = ["live-%d" % i for i in range(5)]
    pub = Publisher(broker, live)
    try:
        wait_events(d.data_dir, type_="ACTIVITY_EVENT", count=5, timeout=5)
        broker.pub("devices/silent/telemetry", "last words")
        wait_events(d.data_dir, "silent", "ACTIVITY_EVENT", 1, 5)
        killed = now_ms()
        broker.kill()
        time.sleep(2.5 * timeout / 1000)
        broker.start()
        wait_events(d.data_dir, type_="SOURCE_UP", count=2, timeout=10)
        time.sleep(2 * timeout / 1000)
    finally:
        pub.close()
    return d, live, killed, timeout


def test_broker_outage_blames_no_device(start_daemon, broker):
    d, live, killed, timeout = outage(start_daemon, broker, "true")
    evs = read_events(d.data_dir)
    downs = [e for e in evs if e["type"] == "SOURCE_DOWN"]
    ups = [e for e in evs if e["type"] == "SOURCE_UP"]
    assert len(downs) == 1 and len(ups) == 2, evs
    assert downs[0]["device"] == "mqtt" and downs[0]["source"] is True and "state" not in downs[0]
    assert killed <= downs[0]["detectedAt"] <= killed + 1000, (killed, downs)
    assert ups[0]["seq"] < downs[0]["seq"] < ups[1]["seq"]
    false = [e for e in evs if e["type"] == "INACTIVITY_EVENT" and e["device"] != "silent"]
    assert false == [], false
    # The silent device is blamed only after a full timeout of hearing again.
    silent = events_of(d.data_dir, "silent", "INACTIVITY_EVENT")
    assert len(silent) == 1, evs
    assert silent[0]["detectedAt"] >= ups[1]["detectedAt"] + timeout - 2, (silent, ups)
    assert silent[0]["ts"] < downs[0]["detectedAt"] + timeout  # reported: its real deadline
    assert mstats(d)["sessionsLost"] == 1


def test_broker_outage_without_gate(start_daemon, broker):
    """The same outage with mqtt.gate = false: every device goes inactive."""
    d, live, killed, timeout = outage(start_daemon, broker, "false")
    evs = read_events(d.data_dir)
    blamed = {e["device"] for e in evs if e["type"] == "INACTIVITY_EVENT"}
    assert set(live) | {"silent"} <= blamed, evs
    assert [e["type"] for e in evs if e.get("source")] == ["SOURCE_UP", "SOURCE_DOWN", "SOURCE_UP"]


def test_broker_down_at_start(start_daemon, broker_factory):
    b = broker_factory()
    b.kill()
    d = start_daemon(sets=b.daemon_sets(topics="devices/{device}/telemetry"))
    evs = wait_events(d.data_dir, type_="SOURCE_DOWN", count=1, timeout=5)
    assert len(evs) == 1
    assert mstats(d)["state"] in ("down", "connecting")
    b.start()
    wait_events(d.data_dir, type_="SOURCE_UP", count=1, timeout=10)
    b.pub("devices/late/telemetry", "x")
    wait_events(d.data_dir, "late", "ACTIVITY_EVENT", 1, 5)


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


# Under AddressSanitizer: full stacks for allocations, so that tests/lsan.supp
# can name the one leak of libmosquitto's TLS set-up (ignored otherwise).
ASAN_FULL_STACKS = {"ASAN_OPTIONS": ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""),
                                                         "fast_unwind_on_malloc=0") if x)}


def test_tls(start_daemon, broker_factory, tmp_path):
    ca, cert, key = mqtt_util.make_ca(tmp_path)
    b = broker_factory(tls=(ca, cert, key))
    sets = ["mqtt.host=127.0.0.1", "mqtt.port=%d" % b.tls_port, "mqtt.cafile=" + ca,
            "mqtt.topics=devices/{device}/telemetry"]
    d = start_daemon(sets=sets, env=ASAN_FULL_STACKS)
    assert wait_until(lambda: mstats(d)["state"] == "up", 10), (mstats(d), d.stderr_text())
    b.pub("devices/secure/telemetry", "x")  # through the plain listener: the broker routes
    wait_events(d.data_dir, "secure", "ACTIVITY_EVENT", 1, 5)

    # A CA that did not sign the broker's certificate: never connected.
    other_ca, _, _ = mqtt_util.make_ca(tmp_path / "other")
    d2 = start_daemon(sets=["mqtt.host=127.0.0.1", "mqtt.port=%d" % b.tls_port, "mqtt.cafile=" + other_ca,
                            "mqtt.topics=devices/{device}/telemetry", "mqtt.client_id=other"],
                      env=ASAN_FULL_STACKS)
    time.sleep(1.0)
    assert mstats(d2)["state"] != "up" and mstats(d2)["sessions"] == 0
    assert "certificate verify failed" in d2.stderr_text().lower() or "tls" in d2.stderr_text().lower(), \
        d2.stderr_text()


def test_tls_bad_files_stop_start_up(tmp_path):
    cmd = [LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=%s" % (tmp_path / "d"),
           "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.cafile=/nonexistent/ca.crt"]
    r = subprocess.run(cmd, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"mqtt.cafile /nonexistent/ca.crt" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------


def test_malformed_input_counted_and_skipped(start_daemon, broker):
    """Ids with control characters or invalid UTF-8 cannot be tested through
    Mosquitto: it disconnects a client that publishes such a topic before
    anyone receives it.  lastseen checks every id anyway (the engine's
    ls_id_check, unit-tested) for brokers that pass them on."""
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", payload_ts="ts", sparkplug="true")
    pub = broker.client()
    try:
        pub.publish("devices/" + "x" * 5000 + "/telemetry", b"x").wait_for_publish()      # topic too long
        pub.publish("devices/" + "y" * 300 + "/telemetry", b"x").wait_for_publish()       # id > 256 bytes
        pub.publish("devices//telemetry", b"x").wait_for_publish()                         # empty id
        pub.publish("devices/ts/telemetry", b'{"ts": [1, 2]}').wait_for_publish()          # bad ts
        pub.publish("devices/ts/telemetry", b"{" * 100000).wait_for_publish()              # deep garbage
        pub.publish("spBv1.0/G/NDEATH/N", os.urandom(64) + b"\xff").wait_for_publish()     # garbage protobuf
        pub.publish("devices/ok/telemetry", b"\x00\xff binary is fine").wait_for_publish()
    finally:
        pub.close()
    wait_events(d.data_dir, "ok", "ACTIVITY_EVENT", 1, 5)
    s = mstats(d)
    assert s["topicTooLong"] == 1 and s["badIds"] == 2 and s["badTimestamps"] == 2, s
    assert s["sparkplug"]["badPayloads"] + s["sparkplug"]["deaths"] == 1, s
    st = d.client().stats()
    assert st["devices"] == 1, st
    assert d.client().get("/healthz").status == 200


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kv,why", [
    ("mqtt.topics=devices/telemetry", "{device}"),
    ("mqtt.topics=devices/{device}/#/x", "'#' must be the last level"),
    ("mqtt.topics=devices/dev-{device}", "whole level"),
    ("mqtt.topics=a/{device}, ,b/{device}", "empty pattern"),
    ("mqtt.status_topic=status/+", "{device}"),
    ("mqtt.state_topic=lastseen/state", "{device}"),
    ("mqtt.event_topic=lastseen/+/events", "'+' and '#'"),
    ("mqtt.qos=3", "between 0 and 2"),
    ("mqtt.protocol=4", "3.1.1"),
])
def test_config_rejected(kv, why):
    r = subprocess.run([LASTSEEN_BIN, "--check-config", "--set", kv], capture_output=True, timeout=10)
    assert r.returncode != 0, r
    assert why.encode() in r.stderr, r.stderr


def test_reading_own_events_refused(tmp_path, broker):
    cmd = [LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=%s" % (tmp_path / "d")]
    for s in broker.daemon_sets(topics="{device}/#", event_topic="{device}/events"):
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"would be read back" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# Output: events and retained states published from the outbox
# --------------------------------------------------------------------------


def lines_by_seq(data_dir):
    """events.jsonl as {seq: the line's JSON}."""
    return {e["seq"]: e for e in read_events(data_dir)}


def got_events(sub, prefix="lastseen/events/"):
    """{seq: (topic, event)} of the event messages a subscriber received."""
    out = {}
    for topic, payload, _ in sub.received():
        if topic.startswith(prefix):
            ev = json.loads(payload)
            out[ev["seq"]] = (topic, ev)
    return out


def test_events_and_retained_states_published(start_daemon, broker):
    sub = broker.subscriber("lastseen/events/#")
    try:
        d = start(start_daemon, broker, topics="devices/{device}/telemetry", timeout="1s")
        broker.pub("devices/e1/telemetry", "x")
        c = d.client()
        assert c.put("/api/v1/devices/a%2Bb%23c%25d%2Fe", json_body={"inactivityTimeout": 60000}).status == 201
        assert c.post("/api/v1/devices/a%2Bb%23c%25d%2Fe/activity").status == 202
        wait_events(d.data_dir, "e1", "INACTIVITY_EVENT", 1, 5)
        assert wait_until(lambda: len(got_events(sub)) >= 4, 5), sub.received()
        mine = got_events(sub)
        lines = lines_by_seq(d.data_dir)
        for seq, (topic, ev) in mine.items():
            assert ev == lines[seq], (ev, lines[seq])  # the very same JSON as events.jsonl
        topics = {topic for topic, _ in mine.values()}
        assert {"lastseen/events/e1", "lastseen/events/a%2Bb%23c%25d/e", "lastseen/events/mqtt"} <= topics, topics
    finally:
        sub.close()

    # A late subscriber sees every device's current state at once (retained).
    late = broker.subscriber("lastseen/state/#")
    try:
        assert wait_until(lambda: len(late.received()) >= 2, 5), late.received()
        states = {t: (json.loads(p), r) for t, p, r in late.received()}
        e1, retained = states["lastseen/state/e1"]
        assert retained and e1["id"] == "e1" and e1["active"] is False, states
        # The state as of the device's last event (alarm events carry no state,
        # so alarm fields may lag): every state field agrees with the API.
        now = device(d, "e1").body
        assert {k: e1[k] for k in DEVICE_FIELDS} == {k: now[k] for k in DEVICE_FIELDS}, (e1, now)
        odd, _ = states["lastseen/state/a%2Bb%23c%25d/e"]
        assert odd["id"] == "a+b#c%d/e" and odd["active"] is True
        assert "lastseen/state/mqtt" not in states  # SOURCE_* events have no state
    finally:
        late.close()
    st = d.client().stats()
    sink = [s for s in st["outbox"]["sinks"] if s["name"] == "mqtt"]
    assert sink and wait_until(lambda: [s for s in d.client().stats()["outbox"]["sinks"]
                                        if s["name"] == "mqtt"][0]["lag"] == 0, 5), st
    assert st["mqttPublish"]["skipped"] == 0 and st["mqttPublish"]["connected"] is True, st


def test_events_kept_while_broker_down(start_daemon, broker_factory):
    """Events made while the broker is down are published once it is back:
    a subscriber with a persistent session receives every one, in order."""
    b = broker_factory(persistence=True)
    watcher = b.subscriber("lastseen/events/#", client_id="watcher", clean=False)
    watcher.close()  # offline now: the broker queues for it
    d = start(start_daemon, b, topics="devices/{device}/telemetry")
    b.stop()  # graceful: the broker saves the watcher's session
    c = d.client()
    for i in range(20):
        assert c.post("/api/v1/devices/h%d/activity" % i).status in (200, 202)
    wait_events(d.data_dir, type_="ACTIVITY_EVENT", count=20, timeout=5)
    time.sleep(0.3)
    assert d.client().stats()["mqttPublish"]["connected"] is False
    b.start()
    watcher = b.client(client_id="watcher", clean=False)
    try:
        want = [e["seq"] for e in read_events(d.data_dir) if e["type"] == "ACTIVITY_EVENT"]
        assert wait_until(lambda: set(want) <= set(got_events(watcher)), 10), (want, watcher.received())
        seqs = [json.loads(p)["seq"] for t, p, _ in watcher.received() if t.startswith("lastseen/events/")]
        assert seqs == sorted(seqs), seqs  # in seq order
    finally:
        watcher.close()


def test_outbox_survives_lastseen_restart(start_daemon, broker, tmp_path):
    """Events made while the broker is down and lastseen then stops are
    published by the next lastseen, from the durable cursor."""
    data = tmp_path / "data-o"
    data.mkdir()
    d = start(start_daemon, broker, topics="devices/{device}/telemetry", data_dir=data)
    broker.kill()
    c = d.client()
    for i in range(5):
        assert c.post("/api/v1/devices/k%d/activity" % i).status in (200, 202)
    wait_events(data, type_="ACTIVITY_EVENT", count=5, timeout=5)
    d.stop_and_check()
    broker.start()
    sub = broker.subscriber("lastseen/events/#")
    try:
        d = start(start_daemon, broker, topics="devices/{device}/telemetry", data_dir=data)
        want = {e["seq"] for e in read_events(data) if e["type"] == "ACTIVITY_EVENT"}
        assert len(want) == 5
        assert wait_until(lambda: want <= set(got_events(sub)), 10), (want, sub.received())
    finally:
        sub.close()


def test_publish_interrupted_by_broker_restart(start_daemon, broker_factory):
    """The broker goes away while thousands of events are in flight: after it
    is back every event reaches a persistent subscriber (at least once)."""
    b = broker_factory(persistence=True)
    watcher = b.subscriber("lastseen/events/#", client_id="watcher2", clean=False)
    watcher.close()
    d = start(start_daemon, b, topics="devices/{device}/telemetry")
    n = 3000
    r = d.client().post("/api/v1/activity", json_body=["burst-%d" % i for i in range(n)])
    assert r.status in (200, 202), r
    assert wait_until(lambda: d.client().stats()["mqttPublish"]["messages"] > 200, 5)
    b.stop()
    stats_down = d.client().stats()["mqttPublish"]
    b.start()
    watcher = b.client(client_id="watcher2", clean=False)
    try:
        want = {e["seq"] for e in read_events(d.data_dir) if e["type"] == "ACTIVITY_EVENT"}
        assert len(want) == n
        assert wait_until(lambda: want <= set(got_events(watcher)), 30, 0.1), \
            (len(want - set(got_events(watcher))), stats_down)
    finally:
        watcher.close()
    assert wait_until(lambda: [s for s in d.client().stats()["outbox"]["sinks"] if s["name"] == "mqtt"][0]["lag"]
                      == 0, 10)
