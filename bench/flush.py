#!/usr/bin/python3
"""The flush of N dirty devices through the daemon: how long writing the
lastActivityTime of N devices that all reported takes, how long the
committer holds the engine lock meanwhile, and how long an acknowledged
change (a commit of its own) waits while it runs.

Setup: N devices with 36-character UUID ids are written into the store with
`lastseen import` (active), and the daemon is started on them with
store.flush_interval = F.  Then every device sends one heartbeat (bulk
requests of 10,000 ids, 4 in flight), so that the next flush has all N
dirty.  From the first heartbeat until W seconds after the last, a probe
thread sends `PUT /api/v1/devices/probe-K {"inactivityTimeout": ...}` back
to back; each is answered once its commit is on disk, so its latency is the
time an event or a change waits for the store.

Figures: the heartbeats' send time; the probes' latency p50 / p99 / max and
count; and from /api/v1/stats when the daemon has them (builds with flush
passes): the last pass (records, ms), the longest hold of the engine lock
by the committer, and the commits.  Loopback only; every wait bounded; the
daemon and its directory are removed at the end.

usage: bench/flush.py [--bin build/lastseen] [--devices N] [--interval-s F]
                      [--window-s W] [--runs R] [--json]
"""

import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsbench  # noqa: E402

BULK = 10000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, n, interval_s, window_s, seed):
    rng = random.Random(seed)
    ids = lsbench.uuids(n, rng)
    d = lsbench.Daemon(binary, {"store.flush_interval": "%dms" % round(interval_s * 1000),
                                "state.default_inactivity_timeout": "600s"})
    pool = client = None
    try:
        d.start()
        rc = d.stop(remove=False)
        if rc != 0:
            raise lsbench.RunError("exit code %s after SIGTERM" % rc)
        d.import_devices(ids, b'"active":true,"lastActivityTime":%d' % int(time.time() * 1000))
        d.start()
        client = lsbench.Client(d.http_port)
        pool = lsbench.BulkPool(d.http_port, 4)
        lat = []
        stop = threading.Event()

        def probe():
            c = lsbench.Client(d.http_port)
            k = 0
            try:
                while not stop.is_set():
                    t0 = time.monotonic()
                    status, _ = c.request("PUT", "/api/v1/devices/probe-%d" % (k % 100),
                                          b'{"inactivityTimeout": %d}' % (60000 + k))
                    if status not in (200, 201):
                        raise lsbench.RunError("probe PUT: %s" % status)
                    lat.append((time.monotonic() - t0) * 1000.0)
                    k += 1
            finally:
                c.close()

        pt = threading.Thread(target=probe, daemon=True)
        pt.start()
        t0 = time.monotonic()
        for i in range(0, n, BULK):
            pool.submit([b'"' + x + b'"' for x in ids[i:i + BULK]])
        pool.wait()
        send_s = time.monotonic() - t0
        time.sleep(window_s)
        stop.set()
        pt.join(30)
        st = client.json("GET", "/api/v1/stats")
        if st["activities"] < n:
            raise lsbench.RunError("lastseen counted %d activities, %d were sent" % (st["activities"], n))
        lat.sort()
        res = {"devices": n, "interval_s": interval_s, "send_s": send_s, "probes": len(lat),
               "probe_p50": lsbench.pct(lat, 50), "probe_p99": lsbench.pct(lat, 99),
               "probe_max": lat[-1] if lat else None, "command": d.command(), "load": lsbench.loadavg()}
        if "store" in st:
            res["store"] = st["store"]
        return res
    finally:
        if pool is not None:
            pool.close()
        if client is not None:
            client.close()
        d.stop()


def describe(r):
    s = ("devices=%d: heartbeats sent in %.1f s; probe PUT latency p50=%.1f p99=%.1f max=%.1f ms (%d probes)"
         % (r["devices"], r["send_s"], r["probe_p50"], r["probe_p99"], r["probe_max"], r["probes"]))
    if "store" in r:
        st = r["store"]
        s += ("; largest flush pass %d records in %d ms, %d slices in all; committer's longest lock hold %.2f ms; "
              "%d commits, mean %.1f ms" % (st["largestFlush"]["records"], st["largestFlush"]["ms"], st["flushSlices"],
                                            st["committerLockMaxUs"] / 1000.0, st["commits"],
                                            st["commitMsTotal"] / max(1, st["commits"])))
    return s + "; load %.1f" % r["load"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--devices", type=int, default=1000000)
    ap.add_argument("--interval-s", type=float, default=2.0)
    ap.add_argument("--window-s", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    lsbench.on_sigterm_exit()
    for i in range(a.runs):
        r = run(a.bin, a.devices, a.interval_s, a.window_s, a.seed + i)
        print(json.dumps(r) if a.json else describe(r), flush=True)


if __name__ == "__main__":
    main()
