#!/usr/bin/python3
"""Mass reconnect storm: N devices, all inactive, all send within S seconds.

Setup.  build/lastseen with udp.listen and a 60 s default timeout.  The
devices are written into its store with `lastseen import`, all inactive
(last heard 2 minutes ago, reported inactive a minute ago), as after an
outage, and the daemon is started on them; the script waits until
GET /api/v1/stats counts N inactive devices.

Storm.  Every device sends a heartbeat (UDP, 64 lines a datagram, in a
random order), spread evenly over S seconds (default 5), and keeps sending
one every S seconds, as devices do, until every device is active and its
ACTIVITY_EVENT has been read (a heartbeat lost in the storm is made good
by the device's next one).  Meanwhile a separate process tails
events.jsonl, and the script polls the stats every 50 ms.

Figures (times from the first heartbeat of the storm):
  - all active (engine): the first poll at which stats count N active
    devices: the daemon has applied every heartbeat;
  - all events: when the last ACTIVITY_EVENT line was read from
    events.jsonl: every consumer of the log knows every device is back;
  - event lag of a device: the time its ACTIVITY_EVENT line was read minus
    the time its first heartbeat of the storm was sent (so a lost one
    counts until a later one got through); p50, p99 and the peak (max);
  - ingest backlog: heartbeats sent but not yet applied (sent minus
    udp.activities), the peak over the polls, in heartbeats;
  - commit backlog: events raised but not yet committed (lastSeq minus
    outbox.committedSeq), the peak over the polls;
  - loss: heartbeats sent minus received by the UDP input, over the storm
    and the heartbeats that followed it.

Loopback only; every wait is bounded; the daemon and its directory are
removed at the end.

usage: bench/storm.py [--bin build/lastseen] [--devices N] [--spread-s S]
"""

import argparse
import json
import multiprocessing
import os
import pickle
import random
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsbench  # noqa: E402

TIMEOUT_S = 60
SLICE_S = 0.01
POLL_S = 0.05
SETTLE_MAX_S = 300.0
EVENTS_MAX_S = 120.0     # after the last heartbeat of the storm
LINES = 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def send_lines(sock, lines):
    for i in range(0, len(lines), LINES):
        sock.send(b"\n".join(lines[i:i + LINES]) + b"\n")


def settle(client, n, what, deadline):
    """Waits until stats count n devices in state `what` and every event is
    committed and delivered; returns the last stats and the seconds taken."""
    t0 = time.monotonic()
    while True:
        st = client.json("GET", "/api/v1/stats")
        ob = st["outbox"]
        if (st[what] == n and ob["committedSeq"] == st["lastSeq"]
                and all(s["lag"] == 0 for s in ob["sinks"])):
            return st, time.monotonic() - t0
        if time.monotonic() > deadline:
            raise lsbench.RunError("stats did not settle: %s=%s of %d, lastSeq %s, committed %s"
                                   % (what, st[what], n, st["lastSeq"], ob["committedSeq"]))
        time.sleep(0.05)


