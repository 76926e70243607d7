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


def fetch_lines(untagged):
    return [l for l in untagged if " FETCH " in l]


def modseq_of(line):
    return int(re.search(r"MODSEQ \((\d+)\)", line).group(1))


def test_fetch_modseq_item_enables_condstore():
    c = session(make_server())
    append(c, 3)
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok("FETCH 1 (FLAGS)")
    assert untagged == ["* 1 FETCH (FLAGS ())"], untagged
    untagged, _ = c.expect_ok("FETCH 1:3 (MODSEQ)")
    # RFC 7162 3.1: the first enabling command tells HIGHESTMODSEQ.
    top = highestmodseq(untagged)
    fetches = fetch_lines(untagged)
    assert len(fetches) == 3 and all(re.match(r"\* \d FETCH \(MODSEQ \(\d+\)\)$", l) for l in fetches), untagged
    assert max(modseq_of(l) for l in fetches) == top
    # From now on every FETCH with FLAGS carries MODSEQ.
    untagged, _ = c.expect_ok("FETCH 2 (FLAGS)")
    assert re.match(r"\* 2 FETCH \(FLAGS \(\) MODSEQ \(\d+\)\)$", untagged[0]), untagged
    untagged, _ = c.expect_ok("UID FETCH 2 (UID FLAGS MODSEQ)")
    assert re.match(r"\* 2 FETCH \(UID 2 FLAGS \(\) MODSEQ \(\d+\)\)$", untagged[0]), untagged
    # \Seen set by a body fetch comes with its new modseq.
    untagged, _ = c.expect_ok("FETCH 3 (BODY[TEXT])")
    assert untagged[0] == "* 3 FETCH (BODY[TEXT] {8}", untagged
    assert re.match(r" FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$", untagged[-1]), untagged
    assert modseq_of(untagged[-1]) > top, untagged


def test_fetch_changedsince():
    c = session(make_server())
    append(c, 4)
    untagged, _ = c.expect_ok("SELECT INBOX")
    # No CONDSTORE yet: HIGHESTMODSEQ only comes with the enabling command.
    assert not any("HIGHESTMODSEQ" in l for l in untagged), untagged
    c.expect_ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    untagged, _ = c.expect_ok("FETCH 1:* (MODSEQ)")
    base = modseq_of(fetch_lines(untagged)[1]) - 1
    c.expect_ok("STORE 4 +FLAGS.SILENT (\\Answered)")
    untagged, _ = c.expect_ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {base})")
    fetches = fetch_lines(untagged)
    assert [int(l.split()[1]) for l in fetches] == [2, 4], untagged
    assert re.match(r"\* 2 FETCH \(FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$", fetches[0]), fetches
    # MODSEQ is implied even without FLAGS; the UID form adds the UID.
    untagged, _ = c.expect_ok(f"UID FETCH 1:* (INTERNALDATE) (CHANGEDSINCE {base + 1})")
    fetches = fetch_lines(untagged)
    assert len(fetches) == 1 and re.match(r'\* 4 FETCH \(UID 4 INTERNALDATE "[^"]+" MODSEQ \(\d+\)\)$', fetches[0]), untagged
    untagged, _ = c.expect_ok("FETCH 1:* (UID) (CHANGEDSINCE 0)")
    assert len(fetch_lines(untagged)) == 4, untagged
    untagged, _ = c.expect_ok("FETCH 1:* (FLAGS) (CHANGEDSINCE 9223372036854775807)")
    assert fetch_lines(untagged) == [], untagged
    bad = {
        "FETCH 1 (FLAGS) (CHANGEDSINCE x)": "mod-sequence",
        "FETCH 1 (FLAGS) (CHANGEDSINCE)": "mod-sequence",
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)": "twice",
        "FETCH 1 (FLAGS) (NOPE 1)": "Unknown FETCH modifier",
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1) (X)": "Unexpected arguments",
        # RFC 7162 3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
        # after ENABLE QRESYNC.
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)": "only allowed in UID FETCH",
        "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)": "ENABLE QRESYNC",
    }
    for cmd, text in bad.items():
        _, tagged = c.command(cmd)
        assert " BAD " in tagged and text in tagged, (cmd, tagged)


