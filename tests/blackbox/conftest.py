"""
Black-box harness for lastseen: starts the real daemon, talks to it over
real sockets, and reads the event log it writes.

Everything here is standard library only (http.client, socket, json,
subprocess), every wait is bounded, and every test runs under a SIGALRM
deadline (default 60 s; `@pytest.mark.bb_timeout(n)` changes it).

The binary is $LASTSEEN_BIN (default /work/main/build/lastseen).  Each daemon
is started as

    LASTSEEN_BIN --set http.listen=127.0.0.1:0 --set store.data_dir=DIR [...]

with stdout and stderr sent to files in DIR's parent (and, when the
environment variable LS_TEST_SHARDS is set, with --set engine.shards=N
first, so that a whole file can be run against a given shard count:
LS_TEST_SHARDS=4 pytest tests/blackbox/test_api.py); the port is read from
the `listening on HOST:PORT` line on stderr, then /healthz is polled until it
answers 200.  On teardown the daemon gets SIGTERM and must exit 0 within 5 s.

Sanitizer builds (make test-asan, make test-tsan): a report makes the daemon
exit non-zero (abort_on_error / halt_on_error), which the teardown catches;
and since a test may stop or kill -9 a daemon itself, the teardown also
fails the test when any daemon's stderr holds a sanitizer report or a failed
LS_ASSERT, however that daemon ended (sanitizer_report()).
"""

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest

LASTSEEN_BIN = os.environ.get("LASTSEEN_BIN", "/work/main/build/lastseen")
# engine.shards for every daemon (a test's own --set comes later and wins); None = the default.
TEST_SHARDS = os.environ.get("LS_TEST_SHARDS") or None

DEFAULT_TEST_TIMEOUT = 60.0
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
LISTEN_RE = re.compile(r"listening on ([0-9.]+):(\d+)")

DEVICE_FIELDS = {
    "id",
    "type",
    "active",
    "lastActivityTime",
    "lastConnectTime",
    "lastDisconnectTime",
    "inactivityAlarmTime",
    "inactivityTimeout",
    "inactivityTimeoutSource",
    "sessions",
}
DEVICE_EVENT_TYPES = ("ACTIVITY_EVENT", "INACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT")
ALARM_EVENT_TYPES = ("ALARM_RAISED", "ALARM_UPDATED", "ALARM_CLEARED")
SOURCE_EVENT_TYPES = ("SOURCE_DOWN", "SOURCE_UP")
AUDIT_EVENT_TYPES = ("AUDIT",)
EVENT_TYPES = DEVICE_EVENT_TYPES + ALARM_EVENT_TYPES + SOURCE_EVENT_TYPES + AUDIT_EVENT_TYPES
TIMEOUT_SOURCES = ("device", "c8y_RequiredAvailability", "type", "default")


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------


def now_ms():
    """Wall-clock milliseconds since the Unix epoch (same clock as the daemon)."""
    return int(time.time() * 1000)


def dev_path(device_id, suffix=""):
    """URL path of a device, its id percent-encoded as UTF-8 (nothing kept safe)."""
    return "/api/v1/devices/" + urllib.parse.quote(device_id, safe="") + suffix