def run_storm(binary, n, spread_s, seed=2):
    rng = random.Random(seed)
    ids = lsbench.uuids(n, rng)
    lsbench.freeze_gc()
    d = lsbench.Daemon(binary, {"state.default_inactivity_timeout": "%ds" % TIMEOUT_S}, udp=True)
    ctx = multiprocessing.get_context("fork")
    tmp = tempfile.mkdtemp(prefix="lastseen-bench-storm-")
    out_path = os.path.join(tmp, "observed.pickle")
    counter = ctx.Value("q", 0)
    ready, stop = ctx.Event(), ctx.Event()
    obs = None
    sock = None
    client = None
    res = {"devices": n, "spread_s": spread_s, "load": [lsbench.loadavg()]}
    try:
        d.start()
        res["command"] = d.command()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)

        # Setup: every device inactive, as after an outage, written into the
        # store with `lastseen import` (no events), then the daemon started.
        t0 = time.monotonic()
        rc = d.stop(remove=False)
        if rc != 0:
            raise lsbench.RunError("exit code %s after SIGTERM" % rc)
        now = int(time.time() * 1000)
        d.import_devices(ids, b'"active":false,"lastActivityTime":%d,"inactivityAlarmTime":%d'
                         % (now - 2 * TIMEOUT_S * 1000, now - TIMEOUT_S * 1000))
        d.start()
        client = lsbench.Client(d.http_port)
        sock.connect((lsbench.HOST, d.udp_port))
        st, _ = settle(client, n, "inactive", time.monotonic() + SETTLE_MAX_S)
        res["setup_s"] = time.monotonic() - t0
        udp0 = st["udp"]["activities"] + sum(st["udp"]["rejected"].values())

        obs = ctx.Process(target=lsbench.tail_events,
                          args=(d.events_path, "ACTIVITY_EVENT", True, None, counter, ready, stop, out_path),
                          daemon=True)
        obs.start()
        if not ready.wait(30):
            raise lsbench.RunError("events tailer not ready")
        order = list(range(n))
        rng.shuffle(order)
        nslices = max(1, int(round(spread_s / SLICE_S)))
        sent_at = [0.0] * nslices
        slice_of = {}
        polls = []
        t0 = time.monotonic()
        wall0 = time.time()
        next_poll = 0.0
        k = 0
        sent = 0
        resent = 0
        while True:
            now = time.monotonic() - t0
            if now >= k * SLICE_S:
                j = k % nslices
                a, b = j * n // nslices, (j + 1) * n // nslices
                send_lines(sock, [ids[r] for r in order[a:b]])
                if k < nslices:
                    sent_at[k] = time.time()
                else:
                    resent += b - a
                sent += b - a
                k += 1
                continue
            if now >= next_poll:
                st = client.json("GET", "/api/v1/stats")
                polls.append((time.monotonic() - t0, sent, st))
                next_poll = now + POLL_S
                if k >= nslices and counter.value >= n and st["active"] == n:
                    break
                if now > spread_s + EVENTS_MAX_S:
                    break
                continue
            wait = min(k * SLICE_S, next_poll) - now
            time.sleep(max(0.0, min(wait, 0.005)))
        status, mtext = client.request("GET", "/metrics")
        res["metrics"] = mtext.decode() if status == 200 else ""
        stop.set()
        obs.join(120)
        if obs.is_alive():
            raise lsbench.RunError("events tailer did not stop")
        with open(out_path, "rb") as f:
            observed = pickle.load(f)
        res["load"].append(lsbench.loadavg())
    finally:
        stop.set()
        if obs is not None and obs.is_alive():
            obs.terminate()
            obs.join(5)
        if sock is not None:
            sock.close()
        if client is not None:
            client.close()
        rc = d.stop()
        try:
            os.unlink(out_path)
        except OSError:
            pass
        os.rmdir(tmp)
    if rc != 0:
        raise lsbench.RunError("exit code %s after SIGTERM" % rc)

    for k in range(nslices):
        for r in order[k * n // nslices:(k + 1) * n // nslices]:
            slice_of[ids[r]] = k
    lags = []
    seen = set()
    last_t = None
    for dev, t, _ts, _det in observed:
        k = slice_of.get(dev)
        if k is None or dev in seen:
            continue
        seen.add(dev)
        lags.append((t - sent_at[k]) * 1000.0)
        last_t = t if last_t is None or t > last_t else last_t
    lags.sort()
    all_active = next((t for t, _, st in polls if st["active"] == n), None)
    last = polls[-1][2]
    received = last["udp"]["activities"] + sum(last["udp"]["rejected"].values()) - udp0
    res.update({
        "events": len(seen), "missing_events": n - len(seen),
        "send_s": max(sent_at) - wall0, "rounds": k / nslices,
        "all_active_s": all_active,
        "all_events_s": (last_t - wall0) if last_t else None,
        "lag_p50": lsbench.pct(lags, 50), "lag_p99": lsbench.pct(lags, 99),
        "lag_max": lags[-1] if lags else None,
        "ingest_backlog_max": max(s - (p["udp"]["activities"] + sum(p["udp"]["rejected"].values()) - udp0)
                                  for _, s, p in polls),
        "commit_backlog_max": max(p["lastSeq"] - p["outbox"]["committedSeq"] for _, _, p in polls),
        "udp_sent": sent, "udp_lost": sent - received, "resent": resent,
    })
    res.update(committer_figures(res.pop("metrics", "")))
    return res


def metric(text, name):
    """A sample's value from Prometheus text, None if absent."""
    for line in (text or "").splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def committer_figures(text):
    """What the committer did over the run: commits, their mean time, its longest lock hold."""
    n = metric(text, "lastseen_store_commit_duration_seconds_count")
    total = metric(text, "lastseen_store_commit_duration_seconds_sum")
    return {"commits": int(n or 0),
            "commit_mean_ms": (total * 1000.0 / n) if n else None,
            "commit_total_s": total,
            "lock_hold_max_ms": (metric(text, "lastseen_committer_lock_hold_max_seconds") or 0) * 1000.0}


def describe(r):
    f = lambda v, u="": "-" if v is None else ("%.2f%s" % (v, u))  # noqa: E731
    return ("storm: devices=%d sent over %.2f s; all active (engine) at %s; all ACTIVITY_EVENTs in "
            "events.jsonl at %s (%d of %d); event lag p50=%s p99=%s max=%s; peak ingest backlog %d heartbeats, "
            "peak commit backlog %d events; udp lost %d of %d (%.1f rounds); setup %.1f s; load %s"
            % (r["devices"], r["send_s"], f(r["all_active_s"], " s"), f(r["all_events_s"], " s"), r["events"],
               r["devices"], f(r["lag_p50"], " ms"), f(r["lag_p99"], " ms"), f(r["lag_max"], " ms"),
               r["ingest_backlog_max"], r["commit_backlog_max"], r["udp_lost"], r["udp_sent"], r["rounds"],
               r["setup_s"],
               "/".join("%.1f" % x for x in r["load"]))
            + "; commits %d, mean %s, total %s, longest lock hold %s"
            % (r["commits"], f(r["commit_mean_ms"], " ms"), f(r["commit_total_s"], " s"),
               f(r["lock_hold_max_ms"], " ms")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--spread-s", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    lsbench.on_sigterm_exit()
    try:
        r = run_storm(a.bin, a.devices, a.spread_s)
    except lsbench.RunError as e:
        print("FAILED: %s" % e)
        return 1
    print(json.dumps(r) if a.json else describe(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
