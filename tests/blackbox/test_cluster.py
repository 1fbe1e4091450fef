"""
Cluster mode (docs/cluster.md) with three real nats-server processes and
real lastseen nodes: partitions spread over the nodes, each owned once; the
nodes' partitions are the ones nats-server's dev.* mapping picks; a device
reported inactive exactly once, by the owner of its partition, whichever
node it reached; a device that keeps sending through different nodes never
reported; devices that publish on NATS and on the servers' MQTT listener
heard too; ids that are no NATS token round-trip; a NATS server killed
while devices keep sending raises no false INACTIVITY_EVENT; and
scripts/cluster.sh.  The harness is cluster_util.py.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from cluster_util import (NatsClient, NatsCluster, all_events, cluster_stats, device_events, owner_of,
                          partition, send_activity, start_nodes, token, wait_all_owned)
from conftest import LASTSEEN_BIN, Client, assert_error, dev_path, wait_until

T_MS = 3000  # the nodes' default inactivity timeout in most tests


@pytest.fixture
def nats(tmp_path):
    """Three nats-server processes, killed at teardown (after the nodes stop:
    fixtures tear down in reverse order)."""
    c = NatsCluster(tmp_path)
    yield c
    c.kill()


def wait_device_events(nodes, devices, type_, count, timeout):
    """Until each device has `count` events of type_ in the nodes' files."""
    def enough():
        evs = device_events(nodes, type_, set(devices))
        return all(sum(1 for e in evs if e["device"] == d) >= count for d in devices)
    wait_until(enough, timeout, 0.05)
    return device_events(nodes, type_, set(devices))


@pytest.mark.bb_timeout(90)
def test_partitions_spread_and_match_the_server_mapping(nats, start_daemon):
    nodes = start_nodes(start_daemon, nats)
    layout = wait_all_owned(nodes)
    for name, ps in layout.items():
        assert ps, "%s owns nothing: %r" % (name, layout)
    for d in nodes:
        st = cluster_stats(d)
        assert sorted(st["members"]) == ["node-1", "node-2", "node-3"], st
        assert st["connected"] and st["streamHeard"], st

    # The node's partition of a device (the subject it publishes to) is the
    # one nats-server's partition() mapping picks for dev.<token>, and the
    # one cluster_util computes.
    watch = NatsClient(nats.servers[0].url)
    watch.sub("ls.in.>")
    ids = ["map-%d" % i for i in range(200)] + ["map.%d x" % i for i in range(40)] + ["*", ">", "a b"]
    c = nodes[1].client(timeout=10.0)
    r = c.post("/api/v1/activity", json_body=ids)
    assert r.status == 202 and r.body["accepted"] == len(ids), r
    msgs = watch.collect(len(ids))
    assert len(msgs) == len(ids), "saw %d of %d messages" % (len(msgs), len(ids))
    by_node = {}
    for subject, _, _ in msgs:
        _, _, p, tok = subject.split(".", 3)
        by_node[tok] = int(p)
    assert set(by_node) == {token(i) for i in ids}
    watch.msgs.clear()
    pub = NatsClient(nats.servers[2].url)
    for tok in by_node:
        pub.pub("dev." + tok, b"{}")
    pub.flush()
    msgs = watch.collect(len(ids))
    by_server = {}
    for subject, _, _ in msgs:
        _, _, p, tok = subject.split(".", 3)
        by_server[tok] = int(p)
    assert by_server == by_node
    for i in ids:
        assert by_node[token(i)] == partition(i)
    watch.close()
    pub.close()


