"""OBJECTID (RFC 8474) and SAVEDATE (RFC 8514): MAILBOXID in SELECT,
EXAMINE and STATUS, kept by RENAME; EMAILID and THREADID in FETCH, EMAILID
kept by COPY; the EMAILID and THREADID search keys; the SAVEDATE fetch item
and the SAVED* search keys."""
import datetime
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


def append(c, n, mailbox="INBOX"):
    for i in range(n):
        body = f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()
        c.send(b"ap APPEND %s {%d+}\r\n%s\r\n" % (mailbox.encode(), len(body), body))
        _, tagged = c.read_until_tagged("ap")
        assert " OK " in tagged, tagged


def mailboxid(untagged):
    ids = [m.group(1) for l in untagged for m in [re.match(r"\* OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]", l)] if m]
    assert len(ids) == 1, untagged
    return ids[0]


def test_mailboxid_in_select_examine_status_and_rename():
    c = session(make_server())
    c.expect_ok("CREATE Work")
    untagged, _ = c.expect_ok("SELECT Work")
    mid = mailboxid(untagged)
    assert re.fullmatch(r"F[0-9a-f]{16}", mid), mid
    untagged, _ = c.expect_ok("EXAMINE Work")
    assert mailboxid(untagged) == mid
    untagged, _ = c.expect_ok("SELECT INBOX")
    inbox = mailboxid(untagged)
    assert inbox != mid
    untagged, _ = c.expect_ok("STATUS Work (MAILBOXID MESSAGES)")
    assert untagged == [f"* STATUS Work (MAILBOXID ({mid}) MESSAGES 0)"], untagged
    # RFC 8474 4.1: RENAME keeps the id; a new mailbox of the old name gets another.
    c.expect_ok("RENAME Work Play")
    untagged, _ = c.expect_ok("STATUS Play (MAILBOXID)")
    assert untagged == [f"* STATUS Play (MAILBOXID ({mid}))"], untagged
    c.expect_ok("CREATE Work")
    untagged, _ = c.expect_ok("STATUS Work (MAILBOXID)")
    assert mid not in untagged[0], untagged


def fetch_map(untagged):
    out = {}
    for l in untagged:
        m = re.match(r"\* (\d+) FETCH \((.*)\)$", l)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def test_emailid_threadid_fetch_and_search():
    c = session(make_server())
    append(c, 3)
    c.expect_ok("CREATE Old")
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok("FETCH 1:3 (EMAILID THREADID)")
    got = fetch_map(untagged)
    ids = {}
    for n in (1, 2, 3):
        m = re.fullmatch(r"EMAILID \((M[0-9a-f]{16})\) THREADID NIL", got[n])
        assert m, got
        ids[n] = m.group(1)
    assert len(set(ids.values())) == 3, ids
    # RFC 8474 5.1: a copy is the same message, with the same EMAILID.
    c.expect_ok("COPY 2 Old")
    c.expect_ok("EXAMINE Old")
    untagged, _ = c.expect_ok("UID FETCH 1:* (EMAILID)")
    assert untagged == [f"* 1 FETCH (UID 1 EMAILID ({ids[2]}))"], untagged
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok(f"SEARCH EMAILID {ids[3]}")
    assert untagged == ["* SEARCH 3"], untagged
    untagged, _ = c.expect_ok(f"UID SEARCH OR EMAILID {ids[1]} EMAILID {ids[2]}")
    assert untagged == ["* SEARCH 1 2"], untagged
    untagged, _ = c.expect_ok("SEARCH EMAILID M0000000000000000")
    assert untagged == ["* SEARCH"], untagged
    # No threads: THREADID is NIL, so no message has any thread id.
    untagged, _ = c.expect_ok("SEARCH THREADID T1")
    assert untagged == ["* SEARCH"], untagged
    untagged, _ = c.expect_ok("SEARCH NOT THREADID T1")
    assert untagged == ["* SEARCH 1 2 3"], untagged
    for cmd in ("SEARCH EMAILID", 'SEARCH EMAILID "M1"', "SEARCH EMAILID a.b"):
        _, tagged = c.command(cmd)
        assert " BAD " in tagged, (cmd, tagged)


def test_savedate_fetch_and_search():
    c = session(make_server())
    old = "01-Jan-2001 10:00:00 +0000"
    body = b"Subject: old\r\n\r\nold\r\n"
    c.send(f'ap APPEND INBOX "{old}" {{{len(body)}+}}\r\n'.encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert " OK " in tagged, tagged
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok("FETCH 1 (INTERNALDATE SAVEDATE)")
    m = re.fullmatch(r'\* 1 FETCH \(INTERNALDATE "([^"]+)" SAVEDATE "([^"]+)"\)', untagged[0])
    assert m, untagged
    assert m.group(1) == old, untagged
    # RFC 8514 3: the save date is when it was stored here, not the internal date.
    saved = datetime.datetime.strptime(m.group(2), "%d-%b-%Y %H:%M:%S %z")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - saved).total_seconds()) < 120, (saved, now)
    today = now.strftime("%-d-%b-%Y")
    untagged, _ = c.expect_ok(f"SEARCH SAVEDON {today}")
    assert untagged == ["* SEARCH 1"], untagged
    untagged, _ = c.expect_ok("SEARCH SAVEDBEFORE 1-Jan-2002")
    assert untagged == ["* SEARCH"], untagged
    untagged, _ = c.expect_ok("SEARCH BEFORE 1-Jan-2002")
    assert untagged == ["* SEARCH 1"], untagged
    untagged, _ = c.expect_ok("SEARCH SAVEDSINCE 1-Jan-2002")
    assert untagged == ["* SEARCH 1"], untagged
