"""The acknowledgement policy of every route that changes state: the answer is sent once the
change is committed, and waiting for that commit never takes a server thread.

The first test stalls the committer on purpose: events.file is a FIFO this test reads, with a
pipe of one page.  While the test stops reading, the committer blocks writing the events of a
commit to it (after the store write, before it counts the commit as done), so nothing new is
acknowledged.  With http.threads = 1, a device type PUT and DELETE, an alarm acknowledgement,
a device PUT, DELETE and connect then wait unanswered, and GETs on the same single server
thread are still answered.  Once the test reads the FIFO again, every waiting change is
answered.  A handler that blocked its thread until the commit would leave the GETs unanswered.

The second one kills the daemon with SIGKILL right after each 2xx and restarts it on the same
directory: every acknowledged change is there.

The third stops the daemon (SIGTERM) while changes wait for the stalled commit and an event
stream is open: the stop commits what they wait for, each gets its real answer, the stream ends
and the daemon exits 0.
"""
import fcntl
import os
import select
import signal
import threading
import time

import pytest

from conftest import Client, dev_path, now_ms, wait_until

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def type_path(name):
    return "/api/v1/device-types/" + name


class FifoReader:
    """Reads (and drops) whatever the daemon writes to a FIFO, while `reading` is set."""

    def __init__(self, path):
        os.mkfifo(path)
        # O_RDWR: opening never blocks, and the pipe lives as long as this end.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        fcntl.fcntl(self.fd, F_SETPIPE_SZ, 4096)
        self.reading = threading.Event()
        self.reading.set()
        self.idle = threading.Event()  # set while paused
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            if not self.reading.is_set():
                self.idle.set()
                time.sleep(0.01)
                continue
            self.idle.clear()
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    os.read(self.fd, 65536)
                except BlockingIOError:
                    pass

    def pause(self):
        self.reading.clear()
        assert self.idle.wait(2.0)

    def resume(self):
        self.reading.set()

    def close(self):
        self.done.set()
        self.thread.join(timeout=2.0)
        os.close(self.fd)


def make_alarm(c, dev):
    """Gives `dev` a short timeout and one activity; returns the id of its alarm once raised."""
    assert c.put(dev_path(dev), json_body={"inactivityTimeout": 100}).status == 201
    assert c.activity(dev).status == 202
    alarms = wait_until(lambda: c.get("/api/v1/alarms?source=" + dev).body["alarms"], 5.0)
    assert alarms, "no alarm raised for %s" % dev
    return alarms[0]["id"]


