#!/usr/bin/python3
"""
MQTT ingest benchmark: how many messages per second lastseen takes from a
Mosquitto broker, side by side with the broker's own ceiling on this
machine: the rate a bare `mosquitto_sub` drains from the same broker, with
the same messages, at the same time.

Each run starts a fresh broker on a free loopback port, lastseen with
mqtt.topics = bench/{device}/t (event publishing off: only ingest is
measured) and mosquitto_sub on bench/+/t.  A warm-up pass creates every
device (so the measured pass is the steady state: activities of known,
active devices); then `lastseen-bench mqtt-pub` publishes --messages
messages over --devices topics as fast as the broker takes them (QoS 0), or
with at most 1000 unacknowledged (QoS 1).  The broker fans each message out
to both subscribers; whichever is slower falls behind and the broker queues
for it.  For each: rate = messages / (arrival of the last - arrival of the
first), counted from mosquitto_sub's output lines and from lastseen's
mqtt.received counter (polled every 5 ms); "drain" = how long after the
publisher finished it had everything; CPU = its user + system time per
message.  ratio = lastseen / mosquitto_sub: 1.0 means lastseen is not the
bottleneck.  Measuring both at once makes the ratio immune to the load
other processes put on the machine, which moves both rates together.

Then, with lastseen alone at half the measured ceiling, probes measure the
ingest lag: a message to a new device, timed from mosquitto_pub's exit until
GET /api/v1/devices/<id> finds it (polled every 1 ms).

  /usr/bin/python3 bench/mqtt_ingest.py [--messages 400000] [--devices 10000] [--qos 0] [--runs 3]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on %d" % port)


class Broker:
    def __init__(self, work):
        self.port = free_port()
        conf = os.path.join(work, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\n" % self.port)
            if os.geteuid() == 0:
                f.write("user root\n")
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish(args, port, messages, rate=0, prefix="bench/"):
    out = subprocess.run([args.bench, "mqtt-pub", "--port", str(port), "--devices", str(args.devices),
                          "--messages", str(messages), "--qos", str(args.qos), "--rate", str(rate),
                          "--prefix", prefix], capture_output=True, check=True, timeout=600)
    return json.loads(out.stdout), time.monotonic()


class Counter:
    """(time, count) samples of one consumer."""

    def __init__(self):
        self.samples = []
        self.count = 0

    def add(self, n):
        self.count = n
        self.samples.append((time.monotonic(), n))

    def rate(self, base, total, pub_done):
        """msg/s from the first to the last message of the pass, and the drain
        time after the publisher finished (ms)."""
        t_first = next(t for t, c in self.samples if c > base)
        t_last = next(t for t, c in self.samples if c >= base + total)
        return total / (t_last - t_first), max(0.0, (t_last - pub_done) * 1000)


class MosquittoSub:
    """A bare mosquitto_sub on bench/+/t; its output lines are counted."""

    def __init__(self, args, broker):
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                                      "bench/+/t", "-q", str(args.qos)], stdout=subprocess.PIPE)
        self.ctr = Counter()
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _reader(self):
        fd = self.proc.stdout.fileno()
        n = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            n += chunk.count(b"\n")
            self.ctr.add(n)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        self.t.join(5)


class Lastseen:
    def __init__(self, args, broker, work):
        self.data = tempfile.mkdtemp(dir=work)
        self.err_path = os.path.join(work, "lastseen.stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [args.bin, "--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=" + self.data,
             "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % broker.port,
             "--set", "mqtt.topics=bench/{device}/t", "--set", "mqtt.qos=%d" % args.qos,
             "--set", "mqtt.event_topic=", "--set", "mqtt.state_topic="],
            stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 10
        self.port = None
        while self.port is None and time.monotonic() < deadline:
            self.port = self._find_port()
            time.sleep(0.05)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while self.mqtt().get("state") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("lastseen did not connect")
            time.sleep(0.02)
        self.ctr = Counter()

    def _find_port(self):
        with open(self.err_path, "rb") as f:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", f.read())
        return int(m.group(1)) if m else None

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read()

    def mqtt(self):
        status, body = self.get("/api/v1/stats")
        return json.loads(body).get("mqtt", {}) if status == 200 else {}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.err.close()
        shutil.rmtree(self.data, ignore_errors=True)


def measure(args, broker, ls, sub):
    """One pass of --messages with the consumers given (either may be None):
    each one's rate, drain time and CPU per message."""
    cons = [c for c in (ls, sub) if c]
    publish(args, broker.port, args.devices)  # warm-up: every device exists and is active
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ((ls and ls.mqtt()["activities"] < args.devices) or
                                           (sub and sub.ctr.count < args.devices)):
        time.sleep(0.02)
    if ls:
        ls.ctr.add(ls.mqtt()["received"])
    base = {id(c): c.ctr.count for c in cons}
    done = threading.Event()

    def poller():
        while not done.is_set():
            ls.ctr.add(ls.mqtt()["received"])
            time.sleep(0.005)

    pt = threading.Thread(target=poller, daemon=True)
    cpu = {id(c): cpu_s(c.proc.pid) for c in cons}
    if ls:
        pt.start()
    pub, pub_done = publish(args, broker.port, args.messages)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(c.ctr.count < base[id(c)] + args.messages for c in cons):
        time.sleep(0.01)
    cpu = {id(c): cpu_s(c.proc.pid) - cpu[id(c)] for c in cons}
    done.set()
    if ls:
        pt.join(5)
    out = {"offered": pub["rate"]}
    for name, c in (("lastseen", ls), ("mosquitto_sub", sub)):
        if not c:
            continue
        if c.ctr.count < base[id(c)] + args.messages:
            return None
        rate, drain = c.ctr.rate(base[id(c)], args.messages, pub_done)
        out[name] = {"rate": rate, "drain_ms": drain, "cpu_us_per_msg": cpu[id(c)] * 1e6 / args.messages}
    return out