def wait_until(predicate, timeout, interval=0.005):
    """Polls predicate() until it returns a truthy value or `timeout` seconds
    pass.  Returns that value, or the last (falsy) one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def sleep_until_ms(wall_ms):
    """Sleeps until the wall clock reaches `wall_ms` (bounded by the test timeout)."""
    while True:
        left = wall_ms - now_ms()
        if left <= 0:
            return
        time.sleep(min(left / 1000.0, 0.05))


def read_events(data_dir):
    """Every complete line of <data_dir>/events.jsonl, parsed as JSON.
    A trailing line without its newline (being written) is left out."""
    path = os.path.join(str(data_dir), "events.jsonl")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    events = []
    for line in raw.split(b"\n")[:-1]:
        if line.strip():
            events.append(json.loads(line))
    return events


def events_of(data_dir, device=None, type_=None):
    return [
        e
        for e in read_events(data_dir)
        if (device is None or e.get("device") == device) and (type_ is None or e.get("type") == type_)
    ]


def wait_events(data_dir, device=None, type_=None, count=1, timeout=2.0):
    """Waits until at least `count` matching events are in the log; returns them all
    (may be fewer than `count` if the wait timed out: callers assert)."""
    got = wait_until(
        lambda: (lambda evs: evs if len(evs) >= count else None)(events_of(data_dir, device, type_)),
        timeout,
    )
    return got if got else events_of(data_dir, device, type_)


# The first line of a report of ASan, LSan, UBSan or TSan, or of a failed
# LS_ASSERT (src/app/assert.h).
SANITIZER_RE = re.compile(r"^(==\d+==ERROR: \w+Sanitizer|WARNING: ThreadSanitizer|SUMMARY: \w+Sanitizer"
                          r"|\S+:\d+:\d+: runtime error: |\S+:\d+: \w+: assertion `)", re.M)


def sanitizer_report(text):
    """The sanitizer report or failed assertion in a process's stderr `text`
    (from its first line on, at most 4000 characters), or None when there is
    none."""
    m = SANITIZER_RE.search(text)
    return text[m.start():m.start() + 4000] if m else None


# --------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------


class Response:
    """status, headers (case-insensitive http.client.HTTPMessage), raw bytes,
    and body: the parsed JSON when the body is JSON, else the raw bytes."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body = raw
        ctype = headers.get("Content-Type", "") if headers is not None else ""
        if raw and "json" in ctype.lower():
            try:
                self.body = json.loads(raw)
            except ValueError:
                self.body = raw

    def __iter__(self):  # status, headers, body = resp
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "Response(%d, %r)" % (self.status, self.raw[:300])


_NO_JSON = object()


class Client:
    """A keep-alive HTTP/1.1 client on one http.client connection; reconnects
    when the server has closed it.  With an ssl.SSLContext, HTTPS."""

    def __init__(self, host, port, timeout=5.0, ssl_context=None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.conn = None

    def _connect(self):
        self.close()
        if self.ssl_context is not None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                    context=self.ssl_context)
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, json_body=_NO_JSON, headers=None):
        hdrs = dict(headers or {})
        if json_body is not _NO_JSON:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if body is None and method in ("POST", "PUT"):
            body = b""
        for attempt in range(2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.will_close:
                    self.close()
                return Response(resp.status, resp.headers, raw)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                # The server closed an idle keep-alive connection: retry once.
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json_body=_NO_JSON, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path, json_body=_NO_JSON, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # Convenience wrappers for the API ------------------------------------

    def activity(self, device_id, ts=None):
        return self.post(dev_path(device_id, "/activity"), json_body={} if ts is None else {"ts": ts})

    def device(self, device_id):
        return self.get(dev_path(device_id))

    def stats(self):
        r = self.get("/api/v1/stats")
        assert r.status == 200, r
        return r.body


def assert_error(resp, status, code):
    """An error response: the status, JSON content type, {"error": code, "detail": "..."}."""
    assert resp.status == status, "expected %d %s, got %r" % (status, code, resp)
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", (
        "error without JSON content type: %r (%r)" % (ctype, resp)
    )
    assert isinstance(resp.body, dict), resp
    assert resp.body.get("error") == code, "expected error %r, got %r" % (code, resp.body)
    detail = resp.body.get("detail")
    assert isinstance(detail, str) and detail, "error without detail: %r" % (resp.body,)


def assert_device_json(d):
    assert isinstance(d, dict), d
    missing = DEVICE_FIELDS - set(d)
    assert not missing, "device JSON lacks %s: %r" % (sorted(missing), d)
    assert isinstance(d["active"], bool), d
    for k in ("lastActivityTime", "lastConnectTime", "lastDisconnectTime", "inactivityAlarmTime", "sessions"):
        assert isinstance(d[k], int) and not isinstance(d[k], bool) and d[k] >= 0, (k, d)
    # null: the device has no timeout (not monitored, or in maintenance)
    t = d["inactivityTimeout"]
    assert t is None or (isinstance(t, int) and not isinstance(t, bool) and t > 0), d
    assert d["inactivityTimeoutSource"] in TIMEOUT_SOURCES, d
    assert isinstance(d["c8y_ActiveAlarmsStatus"], dict), d


# --------------------------------------------------------------------------
# Raw sockets (for chunked bodies, garbage, oversized uploads)
# --------------------------------------------------------------------------


