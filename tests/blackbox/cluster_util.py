"""
Cluster mode's black-box harness: real nats-server processes and real
lastseen nodes, for tests/blackbox/test_cluster.py and the fault tests to
come.

- NatsServer / NatsCluster: three nats-server processes on free loopback
  ports, with JetStream (store dirs under the test's tmp dir), routes
  between them, the MQTT listener, server_name and the `dev.*` partition
  mapping of docs/cluster.md, the same configuration as
  scripts/cluster.sh.  Every wait is bounded; each server can be stopped,
  killed and started again; all are killed at teardown (the fixtures in
  conftest.py / test files do it, also on failure).
- NatsClient: enough of the NATS client protocol (PUB, HPUB, SUB, MSG,
  HMSG, PING/PONG) over a plain socket to publish as a device would and
  to watch subjects: Debian has no Python NATS client.
- start_nodes(): lastseen nodes through conftest's daemon factory (so the
  usual teardown checks apply: exit 0, no sanitizer report), and helpers
  to read their "cluster" figures and their events files.
- token() / partition(): the escaping and partition rules, written again
  in Python from docs/cluster.md, to find a device's owner; test_cluster.py
  checks that they agree with the nodes and with nats-server.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import now_ms, read_events, wait_until

NATS_START_TIMEOUT = 30.0
SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:@!$%&'()+,;=-")


def token(device_id):
    """The NATS subject token of a device id (docs/cluster.md, "Tokens")."""
    if device_id and all(c in SAFE for c in device_id):
        return device_id
    return "~" + base64.urlsafe_b64encode(device_id.encode()).decode().rstrip("=")


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def partition(device_id, partitions=64):
    return fnv1a32(token(device_id).encode()) % partitions


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http_json(addr, path, timeout=2.0):
    with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=timeout) as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------
# nats-server
# --------------------------------------------------------------------------


class NatsServer:
    def __init__(self, workdir, k, client, monitor, route, mqtt, routes, partitions):
        self.k = k
        self.client, self.monitor, self.route, self.mqtt = client, monitor, route, mqtt
        self.name = "ls-nats-%d" % k
        self.url = "nats://127.0.0.1:%d" % client
        self.conf = os.path.join(workdir, "nats-%d.conf" % k)
        self.log = os.path.join(workdir, "nats-%d.log" % k)
        store = os.path.join(workdir, "nats-%d" % k)
        with open(self.conf, "w") as f:
            f.write(
                'server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n'
                'jetstream {\n  store_dir: "%s"\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}\n'
                "cluster {\n  name: lastseen\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n"
                "mqtt {\n  listen: 127.0.0.1:%d\n}\n"
                'mappings {\n  "dev.*": "ls.in.{{partition(%d,1)}}.{{wildcard(1)}}"\n}\n'
                % (self.name, client, monitor, store, route, routes, mqtt, partitions))
        self.proc = None
        self.start()

    def start(self):
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(["nats-server", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None:
            self._log.close()

    def kill(self):
        self.stop(signal.SIGKILL)

    def jsz(self):
        return http_json("127.0.0.1:%d" % self.monitor, "/jsz?accounts=true&streams=true")

    def meta_leader(self):
        try:
            return self.jsz().get("meta_cluster", {}).get("leader")
        except OSError:
            return None


class NatsCluster:
    """Three nats-server processes in one JetStream cluster."""

    def __init__(self, workdir, partitions=64):
        ports = free_ports(12)
        routes = ", ".join("nats-route://127.0.0.1:%d" % ports[i * 4 + 2] for i in range(3))
        self.partitions = partitions
        self.servers = []
        try:
            for i in range(3):
                self.servers.append(NatsServer(str(workdir), i + 1, *ports[i * 4:i * 4 + 4],
                                               routes=routes, partitions=partitions))
            self.wait_ready()
        except BaseException:
            self.kill()
            raise

    def urls(self, servers=None):
        return ",".join(s.url for s in (servers or self.servers))

    def wait_ready(self, servers=None, timeout=NATS_START_TIMEOUT):
        """Until every (given, running) server sees a JetStream meta leader."""
        for s in servers or self.servers:
            ok = wait_until(lambda: s.meta_leader() or not s.alive(), timeout, 0.1)
            if not s.alive():
                pytest.fail("%s exited; log:\n%s" % (s.name, open(s.log).read()[-3000:]))
            if not ok:
                pytest.fail("%s: no JetStream meta leader within %.0f s" % (s.name, timeout))

    def stream_leader(self, stream):
        """The server name leading `stream`, as a running server sees it, or None."""
        for s in self.servers:
            if not s.alive():
                continue
            try:
                for acc in s.jsz().get("account_details", []):
                    for st in acc.get("stream_detail", []) or []:
                        if st.get("name") == stream:
                            return (st.get("cluster") or {}).get("leader")
            except OSError:
                continue
        return None

    def server(self, name):
        return next(s for s in self.servers if s.name == name)

    def kill(self):
        for s in self.servers:
            s.kill()


# --------------------------------------------------------------------------
# A NATS client, as much as the tests need
# --------------------------------------------------------------------------


class NatsClient:
    def __init__(self, url, timeout=5.0):
        host, port = url.replace("nats://", "").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.msgs = []  # (subject, headers bytes or None, payload)
        line = self._line()
        assert line.startswith(b"INFO "), line
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1,"name":"lastseen-test"}\r\n')
        self.flush()

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("NATS server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read_one(self):
        """Reads one protocol message; returns its verb."""
        line = self._line()
        parts = line.split(b" ")
        verb = parts[0].upper()
        if verb == b"PING":
            self.sock.sendall(b"PONG\r\n")
        elif verb == b"MSG":
            self.msgs.append((parts[1].decode(), None, self._bytes(int(parts[-1]))))
        elif verb == b"HMSG":
            hlen, tlen = int(parts[-2]), int(parts[-1])
            data = self._bytes(tlen)
            self.msgs.append((parts[1].decode(), data[:hlen], data[hlen:]))
        elif verb == b"-ERR":
            raise AssertionError("NATS error: %r" % line)
        return verb

    def flush(self):
        """PING and read until the PONG: everything sent before is processed."""
        self.sock.sendall(b"PING\r\n")
        while self._read_one() != b"PONG":
            pass

    def pub(self, subject, payload=b"", headers=None):
        if headers:
            h = b"NATS/1.0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                                           for k, v in headers.items()) + b"\r\n"
            self.sock.sendall(b"HPUB %s %d %d\r\n%s%s\r\n"
                              % (subject.encode(), len(h), len(h) + len(payload), h, payload))
        else:
            self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))

    def sub(self, subject, sid=1):
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), sid))
        self.flush()

    def collect(self, count, timeout=5.0):
        """Reads messages until `count` are in self.msgs or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while len(self.msgs) < count and time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self._read_one()
            except socket.timeout:
                break
        self.sock.settimeout(5.0)
        return self.msgs


