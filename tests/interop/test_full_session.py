"""A whole mail session with real clients, over implicit TLS (993) and over
STARTTLS (143): Python's imaplib and curl create a mailbox, append, select,
search, fetch, store, copy, move, expunge and delete, and every step is
checked as the client sees it (imaplib's parsed responses, curl's output)."""
import imaplib
import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import PASSWORDS, Server

MSG1 = (b"From: Alice <alice@example.org>\r\n"
        b"To: Bob <bob@example.org>\r\n"
        b"Subject: Interop hello\r\n"
        b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        b"Message-ID: <interop-1@example.org>\r\n"
        b"\r\n"
        b"First body line.\r\nsecond line with a marker: kumquat\r\n")
MSG2 = (b"From: Bob <bob@example.org>\r\n"
        b"To: Alice <alice@example.org>\r\n"
        b"Subject: Quarterly numbers\r\n"
        b"Date: Tue, 03 Mar 2026 11:30:00 +0100\r\n"
        b"Message-ID: <interop-2@example.org>\r\n"
        b"\r\n"
        b"Nothing to see.\r\n")


# ---------------------------------------------------------------- imaplib

def listed(m, pattern="*"):
    typ, data = m.list('""', pattern)
    assert typ == "OK", (typ, data)
    out = {}
    for line in data:
        if line is None:
            continue
        mo = re.match(rb'\(([^)]*)\) "/" (.*)$', line)
        assert mo, line
        out[mo.group(2).decode().strip('"')] = set(mo.group(1).decode().split())
    return out


def ok(result, what):
    typ, data = result
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


