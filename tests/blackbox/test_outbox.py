"""The event outbox: events produced while the events file cannot be written reach
it, in seq order, once it can; a renamed events file is followed by a new one.

The daemon runs as root in CI, so permissions cannot make a file unwritable.
Instead `events.file` points at a symlink to /dev/full, where every write fails
with ENOSPC; replacing the symlink with a regular file (an atomic rename over
it) is the repair.  The daemon retries a failed file every second by opening
its path again.
"""
import json
import os
import signal
import time

import pytest

from conftest import dev_path, wait_until


@pytest.fixture
def start_daemon(start_daemon):
    """These tests follow device events one by one: unavailability alarms
    (their own events, tested in test_alarms.py) are switched off."""
    def start(*args, sets=(), **kw):
        return start_daemon(*args, sets=list(sets) + ["alarms.enabled=false"], **kw)
    return start

RETRY_WAIT = 10.0  # the daemon retries every second; generous for ASan builds


def read_lines(path):
    """Parsed events of a regular file (complete lines only); [] if it is missing."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in raw.split(b"\n")[:-1] if line.strip()]


def make_unwritable(path):
    """Atomically makes `path` a symlink to /dev/full (whatever it was before)."""
    tmp = path + ".link"
    os.symlink("/dev/full", tmp)
    os.rename(tmp, path)


def make_writable(path, content=b""):
    """Atomically makes `path` a regular file holding `content`."""
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(content)
    os.rename(tmp, path)


class Transitions:
    """Drives state changes over HTTP and remembers which events each should log."""

    def __init__(self, client, prefix):
        self.c = client
        self.prefix = prefix
        self.n = 0
        self.expected = {}  # device -> list of event types in order

    def one(self):
        """One device: ACTIVITY_EVENT, then CONNECT_EVENT and DISCONNECT_EVENT."""
        dev = "%s-%d" % (self.prefix, self.n)
        self.n += 1
        assert self.c.put(dev_path(dev), json_body={"inactivityTimeout": 600000}).status == 201
        assert self.c.post(dev_path(dev, "/activity")).status == 202
        assert self.c.post(dev_path(dev, "/connect")).status == 202
        assert self.c.post(dev_path(dev, "/disconnect")).status == 202
        self.expected[dev] = ["ACTIVITY_EVENT", "CONNECT_EVENT", "DISCONNECT_EVENT"]
        return dev

    def expire(self):
        """One device that goes inactive on its own: ACTIVITY_EVENT, INACTIVITY_EVENT."""
        dev = "%s-x%d" % (self.prefix, self.n)
        self.n += 1
        assert self.c.put(dev_path(dev), json_body={"inactivityTimeout": 100}).status == 201
        assert self.c.post(dev_path(dev, "/activity")).status == 202
        assert wait_until(lambda: self.c.device(dev).body["active"] is False, 5.0), dev
        self.expected[dev] = ["ACTIVITY_EVENT", "INACTIVITY_EVENT"]
        return dev

    def assert_visible(self):
        """The API shows every device in the state its last transition left it."""
        for dev, types in self.expected.items():
            body = self.c.device(dev).body
            assert body["active"] is (types[-1] != "INACTIVITY_EVENT"), (dev, body)
            if "CONNECT_EVENT" in types:
                assert body["lastConnectTime"] > 0 and body["lastDisconnectTime"] > 0, body
                assert body["sessions"] == 0, body


def assert_complete(events, last_seq, *transition_sets):
    """`events` (in file order) is seq 1..last_seq, each once, in order, and each
    device's events are the ones its transitions logged, in order."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, last_seq + 1)), "seqs %r... expected 1..%d" % (seqs[:50], last_seq)
    by_dev = {}
    for e in events:
        by_dev.setdefault(e["device"], []).append(e["type"])
    expected = {}
    for t in transition_sets:
        expected.update(t.expected)
    assert by_dev == expected


def write_errors(c):
    return c.stats()["eventLogWriteErrors"]