def test_condstore_unsolicited_fetch_has_modseq():
    server = make_server()
    a = session(server)
    b = session(server)
    append(a, 2)
    untagged, _ = a.expect_ok("SELECT INBOX (CONDSTORE)")
    base = highestmodseq(untagged)
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 2 +FLAGS.SILENT ($Work)")
    untagged, _ = a.expect_ok("NOOP")
    fetches = fetch_lines(untagged)
    # CONDSTORE without QRESYNC: no UID, but the MODSEQ.
    assert len(fetches) == 1 and re.match(r"\* 2 FETCH \(FLAGS \(\$Work\) MODSEQ \(\d+\)\)$", fetches[0]), untagged
    assert modseq_of(fetches[0]) > base


def test_uid_fetch_vanished_resync_after_other_session():
    """RFC 7162 3.2.6: a client that reconnects and SELECTs without the
    QRESYNC parameter resyncs with UID FETCH (CHANGEDSINCE m VANISHED)."""
    server = make_server()
    a = session(server)
    append(a, 6)
    a.expect_ok("ENABLE QRESYNC")
    untagged, _ = a.expect_ok("SELECT INBOX")
    modseq = highestmodseq(untagged)
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
    untagged, _ = c.expect_ok("SELECT INBOX")
    assert "* 5 EXISTS" in untagged, untagged
    untagged, tagged = c.expect_ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    # VANISHED (EARLIER) first, then the changed and new messages.
    assert untagged[0] == "* VANISHED (EARLIER) 4,6", untagged
    fetches = fetch_lines(untagged)
    assert len(fetches) == 2 and len(untagged) == 3, untagged
    assert re.match(r"\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$", fetches[0]), fetches
    assert re.match(r"\* 5 FETCH \(UID 7 FLAGS \(\) MODSEQ \(\d+\)\)$", fetches[1]), fetches
    # Only UIDs of the set are reported; an expunge before the modseq is not.
    untagged, _ = c.expect_ok(f"UID FETCH 5:6 (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert untagged == ["* VANISHED (EARLIER) 6"], untagged
    untagged, _ = c.expect_ok("UID FETCH 1:3 (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert untagged == [l for l in untagged if " FETCH " in l], untagged
    top = max(modseq_of(l) for l in fetch_lines(c.expect_ok("FETCH 1:* (MODSEQ)")[0]))
    untagged, _ = c.expect_ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {top} VANISHED)")
    assert untagged == [], untagged


def test_uid_fetch_vanished_while_selected():
    """Expunges by another session while this one is selected: each UID is
    reported once, as VANISHED (EARLIER) or as VANISHED when the view
    catches up, never both."""
    server = make_server()
    a = session(server)
    b = session(server)
    append(a, 4)
    a.expect_ok("ENABLE QRESYNC")
    untagged, _ = a.expect_ok("SELECT INBOX")
    modseq = highestmodseq(untagged)
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    untagged, _ = a.expect_ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert sum("VANISHED" in l and "3" in l for l in untagged) == 1, untagged
    untagged, _ = a.expect_ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert untagged == ["* VANISHED (EARLIER) 3"], untagged


def search_lines(untagged, prefix):
    return [l for l in untagged if l.startswith(prefix)]


def test_search_modseq():
    c = session(make_server())
    append(c, 6)
    c.expect_ok("SELECT INBOX")
    c.expect_ok("STORE 2,5 +FLAGS.SILENT (\\Flagged)")
    c.expect_ok("STORE 6 +FLAGS.SILENT (\\Draft)")
    untagged, _ = c.expect_ok("SEARCH MODSEQ 1")
    top = highestmodseq(untagged)	# SEARCH MODSEQ enabled CONDSTORE
    assert search_lines(untagged, "* SEARCH") == [f"* SEARCH 1 2 3 4 5 6 (MODSEQ {top})"], untagged
    untagged, _ = c.expect_ok("FETCH 2 (MODSEQ)")
    m2 = modseq_of(untagged[0])
    untagged, _ = c.expect_ok(f"SEARCH MODSEQ {m2}")
    assert untagged == [f"* SEARCH 2 5 6 (MODSEQ {top})"], untagged
    # The entry form: one modseq per message, so the same answer.
    untagged, _ = c.expect_ok(f'SEARCH MODSEQ "/flags/\\\\draft" all {m2}')
    assert untagged == [f"* SEARCH 2 5 6 (MODSEQ {top})"], untagged
    untagged, _ = c.expect_ok(f"SEARCH MODSEQ {m2} NOT DRAFT")
    m = re.match(r"\* SEARCH 2 5 \(MODSEQ (\d+)\)$", untagged[0])
    assert m and int(m.group(1)) < top, untagged
    # Nothing matched: no MODSEQ.
    untagged, _ = c.expect_ok(f"SEARCH MODSEQ {top + 1}")
    assert untagged == ["* SEARCH"], untagged
    # Without the key, no MODSEQ either.
    untagged, _ = c.expect_ok("SEARCH FLAGGED")
    assert untagged == ["* SEARCH 2 5"], untagged
    for cmd in ("SEARCH MODSEQ x", 'SEARCH MODSEQ "/flags/\\\\draft" any 5', 'SEARCH MODSEQ "/x" all 5'):
        _, tagged = c.command(cmd)
        assert " BAD " in tagged, (cmd, tagged)


def test_esearch_with_modseq():
    c = session(make_server())
    append(c, 5)
    c.expect_ok("SELECT INBOX (CONDSTORE)")
    c.expect_ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    c.expect_ok("STORE 4 +FLAGS.SILENT (\\Seen)")
    untagged, _ = c.expect_ok("FETCH 1:* (MODSEQ)")
    ms = {int(l.split()[1]): modseq_of(l) for l in fetch_lines(untagged)}
    c.send(f"e1 UID SEARCH RETURN (ALL COUNT) MODSEQ {ms[2]}\r\n")
    untagged, tagged = c.read_until_tagged("e1")
    assert untagged == [f'* ESEARCH (TAG "e1") UID COUNT 2 ALL 2,4 MODSEQ {ms[4]}'], untagged
    # MIN alone: the modseq of that message (RFC 7162 3.1.11).
    c.send(f"e2 SEARCH RETURN (MIN) MODSEQ {ms[2]}\r\n")
    untagged, tagged = c.read_until_tagged("e2")
    assert untagged == [f'* ESEARCH (TAG "e2") MIN 2 MODSEQ {ms[2]}'], untagged
    c.send(f"e3 SEARCH RETURN (COUNT) MODSEQ {ms[4] + 1}\r\n")
    untagged, tagged = c.read_until_tagged("e3")
    assert untagged == ['* ESEARCH (TAG "e3") COUNT 0'], untagged


def test_capabilities_after_login():
    server = Server(listeners=(("plain", "none"),),
                    extra="allow_plaintext_auth = yes\nmax_literal_size = 100000")
    c = server.connect("plain")
    c.read_greeting()
    before = c.capabilities()
    for name in ("CONDSTORE", "QRESYNC", "ESEARCH", "OBJECTID", "SAVEDATE", "WITHIN"):
        assert name not in before, before
    _, tagged = c.login()
    assert "CONDSTORE" in tagged and "APPENDLIMIT=100000" in tagged, tagged
    caps = c.capabilities()
    for name in ("CONDSTORE", "QRESYNC", "ESEARCH", "WITHIN", "SAVEDATE", "OBJECTID", "APPENDLIMIT=100000"):
        assert caps.count(name) == 1, (name, caps)
    # RFC 7889: a message over APPENDLIMIT is refused before it is sent.
    c.send(b"big APPEND INBOX {100001}\r\n")
    _, tagged = c.read_until_tagged("big")
    assert tagged.startswith("big BAD [TOOBIG]"), tagged
    body = b"Subject: x\r\n\r\n" + b"y" * (100000 - 14)
    c.send(b"fits APPEND INBOX {100000}\r\n")
    line = c.read_line()
    assert line.startswith("+"), line
    c.send(body + b"\r\n")
    _, tagged = c.read_until_tagged("fits")
    assert tagged.startswith("fits OK"), tagged


def test_status_highestmodseq_enables_condstore():
    c = session(make_server())
    append(c, 1)
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok("FETCH 1 (FLAGS)")
    assert untagged == ["* 1 FETCH (FLAGS ())"], untagged
    untagged, _ = c.expect_ok("STATUS INBOX (HIGHESTMODSEQ)")
    top = highestmodseq(untagged)
    assert f"* STATUS INBOX (HIGHESTMODSEQ {top})" in untagged, untagged
    untagged, _ = c.expect_ok("FETCH 1 (FLAGS)")
    assert re.match(r"\* 1 FETCH \(FLAGS \(\) MODSEQ \(\d+\)\)$", untagged[0]), untagged
