"""Helpers shared by the end-to-end benchmark drivers (bench/suite.py and
the jobs it runs): the machine, the lastseen daemon, a Redis server, a
keep-alive HTTP client, percentiles and medians.

Everything runs on loopback (127.0.0.1) on ports the kernel picks; every
wait is bounded; every process started here is stopped by whoever started
it (Daemon.stop, Redis.stop), and the temporary directories are removed.
Python 3 standard library only.
"""

import concurrent.futures
import gc
import http.client
import json
import math
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
SETTLE_MAX_S = 600.0
STOP_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 30.0


class RunError(Exception):
    pass


def on_sigterm_exit():
    """Turns SIGTERM into SystemExit, so that `finally:` blocks stop the
    daemons and remove the directories when the driver is killed."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def machine():
    """CPU model, cores, memory, kernel, OS: a dict of strings."""
    model = "unknown"
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    osname = "unknown"
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            osname = line.split("=", 1)[1].strip('"')
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"cpu": model, "cores": str(os.cpu_count()), "memory": "%.1f GiB" % (mem / 2**30),
            "kernel": platform.release(), "os": osname, "cc": cc[0] if cc else "unknown"}


def loadavg():
    """The 1-minute load average (float)."""
    try:
        return float(read_text("/proc/loadavg").split()[0])
    except (IndexError, ValueError):
        return -1.0


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


def summary(vals):
    """(median, min, max) of a non-empty list, or None."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def proc_mem(pid):
    """VmRSS, RssAnon, RssFile, VmHWM of a process, in bytes."""
    out = {}
    for line in read_text("/proc/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) used by a process so far."""
    try:
        f = read_text("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return 0.0


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def uuids(n, rng):
    """n distinct 36-character UUID-shaped ids (bytes) from random.Random rng."""
    out = []
    seen = set()
    while len(out) < n:
        h = "%032x" % rng.getrandbits(128)
        u = ("%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])).encode()
        if u not in seen:
            seen.add(u)
            out.append(u)
    return out


class Client:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port, timeout=HTTP_TIMEOUT_S):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.headers = {}  # sent with every request (an Authorization header)

    def request(self, method, path, body=None, ctype="application/json"):
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = ctype
        for attempt in (0, 1):  # one reconnect if the kept-alive socket was closed
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError) as e:
                self.close()
                if attempt == 1:
                    raise RunError("%s %s: %s" % (method, path, e))
        raise AssertionError("unreachable")

    def json(self, method, path, body=None):
        status, data = self.request(method, path, body)
        if status // 100 != 2:
            raise RunError("%s %s: status %d: %r" % (method, path, status, data[:300]))
        return json.loads(data)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def histogram_pct(metrics_text, name, p):
    """The upper bound (seconds) of the bucket of a Prometheus histogram
    `name` in which the p-th percentile falls, and the count; (None, 0) if
    the histogram is absent or empty."""
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(name + '_bucket{le="'):
            le = line[len(name) + 12:].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.rsplit(" ", 1)[1]))))
    if not buckets or buckets[-1][1] == 0:
        return None, 0
    total = buckets[-1][1]
    for le, cum in buckets:
        if cum >= p / 100.0 * total:
            return le, total
    return buckets[-1][0], total