def imaplib_session(m):
    ok(m.login("alice", PASSWORDS["alice"]), "LOGIN")
    assert m.state == "AUTH"

    # CREATE, with a child; LIST shows both and the hierarchy.
    ok(m.create("Work"), "CREATE Work")
    ok(m.create("Work/Projects"), "CREATE Work/Projects")
    boxes = listed(m)
    assert "INBOX" in boxes and "Work" in boxes and "Work/Projects" in boxes, boxes
    assert "\\HasChildren" in boxes["Work"], boxes
    assert "\\HasNoChildren" in boxes["Work/Projects"], boxes
    typ, data = m.create("Work")
    assert typ == "NO", (typ, data)

    # APPEND with flags and an internal date; APPENDUID is in the response.
    date = imaplib.Time2Internaldate((2026, 3, 2, 10, 0, 0, 0, 1, 0))
    data = ok(m.append("Work", r"(\Flagged)", date, MSG1), "APPEND 1")
    mo = re.search(rb"\[APPENDUID (\d+) 1\]", data[0])
    assert mo, data
    uidvalidity = mo.group(1)
    data = ok(m.append("Work", None, None, MSG2), "APPEND 2")
    assert re.search(rb"\[APPENDUID %s 2\]" % uidvalidity, data[0]), data
    data = ok(m.status("Work", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"), "STATUS")
    assert re.search(rb"MESSAGES 2 .*UNSEEN 2 .*UIDNEXT 3 .*UIDVALIDITY %s" % uidvalidity, data[0]), data

    # SELECT: EXISTS, UIDVALIDITY and read-write.
    data = ok(m.select("Work"), "SELECT")
    assert data == [b"2"], data
    assert m.untagged_responses["UIDVALIDITY"] == [uidvalidity], m.untagged_responses
    assert m.state == "SELECTED"
    assert not m.is_readonly

    # SEARCH by header, body, flag and their UID forms.
    assert ok(m.search(None, "SUBJECT", '"interop hello"'), "SEARCH SUBJECT") == [b"1"]
    assert ok(m.search(None, "BODY", "kumquat"), "SEARCH BODY") == [b"1"]
    assert ok(m.search(None, "FLAGGED"), "SEARCH FLAGGED") == [b"1"]
    assert ok(m.search(None, "UNFLAGGED", "FROM", "bob"), "SEARCH FROM") == [b"2"]
    assert ok(m.search(None, "ALL"), "SEARCH ALL") == [b"1 2"]
    assert ok(m.uid("SEARCH", "SINCE", "03-Mar-2026"), "UID SEARCH") in ([b"2"], [b"1 2"])
    assert ok(m.search(None, "SUBJECT", "nowhere"), "SEARCH none") == [b""]

    # FETCH: the whole message byte for byte, headers, flags, size, UID.
    data = ok(m.fetch("1", "(UID FLAGS RFC822.SIZE BODY.PEEK[])"), "FETCH 1")
    head, body = data[0]
    assert body == MSG1, body
    assert re.search(rb"UID 1\b", head) and re.search(rb"RFC822.SIZE %d\b" % len(MSG1), head), head
    assert b"\\Flagged" in head and b"\\Seen" not in head, head
    data = ok(m.uid("FETCH", "2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] INTERNALDATE)"), "UID FETCH 2")
    assert data[0][1] == b"Subject: Quarterly numbers\r\n\r\n", data
    data = ok(m.fetch("1", "(INTERNALDATE)"), "FETCH INTERNALDATE")
    assert b'INTERNALDATE "02-Mar-2026 10:00:00 +0000"' in data[0], data
    data = ok(m.fetch("1:2", "(ENVELOPE)"), "FETCH ENVELOPE")
    assert b'"Interop hello"' in data[0] and b'"Quarterly numbers"' in data[1], data
    # BODY[] (not PEEK) sets \Seen.
    ok(m.fetch("2", "(BODY[TEXT])"), "FETCH BODY[TEXT]")
    data = ok(m.fetch("2", "(FLAGS)"), "FETCH FLAGS")
    assert b"\\Seen" in data[0], data

    # STORE: add, remove, replace; the untagged FETCH shows the result.
    data = ok(m.store("1", "+FLAGS", r"(\Seen $Important)"), "STORE +FLAGS")
    assert b"\\Seen" in data[0] and b"$Important" in data[0] and b"\\Flagged" in data[0], data
    data = ok(m.store("1", "-FLAGS", r"(\Flagged)"), "STORE -FLAGS")
    assert b"\\Flagged" not in data[0] and b"\\Seen" in data[0], data
    data = ok(m.uid("STORE", "2", "FLAGS.SILENT", r"(\Answered)"), "UID STORE FLAGS.SILENT")
    data = ok(m.fetch("2", "(FLAGS)"), "FETCH FLAGS after SILENT")
    assert re.search(rb"FLAGS \(\\Answered\)", data[0]), data
    assert ok(m.search(None, "KEYWORD", "$Important"), "SEARCH KEYWORD") == [b"1"]

    # COPY 1 to Work/Projects (COPYUID), MOVE 2 to INBOX.
    typ, data = m.copy("1", "Work/Projects")
    assert typ == "OK", data
    assert re.search(rb"\[COPYUID \d+ 1 1\]", data[0]), data
    typ, data = m.uid("MOVE", "2", "INBOX")
    assert typ == "OK", data
    # The untagged EXPUNGE for the moved message reaches the client.
    assert m.untagged_responses.pop("EXPUNGE", None) == [b"2"], m.untagged_responses
    assert ok(m.search(None, "ALL"), "SEARCH after MOVE") == [b"1"]
    data = ok(m.status("Work/Projects", "(MESSAGES)"), "STATUS Projects")
    assert b"MESSAGES 1" in data[0], data
    data = ok(m.status("INBOX", "(MESSAGES)"), "STATUS INBOX")
    assert b"MESSAGES 1" in data[0], data

    # EXPUNGE: \Deleted then EXPUNGE reports sequence 1.
    ok(m.store("1", "+FLAGS", r"(\Deleted)"), "STORE \\Deleted")
    data = ok(m.expunge(), "EXPUNGE")
    assert data == [b"1"], data
    assert ok(m.search(None, "ALL"), "SEARCH after EXPUNGE") == [b""]

    # The copy in Work/Projects kept its flags (not \Deleted); the moved
    # message in INBOX is there byte for byte.
    data = ok(m.select("Work/Projects", readonly=True), "EXAMINE")
    assert data == [b"1"] and m.is_readonly, data
    data = ok(m.fetch("1", "(FLAGS BODY.PEEK[])"), "FETCH copy")
    assert data[0][1] == MSG1 and b"\\Deleted" not in data[0][0] and b"$Important" in data[0][0], data
    ok(m.select("INBOX"), "SELECT INBOX")
    uids = ok(m.uid("SEARCH", "HEADER", "Message-ID", "interop-2"), "UID SEARCH HEADER")
    assert len(uids[0].split()) == 1, uids
    data = ok(m.uid("FETCH", uids[0], "(BODY.PEEK[])"), "UID FETCH moved")
    assert data[0][1] == MSG2, data
    ok(m.close(), "CLOSE")
    assert m.state == "AUTH"

    # DELETE the child then the parent; LIST no longer shows them.
    ok(m.delete("Work/Projects"), "DELETE Work/Projects")
    ok(m.delete("Work"), "DELETE Work")
    boxes = listed(m)
    assert "Work" not in boxes and "Work/Projects" not in boxes, boxes
    typ, data = m.select("Work")
    assert typ == "NO", (typ, data)
    typ, data = m.logout()
    assert typ == "BYE", (typ, data)


def test_imaplib_full_session_imaps():
    server = Server()
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=harness.client_tls_context(),
                          timeout=20)
    imaplib_session(m)


def test_imaplib_full_session_starttls():
    server = Server()
    m = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=20)
    assert "STARTTLS" in m.capabilities
    ok(m.starttls(ssl_context=harness.client_tls_context()), "STARTTLS")
    imaplib_session(m)