# --------------------------------------------------------------------------
# lastseen nodes
# --------------------------------------------------------------------------


def start_nodes(start_daemon, nats, n=3, sets=(), servers=None):
    """n lastseen nodes node-1..node-n on `nats` (a NatsCluster), each with
    its own data dir, through conftest's daemon factory; `sets` go to all."""
    nodes = []
    for i in range(n):
        d = start_daemon(sets=["cluster.nats=%s" % nats.urls(servers), "cluster.node=node-%d" % (i + 1),
                               "cluster.partitions=%d" % nats.partitions] + list(sets))
        d.name = "node-%d" % (i + 1)
        nodes.append(d)
    return nodes


def cluster_stats(node):
    """The node's "cluster" member of /api/v1/stats."""
    c = node.client(timeout=5.0)
    try:
        return c.stats()["cluster"]
    finally:
        c.close()


def owned(node):
    return [p["partition"] for p in cluster_stats(node)["owned"]]


def wait_all_owned(nodes, partitions=64, timeout=30.0):
    """Until every partition is owned exactly once and none catches up; returns
    {node name: [partitions]}."""
    last = {}

    def done():
        last.clear()
        for d in nodes:
            st = cluster_stats(d)
            if st["catchingUp"]:
                return False
            last[d.name] = sorted(p["partition"] for p in st["owned"])
        allp = sorted(p for ps in last.values() for p in ps)
        return allp == list(range(partitions))

    if not wait_until(done, timeout, 0.1):
        pytest.fail("partitions not settled within %.0f s: %r" % (timeout, last))
    return dict(last)


def owner_of(device_id, layout, partitions=64):
    p = partition(device_id, partitions)
    return next(name for name, ps in layout.items() if p in ps)


def all_events(nodes):
    """Every node's events, each tagged with its node's name in "_node"."""
    out = []
    for d in nodes:
        for e in read_events(d.data_dir):
            e["_node"] = d.name
            out.append(e)
    return out


def device_events(nodes, type_=None, devices=None):
    return [e for e in all_events(nodes)
            if e.get("device") is not None and not e.get("source")
            and (type_ is None or e["type"] == type_) and (devices is None or e["device"] in devices)]


def send_activity(node, device_id, retries=20):
    """POSTs an activity through `node`, again after a 503 (the stream could
    not store it); returns the final status."""
    c = node.client(timeout=10.0)
    try:
        for _ in range(retries):
            r = c.activity(device_id)
            if r.status != 503:
                return r.status
            time.sleep(0.2)
        return r.status
    finally:
        c.close()


__all__ = ["NatsCluster", "NatsClient", "start_nodes", "cluster_stats", "owned", "wait_all_owned",
           "owner_of", "all_events", "device_events", "send_activity", "token", "partition", "now_ms"]