def raw_exchange(host, port, data, timeout=3.0, half_close=False):
    """Sends `data` on a fresh TCP connection and reads one HTTP response (or
    until the server closes / `timeout`).  Like a careful HTTP client, it reads
    while it sends, so an early answer (413 to a body still being uploaded) is
    seen even if the server then stops reading.  Returns (status or None,
    headers dict with lower-case keys, body bytes, all bytes received)."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setblocking(False)
    buf = b""
    sent = 0
    closed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not closed and not _response_complete(buf):
            want_write = sent < len(data)
            r, w, _ = select.select([s], [s] if want_write else [], [], 0.05)
            if r:
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    chunk = None
                except OSError:  # reset
                    break
                if chunk == b"":
                    closed = True
                elif chunk:
                    buf += chunk
            if w and want_write:
                try:
                    sent += s.send(data[sent:sent + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # the server stopped reading: keep reading its answer
                    sent = len(data)
                if sent >= len(data) and half_close:
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
    finally:
        s.close()
    return _parse_response(buf) + (buf,)


def _split_head(buf):
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None, None
    return buf[:i], buf[i + 4:]


def _headers_of(head):
    lines = head.split(b"\r\n")
    hdrs = {}
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            hdrs[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
    return lines[0], hdrs


def _dechunk(rest):
    """Returns the body if `rest` holds a complete chunked body, else None."""
    body = b""
    while True:
        i = rest.find(b"\r\n")
        if i < 0:
            return None
        size = int(rest[:i].split(b";")[0].strip() or b"0", 16)
        rest = rest[i + 2:]
        if size == 0:
            return body
        if len(rest) < size + 2:
            return None
        body += rest[:size]
        rest = rest[size + 2:]


def _response_complete(buf):
    head, rest = _split_head(buf)
    if head is None:
        return False
    _, hdrs = _headers_of(head)
    if "content-length" in hdrs:
        return len(rest) >= int(hdrs["content-length"])
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        try:
            return _dechunk(rest) is not None
        except ValueError:
            return False
    return False  # body until close


def _parse_response(buf):
    head, rest = _split_head(buf)
    if head is None:
        return None, {}, b""
    status_line, hdrs = _headers_of(head)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    status = int(m.group(1)) if m else None
    body = rest
    if "content-length" in hdrs:
        body = rest[: int(hdrs["content-length"])]
    elif "chunked" in hdrs.get("transfer-encoding", "").lower():
        try:
            body = _dechunk(rest) or b""
        except ValueError:
            pass
    return status, hdrs, body


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------


class Daemon:
    """One running lastseen process."""

    def __init__(self, workdir, data_dir, sets=(), args=(), env=None, listen=True, tag="d",
                 ssl_context=None, ready_headers=None):
        self.ssl_context = ssl_context  # the daemon speaks HTTPS: how to reach it
        self.workdir = str(workdir)
        self.data_dir = str(data_dir)
        self.stderr_path = os.path.join(self.workdir, "%s.stderr" % tag)
        self.stdout_path = os.path.join(self.workdir, "%s.stdout" % tag)
        cmd = [LASTSEEN_BIN] + list(args)
        if listen:
            cmd += ["--set", "http.listen=127.0.0.1:0"]
        cmd += ["--set", "store.data_dir=%s" % self.data_dir]
        if TEST_SHARDS:
            cmd += ["--set", "engine.shards=%s" % TEST_SHARDS]
        for s in sets:
            cmd += ["--set", s]
        self.cmd = cmd
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LASTSEEN_")}
        full_env.update(env or {})
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=full_env, cwd=self.workdir)
        self.stopped = False
        self.ready_headers = ready_headers  # sent with the /healthz polls (http.auth_healthz)
        self.host = None
        self.port = None
        self._clients = []
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            m = LISTEN_RE.search(self.stderr_text())
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
            if self.proc.poll() is not None:
                pytest.fail("lastseen exited with %s before listening; cmd %r; stderr:\n%s"
                            % (self.proc.returncode, self.cmd, self.stderr_text()))
            if time.monotonic() >= deadline:
                pytest.fail("no 'listening on HOST:PORT' on stderr within %.0f s; stderr:\n%s"
                            % (START_TIMEOUT, self.stderr_text()))
            time.sleep(0.01)
        while True:
            try:
                c = Client(self.host, self.port, timeout=1.0, ssl_context=self.ssl_context)
                r = c.get("/healthz", headers=self.ready_headers)
                c.close()
                if r.status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                pytest.fail("lastseen exited with %s while starting; stderr:\n%s"
                            % (self.proc.returncode, self.stderr_text()))
            if time.monotonic() >= deadline:
                pytest.fail("/healthz did not answer 200 within %.0f s" % START_TIMEOUT)
            time.sleep(0.02)

    def client(self, timeout=5.0):
        c = Client(self.host, self.port, timeout=timeout, ssl_context=self.ssl_context)
        self._clients.append(c)
        return c

    def events(self):
        return read_events(self.data_dir)

    def stop(self, sig=signal.SIGTERM):
        """Stops the daemon with `sig`; returns its exit code (None if it had to
        be killed).  Idempotent."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        for c in self._clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                self._close_files()
                return None
        self._close_files()
        return self.proc.returncode

    def kill(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass

    def stop_and_check(self, sig=signal.SIGTERM):
        """Stops the daemon and fails the test unless it exits 0 within 5 s."""
        if self.stopped:
            return self.proc.returncode
        died = self.proc.poll() is not None
        rc = self.stop(sig)
        if died:
            pytest.fail("lastseen died during the test with exit code %s; stderr:\n%s"
                        % (rc, self.stderr_text()[-4000:]))
        if rc is None:
            pytest.fail("lastseen did not exit within %.0f s of %s; killed" % (STOP_TIMEOUT, sig.name))
        if rc != 0:
            pytest.fail("lastseen exited %s on %s (expected 0); stderr:\n%s"
                        % (rc, sig.name, self.stderr_text()[-4000:]))
        return rc


class DaemonFactory:
    """Starts daemons in a tmp dir and stops (checking exit 0) all of them at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.daemons = []

    def __call__(self, sets=(), data_dir=None, args=(), env=None, listen=True, ssl_context=None,
                 ready_headers=None):
        if data_dir is None:
            data_dir = self.tmp_path / ("data%d" % len(self.daemons))
            data_dir.mkdir(exist_ok=True)
        d = Daemon(self.tmp_path, data_dir, sets=sets, args=args, env=env, listen=listen,
                   tag="d%d" % len(self.daemons), ssl_context=ssl_context,
                   ready_headers=ready_headers)
        self.daemons.append(d)
        return d

    def teardown(self):
        errors = []
        for d in self.daemons:
            try:
                d.stop_and_check()
            except BaseException as e:  # collect, report all
                errors.append(str(e))
        for d in self.daemons:  # also those the test stopped or killed itself
            report = sanitizer_report(d.stderr_text())
            if report:
                errors.append("sanitizer report or failed assertion in %s:\n%s" % (d.stderr_path, report))
        if errors:
            pytest.fail("daemon teardown: " + " | ".join(errors))


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", "bb_timeout(seconds): per-test deadline (default 60 s)")


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _test_deadline(request):
    """Every test (its fixtures' setup included) runs under a SIGALRM deadline."""
    marker = request.node.get_closest_marker("bb_timeout")
    seconds = float(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise DeadlineExceeded("test exceeded its %.0f s deadline" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _binary_present():
    if not (os.path.isfile(LASTSEEN_BIN) and os.access(LASTSEEN_BIN, os.X_OK)):
        pytest.fail("lastseen binary not found or not executable: %s (set LASTSEEN_BIN)" % LASTSEEN_BIN)


def token_cmd(data_dir, *args):
    """Runs `lastseen token ARGS --data-dir DATA_DIR`; returns the CompletedProcess."""
    return subprocess.run([LASTSEEN_BIN, "token"] + list(args) + ["--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=10)


def make_token(data_dir, name, scopes):
    """Creates an API token with `lastseen token create`; returns its text
    (the last line of its output)."""
    p = token_cmd(data_dir, "create", name, "--scope", scopes)
    assert p.returncode == 0, p
    return p.stdout.strip().splitlines()[-1]


def bearer(token):
    return {"Authorization": "Bearer " + token}


@pytest.fixture
def start_daemon(tmp_path):
    """A factory: start_daemon(sets=[...], data_dir=None, args=[...], env={...})."""
    factory = DaemonFactory(tmp_path)
    yield factory
    factory.teardown()


@pytest.fixture
def daemon(start_daemon):
    """A daemon with the default configuration, its own tmp data dir."""
    return start_daemon()


@pytest.fixture
def client(daemon):
    c = daemon.client()
    yield c
    c.close()


@pytest.fixture
def broker_factory(tmp_path):
    """A factory of real Mosquitto brokers (tests/blackbox/mqtt_util.py), each on
    its own free loopback port; all are killed at teardown."""
    import mqtt_util

    brokers = []

    def make(**kw):
        b = mqtt_util.Broker(tmp_path, **kw)
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.kill()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
