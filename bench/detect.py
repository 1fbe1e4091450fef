#!/usr/bin/python3
"""The detection job, done by lastseen or by Redis: how late is a silent
device reported, and is any missed?

The job.  N devices with 36-character UUID ids exist (setup, below) and send
a heartbeat every P seconds, each at its own phase (device r at r*P/N into
the period), for as long as the job runs.  A fraction f of them (default
10 %) goes silent: each stops after one heartbeat chosen so that these last
heartbeats are spread uniformly over the first W seconds (default 10).  The
inactivity timeout is T (default 2P): the silent devices' deadlines are
spread over W seconds, and the others are never late for theirs.  The job
ends once every silent device has been reported, or 120 s after the last
deadline.

lastseen: build/lastseen with state.default_inactivity_timeout = T.  Setup
writes the devices into its store with `lastseen import` and starts the
daemon on them, so the job starts from a fleet at rest (the grace policy
gives each a full timeout from the start).  Each slice's heartbeats are then one POST /api/v1/activity (a
JSON array of ids), 4 requests in flight; the reports are the
INACTIVITY_EVENT lines of events.jsonl, read by a tailing process.

Redis: redis-server with notify-keyspace-events Ex.  Setup sets every key
with a 10-minute TTL; each heartbeat is "SET id 1 PX T", pipelined; the
reports are __keyevent@0__:expired notifications read by a subscribing
process.

Figures:
  - lateness as seen by a client, the same for both: the time the report
    was read (events.jsonl line, or notification) minus the device's
    deadline, its last heartbeat + T.  The heartbeat's time is when it was
    acknowledged: the bulk request's answer, or Redis's reply to the SET
    (both later than when the heartbeat was applied, which shortens the
    measured lateness by that delay, for both);
  - lastseen only, the daemon's own lateness: detectedAt - ts of the event
    (ts is the deadline, detectedAt the time the timer tick found it);
  - missed: silent devices not reported within 120 s of their deadline
    (they count as infinitely late in the percentiles, which are over all
    the silent devices); false: devices that kept sending and were
    reported anyway;
  - memory per device, divided by N: after setup (lastseen: VmRSS and
    RssAnon of the daemon started on the devices less those of the empty
    daemon; Redis: used_memory and used_memory_rss growth), and during the
    job, just before the first deadline (same differences).

Percentiles are nearest-rank.  Loopback only; every wait bounded; the
daemon, Redis and their directories are removed at the end.

usage: bench/detect.py [--target lastseen|redis] [--devices N] [--period-s P]
                       [--timeout-s T] [--window-s W] [--silent 0.1]
                       [--set KEY=VALUE ...] [--json]
"""

import argparse
import json
import math
import multiprocessing
import os
import pickle
import random
import select
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lsbench  # noqa: E402

