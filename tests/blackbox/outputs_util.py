"""
Helpers for the output tests: a webhook receiver, a Server-Sent Events
client, and a strict parser of the Prometheus text format 0.0.4.

All standard library; everything listens on or connects to 127.0.0.1 only,
and every wait is bounded.
"""

import hashlib
import hmac
import http.server
import json
import math
import re
import socket
import threading
import time

# Daemons started for webhook tests must reach 127.0.0.1 directly even if the
# environment names an HTTP proxy (libcurl honours http_proxy).
NO_PROXY_ENV = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# Webhook receiver
# --------------------------------------------------------------------------


class Receiver:
    """An HTTP endpoint on a free loopback port that records what lastseen
    POSTs.  mode "ok" answers 200 and records the request in `accepted`;
    "fail" answers `fail_status` and counts it in `failed`.  stop() closes
    the listening socket and every open connection, so the port refuses
    connections until start() binds it again."""

    def __init__(self, secret=None, port=None):
        self.secret = secret
        self.port = port or free_port()
        self.mode = "ok"
        self.fail_status = 500
        self.accepted = []  # (headers dict, body bytes), in arrival order
        self.failed = 0
        self.lock = threading.Lock()
        self.server = None
        self.conns = set()
        self.start()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.conns.add(self.connection)

            def finish(self):
                with receiver.lock:
                    receiver.conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.lock:
                    mode = receiver.mode
                    if mode == "ok":
                        receiver.accepted.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    else:
                        receiver.failed += 1
                status = 200 if mode == "ok" else receiver.fail_status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        deadline = time.monotonic() + 5
        while True:
            try:
                self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def bodies(self):
        with self.lock:
            return list(self.accepted)

    def events(self):
        """Every accepted event, bodies flattened (an array body gives several)."""
        out = []
        for _, body in self.bodies():
            v = json.loads(body)
            out.extend(v if isinstance(v, list) else [v])
        return out

    def seqs(self):
        return [e["seq"] for e in self.events()]

    def wait_seqs(self, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.seqs())) >= n:
                break
            time.sleep(0.02)
        return self.seqs()


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------
# Server-Sent Events client
# --------------------------------------------------------------------------