@pytest.mark.bb_timeout(90)
def test_one_thread_serves_while_changes_wait_for_their_commit(start_daemon, tmp_path):
    fifo = FifoReader(str(tmp_path / "events.fifo"))
    d = start_daemon(sets=["http.threads=1", "events.file=%s" % (tmp_path / "events.fifo")])
    try:
        c = d.client(timeout=2.0)
        alarm = make_alarm(c, "al")
        assert c.put(type_path("old"), json_body={"inactivityTimeout": 60000}).status == 201
        assert c.put(dev_path("gone"), json_body={}).status == 201
        before = c.stats()
        assert before["outbox"]["committedSeq"] == before["lastSeq"]

        # Stall the committer: stop reading, then make events enough to fill the pipe.
        fifo.pause()
        results = {}

        def call(name, method, path, body=None):
            cl = Client(d.host, d.port, timeout=30.0)
            try:
                r = cl.request(method, path, json_body=body) if body is not None else cl.request(method, path)
                results[name] = (r, time.monotonic())
            except Exception as e:  # reported by the assertions below
                results[name] = (e, time.monotonic())
            finally:
                cl.close()

        threads = []

        def start(*args):
            t = threading.Thread(target=call, args=args, daemon=True)
            t.start()
            threads.append(t)

        ids = ["fill-%d" % i for i in range(300)]
        start("bulk", "POST", "/api/v1/activity", ids)
        # Its events are queued (lastSeq moved) but never counted as committed.
        assert wait_until(lambda: c.stats()["lastSeq"] >= before["lastSeq"] + len(ids), 5.0)
        time.sleep(0.3)
        assert c.stats()["outbox"]["committedSeq"] < before["lastSeq"] + len(ids)
        assert "bulk" not in results, results.get("bulk")

        start("type_put", "PUT", type_path("new"), {"inactivityTimeout": 45000})
        start("type_delete", "DELETE", type_path("old"))
        start("alarm_ack", "PUT", "/api/v1/alarms/" + alarm, {"status": "ACKNOWLEDGED"})
        start("device_put", "PUT", dev_path("dev-new"), {"inactivityTimeout": 70000})
        start("device_delete", "DELETE", dev_path("gone"))
        start("connect", "POST", dev_path("al", "/connect"))
        mutations = ["bulk", "type_put", "type_delete", "alarm_ack", "device_put", "device_delete", "connect"]

        # The single server thread keeps answering reads meanwhile (2 s timeout each).
        deadline = time.monotonic() + 1.0
        reads = 0
        while time.monotonic() < deadline or reads < 10:
            for path in ("/healthz", dev_path("al"), type_path("old"), "/api/v1/alarms/" + alarm,
                         "/api/v1/stats", "/api/v1/device-types"):
                try:
                    r = c.get(path)
                except OSError as e:
                    pytest.fail("GET %s unanswered while changes wait for their commit (%r): "
                                "a server thread is blocked" % (path, e))
                assert r.status == 200, (path, r)
                reads += 1
        # Every change had time to reach the server; none is acknowledged before its commit.
        assert not [m for m in mutations if m in results], {m: results[m] for m in mutations if m in results}

        resumed = time.monotonic()
        fifo.resume()
        for t in threads:
            t.join(timeout=20.0)
        got = {m: results.get(m, (None, 0))[0] for m in mutations}
        for m in mutations:
            assert m in results, "%s never answered: %r" % (m, got)
            assert not isinstance(got[m], Exception), (m, got[m])
            assert results[m][1] >= resumed, "%s answered before its commit" % m
        assert got["bulk"].status == 202 and got["bulk"].body["accepted"] == len(ids), got["bulk"]
        assert got["type_put"].status == 201 and got["type_put"].body["inactivityTimeout"] == 45000
        assert got["type_delete"].status == 204, got["type_delete"]
        assert got["alarm_ack"].status == 200 and got["alarm_ack"].body["status"] == "ACKNOWLEDGED"
        assert got["device_put"].status == 201 and got["device_put"].body["inactivityTimeout"] == 70000
        assert got["device_delete"].status == 204, got["device_delete"]
        assert got["connect"].status == 202 and got["connect"].body == {"sessions": 1}
        after = c.stats()
        assert after["outbox"]["committedSeq"] == after["lastSeq"], after["outbox"]
    finally:
        fifo.resume()
        d.stop_and_check()  # the final commit writes to the FIFO too: keep reading it
        fifo.close()


def kill9(d):
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=5)
    d.stopped = True


