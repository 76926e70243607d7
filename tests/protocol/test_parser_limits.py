"""The parser against a live server: commands split into single bytes,
many commands in one packet, overlong lines and literals, and malformed
input. Each error is a tagged BAD and the connection goes on."""
import socket
import time

from harness import Server


def plain_client(server):
    c = server.connect("plain")
    c.read_greeting()
    return c


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\nmax_line_length = 2048")


def test_command_one_byte_at_a_time():
    server = make_server()
    c = plain_client(server)
    for b in b'a1 LOGIN "alice" {10}\r\n':
        c.send(bytes([b]))
        time.sleep(0.001)
    assert c.read_line().startswith("+ ")
    for b in b"wonderland\r\n":
        c.send(bytes([b]))
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 OK"), tagged


def test_ten_commands_in_one_packet():
    server = make_server()
    c = plain_client(server)
    c.send("".join(f"n{i} NOOP\r\n" for i in range(10)))
    for i in range(10):
        _, tagged = c.read_until_tagged(f"n{i}")
        assert tagged.startswith(f"n{i} OK"), tagged


def test_overlong_line_gets_bad_and_connection_survives():
    server = make_server()
    c = plain_client(server)
    c.send(b"long NOOP " + b"x" * 5000 + b"\r\n")
    _, tagged = c.read_until_tagged("long")
    assert tagged.startswith("long BAD"), tagged
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_literal_too_large_before_login():
    server = make_server()
    c = plain_client(server)
    c.send(b"big LOGIN {100000}\r\n")
    _, tagged = c.read_until_tagged("big")
    assert tagged.startswith("big BAD [TOOBIG]"), tagged
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_non_synchronizing_literal_too_large_is_skipped():
    server = make_server()
    c = plain_client(server)
    c.send(b"big LOGIN alice {4000+}\r\n" + b"y" * 4000 + b"\r\n")
    _, tagged = c.read_until_tagged("big")
    assert tagged.startswith("big BAD"), tagged
    assert "TOOBIG" in tagged, tagged
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_huge_literal_length_does_not_overflow():
    server = make_server()
    c = plain_client(server)
    c.send(b"h1 LOGIN {4294967296}\r\n")
    _, tagged = c.read_until_tagged("h1")
    assert " BAD " in tagged, tagged
    c.send(b"h2 LOGIN {99999999999999999999999}\r\n")
    line = c.read_line()
    assert line.startswith("h2 BAD") or line.startswith("* BYE"), line


def test_malformed_input():
    server = make_server()
    c = plain_client(server)
    cases = [
        b'q1 LOGIN "unterminated\r\n',
        b"q2 ID ((((\r\n",
        b"q3 ID (\"a\" \"b\"))\r\n",
        b'q4 LOGIN "bad\\escape" x\r\n',
        b"q5 NOOP\rX\r\n",
        b"q6 LOGIN a\x00b c\r\n",
        b"q7 ID (" + b"(" * 200 + b")" * 200 + b")\r\n",
    ]
    for raw in cases:
        tag = raw.split(b" ")[0].decode()
        c.send(raw)
        _, tagged = c.read_until_tagged(tag)
        assert tagged.startswith(tag + " BAD"), (raw, tagged)
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_empty_lines_and_bad_tags():
    server = make_server()
    c = plain_client(server)
    c.send(b"\r\n\r\n")
    c.send(b"+tag NOOP\r\n")
    line = c.read_line()
    assert line.startswith("* BAD") or line.startswith("+tag BAD"), line
    c.send(b"t" * 300 + b" NOOP\r\n")
    line = c.read_line()
    assert " BAD " in line, line
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_login_timeout_closes_idle_connection():
    server = Server(listeners=(("plain", "none"),), extra="login_timeout = 1")
    c = plain_client(server)
    line = c.read_line()
    assert line.startswith("* BYE"), line
    assert c.is_closed()


def test_client_disconnect_mid_literal():
    server = make_server()
    c = plain_client(server)
    c.send(b"a LOGIN {10}\r\n")
    c.read_line()
    c.send(b"abc")
    c.close()
    time.sleep(0.2)
    d = plain_client(server)
    _, tagged = d.command("NOOP")
    assert " OK " in tagged


def test_silent_tls_client_is_dropped_after_login_timeout():
    import socket
    server = Server(listeners=(("imaps", "implicit"),), extra="login_timeout = 1")
    s = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=5)
    start = time.monotonic()
    assert s.recv(100) == b""  # closed by the server, nothing said in clear
    assert time.monotonic() - start < 4
    server.wait_log("tls_failed: handshake timeout")