@pytest.mark.bb_timeout(120)
def test_each_device_reported_once_by_its_owner(nats, start_daemon):
    nodes = start_nodes(start_daemon, nats, sets=["state.default_inactivity_timeout=%dms" % T_MS])
    layout = wait_all_owned(nodes)
    # Silent after one activity, through different nodes; ids that are no token too.
    quiet = ["quiet-1", "quiet.2", "quiet 3", "quiet*4", "quiet>5", "gr\u00fcn/6", "~7"]
    for k, dev in enumerate(quiet):
        assert send_activity(nodes[k % 3], dev) == 202
    # Devices that keep sending, each through a different node every time.
    busy = ["busy-1", "busy.2", "busy 3", "busy-4"]
    end = time.monotonic() + 2.5 * T_MS / 1000
    rnd = 0
    while time.monotonic() < end:
        for j, dev in enumerate(busy):
            assert send_activity(nodes[(rnd + j) % 3], dev) == 202
        rnd += 1
        time.sleep(0.4)

    inact = wait_device_events(nodes, quiet, "INACTIVITY_EVENT", 1, 5.0)
    for dev in quiet:
        mine = [e for e in inact if e["device"] == dev]
        assert len(mine) == 1, (dev, mine)
        assert mine[0]["_node"] == owner_of(dev, layout), (dev, mine, layout)
        acts = device_events(nodes, "ACTIVITY_EVENT", {dev})
        assert len(acts) == 1 and acts[0]["_node"] == mine[0]["_node"], acts
    assert device_events(nodes, "INACTIVITY_EVENT", set(busy)) == []

    # They stop: each is reported once, by its owner.
    inact = wait_device_events(nodes, busy, "INACTIVITY_EVENT", 1, T_MS / 1000 + 5.0)
    time.sleep(0.5)
    inact = device_events(nodes, "INACTIVITY_EVENT", set(busy))
    for dev in busy:
        mine = [e for e in inact if e["device"] == dev]
        assert len(mine) == 1 and mine[0]["_node"] == owner_of(dev, layout), (dev, mine)
    # Still exactly one for the quiet ones, a timeout later.
    assert len(device_events(nodes, "INACTIVITY_EVENT", set(quiet))) == len(quiet)

    # Answers of the routes that feed devices, and of those cluster mode has not.
    c = nodes[0].client()
    r = c.post(dev_path("sess-1", "/connect"))
    assert r.status == 202 and r.body == {"accepted": 1}, r
    r = c.post(dev_path("sess-1", "/disconnect"))
    assert r.status == 202 and r.body == {"accepted": 1}, r
    r = c.post("/api/v1/activity", body='"nd-1"\n{"id": "nd-2", "ts": 1}\n"bad\u0001"\n')
    assert r.status == 202 and r.body["accepted"] == 2 and r.body["rejectedCount"] == 1, r
    r = c.put(dev_path("sess-1"), json_body={})
    assert r.status == 202 and r.body == {"accepted": 1}, r
    assert_error(c.put(dev_path("sess-1"), json_body={"inactivityTimeout": 5000}), 501,
                 "not_in_cluster_mode")
    assert_error(c.delete(dev_path("sess-1")), 501, "not_in_cluster_mode")
    assert_error(c.put("/api/v1/device-types/meter", json_body={"inactivityTimeout": 5000}), 501,
                 "not_in_cluster_mode")
    conn = wait_device_events(nodes, ["sess-1"], "CONNECT_EVENT", 1, 3.0)
    assert [e["_node"] for e in conn] == [owner_of("sess-1", layout)]
    wait_device_events(nodes, ["sess-1"], "DISCONNECT_EVENT", 1, 3.0)
    st = cluster_stats(nodes[0])
    assert st["publishFailures"] == 0 and st["publishTimeouts"] == 0, st
    assert st["stored"] == st["published"], st


@pytest.mark.bb_timeout(90)
def test_devices_on_nats_and_mqtt(nats, start_daemon):
    nodes = start_nodes(start_daemon, nats, sets=["state.default_inactivity_timeout=%dms" % T_MS])
    layout = wait_all_owned(nodes)
    c = NatsClient(nats.servers[1].url)
    c.pub("dev.nats-dev-1", b'{"temp": 21}')
    c.pub("dev." + token("nats.dev 2"), b"")
    c.pub("dev.nats-dev-3", b"", headers={"Ls": "on"})  # a session, as lastseen writes it
    c.pub("dev.nats-dev-4", b"", headers={"Ls": "nonsense"})  # refused, counted
    c.flush()
    c.close()
    m = nats.servers[2]
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(m.mqtt), "-q", "1",
                    "-i", "lastseen-test", "-t", "dev/mqtt-dev-1", "-m", "hello"],
                   check=True, timeout=10)
    devs = ["nats-dev-1", "nats.dev 2", "nats-dev-3", "mqtt-dev-1"]
    acts = wait_device_events(nodes, devs, "ACTIVITY_EVENT", 1, 5.0)
    assert sorted(e["device"] for e in acts) == sorted(devs), acts
    for e in acts:
        assert e["_node"] == owner_of(e["device"], layout), e
    assert len(device_events(nodes, "CONNECT_EVENT", {"nats-dev-3"})) == 1
    inact = wait_device_events(nodes, devs, "INACTIVITY_EVENT", 1, T_MS / 1000 + 5.0)
    assert sorted(e["device"] for e in inact) == sorted(devs), inact
    assert device_events(nodes, None, {"nats-dev-4"}) == []
    rejected = sum(cluster_stats(d)["rejected"]["header"] for d in nodes)
    assert rejected == 1