def probe_lag(args, broker, ls, rate):
    """Ingest lag at `rate` msg/s of background load: probes timed until the API sees them."""
    stop = threading.Event()

    def background():
        while not stop.is_set():
            publish(args, broker.port, max(1000, rate), rate=rate)

    bg = threading.Thread(target=background, daemon=True)
    bg.start()
    time.sleep(0.5)
    lags = []
    for k in range(args.probes):
        dev = "probe-%d-%d" % (os.getpid(), k)
        t0 = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "bench/%s/t" % dev,
                        "-m", "x", "-q", str(args.qos)], check=True)
        t_sent = time.monotonic()
        while ls.get("/api/v1/devices/" + dev)[0] != 200:
            if time.monotonic() - t0 > 5:
                break
            time.sleep(0.001)
        # mosquitto_pub's own start-up is not lag: count from its exit,
        # and add back nothing (the message left before it exited).
        lags.append((time.monotonic() - t_sent) * 1000)
        time.sleep(0.05)
    stop.set()
    bg.join(30)
    return lags


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "lastseen"))
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "lastseen-bench"))
    ap.add_argument("--messages", type=int, default=400000)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--qos", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--probes", type=int, default=40)
    args = ap.parse_args()

    rows = []
    for run in range(args.runs):
        row = {"run": run + 1, "ratio": None}
        with tempfile.TemporaryDirectory(prefix="lastseen-mqtt-bench-") as work:
            broker = Broker(work)
            ls = sub = None
            try:
                # 1. side by side; 2. lastseen alone, with the ingest lag; 3. mosquitto_sub alone.
                ls = Lastseen(args, broker, work)
                sub = MosquittoSub(args, broker)
                both = measure(args, broker, ls, sub)
                sub.stop()
                sub = None
                if both:
                    row.update(both)
                    row["ratio"] = both["lastseen"]["rate"] / both["mosquitto_sub"]["rate"]
                    alone = measure(args, broker, ls, None)
                    row["lastseen_alone"] = alone and alone["lastseen"]
                    lags = probe_lag(args, broker, ls, int(both["mosquitto_sub"]["rate"] / 2))
                    lags.sort()
                    row["lag_ms"] = {"p50": statistics.median(lags), "p99": lags[-1 - len(lags) // 100],
                                     "max": lags[-1], "at_rate": int(both["mosquitto_sub"]["rate"] / 2)}
                ls.stop()
                ls = None
                sub = MosquittoSub(args, broker)
                time.sleep(0.3)
                alone = measure(args, broker, None, sub)
                row["mosquitto_sub_alone"] = alone and alone["mosquitto_sub"]
            finally:
                if sub:
                    sub.stop()
                if ls:
                    ls.stop()
                broker.stop()
        rows.append(row)
        print(json.dumps(row), flush=True)

    ok = [r for r in rows if r["ratio"]]
    if ok:
        def line(label, xs, fmt="%8.0f msg/s", rfmt="%.0f"):
            xs = [x for x in xs if x is not None]
            if xs:
                print(("  %-36s " + fmt + "  [" + rfmt + ".." + rfmt + "]") % (label, statistics.median(xs), min(xs),
                                                                            max(xs)))

        print("\nqos %d, %d messages over %d devices, %d runs (median [min..max]):" % (
            args.qos, args.messages, args.devices, len(ok)))
        line("side by side: mosquitto_sub", [r["mosquitto_sub"]["rate"] for r in ok])
        line("side by side: lastseen", [r["lastseen"]["rate"] for r in ok])
        line("ratio lastseen / mosquitto_sub", [r["ratio"] for r in ok], "%8.3f      ", "%.3f")
        line("CPU per message: mosquitto_sub", [r["mosquitto_sub"]["cpu_us_per_msg"] for r in ok], "%8.1f us   ",
             "%.1f")
        line("CPU per message: lastseen", [r["lastseen"]["cpu_us_per_msg"] for r in ok], "%8.1f us   ", "%.1f")
        line("alone: mosquitto_sub", [(r.get("mosquitto_sub_alone") or {}).get("rate") for r in ok])
        line("alone: lastseen", [(r.get("lastseen_alone") or {}).get("rate") for r in ok])
        lag = [r["lag_ms"] for r in ok if "lag_ms" in r]
        if lag:
            line("ingest lag p50 at half the ceiling", [x["p50"] for x in lag], "%8.1f ms   ", "%.1f")
            line("ingest lag max", [x["max"] for x in lag], "%8.1f ms   ", "%.1f")
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
