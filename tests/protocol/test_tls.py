"""TLS versions, certificate reload by SIGHUP and by file change, SNI."""
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import time

import harness
from harness import Server


def s_client(port, *args, servername=None):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args]
    if servername:
        cmd += ["-servername", servername]
    proc = subprocess.run(cmd, input=b"a LOGOUT\r\n", capture_output=True, timeout=20)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def test_tls_versions():
    server = Server()
    port = server.ports["imaps"]
    code, out = s_client(port, "-tls1_1")
    assert code != 0 and "* OK" not in out, out
    code, out = s_client(port, "-tls1_2")
    assert code == 0 and "TLSv1.2" in out, out
    code, out = s_client(port, "-tls1_3")
    assert code == 0 and "TLSv1.3" in out, out


def test_tls_min_version_13():
    server = Server(extra="tls_min_version = 1.3")
    code, out = s_client(server.ports["imaps"], "-tls1_2")
    assert code != 0, out
    code, out = s_client(server.ports["imaps"], "-tls1_3")
    assert code == 0, out


def test_weak_ciphers_refused():
    server = Server()
    for cipher in ("RC4-SHA", "DES-CBC3-SHA", "NULL-SHA", "AECDH-AES128-SHA"):
        code, out = s_client(server.ports["imaps"], "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0")
        assert code != 0, (cipher, out)


def peer_cn(port, servername=None):
    ctx = harness.client_tls_context()
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=servername) as s:
            der = s.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(),
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("CN")[-1].lstrip(" =")


def test_sighup_swaps_certificate_and_open_session_survives():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, key = harness.make_cert(d, "first.example")
    server = Server(cert=(cert, key), extra="tls_watch_interval = 0")
    old = server.connect("imaps")
    old.read_greeting()
    old.login()
    assert peer_cn(server.ports["imaps"]) == "first.example"
    new_cert, new_key = harness.make_cert(d, "second.example")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    server.signal(signal.SIGHUP)
    server.wait_log("event=worker_reloaded")
    assert peer_cn(server.ports["imaps"]) == "second.example"
    _, tagged = old.command("NOOP")
    assert " OK " in tagged, tagged
    server.wait_log(r"event=tls_certificate .*subject=second.example")


def test_certificate_file_change_is_noticed_without_signal():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, key = harness.make_cert(d, "before.example")
    server = Server(cert=(cert, key))  # tls_watch_interval = 1
    assert peer_cn(server.ports["imaps"]) == "before.example"
    new_cert, new_key = harness.make_cert(d, "after.example")
    # As certbot does: new files, then the names point at them.
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    server.wait_log("certificate files changed on disk", timeout=10)
    server.wait_log("event=worker_reloaded")
    assert peer_cn(server.ports["imaps"]) == "after.example"


def test_broken_certificate_on_reload_keeps_the_old_one():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, key = harness.make_cert(d, "keep.example")
    server = Server(cert=(cert, key), extra="tls_watch_interval = 0")
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    server.signal(signal.SIGHUP)
    server.wait_log("event=reload_failed")
    assert peer_cn(server.ports["imaps"]) == "keep.example"


def test_sni_chooses_certificate():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    other_cert, other_key = harness.make_cert(d, "mail.other.example")
    server = Server(extra=f"\n[certificate other]\ncert = {other_cert}\nkey = {other_key}\n")
    assert peer_cn(server.ports["imaps"], "mail.other.example") == "mail.other.example"
    assert peer_cn(server.ports["imaps"], "localhost") == "localhost"
    assert peer_cn(server.ports["imaps"]) == "localhost"


def test_reload_with_new_certificate_paths_reloads_once():
    d = tempfile.mkdtemp(prefix="postern-cert-")
    cert, key = harness.make_cert(d, "old.example")
    server = Server(cert=(cert, key))  # tls_watch_interval = 1
    new_cert, new_key = harness.make_cert(d, "new.example")
    text = open(server.config).read().replace(cert, new_cert).replace(key, new_key)
    open(server.config, "w").write(text)
    server.signal(signal.SIGHUP)
    server.wait_log("event=worker_reloaded")
    time.sleep(3)
    assert server.read_log().count("event=reloading") == 1, server.read_log()
    assert peer_cn(server.ports["imaps"]) == "new.example"


def test_worker_restarted_after_reload_uses_the_new_settings():
    server = Server(listeners=(("plain", "none"),))
    c = server.connect("plain")
    c.read_greeting()
    assert "LOGINDISABLED" in c.capabilities()
    with open(server.config, "a") as f:
        f.write("")
    text = open(server.config).read().replace("log_level = debug", "log_level = debug\nallow_plaintext_auth = yes")
    open(server.config, "w").write(text)
    server.signal(signal.SIGHUP)
    server.wait_log("event=worker_reloaded")
    pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(pids[0]), signal.SIGKILL)
    server.wait_log("event=worker_started", count=2)
    server.wait_log("event=worker_reloaded", count=2)
    d = server.connect("plain")
    d.read_greeting()
    assert "AUTH=PLAIN" in d.capabilities()
