"""Storage faults: the data directory on a small tmpfs that the test fills.

The daemon must say what is wrong (the real errno, not every second), report
it on /healthz, /metrics and /api/v1/stats, answer requests that wait for a
commit with 503 storage_unavailable after store.commit_wait, keep what was
acknowledged, commit what it held once space returns, and stop within
store.shutdown_wait with a non-zero status when the final commit cannot be
written.

The filesystem is a real tmpfs (this test needs root, or CAP_SYS_ADMIN): a
full tmpfs makes write(2) fail with ENOSPC, which is the fault seen in the
field, without a shim between the daemon and the kernel.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import dev_path

COMMIT_WAIT_S = 2
SHUTDOWN_WAIT_S = 3


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("cannot mount a 16 MB tmpfs (root or CAP_SYS_ADMIN needed): %s" % r.stderr)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt):
    """Fills the filesystem to the last byte with a file of its own."""
    path = os.path.join(str(mnt), "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as e:
                    assert e.errno == 28, e  # ENOSPC
                    break
    finally:
        os.close(fd)
    return path


def fault_lines(d):
    return [ln for ln in d.stderr_text().splitlines()
            if "store write" in ln and ("failed" in ln or "still failing" in ln)]


def put_until_503(c, prefix):
    """PUTs new devices until one is answered 503 (the store is full once
    LMDB needs a page that is not on disk yet); returns (response, seconds it
    took, the ids sent)."""
    sent = []
    for i in range(200):
        dev = "%s-%d" % (prefix, i)
        sent.append(dev)
        t0 = time.monotonic()
        r = c.put(dev_path(dev), json_body={"inactivityTimeout": 600000, "type": "x" * 60})
        took = time.monotonic() - t0
        if r.status == 503:
            return r, took, sent
        assert r.status in (200, 201), r
    pytest.fail("the store never failed on a full filesystem")


def start_with_devices(start_daemon, small_fs, n):
    """A daemon on the small filesystem with n devices acknowledged before
    the fault; (daemon, client, their ids, its settings, its data dir)."""
    data = small_fs / "data"
    data.mkdir()
    sets = ["store.commit_wait=%ds" % COMMIT_WAIT_S, "store.shutdown_wait=%ds" % SHUTDOWN_WAIT_S]
    d = start_daemon(sets=sets, data_dir=data)
    c = d.client(timeout=COMMIT_WAIT_S + 10)
    acked = ["before-%d" % i for i in range(n)]
    for dev in acked:
        assert c.put(dev_path(dev), json_body={"inactivityTimeout": 600000}).status in (200, 201)
    return d, c, acked, sets, data


@pytest.mark.bb_timeout(120)
def test_disk_full_is_reported_and_recovered(start_daemon, small_fs):
    d, c, acked, sets, data = start_with_devices(start_daemon, small_fs, 50)

    filler = fill(small_fs)
    r, took, held = put_until_503(c, "during")
    assert r.body["error"] == "storage_unavailable", r
    assert r.headers.get("Retry-After"), r.headers
    assert took <= COMMIT_WAIT_S + 1.5, took

    h = c.get("/healthz")
    assert h.status == 503, h
    assert h.body["status"] == "degraded", h
    assert h.body["reason"] == "storage: No space left on device", h
    metrics = c.get("/metrics").raw.decode()
    assert re.search(r"^lastseen_store_failing 1$", metrics, re.M), metrics
    m = re.search(r"^lastseen_store_failed_commits_total (\d+)$", metrics, re.M)
    assert m and int(m.group(1)) >= 1
    st = c.stats()
    assert st["store"]["failing"] is True and st["store"]["failedCommits"] >= 1, st["store"]

    # The cause is named once, not every second.
    lines = fault_lines(d)
    assert lines and "No space left on device" in lines[0], d.stderr_text()[-3000:]
    assert "Input/output error" not in d.stderr_text()
    n0 = len(fault_lines(d))
    time.sleep(4)
    assert len(fault_lines(d)) - n0 <= 1, fault_lines(d)

    # Space returns: what was held in memory is committed, /healthz is ok again.
    os.unlink(filler)
    deadline = time.monotonic() + 5
    while c.get("/healthz").status != 200:
        assert time.monotonic() < deadline, "healthz still degraded after space returned"
        time.sleep(0.1)
    assert "store writes succeed again" in d.stderr_text()
    metrics = c.get("/metrics").raw.decode()
    assert re.search(r"^lastseen_store_failing 0$", metrics, re.M)
    for dev in held:
        assert c.device(dev).status == 200, dev
    assert d.stop() == 0, d.stderr_text()[-3000:]

    # Acknowledged before the fault and held during it: all on disk.
    d2 = start_daemon(sets=sets, data_dir=data)
    c2 = d2.client()
    for dev in acked + held:
        assert c2.device(dev).status == 200, dev
    d2.stop_and_check()


@pytest.mark.bb_timeout(120)
def test_sigterm_during_disk_full_exits_nonzero_within_bound(start_daemon, small_fs):
    d, c, acked, sets, data = start_with_devices(start_daemon, small_fs, 20)
    filler = fill(small_fs)
    put_until_503(c, "during")
    assert c.get("/healthz").status == 503

    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=SHUTDOWN_WAIT_S + 10)
    took = time.monotonic() - t0
    d.stop()  # bookkeeping: the process is gone
    assert rc == 1, (rc, d.stderr_text()[-3000:])
    assert took <= SHUTDOWN_WAIT_S + 3, took
    err = d.stderr_text()
    assert re.search(r"\d+ events and \d+ device records not saved", err), err[-3000:]

    # What was acknowledged before the fault is still there.
    os.unlink(filler)
    d2 = start_daemon(sets=sets, data_dir=data)
    c2 = d2.client()
    for dev in acked:
        assert c2.device(dev).status == 200, dev
    d2.stop_and_check()
