"""Startup errors a user can act on: each exits non-zero, says what is wrong
and leaves nothing running."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import BIN, Server


def test_port_already_in_use_names_the_holder():
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    server = Server(listeners=(("imaps", "implicit"),), start=False)
    with open(server.config) as f:
        text = f.read()
    text = text.replace(f"127.0.0.1:{server.ports['imaps']}", f"127.0.0.1:{port}")
    with open(server.config, "w") as f:
        f.write(text)
    code = server.start(expect_fail=True)
    log = server.read_log()
    assert code != 0
    assert f"127.0.0.1:{port}" in log and "already in use" in log, log
    assert f"pid {os.getpid()} (" in log, log
    holder.close()


def test_missing_certificate():
    server = Server(cert=("/nonexistent/cert.pem", "/nonexistent/key.pem"), start=False)
    assert server.start(expect_fail=True) != 0
    log = server.read_log()
    assert "/nonexistent/cert.pem" in log and "No such file" in log, log


def test_key_does_not_match_certificate():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, _ = harness.make_cert(d, "one.example")
    _, other_key = harness.make_cert(d, "two.example")
    server = Server(cert=(cert, other_key), start=False)
    assert server.start(expect_fail=True) != 0
    assert "does not match" in server.read_log(), server.read_log()


def test_expired_certificate():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, key = harness.expired_cert(d, "old.example")
    server = Server(cert=(cert, key), start=False)
    assert server.start(expect_fail=True) != 0
    log = server.read_log()
    assert "expired" in log and "2020-02-01" in log, log


def test_bad_config_lines_are_all_reported():
    d = tempfile.mkdtemp(prefix="postern-conf-")
    conf = os.path.join(d, "bad.conf")
    with open(conf, "w") as f:
        f.write("workers = many\nno equals sign here\ntls_certs = /x\n[listener a]\ntls = sometimes\n")
    proc = subprocess.run([BIN, "serve", "-c", conf], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    for line in (f"{conf}:1:", f"{conf}:2:", f"{conf}:3:", f"{conf}:5:"):
        assert line in proc.stderr, proc.stderr
    assert "did you mean 'tls_cert'" in proc.stderr, proc.stderr


def test_missing_passwd_file():
    server = Server(start=False)
    os.unlink(server.passwd)
    assert server.start(expect_fail=True) != 0
    assert server.passwd in server.read_log()


def test_missing_account_for_privilege_drop():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to test dropping privileges")
    server = Server(start=False)
    with open(server.config, "a") as f:
        f.write("")
    text = open(server.config).read().replace("user = root", "user = no-such-account-xyz")
    open(server.config, "w").write(text)
    assert server.start(expect_fail=True) != 0
    assert "user 'no-such-account-xyz' does not exist" in server.read_log(), server.read_log()


def test_drops_privileges_to_configured_account():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to test dropping privileges")
    server = Server(start=False)
    os.chmod(server.dir, 0o755)
    for path in (server.passwd, server.cert, server.key):
        os.chmod(path, 0o644)
        os.chmod(os.path.dirname(path), 0o755)
    text = open(server.config).read().replace("user = root", "user = nobody")
    open(server.config, "w").write(text)
    server.start()
    c = server.connect("imaps")
    c.read_greeting()
    pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    assert pids, "no workers"
    for pid in [str(server.proc.pid)] + pids:
        with open(f"/proc/{pid}/status") as f:
            uid_line = next(l for l in f if l.startswith("Uid:"))
        assert uid_line.split()[1:] == ["65534"] * 4, (pid, uid_line)
    _, tagged = c.login()
    assert " OK " in tagged


def test_privileged_port_without_root_explains_the_fix():
    if os.geteuid() != 0:
        user_cmd = []
    elif shutil.which("setpriv"):
        user_cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        raise harness.Skip("needs setpriv to run as an unprivileged user")
    server = Server(listeners=(("low", "none"),), start=False)
    os.chmod(server.dir, 0o755)
    os.chmod(server.passwd, 0o644)
    text = open(server.config).read()
    text = text.replace(f"127.0.0.1:{server.ports['low']}", "127.0.0.1:143")
    text = "\n".join(l for l in text.splitlines() if not l.startswith("user ="))
    open(server.config, "w").write(text + "\n")
    proc = subprocess.run(user_cmd + [BIN, "serve", "-c", server.config], capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode != 0
    assert "permission denied" in proc.stderr and "CAP_NET_BIND_SERVICE" in proc.stderr, proc.stderr
