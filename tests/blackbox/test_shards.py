"""engine.shards: devices spread over several engines, each with its own
writer thread.  The same observable behaviour with 1 shard and with 4:
every UDP line applied once, the device list walks every shard exactly
once, events from all shards get one gap-free seq order, types and the
device cap apply across shards, and a restart with another shard count
finds every device again."""
import os
import re
import socket

import pytest

from conftest import read_events, wait_until

UDP_RE = re.compile(r"receiving heartbeats on ([0-9.]+):(\d+)")

SHARDS = [1, 4]


def _udp_socket(d):
    m = UDP_RE.search(d.stderr_text())
    assert m, d.stderr_text()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((m.group(1), int(m.group(2))))
    return s


def _send_lines(s, ids, per_datagram=50):
    for i in range(0, len(ids), per_datagram):
        s.send("".join(x + "\n" for x in ids[i:i + per_datagram]).encode())


def _walk(c, limit, extra=""):
    """Every id of a full paged walk, in order, and the number of pages."""
    ids, after, pages = [], None, 0
    while True:
        q = "/api/v1/devices?limit=%d%s" % (limit, extra) + ("&after=" + after if after else "")
        r = c.get(q)
        assert r.status == 200, r.body
        ids += [dev["id"] for dev in r.body["devices"]]
        pages += 1
        after = r.body["next"]
        if after is None:
            return ids, pages
        assert pages < 10000


@pytest.mark.parametrize("shards", SHARDS)
def test_udp_lines_reach_their_shards_and_list_walks_all(start_daemon, shards):
    d = start_daemon(sets=["udp.listen=127.0.0.1:0", "engine.shards=%d" % shards, "alarms.enabled=false"])
    c = d.client()
    assert c.stats()["shards"]["count"] == shards
    ids = ["dev-%04d" % i for i in range(3000)]
    s = _udp_socket(d)
    _send_lines(s, ids)
    _send_lines(s, ids[:500])  # again: known devices, no new ones
    assert wait_until(lambda: c.stats()["udp"]["activities"] == 3500, 10), c.stats()["udp"]
    st = c.stats()
    assert st["devices"] == 3000
    assert st["shards"]["activities"] == 3500
    assert st["shards"]["queued"] == 0
    # Each page is at most `limit`; the walk returns every device exactly once.
    walked, pages = _walk(c, 7 * 37)
    assert len(walked) == 3000 and set(walked) == set(ids)
    assert pages >= 3000 // (7 * 37)
    # Filters and q work across shards too.
    assert sorted(_walk(c, 50, "&q=dev-012")[0]) == ["dev-%04d" % i for i in range(120, 130)]
    assert len(_walk(c, 1000, "&active=true")[0]) == 3000
    for x in ("dev-0000", "dev-1234", "dev-2999"):
        assert c.device(x).status == 200
    s.close()


@pytest.mark.parametrize("shards", SHARDS)
def test_paging_stable_while_devices_come_and_go(start_daemon, shards):
    d = start_daemon(sets=["engine.shards=%d" % shards])
    c = d.client()
    stay = ["stay-%03d" % i for i in range(200)]
    r = c.post("/api/v1/activity", json_body=[{"id": x} for x in stay])
    assert r.status == 202 and r.body["accepted"] == 200
    seen, after, n = [], None, 0
    while True:
        q = "/api/v1/devices?limit=9" + ("&after=" + after if after else "")
        r = c.get(q)
        seen += [dev["id"] for dev in r.body["devices"]]
        # churn between pages: new devices and deleted ones
        assert c.activity("churn-%d" % n).status == 202
        if n > 0:
            assert c.delete("/api/v1/devices/churn-%d" % (n - 1)).status == 204
        n += 1
        after = r.body["next"]
        if after is None:
            break
    kept = [x for x in seen if x.startswith("stay-")]
    assert sorted(kept) == stay  # each device present throughout: exactly once