@pytest.mark.bb_timeout(90)
def test_events_wait_for_an_unwritable_file_then_arrive_in_order(start_daemon, tmp_path):
    evdir = tmp_path / "ev"
    evdir.mkdir()
    path = str(evdir / "events.jsonl")
    make_unwritable(path)
    d = start_daemon(sets=["events.file=%s" % path])
    c = d.client()

    # While every write fails: the API has the changes, the file nothing.
    t1 = Transitions(c, "a")
    for _ in range(10):
        t1.one()
    t1.expire()
    t1.assert_visible()
    last = c.stats()["lastSeq"]
    assert last == sum(len(types) for types in t1.expected.values())
    assert write_errors(c) >= 1
    assert os.path.islink(path) and sorted(os.listdir(evdir)) == ["events.jsonl"]
    assert not list((tmp_path / "data0").glob("events*"))

    # Repaired: everything arrives, in order, without gaps or repeats.
    make_writable(path)
    assert wait_until(lambda: len(read_lines(path)) >= last, RETRY_WAIT), read_lines(path)
    assert_complete(read_lines(path), last, t1)
    assert "writing again" in d.stderr_text()

    # And the file keeps up with new events.
    t2 = Transitions(c, "b")
    for _ in range(3):
        t2.one()
    last = c.stats()["lastSeq"]
    assert_complete(read_lines(path), last, t1, t2)

    # A second outage, after a rotation by rename: lines written before the
    # daemon noticed either are in the rotated file; the rest follow in the new
    # one once it is writable.
    rotated = path + ".1"
    os.rename(path, rotated)
    make_unwritable(path)
    errors = write_errors(c)
    t3 = Transitions(c, "c")
    deadline = time.monotonic() + RETRY_WAIT
    while write_errors(c) == errors:
        assert time.monotonic() < deadline, "the daemon never wrote to the new path"
        t3.one()
        time.sleep(0.1)
    for _ in range(5):
        t3.one()
    t3.expire()
    t3.assert_visible()
    last = c.stats()["lastSeq"]
    in_rotated = read_lines(rotated)
    assert in_rotated[-1]["seq"] < last
    time.sleep(1.5)  # a retry or two while it is still unwritable
    assert len(read_lines(rotated)) == len(in_rotated)

    make_writable(path)
    assert wait_until(lambda: in_rotated[-1]["seq"] + len(read_lines(path)) >= last, RETRY_WAIT)
    assert read_lines(path)[0]["seq"] == in_rotated[-1]["seq"] + 1
    assert_complete(read_lines(rotated) + read_lines(path), last, t1, t2, t3)
    d.stop_and_check()
    assert_complete(read_lines(rotated) + read_lines(path), last, t1, t2, t3)


@pytest.mark.bb_timeout(90)
def test_events_of_a_killed_daemon_reach_the_file_after_restart(start_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = str(data / "events.jsonl")

    # 1: a writable file.
    d = start_daemon(data_dir=data)
    c = d.client()
    t1 = Transitions(c, "a")
    for _ in range(5):
        t1.one()
    first = c.stats()["lastSeq"]
    d.stop_and_check()
    assert_complete(read_lines(path), first, t1)

    # 2: the file set aside, the path unwritable; killed with the events only
    # in the store.
    kept = str(data / "kept.jsonl")
    os.rename(path, kept)
    make_unwritable(path)
    d = start_daemon(data_dir=data)
    c = d.client()
    t2 = Transitions(c, "b")
    for _ in range(5):
        t2.one()
    t2.expire()
    last = c.stats()["lastSeq"]
    assert last > first
    assert write_errors(c) >= 1
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=5)
    d.stopped = True
    assert len(read_lines(kept)) == first

    # 3: the file back; the restart delivers what the killed daemon could not.
    os.rename(kept, path)
    d = start_daemon(data_dir=data)
    c = d.client()
    assert wait_until(lambda: len(read_lines(path)) >= last, RETRY_WAIT)
    assert_complete(read_lines(path), last, t1, t2)
    t3 = Transitions(c, "c")
    t3.one()
    last = c.stats()["lastSeq"]
    assert_complete(read_lines(path), last, t1, t2, t3)
    t1.c = t2.c = c
    t1.assert_visible()
    t2.assert_visible()
