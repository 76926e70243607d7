"""BINARY (RFC 3516, part of IMAP4rev2): FETCH BINARY[part], BINARY.PEEK,
BINARY.SIZE and partials against parts in base64, quoted-printable, 7bit
and binary, compared with the decoded bytes; literal8 (~{n}) exactly when
the data holds NUL; NO [UNKNOWN-CTE] for an encoding that can't be
decoded; \\Seen as with BODY[]; and APPEND of a message sent as literal8."""
import base64
import quopri
import re

from harness import Server, session


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def append(c, body, literal="{%d+}"):
    c.send(b"ap APPEND INBOX " + (literal % len(body)).encode() + b"\r\n" + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    return tagged


def raw_line(c):
    while b"\r\n" not in c.buf:
        chunk = c.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; unread: %r" % c.buf)
        c.buf += chunk
    line, c.buf = c.buf.split(b"\r\n", 1)
    return line


def raw_exact(c, n):
    while len(c.buf) < n:
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed in a literal")
        c.buf += chunk
    data, c.buf = c.buf[:n], c.buf[n:]
    return data


def command(c, text):
    """Sends a command; returns (responses, tagged). Each response is a list
    of (line text, literal kind, literal bytes) pieces: kind is "{" or "~"."""
    tag = c.next_tag()
    c.send(f"{tag} {text}\r\n")
    responses = []
    while True:
        line = raw_line(c)
        if line.startswith(tag.encode() + b" "):
            return responses, line.decode()
        pieces = []
        while True:
            m = re.search(rb"(~?)\{(\d+)\}$", line)
            if not m:
                pieces.append((line, None, None))
                break
            data = raw_exact(c, int(m.group(2)))
            pieces.append((line, "~" if m.group(1) else "{", data))
            line = raw_line(c)
        responses.append(pieces)


def items(pieces):
    """{name: (kind, bytes)} of the literal items of one FETCH response,
    and the response text with literals left out."""
    found, text = {}, b""
    for line, kind, data in pieces:
        text += line
        if kind is None:
            continue
        m = re.search(rb"([A-Z0-9.]+\[[0-9.]*\](?:<\d+>)?) ~?\{\d+\}$", line)
        found[m.group(1).decode()] = (kind, data)
    return found, text.decode("utf-8", "replace")


PDF = bytes(range(256)) * 3 + b"\0\0end"
TEXT = "Grüße aus Köln — ÄPFEL und Birnen = gut.\r\nZweite Zeile.\r\n".encode()
PLAIN = b"Just text.\r\nSecond line.\r\n"

MSG = (
    b"From: a@example.org\r\n"
    b"Subject: binary parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"xx\"\r\n"
    b"\r\n"
    b"--xx\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n" + quopri.encodestring(TEXT).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + b"\r\n"
    b"--xx\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Transfer-Encoding: BASE64\r\n"
    b"\r\n" + base64.encodebytes(PDF).replace(b"\n", b"\r\n") + b"\r\n"
    b"--xx\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n" + PLAIN + b"\r\n"
    b"--xx\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 f\r\n`\r\nend\r\n"
    b"\r\n--xx--\r\n"
)

SINGLE = (
    b"From: b@example.org\r\n"
    b"Subject: single base64\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes(TEXT).replace(b"\n", b"\r\n")
)


def test_capability_advertised():
    c = session(make_server())
    assert "BINARY" in c.capabilities()


def test_decoded_parts_and_sizes():
    c = session(make_server())
    assert " OK " in append(c, MSG)
    c.expect_ok("SELECT INBOX")
    responses, tagged = command(c, "FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] "
                                   "BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])")
    assert " OK " in tagged, tagged
    assert len(responses) == 1, responses
    found, text = items(responses[0])
    assert found["BINARY[1]"] == ("{", TEXT), found["BINARY[1]"]
    # The PDF holds NUL bytes: literal8 (RFC 3516 4.3).
    assert found["BINARY[2]"] == ("~", PDF)
    assert found["BINARY[3]"] == ("{", PLAIN)
    assert f"BINARY.SIZE[1] {len(TEXT)}" in text, text
    assert f"BINARY.SIZE[2] {len(PDF)}" in text, text
    assert f"BINARY.SIZE[3] {len(PLAIN)}" in text, text
    # A part that does not exist.
    responses, tagged = command(c, "FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])")
    assert " OK " in tagged, tagged
    assert "BINARY[9] NIL" in responses[0][0][0].decode() and "BINARY.SIZE[9] 0" in responses[0][0][0].decode()


def test_partial_and_literal8_window():
    c = session(make_server())
    append(c, MSG)
    c.expect_ok("SELECT INBOX")
    responses, _ = command(c, "FETCH 1 (BINARY.PEEK[2]<0.10> BINARY.PEEK[2]<700.100> "
                              "BINARY.PEEK[2]<1.5> BINARY.PEEK[1]<6.4> BINARY.PEEK[2]<99999.5>)")
    found, _ = items(responses[0])
    assert found["BINARY[2]<0>"] == ("~", PDF[:10])          # starts with NUL
    assert found["BINARY[2]<700>"] == ("~", PDF[700:800])
    assert found["BINARY[2]<1>"] == ("{", PDF[1:6])           # no NUL in this window
    assert found["BINARY[1]<6>"] == ("{", TEXT[6:10])
    assert found["BINARY[2]<99999>"] == ("{", b"")


def test_whole_message_of_a_single_part():
    c = session(make_server())
    append(c, SINGLE)
    c.expect_ok("SELECT INBOX")
    responses, _ = command(c, "FETCH 1 (BINARY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[])")
    found, text = items(responses[0])
    header = SINGLE[:SINGLE.index(b"\r\n\r\n") + 4]
    assert found["BINARY[1]"] == ("{", TEXT)
    assert found["BINARY[]"] == ("{", header + TEXT)
    assert f"BINARY.SIZE[] {len(header) + len(TEXT)}" in text, text


def test_unknown_cte():
    c = session(make_server())
    append(c, MSG)
    append(c, SINGLE)
    c.expect_ok("SELECT INBOX")
    responses, tagged = command(c, "FETCH 1 BINARY.PEEK[4]")
    assert re.match(r"t\d+ NO \[UNKNOWN-CTE\]", tagged), tagged
    assert responses == [], responses
    # BODY[] of that part still works, and so does BINARY of the others.
    _, tagged = command(c, "FETCH 1 BODY.PEEK[4]")
    assert " OK " in tagged, tagged
    # In a range, the messages before the bad one are answered whole.
    responses, tagged = command(c, "FETCH 2:1 BINARY.SIZE[4]")
    assert " NO [UNKNOWN-CTE]" in tagged, tagged


def test_seen_flag():
    c = session(make_server())
    append(c, MSG)
    c.expect_ok("SELECT INBOX")
    command(c, "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2])")
    untagged, _ = c.command("FETCH 1 FLAGS")
    assert "\\Seen" not in untagged[0], untagged
    responses, _ = command(c, "FETCH 1 BINARY[3]")
    _, text = items(responses[0])
    assert "\\Seen" in text, text
    # EXAMINE: read-only, nothing set.
    append(c, SINGLE)
    c.expect_ok("EXAMINE INBOX")
    command(c, "FETCH 2 BINARY[1]")
    untagged, _ = c.command("FETCH 2 FLAGS")
    assert "\\Seen" not in untagged[0], untagged


def test_append_literal8():
    c = session(make_server())
    body = b"From: c@example.org\r\nSubject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\nA\0B\r\n"
    c.send(b"a1 APPEND INBOX ~{%d}\r\n" % len(body))
    assert raw_line(c).startswith(b"+ ")
    c.send(body + b"\r\n")
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 OK"), tagged
    assert " OK " in append(c, body, "~{%d+}")
    c.expect_ok("SELECT INBOX")
    responses, _ = command(c, "FETCH 1:2 (BINARY.PEEK[1] BINARY.PEEK[])")
    for pieces in responses:
        found, _ = items(pieces)
        assert found["BINARY[1]"] == ("~", b"A\0B\r\n"), found
        assert found["BINARY[]"] == ("~", body), found
    # BODY[] keeps sending NUL as 0x80 in a plain literal.
    responses, _ = command(c, "FETCH 1 BODY.PEEK[]")
    assert responses[0][0][1] == "{" and responses[0][0][2] == body.replace(b"\0", b"\x80")


def test_errors():
    c = session(make_server())
    append(c, MSG)
    c.expect_ok("SELECT INBOX")
    for cmd, text in {
        "FETCH 1 BINARY[HEADER]": "part numbers only",
        "FETCH 1 BINARY[1.MIME]": "part numbers only",
        "FETCH 1 BINARY.SIZE[1]<0.5>": "Unexpected text",
        "FETCH 1 BINARY[1]<0.0>": "octets greater than 0",
    }.items():
        _, tagged = c.command(cmd)
        assert " BAD " in tagged and text in tagged, (cmd, tagged)
