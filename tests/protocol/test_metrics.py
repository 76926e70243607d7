"""Metrics: a scripted mix of sessions, then a scrape of /metrics over HTTP
with the exact value of every counter the mix touched.

The mix, on a fresh server (every counter starts at zero):
  imaps  1: LOGIN ok, NOOP (OK), SELECT NoSuch (NO), FETCH before SELECT (BAD), LOGOUT
  imaps  2: LOGIN with a wrong password (NO), AUTHENTICATE PLAIN ok, LOGOUT
  imaps  3: AUTHENTICATE PLAIN with a wrong password (NO), LOGOUT
  imaps  4: plain TCP talking garbage to the TLS port (handshake fails)
  imaps  5: a client offering only TLS 1.1 (handshake fails)
  imap   6: STARTTLS, LOGIN ok, LOGOUT
  imaps  7: LOGIN, SELECT INBOX, IDLE, still open at scrape time
  lmtp   8: one message delivered to alice, QUIT
"""
import calendar
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import warnings

from harness import Client, Server, Skip, client_tls_context, free_port
import base64


def metrics_server(workers=1, lmtp=True, extra=""):
    port = free_port()
    server = Server(workers=workers, lmtp=lmtp, extra=f"{extra}\n[metrics]\naddress = 127.0.0.1:{port}")
    server.metrics_port = port
    return server


