"""FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2): every data item against
the MIME corpus in tests/data/mime (ENVELOPE, BODY and BODYSTRUCTURE
compared with Dovecot's answers in golden/), sections of nested messages,
HEADER.FIELDS[.NOT], partial fetches, \\Seen, EXAMINE, UID FETCH, a message
expunged by another session, errors, and a 50 MB message that streams
without the server holding it in memory."""
import hashlib
import os
import re
import subprocess
import time

from harness import Server, session

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mime")


def make_server(**kw):
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes", **kw)


def append(c, body, mailbox="INBOX", flags="", date=""):
    extra = (f" ({flags})" if flags else "") + (f' "{date}"' if date else "")
    c.send(f"ap APPEND {mailbox}{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    return tagged


def crlf(data):
    """The message as FETCH sends it: every bare LF as CRLF, NUL as 0x80."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data).replace(b"\0", b"\x80")


# ---- reading responses with literals -------------------------------------

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


def read_response(c):
    """One response with its literals inlined as {n}CRLF + bytes."""
    line = raw_line(c)
    out = line
    while True:
        m = re.search(rb"\{(\d+)\}$", line)
        if not m:
            return out
        out += b"\r\n" + raw_exact(c, int(m.group(1)))
        line = raw_line(c)
        out += line


def fetch(c, text):
    """Sends a command; returns ([(seq, {item: value})], other untagged, tagged)."""
    tag = c.next_tag()
    c.send(f"{tag} {text}\r\n")
    fetches, other = [], []
    while True:
        resp = read_response(c)
        if resp.startswith(tag.encode() + b" "):
            return fetches, other, resp.decode("utf-8", "replace")
        m = re.match(rb"\* (\d+) FETCH \(", resp)
        if m:
            fetches.append((int(m.group(1)), parse_items(resp, m.end())))
        else:
            other.append(resp.decode("utf-8", "replace"))


class Parser:
    def __init__(self, data, pos):
        self.d, self.p = data, pos

    def value(self):
        """A value: bytes for strings, None for NIL, raw bytes for lists."""
        d = self.d
        if d[self.p:self.p + 1] == b'"':
            out = bytearray()
            self.p += 1
            while d[self.p:self.p + 1] != b'"':
                if d[self.p:self.p + 1] == b"\\":
                    self.p += 1
                out += d[self.p:self.p + 1]
                self.p += 1
            self.p += 1
            return bytes(out)
        if d[self.p:self.p + 1] == b"{":
            m = re.compile(rb"\{(\d+)\}\r\n").match(d, self.p)
            n = int(m.group(1))
            self.p = m.end() + n
            return d[m.end():m.end() + n]
        if d[self.p:self.p + 1] == b"(":
            start, depth = self.p, 0
            while True:
                ch = d[self.p:self.p + 1]
                if ch == b'"':
                    self.value()
                    continue
                if ch == b"{":
                    self.value()
                    continue
                self.p += 1
                if ch == b"(":
                    depth += 1
                elif ch == b")":
                    depth -= 1
                    if depth == 0:
                        return d[start:self.p]
        m = re.compile(rb"[^ ()]+").match(d, self.p)
        self.p = m.end()
        return None if m.group(0) == b"NIL" else m.group(0)

    def name(self):
        """An item name, which may hold a bracketed section with spaces."""
        m = re.compile(rb"[A-Z0-9.]+(\[[^\]]*\])?(<\d+>)?").match(self.d, self.p)
        assert m, self.d[self.p:self.p + 80]
        self.p = m.end()
        return m.group(0).decode()


def parse_items(data, pos):
    p = Parser(data, pos)
    items = {}
    while data[p.p:p.p + 1] != b")":
        name = p.name()
        assert data[p.p:p.p + 1] == b" ", data[p.p:p.p + 40]
        p.p += 1
        assert name not in items, f"{name} twice in one response"
        items[name] = p.value()
        if data[p.p:p.p + 1] == b" ":
            p.p += 1
    assert p.p == len(data) - 1, data[p.p:]
    return items


def canon(value):
    """An IMAP value with every string written quoted, as tests/unit/test_mime.c does."""
    out = []
    p = Parser(value, 0)
    need_space = False
    d = value
    while p.p < len(d):
        ch = d[p.p:p.p + 1]
        if ch in (b" ", b"\r", b"\n"):
            p.p += 1
            continue
        if ch == b")":
            out.append(b")")
            need_space = True
            p.p += 1
            continue
        if need_space:
            out.append(b" ")
        if ch == b"(":
            out.append(b"(")
            need_space = False
            p.p += 1
            continue
        need_space = True
        if ch in (b'"', b"{"):
            s = p.value()
            out.append(b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        else:
            m = re.compile(rb"[^ ()]+").match(d, p.p)
            p.p = m.end()
            out.append(m.group(0))
    return b"".join(out)


def golden(name):
    with open(os.path.join(CORPUS, "golden", name + ".txt"), "rb") as f:
        data = f.read()
    items, pos = {}, 0
    while data.startswith(b"== ", pos):
        eol = data.index(b"\n", pos)
        item, n = data[pos + 3:eol].decode().split()
        items[item] = data[eol + 1:eol + 1 + int(n)]
        pos = eol + 1 + int(n) + 1
    return items


# Deliberate differences from Dovecot, the ones tests/unit/test_mime.c lists:
# those items are not compared here.
DIFFERENT = {
    ("bad-content-type", "BODYSTRUCTURE"), ("bad-content-type", "BODY"),
    ("bad-addresses", "ENVELOPE"), ("simple-crlf", "BODYSTRUCTURE"), ("simple-crlf", "BODY"),
    ("multipart-no-boundary", "BODY[1.MIME]"), ("wrong-boundary", "BODY[1.MIME]"),
}


def corpus_names():
    return sorted(n[:-4] for n in os.listdir(CORPUS) if n.endswith(".eml"))


def read_eml(name):
    with open(os.path.join(CORPUS, name + ".eml"), "rb") as f:
        return f.read()


def load_corpus(c):
    """Appends every corpus message; returns [(name, raw bytes)] in UID order."""
    loaded = []
    for name in corpus_names():
        data = read_eml(name)
        tagged = append(c, data)
        assert " OK " in tagged, (name, tagged)
        loaded.append((name, data))
    c.expect_ok("SELECT INBOX")
    return loaded


# ---- the tests ----------------------------------------------------------

def test_structure_items_match_golden_corpus():
    c = session(make_server())
    loaded = load_corpus(c)
    compared = 0
    for seq, (name, data) in enumerate(loaded, 1):
        gold = golden(name)
        fetches, _, tagged = fetch(c, f"FETCH {seq} (ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[1.MIME])")
        assert " OK " in tagged, tagged
        assert len(fetches) == 1 and fetches[0][0] == seq
        items = fetches[0][1]
        for item, want in gold.items():
            if (name, item) in DIFFERENT:
                continue
            got = items[item]
            if item == "BODY[1.MIME]":
                assert got == want.split(b"\r\n", 1)[1] if want.startswith(b"{") else got == want, \
                    (name, got, want)
            else:
                assert canon(got) == canon(want), (name, item, got, want)
            compared += 1
    assert compared > 80, compared


def test_whole_message_items_and_sizes():
    """BODY[], HEADER + TEXT, RFC822 forms and RFC822.SIZE agree with the
    bytes, bare LF converted (RFC 3501 2.2)."""
    c = session(make_server())
    loaded = load_corpus(c)
    for seq, (name, data) in enumerate(loaded, 1):
        fetches, _, tagged = fetch(c, f"FETCH {seq} (RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] "
                                      f"BODY.PEEK[TEXT] RFC822.HEADER)")
        assert " OK " in tagged, tagged
        items = fetches[0][1]
        whole = crlf(data)
        assert items["BODY[]"] == whole, name
        assert int(items["RFC822.SIZE"]) == len(whole), name
        assert items["BODY[HEADER]"] + items["BODY[TEXT]"] == whole, name
        assert items["RFC822.HEADER"] == items["BODY[HEADER]"], name
    # RFC822 and RFC822.TEXT, named as asked.
    fetches, _, _ = fetch(c, "FETCH 1 (RFC822 RFC822.TEXT)")
    items = fetches[0][1]
    assert items["RFC822"] == crlf(loaded[0][1])
    assert items["RFC822"].endswith(items["RFC822.TEXT"])


def test_bare_lf_message_sizes_and_partials():
    c = session(make_server())
    data = read_eml("simple-lf")
    assert b"\r\n" not in data
    append(c, data)
    c.expect_ok("SELECT INBOX")
    whole = crlf(data)
    fetches, _, _ = fetch(c, "FETCH 1 (RFC822.SIZE BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[]<10.30>)")
    items = fetches[0][1]
    assert int(items["RFC822.SIZE"]) == len(whole)
    assert items["BODY[]<10>"] == whole[10:40]
    # The body size in BODYSTRUCTURE is the size BODY[1] sends.
    size = int(re.search(rb'"7BIT" (\d+)|"7bit" (\d+)', items["BODYSTRUCTURE"], re.I).group(0).split()[1])
    assert size == len(items["BODY[1]"]), (size, len(items["BODY[1]"]))
    # A window starting between the CR and LF of a converted line end.
    cr_at = whole.index(b"\r\n")
    fetches, _, _ = fetch(c, f"FETCH 1 BODY.PEEK[]<{cr_at + 1}.3>")
    assert fetches[0][1][f"BODY[]<{cr_at + 1}>"] == whole[cr_at + 1:cr_at + 4]


NESTED = (
    b"From: outer@example.org\r\n"
    b"Subject: outer\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"o\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--o\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"part one\r\n"
    b"--o\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--o\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"From: inner@example.net\r\n"
    b"Content-Type: multipart/mixed; boundary=\"i\"\r\n"
    b"\r\n"
    b"--i\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner one\r\n"
    b"--i\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner two</p>\r\n"
    b"--i--\r\n"
    b"--o\r\n"
    b"Content-Type: multipart/mixed; boundary=\"n\"\r\n"
    b"\r\n"
    b"--n\r\n"
    b"Content-Type: image/gif\r\n"
    b"\r\n"
    b"GIF89a\r\n"
    b"--n\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: deepest\r\n"
    b"X-Thing: 1\r\n"
    b"\r\n"
    b"deep text\r\n"
    b"--n--\r\n"
    b"--o--\r\n"
)


def test_nested_sections():
    """The RFC 3501 6.4.5 example shape: parts, MIME headers, and HEADER /
    TEXT of encapsulated messages."""
    c = session(make_server())
    append(c, NESTED)
    c.expect_ok("SELECT INBOX")
    want = {
        "BODY[1]": b"part one",
        "BODY[1.MIME]": b"Content-Type: text/plain\r\n\r\n",
        "BODY[2]": b"AAEC",
        "BODY[3.HEADER]": b"Subject: inner\r\nFrom: inner@example.net\r\n"
                          b"Content-Type: multipart/mixed; boundary=\"i\"\r\n\r\n",
        "BODY[3.1]": b"inner one",
        "BODY[3.2]": b"<p>inner two</p>",
        "BODY[3.2.MIME]": b"Content-Type: text/html\r\n\r\n",
        "BODY[4.1]": b"GIF89a",
        "BODY[4.1.MIME]": b"Content-Type: image/gif\r\n\r\n",
        "BODY[4.2.HEADER]": b"Subject: deepest\r\nX-Thing: 1\r\n\r\n",
        "BODY[4.2.TEXT]": b"deep text",
        "BODY[4.2.1]": b"deep text",
        "BODY[4.2.HEADER.FIELDS (X-THING)]": b"X-Thing: 1\r\n\r\n",
        "BODY[3.HEADER.FIELDS.NOT (Content-Type From)]": b"Subject: inner\r\n\r\n",
    }
    names = " ".join(n.replace("BODY[", "BODY.PEEK[") for n in want)
    fetches, _, tagged = fetch(c, f"FETCH 1 ({names})")
    assert " OK " in tagged, tagged
    items = fetches[0][1]
    for name, value in want.items():
        assert items[name] == value, (name, items[name], value)
    # BODY[3] is the whole encapsulated message; 3.TEXT its body.
    fetches, _, _ = fetch(c, "FETCH 1 (BODY.PEEK[3] BODY.PEEK[3.TEXT] BODY.PEEK[3.MIME])")
    items = fetches[0][1]
    assert items["BODY[3]"].startswith(b"Subject: inner\r\n") and items["BODY[3]"].endswith(b"--i--")
    assert items["BODY[3]"].endswith(items["BODY[3.TEXT]"])
    assert items["BODY[3.MIME]"] == b"Content-Type: message/rfc822\r\n\r\n"
    # Sections that don't exist: NIL (HEADER/TEXT need a MESSAGE/RFC822 part).
    fetches, _, tagged = fetch(c, "FETCH 1 (BODY.PEEK[9] BODY.PEEK[1.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[3.7])")
    assert " OK " in tagged
    assert fetches[0][1] == {"BODY[9]": None, "BODY[1.HEADER]": None, "BODY[2.TEXT]": None,
                             "BODY[3.7]": None}


HEADERS = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon\r\n"
    b"  meeting\r\n"
    b"To: mooch@owatagu.siam.edu.example\r\n"
    b"Received: one\r\n"
    b"received: two\r\n"
    b"X-Odd(: yes\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def test_header_fields():
    c = session(make_server())
    append(c, HEADERS)
    append(c, b"Subject: no body and no blank line\r\n")
    c.expect_ok("SELECT INBOX")
    fetches, _, _ = fetch(c, 'FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject RECEIVED "X-Odd(")] '
                             'BODY.PEEK[HEADER.FIELDS.NOT (Received Subject date from to "X-ODD(")])')
    items = fetches[0][1]
    # Matching is case-insensitive; folded fields whole; every occurrence; the blank line.
    assert items['BODY[HEADER.FIELDS (subject RECEIVED "X-Odd(")]'] == (
        b"Subject: afternoon\r\n  meeting\r\nReceived: one\r\nreceived: two\r\nX-Odd(: yes\r\n\r\n")
    assert items['BODY[HEADER.FIELDS.NOT (Received Subject date from to "X-ODD(")]'] == b"\r\n"
    # No match at all: just the blank line. A partial applies after subsetting.
    fetches, _, _ = fetch(c, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (Nope)] BODY.PEEK[HEADER.FIELDS (To)]<4.6>)")
    items = fetches[0][1]
    assert items["BODY[HEADER.FIELDS (Nope)]"] == b"\r\n"
    assert items["BODY[HEADER.FIELDS (To)]<4>"] == b"mooch@"
    # RFC 3501 6.4.5: no blank line in a message without body and blank line.
    fetches, _, _ = fetch(c, "FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
    items = fetches[0][1]
    assert items["BODY[HEADER]"] == b"Subject: no body and no blank line\r\n"
    assert items["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: no body and no blank line\r\n"
    assert items["BODY[TEXT]"] == b""


def test_partial_fetches():
    c = session(make_server())
    append(c, HEADERS)
    c.expect_ok("SELECT INBOX")
    whole = HEADERS
    fetches, _, _ = fetch(c, f"FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[]<5.10> BODY.PEEK[]<{len(whole)}.10> "
                             f"BODY.PEEK[]<{len(whole) + 100}.1> BODY.PEEK[TEXT]<6.3>)")
    items = fetches[0][1]
    assert items["BODY[]<0>"] == whole[:10]
    assert items["BODY[]<5>"] == whole[5:15]
    # RFC 3501 6.4.5: past the end an empty string; a window past the end is cut.
    assert items[f"BODY[]<{len(whole)}>"] == b""
    assert items[f"BODY[]<{len(whole) + 100}>"] == b""
    assert items["BODY[]<0>"] == whole[:10]
    assert "BODY[]" not in items
    assert items["BODY[TEXT]<6>"] == b"Joe"
    fetches, _, _ = fetch(c, "FETCH 1 BODY.PEEK[]<0.99999999>")
    assert fetches[0][1] == {"BODY[]<0>": whole}


def test_simple_items_and_macros():
    c = session(make_server())
    append(c, HEADERS, flags="\\Flagged $Work", date="14-Jul-2024 09:30:00 +0200")
    c.expect_ok("SELECT INBOX")
    fetches, _, tagged = fetch(c, "FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)")
    assert tagged.endswith("OK FETCH completed"), tagged
    items = fetches[0][1]
    assert items["UID"] == b"1"
    # \Recent is SELECT's business (RFC 3501 2.3.2); not checked here.
    assert set(items["FLAGS"][1:-1].split()) - {b"\\Recent"} == {b"\\Flagged", b"$Work"}, items
    assert items["INTERNALDATE"] == b"14-Jul-2024 07:30:00 +0000"
    assert items["RFC822.SIZE"] == str(len(HEADERS)).encode()
    want = {"FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
            "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
            "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
    for macro, names in want.items():
        fetches, _, _ = fetch(c, f"FETCH 1 {macro}")
        assert sorted(fetches[0][1]) == sorted(names), (macro, fetches)
    fetches, _, _ = fetch(c, "FETCH 1 ENVELOPE")
    env = fetches[0][1]["ENVELOPE"]
    assert env.startswith(b'("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon  meeting" (("Fred Foobar" NIL "foobar"'), env


def test_seen_flag():
    server = make_server()
    c = session(server)
    for _ in range(4):
        append(c, HEADERS)
    c.expect_ok("SELECT INBOX")
    # PEEK and RFC822.HEADER leave \Seen alone.
    fetches, _, _ = fetch(c, "FETCH 1:4 (BODY.PEEK[] RFC822.HEADER BODY.PEEK[TEXT]<0.5>)")
    assert all("FLAGS" not in items for _, items in fetches), fetches
    fetches, _, _ = fetch(c, "FETCH 1:4 FLAGS")
    assert all(b"\\Seen" not in items["FLAGS"] for _, items in fetches)
    # BODY[], RFC822 and RFC822.TEXT set it, and the response says so.
    for seq, item in ((1, "BODY[HEADER]"), (2, "RFC822"), (3, "RFC822.TEXT")):
        fetches, _, _ = fetch(c, f"FETCH {seq} {item}")
        # One response holding both; no second FETCH from the flag update.
        assert len(fetches) == 1 and b"\\Seen" in fetches[0][1]["FLAGS"], (item, fetches)
    # Already seen: no FLAGS unless asked.
    fetches, _, _ = fetch(c, "FETCH 1 BODY[TEXT]")
    assert list(fetches[0][1]) == ["BODY[TEXT]"], fetches
    fetches, _, _ = fetch(c, "FETCH 1:4 FLAGS")
    seen = [b"\\Seen" in items["FLAGS"] for _, items in fetches]
    assert seen == [True, True, True, False], fetches
    # Another session sees the change.
    d = session(server)
    d.expect_ok("EXAMINE INBOX")
    fetches, _, _ = fetch(d, "FETCH 1:4 FLAGS")
    assert [b"\\Seen" in items["FLAGS"] for _, items in fetches] == [True, True, True, False]
    # EXAMINE is read-only: BODY[] does not set \Seen (RFC 3501 6.3.2).
    fetches, _, _ = fetch(d, "FETCH 4 BODY[]")
    assert "FLAGS" not in fetches[0][1]
    fetches, _, _ = fetch(d, "FETCH 4 FLAGS")
    assert b"\\Seen" not in fetches[0][1]["FLAGS"]


def test_uid_fetch():
    c = session(make_server())
    for _ in range(5):
        append(c, HEADERS)
    c.expect_ok("SELECT INBOX")
    c.expect_ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.expect_ok("EXPUNGE")
    fetches, _, tagged = fetch(c, "UID FETCH 2:4 FLAGS")
    assert tagged.endswith("OK UID FETCH completed"), tagged
    # RFC 3501 6.4.8: UID in every response, though not asked for.
    assert [(seq, items["UID"]) for seq, items in fetches] == [(2, b"3"), (3, b"4")], fetches
    fetches, _, _ = fetch(c, "UID FETCH 4:* (UID RFC822.SIZE)")
    assert [items["UID"] for _, items in fetches] == [b"4", b"5"]
    fetches, _, tagged = fetch(c, "UID FETCH 100:200 FLAGS")
    assert fetches == [] and " OK " in tagged
    # UID FETCH with a body: \Seen and the UID.
    fetches, _, _ = fetch(c, "UID FETCH 5 BODY[TEXT]<0.5>")
    assert fetches[0][1]["UID"] == b"5" and b"\\Seen" in fetches[0][1]["FLAGS"]


def test_errors():
    server = make_server()
    c = session(server)
    append(c, HEADERS)
    _, tagged = c.command("FETCH 1 FLAGS")
    assert " BAD " in tagged and "state" in tagged, tagged
    c.expect_ok("SELECT INBOX")
    bad = {
        "FETCH": "sequence set and data items",
        "FETCH 1": "sequence set and data items",
        "FETCH 1 (FLAGS) (NOPE 1)": "Unknown FETCH modifier",
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1) x": "Unexpected arguments",
        "FETCH 1 NOPE": "Unknown FETCH data item",
        "FETCH 1 (FLAGS ALL)": "must be used alone",
        "FETCH 1 ()": "Empty list",
        "FETCH 1 BODY[1.]": "ends with '.'",
        "FETCH 1 BODY[MIME]": "MIME needs a part number",
        "FETCH 1 BODY[]<5>": "Partial must be",
        "FETCH 1 BODY[HEADER.FIELDS]": "parenthesised list",
        "FETCH 1 BINARY[HEADER]": "part numbers only",
        "FETCH 2 FLAGS": "Invalid message sequence number",
        "FETCH 0 FLAGS": "Invalid sequence set",
        "FETCH x FLAGS": "Invalid sequence set",
        "FETCH 1:5 FLAGS": "Invalid message sequence number",
        'FETCH 1 "FLAGS"': "atom or a parenthesised list",
    }
    for cmd, text in bad.items():
        _, tagged = c.command(cmd)
        assert " BAD " in tagged and text in tagged, (cmd, tagged)
    # The session goes on.
    fetches, _, tagged = fetch(c, "FETCH 1 UID")
    assert fetches == [(1, {"UID": b"1"})], fetches


def test_expunged_by_another_session():
    """RFC 9051 7.4.1: no EXPUNGE during FETCH; the message another session
    expunged is skipped and the command ends NO [EXPUNGEISSUED] (RFC 5530)."""
    server = make_server()
    a = session(server)
    for _ in range(3):
        append(a, HEADERS)
    a.expect_ok("SELECT INBOX")
    b = session(server)
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    fetches, other, tagged = fetch(a, "FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert [seq for seq, _ in fetches] == [1, 3], fetches
    assert not any("EXPUNGE" in l for l in other), other
    assert "NO [EXPUNGEISSUED]" in tagged, tagged
    untagged, _ = a.expect_ok("NOOP")
    assert "* 2 EXPUNGE" in untagged, untagged


def worker_rss_kb(server, field="VmRSS"):
    pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                          text=True).stdout.split()
    assert len(pids) == 1, pids
    with open(f"/proc/{pids[0]}/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


def big_message(size):
    header = b"From: big@example.org\r\nSubject: fifty megabytes\r\nContent-Type: text/plain\r\n\r\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789\r\n"
    body = line * ((size - len(header)) // len(line) + 1)
    return (header + body)[:size - 2] + b"\r\n"


def test_large_message_streams():
    # ASan keeps freed memory in a quarantine (256 MB by default), which
    # would count every freed output buffer in VmRSS: keep it small here.
    saved = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=4"
    try:
        server = make_server(workers=1)
    finally:
        if saved is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = saved
    size = 50 * 1024 * 1024
    data = big_message(size)
    a = session(server)
    tagged = append(a, data)
    assert " OK " in tagged, tagged
    a.close()
    time.sleep(0.5)
    c = session(server)
    c.expect_ok("SELECT INBOX")
    before = worker_rss_kb(server)
    tag = c.next_tag()
    # A pipelined NOOP must wait for the FETCH to finish.
    c.send(f"{tag} FETCH 1 (RFC822.SIZE BODY[])\r\nn1 NOOP\r\n")
    head = raw_line(c)
    m = re.match(rb"\* 1 FETCH \(RFC822\.SIZE (\d+) BODY\[\] \{(\d+)\}$", head)
    assert m, head
    assert int(m.group(1)) == size and int(m.group(2)) == size
    digest = hashlib.sha256()
    got, peak = 0, before
    c.sock.settimeout(30)
    while got < size:
        take = min(size - got, 4 * 1024 * 1024)
        chunk = raw_exact(c, take)
        digest.update(chunk)
        got += take
        # Read slowly at times so the server has to hold back.
        time.sleep(0.05)
        peak = max(peak, worker_rss_kb(server))
    assert digest.digest() == hashlib.sha256(data).digest()
    tail = raw_line(c)
    assert tail.startswith(b" FLAGS (\\Seen") and tail.endswith(b")"), tail
    assert raw_line(c).startswith(f"{tag} OK".encode())
    assert raw_line(c).startswith(b"n1 OK")
    growth_mb = (peak - before) / 1024
    assert growth_mb < 20, f"worker RSS grew by {growth_mb:.1f} MB while sending a 50 MB message"
    # Partial fetch deep inside, and a second pass that is plain again.
    fetches, _, _ = fetch(c, f"FETCH 1 BODY.PEEK[]<{size - 100}.1000>")
    assert fetches[0][1][f"BODY[]<{size - 100}>"] == data[-100:]
    # A client that leaves in the middle of a stream: the worker releases
    # the message (no leak, no crash; the harness checks the sanitizer log)
    # and goes on serving.
    d = session(server)
    d.expect_ok("SELECT INBOX")
    d.send("x FETCH 1 BODY.PEEK[]\r\n")
    raw_exact(d, 1024 * 1024)
    d.close()
    fetches, _, tagged = fetch(c, "FETCH 1 (UID RFC822.SIZE)")
    assert " OK " in tagged and fetches[0][1]["RFC822.SIZE"] == str(size).encode()


def test_many_messages_stream_in_order():
    """FETCH 1:* over messages bigger than the inline size and than the
    output bound together: every response whole, in order."""
    c = session(make_server())
    bodies = []
    for i in range(40):
        body = b"Subject: m%d\r\n\r\n" % i + (b"%04d" % i) * (30000 + 1000 * i)
        bodies.append(body)
        append(c, body)
    c.expect_ok("SELECT INBOX")
    fetches, _, tagged = fetch(c, "FETCH 1:* (UID BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert " OK " in tagged, tagged
    assert [seq for seq, _ in fetches] == list(range(1, 41))
    for (seq, items), body in zip(fetches, bodies):
        assert items["BODY[TEXT]"] == body.split(b"\r\n\r\n", 1)[1]
        assert items["BODY[HEADER.FIELDS (Subject)]"] == b"Subject: m%d\r\n\r\n" % (seq - 1)
