"""`postern doctor HOST`: the outside view of an IMAP server.

Against postern set up well and badly, against `openssl s_server` standing
in for TLS endpoints postern refuses to be (TLS 1.1 allowed, an expired
certificate), against a port nobody listens on, a port that never speaks,
and against a private Dovecot when one is installed. Every finding is
checked in the text output and in --json, with the exit status
(0 no problems, 1 problems, 2 usage)."""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import BIN, Server

LINE = re.compile(r"^(OK|INFO|WARN|FAIL)\s+(\d*)\s+(\S+)\s+(.*)$")
HINT = re.compile(r"^\s+-> (.*)$")


def doctor(host, *args, password=None, timeout=120):
    """Runs doctor; returns (exit status, {(port, name): (status, detail, hint)}, stdout)."""
    proc = subprocess.run([BIN, "doctor", host, *args], input=password if password is not None else "",
                          capture_output=True, text=True, timeout=timeout)
    checks, last = {}, None
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m:
            last = (int(m.group(2)) if m.group(2) else 0, m.group(3))
            checks[last] = [m.group(1), m.group(4), None]
            continue
        m = HINT.match(line)
        if m and last is not None:
            checks[last][2] = m.group(1)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    return proc.returncode, {k: tuple(v) for k, v in checks.items()}, proc.stdout + proc.stderr


def doctor_json(host, *args, password=None, timeout=120):
    proc = subprocess.run([BIN, "doctor", host, "--json", *args],
                          input=password if password is not None else "",
                          capture_output=True, text=True, timeout=timeout)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    checks = {(c["port"] or 0, c["name"]): c for c in report["checks"]}
    return proc.returncode, report, checks


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} never opened")
            time.sleep(0.05)


class SServer:
    """`openssl s_server` on 127.0.0.1 as a stand-in TLS endpoint; it
    speaks no IMAP, so doctor's greeting check fails on it."""

    def __init__(self, cert, key, *args):
        self.port = harness.free_port()
        self.proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}",
                                      "-cert", cert, "-key", key, "-quiet", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_doctor_well_configured_postern():
    server = Server()
    cert, _ = harness.shared_cert()
    imap, imaps = server.ports["imap"], server.ports["imaps"]
    args = ("--port", str(imap), "--port", str(imaps), "--cafile", cert, "--user", "alice")
    code, checks, out = doctor("localhost", *args, password="wonderland\n")
    assert code == 0, out
    assert "wonderland" not in out
    assert "no problems found" in out, out
    for status, _, _ in checks.values():
        assert status in ("OK", "INFO"), out
    assert checks[(imap, "mode")][1].startswith("plaintext"), out
    assert checks[(imaps, "mode")][1].startswith("implicit TLS"), out
    assert "connected to 127.0.0.1" in checks[(imap, "connect")][1], out
    assert re.search(r"in \d+ ms", checks[(imap, "connect")][1]), out
    assert checks[(imap, "greeting")][1].startswith("* OK"), out
    assert "LOGINDISABLED" in checks[(imap, "capabilities")][1], out
    assert checks[(imap, "plaintext-login")][0] == "OK", out
    assert checks[(imap, "starttls")][0] == "OK", out
    assert "AUTH=PLAIN" in checks[(imap, "capabilities-tls")][1], out
    for port in (imap, imaps):
        assert checks[(port, "certificate-chain")][0] == "OK", out
        assert checks[(port, "certificate-name")][0] == "OK", out
        assert checks[(port, "certificate-expiry")][0] == "OK", out
        assert "in 29 days" in checks[(port, "certificate-expiry")][1] or \
            "in 30 days" in checks[(port, "certificate-expiry")][1], out
        assert checks[(port, "login")] == ("OK", "logged in as alice with AUTHENTICATE PLAIN", None), out
        assert checks[(port, "tls-1.0")][0] == "OK" and checks[(port, "tls-1.1")][0] == "OK", out
        assert "rejected" in checks[(port, "tls-1.0")][1] and "rejected" in checks[(port, "tls-1.1")][1], out
        assert "accepted" in checks[(port, "tls-1.2")][1] and "accepted" in checks[(port, "tls-1.3")][1], out
        assert "TLS 1.3 with TLS_" in checks[(port, "cipher")][1], out

    code, report, checks = doctor_json("localhost", *args, password="wonderland\n")
    assert code == 0 and report["status"] == "ok", report
    assert report["host"] == "localhost"
    assert report["counts"]["fail"] == 0 and report["counts"]["warn"] == 0, report
    assert checks[(imaps, "login")]["status"] == "OK", report
    assert checks[(imap, "starttls")]["status"] == "OK", report
    assert all(c["hint"] is None for c in report["checks"]), report
    assert all(isinstance(c["port"], int) for c in report["checks"]), report


