"""HTTPS: http.tls_cert and http.tls_key, a CA made with openssl at test time,
curl --cacert; TLS 1.2 and 1.3 only; the certificate reloaded on SIGHUP
without cutting open connections; bad files refused with a clear line."""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import LASTSEEN_BIN, wait_until


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True, **kw)


class Pki:
    """A CA and server certificates for 127.0.0.1, made with the openssl command."""

    def __init__(self, path):
        self.path = path
        self.ca = self._ca("ca")

    def _ca(self, name):
        key, pem = str(self.path / (name + ".key")), str(self.path / (name + ".pem"))
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=lastseen test CA " + name])
        return key, pem

    def server(self, cn, rsa=False, ca=None):
        """A key and a certificate (CN=cn, SAN 127.0.0.1 and localhost) signed by ca
        (default: the first CA); returns (cert path, key path)."""
        ca_key, ca_pem = ca or self.ca
        key, csr, pem = (str(self.path / (cn + ext)) for ext in (".key", ".csr", ".pem"))
        newkey = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        _run(["openssl", "req"] + newkey + ["-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn])
        ext = self.path / "san.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
              "-out", pem, "-days", "2", "-extfile", str(ext)])
        return pem, key


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return Pki(d)


def _ctx(cafile, version=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _tls_daemon(start_daemon, pki, cert, key, sets=()):
    return start_daemon(sets=["http.tls_cert=" + cert, "http.tls_key=" + key] + list(sets),
                        ssl_context=_ctx(pki.ca[1]))


def _peer_cn(d, cafile):
    with socket.create_connection((d.host, d.port), timeout=5) as raw:
        with _ctx(cafile).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def _curl(d, pki, path, *extra):
    r = subprocess.run(["curl", "-sS", "--cacert", pki.ca[1], "-w", "\n%{http_code}"] + list(extra)
                       + ["https://127.0.0.1:%d%s" % (d.port, path)], capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, code, body, r.stderr


def test_https_with_curl_cacert(start_daemon, pki):
    cert, key = pki.server("one")
    d = _tls_daemon(start_daemon, pki, cert, key)
    assert "(https)" in d.stderr_text() and "TLS certificate loaded from %s: CN=one" % cert in d.stderr_text()
    rc, code, body, err = _curl(d, pki, "/healthz")
    assert rc == 0 and code == "200" and '"ok"' in body, (rc, code, body, err)
    assert _curl(d, pki, "/api/v1/devices/tls-1", "-X", "PUT", "-d", "{}")[1] == "201"
    assert _curl(d, pki, "/api/v1/devices/tls-1/activity", "-X", "POST")[1] in ("200", "202", "204")
    rc, code, body, _ = _curl(d, pki, "/api/v1/devices/tls-1")
    assert code == "200" and '"active":true' in body
    # The same port does not speak plain HTTP, and an unknown CA is refused by curl.
    r = subprocess.run(["curl", "-sS", "-m", "5", "http://127.0.0.1:%d/healthz" % d.port],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 or "ok" not in r.stdout
    r = subprocess.run(["curl", "-sS", "-m", "5", "https://127.0.0.1:%d/healthz" % d.port],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 60, r  # the peer's certificate cannot be verified
    # The Python client of the harness, over TLS too.
    assert d.client().get("/healthz").status == 200


def _s_client(port, version_flag):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, version_flag,
                        "-cipher", "DEFAULT:@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def test_tls_1_2_and_1_3_only(start_daemon, pki):
    cert, key = pki.server("one")
    d = _tls_daemon(start_daemon, pki, cert, key)
    for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        with socket.create_connection((d.host, d.port), timeout=5) as raw:
            with _ctx(pki.ca[1], v).wrap_socket(raw, server_hostname="127.0.0.1") as s:
                assert s.version() == name
    assert _curl(d, pki, "/healthz", "--tlsv1.2", "--tls-max", "1.2")[1] == "200"
    assert _curl(d, pki, "/healthz", "--tlsv1.3")[1] == "200"
    # TLS 1.1 and 1.0: the handshake fails.  The control, an openssl server
    # that allows TLS 1.1, shows the client could have spoken it.
    for flag in ("-tls1_1", "-tls1"):
        assert "Cipher is (NONE)" in _s_client(d.port, flag)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    srv = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key, "-tls1_1",
                            "-cipher", "DEFAULT:@SECLEVEL=0", "-www"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: "Cipher is (NONE)" not in _s_client(port, "-tls1_1"), 5)
    finally:
        srv.kill()
        srv.wait(timeout=5)


@pytest.mark.bb_timeout(90)
def test_sighup_reloads_the_certificate(start_daemon, pki):
    cert, key = pki.server("one")
    live_cert, live_key = str(pki.path / "live.pem"), str(pki.path / "live.key")
    os.link(cert, live_cert)
    os.link(key, live_key)
    d = _tls_daemon(start_daemon, pki, live_cert, live_key)
    assert _peer_cn(d, pki.ca[1]) == "one"
    kept = d.client()  # a kept-alive connection from before the reload
    assert kept.get("/healthz").status == 200
    kept_sock = kept.conn.sock
    # The renewed certificate: another CA, an RSA key; written next to the
    # old files and renamed over them, as certificate tools do.
    ca2 = pki._ca("ca2")
    cert2, key2 = pki.server("two", rsa=True, ca=ca2)
    os.rename(cert2, live_cert)
    os.rename(key2, live_key)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "TLS certificate reloaded from %s: CN=two" % live_cert in d.stderr_text(), 5), \
        d.stderr_text()
    assert _peer_cn(d, ca2[1]) == "two"
    r = subprocess.run(["curl", "-sS", "--cacert", ca2[1], "-o", "/dev/null", "-w", "%{http_code}",
                        "https://127.0.0.1:%d/healthz" % d.port], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "200", r
    assert kept.get("/healthz").status == 200
    assert kept.conn.sock is kept_sock  # the same connection: not cut by the reload
    # A reload that fails (a key that is not the certificate's) keeps the certificate in use.
    other_cert, other_key = pki.server("three", ca=ca2)
    os.rename(other_key, live_key)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "is not the key of http.tls_cert" in d.stderr_text(), 5), d.stderr_text()
    assert "the one loaded before stays in use" in d.stderr_text()
    time.sleep(0.1)
    assert _peer_cn(d, ca2[1]) == "two"
    assert d.proc.poll() is None


def test_sighup_without_tls_is_harmless(daemon):
    daemon.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP: nothing to reload" in daemon.stderr_text(), 5)
    assert daemon.client().get("/healthz").status == 200


def _start_fails(tmp_path, *sets):
    cmd = [LASTSEEN_BIN, "--set", "http.listen=127.0.0.1:0", "--set", "store.data_dir=%s" % (tmp_path / "data")]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0, r
    return r.stderr


def test_bad_tls_files_refused(tmp_path, pki):
    cert, key = pki.server("one")
    _, other_key = pki.server("other")
    err = _start_fails(tmp_path, "http.tls_cert=%s" % (tmp_path / "missing.pem"), "http.tls_key=" + key)
    assert "http.tls_cert %s: cannot read" % (tmp_path / "missing.pem") in err, err
    err = _start_fails(tmp_path, "http.tls_cert=" + cert, "http.tls_key=" + other_key)
    assert "http.tls_key %s is not the key of http.tls_cert %s" % (other_key, cert) in err, err
    err = _start_fails(tmp_path, "http.tls_cert=" + key, "http.tls_key=" + key)
    assert "not a PEM certificate list" in err or "no certificate" in err, err
    r = subprocess.run([LASTSEEN_BIN, "--set", "http.tls_cert=" + cert, "--check-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "http.tls_cert and http.tls_key go together" in r.stderr
