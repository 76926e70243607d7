"""SEARCHRES (RFC 5182, part of IMAP4rev2): SEARCH RETURN (SAVE) keeps the
result, and "$" stands for it in FETCH, STORE, COPY, MOVE, UID EXPUNGE and
SEARCH, as sequence numbers or UIDs alike. SAVE alone sends no ESEARCH;
with only MIN and/or MAX those are what is saved. "$" before any SAVE is
the empty set; SELECT, EXAMINE, CLOSE and UNSELECT forget the result; an
expunged message leaves it; a failed SAVE empties it; "$" mixed into a set
is BAD."""
import re

from harness import Server, session


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def append(c, subject, mailbox="INBOX", flags=""):
    body = f"From: a@example.org\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n".encode()
    extra = f" ({flags})" if flags else ""
    c.send(f"ap APPEND {mailbox}{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert tagged.startswith("ap OK"), tagged


def setup(c, count=6):
    """Messages 1..count; the even ones flagged."""
    for i in range(1, count + 1):
        append(c, f"m{i}", flags="\\Flagged" if i % 2 == 0 else "")
    c.expect_ok("SELECT INBOX")


def fetched(untagged):
    """Sequence numbers of the FETCH responses."""
    return [int(m.group(1)) for m in (re.match(r"\* (\d+) FETCH", l) for l in untagged) if m]


def uids_of(untagged):
    return [int(m.group(1)) for m in (re.search(r"UID (\d+)", l) for l in untagged if " FETCH " in l) if m]


def test_capability_advertised():
    c = session(make_server())
    assert "SEARCHRES" in c.capabilities()


def test_save_then_fetch_and_search():
    c = session(make_server())
    setup(c)
    untagged, tagged = c.command("SEARCH RETURN (SAVE) FLAGGED")
    assert " OK " in tagged, tagged
    # RFC 5182 2.1: SAVE alone asks for no ESEARCH (nor SEARCH).
    assert not [l for l in untagged if "SEARCH" in l], untagged
    untagged, _ = c.expect_ok("FETCH $ (UID)")
    assert fetched(untagged) == [2, 4, 6], untagged
    untagged, _ = c.expect_ok("UID FETCH $ (FLAGS)")
    assert fetched(untagged) == [2, 4, 6], untagged
    # "$" as a search key, bare and after UID, alone and combined.
    untagged, _ = c.expect_ok("SEARCH $")
    assert untagged == ["* SEARCH 2 4 6"], untagged
    untagged, _ = c.expect_ok("SEARCH NOT UID $")
    assert untagged == ["* SEARCH 1 3 5"], untagged
    untagged, _ = c.expect_ok("UID SEARCH $ 3:*")
    assert untagged == ["* SEARCH 4 6"], untagged
    # A new SAVE may use "$" itself; the result replaces the old one.
    untagged, _ = c.expect_ok("SEARCH RETURN (SAVE COUNT) $ 1:4")
    assert untagged == ["* ESEARCH (TAG \"%s\") COUNT 2" % _tag(c)], untagged
    untagged, _ = c.expect_ok("FETCH $ UID")
    assert fetched(untagged) == [2, 4], untagged


def _tag(c):
    return f"t{c.tag_counter}"


def test_save_with_min_max():
    c = session(make_server())
    setup(c)
    untagged, _ = c.expect_ok("SEARCH RETURN (SAVE MIN) FLAGGED")
    assert untagged == ['* ESEARCH (TAG "%s") MIN 2' % _tag(c)], untagged
    untagged, _ = c.expect_ok("FETCH $ UID")
    assert fetched(untagged) == [2], untagged
    c.expect_ok("SEARCH RETURN (SAVE MAX) FLAGGED")
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == [6]
    c.expect_ok("SEARCH RETURN (SAVE MIN MAX) FLAGGED")
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == [2, 6]
    # With ALL or COUNT every match is saved.
    c.expect_ok("UID SEARCH RETURN (SAVE MIN COUNT) FLAGGED")
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == [2, 4, 6]
    # MIN and MAX of a single match: one message.
    c.expect_ok("SEARCH RETURN (SAVE MIN MAX) 3")
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == [3]


def test_store_copy_move_expunge():
    c = session(make_server())
    c.expect_ok("CREATE Other")
    setup(c)
    c.expect_ok("SEARCH RETURN (SAVE) 2:3")
    untagged, _ = c.expect_ok("STORE $ +FLAGS (\\Seen)")
    assert fetched(untagged) == [2, 3], untagged
    _, tagged = c.expect_ok("COPY $ Other")
    assert "[COPYUID " in tagged and " 2:3 " in tagged, tagged
    c.expect_ok("UID STORE $ +FLAGS.SILENT (\\Deleted)")
    untagged, _ = c.expect_ok("UID EXPUNGE $")
    assert untagged == ["* 3 EXPUNGE", "* 2 EXPUNGE"], untagged
    # The expunged messages left "$": it is empty now, not an error.
    untagged, tagged = c.expect_ok("FETCH $ UID")
    assert fetched(untagged) == [], untagged
    # MOVE with a fresh result; sequence numbers follow the expunges.
    c.expect_ok("SEARCH RETURN (SAVE) UID 5")
    untagged, _ = c.expect_ok("MOVE $ Other")
    assert "* 3 EXPUNGE" in untagged, untagged
    c.expect_ok("SELECT Other")
    untagged, _ = c.expect_ok("FETCH 1:* (FLAGS)")
    assert len(fetched(untagged)) == 3, untagged


def test_expunged_elsewhere_leaves_result():
    server = make_server()
    a = session(server)
    setup(a)
    b = session(server)
    b.expect_ok("SELECT INBOX")
    a.expect_ok("SEARCH RETURN (SAVE) 1:3")
    b.expect_ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    untagged, _ = a.expect_ok("NOOP")
    assert "* 2 EXPUNGE" in untagged, untagged
    untagged, _ = a.expect_ok("UID FETCH $ UID")
    assert uids_of(untagged) == [1, 3], untagged


def test_empty_before_save_and_forgotten():
    c = session(make_server())
    setup(c)
    # RFC 5182 2.1: "$" before any SAVE is the empty set.
    untagged, tagged = c.expect_ok("FETCH $ UID")
    assert fetched(untagged) == [], untagged
    untagged, _ = c.expect_ok("SEARCH $")
    assert untagged == ["* SEARCH"], untagged
    _, tagged = c.expect_ok("STORE $ +FLAGS (\\Seen)")
    for reset in ("SELECT INBOX", "EXAMINE INBOX", "UNSELECT", "CLOSE"):
        c.expect_ok("SELECT INBOX")
        c.expect_ok("SEARCH RETURN (SAVE) ALL")
        assert len(fetched(c.expect_ok("FETCH $ UID")[0])) == 6
        c.expect_ok(reset)
        if reset in ("UNSELECT", "CLOSE"):
            c.expect_ok("SELECT INBOX")
        assert fetched(c.expect_ok("FETCH $ UID")[0]) == [], reset


def test_failed_save_empties_result():
    c = session(make_server())
    setup(c)
    c.expect_ok("SEARCH RETURN (SAVE) ALL")
    _, tagged = c.command("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert "[BADCHARSET" in tagged, tagged
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == []
    c.expect_ok("SEARCH RETURN (SAVE) ALL")
    _, tagged = c.command("SEARCH RETURN (SAVE) NOSUCHKEY")
    assert " BAD " in tagged, tagged
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == []
    # A SEARCH without SAVE leaves it alone.
    c.expect_ok("SEARCH RETURN (SAVE) 1")
    c.expect_ok("SEARCH ALL")
    c.command("SEARCH NOSUCHKEY")
    assert fetched(c.expect_ok("FETCH $ UID")[0]) == [1]


def test_bad_uses():
    c = session(make_server())
    setup(c)
    c.expect_ok("SEARCH RETURN (SAVE) ALL")
    for cmd in ("FETCH $,1 UID", "FETCH 1:$ UID", "STORE $:2 +FLAGS (\\Seen)", "SEARCH $,1",
                "UID EXPUNGE 1,$", "COPY $$ INBOX"):
        _, tagged = c.command(cmd)
        assert " BAD " in tagged, (cmd, tagged)
