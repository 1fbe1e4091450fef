"""
lastseen's command line: --version, --help, --check-config with good and bad
keys, values and files, LASTSEEN_* environment variables, and the precedence
--set > environment > file > default (observed on a running daemon).
"""

import os
import re
import subprocess

import pytest

from conftest import LASTSEEN_BIN, assert_error

RUN_TIMEOUT = 10


def run(args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LASTSEEN_")}
    full_env.update(env or {})
    return subprocess.run([LASTSEEN_BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          env=full_env, cwd=cwd, timeout=RUN_TIMEOUT, text=True, errors="replace")


def error_line(proc):
    """The daemon's complaint: exactly one non-empty line on stderr."""
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, "expected one error line on stderr, got %r" % proc.stderr
    return lines[0]


def check(tmp_path, *args, env=None):
    return run(["--check-config", "--set", "store.data_dir=%s" % (tmp_path / "data")] + list(args),
               env=env, cwd=tmp_path)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_version():
    p = run(["--version"])
    assert p.returncode == 0, p
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout
    assert "lastseen" in p.stdout


def test_help():
    p = run(["--help"])
    assert p.returncode == 0, p
    out = p.stdout
    for word in ("--check-config", "--set", "-c", "http.listen", "http.max_body", "store.data_dir",
                 "state.default_inactivity_timeout", "state.max_clock_skew", "state.max_devices",
                 "events.stdout"):
        assert word in out, "--help does not mention %s" % word


def test_unknown_option(tmp_path):
    p = run(["--no-such-option"], cwd=tmp_path)
    assert p.returncode != 0, p
    assert "--no-such-option" in p.stderr


def test_check_config_defaults(tmp_path):
    p = run(["--check-config"], cwd=tmp_path)
    assert p.returncode == 0, p
    assert not (tmp_path / "data" / "events.jsonl").exists(), "--check-config must not start the daemon"


@pytest.mark.parametrize("assignment", [
    "http.listen=127.0.0.1:0",
    "http.listen=[::1]:8080",
    "http.max_body=1KiB",
    "http.max_body=16MiB",
    "http.max_body=4096",
    "state.default_inactivity_timeout=300ms",
    "state.default_inactivity_timeout=10m",
    "state.max_clock_skew=5s",
    "state.max_clock_skew=0ms",
    "state.max_devices=0",
    "state.max_devices=1000000",
    "events.stdout=true",
    "events.stdout=off",
    "log.level=debug",
])
def test_check_config_good_set(tmp_path, assignment):
    p = check(tmp_path, "--set", assignment)
    assert p.returncode == 0, (assignment, p.stderr)


@pytest.mark.parametrize("assignment", ["http.nope=1", "nope.key=1", "state.max_device=5", "listen=1"])
def test_check_config_unknown_key(tmp_path, assignment):
    p = check(tmp_path, "--set", assignment)
    assert p.returncode != 0, p
    line = error_line(p)
    assert assignment.split("=")[0] in line, line


@pytest.mark.parametrize("key,value", [
    ("state.max_clock_skew", "5parsecs"),
    ("state.default_inactivity_timeout", "soon"),
    ("http.max_body", "lots"),
    ("state.max_devices", "many"),
    ("state.max_devices", "-1"),
    ("events.stdout", "maybe"),
    ("log.level", "chatty"),
    ("http.threads", "0"),
])
def test_check_config_bad_value(tmp_path, key, value):
    p = check(tmp_path, "--set", "%s=%s" % (key, value))
    assert p.returncode != 0, p
    line = error_line(p)
    assert key in line and value in line, line


def test_check_config_set_without_value(tmp_path):
    p = check(tmp_path, "--set", "http.listen")
    assert p.returncode != 0, p
    assert "http.listen" in error_line(p)


def test_check_config_good_file(tmp_path):
    path = write(tmp_path, "good.ini", "\n".join([
        "; a comment",
        "# another comment",
        "[http]",
        "listen = 127.0.0.1:0",
        "max_body = 2MiB",
        "",
        "[state]",
        "default_inactivity_timeout = 30s",
        "max_devices = 5",
        "[events]",
        "stdout = false",
        "",
    ]))
    p = check(tmp_path, "-c", path)
    assert p.returncode == 0, p.stderr
    p = check(tmp_path, "--config", path, "--set", "state.max_devices=7")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("lines,bad_line,words", [
    (["[http]", "listen = 127.0.0.1:0", "max_body = lots"], 3, ["max_body", "lots"]),
    (["[state]", "max_clock_skew = 5s", "", "nope = 1"], 4, ["nope"]),
    (["[nosuchsection]", "key = 1"], 2, ["nosuchsection"]),
    (["[http]", "this line is not ini"], 2, []),
    (["[state", "max_devices = 1"], 1, []),
])
def test_check_config_bad_file(tmp_path, lines, bad_line, words):
    path = write(tmp_path, "bad.ini", "\n".join(lines) + "\n")
    p = check(tmp_path, "-c", path)
    assert p.returncode != 0, p
    line = error_line(p)
    assert path in line or "bad.ini" in line, "error does not name the file: %r" % line
    assert re.search(r"(?<!\d)%d(?!\d)" % bad_line, line.replace(path, "")), \
        "error does not name line %d: %r" % (bad_line, line)
    for w in words:
        assert w in line, (w, line)


def test_check_config_missing_file(tmp_path):
    path = str(tmp_path / "does-not-exist.ini")
    p = check(tmp_path, "-c", path)
    assert p.returncode != 0, p
    assert "does-not-exist.ini" in error_line(p)


def test_check_config_env_bad_value(tmp_path):
    p = check(tmp_path, env={"LASTSEEN_STATE_MAX_CLOCK_SKEW": "5parsecs"})
    assert p.returncode != 0, p
    line = error_line(p)
    assert ("state.max_clock_skew" in line or "LASTSEEN_STATE_MAX_CLOCK_SKEW" in line) and "5parsecs" in line, line


def test_check_config_env_good_value(tmp_path):
    p = check(tmp_path, env={"LASTSEEN_HTTP_LISTEN": "127.0.0.1:0", "LASTSEEN_HTTP_MAX_BODY": "1KiB",
                             "LASTSEEN_EVENTS_STDOUT": "yes"})
    assert p.returncode == 0, p.stderr


# --------------------------------------------------------------------------
# Precedence, observed on a running daemon through state.max_devices
# --------------------------------------------------------------------------


def device_limit(daemon, up_to=6):
    """How many devices the daemon accepts before answering 507."""
    c = daemon.client()
    for i in range(up_to + 1):
        r = c.activity("lim-%d" % i)
        if r.status == 507:
            assert_error(r, 507, "device_limit")
            return i
        assert r.status == 202, r
    return None


def limit_file(tmp_path, n):
    return write(tmp_path, "limits.ini", "[state]\nmax_devices = %d\n" % n)


def test_precedence_file_over_default(start_daemon, tmp_path):
    d = start_daemon(args=["-c", limit_file(tmp_path, 1)])
    assert device_limit(d) == 1


def test_precedence_env_over_file(start_daemon, tmp_path):
    d = start_daemon(args=["-c", limit_file(tmp_path, 1)], env={"LASTSEEN_STATE_MAX_DEVICES": "2"})
    assert device_limit(d) == 2


def test_precedence_set_over_env_and_file(start_daemon, tmp_path):
    d = start_daemon(args=["-c", limit_file(tmp_path, 1)], env={"LASTSEEN_STATE_MAX_DEVICES": "2"},
                     sets=["state.max_devices=3"])
    assert device_limit(d) == 3


def test_precedence_set_over_env(start_daemon):
    d = start_daemon(env={"LASTSEEN_STATE_MAX_DEVICES": "2"}, sets=["state.max_devices=4"])
    assert device_limit(d) == 4


def test_env_listen(start_daemon):
    """LASTSEEN_HTTP_LISTEN alone (no --set http.listen) chooses the address."""
    d = start_daemon(listen=False, env={"LASTSEEN_HTTP_LISTEN": "127.0.0.1:0"})
    assert d.client().get("/healthz").status == 200


def test_file_listen(start_daemon, tmp_path):
    path = write(tmp_path, "listen.ini", "[http]\nlisten = 127.0.0.1:0\nmax_body = 1KiB\n")
    d = start_daemon(listen=False, args=["-c", path])
    c = d.client()
    assert c.get("/healthz").status == 200
    assert_error(c.post("/api/v1/activity", body=b"[" + b" " * 2000 + b"]"), 413, "payload_too_large")


def test_daemon_refuses_bad_config(tmp_path):
    """A bad value stops the daemon itself too, not only --check-config."""
    p = run(["--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=%s" % tmp_path,
             "--set", "state.max_clock_skew=5parsecs"], cwd=tmp_path)
    assert p.returncode != 0, p
    assert "state.max_clock_skew" in p.stderr and "5parsecs" in p.stderr
