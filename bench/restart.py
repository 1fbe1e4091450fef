#!/usr/bin/python3
"""Restart time of the real daemon on a store of N devices.

For each N: `lastseen-bench store-fill` writes a store of N devices (36-char
UUID ids, the mix described in bench/store_bench.c) into a fresh data
directory; then, R times: start build/lastseen on it (loopback, port 0), and
measure from the start of the process until GET /healthz answers 200 (any
other answer, or no answer, is "not ready"), the daemon's own
"loaded N devices ... in X ms" figure, the process's RSS once ready (VmRSS,
its RssAnon and RssFile parts, VmRSS / N, and the peak VmHWM), and the time SIGTERM takes to stop it.  Each run checks
that /api/v1/stats counts N devices and that no INACTIVITY_EVENT was raised
(the default grace policy).  Prints every run, then the median and min..max.

With --drop-caches (root), the page cache is dropped before each run, so the
store is read from disk as after a reboot; without it the store is usually
in the page cache (as after a restart of the process alone).

Disk: the store takes about 100 bytes a device (1 GiB at 10M); the script
checks free space first, and removes the data directory at the end unless
--keep.

usage: bench/restart.py [--bin build/lastseen] [--bench build/lastseen-bench]
                        [--devices 1000000,10000000] [--runs 3]
                        [--workdir DIR] [--keep] [--drop-caches]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
BYTES_PER_DEVICE = 110  # store-fill's store, with margin
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunError(Exception):
    pass


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of a process, in bytes."""
    out = {}
    for line in read_text("/proc/%d/status" % pid).splitlines():
        if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def http_get(port, path, timeout=2.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def one_run(binary, data_dir, n, err_path, drop_caches):
    if drop_caches:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    cmd = [binary, "--set", "http.listen=%s:0" % HOST, "--set", "store.data_dir=%s" % data_dir]
    errf = open(err_path, "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                            close_fds=True)
    errf.close()
    try:
        port = None
        deadline = t0 + READY_TIMEOUT_S
        listen_re = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        answers = {}
        while True:
            if proc.poll() is not None:
                raise RunError("daemon exited with %s:\n%s" % (proc.returncode, read_text(err_path)[-2000:]))
            if time.monotonic() > deadline:
                raise RunError("not ready within %.0f s" % READY_TIMEOUT_S)
            if port is None:
                m = listen_re.search(read_text(err_path))
                if m:
                    port = int(m.group(1))
            if port is not None:
                try:
                    status, _ = http_get(port, "/healthz")
                except (OSError, http.client.HTTPException):
                    status = None
                answers[status] = answers.get(status, 0) + 1
                if status == 200:
                    break
            time.sleep(0.01)
        ready_s = time.monotonic() - t0
        mem = proc_status(proc.pid)
        status, body = http_get(port, "/api/v1/stats", timeout=10.0)
        stats = json.loads(body)
        if status != 200 or stats["devices"] != n:
            raise RunError("stats: %s %r" % (status, stats))
        if stats["events"]["INACTIVITY_EVENT"] != 0:
            raise RunError("%d INACTIVITY_EVENTs after the restart" % stats["events"]["INACTIVITY_EVENT"])
        m = re.search(r"loaded (\d+) devices \((\d+) refused\) in ([0-9.]+) ms", read_text(err_path))
        if not m or int(m.group(1)) != n or int(m.group(2)) != 0:
            raise RunError("no 'loaded %d devices (0 refused)' line:\n%s" % (n, read_text(err_path)[-2000:]))
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=STOP_TIMEOUT_S)
        stop_s = time.monotonic() - t1
        if rc != 0:
            raise RunError("exit code %s on SIGTERM" % rc)
        return {"ready_s": ready_s, "load_ms": float(m.group(3)), "rss": mem.get("VmRSS", 0),
                "anon": mem.get("RssAnon", 0), "file": mem.get("RssFile", 0),
                "hwm": mem.get("VmHWM", 0), "stop_s": stop_s, "answers": answers}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def summary(vals):
    return statistics.median(vals), min(vals), max(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "lastseen-bench"))
    ap.add_argument("--devices", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where the data directory goes (default: a new one in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each run (root)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.devices.split(",")]
    if args.runs < 1 or any(n < 1 for n in sizes):
        ap.error("--runs and --devices must be positive")

    workdir = args.workdir or tempfile.mkdtemp(prefix="lastseen-restart-")
    os.makedirs(workdir, exist_ok=True)
    failed = False
    print("machine: %d cores; %s" % (os.cpu_count(), " ".join(os.uname()[2:3])))
    for n in sizes:
        need = n * BYTES_PER_DEVICE * 1.5 + (256 << 20)
        free = shutil.disk_usage(workdir).free
        if free < need:
            print("N=%d: skipped, %.1f GiB free in %s, need %.1f GiB" % (n, free / 2**30, workdir, need / 2**30))
            failed = True
            continue
        data = os.path.join(workdir, "data-%d" % n)
        shutil.rmtree(data, ignore_errors=True)
        t = time.monotonic()
        fill = subprocess.run([args.bench, "store-fill", "--dir", os.path.join(data, "store"), "--devices", str(n)],
                              capture_output=True, text=True)
        if fill.returncode != 0:
            print("N=%d: store-fill failed:\n%s%s" % (n, fill.stdout, fill.stderr))
            failed = True
            continue
        print("N=%d: store written in %.1f s; %s" % (n, time.monotonic() - t, fill.stdout.strip().splitlines()[-1].strip()))
        runs = []
        try:
            for r in range(args.runs):
                res = one_run(args.bin, data, n, os.path.join(workdir, "restart-%d-%d.stderr" % (n, r)),
                              args.drop_caches)
                runs.append(res)
                print("  run %d: ready %.2f s, loaded in %.0f ms, RSS %.0f MiB = %.1f B/device (anon %.0f MiB, "
                      "file %.0f MiB; peak %.0f MiB), stop %.2f s, /healthz answers while starting %s"
                      % (r + 1, res["ready_s"], res["load_ms"], res["rss"] / 2**20, res["rss"] / n,
                         res["anon"] / 2**20, res["file"] / 2**20, res["hwm"] / 2**20, res["stop_s"],
                         res["answers"]))
        except RunError as e:
            print("  run failed: %s" % e)
            failed = True
        if runs:
            rd = summary([x["ready_s"] for x in runs])
            ld = summary([x["load_ms"] for x in runs])
            rss = summary([x["rss"] / 2**20 for x in runs])
            st = summary([x["stop_s"] for x in runs])
            per = summary([x["rss"] / n for x in runs])
            print("  N=%d, %d runs: ready %.2f s [%.2f..%.2f]; loaded %.0f ms [%.0f..%.0f]; RSS %.0f MiB "
                  "[%.0f..%.0f] = %.1f B/device [%.1f..%.1f]; stop %.2f s [%.2f..%.2f]"
                  % (n, len(runs), rd[0], rd[1], rd[2], ld[0], ld[1], ld[2], rss[0], rss[1], rss[2],
                     per[0], per[1], per[2], st[0], st[1], st[2]))
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
