"""CONDSTORE and QRESYNC (RFC 7162) parts that live in the selected state:
ENABLE, HIGHESTMODSEQ, STORE UNCHANGEDSINCE with MODIFIED, MODSEQ in
unsolicited FETCH, VANISHED instead of EXPUNGE, and a QRESYNC resync that
returns exactly what changed while the client was away."""
import re

from harness import Server


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def session(server):
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.login()
    assert " OK " in tagged, tagged
    return c


def append(c, n):
    for i in range(n):
        body = f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()
        c.send(b"ap APPEND INBOX {%d+}\r\n%s\r\n" % (len(body), body))
        _, tagged = c.read_until_tagged("ap")
        assert " OK " in tagged, tagged


def highestmodseq(untagged):
    for line in untagged:
        m = re.match(r"\* OK \[HIGHESTMODSEQ (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(untagged)


def test_enable_and_highestmodseq():
    c = session(make_server())
    untagged, _ = c.expect_ok("ENABLE CONDSTORE QRESYNC FOO")
    assert untagged == ["* ENABLED CONDSTORE QRESYNC"], untagged
    untagged, _ = c.expect_ok("ENABLE QRESYNC")
    assert untagged == ["* ENABLED"], untagged
    append(c, 2)
    untagged, _ = c.expect_ok("SELECT INBOX")
    assert highestmodseq(untagged) >= 2
    untagged, _ = c.expect_ok("STATUS INBOX (HIGHESTMODSEQ)")
    assert re.match(r"\* STATUS INBOX \(HIGHESTMODSEQ \d+\)", untagged[0]), untagged


def test_select_condstore_parameter_enables_it():
    c = session(make_server())
    append(c, 1)
    untagged, _ = c.expect_ok("SELECT INBOX (CONDSTORE)")
    highestmodseq(untagged)
    untagged, _ = c.expect_ok("STORE 1 +FLAGS (\\Seen)")
    assert re.match(r"\* 1 FETCH \(FLAGS \(\\Seen( \\Recent)?\) MODSEQ \(\d+\)\)", untagged[0]), untagged
    _, tagged = c.command("SELECT INBOX (QRESYNC (1 1))")
    assert " BAD " in tagged, tagged


def test_store_unchangedsince_and_modified():
    c = session(make_server())
    append(c, 3)
    untagged, _ = c.expect_ok("SELECT INBOX (CONDSTORE)")
    base = highestmodseq(untagged)
    c.expect_ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    untagged, tagged = c.expect_ok(f"STORE 1:3 (UNCHANGEDSINCE {base}) +FLAGS (\\Seen)")
    assert "[MODIFIED 2]" in tagged, tagged
    changed = sorted(int(re.match(r"\* (\d+) FETCH", l).group(1)) for l in untagged if "FETCH" in l)
    assert changed == [1, 3], untagged
    _, tagged = c.expect_ok("UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)")
    assert "[MODIFIED 1:3]" in tagged, tagged
    _, tagged = c.command("STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)")
    assert " BAD " in tagged


def test_qresync_vanished_and_uid_in_fetch():
    server = make_server()
    a = session(server)
    b = session(server)
    append(a, 3)
    a.expect_ok("ENABLE QRESYNC")
    a.expect_ok("SELECT INBOX")
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    untagged, _ = a.expect_ok("NOOP")
    assert re.match(r"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", untagged[0]), untagged
    b.expect_ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    untagged, _ = a.expect_ok("NOOP")
    assert "* VANISHED 1,3" in untagged, untagged
    a.expect_ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    untagged, _ = a.expect_ok("EXPUNGE")
    assert untagged == ["* VANISHED 2"], untagged


def test_qresync_resync_returns_exactly_the_difference():
    server = make_server()
    a = session(server)
    append(a, 6)
    a.expect_ok("ENABLE QRESYNC")
    untagged, _ = a.expect_ok("SELECT INBOX")
    modseq = highestmodseq(untagged)
    validity = int(re.search(r"UIDVALIDITY (\d+)", " ".join(untagged)).group(1))
    a.expect_ok("LOGOUT")
    # While the client is away: flags change on 2, 4 and 6 go, 7 arrives.
    b = session(server)
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    b.expect_ok("STORE 4,6 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    append(b, 1)
    c = session(server)
    c.expect_ok("ENABLE QRESYNC")
    untagged, _ = c.expect_ok(f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:6))")
    assert "* VANISHED (EARLIER) 4,6" in untagged, untagged
    fetches = [l for l in untagged if " FETCH " in l]
    uids = sorted(int(re.search(r"UID (\d+)", l).group(1)) for l in fetches)
    assert uids == [2, 7], fetches
    assert any(re.match(r"\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ", l) for l in fetches), fetches
    # A stale UIDVALIDITY gets no resync data at all.
    d = session(server)
    d.expect_ok("ENABLE QRESYNC")
    untagged, _ = d.expect_ok(f"SELECT INBOX (QRESYNC ({validity + 1} {modseq}))")
    assert not any("VANISHED" in l or " FETCH " in l for l in untagged), untagged


def test_utf8_accept_names_and_append():
    c = session(make_server())
    untagged, _ = c.expect_ok("ENABLE UTF8=ACCEPT")
    assert untagged == ["* ENABLED UTF8=ACCEPT"], untagged
    c.send('u1 CREATE "Entwürfe"\r\n'.encode())
    _, tagged = c.read_until_tagged("u1")
    assert " OK " in tagged, tagged
    c.send('u2 LIST "" "Entw*"\r\n'.encode())
    untagged, tagged = c.read_until_tagged("u2")
    assert untagged == ['* LIST (\\HasNoChildren) "/" "Entwürfe"'], untagged
    body = "Subject: Grüße\r\n\r\nHallo\r\n".encode()
    c.send(b'u3 APPEND "Entw\xc3\xbcrfe" UTF8 (~{%d+}\r\n%s)\r\n' % (len(body), body))
    _, tagged = c.read_until_tagged("u3")
    assert " OK [APPENDUID" in tagged, tagged
    c.send(b'u4 CREATE "bad\xff"\r\n')
    _, tagged = c.read_until_tagged("u4")
    assert " BAD " in tagged, tagged
