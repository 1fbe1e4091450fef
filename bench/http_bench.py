#!/usr/bin/python3
"""HTTP ingest: bulk ids/s and single-activity requests/s, on known, active
devices.

Setup: N devices with 36-character UUID ids are written with `lastseen
import` (active, last heard now) into a fresh data directory, and
build/lastseen (default configuration: http.threads = 1, timeout 600 s)
is started on them.

Bulk: POST /api/v1/activity with JSON arrays of B ids (default 10,000,
~390 KB), one request after another on one keep-alive connection, every
device in turn (random order), for D seconds; ids/s = ids accepted / time.
Every answer must be 202 with accepted == B.

Single: wrk (Debian) with one thread and 64 keep-alive connections for D
seconds; a Lua script sends POST /api/v1/devices/<id>/activity (no body)
over the first 100,000 of the devices in turn.  Figures: wrk's Requests/sec
and latency percentiles; the run fails if wrk saw a non-2xx answer or a
socket error, or if the daemon's activities counter did not grow by the
number of requests wrk completed.

Single with a bearer token: the same, each request with `Authorization:
Bearer <token>` of an ingest token, on the same daemon: before each such
run `lastseen token create` makes the token (the daemon then requires
credentials within a second), after it `lastseen token revoke` takes it
away again, so that runs with and without alternate and share the
machine's conditions.  The ratio with/without (medians) is what the
credential check costs: the median of the ratios of each run with a token
to the run without just before it (the machine's load drifts more between
pairs than within one), and the ratio of the medians.

Each is repeated R times on the same daemon; medians and min..max.
Loopback only; every wait bounded; the daemon and its directory are
removed at the end.

usage: bench/http_bench.py [--bin build/lastseen] [--devices N] [--bulk B]
                           [--seconds D] [--runs R] [--connections C] [--set K=V]
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsbench  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRK_IDS = 100000
SETUP_MAX_S = 600.0

LUA = """-- POST /api/v1/devices/<id>/activity over the ids in %(path)s, in turn.
local ids = {}
for line in io.lines("%(path)s") do ids[#ids + 1] = line end
local i = 0
local headers = %(headers)s
request = function()
  i = i %% #ids + 1
  return wrk.format("POST", "/api/v1/devices/" .. ids[i] .. "/activity", headers)
end
"""


def token_cmd(binary, data_dir, *args):
    p = subprocess.run([binary, "token"] + list(args) + ["--data-dir", data_dir],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise lsbench.RunError("lastseen token %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout.strip().splitlines()[-1]


def credentials_required(client, want, timeout_s=10):
    """Waits until the daemon asks for a credential (want) or not (after a
    token was created or revoked: it looks at the file once a second)."""
    deadline = time.monotonic() + timeout_s
    saved = client.headers
    client.headers = {}
    try:
        while time.monotonic() < deadline:
            status, _ = client.request("GET", "/api/v1/stats")
            if (status == 401) == want:
                return
            time.sleep(0.05)
    finally:
        client.headers = saved
    raise lsbench.RunError("the daemon did not %s credentials within %d s"
                           % ("require" if want else "drop", timeout_s))


def settle(client, n):
    deadline = time.monotonic() + SETUP_MAX_S
    while True:
        st = client.json("GET", "/api/v1/stats")
        ob = st["outbox"]
        if st["devices"] == n and ob["committedSeq"] == st["lastSeq"] and all(s["lag"] == 0 for s in ob["sinks"]):
            return st
        if time.monotonic() > deadline:
            raise lsbench.RunError("setup did not settle: %d devices of %d" % (st["devices"], n))
        time.sleep(0.05)


def flushed(client, n, timeout_s=60):
    """Waits until the flush passes have written what the bulk runs made
    dirty (every device): a pass that ended after this call and wrote under
    1 % of them.  So the single-activity runs measure the ingest path and
    the flushing of their own activities, not the bulk runs' backlog (a
    pass of 1M records, about 4 s, which used to fall on the first run).
    Returns the seconds waited, and whether it happened before timeout_s."""
    t0 = time.monotonic()
    start = client.json("GET", "/api/v1/stats")["store"]["flushes"]
    while time.monotonic() - t0 < timeout_s:
        st = client.json("GET", "/api/v1/stats")["store"]
        if st["flushes"] > start and st["lastFlush"]["records"] <= n // 100:
            return time.monotonic() - t0, True
        time.sleep(0.05)
    return time.monotonic() - t0, False


def bulk_run(client, bodies, per_body, seconds):
    t0 = time.monotonic()
    ids = 0
    i = 0
    while time.monotonic() - t0 < seconds:
        r = client.json("POST", "/api/v1/activity", bodies[i % len(bodies)])
        if r.get("accepted") != per_body:
            raise lsbench.RunError("bulk: accepted %s of %d" % (r.get("accepted"), per_body))
        ids += per_body
        i += 1
    el = time.monotonic() - t0
    return ids / el, i, el


def parse_latency(text, label):
    m = re.search(r"^\s+%s\s+([0-9.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk_run(wrk, port, script, seconds, connections, client):
    before = client.json("GET", "/api/v1/stats")["activities"]
    cmd = [wrk, "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency", "-s", script,
           "http://%s:%d" % (lsbench.HOST, port)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    out = p.stdout
    if p.returncode != 0:
        raise lsbench.RunError("wrk exit %d: %s %s" % (p.returncode, out[-500:], p.stderr[-500:]))
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise lsbench.RunError("cannot read wrk's output:\n%s" % out)
    if "Non-2xx" in out or "Socket errors" in out:
        raise lsbench.RunError("wrk saw errors:\n%s" % out)
    after = client.json("GET", "/api/v1/stats")["activities"]
    # wrk counts the requests answered; some may still be in flight when it
    # stops, so the daemon can have counted a few more, never fewer.
    if after - before < int(total.group(1)):
        raise lsbench.RunError("daemon counted %d activities, wrk %s requests" % (after - before, total.group(1)))
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "p50_ms": parse_latency(out, "50%"), "p99_ms": parse_latency(out, "99%"),
            "command": " ".join(cmd[:-3] + ["post.lua", "http://127.0.0.1:PORT"])}


def run_http(binary, n, bulk, seconds, runs, connections=64, sets=None, seed=3, log=print,
             bearer=True):
    wrk = shutil.which("wrk")
    if not wrk:
        raise lsbench.RunError("wrk not found (apt-get install wrk)")
    rng = random.Random(seed)
    ids = lsbench.uuids(n, rng)
    d = lsbench.Daemon(binary, sets)
    tmp = tempfile.mkdtemp(prefix="lastseen-bench-http-")
    client = None
    res = {"devices": n, "bulk_size": bulk, "seconds": seconds, "load": [lsbench.loadavg()]}
    try:
        d.start()
        res["command"] = d.command()
        rc = d.stop(remove=False)
        if rc != 0:
            raise lsbench.RunError("exit code %s after SIGTERM" % rc)
        d.import_devices(ids, b'"active":true,"lastActivityTime":%d' % int(time.time() * 1000))
        d.start()
        client = lsbench.Client(d.http_port)
        settle(client, n)

        order = list(range(n))
        rng.shuffle(order)
        bodies = []
        for i in range(0, n - bulk + 1, bulk):
            bodies.append(b'["' + b'","'.join(ids[r] for r in order[i:i + bulk]) + b'"]')
        if not bodies:
            raise lsbench.RunError("--bulk must not exceed --devices")
        res["bulk_body_bytes"] = len(bodies[0])
        res["bulk"] = []
        res["bulk_cpu"] = []
        for _ in range(runs):
            c0 = d.cpu()
            rate, reqs, el = bulk_run(client, bodies, bulk, seconds)
            res["bulk"].append(rate)
            res["bulk_cpu"].append((d.cpu() - c0) / el)
            log("  bulk: %.0f ids/s (%d requests of %d ids in %.2f s; daemon CPU %.0f %%)"
                % (rate, reqs, bulk, el, 100 * res["bulk_cpu"][-1]))

        ids_path = os.path.join(tmp, "ids.txt")
        with open(ids_path, "wb") as f:
            f.write(b"\n".join(ids[:WRK_IDS]) + b"\n")
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write(LUA % {"path": ids_path, "headers": "nil"})
        res["flushed_s"], done = flushed(client, n)
        log("  the bulk runs' devices %s after %.1f s more"
            % ("flushed" if done else "still not flushed (measuring anyway)", res["flushed_s"]))
        res["single"] = []
        res["single_bearer"] = []
        for _ in range(runs):
            c0, t0 = d.cpu(), time.monotonic()
            w = wrk_run(wrk, d.http_port, script, int(seconds), connections, client)
            w["cpu"] = (d.cpu() - c0) / (time.monotonic() - t0)
            res["single"].append(w)
            log("  single: %.0f requests/s (p50 %.2f ms, p99 %.2f ms; daemon CPU %.0f %%)"
                % (w["rps"], w["p50_ms"] or -1, w["p99_ms"] or -1, 100 * w["cpu"]))
            if not bearer:
                continue
            # The same with a bearer token (created, then revoked: see above).
            token = token_cmd(binary, d.data_dir, "create", "bench", "--scope", "ingest,read")
            client.headers = {"Authorization": "Bearer " + token}
            credentials_required(client, True)
            bscript = os.path.join(tmp, "post-bearer.lua")
            with open(bscript, "w") as f:
                f.write(LUA % {"path": ids_path,
                               "headers": '{["Authorization"] = "Bearer %s"}' % token})
            c0, t0 = d.cpu(), time.monotonic()
            w = wrk_run(wrk, d.http_port, bscript, int(seconds), connections, client)
            w["cpu"] = (d.cpu() - c0) / (time.monotonic() - t0)
            res["single_bearer"].append(w)
            token_cmd(binary, d.data_dir, "revoke", "bench")
            credentials_required(client, False)
            client.headers = {}
            log("  single with a bearer token: %.0f requests/s (p50 %.2f ms, p99 %.2f ms; daemon CPU %.0f %%)"
                % (w["rps"], w["p50_ms"] or -1, w["p99_ms"] or -1, 100 * w["cpu"]))
        res["wrk_command"] = res["single"][0]["command"]
        if res["single_bearer"]:
            # Each run with a token against the run without just before it
            # (the machine drifts between pairs more than within one), the
            # median of those ratios; and the ratio of the medians.
            pairs = [b["rps"] / s["rps"] for s, b in zip(res["single"], res["single_bearer"])]
            res["bearer_pairs"] = pairs
            res["bearer_ratio"] = lsbench.summary(pairs)[0]
            res["bearer_ratio_medians"] = (lsbench.summary([x["rps"] for x in res["single_bearer"]])[0] /
                                           lsbench.summary([x["rps"] for x in res["single"]])[0])
            log("  with a bearer token / without: %.3f (median of the pairs %s; of the medians %.3f)"
                % (res["bearer_ratio"], ", ".join("%.3f" % x for x in pairs), res["bearer_ratio_medians"]))
        res["load"].append(lsbench.loadavg())
    finally:
        if client is not None:
            client.close()
        rc = d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        raise lsbench.RunError("exit code %s after SIGTERM" % rc)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--devices", type=int, default=1000000)
    ap.add_argument("--bulk", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-bearer", action="store_true", help="skip the runs with a bearer token")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    lsbench.on_sigterm_exit()
    try:
        r = run_http(a.bin, a.devices, a.bulk, a.seconds, a.runs, a.connections,
                     dict(kv.split("=", 1) for kv in a.set), bearer=not a.no_bearer)
    except lsbench.RunError as e:
        print("FAILED: %s" % e)
        return 1
    if a.json:
        print(json.dumps(r))
    else:
        b = lsbench.summary(r["bulk"])
        s = lsbench.summary([x["rps"] for x in r["single"]])
        print("bulk %.0f ids/s [%.0f..%.0f]; single %.0f requests/s [%.0f..%.0f]; load %s"
              % (b + s + ("/".join("%.1f" % x for x in r["load"]),)))
        if r["single_bearer"]:
            t = lsbench.summary([x["rps"] for x in r["single_bearer"]])
            print("single with a bearer token %.0f requests/s [%.0f..%.0f]: %.3f of without "
                  "(median of the pairs; %.3f of the medians)"
                  % (t + (r["bearer_ratio"], r["bearer_ratio_medians"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
