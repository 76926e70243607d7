"""Real clients log in over both ports: curl (imaps:// and imap:// with
--ssl-reqd) and Python's imaplib (IMAP4_SSL, and IMAP4 with starttls)."""
import imaplib
import shutil
import ssl
import subprocess

import harness
from harness import PASSWORDS, Server


def curl(url, *args):
    if shutil.which("curl") is None:
        raise harness.Skip("curl is not installed")
    cmd = ["curl", "-sS", "-k", "--max-time", "20", "-u", f"alice:{PASSWORDS['alice']}", url, *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_curl_imaps_login():
    server = Server()
    proc = curl(f"imaps://127.0.0.1:{server.ports['imaps']}/", "-X", "NOOP", "-v")
    assert proc.returncode == 0, proc.stderr
    assert "OK [CAPABILITY" in proc.stderr and "Logged in" in proc.stderr, proc.stderr


def test_curl_starttls_login():
    server = Server()
    proc = curl(f"imap://127.0.0.1:{server.ports['imap']}/", "--ssl-reqd", "-X", "NOOP", "-v")
    assert proc.returncode == 0, proc.stderr
    assert "STARTTLS" in proc.stderr and "Logged in" in proc.stderr, proc.stderr


def test_curl_wrong_password_fails():
    server = Server()
    cmd = ["curl", "-sS", "-k", "--max-time", "20", "-u", "alice:wrong",
           f"imaps://127.0.0.1:{server.ports['imaps']}/", "-X", "NOOP"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 67, (proc.returncode, proc.stderr)  # CURLE_LOGIN_DENIED


def test_imaplib_ssl():
    server = Server()
    ctx = harness.client_tls_context()
    with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx) as m:
        assert "AUTH=PLAIN" in m.capabilities
        typ, _ = m.login("alice", PASSWORDS["alice"])
        assert typ == "OK"
        typ, _ = m.noop()
        assert typ == "OK"
        typ, data = m.xatom("ID", '("name" "imaplib")')
        assert typ == "OK"


def test_imaplib_starttls_and_authenticate():
    server = Server()
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"]) as m:
        assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
        m.starttls(ssl_context=harness.client_tls_context())
        assert "AUTH=PLAIN" in m.capabilities
        creds = f"\0bob\0{PASSWORDS['bob']}".encode()
        typ, _ = m.authenticate("PLAIN", lambda _: creds)
        assert typ == "OK"
        assert m.state == "AUTH"
        typ, _ = m.noop()
        assert typ == "OK"