def fetch(server, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse(text):
    """{(name, ((label, value), ...)): float} from the text exposition."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = ()
        if "{" in head:
            name, rest = head.split("{", 1)
            pairs = []
            for item in rest.rstrip("}").split('",'):
                k, v = item.split("=", 1)
                pairs.append((k, v.strip('"')))
            labels = tuple(sorted(pairs))
        else:
            name = head
        samples[(name, labels)] = float(value)
    return samples


def value(samples, metric, **labels):
    key = (metric, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}; have {sorted(k for k in samples if k[0] == metric)}"
    return samples[key]


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def wait_closed(client):
    """The server counts a close before it closes the socket: EOF here
    means the counters already moved."""
    assert client.is_closed(timeout=10)
    client.close()


def logout(client):
    client.expect_ok("LOGOUT")
    wait_closed(client)


def run_mix(server):
    c = server.connect("imaps")
    c.read_greeting()
    assert " OK " in c.login()[1]
    c.expect_ok("NOOP")
    assert c.command("SELECT NoSuch")[1].split()[1] == "NO"
    assert c.command("FETCH 1 FLAGS")[1].split()[1] == "BAD"
    logout(c)

    c = server.connect("imaps")
    c.read_greeting()
    assert " NO " in c.login(password="wrong")[1]
    assert " OK " in c.command("AUTHENTICATE PLAIN " + plain("alice", "wonderland"))[1]
    logout(c)

    c = server.connect("imaps")
    c.read_greeting()
    assert " NO " in c.command("AUTHENTICATE PLAIN " + plain("bob", "nope"))[1]
    logout(c)

    raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    raw.sendall(b"a1 LOGIN alice wonderland\r\n" * 4)
    raw.settimeout(10)
    try:
        while raw.recv(4096):
            pass
    except ConnectionResetError:
        pass
    raw.close()

    ctx = client_tls_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    try:
        ctx.wrap_socket(raw).close()
        raise AssertionError("a TLS 1.1 handshake succeeded")
    except (ssl.SSLError, ConnectionResetError):
        pass
    raw.close()

    c = server.connect("imap")
    c.read_greeting()
    c.starttls()
    assert " OK " in c.login("bob")[1]
    logout(c)

    idle = server.connect("imaps")
    idle.read_greeting()
    assert " OK " in idle.login("carol")[1]
    idle.expect_ok("SELECT INBOX")
    idle.send("i1 IDLE\r\n")
    assert idle.read_line().startswith("+ ")

    lmtp = server.lmtp()
    lmtp.sendmail("sender@example.org", ["alice@example.org"],
                  b"Subject: metrics\r\n\r\nhello\r\n")
    lmtp.quit()
    return idle


def not_after(cert):
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", cert],
                         capture_output=True, text=True, check=True).stdout.strip()
    text = out.split("=", 1)[1]
    return calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z"))


def test_exact_counters_after_a_session_mix():
    server = metrics_server()
    idle = run_mix(server)
    # The last close (LMTP) happens after QUIT's reply: wait for its log line.
    server.wait_log(r"event=disconnect session=L\S+ .*reason=quit")
    s = parse(fetch(server))

    assert value(s, "postern_connections_accepted_total", listener="imaps") == 6
    assert value(s, "postern_connections_accepted_total", listener="imap") == 1
    assert value(s, "postern_connections_accepted_total", listener="lmtp") == 1
    assert value(s, "postern_connections_closed_total", listener="imaps", outcome="ok") == 3
    assert value(s, "postern_connections_closed_total", listener="imaps", outcome="tls_failed") == 2
    assert value(s, "postern_connections_closed_total", listener="imaps", outcome="error") == 0
    assert value(s, "postern_connections_closed_total", listener="imap", outcome="ok") == 1
    assert value(s, "postern_connections_closed_total", listener="lmtp", outcome="ok") == 1
    assert value(s, "postern_connections_refused_total", listener="imaps") == 0

    failures = {k[1][0][1]: v for k, v in s.items() if k[0] == "postern_tls_handshake_failures_total"}
    assert sum(failures.values()) == 2, failures
    assert failures["protocol_version"] >= 1, failures      # the TLS 1.1 client
    handshakes = sum(v for k, v in s.items() if k[0] == "postern_tls_handshakes_total")
    assert handshakes == 5
    assert value(s, "postern_tls_handshakes_total", version="TLSv1.3",
                 cipher="TLS_AES_256_GCM_SHA384") == 5
    assert value(s, "postern_starttls_upgrades_total") == 1

    assert value(s, "postern_logins_total", mechanism="LOGIN", result="ok") == 3
    assert value(s, "postern_logins_total", mechanism="LOGIN", result="failed") == 1
    assert value(s, "postern_logins_total", mechanism="PLAIN", result="ok") == 1
    assert value(s, "postern_logins_total", mechanism="PLAIN", result="failed") == 1
    assert value(s, "postern_logins_total", mechanism="PLAIN", result="limit") == 0
    # imaps 2's AUTHENTICATE repeats imaps 1's verified password: no hash.
    assert value(s, "postern_login_cache_hits_total") == 1

    commands = {(dict(k[1])["command"], dict(k[1])["result"]): v
                for k, v in s.items() if k[0] == "postern_commands_total"}
    assert commands == {
        ("LOGIN", "ok"): 3, ("LOGIN", "no"): 1, ("AUTHENTICATE", "ok"): 1, ("AUTHENTICATE", "no"): 1,
        ("NOOP", "ok"): 1, ("SELECT", "ok"): 1, ("SELECT", "no"): 1, ("FETCH", "bad"): 1,
        ("LOGOUT", "ok"): 4, ("STARTTLS", "ok"): 1,
    }, commands
    assert value(s, "postern_command_duration_seconds_count", command="LOGOUT") == 4
    assert value(s, "postern_command_duration_seconds_bucket", command="LOGOUT", le="+Inf") == 4

    assert value(s, "postern_sessions", state="selected") == 1
    assert value(s, "postern_sessions", state="authenticated") == 0
    assert value(s, "postern_sessions", state="not_authenticated") == 0
    assert value(s, "postern_idle_sessions") == 1

    assert value(s, "postern_deliveries_total", result="ok") == 1
    assert value(s, "postern_deliveries_total", result="rejected") == 0
    assert value(s, "postern_deliveries_total", result="tempfail") == 0
    assert value(s, "postern_delivery_duration_seconds_count") == 1
    assert value(s, "postern_delivery_duration_seconds_bucket", le="+Inf") == 1

    assert value(s, "postern_tls_certificate_expiry_timestamp_seconds", name="default") == not_after(server.cert)
    assert value(s, "postern_workers") == 1
    assert value(s, "postern_worker_restarts_total") == 0
    assert value(s, "postern_store_errors_total") == 0
    assert value(s, "postern_received_bytes_total") > 0
    assert value(s, "postern_sent_bytes_total") > 0
    for limit in ("connections_per_ip", "sessions_per_user", "command_rate", "output_buffer"):
        assert value(s, "postern_limit_exceeded_total", limit=limit) == 0

    idle.send("DONE\r\n")
    _, tagged = idle.read_until_tagged("i1")
    assert " OK " in tagged
    s = parse(fetch(server))
    assert value(s, "postern_idle_sessions") == 0
    assert value(s, "postern_commands_total", command="IDLE", result="ok") == 1
    idle.close()


def test_other_paths_and_methods_get_404():
    server = metrics_server(lmtp=False)
    for path in ("/", "/metrics/", "/metricsx", "/other"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=10)
            raise AssertionError(f"{path} was served")
        except urllib.error.HTTPError as e:
            assert e.code == 404, (path, e.code)
    req = urllib.request.Request(f"http://127.0.0.1:{server.metrics_port}/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST was served")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    assert "postern_workers 1" in fetch(server, "/metrics?x=1")


def test_promtool_accepts_the_exposition():
    promtool = shutil.which("promtool")
    if promtool is None:
        raise Skip("promtool not installed (Debian package prometheus)")
    server = metrics_server()
    idle = run_mix(server)
    text = fetch(server)
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    idle.close()


def test_metrics_section_without_address_defaults_to_loopback_9143():
    with socket.socket() as probe:
        # As the server does: a port left in TIME_WAIT by an earlier run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 9143))
        except OSError:
            raise Skip("port 9143 is taken on this machine")
    server = Server(extra="[metrics]")
    server.metrics_port = 9143
    assert "postern_workers 1" in fetch(server)
    server.wait_log(r"event=ready")


def test_no_metrics_section_no_endpoint():
    server = Server(lmtp=False)
    # The master opened no listening socket beyond the configured ones.
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True)
    if out.returncode == 0:
        mine = [l for l in out.stdout.splitlines() if f"pid={server.proc.pid}," in l]
        ports = {int(l.split()[3].rsplit(":", 1)[1]) for l in mine}
        assert ports == set(server.ports.values()), (ports, server.ports)


def counter_samples(samples):
    return {k: v for k, v in samples.items()
            if k[0].endswith(("_total", "_count", "_sum", "_bucket"))}


def test_metrics_survive_a_worker_kill():
    server = metrics_server(workers=2, lmtp=False)
    for _ in range(4):
        c = server.connect("imaps")
        c.read_greeting()
        c.login()
        logout(c)
    before = parse(fetch(server))
    assert value(before, "postern_logins_total", mechanism="LOGIN", result="ok") == 4
    pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(pids) == 2, pids
    os.kill(int(pids[0]), signal.SIGKILL)
    server.wait_log(r"event=worker_started msg=\"worker \d pid", count=3)
    deadline = time.monotonic() + 10
    while True:
        after = parse(fetch(server))
        if value(after, "postern_workers") == 2:
            break
        assert time.monotonic() < deadline, "worker not restarted"
        time.sleep(0.1)
    assert value(after, "postern_worker_restarts_total") == value(before, "postern_worker_restarts_total") + 1
    for key, v in counter_samples(before).items():
        assert after.get(key, 0) >= v, (key, v, after.get(key))
    assert value(after, "postern_logins_total", mechanism="LOGIN", result="ok") == 4
    c = server.connect("imaps")
    c.read_greeting()
    c.login()
    logout(c)
    assert value(parse(fetch(server)), "postern_logins_total", mechanism="LOGIN", result="ok") == 5
