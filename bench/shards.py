#!/usr/bin/python3
"""engine.shards side by side: UDP ingest, HTTP bulk, and API queries
during a UDP flood, each with engine.shards = 1 and 2 (--shards).

  python3 bench/shards.py [--bin build/lastseen] [--bench build/lastseen-bench]
                          [--shards 1,2] [--devices 100000] [--runs 3]
                          [--only udp,flood,http]

--shards 0 leaves engine.shards out of the command line, for a binary that
predates it (a baseline).
udp    lastseen-bench udp, 64 lines a datagram, the rate ladder of
       bench/suite.py, R runs: the highest lossless step (median); then
       (also alone as `sat`) 5 s as fast as the sender can, R runs: the
       lines/s the daemon took;
flood  the same ladder (1 run) while one client walks the device list
       (1000 a page) and another reads /api/v1/stats, back to back: the
       lossless step with queries next to the one without, and the
       queries' latency (p50, p99, max);
http   bench/http_bench.py's bulk figure (10,000 ids a request, one
       connection) on N known devices.

Everything runs on loopback; daemons and their directories are removed at
the end.  Figures go to stdout, one line per measurement; docs/benchmarks.md
quotes them.
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench  # noqa: E402
import lsbench  # noqa: E402
import suite  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def udp_ladder(a, d, runs):
    cmd = [a.bench, "udp", "--port", str(d.udp_port), "--http-port", str(d.http_port), "--devices",
           str(a.devices), "--lines", "64", "--rates", suite.UDP_LADDER, "--duration-ms", "1000",
           "--runs", str(runs), "--max"]
    return suite.parse_udp(suite.run(cmd, 1800))


def udp_saturate(a, d, runs):
    """As fast as the sender can for 5 s, R times: lines/s the daemon received
    (counted once its counters settle, so the socket buffer's last 8 MiB is
    included: about 4 % of a run)."""
    cmd = [a.bench, "udp", "--port", str(d.udp_port), "--http-port", str(d.http_port), "--devices",
           str(a.devices), "--lines", "64", "--rates", "0", "--duration-ms", "5000", "--runs", str(runs),
           "--keep-going"]
    out = []
    for line in suite.run(cmd, 1800).splitlines():
        if line.startswith("step "):
            st = {k: float(v) for k, v in (x.split("=", 1) for x in line.split()[1:])}
            out.append((st["received"] / st["secs"], st["sent_rate"], st["loss_pct"]))
    return out


def pct(vals, p):
    return lsbench.pct(sorted(vals), p) if vals else float("nan")


def querier(port, path_fn, lat, stop):
    c = lsbench.Client(port)
    try:
        while not stop.is_set():
            path = path_fn()
            t0 = time.monotonic()
            status, body = c.request("GET", path)
            lat.append((time.monotonic() - t0) * 1000)
            if status != 200:
                raise lsbench.RunError("GET %s: %d" % (path, status))
            path_fn(body)
    finally:
        c.close()


class Walker:
    """Paths of a device-list walk, over and over."""

    def __init__(self):
        self.after = None

    def __call__(self, body=None):
        if body is None:
            return "/api/v1/devices?limit=1000" + ("&after=" + self.after if self.after else "")
        self.after = json.loads(body)["next"]
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "lastseen-bench"))
    ap.add_argument("--shards", default="1,2")
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="udp,flood,http")
    a = ap.parse_args()
    lsbench.on_sigterm_exit()
    only = a.only.split(",")
    print("machine: %s" % lsbench.machine(), flush=True)
    for n in [int(x) for x in a.shards.split(",")]:
        sets = {"engine.shards": str(n)} if n else {}  # 0: leave it out (a binary without the key)
        if "udp" in only or "sat" in only:
            d = lsbench.Daemon(a.bin, sets, udp=True)
            try:
                d.start()
                if "udp" in only:
                    r = udp_ladder(a, d, a.runs)
                    print("udp shards=%d: max lossless %d lines/s (median of %s; min %d max %d; stops %s) load %s"
                          % (n, r["median"], r["runs"], r["min"], r["max"], r["stops"], lsbench.loadavg()),
                          flush=True)
                c0 = d.cpu()
                st0 = lsbench.Client(d.http_port).json("GET", "/api/v1/stats")["udp"]["activities"]
                sat = udp_saturate(a, d, a.runs)
                got = lsbench.Client(d.http_port).json("GET", "/api/v1/stats")["udp"]["activities"] - st0
                cpu_ns = (d.cpu() - c0) * 1e9 / got if got else float("nan")
                m = lsbench.summary([x[0] for x in sat])
                print("udp shards=%d: saturated 5 s: received %.2f M lines/s [%.2f..%.2f] (sent %s M/s, lost %s %%), "
                      "daemon CPU %.0f ns a line; load %s" % (n, m[0] / 1e6, m[1] / 1e6, m[2] / 1e6,
                                   "/".join("%.1f" % (x[1] / 1e6) for x in sat),
                                   "/".join("%.0f" % x[2] for x in sat), cpu_ns, lsbench.loadavg()), flush=True)
            finally:
                d.stop()
        if "flood" in only:
            d = lsbench.Daemon(a.bin, sets, udp=True)
            stop = threading.Event()
            lw, ls = [], []
            ts = []
            try:
                d.start()
                ts = [threading.Thread(target=querier, args=(d.http_port, Walker(), lw, stop)),
                      threading.Thread(target=querier,
                                       args=(d.http_port, lambda body=None: "/api/v1/stats" if body is None else None,
                                             ls, stop))]
                for t in ts:
                    t.start()
                r = udp_ladder(a, d, 1)
                stop.set()
                for t in ts:
                    t.join()
                print("flood shards=%d: max lossless %d lines/s with queries; device pages %d (p50 %.1f ms, "
                      "p99 %.1f ms, max %.1f ms); stats %d (p50 %.1f ms, p99 %.1f ms, max %.1f ms)"
                      % (n, r["median"], len(lw), pct(lw, 50), pct(lw, 99), max(lw or [0]), len(ls), pct(ls, 50),
                         pct(ls, 99), max(ls or [0])), flush=True)
            finally:
                stop.set()
                for t in ts:
                    if t.is_alive():
                        t.join()
                d.stop()
        if "http" in only:
            r = http_bench.run_http(a.bin, a.devices, 10000, 3, a.runs, 64, sets=sets, log=lambda *x: None)
            b = lsbench.summary(r["bulk"])
            print("http shards=%d: bulk %.0f ids/s [%.0f..%.0f]; single %.0f requests/s" %
                  ((n,) + b + (lsbench.summary([x["rps"] for x in r["single"]])[0],)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