# ---------------------------------------------------------------- curl

class Curl:
    def __init__(self, base, extra=()):
        if shutil.which("curl") is None:
            raise harness.Skip("curl is not installed")
        self.base = base
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="postern-curl-")

    def run(self, path, *args, check=True):
        cmd = ["curl", "-sS", "-k", "--max-time", "20", "-u", f"alice:{PASSWORDS['alice']}",
               *self.extra, self.base + path, *args]
        proc = subprocess.run(cmd, capture_output=True)
        if check:
            assert proc.returncode == 0, (cmd, proc.returncode, proc.stderr.decode())
        return proc

    def out(self, path, *args):
        return self.run(path, *args).stdout

    def lines(self, path, *args):
        return self.out(path, *args).decode().splitlines()

    def upload(self, path, data):
        f = os.path.join(self.dir, "msg.eml")
        with open(f, "wb") as fh:
            fh.write(data)
        return self.run(path, "-T", f)


def curl_session(c):
    # LIST with a bare URL; the special-use mailboxes exist at first login.
    lines = c.lines("/")
    assert '* LIST (\\HasNoChildren) "/" INBOX' in lines or any(
        l.startswith("* LIST (") and l.endswith('"/" INBOX') for l in lines), lines
    assert any(l.endswith('"/" Sent') for l in lines), lines

    # CREATE by custom request, then LIST shows it.
    assert c.run("/", "-X", "CREATE Curl").returncode == 0
    assert c.run("/", "-X", "CREATE Curl/Sub").returncode == 0
    lines = c.lines("/", "-X", 'LIST "" "Curl*"')
    assert any(re.match(r'\* LIST \([^)]*\\HasChildren[^)]*\) "/" "?Curl"?$', l) for l in lines), lines
    assert any(re.match(r'\* LIST \([^)]*\) "/" "?Curl/Sub"?$', l) for l in lines), lines
    # A second CREATE is refused, and curl says so.
    proc = c.run("/", "-X", "CREATE Curl", check=False)
    assert proc.returncode != 0, proc

    # APPEND by upload (-T) to imaps://host/MAILBOX.
    c.upload("/Curl", MSG1)
    c.upload("/Curl", MSG2)
    lines = c.lines("/", "-X", "STATUS Curl (MESSAGES UIDNEXT)")
    assert any(re.match(r"\* STATUS \"?Curl\"? \(MESSAGES 2 UIDNEXT 3\)", l) for l in lines), lines

    # SEARCH URL (SELECT + SEARCH).
    assert c.lines("/Curl?SUBJECT%20quarterly") == ["* SEARCH 2"]
    assert c.lines("/Curl?BODY%20kumquat") == ["* SEARCH 1"]
    assert c.lines("/Curl?ALL") == ["* SEARCH 1 2"]
    assert c.lines("/Curl?SUBJECT%20nowhere") == ["* SEARCH"]

    # FETCH URL: INBOX;UID=n gives the message byte for byte.
    assert c.out("/Curl;UID=1") == MSG1
    assert c.out("/Curl;UID=2") == MSG2
    assert c.out("/Curl;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)") == b"Subject: Interop hello\r\n\r\n"
    assert c.out("/Curl;UID=2;SECTION=TEXT") == b"Nothing to see.\r\n"
    # A custom UID FETCH in the selected mailbox prints the untagged response.
    out = c.out("/Curl", "-X", "UID FETCH 1 (FLAGS RFC822.SIZE)")
    assert re.search(rb"\* 1 FETCH \(.*RFC822.SIZE %d" % len(MSG1), out), out
    # curl prints only the first line of a custom FETCH with a literal
    # (curl/curl#18847, up to 8.16), so the body is read from the wire as
    # -v shows it: the line with {n}, then the literal, then ")".
    proc = c.run("/Curl", "-v", "-X", "UID FETCH 1 BODY[]")
    assert proc.stdout == b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(MSG1), proc.stdout
    wire = [l[2:].rstrip("\r") for l in proc.stderr.decode().split("\n") if l.startswith("< ")]
    start = wire.index("* 1 FETCH (UID 1 BODY[] {%d}" % len(MSG1))
    end = wire.index(")", start)
    assert "\r\n".join(wire[start + 1:end]).encode() == MSG1.rstrip(b"\r\n"), wire
    # Fetching by URL read the message with BODY[], which sets \Seen.
    out = c.out("/Curl", "-X", "UID FETCH 1:2 FLAGS")
    assert out.count(b"\\Seen") == 2, out

    # STORE by custom request: the untagged FETCH shows the new flags.
    out = c.out("/Curl", "-X", "UID STORE 2 FLAGS (\\Flagged)")
    assert re.search(rb"\* 2 FETCH \(.*FLAGS \(\\Flagged\)", out), out
    out = c.out("/Curl", "-X", "UID STORE 1 +FLAGS (\\Answered)")
    assert re.search(rb"FLAGS \(\\Answered \\Seen\)|FLAGS \(\\Seen \\Answered\)", out), out
    assert c.lines("/Curl?FLAGGED") == ["* SEARCH 2"]
    assert c.lines("/Curl?ANSWERED") == ["* SEARCH 1"]

    # COPY and MOVE.
    out = c.out("/Curl", "-X", "UID COPY 1 Curl/Sub")
    assert c.lines("/Curl/Sub?ALL") == ["* SEARCH 1"], out
    assert c.out("/Curl/Sub;UID=1") == MSG1
    out = c.out("/Curl", "-X", "UID MOVE 2 INBOX")
    assert b"* 2 EXPUNGE" in out, out
    assert c.lines("/Curl?ALL") == ["* SEARCH 1"]
    inbox = c.lines("/INBOX?HEADER%20Message-ID%20interop-2")
    assert len(inbox) == 1 and re.match(r"\* SEARCH \d+$", inbox[0]), inbox
    uid = inbox[0].split()[2]  # INBOX is fresh, so sequence number = UID
    assert c.out(f"/INBOX;UID={uid}") == MSG2

    # EXPUNGE.
    c.out("/Curl", "-X", "UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = c.out("/Curl", "-X", "EXPUNGE")
    assert out.strip() == b"* 1 EXPUNGE", out
    assert c.lines("/Curl?ALL") == ["* SEARCH"]
    lines = c.lines("/", "-X", "STATUS Curl (MESSAGES)")
    assert any(re.match(r"\* STATUS \"?Curl\"? \(MESSAGES 0\)", l) for l in lines), lines

    # DELETE: the child, then the parent; LIST no longer shows them; a
    # fetch from the deleted mailbox fails.
    c.run("/", "-X", "DELETE Curl/Sub")
    c.run("/", "-X", "DELETE Curl")
    lines = c.lines("/")
    assert not any("Curl" in l for l in lines), lines
    proc = c.run("/Curl;UID=1", check=False)
    assert proc.returncode != 0, proc
    shutil.rmtree(c.dir, ignore_errors=True)


def test_curl_full_session_imaps():
    server = Server()
    curl_session(Curl(f"imaps://127.0.0.1:{server.ports['imaps']}"))


def test_curl_full_session_starttls():
    server = Server()
    curl_session(Curl(f"imap://127.0.0.1:{server.ports['imap']}", ["--ssl-reqd"]))
