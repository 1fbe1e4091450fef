"""make install DESTDIR=...: the binary, a commented /etc/lastseen/lastseen.ini
with the data directory set, the data directory, a sandboxed systemd unit that
systemd-analyze verify accepts; a second install keeps the configuration."""
import filecmp
import os
import shutil
import stat
import subprocess

import pytest

from conftest import LASTSEEN_BIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _install(destdir, *extra):
    # -o build: install what $LASTSEEN_BIN's build holds, without building.
    r = subprocess.run(["make", "-s", "-C", REPO, "-o", "build", "install", "DESTDIR=%s" % destdir,
                        "BUILD=%s" % os.path.dirname(LASTSEEN_BIN)] + list(extra),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.bb_timeout(120)
def test_make_install(tmp_path):
    dest = tmp_path / "x"
    _install(dest)
    binary = dest / "usr/local/bin/lastseen"
    assert filecmp.cmp(str(binary), LASTSEEN_BIN, shallow=False)
    assert os.stat(binary).st_mode & 0o777 == 0o755

    ini = dest / "etc/lastseen/lastseen.ini"
    text = ini.read_text()
    assert text.startswith("; /etc/lastseen/lastseen.ini - every configuration key")
    # Commented: every line is a comment, a section or blank, but the data directory.
    live = [x for x in text.splitlines() if x and not x.startswith(";") and not x.startswith("[")]
    assert live == ["data_dir = /var/lib/lastseen"], live
    assert ";listen = 127.0.0.1:8080" in text and ";tls_cert = " in text and ";auth = off" in text
    r = subprocess.run([str(binary), "-c", str(ini), "--check-config"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r

    data = dest / "var/lib/lastseen"
    assert data.is_dir() and stat.S_IMODE(os.stat(data).st_mode) == 0o750

    unit = dest / "usr/local/lib/systemd/system/lastseen.service"
    u = unit.read_text()
    for line in ("ExecStart=/usr/local/bin/lastseen -c /etc/lastseen/lastseen.ini",
                 "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes", "StateDirectory=lastseen",
                 "ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/lastseen",
                 "CapabilityBoundingSet=\n", "LimitNOFILE=65536"):
        assert line in u, line
    assert "@" + "BINDIR@" not in u and "@DATADIR@" not in u

    # Installing again keeps the configuration the administrator may have changed.
    ini.write_text(text.replace(";level = info", "level = debug"))
    out = _install(dest)
    assert "kept" in out and "level = debug" in ini.read_text()
    assert (dest / "etc/lastseen/lastseen.ini.dist").read_text() == text


@pytest.mark.bb_timeout(120)
def test_prefix_usr(tmp_path):
    dest = tmp_path / "y"
    _install(dest, "PREFIX=/usr")
    assert (dest / "usr/bin/lastseen").is_file()
    u = (dest / "usr/lib/systemd/system/lastseen.service").read_text()
    assert "ExecStart=/usr/bin/lastseen -c /etc/lastseen/lastseen.ini" in u


@pytest.mark.bb_timeout(120)
def test_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    dest = tmp_path / "x"
    _install(dest)
    # verify checks that ExecStart's binary exists: point it at the staged one.
    unit = (dest / "usr/local/lib/systemd/system/lastseen.service").read_text()
    check = tmp_path / "lastseen.service"
    check.write_text(unit.replace("/usr/local/bin/lastseen", str(dest / "usr/local/bin/lastseen")))
    r = subprocess.run([analyze, "verify", "--man=no", "--generators=no", str(check)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    r = subprocess.run([analyze, "security", "--offline=true", str(check)], capture_output=True, text=True,
                       timeout=60)
    assert "Overall exposure level for lastseen.service" in r.stdout, r.stdout + r.stderr