class SSE:
    """One GET of an event stream on a raw socket: parses the response head,
    the chunked encoding and the SSE frames.  `rcvbuf` shrinks the socket's
    receive buffer (for a client that stops reading)."""

    def __init__(self, host, port, path, headers=None, rcvbuf=None, timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n" % (path, host, port)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.raw = b""
        self.data = b""  # de-chunked body not yet parsed into frames
        self.eof = False
        while b"\r\n\r\n" not in self.raw:
            self._recv(time.monotonic() + timeout)
            if self.eof:
                raise AssertionError("stream closed before its headers: %r" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        except OSError:
            self.eof = True
            return
        if not chunk:
            self.eof = True
        self.raw += chunk

    def _dechunk(self):
        if not self.chunked:
            self.data += self.raw
            self.raw = b""
            return
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if size == 0:
                self.eof = True
                return
            if len(self.raw) < i + 2 + size + 2:
                return
            self.data += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def frame(self, timeout):
        """The next frame as a dict (id, event, data, retry, comments), or
        None on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            j = self.data.find(b"\n\n")
            if j >= 0:
                block, self.data = self.data[:j], self.data[j + 2:]
                f = {"comments": []}
                for line in block.decode("utf-8").split("\n"):
                    if line.startswith(":"):
                        f["comments"].append(line[1:].strip())
                    else:
                        k, _, v = line.partition(":")
                        f[k] = v[1:] if v.startswith(" ") else v
                return f
            if self.eof or time.monotonic() >= deadline:
                return None
            self._recv(deadline)

    def events(self, n, timeout):
        """Up to n frames that carry data (events), waiting at most `timeout`."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            f = self.frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                break
            if "data" in f:
                out.append(f)
        return out

    def drain_until_closed(self, timeout):
        """Reads and discards until the server closes; True if it did."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.raw = b""
            self._recv(deadline)
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Prometheus text format 0.0.4, strictly
# --------------------------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(AssertionError):
    pass


def _parse_labels(s, lineno):
    """Parses `{k="v",...}` at the start of s; returns (dict, rest)."""
    labels = {}
    assert s[0] == "{"
    i = 1
    while True:
        if s[i] == "}":
            return labels, s[i + 1:]
        m = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*", s[i:])
        if not m:
            raise ExpositionError("line %d: bad label name at %r" % (lineno, s[i:]))
        name = m.group(0)
        i += len(name)
        if s[i:i + 2] != '="':
            raise ExpositionError("line %d: expected =\" after label %s" % (lineno, name))
        i += 2
        val = ""
        while True:
            if i >= len(s):
                raise ExpositionError("line %d: unterminated label value" % lineno)
            c = s[i]
            if c == "\\":
                esc = s[i + 1:i + 2]
                if esc not in ("\\", '"', "n"):
                    raise ExpositionError("line %d: bad escape \\%s in a label value" % (lineno, esc))
                val += {"\\": "\\", '"': '"', "n": "\n"}[esc]
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ExpositionError("line %d: raw newline in a label value" % lineno)
            else:
                val += c
                i += 1
        if name in labels:
            raise ExpositionError("line %d: label %s twice" % (lineno, name))
        labels[name] = val
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ExpositionError("line %d: expected , or } after label %s" % (lineno, name))


def _parse_value(v, lineno):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)\Z", v):
        raise ExpositionError("line %d: bad value %r" % (lineno, v))
    return float(v)


def parse_exposition(text):
    """Parses and checks a whole scrape.  Returns {family: {"type", "help",
    "samples": [(name, labels dict, value)]}}.  Raises ExpositionError on
    anything the format does not allow or that lastseen promises not to do:
    a sample before its TYPE, a family split in two, HELP/TYPE twice, a
    duplicate series, a counter not ending in _total, a histogram whose
    buckets are not cumulative, lack +Inf, or disagree with _count."""
    if not text.endswith("\n"):
        raise ExpositionError("the last line does not end with a newline")
    families = {}
    current = None
    closed = set()
    series = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            raise ExpositionError("line %d: empty line" % lineno)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.match(name):
                    raise ExpositionError("line %d: bad metric name %r" % (lineno, name))
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if name in closed or (current is not None and current != name and fam["samples"]):
                    raise ExpositionError("line %d: family %s split" % (lineno, name))
                if current is not None and current != name:
                    closed.add(current)
                current = name
                key = parts[1].lower()
                if fam[key] is not None:
                    raise ExpositionError("line %d: %s %s twice" % (lineno, parts[1], name))
                if fam["samples"]:
                    raise ExpositionError("line %d: %s after samples of %s" % (lineno, parts[1], name))
                rest = parts[3] if len(parts) > 3 else ""
                if key == "type":
                    if rest not in TYPES:
                        raise ExpositionError("line %d: unknown type %r" % (lineno, rest))
                    fam["type"] = rest
                else:
                    if re.search(r"\\[^\\n]", rest.replace("\\\\", "")):
                        raise ExpositionError("line %d: bad escape in HELP" % lineno)
                    fam["help"] = rest.replace("\\n", "\n").replace("\\\\", "\\")
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise ExpositionError("line %d: bad sample %r" % (lineno, line))
        name = m.group(0)
        rest = line[len(name):]
        labels = {}
        if rest.startswith("{"):
            labels, rest = _parse_labels(rest, lineno)
        if not rest.startswith(" "):
            raise ExpositionError("line %d: expected a blank before the value" % lineno)
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2):
            raise ExpositionError("line %d: expected value [timestamp]" % lineno)
        value = _parse_value(fields[0], lineno)
        base = name
        if current is not None and families[current]["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    base = current
        if base != current:
            raise ExpositionError("line %d: sample %s outside its family (current %s)" % (lineno, name, current))
        fam = families[base]
        if fam["type"] is None or fam["help"] is None:
            raise ExpositionError("line %d: sample of %s before its HELP and TYPE" % (lineno, base))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ExpositionError("line %d: duplicate series %s%r" % (lineno, name, labels))
        series.add(key)
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        if fam["type"] is None or fam["help"] is None:
            raise ExpositionError("family %s lacks HELP or TYPE" % name)
        if fam["type"] == "counter":
            if not name.endswith("_total"):
                raise ExpositionError("counter %s does not end in _total" % name)
            for _, _, v in fam["samples"]:
                if v < 0 or math.isnan(v):
                    raise ExpositionError("counter %s has value %r" % (name, v))
        if fam["type"] == "histogram":
            _check_histogram(name, fam)
    return families


def _check_histogram(name, fam):
    groups = {}
    for sname, labels, v in fam["samples"]:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise ExpositionError("%s: bucket without le" % name)
            g["buckets"].append((_parse_value(labels["le"], 0), v))
        elif sname == name + "_sum":
            g["sum"] = v
        elif sname == name + "_count":
            g["count"] = v
        else:
            raise ExpositionError("%s: unexpected sample %s" % (name, sname))
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ExpositionError("%s%r: no +Inf bucket last" % (name, rest))
        les = [le for le, _ in b]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError("%s: le not increasing" % name)
        counts = [c for _, c in b]
        if counts != sorted(counts):
            raise ExpositionError("%s: buckets not cumulative: %r" % (name, counts))
        if g["count"] is None or g["sum"] is None or g["count"] != counts[-1]:
            raise ExpositionError("%s: _count %r differs from the +Inf bucket %r" % (name, g["count"], counts[-1]))


def sample(families, family, name=None, **labels):
    """The value of one series (None if absent)."""
    for sname, l, v in families.get(family, {"samples": []})["samples"]:
        if sname == (name or family) and all(l.get(k) == x for k, x in labels.items()):
            return v
    return None