def test_doctor_bad_password():
    server = Server(listeners=(("imaps", "implicit"),))
    cert, _ = harness.shared_cert()
    args = ("--port", str(server.ports["imaps"]), "--cafile", cert, "--user", "alice")
    code, checks, out = doctor("localhost", *args, password="not the password\n")
    assert code == 1, out
    assert "not the password" not in out
    status, detail, hint = checks[(server.ports["imaps"], "login")]
    assert status == "FAIL" and "NO" in detail and "alice" in detail, out
    assert "password" in hint, out
    code, report, checks = doctor_json("localhost", *args, password="not the password\n")
    assert code == 1 and report["status"] == "problems", report
    assert checks[(server.ports["imaps"], "login")]["status"] == "FAIL", report
    assert report["counts"]["fail"] == 1, report


def test_doctor_self_signed_without_cafile():
    server = Server(listeners=(("imaps", "implicit"),))
    port = server.ports["imaps"]
    code, checks, out = doctor("localhost", "--port", f"{port}/tls")
    assert code == 1, out
    assert checks[(port, "mode")][1] == "implicit TLS (as asked)", out
    status, detail, hint = checks[(port, "certificate-chain")]
    assert status == "FAIL" and "self-signed" in detail, out
    assert "--cafile" in hint, out


def test_doctor_tls_1_1_allowed():
    cert, key = harness.shared_cert()
    tls = SServer(cert, key, "-min_protocol", "TLSv1.1", "-cipher", "ALL:@SECLEVEL=0")
    try:
        args = ("--port", str(tls.port), "--cafile", cert, "--timeout", "2")
        code, checks, out = doctor("localhost", *args)
        assert code == 1, out
        assert checks[(tls.port, "mode")][1].startswith("implicit TLS"), out
        status, detail, hint = checks[(tls.port, "tls-1.1")]
        assert status == "FAIL" and detail.startswith("TLS 1.1 accepted"), out
        assert hint.startswith("TLS 1.1 accepted: set tls_min_version = 1.2"), out
        assert checks[(tls.port, "tls-1.0")][0] == "OK" and "rejected" in checks[(tls.port, "tls-1.0")][1], out
        assert checks[(tls.port, "tls-1.3")][0] == "OK", out
        # s_server speaks no IMAP: the greeting times out, and says so.
        assert checks[(tls.port, "greeting")][0] == "FAIL", out
        assert "no answer within 2 s" in checks[(tls.port, "greeting")][1], out

        code, report, checks = doctor_json("localhost", *args)
        assert code == 1, report
        assert checks[(tls.port, "tls-1.1")]["status"] == "FAIL", report
        assert "tls_min_version = 1.2" in checks[(tls.port, "tls-1.1")]["hint"], report
    finally:
        tls.stop()


def test_doctor_expired_certificate():
    d = tempfile.mkdtemp(prefix="postern-doctor-")
    cert, key = harness.expired_cert(d)
    tls = SServer(cert, key)
    try:
        args = ("--port", f"{tls.port}/tls", "--cafile", cert, "--timeout", "2")
        code, checks, out = doctor("localhost", *args)
        assert code == 1, out
        status, detail, hint = checks[(tls.port, "certificate-expiry")]
        assert status == "FAIL" and "expired on 2020-02-01" in detail, out
        assert "renew it" in hint, out
        status, detail, hint = checks[(tls.port, "certificate-chain")]
        assert status == "FAIL" and "expired" in detail, out
        assert checks[(tls.port, "certificate-name")][0] == "OK", out

        code, report, checks = doctor_json("localhost", *args)
        assert code == 1, report
        assert checks[(tls.port, "certificate-expiry")]["status"] == "FAIL", report
        assert "2020-02-01" in checks[(tls.port, "certificate-expiry")]["detail"], report
    finally:
        tls.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_doctor_name_mismatch():
    d = tempfile.mkdtemp(prefix="postern-doctor-")
    cert, key = harness.make_cert(d, "other.example")
    server = Server(listeners=(("imaps", "implicit"),), cert=(cert, key))
    port = server.ports["imaps"]
    args = ("--port", str(port), "--cafile", cert)
    code, checks, out = doctor("localhost", *args)
    assert code == 1, out
    assert checks[(port, "certificate-chain")][0] == "OK", out
    status, detail, hint = checks[(port, "certificate-name")]
    assert status == "FAIL" and detail == "certificate is for other.example, not localhost", out
    assert hint.startswith("name mismatch: certificate is for other.example, not localhost"), out
    code, report, checks = doctor_json("localhost", *args)
    assert code == 1 and checks[(port, "certificate-name")]["status"] == "FAIL", report
    shutil.rmtree(d, ignore_errors=True)


def test_doctor_closed_port():
    port = harness.free_port()
    code, checks, out = doctor("127.0.0.1", "--port", str(port))
    assert code == 1, out
    status, detail, hint = checks[(port, "connect")]
    assert status == "FAIL" and "refused" in detail, out
    assert hint == f"{port} closed: firewall or server not listening", out
    assert len(checks) == 1, out
    code, report, checks = doctor_json("127.0.0.1", "--port", str(port))
    assert code == 1 and report["status"] == "problems", report
    assert checks[(port, "connect")]["hint"] == f"{port} closed: firewall or server not listening"


