#!/usr/bin/env python3
"""
Output throughput: how fast lastseen delivers events to a webhook receiver
and to one Server-Sent Events client, both on this machine.

    python3 bench/outputs.py --bin build/lastseen --events 100000 --batch 1
    python3 bench/outputs.py --bin build/lastseen --events 100000 --batch 100

It starts lastseen (a fresh data directory in /tmp) with one webhook
pointing at a receiver in this process, and one SSE client connected to
/api/v1/events/stream; then it creates --events new devices in bulk
requests of 10,000 (one ACTIVITY_EVENT each) and times, for each output,
from the bulk's start to the last event received.  The receiver is Python's
ThreadingHTTPServer and the SSE client a raw socket that counts frames, so
with batch = 1 the figure is bounded by the receiver as much as by lastseen.
Live figures cannot exceed the ingest rate; a last measurement replays the
whole outbox to a second stream (?after=0), which shows the stream alone.
"""
import argparse
import http.server
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/lastseen")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--sync", default="true", help="store.sync")
    args = ap.parse_args()

    got = {"n": 0, "t": 0.0, "posts": 0}
    lock = threading.Lock()

    class Rx(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = body.count(b'{"seq":')
            with lock:
                got["n"] += n
                got["posts"] += 1
                got["t"] = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Rx)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    tmp = tempfile.mkdtemp(prefix="lastseen-bench-outputs-")
    env = dict(os.environ, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    cmd = [args.bin, "--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=" + tmp + "/data",
           "--set", "store.sync=" + args.sync, "--set", "http.stream_max_backlog=100000000",
           "--set", "webhook.bench.url=http://127.0.0.1:%d/" % srv.server_address[1],
           "--set", "webhook.bench.batch=%d" % args.batch]
    err = open(tmp + "/stderr", "w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        port = None
        for _ in range(500):
            m = re.search(r"listening on [0-9.]+:(\d+)", open(tmp + "/stderr").read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.01)
        base = "http://127.0.0.1:%d" % port
        for _ in range(500):
            try:
                if urllib.request.urlopen(base + "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.01)

        sse = {"n": 0, "t": 0.0}
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")

        def read_sse():
            tail = b""
            while sse["n"] < args.events:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                data = tail + chunk
                sse["n"] += data.count(b"\nid: ") + (1 if data.startswith(b"id: ") else 0)
                tail = data[-8:]
                sse["t"] = time.monotonic()

        reader = threading.Thread(target=read_sse, daemon=True)
        reader.start()
        time.sleep(0.3)

        t0 = time.monotonic()
        sent = 0
        while sent < args.events:
            n = min(10000, args.events - sent)
            body = ("[" + ",".join('"bench-%d"' % i for i in range(sent, sent + n)) + "]").encode()
            req = urllib.request.Request(base + "/api/v1/activity", data=body, method="POST")
            urllib.request.urlopen(req).read()
            sent += n
        t_in = time.monotonic() - t0
        deadline = time.monotonic() + 600
        while (got["n"] < args.events or sse["n"] < args.events) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("events %d, batch %d, store.sync=%s" % (args.events, args.batch, args.sync))
        print("  ingest (bulk, new devices):  %.2f s  %8.0f events/s" % (t_in, args.events / t_in))
        print("  webhook:  %d events in %d POSTs, %.2f s  %8.0f events/s"
              % (got["n"], got["posts"], got["t"] - t0, got["n"] / (got["t"] - t0)))
        print("  SSE:      %d events, %.2f s  %8.0f events/s" % (sse["n"], sse["t"] - t0, sse["n"] / (sse["t"] - t0)))
        s.close()

        # Replay: a second stream from seq 0 reads everything from the outbox.
        s2 = socket.create_connection(("127.0.0.1", port))
        t1 = time.monotonic()
        s2.sendall(b"GET /api/v1/events/stream?after=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        n, tail = 0, b""
        while n < args.events:
            chunk = s2.recv(1 << 20)
            if not chunk:
                break
            data = tail + chunk
            n += data.count(b"\nid: ")
            tail = data[-8:]
        t_replay = time.monotonic() - t1
        s2.close()
        print("  SSE replay of the outbox: %d events, %.2f s  %8.0f events/s" % (n, t_replay, n / t_replay))
    finally:
        proc.terminate()
        proc.wait(10)
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
