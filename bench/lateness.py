#!/usr/bin/python3
"""End-to-end benchmark of inactivity-detection lateness through the real daemon.

For each run: start build/lastseen on a free loopback port with a fresh data
directory and a default inactivity timeout of T ms; report one activity for each
of N devices through POST /api/v1/activity (JSON arrays of 1000 ids, batches
spread evenly over S ms, so the deadlines are spread over S ms); wait until
GET /api/v1/stats shows inactive == N; stop the daemon with SIGTERM (exit 0
expected); then read <data_dir>/events.jsonl and, for every INACTIVITY_EVENT,
take lateness = detectedAt - ts (ms).

Each device must have exactly one INACTIVITY_EVENT.  missed = devices with none.
The script exits 1 if any device was missed (or got more than one event, or a
run failed: daemon did not start, did not reach inactive == N in time, did not
exit 0 on SIGTERM), 0 otherwise.

Percentiles are nearest-rank (pXX = the smallest value with at least XX % of
the samples at or below it).  Python 3 stdlib only; only loopback is used;
every wait is bounded.

usage: bench/lateness.py [--bin build/lastseen] [--devices N] [--timeout-ms T]
                         [--spread-ms S] [--runs R]
"""

import argparse
import http.client
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BATCH = 1000
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0      # bound on "listening on" + /healthz
STOP_TIMEOUT_S = 10.0       # bound on exit after SIGTERM
HTTP_TIMEOUT_S = 10.0       # per request socket timeout
POLL_S = 0.05               # /api/v1/stats poll interval

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunError(Exception):
    pass


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return os.cpu_count(), model


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


class Client:
    """One keep-alive HTTP/1.1 connection to the daemon (loopback only)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)

    def request(self, method, path, body=None):
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):          # one reconnect if the kept-alive socket was closed
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.HTTPException, ConnectionError) as e:
                self.close()
                if attempt == 1:
                    raise RunError("%s %s: %s" % (method, path, e))
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def stderr_tail(path, n=15):
    lines = read_text(path).splitlines()
    return "\n".join("    | " + l for l in lines[-n:])


def start_daemon(binary, data_dir, timeout_ms, err_path):
    cmd = [binary,
           "--set", "http.listen=%s:0" % HOST,
           "--set", "store.data_dir=%s" % data_dir,
           "--set", "state.default_inactivity_timeout=%dms" % timeout_ms]
    errf = open(err_path, "wb")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errf, close_fds=True)
    finally:
        errf.close()
    return cmd, proc


def wait_listening(proc, err_path):
    pat = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        m = pat.search(read_text(err_path))
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise RunError("daemon exited with %s before listening:\n%s"
                           % (proc.returncode, stderr_tail(err_path)))
        time.sleep(0.02)
    raise RunError("no 'listening on 127.0.0.1:PORT' on stderr within %.0f s:\n%s"
                   % (START_TIMEOUT_S, stderr_tail(err_path)))


def wait_healthy(proc, client, deadline):
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError("daemon exited with %s before /healthz" % proc.returncode)
        try:
            status, _ = client.request("GET", "/healthz")
            if status == 200:
                return
            last = "status %d" % status
        except (RunError, OSError) as e:
            last = str(e)
            client.close()
        time.sleep(0.02)
    raise RunError("GET /healthz not 200 within %.0f s (last: %s)" % (START_TIMEOUT_S, last))


def stop_daemon(proc):
    """SIGTERM, bounded wait; returns the exit code (or raises after SIGKILL)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
        raise RunError("daemon did not exit within %.0f s of SIGTERM (killed)" % STOP_TIMEOUT_S)


def send_activity(client, ids_batches, spread_ms, proc):
    """POST each batch at its slot: batch k at t0 + k*S/(nb-1).  Returns timing info."""
    nb = len(ids_batches)
    step = (spread_ms / 1000.0) / (nb - 1) if nb > 1 else 0.0
    t0 = time.monotonic()
    max_slip = 0.0
    max_req = 0.0
    for k, batch in enumerate(ids_batches):
        slot = t0 + k * step
        now = time.monotonic()
        if slot > now:
            time.sleep(slot - now)
        sent = time.monotonic()
        max_slip = max(max_slip, sent - slot)
        body = json.dumps(batch, separators=(",", ":")).encode()
        status, data = client.request("POST", "/api/v1/activity", body)
        took = time.monotonic() - sent
        max_req = max(max_req, took)
        if status != 202:
            raise RunError("bulk %d: status %d: %s" % (k, status, data[:300]))
        try:
            r = json.loads(data)
        except ValueError:
            raise RunError("bulk %d: bad JSON reply: %r" % (k, data[:300]))
        if r.get("accepted") != len(batch) or r.get("rejectedCount", 0) != 0:
            raise RunError("bulk %d: accepted %s of %d, rejected %s"
                           % (k, r.get("accepted"), len(batch), r.get("rejected")))
        if proc.poll() is not None:
            raise RunError("daemon exited with %s while sending" % proc.returncode)
    t_end = time.monotonic()
    return t0, t_end, max_slip, max_req