class BulkPool:
    """POST /api/v1/activity from `workers` threads, each with its own
    keep-alive connection, so that requests waiting for their commit overlap.
    submit(items) queues one request of JSON items (bytes, already encoded);
    wait(timeout) returns once all are answered and raises the first error
    (RunError if some are still unanswered after timeout seconds);
    pending() counts the requests not answered yet."""

    def __init__(self, port, workers=4):
        self.local = threading.local()
        self.port = port
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self.futures = []
        self.clients = []
        self.lock = threading.Lock()

    def _post(self, body, count):
        c = getattr(self.local, "client", None)
        if c is None:
            c = self.local.client = Client(self.port)
            with self.lock:
                self.clients.append(c)
        r = c.json("POST", "/api/v1/activity", body)
        if r.get("accepted") != count:
            raise RunError("bulk: accepted %s of %d: %s" % (r.get("accepted"), count, r.get("rejected")))
        return time.time()

    def submit(self, items):
        body = b"[" + b",".join(items) + b"]"
        f = self.pool.submit(self._post, body, len(items))
        self.futures.append(f)
        return f

    def pending(self):
        while self.futures and self.futures[0].done():
            if self.futures[0].exception() is not None:
                raise self.futures[0].exception()
            self.futures.pop(0)
        return len(self.futures)

    def wait(self, timeout=SETTLE_MAX_S):
        deadline = time.monotonic() + timeout
        for f in self.futures:
            try:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                raise RunError("%d bulk requests not answered within %.0f s"
                               % (sum(1 for x in self.futures if not x.done()), timeout))
        self.futures = []

    def close(self):
        """Drops the requests not started; the running ones end when their
        connection is closed."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            for c in self.clients:
                c.close()


class Daemon:
    """build/lastseen on 127.0.0.1 (HTTP, and UDP with udp=True) with a fresh
    data directory under a new temporary directory, removed by stop()."""

    def __init__(self, binary, sets=None, udp=False, tmp_prefix="lastseen-bench-"):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        self.data_dir = os.path.join(self.tmp, "data")
        os.mkdir(self.data_dir)
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.sets = {"http.listen": "%s:0" % HOST, "store.data_dir": self.data_dir,
                     "events.retention": "1s"}
        if udp:
            self.sets["udp.listen"] = "%s:0" % HOST
        self.sets.update(sets or {})
        self.cmd = [binary]
        for k, v in self.sets.items():
            self.cmd += ["--set", "%s=%s" % (k, v)]
        self.proc = None
        self.http_port = None
        self.udp_port = None

    def command(self):
        """The command line, with the temporary directory shown as DATA and
        the binary relative to the repository."""
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/"
        return " ".join(a.replace(self.data_dir, "DATA").replace(repo, "") for a in self.cmd)

    def start(self):
        self.http_port = self.udp_port = None
        errf = open(self.err_path, "wb")
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=errf, close_fds=True)
        finally:
            errf.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        want_udp = "udp.listen" in self.sets
        while True:
            text = read_text(self.err_path)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            u = re.search(r"receiving heartbeats on 127\.0\.0\.1:(\d+)", text)
            if m:
                self.http_port = int(m.group(1))
            if u:
                self.udp_port = int(u.group(1))
            if self.http_port and (self.udp_port or not want_udp):
                break
            if self.proc.poll() is not None:
                raise RunError("daemon exited with %s at start:\n%s" % (self.proc.returncode, text[-2000:]))
            if time.monotonic() > deadline:
                raise RunError("daemon not listening within %.0f s:\n%s" % (START_TIMEOUT_S, text[-2000:]))
            time.sleep(0.02)
        client = Client(self.http_port)
        try:
            while True:
                try:
                    status, _ = client.request("GET", "/healthz")
                    if status == 200:
                        return self
                except RunError:
                    pass
                if time.monotonic() > deadline:
                    raise RunError("GET /healthz not 200 within %.0f s" % START_TIMEOUT_S)
                time.sleep(0.02)
        finally:
            client.close()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def events_path(self):
        return os.path.join(self.data_dir, "events.jsonl")

    def mem(self):
        return proc_mem(self.proc.pid)

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, remove=True):
        """SIGTERM (SIGKILL after STOP_TIMEOUT_S); removes the temporary
        directory unless remove is False (to start again on the same data).
        Returns the exit code ("killed" if it had to be)."""
        rc = None
        t0 = time.monotonic()
        try:
            if self.proc is not None:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                    rc = "killed"
        finally:
            self.stop_s = time.monotonic() - t0
            if os.environ.get("LSBENCH_KEEP_LOG"):  # the daemon's log, to read after the run
                shutil.copy(self.err_path, os.environ["LSBENCH_KEEP_LOG"])
            if remove:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def import_devices(self, ids, fields):
        """Writes devices into the store of the stopped daemon with
        `lastseen import -` (no events; store.sync off for the import
        alone): one line per id, in sorted order (LMDB then fills its pages
        in order: 1M devices in about 3 s), with the JSON members `fields`
        (bytes, e.g. b'"active":true,"lastActivityTime":1700000000000')."""
        cmd = [self.binary, "import", "-", "--data-dir", self.data_dir, "--set", "store.sync=false"]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            srt = sorted(ids)
            for i in range(0, len(srt), 100000):
                p.stdin.write(b"".join(b'{"id":"%s",%s}\n' % (x, fields) for x in srt[i:i + 100000]))
            p.stdin.close()
            err = p.stderr.read().decode(errors="replace")
            rc = p.wait(timeout=SETTLE_MAX_S)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=STOP_TIMEOUT_S)
        if rc != 0 or ("imported %d devices" % len(ids)) not in err:
            raise RunError("lastseen import: exit %s: %s" % (rc, err[-2000:]))

    def restart(self):
        """Stops the daemon (keeping its data) and starts it again on the same
        data directory; returns once /healthz answers 200."""
        rc = self.stop(remove=False)
        if rc != 0:
            raise RunError("exit code %s after SIGTERM" % rc)
        return self.start()


def freeze_gc():
    """Puts every object alive now out of the cyclic collector's sight
    (gc.freeze()); for a job's ids and schedule, which live to its end.  A
    full collection walks every tracked object: about a second at 10M
    devices, during which the bench neither sends nor reads, and which
    would be measured as the daemon's lateness."""
    gc.freeze()