@pytest.mark.bb_timeout(120)
def test_acknowledged_changes_survive_kill9(start_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sets = ["http.threads=1"]
    d = start_daemon(data_dir=data, sets=sets)
    c = d.client()
    alarm = make_alarm(c, "al")
    assert c.put(type_path("old"), json_body={"inactivityTimeout": 60000}).status == 201
    assert c.put(dev_path("old-dev"), json_body={}).status == 201

    # (request, expected status, check of the restarted daemon)
    steps = [
        (("PUT", type_path("t1"), {"inactivityTimeout": 12345}), 201,
         lambda c: c.get(type_path("t1")).body["inactivityTimeout"] == 12345),
        (("PUT", type_path("t1"), {"alarmSeverity": "MINOR"}), 200,
         lambda c: c.get(type_path("t1")).body["alarmSeverity"] == "MINOR"),
        (("DELETE", type_path("old"), None), 204,
         lambda c: c.get(type_path("old")).status == 404 or not c.get(type_path("old")).body["configured"]),
        (("PUT", "/api/v1/alarms/" + alarm, {"status": "ACKNOWLEDGED"}), 200,
         lambda c: c.get("/api/v1/alarms/" + alarm).body["status"] == "ACKNOWLEDGED"),
        (("PUT", "/api/v1/alarms/" + alarm, {"status": "CLEARED"}), 200,
         lambda c: c.get("/api/v1/alarms/" + alarm).body["status"] == "CLEARED"),
        (("PUT", dev_path("new-dev"), {"inactivityTimeout": 54321, "type": "t1"}), 201,
         lambda c: c.device("new-dev").body["inactivityTimeout"] == 54321),
        (("DELETE", dev_path("old-dev"), None), 204, lambda c: c.device("old-dev").status == 404),
        (("POST", dev_path("new-dev", "/connect"), None), 202,
         lambda c: c.device("new-dev").body["lastConnectTime"] > 0),
    ]
    for (method, path, body), status, check in steps:
        r = c.request(method, path, json_body=body) if body is not None else c.request(method, path)
        assert r.status == status, (method, path, r)
        kill9(d)  # right after the acknowledgement
        d = start_daemon(data_dir=data, sets=sets)
        c = d.client()
        assert check(c), (method, path, "lost after kill -9")


@pytest.mark.bb_timeout(60)
def test_stop_answers_changes_waiting_for_their_commit(start_daemon, tmp_path):
    """SIGTERM while changes wait for a stalled commit and an event stream sleeps: the stop
    commits what they wait for, they get their real answers, the stream ends, and the daemon
    exits 0 (libmicrohttpd must not be stopped with a suspended connection)."""
    fifo = FifoReader(str(tmp_path / "events.fifo"))
    d = start_daemon(sets=["http.threads=1", "events.file=%s" % (tmp_path / "events.fifo")])
    try:
        c = d.client(timeout=2.0)
        alarm = make_alarm(c, "al")
        stream = Client(d.host, d.port, timeout=10.0)
        stream._connect()
        stream.conn.request("GET", "/api/v1/events/stream")
        sresp = stream.conn.getresponse()
        assert sresp.status == 200

        fifo.pause()
        results = {}

        def call(name, method, path, body=None):
            cl = Client(d.host, d.port, timeout=30.0)
            try:
                results[name] = cl.request(method, path, json_body=body) if body is not None \
                    else cl.request(method, path)
            except Exception as e:
                results[name] = e
            finally:
                cl.close()

        calls = [("bulk", "POST", "/api/v1/activity", ["fill-%d" % i for i in range(300)]),
                 ("type_put", "PUT", type_path("t"), {"monitored": False}),
                 ("alarm_ack", "PUT", "/api/v1/alarms/" + alarm, {"status": "ACKNOWLEDGED"}),
                 ("device_put", "PUT", dev_path("x"), {"inactivityTimeout": 70000})]
        threads = [threading.Thread(target=call, args=a, daemon=True) for a in calls]
        threads[0].start()
        time.sleep(0.3)
        for t in threads[1:]:
            t.start()
        time.sleep(0.5)
        assert not results, results

        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert d.proc.poll() is None, "stopped without committing what requests wait for"
        fifo.resume()
        assert d.proc.wait(timeout=5) == 0, d.stderr_text()[-2000:]
        d.stopped = True
        for t in threads:
            t.join(timeout=5)
        got = {name: results.get(name) for name, *_ in calls}
        assert got["bulk"].status == 202, got
        assert got["type_put"].status == 201, got
        assert got["alarm_ack"].status == 200 and got["alarm_ack"].body["status"] == "ACKNOWLEDGED", got
        assert got["device_put"].status == 201, got
        assert sresp.read() is not None  # the stream ended instead of hanging
        stream.close()
    finally:
        fifo.resume()
        d.stop_and_check()
        fifo.close()