def wait_all_inactive(client, proc, n, first_deadline, hard_deadline):
    # No point polling before the first deadline; then poll every POLL_S.
    now = time.monotonic()
    if first_deadline > now:
        time.sleep(min(first_deadline, hard_deadline) - now)
    last = None
    while True:
        if proc.poll() is not None:
            raise RunError("daemon exited with %s while waiting for inactivity"
                           % proc.returncode)
        status, data = client.request("GET", "/api/v1/stats")
        if status != 200:
            raise RunError("GET /api/v1/stats: status %d" % status)
        last = json.loads(data)
        if last.get("inactive") == n:
            return last
        if time.monotonic() >= hard_deadline:
            raise RunError("stats did not reach inactive == %d in time (last: devices=%s "
                           "active=%s inactive=%s)" % (n, last.get("devices"),
                                                       last.get("active"), last.get("inactive")))
        time.sleep(POLL_S)


def analyse_events(path, prefix, n, timeout_ms):
    per_dev = {}
    lateness = []
    bad_ts = 0
    lines = 0
    try:
        f = open(path, "r")
    except OSError as e:
        raise RunError("cannot read %s: %s" % (path, e))
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            lines += 1
            try:
                ev = json.loads(line)
            except ValueError:
                raise RunError("events.jsonl line %d is not JSON: %r" % (lines, line[:200]))
            if ev.get("type") != "INACTIVITY_EVENT":
                continue
            dev = ev.get("device", "")
            if not dev.startswith(prefix):
                continue
            per_dev[dev] = per_dev.get(dev, 0) + 1
            lateness.append(ev["detectedAt"] - ev["ts"])
            st = ev.get("state", {})
            if ev["ts"] != st.get("lastActivityTime", 0) + timeout_ms:
                bad_ts += 1
    expected = set("%s%d" % (prefix, i) for i in range(n))
    missed = len(expected - per_dev.keys())
    dup = sum(1 for d, c in per_dev.items() if c > 1)
    unknown = sum(1 for d in per_dev if d not in expected)
    lateness.sort()
    return {"count": len(lateness), "missed": missed, "dup": dup, "unknown": unknown,
            "bad_ts": bad_ts, "lat": lateness}


def one_run(run, args, binary):
    prefix = "lat-%d-" % run
    ids = ["%s%d" % (prefix, i) for i in range(args.devices)]
    batches = [ids[i:i + BATCH] for i in range(0, len(ids), BATCH)]
    tmp = tempfile.mkdtemp(prefix="lastseen-lateness-")
    data_dir = os.path.join(tmp, "data")
    os.mkdir(data_dir)
    err_path = os.path.join(tmp, "stderr.log")
    proc = None
    client = None
    ok = False
    try:
        cmd, proc = start_daemon(binary, data_dir, args.timeout_ms, err_path)
        t_start = time.monotonic()
        port = wait_listening(proc, err_path)
        client = Client(port)
        wait_healthy(proc, client, t_start + START_TIMEOUT_S)

        t0, t_sent, max_slip, max_req = send_activity(client, batches, args.spread_ms, proc)
        T = args.timeout_ms / 1000.0
        S = args.spread_ms / 1000.0
        stats = wait_all_inactive(client, proc, args.devices,
                                  first_deadline=t0 + T,
                                  hard_deadline=t0 + T + S + 10.0)
        t_done = time.monotonic()
        client.close()
        client = None
        rc = stop_daemon(proc)
        if rc != 0:
            raise RunError("daemon exit code %d after SIGTERM (expected 0):\n%s"
                           % (rc, stderr_tail(err_path)))
        if stats.get("eventLogWriteErrors"):
            raise RunError("eventLogWriteErrors = %s" % stats["eventLogWriteErrors"])
        res = analyse_events(os.path.join(data_dir, "events.jsonl"), prefix,
                             args.devices, args.timeout_ms)
        res["send_s"] = t_sent - t0
        res["max_slip_ms"] = max_slip * 1000.0
        res["max_req_ms"] = max_req * 1000.0
        res["all_inactive_s"] = t_done - t0
        ok = True
        return res
    finally:
        if client is not None:
            client.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("  (run %d files kept in %s)" % (run, tmp))