def test_doctor_plaintext_login_offered():
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")
    port = server.ports["plain"]
    code, checks, out = doctor("localhost", "--port", str(port))
    assert code == 1, out
    assert checks[(port, "mode")][1].startswith("plaintext"), out
    status, detail, hint = checks[(port, "plaintext-login")]
    assert status == "FAIL" and "LOGINDISABLED is not advertised" in detail and "AUTH=PLAIN" in detail, out
    assert "allow_plaintext_auth = no" in hint, out
    assert checks[(port, "starttls")][:2] == ("FAIL", "STARTTLS not offered"), out
    code, report, checks = doctor_json("localhost", "--port", str(port))
    assert code == 1, report
    assert checks[(port, "plaintext-login")]["status"] == "FAIL", report
    assert checks[(port, "starttls")]["status"] == "FAIL", report


def test_doctor_silent_port_does_not_hang():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        start = time.monotonic()
        code, checks, out = doctor("127.0.0.1", "--port", f"{port}/starttls", "--timeout", "1")
        assert time.monotonic() - start < 8, out
        assert code == 1, out
        assert checks[(port, "connect")][0] == "OK", out
        status, detail, _ = checks[(port, "greeting")]
        assert status == "FAIL" and detail == "no greeting: no answer within 1 s", out
    finally:
        silent.close()


def test_doctor_usage_errors():
    for args in ([], ["a", "b"], ["localhost", "--port", "x"], ["localhost", "--port", "70000"],
                 ["localhost", "--port", "143/ssl"], ["localhost", "--timeout", "0"], ["localhost", "--nope"]):
        proc = subprocess.run([BIN, "doctor", *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "usage" in proc.stderr or "bad --" in proc.stderr, (args, proc.stderr)
    proc = subprocess.run([BIN, "doctor", "localhost", "--cafile", "/nonexistent/ca.pem"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "/nonexistent/ca.pem" in proc.stderr, proc.stderr
    # --user with nothing on stdin: no password, no probing.
    proc = subprocess.run([BIN, "doctor", "localhost", "--user", "alice"], input="",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no password" in proc.stderr, proc.stderr


def test_doctor_against_dovecot():
    dovecot = "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        raise harness.Skip("Dovecot is not installed")
    d = tempfile.mkdtemp(prefix="postern-dovecot-")
    os.chmod(d, 0o755)
    cert, key = harness.make_cert(os.path.join(d, "tls"), "localhost")
    os.chmod(os.path.join(d, "tls"), 0o755)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("alice:{PLAIN}wonderland\n")
    if os.geteuid() == 0:
        uid, gid, accounts = 65534, 65534, ""
    else:
        me = pwd.getpwuid(os.geteuid()).pw_name
        uid, gid = os.geteuid(), os.getegid()
        accounts = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    imap, imaps = harness.free_port(), harness.free_port()
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub))
    os.chmod(os.path.join(d, "home"), 0o777)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = postern-doctor-{imap}
{accounts}protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
mail_location = maildir:{d}/home/%u/Maildir
first_valid_uid = 0
first_valid_gid = 0
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
""")
    log = open(os.path.join(d, "stdout.log"), "wb")
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_port(imap, proc)
            wait_port(imaps, proc)
        except AssertionError as e:
            raise harness.Skip(f"private Dovecot did not start: {e}")
        args = ("--port", str(imap), "--port", str(imaps), "--cafile", cert, "--user", "alice")
        code, checks, out = doctor("localhost", *args, password="wonderland\n")
        assert "Dovecot" in checks[(imap, "greeting")][1], out
        assert checks[(imap, "mode")][1].startswith("plaintext"), out
        assert checks[(imaps, "mode")][1].startswith("implicit TLS"), out
        assert checks[(imap, "starttls")][0] == "OK", out
        for port in (imap, imaps):
            assert checks[(port, "certificate-chain")][0] == "OK", out
            assert checks[(port, "certificate-name")][0] == "OK", out
            assert checks[(port, "login")][0] == "OK", out
            assert "rejected" in checks[(port, "tls-1.0")][1] and "rejected" in checks[(port, "tls-1.1")][1], out
            assert "accepted" in checks[(port, "tls-1.2")][1], out
        # Dovecot counts a connection from its own address as secure and
        # offers AUTH=PLAIN on it without TLS, loopback included: doctor,
        # seeing it from outside, reports exactly that.
        status, detail, _ = checks[(imap, "plaintext-login")]
        assert status == "FAIL" and "AUTH=PLAIN" in detail, out
        assert code == 1, out

        code, report, checks = doctor_json("localhost", "--port", str(imaps), "--cafile", cert,
                                           "--user", "alice", password="wrong\n")
        assert code == 1, report
        assert checks[(imaps, "login")]["status"] == "FAIL", report
        assert "AUTHENTICATIONFAILED" in checks[(imaps, "login")]["detail"], report
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