@pytest.mark.bb_timeout(120)
def test_nats_server_killed_no_false_inactivity(nats, start_daemon):
    """The server leading LS_IN is killed while devices keep sending through
    the nodes (HTTP, 503 answers sent again) and directly to the other
    servers: nobody is reported until they stop sending."""
    t_ms = 6000
    nodes = start_nodes(start_daemon, nats, sets=["state.default_inactivity_timeout=%dms" % t_ms])
    wait_all_owned(nodes)
    leader = nats.stream_leader("LS_IN")
    assert leader, "no leader for LS_IN"
    victim = nats.server(leader)
    others = [s for s in nats.servers if s is not victim]
    http_devs = ["kill-http-%d" % i for i in range(4)]
    nats_devs = ["kill-nats-%d" % i for i in range(4)]
    stop = threading.Event()
    errors = []

    def http_sender():
        clients = [Client(d.host, d.port, timeout=5.0) for d in nodes]
        k = 0
        while not stop.is_set():
            for dev in http_devs:
                for _ in range(10):  # 503 while the stream has no leader: again
                    try:
                        r = clients[k % 3].activity(dev)
                    except OSError as e:
                        r = e
                    k += 1
                    if getattr(r, "status", None) == 202:
                        break
                    time.sleep(0.1)
            time.sleep(0.5)
        for c in clients:
            c.close()

    def nats_sender():
        try:
            conns = [NatsClient(s.url) for s in others]
            k = 0
            while not stop.is_set():
                for dev in nats_devs:
                    conns[k % 2].pub("dev." + dev)
                    k += 1
                for c in conns:
                    c.flush()
                time.sleep(0.5)
            for c in conns:
                c.close()
        except Exception as e:  # reported by the test
            errors.append(e)

    threads = [threading.Thread(target=http_sender), threading.Thread(target=nats_sender)]
    for t in threads:
        t.start()
    try:
        time.sleep(3.0)
        victim.kill()
        time.sleep(20.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    devs = http_devs + nats_devs
    downs = [e for e in all_events(nodes) if e["type"] == "SOURCE_DOWN"]
    assert device_events(nodes, "INACTIVITY_EVENT", set(devs)) == [], downs
    # Still detected once they stop.
    inact = wait_device_events(nodes, devs, "INACTIVITY_EVENT", 1, t_ms / 1000 * 2 + 8.0)
    assert sorted(e["device"] for e in inact) == sorted(devs), (inact, downs)


@pytest.mark.bb_timeout(120)
def test_cluster_sh_up_and_down(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "cluster.sh")
    d = tmp_path / "cl"
    env = dict(os.environ, LASTSEEN_BIN=LASTSEEN_BIN)
    info = {"nodes": [], "nats": []}
    up = subprocess.run([script, "up", str(d), "--nodes", "2", "--",
                         "--set", "state.default_inactivity_timeout=2s"],
                        env=env, capture_output=True, text=True, timeout=100)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        info = json.loads((d / "cluster.json").read_text())
        assert [n["name"] for n in info["nodes"]] == ["node-1", "node-2"]
        assert len(info["nats"]) == 3 and all(s["url"].startswith("nats://127.0.0.1:") for s in info["nats"])
        host, port = info["nodes"][0]["http"].split(":")
        c = Client(host, int(port))
        assert c.activity("via-script").status == 202
        c.close()
        evs = wait_until(lambda: [json.loads(l) for n in ("node-1", "node-2")
                                  for l in open(d / n / "events.jsonl").read().splitlines()
                                  if '"via-script"' in l and "INACTIVITY_EVENT" in l], 10.0, 0.1)
        assert evs and len(evs) == 1, evs
    finally:
        down = subprocess.run([script, "down", str(d)], env=env, capture_output=True, text=True,
                              timeout=60)
    assert down.returncode == 0, down.stderr
    for p in [n["pid"] for n in info["nodes"]] + [s["pid"] for s in info["nats"]]:
        with pytest.raises(ProcessLookupError):
            os.kill(p, 0)
    for n in ("node-1", "node-2"):
        log = (d / ("%s.log" % n)).read_text()
        assert "daemon: stopped" in log, log[-2000:]