def fmt_range(vals, f="%d"):
    return (f + "..") % min(vals) + f % max(vals)


def main():
    ap = argparse.ArgumentParser(description="End-to-end INACTIVITY_EVENT detection "
                                 "lateness through the real lastseen daemon.")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"),
                    help="lastseen binary (default: build/lastseen of this repository)")
    ap.add_argument("--devices", type=int, default=10000, help="devices per run (default 10000)")
    ap.add_argument("--timeout-ms", type=int, default=2000,
                    help="state.default_inactivity_timeout in ms (default 2000)")
    ap.add_argument("--spread-ms", type=int, default=1000,
                    help="send the activity batches evenly over this many ms (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="number of runs (default 3)")
    args = ap.parse_args()
    if args.devices < 1 or args.timeout_ms < 1 or args.spread_ms < 0 or args.runs < 1:
        ap.error("--devices, --timeout-ms and --runs must be >= 1, --spread-ms >= 0")
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        ap.error("not an executable: %s" % binary)

    ncpu, model = machine()
    print("lastseen detection lateness benchmark (end to end, HTTP bulk activity -> "
          "events.jsonl)")
    print("command: %s" % shlex.join([sys.executable] + sys.argv))
    print("machine: nproc=%s, cpu=%s" % (ncpu, model))
    nb = math.ceil(args.devices / BATCH)
    print("setup:   devices=%d in %d bulk requests of <=%d ids over %d ms, "
          "timeout=%d ms, runs=%d" % (args.devices, nb, BATCH, args.spread_ms,
                                     args.timeout_ms, args.runs))
    print("daemon:  %s --set http.listen=127.0.0.1:0 --set store.data_dir=<fresh tmp dir> "
          "--set state.default_inactivity_timeout=%dms" % (binary, args.timeout_ms))
    print("lateness = detectedAt - ts of each INACTIVITY_EVENT (ms; detectedAt is the wall time the "
          "daemon's timer tick began); percentiles nearest-rank")
    print()
    hdr = "%-4s %8s %6s %6s %6s %6s %6s   %s" % ("run", "count", "missed", "p50", "p99",
                                               "max", "min", "notes")
    print(hdr)

    results = []
    failed = False
    for run in range(1, args.runs + 1):
        try:
            r = one_run(run, args, binary)
        except RunError as e:
            print("%-4d FAILED: %s" % (run, e))
            failed = True
            continue
        lat = r["lat"]
        notes = "send %.0f ms (max slip %.0f ms, max req %.0f ms), all inactive at +%.2f s" % (
            r["send_s"] * 1000, r["max_slip_ms"], r["max_req_ms"], r["all_inactive_s"])
        extra = []
        if r["dup"]:
            extra.append("DUPLICATES: %d devices" % r["dup"])
        if r["unknown"]:
            extra.append("unknown devices: %d" % r["unknown"])
        if r["bad_ts"]:
            extra.append("ts != lastActivityTime+timeout: %d" % r["bad_ts"])
        if extra:
            notes += "; " + "; ".join(extra)
        if r["missed"] or r["dup"] or r["unknown"]:
            failed = True
        r["p50"], r["p99"], r["max"], r["min"] = (pct(lat, 50), pct(lat, 99),
                                                  lat[-1] if lat else None,
                                                  lat[0] if lat else None)
        print("%-4d %8d %6d %6s %6s %6s %6s   %s" % (run, r["count"], r["missed"], r["p50"],
                                                   r["p99"], r["max"], r["min"], notes))
        sys.stdout.flush()
        results.append(r)

    print()
    if results:
        print("over %d run(s): median [min..max]" % len(results))
        for key in ("count", "missed", "p50", "p99", "max"):
            vals = [r[key] for r in results if r[key] is not None]
            if not vals:
                continue
            med = statistics.median(vals)
            med_s = ("%d" % med) if med == int(med) else ("%.1f" % med)
            unit = " ms" if key in ("p50", "p99", "max") else ""
            print("  %-7s %s%s [%s]" % (key, med_s, unit, fmt_range(vals)))
    total_missed = sum(r["missed"] for r in results)
    if failed or len(results) < args.runs:
        print("RESULT: FAIL (missed devices=%d, failed runs=%d)"
              % (total_missed, args.runs - len(results)))
    else:
        print("RESULT: OK (every device got exactly one INACTIVITY_EVENT)")
    print("command: %s" % shlex.join([sys.executable] + sys.argv))
    return 1 if failed or len(results) < args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