def tail_events(path, etype, from_end, watch, counter, ready, stop, out_path):
    """Runs in its own process: tails the events file at path and notes
    every event of type etype as (device bytes, wall time it was read, ts,
    detectedAt); counts in counter those whose device is in watch (all if
    watch is None).  With from_end, starts at the file's current end (if
    the file exists yet).
    Sets ready once positioned; on stop, reads what is left and pickles the
    list to out_path."""
    # No cycles are made here; and a collection would walk every object
    # inherited from the parent (10M ids at the largest size): a pause of a
    # second that would be measured as the daemon's lateness.
    gc.disable()
    found = []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        f = open(path, "rb")
        if from_end:
            f.seek(0, os.SEEK_END)
    except OSError:
        f = None  # created with the first event: read from its start
    ready.set()
    tag = b'"type":"%s"' % etype.encode()
    rest = b""
    while True:
        if f is None:
            try:
                f = open(path, "rb")
            except OSError:
                if stop.is_set() or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
                continue
        chunk = f.read(1 << 22)
        t = time.time()
        if not chunk:
            if stop.is_set():
                break
            time.sleep(0.002)
            continue
        data = rest + chunk
        end = data.rfind(b"\n")
        if end < 0:
            rest = data
            continue
        rest = data[end + 1:]
        if tag not in data:
            continue
        n = 0
        for line in data[:end].split(b"\n"):
            if tag not in line:
                continue
            i = line.find(b'"device":"') + 10
            dev = line[i:line.index(b'"', i)]
            found.append((dev, t, line))
            if watch is None or dev in watch:
                n += 1
        if n:
            with counter.get_lock():
                counter.value += n
    if f is not None:
        f.close()
    out = []
    for dev, t, line in found:
        ev = json.loads(line)
        out.append((dev, t, ev["ts"], ev["detectedAt"]))
    with open(out_path, "wb") as o:
        pickle.dump(out, o)


def resp_command(*args):
    """One Redis command in RESP (bytes)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_read(sock, buf=b""):
    """Reads one RESP reply from a blocking socket: (value, rest of buffer).
    Bulk strings and simple strings come back as bytes, errors raise."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RunError("redis closed the connection")
            buf += chunk

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RunError("redis closed the connection")
            buf += chunk
        i = buf.index(b"\r\n")
        s, buf = buf[:i], buf[i + 2:]
        return s

    def value():
        nonlocal buf
        s = line()
        t, rest = s[:1], s[1:]
        if t == b"+":
            return rest
        if t == b"-":
            raise RunError("redis error: %s" % rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            need(n + 2)
            v, buf = buf[:n], buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [value() for _ in range(n)]
        raise RunError("bad RESP reply: %r" % s[:80])

    v = value()
    return v, buf


class Redis:
    """Debian's redis-server on 127.0.0.1:<free port> with a generated config:
    no persistence, keyspace notifications for expired keys (Ex), every
    other setting at its default (hz 10, active-expire-effort 1)."""

    def __init__(self, binary="redis-server"):
        self.binary = shutil.which(binary) or binary
        self.tmp = tempfile.mkdtemp(prefix="lastseen-bench-redis-")
        self.port = None
        self.proc = None
        self.conf = os.path.join(self.tmp, "redis.conf")

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise RunError("redis-server not found (apt-get install redis-server)")
        for _ in range(5):  # the port may be taken between free_port() and bind
            self.port = free_port()
            with open(self.conf, "w") as f:
                f.write("bind 127.0.0.1\nport %d\nprotected-mode yes\ndaemonize no\n"
                        "save \"\"\nappendonly no\nnotify-keyspace-events Ex\n"
                        "dir %s\nlogfile %s\n" % (self.port, self.tmp, os.path.join(self.tmp, "redis.log")))
            self.proc = subprocess.Popen([self.binary, self.conf], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.call("PING") == b"PONG":
                        return self
                except (OSError, RunError):
                    pass
                time.sleep(0.02)
            self.kill()
        raise RunError("redis-server did not answer PING:\n%s" % read_text(os.path.join(self.tmp, "redis.log"))[-2000:])

    def command(self):
        """The command line and the generated configuration (one line)."""
        return "%s redis.conf  # redis.conf: %s" % (self.binary, "; ".join(
            l for l in read_text(self.conf).splitlines() if not l.startswith(("dir", "logfile"))))

    def connect(self):
        s = socket.create_connection((HOST, self.port), timeout=HTTP_TIMEOUT_S)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def call(self, *args):
        s = self.connect()
        try:
            s.sendall(resp_command(*args))
            return resp_read(s)[0]
        finally:
            s.close()

    def info(self, section):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if v:
                out[k] = v
        return out

    def version(self):
        return self.info("server").get("redis_version", "?")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.call("SHUTDOWN", "NOSAVE")
                except (OSError, RunError):
                    pass
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