SLICE_S = 0.01          # the sender's time step
MAX_WAIT_S = 120.0      # after the last deadline: "missed within 2 min"
SETUP_BULK = 20000      # Redis setup: SETs per write
JOB_WORKERS = 4         # lastseen job: bulk requests in flight
SETUP_MAX_S = 600.0
HOLD_MARGIN_S = 30.0   # hold(): the TTL outlives the wait by this much
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Schedule:
    """Who sends in which slice, and which devices go silent when."""

    NEVER = 1 << 30   # last_round of a device that keeps sending

    def __init__(self, n, period_s, window_s, silent_frac, rng):
        self.n = n
        self.P = period_s
        self.W = window_s
        self.S = max(1, round(period_s / SLICE_S))   # slices per period
        self.last_round = [self.NEVER] * n
        # Device r heartbeats at r*P/n + m*P (m >= 0).  A silent device's
        # last heartbeat must fall in [0, W): possible for r*P/n < W.
        cand = n if window_s >= period_s else int(math.ceil(window_s / period_s * n))
        k = int(round(silent_frac * n))
        if k > cand:
            raise lsbench.RunError("%d silent devices cannot all have a last heartbeat in a %.0f s window "
                                   "when each sends every %.0f s" % (k, window_s, period_s))
        self.silent = rng.sample(range(cand), k)
        self.silent_by_slice = {}
        for r in self.silent:
            phi = r * period_s / n
            m_max = math.ceil((window_s - phi) / period_s) - 1
            m = rng.randint(0, max(0, m_max))
            self.last_round[r] = m
            j = (r * self.S) // n
            self.silent_by_slice.setdefault(m * self.S + j, []).append(r)

    def first_rank(self, k):
        """The first rank to send in slice k."""
        j = k % self.S
        return -(-j * self.n // self.S) % self.n

    def ranks(self, k):
        """Ranks sending in slice k (since the start)."""
        m, j = divmod(k, self.S)
        a = -(-j * self.n // self.S)
        b = -(-(j + 1) * self.n // self.S)
        lr = self.last_round
        return [r for r in range(a, b) if lr[r] >= m]

    def first_deadline_s(self, timeout_s):
        return timeout_s

    def last_deadline_s(self, timeout_s):
        return self.W + timeout_s


# ---------------------------------------------------------------------------
# Observers: separate processes, so that stamping the reports does not wait
# for the sender's interpreter lock.  Each writes a pickle of
# [(id bytes, observed wall time, extra...)] to out_path when told to stop:
# lsbench.tail_events for lastseen, subscribe_expired for Redis.

def subscribe_expired(port, silent, counter, ready, stop, out_path):
    """Subscribes to __keyevent@0__:expired: every notification as (key,
    observed wall s)."""
    s = socket.create_connection((lsbench.HOST, port), timeout=10)
    s.sendall(lsbench.resp_command("SUBSCRIBE", "__keyevent@0__:expired"))
    _, buf = lsbench.resp_read(s)
    ready.set()
    s.settimeout(0.1)
    found = []
    while not stop.is_set():
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        t = time.time()
        buf += chunk
        pos = 0
        n = 0
        while True:   # *3 $7 message $22 __keyevent@0__:expired $len key
            if not buf.startswith(b"*3\r\n", pos):
                break
            # the key is the third bulk string: skip two
            p = pos + 4
            ok = True
            vals = []
            for _ in range(3):
                e = buf.find(b"\r\n", p)
                if e < 0:
                    ok = False
                    break
                ln = int(buf[p + 1:e])
                if len(buf) < e + 2 + ln + 2:
                    ok = False
                    break
                vals.append(buf[e + 2:e + 2 + ln])
                p = e + 2 + ln + 2
            if not ok:
                break
            found.append((vals[2], t))
            if vals[2] in silent:
                n += 1
            pos = p
        buf = buf[pos:]
        if n:
            with counter.get_lock():
                counter.value += n
    s.close()
    with open(out_path, "wb") as o:
        pickle.dump(found, o)


# ---------------------------------------------------------------------------
# Targets

class LastseenTarget:
    """build/lastseen.  Setup: the empty daemon's memory is measured, then
    it is stopped, the devices are written into its store with `lastseen
    import` (active, last heard at the import), and it is started again on
    them: the job starts from a fleet at rest (under the default grace
    policy each device gets a full timeout from the start).  The job's
    heartbeats: one bulk request per slice, 4 in flight; a heartbeat's time
    is when its request was answered."""
    name = "lastseen"

    def __init__(self, binary, timeout_s, sets=None):
        conf = {"state.default_inactivity_timeout": "%dms" % round(timeout_s * 1000)}
        conf.update(sets or {})
        self.d = lsbench.Daemon(binary, conf)
        self.pool = None
        self.client = None
        self.sent = 0
        self.futures = {}
        self.ack = {}
        self.want_ack = set()

    def start(self):
        self.d.start()
        self.mem0 = self.d.mem()

    def setup(self, ids):
        rc = self.d.stop(remove=False)
        if rc != 0:
            raise lsbench.RunError("exit code %s after SIGTERM" % rc)
        self.d.import_devices(ids, b'"active":true,"lastActivityTime":%d' % int(time.time() * 1000))
        m = self.d.start().mem()
        self.rest_mem = {"rss": m["VmRSS"] - self.mem0["VmRSS"], "anon": m["RssAnon"] - self.mem0["RssAnon"],
                         "file": m["RssFile"] - self.mem0["RssFile"]}
        self.pool = lsbench.BulkPool(self.d.http_port, JOB_WORKERS)
        self.client = lsbench.Client(self.d.http_port)
        return self.rest_mem

    def command(self):
        return self.d.command()

    def observer(self):
        return lsbench.tail_events, (self.d.events_path, "INACTIVITY_EVENT", True)

    def send(self, k, ids):
        if not ids:
            return
        f = self.pool.submit([b'"' + i + b'"' for i in ids])
        if k in self.want_ack:
            self.futures[k] = f
        self.sent += len(ids)

    def poll(self):
        pass

    def backlog(self):
        """Requests sent but not answered yet."""
        return self.pool.pending()

    def drain(self, deadline):
        self.pool.wait(max(0.0, deadline - time.monotonic()))
        for k, f in self.futures.items():
            self.ack[k] = f.result(timeout=0)

    def alive(self):
        return self.d.alive()

    def mem(self):
        m = self.d.mem()
        return {"rss": m["VmRSS"] - self.mem0["VmRSS"], "anon": m["RssAnon"] - self.mem0["RssAnon"]}

    def finish(self):
        st = self.client.json("GET", "/api/v1/stats")
        if st["activities"] != self.sent:
            raise lsbench.RunError("lastseen counted %d activities, %d were sent" % (st["activities"], self.sent))
        res = {"activities": st["activities"], "events_errors": st.get("eventLogWriteErrors", 0)}
        if "store" in st:  # builds with flush passes: the committer's figures
            res["store"] = st["store"]
            status, text = self.client.request("GET", "/metrics")
            text = text.decode()
            res["store"]["lock_hold_p99_le_s"], _ = lsbench.histogram_pct(
                text, "lastseen_committer_lock_hold_seconds", 99)
            res["store"]["commit_p99_le_s"], _ = lsbench.histogram_pct(
                text, "lastseen_store_commit_duration_seconds", 99)
        return res

    def stop(self):
        if self.pool is not None:
            self.pool.close()
        if self.client is not None:
            self.client.close()
        return self.d.stop()


class RedisTarget:
    name = "redis"

    def __init__(self, timeout_s):
        self.r = lsbench.Redis()
        self.pre = b"*5\r\n$3\r\nSET\r\n$36\r\n"
        self.post = self.ttl_tail(timeout_s)
        self.sent = 0
        self.acked = 0
        self.pending = []   # (slice, commands sent through it)
        self.pi = 0
        self.ack = {}
        self.sock = None

    def start(self):
        self.r.start()
        self.sock = self.r.connect()
        self.mem0 = self.r.info("memory")

    @staticmethod
    def ttl_tail(seconds):
        """The end of `SET <id> 1 PX <ms>` after the id, for a TTL of `seconds`."""
        px = b"%d" % round(seconds * 1000)
        return b"\r\n$1\r\n1\r\n$2\r\nPX\r\n$%d\r\n%s\r\n" % (len(px), px)

    def set_all(self, ids, seconds):
        """One SET per key with a TTL of `seconds`, acknowledged before it returns."""
        post = self.ttl_tail(seconds)
        for i in range(0, len(ids), SETUP_BULK):
            self.sock.sendall(b"".join([self.pre + x + post for x in ids[i:i + SETUP_BULK]]))
            self.sent += min(SETUP_BULK, len(ids) - i)
            self.poll()
        self.drain(time.monotonic() + SETUP_MAX_S)
        if self.acked != self.sent:
            raise lsbench.RunError("redis acknowledged %d of %d SETs" % (self.acked, self.sent))

    def setup(self, ids):
        """Every key, with a TTL long enough to last until the job's first SET."""
        self.set_all(ids, 600)
        self.pending = []
        self.pi = 0
        return self.mem()

    def command(self):
        return self.r.command()

    def observer(self):
        return subscribe_expired, (self.r.port,)

    def hold(self, ids, seconds):
        """The keys of the devices that keep sending, set to outlive the wait (run_job)."""
        self.set_all(ids, seconds)

    def send(self, k, ids):
        pre, post = self.pre, self.post
        self.sock.sendall(b"".join([pre + i + post for i in ids]))
        self.sent += len(ids)
        self.pending.append((k, self.sent))
        self.poll()

    def poll(self):
        while select.select([self.sock], [], [], 0)[0]:
            data = self.sock.recv(1 << 20)
            if not data:
                raise lsbench.RunError("redis closed the connection")
            if b"-" in data:
                raise lsbench.RunError("redis error reply: %r" % data[:200])
            self.acked += data.count(b"\n")
        t = time.time()
        while self.pi < len(self.pending) and self.pending[self.pi][1] <= self.acked:
            self.ack[self.pending[self.pi][0]] = t
            self.pi += 1

    def backlog(self):
        """SETs sent but not acknowledged yet, in slices of 2,000."""
        return (self.sent - self.acked) // 2000

    def drain(self, deadline):
        while self.acked < self.sent and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.001)

    def alive(self):
        return self.r.proc is not None and self.r.proc.poll() is None

    def mem(self):
        m = self.r.info("memory")
        return {"used_memory": int(m["used_memory"]) - int(self.mem0["used_memory"]),
                "rss": int(m["used_memory_rss"]) - int(self.mem0["used_memory_rss"])}

    def finish(self):
        return {"redis_version": self.r.version(), "set_sent": self.sent, "set_acked": self.acked}

    def stop(self):
        if self.sock is not None:
            self.sock.close()
        self.r.stop()


# ---------------------------------------------------------------------------

def run_job(target, n, period_s, timeout_s, window_s, silent_frac, seed=1, on_tail=None, dump=None, probe=None):
    """Runs the job once against a target (started and stopped here).
    Returns a dict of figures; raises lsbench.RunError on failure.

    A target with a hold() method (Redis) that is still reporting after the
    last deadline spends the rest of the 2-minute wait idle: the devices that
    keep sending get one SET with a TTL past the end of the wait instead of a
    heartbeat every period (so they cannot expire in it, as with heartbeats),
    and on_tail(), if given, is called then.  The store's expiry sees the
    same keys, TTLs and expired keys as with heartbeats; it only gets more of
    the CPU (it no longer shares it with the SETs).

    probe, if given, is the path of lastseen-bench: its `jitter` mode runs
    from a second before the first deadline to a second after the last one
    and says how late a thread that only sleeps 1 ms woke up meanwhile,
    the machine's share of the lateness (figure "probe")."""
    if timeout_s <= period_s:
        raise lsbench.RunError("the timeout must be longer than the heartbeat period")
    rng = random.Random(seed)
    t_gen = time.monotonic()
    ids = lsbench.uuids(n, rng)
    sched = Schedule(n, period_s, window_s, silent_frac, rng)
    silent_ids = set(ids[r] for r in sched.silent)
    gen_s = time.monotonic() - t_gen
    lsbench.freeze_gc()

    ctx = multiprocessing.get_context("fork")
    tmp = tempfile.mkdtemp(prefix="lastseen-bench-detect-")
    out_path = os.path.join(tmp, "observed.pickle")
    counter = ctx.Value("q", 0)
    ready, stop = ctx.Event(), ctx.Event()
    obs = None
    jit = None
    load = [lsbench.loadavg()]
    try:
        target.want_ack = set(sched.silent_by_slice)
        target.start()
        command = target.command()
        t_setup = time.monotonic()
        setup_mem = target.setup(ids)
        setup_s = time.monotonic() - t_setup
        fn, args = target.observer()
        obs = ctx.Process(target=fn, args=args + (silent_ids, counter, ready, stop, out_path), daemon=True)
        obs.start()
        if not ready.wait(30):
            raise lsbench.RunError("observer not ready")
        t0 = time.monotonic()
        k = 0
        mem = None
        max_slip = 0.0
        mem_at = sched.first_deadline_s(timeout_s) - min(1.0, timeout_s / 4)
        last_deadline = sched.last_deadline_s(timeout_s)
        end = last_deadline + MAX_WAIT_S
        n_silent = len(sched.silent)
        held = False
        while True:
            due = k * SLICE_S
            now = time.monotonic() - t0
            if held:
                if (now > last_deadline and counter.value >= n_silent) or now > end:
                    break
                target.poll()
                time.sleep(0.05)
                continue
            if due > now:
                target.poll()
                time.sleep(min(due - now, 0.005))
                continue
            max_slip = max(max_slip, now - due)
            if probe and jit is None and now >= mem_at:
                jit = subprocess.Popen([probe, "jitter", "--ms", str(int((last_deadline + 1.0 - now) * 1000))],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if mem is None and now >= mem_at:
                mem = target.mem()
                load.append(lsbench.loadavg())
            if now > last_deadline and counter.value >= n_silent:
                break
            if now > end:
                break
            if now > last_deadline and hasattr(target, "hold"):
                # The devices due to send next first: their keys expire soonest.
                a = sched.first_rank(k)
                live = [ids[r % n] for r in range(a, a + n) if sched.last_round[r % n] == Schedule.NEVER]
                target.hold(live, end - now + HOLD_MARGIN_S)
                held = True
                if on_tail is not None:
                    on_tail()
                continue
            ranks = sched.ranks(k)
            target.send(k, [ids[r] for r in ranks])
            k += 1
            if k % 50 == 0:
                # Heartbeats waiting longer than half the slack (T - P) in
                # the sender would make devices that kept sending look
                # silent: stop, and say so, rather than report that.
                behind = target.backlog() * len(ranks) / (n / period_s)
                if behind > (timeout_s - period_s) / 2:
                    raise lsbench.RunError("%s fell behind the heartbeats: %.1f s of them waiting for an answer "
                                           "%.1f s into the job" % (target.name, behind, now))
        job_s = time.monotonic() - t0
        t1 = time.monotonic()
        target.drain(time.monotonic() + 60)
        drain_s = time.monotonic() - t1
        time.sleep(0.05)
        stop.set()
        obs.join(60)
        if obs.is_alive():
            raise lsbench.RunError("observer did not stop (setup %.1f s, job %.1f s, drain %.1f s, %d of %d "
                                   "silent devices reported, the target %s)"
                                   % (setup_s, job_s, drain_s, counter.value, n_silent,
                                      "alive" if target.alive() else "gone"))
        with open(out_path, "rb") as f:
            observed = pickle.load(f)
        fin = target.finish()
        load.append(lsbench.loadavg())
        if jit is not None:
            out, _ = jit.communicate(timeout=60)
            fin["probe"] = json.loads(out) if jit.returncode == 0 else None
    finally:
        if jit is not None and jit.poll() is None:
            jit.kill()
            jit.wait()
        stop.set()
        if obs is not None and obs.is_alive():
            obs.terminate()
            obs.join(5)
        rc = target.stop()
        for p in (out_path,):
            try:
                os.unlink(p)
            except OSError:
                pass
        os.rmdir(tmp)
    if target.name == "lastseen" and rc != 0:
        raise lsbench.RunError("lastseen exit code %s after SIGTERM (%.0f s)" % (rc, target.d.stop_s))

    # Each silent device's deadline as a client sees it.
    deadline = {}
    for k, ranks in sched.silent_by_slice.items():
        t = target.ack.get(k)
        if t is None:
            raise lsbench.RunError("slice %d was never acknowledged" % k)
        for r in ranks:
            deadline[ids[r]] = t + timeout_s
    first = {}
    daemon_late = []
    false_pos = 0
    dup = 0
    for item in observed:
        dev, t = item[0], item[1]
        if dev not in deadline:
            false_pos += 1
            continue
        if dev in first:
            dup += 1
            continue
        first[dev] = t
        if len(item) > 2:
            daemon_late.append(item[3] - item[2])
    if dump:
        # One line a reported silent device: its deadline as the client sees
        # it and the time its report was read (wall clock, s), then ts and
        # detectedAt of its INACTIVITY_EVENT (epoch ms; lastseen only).
        with open(dump, "w") as f:
            for item in observed:
                if item[0] in deadline:
                    f.write(" ".join("%.3f" % v for v in [deadline[item[0]], item[1]] + list(item[2:4]))
                            + "\n")
    late = sorted((first[d] - deadline[d]) * 1000.0 for d in first if first[d] - deadline[d] <= MAX_WAIT_S)
    missed = n_silent - len(late)
    # A device not reported within MAX_WAIT_S counts as infinitely late, so
    # the percentiles are over every silent device.
    late += [float("inf")] * missed
    daemon_late.sort()
    res = {"target": target.name, "devices": n, "silent": n_silent, "period_s": period_s,
           "timeout_s": timeout_s, "window_s": window_s, "reported": len(first), "missed": missed,
           "false": false_pos, "dup": dup, "job_s": job_s, "max_slip_ms": max_slip * 1000.0,
           "gen_s": gen_s, "setup_s": setup_s, "setup_mem": setup_mem, "load": load, "rate": n / period_s, "command": command,
           "p50": lsbench.pct(late, 50), "p99": lsbench.pct(late, 99), "max": late[-1] if late else None,
           "mem": mem, "mem_per_device": {k: v / n for k, v in (mem or {}).items()}}
    if daemon_late:
        res.update({"daemon_p50": lsbench.pct(daemon_late, 50), "daemon_p99": lsbench.pct(daemon_late, 99),
                    "daemon_max": daemon_late[-1]})
    res.update(fin)
    if target.name == "lastseen":
        res["stop_s"] = target.d.stop_s
    res["setup_mem_per_device"] = {k: v / n for k, v in setup_mem.items()}
    return res


def describe(r):
    s = ("%s: devices=%d silent=%d reported=%d missed=%d false=%d dup=%d client lateness p50=%s p99=%s "
         "max=%s" % (r["target"], r["devices"], r["silent"], r["reported"], r["missed"], r["false"],
                        r["dup"], fmt(r["p50"]), fmt(r["p99"]), fmt(r["max"])))
    if "daemon_p50" in r:
        s += "; detectedAt-ts p50=%d p99=%d max=%d ms" % (r["daemon_p50"], r["daemon_p99"], r["daemon_max"])
    s += "; memory/device %s" % ", ".join("%s=%.1f B" % kv for kv in r["mem_per_device"].items())
    s += " (after setup: %s)" % ", ".join("%s=%.1f B" % kv for kv in r["setup_mem_per_device"].items())
    if "store" in r:
        st = r["store"]
        s += ("; committer: lock hold p99 <= %s s, longest %.2f ms, %d commits (mean %.1f ms), %d flush passes "
              "(largest %d records in %d ms)" % (st["lock_hold_p99_le_s"], st["committerLockMaxUs"] / 1000.0, st["commits"],
                                               st["commitMsTotal"] / max(1, st["commits"]), st["flushes"],
                                               st["largestFlush"]["records"], st["largestFlush"]["ms"]))
    if r.get("probe"):
        s += ("; an idle probe woke p99=%.1f max=%.1f ms late meanwhile" % (r["probe"]["p99_ms"], r["probe"]["max_ms"]))
    s += "; job %.1f s, max sender slip %.0f ms, load %s" % (r["job_s"], r["max_slip_ms"],
                                                           "/".join("%.1f" % x for x in r["load"]))
    return s


def fmt(v):
    return "-" if v is None else "> %.0f s" % MAX_WAIT_S if v == float("inf") else "%.1f ms" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=("lastseen", "redis"), default="lastseen")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "lastseen"))
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--period-s", type=float, default=5.0)
    ap.add_argument("--timeout-s", type=float, default=None, help="default: twice the period")
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--silent", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="more lastseen configuration (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--probe", default=os.path.join(REPO, "build", "lastseen-bench"),
                    help="lastseen-bench, for its jitter probe during the deadlines ('' for none)")
    ap.add_argument("--dump", metavar="PATH", help="write each silent device's deadline, report time, "
                    "ts and detectedAt to PATH, a line each (to see when lateness happened)")
    a = ap.parse_args()
    lsbench.on_sigterm_exit()
    timeout = a.timeout_s if a.timeout_s else 2 * a.period_s
    sets = dict(kv.split("=", 1) for kv in a.set)
    tgt = LastseenTarget(a.bin, timeout, sets) if a.target == "lastseen" else RedisTarget(timeout)
    try:
        r = run_job(tgt, a.devices, a.period_s, timeout, a.window_s, a.silent, a.seed, dump=a.dump,
                    probe=a.probe if a.probe and os.access(a.probe, os.X_OK) else None)
    except lsbench.RunError as e:
        print("FAILED: %s" % e)
        return 1
    print(json.dumps(r) if a.json else describe(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
