"""
MQTT input through the shards' queues: a device's presence operations and
activities are applied in the order they were read, across shards, and a
source transition comes after everything read before it.

The MQTT thread hands its operations to each device's shard in batches;
online / offline ride the same per-shard FIFO as activities.  These tests
publish bursts fast enough that many operations share a batch and
consecutive operations of one device straddle batches, with 4 shards, and
check the final sessions and each device's event sequence: a reordering
(an offline applied before its online, say) leaves a different session
count and a different sequence.  Real Mosquitto broker, real lastseen.
"""

import time

import pytest

from conftest import read_events, wait_until
from test_mqtt import device, mstats, start

pytestmark = pytest.mark.bb_timeout(90)

SHARDS = "engine.shards=4"
PRESENCE = ("ACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT")
ACT, CON, DIS = PRESENCE


def presence_sequences(data_dir, prefix):
    """device -> its ACTIVITY / CONNECT / DISCONNECT events' types, in seq order."""
    seqs = {}
    for e in sorted(read_events(data_dir), key=lambda e: e["seq"]):
        if e["type"] in PRESENCE and e.get("device", "").startswith(prefix):
            seqs.setdefault(e["device"], []).append(e["type"])
    return seqs


def publish_rounds(broker, rounds):
    """Publishes rounds[0] (every message), then rounds[1]..., from one client
    at QoS 1 without waiting between messages: the broker delivers one
    client's messages in order.  Returns when every PUBACK is in."""
    pub = broker.client()
    try:
        infos = [pub.publish(topic, payload, qos=1) for batch in rounds for topic, payload in batch]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.close()


def test_presence_burst_keeps_order_per_device(start_daemon, broker):
    n = 200
    d = start(start_daemon, broker, topics="dev/{device}/data", status_topic="dev/{device}/status",
              sets=[SHARDS])
    a = ["a-%d" % i for i in range(n)]  # online, data, offline: ends closed
    b = ["b-%d" % i for i in range(n)]  # online first; then offline, online: ends open
    c = ["c-%d" % i for i in range(n)]  # online, offline, online, offline, data
    e = ["e-%d" % i for i in range(n)]  # data, online: the activity comes first
    publish_rounds(broker, [[("dev/%s/status" % x, b"online") for x in b]])
    assert wait_until(lambda: mstats(d)["connects"] == n, 10), mstats(d)

    def status(x, p):
        return ("dev/%s/status" % x, p)

    # a and e: each device's messages back to back (they share a batch);
    # b and c: interleaved with the other devices' (they straddle batches).
    rounds = [
        [m for x in a for m in (status(x, b"online"), ("dev/%s/data" % x, b"21.5"), status(x, b"offline"))],
        [status(x, b"offline") for x in b] + [status(x, b"online") for x in c],
        [m for x in e for m in (("dev/%s/data" % x, b"7"), status(x, b"online"))],
        [status(x, b"online") for x in b] + [status(x, b"offline") for x in c],
        [status(x, b"online") for x in c],
        [status(x, b"offline") for x in c] + [("dev/%s/data" % x, b"1") for x in c],
    ]
    publish_rounds(broker, rounds)
    # connects: n (b's first) + n (a) + n (b again) + 2n (c) + n (e); disconnects: n + n + 2n.
    assert wait_until(lambda: mstats(d)["connects"] == 6 * n and mstats(d)["disconnects"] == 4 * n, 15), mstats(d)
    assert wait_until(lambda: mstats(d)["activities"] >= 3 * n, 5), mstats(d)
    time.sleep(0.2)  # anything applied late would show now
    st = mstats(d)
    assert st["connects"] == 6 * n and st["disconnects"] == 4 * n and st["activities"] == 3 * n, st
    assert st["badIds"] == 0 and st["rejected"] == 0, st

    seqs = presence_sequences(d.data_dir, "")
    # A connect that makes a device active comes before its ACTIVITY_EVENT.
    for x in a:
        assert seqs.get(x) == [CON, ACT, DIS], (x, seqs.get(x))
    for x in b:
        assert seqs.get(x) == [CON, ACT, DIS, CON], (x, seqs.get(x))
    for x in c:
        assert seqs.get(x) == [CON, ACT, DIS, CON, DIS], (x, seqs.get(x))
    for x in e:
        assert seqs.get(x) == [ACT, CON], (x, seqs.get(x))
    # The final state, device by device (spread over the 4 shards).
    for x in a[:20] + c[:20]:
        body = device(d, x).body
        assert body["sessions"] == 0 and body["active"] is True, (x, body)
        assert body["lastActivityTime"] >= body["lastConnectTime"], (x, body)
    for x in b[:20]:
        body = device(d, x).body
        assert body["sessions"] == 1 and body["lastConnectTime"] >= body["lastDisconnectTime"] > 0, (x, body)
    for x in e[:20]:
        assert device(d, x).body["sessions"] == 1, x
    assert len(seqs) == 4 * n


def test_source_down_up_applies_backlog_first(start_daemon, broker_factory):
    """The broker restarts (keeping lastseen's persistent session); what it
    queued meanwhile, activities and presence, is applied before the one
    SOURCE_UP that follows the one SOURCE_DOWN."""
    broker = broker_factory(persistence=True)
    d = start(start_daemon, broker, topics="dev/{device}/data", status_topic="dev/{device}/status",
              sets=[SHARDS, "mqtt.reconnect_min=2s", "mqtt.reconnect_max=2s"])
    n = 150
    publish_rounds(broker, [[("dev/p-%d/status" % i, b"online") for i in range(n)]])
    assert wait_until(lambda: mstats(d)["connects"] == n, 10), mstats(d)
    broker.stop()  # clean: the broker saves lastseen's session
    assert wait_until(lambda: mstats(d)["state"] != "up", 5), mstats(d)
    broker.start()
    # lastseen waits 2 s before it reconnects: these queue for its session.
    publish_rounds(broker, [
        [("dev/q-%d/data" % i, b"x") for i in range(n)],
        [("dev/p-%d/status" % i, b"offline") for i in range(n)],
        [("dev/q-%d/status" % i, b"online") for i in range(n)],
    ])
    assert wait_until(lambda: mstats(d)["state"] == "up", 10), mstats(d)
    time.sleep(0.3)
    evs = sorted(read_events(d.data_dir), key=lambda e: e["seq"])
    downs = [e["seq"] for e in evs if e["type"] == "SOURCE_DOWN"]
    ups = [e["seq"] for e in evs if e["type"] == "SOURCE_UP"]
    assert len(downs) == 1 and len(ups) == 2 and ups[0] < downs[0] < ups[1], [
        (e["seq"], e["type"]) for e in evs if e.get("source")]
    backlog = [e for e in evs if e.get("device", "").startswith(("q-", "p-")) and downs[0] < e["seq"]]
    assert len([e for e in backlog if e["device"].startswith("p-") and e["type"] == "DISCONNECT_EVENT"]) == n
    assert len([e for e in backlog if e["device"].startswith("q-") and e["type"] == "CONNECT_EVENT"]) == n
    assert len([e for e in backlog if e["device"].startswith("q-") and e["type"] == "ACTIVITY_EVENT"]) == n
    assert max(e["seq"] for e in backlog) < ups[1], "backlog applied after SOURCE_UP"
    seqs = presence_sequences(d.data_dir, "q-")
    assert all(seqs.get("q-%d" % i) == [ACT, CON] for i in range(n)), seqs
    st = mstats(d)
    assert st["connects"] == 2 * n and st["disconnects"] == n, st
    assert device(d, "q-7").body["sessions"] == 1 and device(d, "p-7").body["sessions"] == 0