@pytest.mark.parametrize("shards", SHARDS)
def test_events_of_all_shards_share_one_seq(start_daemon, shards):
    d = start_daemon(sets=["udp.listen=127.0.0.1:0", "engine.shards=%d" % shards,
                           "state.default_inactivity_timeout=300ms", "alarms.enabled=false"])
    c = d.client()
    ids = ["ev-%03d" % i for i in range(400)]
    s = _udp_socket(d)
    _send_lines(s, ids)
    assert wait_until(lambda: c.stats()["inactive"] == 400, 10), c.stats()
    _send_lines(s, ids)  # all active again
    assert wait_until(lambda: c.stats()["active"] == 400, 10), c.stats()

    def logged():  # ACTIVITY (new), INACTIVITY, ACTIVITY again: 1200 events
        evs = read_events(d.data_dir)
        return evs if len(evs) == 1200 else None
    evs = wait_until(logged, 10)
    assert evs, len(read_events(d.data_dir))
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # strictly increasing, no gap
    inact = [e["device"] for e in evs if e["type"] == "INACTIVITY_EVENT"]
    assert sorted(inact) == ids
    act = [e["device"] for e in evs if e["type"] == "ACTIVITY_EVENT"]
    assert sorted(act) == sorted(ids + ids)
    for x in ids[::37]:  # per device: in order
        assert [e["type"] for e in evs if e["device"] == x] == ["ACTIVITY_EVENT", "INACTIVITY_EVENT",
                                                               "ACTIVITY_EVENT"]
    for e in evs:
        assert e["state"]["type"] == "default"
    s.close()


@pytest.mark.parametrize("shards", SHARDS)
def test_types_and_device_cap_across_shards(start_daemon, shards):
    d = start_daemon(sets=["engine.shards=%d" % shards, "state.max_devices=50"])
    c = d.client()
    ids = ["cap-%02d" % i for i in range(60)]
    r = c.post("/api/v1/activity", json_body=[{"id": x} for x in ids])
    assert r.status == 202
    assert r.body["accepted"] == 50 and r.body["rejectedCount"] == 10  # the cap is one, not one per shard
    assert c.stats()["devices"] == 50
    # Which 50: order is kept per device, not across shards.
    kept = sorted(_walk(c, 100)[0])
    rejected = sorted(ids[x["index"]] for x in r.body["rejected"])
    assert len(kept) == 50 and sorted(kept + rejected) == ids
    # A type named by devices in every shard: listed once, counts summed.
    for x in kept:
        assert c.put("/api/v1/devices/" + x, json_body={"type": "meter"}).status == 200
    assert c.put("/api/v1/device-types/meter", json_body={"inactivityTimeout": 3600000}).status in (200, 201)
    types = {t["type"]: t for t in c.get("/api/v1/device-types").body["types"]}
    assert types["meter"]["devices"] == 50
    assert c.get("/api/v1/device-types/meter").body["devices"] == 50
    for x in kept[::7]:
        assert c.device(x).body["inactivityTimeout"] == 3600000
    assert c.delete("/api/v1/devices/" + kept[0]).status == 204
    assert c.post("/api/v1/activity", json_body=[{"id": "cap-new"}]).body["accepted"] == 1
    assert c.post("/api/v1/activity", json_body=[{"id": "cap-new2"}]).body["accepted"] == 0


def test_restart_with_another_shard_count_finds_every_device(start_daemon, tmp_path):
    data = tmp_path / "shared"
    data.mkdir()
    d = start_daemon(sets=["engine.shards=4"], data_dir=data)
    c = d.client()
    ids = ["rs-%03d" % i for i in range(300)]
    assert c.post("/api/v1/activity", json_body=[{"id": x} for x in ids]).status == 202
    assert c.put("/api/v1/devices/rs-007", json_body={"inactivityTimeout": 123456}).status == 200
    d.stop_and_check()
    for n in (1, 3):
        d = start_daemon(sets=["engine.shards=%d" % n], data_dir=data)
        c = d.client()
        st = c.stats()
        assert st["devices"] == 300 and st["shards"]["count"] == n
        assert sorted(_walk(c, 100)[0]) == ids
        assert c.device("rs-007").body["inactivityTimeout"] == 123456
        d.stop_and_check()


def test_threads_are_named(start_daemon):
    """Each thread of lastseen's own is named (top -H, perf, gdb): a worker
    per shard, the committer, the UDP reader."""
    d = start_daemon(sets=["udp.listen=127.0.0.1:0", "engine.shards=3"])
    task = "/proc/%d/task" % d.proc.pid
    names = set()
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "comm")) as f:
                names.add(f.read().strip())
        except OSError:
            pass  # a thread that ended meanwhile
    assert {"ls-shard0", "ls-shard1", "ls-shard2", "ls-committer", "ls-udp"} <= names, names
    assert "ls-shard3" not in names
