"""bench/imapload, the load generator: a short mixed run against a real
postern prints its table, and a server that answers BAD or hangs up makes
it fail loudly (non-zero exit, a message naming the failure) instead of
reporting numbers."""
import os
import socket
import subprocess
import threading

from harness import ROOT, Server, Skip

IMAPLOAD = os.path.join(ROOT, "build", "imapload")


def build_imapload():
    proc = subprocess.run(["make", "-s", "build/imapload"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return IMAPLOAD


def run(args, timeout=60):
    return subprocess.run([build_imapload(), "-q"] + args, capture_output=True, text=True, timeout=timeout)


def skip_unless_commands(server, commands):
    """Skips when the server does not know one of the commands (not built yet)."""
    c = server.connect("plain")
    c.read_greeting()
    c.login("alice")
    c.expect_ok("SELECT INBOX")
    for command in commands:
        _, tagged = c.command(command)
        if tagged.split()[1] == "BAD" and "unknown command" in tagged.lower():
            c.close()
            raise Skip(f"postern does not have {command.split()[0]} yet: {tagged}")
    c.close()


def test_mixed_two_clients_prints_table():
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\n",
                    users={"load1": "pw", "load2": "pw", "alice": "wonderland"})
    skip_unless_commands(server, ["FETCH 1:* (FLAGS)"])
    proc = run(["-w", "mixed", "--plain", "-p", str(server.ports["plain"]), "-u", "load%d", "-P", "pw",
                "-c", "2", "-d", "2", "-m", "5"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "workload=mixed clients=2" in out, out
    for name in ("LOGIN", "SELECT", "FETCH", "APPEND", "EXPUNGE", "LOGOUT"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), (name, out)
    assert "RESULT mixed cmd=ALL" in out, out


class FakeServer:
    """Greets, then answers the first command as told: `bad` sends a tagged
    BAD, `drop` closes the connection."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(20)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] fake ready\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            tag = data.split(b" ", 1)[0]
            if self.behaviour == "bad":
                conn.sendall(tag + b" BAD Fake refuses this command\r\n")
                try:
                    conn.recv(4096)
                except OSError:
                    pass
            # "drop": close without an answer

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


def test_bad_answer_fails_the_run():
    fake = FakeServer("bad")
    try:
        proc = run(["-w", "mixed", "--plain", "-p", str(fake.port), "-c", "1", "-d", "1", "--timeout", "10"])
    finally:
        fake.close()
    assert proc.returncode != 0, proc.stdout
    assert "FAILED" in proc.stderr and "LOGIN" in proc.stderr, proc.stderr
    assert "BAD Fake refuses this command" in proc.stderr, proc.stderr
    assert "RESULT" not in proc.stdout, proc.stdout


def test_dropped_connection_fails_the_run():
    fake = FakeServer("drop")
    try:
        proc = run(["-w", "mixed", "--plain", "-p", str(fake.port), "-c", "1", "-d", "1", "--timeout", "10"])
    finally:
        fake.close()
    assert proc.returncode != 0, proc.stdout
    assert "FAILED" in proc.stderr and "closed the connection" in proc.stderr, proc.stderr
    assert "RESULT" not in proc.stdout, proc.stdout


def test_bigbox_checks_counts_and_no_search_leaves_searches_out():
    """bigbox populates, then checks EXISTS, the FETCH count and both search
    results against the generator; --no-search (the 1,000,000-message run)
    measures STATUS, SELECT and FETCH only."""
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\n",
                    users={"box": "pw", "alice": "wonderland"})
    args = ["-w", "bigbox", "--plain", "-p", str(server.ports["plain"]), "-u", "box", "-P", "pw", "-m", "300"]
    proc = run(args + ["--no-search"], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT bigbox_populate messages=300" in proc.stdout, proc.stdout
    for cmd in ("STATUS", "SELECT", "FETCH_1:*"):
        assert f"RESULT bigbox cmd={cmd} " in proc.stdout, proc.stdout
    assert "SEARCH" not in proc.stdout, proc.stdout
    proc = run(args, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bigbox_populate" not in proc.stdout, proc.stdout   # already full
    for cmd in ("SEARCH_FROM", "SEARCH_TEXT"):
        assert f"RESULT bigbox cmd={cmd} " in proc.stdout, proc.stdout


def test_bigbox_condstore_resync_toggles_one_percent_and_checks_the_count():
    """The resync step changes 1% of the messages (\\Answered on 20 runs of
    messages, off again on the next run) and checks that UID FETCH
    CHANGEDSINCE brings exactly those back."""
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\n",
                    users={"box": "pw", "alice": "wonderland"})
    args = ["-w", "bigbox", "--plain", "-p", str(server.ports["plain"]), "-u", "box", "-P", "pw", "-m", "2000",
            "--no-search"]

    def answered():
        c = server.connect("plain")
        c.read_greeting()
        c.login("box", "pw")
        c.expect_ok("SELECT INBOX")
        untagged, _ = c.expect_ok("SEARCH ANSWERED")
        c.close()
        return [int(n) for n in untagged[0].split()[2:]]

    for expected in ([1 + 100 * i for i in range(20)], []):
        proc = run(args, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "RESULT bigbox cmd=CONDSTORE_RESYNC " in proc.stdout, proc.stdout
        assert answered() == expected
