"""Logs: every line is `key=value` (values quoted where needed), one
`disconnect` line per connection with duration, bytes, TLS version, user
and reason, slow commands logged over slow_command_threshold with their
time, and log_target = syslog accepted (lines leave stderr)."""
import re
import subprocess
import urllib.request

from harness import BIN, Server, free_port

# ts=... level=... proc=... pid=... event=... then key=value pairs; a value
# is bare (no space, quote, '=' or backslash) or quoted with \" \\ \xNN.
VALUE = r'(?:"(?:[^"\\]|\\["\\]|\\x[0-9a-f]{2})*"|[^\s"=\\]+)'
LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error|fatal) '
                  r'proc=(master|worker\d+) pid=\d+ event=' + VALUE +
                  r'(?: [a-z_]+=' + VALUE + r')*$')


def mix(server):
    c = server.connect("imaps")
    c.read_greeting()
    c.login()
    c.login("bob", 'pass"word\\with spaces=')        # odd text from a client, quoted in the log
    c.command("SELECT \"Caf\u00e9 \\\"x\\\"\"")
    c.command("x" * 200)
    c.expect_ok("LOGOUT")
    assert c.is_closed()
    c = server.connect("imap")
    c.read_greeting()
    c.command("LOGIN \"user\r\nevent=forged\" pw")
    c.close()


def test_every_line_is_key_value():
    server = Server(lmtp=True)
    mix(server)
    lmtp = server.lmtp()
    lmtp.sendmail("a@example.org", ["alice@example.org"], b"Subject: x\r\n\r\nx\r\n")
    lmtp.quit()
    server.wait_log(r"event=disconnect session=L")
    server.stop(check=True)
    lines = server.read_log().splitlines()
    assert len(lines) > 20
    bad = [l for l in lines if not LINE.match(l)]
    assert not bad, "\n".join(bad[:10])
    assert not any(l.startswith("event=forged") for l in lines)


def test_one_disconnect_line_with_duration_bytes_tls_user_reason():
    server = Server()
    c = server.connect("imaps")
    c.read_greeting()
    c.login()
    c.expect_ok("LOGOUT")
    assert c.is_closed()
    server.wait_log("event=disconnect")
    lines = [l for l in server.read_log().splitlines() if "event=disconnect" in l]
    assert len(lines) == 1, lines
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', lines[0]))
    assert fields["user"] == "alice"
    assert fields["reason"] == "logout"
    assert fields["tls"] == "TLSv1.3"
    assert int(fields["duration_ms"]) >= 0
    assert int(fields["bytes_in"]) > 0 and int(fields["bytes_out"]) > 0
    assert fields["session"] and fields["ip"] == "127.0.0.1"


def run_commands(threshold):
    port = free_port()
    server = Server(extra=f"slow_command_threshold = {threshold}\n[metrics]\naddress = 127.0.0.1:{port}")
    c = server.connect("imaps")
    c.read_greeting()
    c.login()          # hashing a password takes well over a millisecond
    c.expect_ok("NOOP")
    c.expect_ok("LOGOUT")
    assert c.is_closed()
    server.wait_log("event=disconnect")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        slow = [l for l in r.read().decode().splitlines() if l.startswith("postern_slow_commands_total ")]
    return server, float(slow[0].split()[1])


def test_slow_commands_logged_over_threshold_with_their_time():
    server, count = run_commands(1)
    lines = [l for l in server.read_log().splitlines() if "event=slow_command " in l]
    login = [l for l in lines if "command=LOGIN" in l]
    assert len(login) == 1, lines
    assert re.search(r"level=warn .* user=alice command=LOGIN result=OK ms=\d+$", login[0]), login[0]
    assert int(login[0].rsplit("ms=", 1)[1]) >= 1
    assert count == len(lines) >= 1


def test_slow_command_threshold_zero_is_off():
    server, count = run_commands(0)
    assert "event=slow_command " not in server.read_log()
    assert count == 0


def test_log_target_syslog_is_accepted():
    server = Server(start=False, extra="log_target = syslog")
    out = subprocess.run([BIN, "config", "check", "-c", server.config], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    server.start(ready="port")
    c = server.connect("imaps")
    c.read_greeting()
    assert " OK " in c.login()[1]
    c.expect_ok("LOGOUT")
    server.stop(check=True)
    # Every event went to syslog, none to stderr.
    assert "event=" not in server.read_log(), server.read_log()
