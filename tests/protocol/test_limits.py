"""Limits against abuse, each with its config key, its answer and its
metric: connections per source address (others still served), sessions
per user and per user and address, a reader that stops reading (closed,
others still served), output piling up past max_output_buffer, the
command rate (delayed, none dropped) and SEARCH body reads."""
import base64
import harness
import os
import signal
import socket
import subprocess
import time
import urllib.request

from harness import Client, Server, free_port


def make_server(extra="", workers=1, listeners=(("plain", "none"), ("imaps", "implicit"))):
    port = free_port()
    server = Server(listeners=listeners, workers=workers,
                    extra=f"allow_plaintext_auth = yes\n{extra}\n[metrics]\naddress = 127.0.0.1:{port}")
    server.metrics_port = port
    return server


def metric(server, line_start):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


def plain_client(server, source=None, **kw):
    c = Client(server.ports["plain"], source=source, **kw)
    return c


def logged_in(server, user="alice", source=None, **kw):
    c = plain_client(server, source=source, **kw)
    assert c.read_greeting().startswith("* OK"), c.greeting
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    return c


def append(c, body, mailbox="INBOX"):
    c.send(f"ap APPEND {mailbox} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert " OK " in tagged, tagged


def test_connections_per_ip_refused_while_others_are_served():
    server = make_server("max_connections_per_ip = 3", workers=2)
    held = []
    for _ in range(3):
        c = plain_client(server)
        assert c.read_greeting().startswith("* OK")
        held.append(c)
    # A flood from 127.0.0.1: every one over the limit gets the BYE and
    # is closed, on the plaintext port in clear...
    for _ in range(20):
        c = plain_client(server)
        assert c.read_line() == "* BYE Too many connections from your address"
        assert c.is_closed()
        c.close()
    # ...and on the TLS port without a handshake (no work for a flood).
    raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    raw.settimeout(10)
    try:
        assert raw.recv(100) == b""
    except ConnectionResetError:
        pass
    raw.close()
    # Meanwhile another address is served normally, on both ports.
    for _ in range(3):
        other = logged_in(server, "bob", source="127.0.0.2")
        other.expect_ok("NOOP")
        other.close()
    tls = Client(server.ports["imaps"], tls=True, source="127.0.0.2")
    assert tls.read_greeting().startswith("* OK")
    tls.close()
    # One of the three leaves: 127.0.0.1 gets a place again.
    held.pop().expect_ok("LOGOUT")
    server.wait_log(r"event=disconnect .*reason=logout")
    again = plain_client(server)
    assert again.read_greeting().startswith("* OK"), again.greeting
    assert metric(server, 'postern_connections_refused_total{listener="plain"}') == 20
    assert metric(server, 'postern_connections_refused_total{listener="imaps"}') == 1
    assert metric(server, 'postern_connections_closed_total{listener="plain",outcome="limit"}') == 20
    assert metric(server, 'postern_limit_exceeded_total{limit="connections_per_ip"}') == 21
    server.wait_log(r"event=connection_refused listener=plain ip=127.0.0.1 "
                    r"reason=\"limit: max_connections_per_ip\" connections=3")


def plain_ir(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_sessions_per_user_and_per_user_and_address():
    server = make_server("max_sessions_per_user = 2\nmax_sessions_per_user_ip = 1", workers=2)
    first = logged_in(server, "alice")
    # A second alice from the same address: per user and address.
    c = plain_client(server)
    c.read_greeting()
    _, tagged = c.login("alice")
    assert tagged.endswith("NO [LIMIT] Too many sessions for this user"), tagged
    _, tagged = c.command("AUTHENTICATE PLAIN " + plain_ir("alice", "wonderland"))
    assert tagged.endswith("NO [LIMIT] Too many sessions for this user"), tagged
    # The same connection may still log in as someone else.
    _, tagged = c.login("bob")
    assert " OK " in tagged, tagged
    # From another address alice gets her second session...
    second = logged_in(server, "alice", source="127.0.0.2")
    # ...and a third, from a third address, is over the per-user limit.
    third = plain_client(server, source="127.0.0.3")
    third.read_greeting()
    _, tagged = third.login("alice")
    assert tagged.endswith("NO [LIMIT] Too many sessions for this user"), tagged
    server.wait_log(r"event=login .*user=alice ip=127.0.0.3 .*result=limit .*limit=max_sessions_per_user ")
    # A session that ends gives its place back.
    first.expect_ok("LOGOUT")
    assert first.is_closed()
    _, tagged = third.login("alice")
    assert " OK " in tagged, tagged
    assert metric(server, 'postern_logins_total{mechanism="LOGIN",result="limit"}') == 2
    assert metric(server, 'postern_logins_total{mechanism="PLAIN",result="limit"}') == 1
    assert metric(server, 'postern_limit_exceeded_total{limit="sessions_per_user_ip"}') == 2
    assert metric(server, 'postern_limit_exceeded_total{limit="sessions_per_user"}') == 1
    second.close()


def test_killed_worker_gives_back_its_sessions():
    server = make_server("max_sessions_per_user = 1")
    c = logged_in(server, "alice")
    pid = int(subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                             text=True).stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    assert c.is_closed()
    server.wait_log(r"event=worker_started msg=\"worker 0 pid", count=2)
    deadline = time.monotonic() + 10
    while True:
        try:
            again = logged_in(server, "alice")
            break
        except (ConnectionRefusedError, EOFError, AssertionError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    again.expect_ok("NOOP")


def test_reader_that_stops_reading_is_closed_and_others_are_served():
    server = make_server("idle_timeout = 2\nmax_commands_per_second = 0")
    writer = logged_in(server)
    append(writer, b"Subject: big\r\n\r\n" + (b"x" * 1022 + b"\r\n") * 4096)   # 4 MiB
    slow = logged_in(server, rcvbuf=4096)
    slow.expect_ok("SELECT INBOX")
    slow.send("f1 FETCH 1 BODY.PEEK[]\r\nf2 FETCH 1 BODY.PEEK[]\r\n")
    # Never read. The server keeps serving others meanwhile, promptly,
    # until it gives up on the reader: one idle_timeout with output
    # waiting and no byte taken.
    deadline = time.monotonic() + 15
    while 'reason="limit: output stalled"' not in server.read_log():
        assert time.monotonic() < deadline, "the stalled reader was never closed"
        start = time.monotonic()
        writer.expect_ok("NOOP")
        assert time.monotonic() - start < 1.0
        time.sleep(0.2)
    writer.expect_ok("NOOP")
    assert metric(server, 'postern_limit_exceeded_total{limit="output_stalled"}') == 1
    assert metric(server, 'postern_connections_closed_total{listener="plain",outcome="limit"}') == 1
    slow.close()


def test_output_piling_up_past_max_output_buffer_disconnects():
    server = make_server("max_output_buffer = 64K\nmax_commands_per_second = 0")
    flood = logged_in(server, rcvbuf=4096)
    # Each CAPABILITY answer is a few hundred bytes; nothing is read.
    flood.send(b"c CAPABILITY\r\n" * 20000)
    server.wait_log(r"event=disconnect .*reason=\"limit: output buffer\"", timeout=30)
    other = logged_in(server, "bob")
    other.expect_ok("NOOP")
    assert metric(server, 'postern_connections_closed_total{listener="plain",outcome="limit"}') == 1
    assert metric(server, 'postern_limit_exceeded_total{limit="output_buffer"}') == 1
    flood.close()


def test_command_rate_delays_but_drops_nothing():
    rate, n = 20, 60
    server = make_server(f"max_commands_per_second = {rate}")
    c = logged_in(server)
    start = time.monotonic()
    c.send("".join(f"n{i} NOOP\r\n" for i in range(n)))
    for i in range(n):
        _, tagged = c.read_until_tagged(f"n{i}")
        assert tagged == f"n{i} OK NOOP completed", tagged
    elapsed = time.monotonic() - start
    # The bucket holds one second of commands (LOGIN took one of them), so
    # the rest wait their turn: at least (n - rate) / rate seconds.
    assert elapsed >= (n - rate) / rate, elapsed
    assert elapsed < n / rate + 2, elapsed
    assert metric(server, 'postern_limit_exceeded_total{limit="command_rate"}') >= n - rate
    server.wait_log(r"event=command_rate_limited session=\S+ wait_ms=\d+")


def test_search_body_reads_are_capped():
    server = make_server("max_search_body_reads = 2")
    c = logged_in(server)
    for i in range(5):
        append(c, f"Subject: m{i}\r\n\r\nneedle {i}\r\n".encode())
    c.expect_ok("SELECT INBOX")
    # One character: no trigram, so the index cannot answer and bodies
    # are read.
    _, tagged = c.command('SEARCH BODY "4"')
    assert " NO [LIMIT] SEARCH would read more than 2 messages" in tagged, tagged
    # Once indexed (`postern index` returns when nothing is pending), the
    # full-text index answers this one without reading a file.
    r = subprocess.run([harness.BIN, "index", "-c", server.config, "alice"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    untagged, _ = c.expect_ok('SEARCH BODY "needle 4"')
    assert untagged == ["* SEARCH 5"], untagged
    untagged, _ = c.expect_ok("SEARCH UNSEEN")     # flags only: no file read
    assert untagged == ["* SEARCH 1 2 3 4 5"], untagged
    untagged, _ = c.expect_ok('SEARCH 1:2 BODY "needle"')
    assert untagged == ["* SEARCH 1 2"], untagged
    assert metric(server, 'postern_limit_exceeded_total{limit="search_body_reads"}') == 1
