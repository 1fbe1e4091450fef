"""
MQTT helpers for the black-box tests: a real Mosquitto broker started on a
free loopback port with a generated configuration (persistence off,
anonymous clients allowed, optionally a TLS listener), killed and restarted
on the same port, and small clients built on paho-mqtt (Debian
python3-paho-mqtt) and the mosquitto_pub / mosquitto_sub command-line tools.

Every wait is bounded.  A broker is always stopped at teardown, also when
the test fails (the `broker` fixture in conftest.py).
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT = 5.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """One mosquitto process on 127.0.0.1:port (a TLS listener on tls_port
    when tls=(cafile, certfile, keyfile) is given)."""

    def __init__(self, workdir, tls=None, extra="", persistence=False):
        if not os.path.exists(MOSQUITTO):
            raise RuntimeError("mosquitto not found: install the Debian package mosquitto")
        self.workdir = str(workdir)
        self.tls = tls
        self.extra = extra
        self.persistence = persistence
        self.proc = None
        self.starts = 0
        for _ in range(5):  # a port taken between free_port() and bind: pick another
            self.port = free_port()
            self.tls_port = free_port() if tls else None
            if self.start(raise_on_failure=False):
                return
        raise RuntimeError("mosquitto did not start; log:\n" + self.log_text())

    def _write_config(self):
        lines = [
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence %s" % ("true" if self.persistence else "false"),
            "persistence_location %s/" % self.workdir,
            "autosave_interval 3600",
            "max_queued_messages 100000",
            "listener %d 127.0.0.1" % self.port,
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto' and cannot read the test's files
        if self.tls:
            ca, cert, key = self.tls
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile " + ca, "certfile " + cert,
                      "keyfile " + key]
        lines.append(self.extra)
        self.conf = os.path.join(self.workdir, "mosquitto-%d.conf" % self.port)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def log_text(self):
        try:
            with open(os.path.join(self.workdir, "mosquitto.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def start(self, raise_on_failure=True):
        """(Re)starts the broker on the same port(s); waits until it accepts."""
        self._write_config()
        self.starts += 1
        log = open(os.path.join(self.workdir, "mosquitto.log"), "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf, "-v"], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if port_open(self.port) and (not self.tls or port_open(self.tls_port)):
                return True
            time.sleep(0.02)
        self.kill()
        if raise_on_failure:
            raise RuntimeError("mosquitto did not start on port %d; log:\n%s" % (self.port, self.log_text()))
        return False

    def kill(self):
        """SIGKILL: clients see their connections drop, no clean shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def daemon_sets(self, **extra):
        """--set options that point lastseen at this broker (plain TCP)."""
        sets = ["mqtt.host=127.0.0.1", "mqtt.port=%d" % self.port, "mqtt.reconnect_min=50ms",
                "mqtt.reconnect_max=300ms"]
        sets += ["mqtt.%s=%s" % (k, v) for k, v in extra.items()]
        return sets

    # Clients --------------------------------------------------------------

    def pub(self, topic, payload, qos=1, retain=False, port=None, args=()):
        """One message with mosquitto_pub (a separate, real client)."""
        if isinstance(payload, str):
            payload = payload.encode()
        cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port or self.port), "-t", topic, "-q",
               str(qos), "-s"] + list(args)
        if retain:
            cmd.append("-r")
        subprocess.run(cmd, input=payload, check=True, timeout=10, stdout=subprocess.DEVNULL)

    def client(self, client_id="", clean=True, protocol=paho.MQTTv311):
        """A connected paho client with its network loop running; `.close()` it."""
        return Client(self.port, client_id=client_id, clean=clean, protocol=protocol)

    def subscriber(self, topic, client_id="", clean=True):
        """A client subscribed to `topic` (QoS 1), SUBACK received."""
        c = Client(self.port, client_id=client_id, clean=clean)
        c.subscribe(topic)
        return c


class Client:
    """paho-mqtt client on its own thread; collects received messages."""

    def __init__(self, port, client_id="", clean=True, protocol=paho.MQTTv311, will=None):
        kw = {"client_id": client_id, "protocol": protocol}
        if protocol != paho.MQTTv5:
            kw["clean_session"] = clean
        self.c = paho.Client(**kw)
        self.port = port
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscriptions = []
        self.subacks = 0
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.connected.clear()
        self.c.on_subscribe = self._on_subscribe
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.2)
        if will:
            self.c.will_set(*will)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(5):
            self.close()
            raise RuntimeError("paho client did not connect to port %d" % port)

    def _on_connect(self, c, u, flags, rc, *a):
        if rc != 0:
            return
        for topic, qos in self.subscriptions:  # again after a reconnect
            c.subscribe(topic, qos)
        self.connected.set()

    def _on_subscribe(self, *a):
        with self.lock:
            self.subacks += 1

    def _on_message(self, c, u, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def subscribe(self, topic, qos=1, wait=5.0):
        with self.lock:
            want = self.subacks + 1
        self.subscriptions.append((topic, qos))
        self.c.subscribe(topic, qos)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self.lock:
                if self.subacks >= want:
                    return
            time.sleep(0.01)
        raise RuntimeError("no SUBACK for %s" % topic)

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        return info

    def received(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def make_ca(workdir, cn="127.0.0.1"):
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI).
    Returns (ca.crt, server.crt, server.key)."""
    d = os.path.join(str(workdir), "pki")
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lastseen test CA",
         "-keyout", "ca.key", "-out", "ca.crt")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % cn, "-keyout", "server.key", "-out",
         "server.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")
    return tuple(os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key"))


# ---------------------------------------------------------------------------
# Sparkplug B payloads, encoded by hand (protobuf wire format) so the tests do
# not share the daemon's .proto: Payload{timestamp=1, metrics=2, seq=3},
# Metric{name=1, timestamp=3, datatype=4, long_value=11}.
# ---------------------------------------------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, data):
    key = _varint((num << 3) | wire)
    if wire == 0:
        return key + _varint(data)
    return key + _varint(len(data)) + data


def sparkplug_payload(bdseq=None, extra_metrics=(), seq=0):
    """A Sparkplug B payload with a timestamp, a seq, an optional bdSeq metric
    (datatype UInt64 = 8) and (name, long) metrics."""
    body = _field(1, 0, int(time.time() * 1000))
    metrics = list(extra_metrics)
    if bdseq is not None:
        metrics.insert(0, ("bdSeq", bdseq))
    for name, value in metrics:
        m = _field(1, 2, name.encode()) + _field(3, 0, int(time.time() * 1000)) + _field(4, 0, 8) + \
            _field(11, 0, value)
        body += _field(2, 2, m)
    body += _field(3, 0, seq)
    return body
