"""IMAP4rev2 (RFC 9051) next to IMAP4rev1: both are advertised, and a
client opts in with ENABLE IMAP4rev2 (6.3.1). After that (Appendix E):
no \\Recent flag and no RECENT response or UNSEEN code; SEARCH answers
with ESEARCH; mailbox names in UTF-8; LIST marks names without a mailbox
\\NonExistent; SELECT and EXAMINE send a LIST response for the mailbox;
OK [CLOSED] when one mailbox replaces another; RFC822 FETCH items and
LSUB keep working. IMAP4rev1 sessions see none of this."""
import re

from harness import Server


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def session(server, user="alice", rev2=True):
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    if rev2:
        untagged, _ = c.expect_ok("ENABLE IMAP4rev2")
        assert untagged == ["* ENABLED IMAP4rev2"], untagged
    return c


def append(c, subject, mailbox="INBOX", flags=""):
    body = f"From: a@example.org\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n".encode()
    extra = f" ({flags})" if flags else ""
    c.send(f"ap APPEND {mailbox}{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert tagged.startswith("ap OK"), tagged


def list_attrs(untagged):
    """{name: set of attributes} of LIST/LSUB responses."""
    out = {}
    for line in untagged:
        m = re.match(r'\* (?:LIST|LSUB) \(([^)]*)\) "/" (.+)$', line)
        if m:
            out[m.group(2).strip('"')] = set(m.group(1).split())
    return out


def test_capabilities():
    server = make_server()
    c = server.connect("plain")
    greeting = c.read_greeting()
    assert "IMAP4rev1 IMAP4rev2" in greeting, greeting
    caps = c.capabilities()
    assert "IMAP4rev1" in caps and "IMAP4rev2" in caps, caps
    c.login()
    caps = c.capabilities()
    # What IMAP4rev2 folds in (Appendix E) is offered on its own too.
    for cap in ("IMAP4rev2", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "UNSELECT", "ESEARCH",
                "SEARCHRES", "BINARY", "MOVE", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE",
                "STATUS=SIZE", "CHILDREN", "LITERAL+"):
        assert cap in caps, (cap, caps)
    # LITERAL+ covers LITERAL- (RFC 7888): only one of them is announced.
    assert "LITERAL-" not in caps, caps


def test_enable():
    server = make_server()
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.command("ENABLE IMAP4rev2")
    assert " BAD " in tagged, tagged          # not authenticated yet
    c.login()
    untagged, _ = c.expect_ok("ENABLE IMAP4rev2 X-UNKNOWN")
    assert untagged == ["* ENABLED IMAP4rev2"], untagged
    # Enabled once: a second ENABLE reports nothing new (RFC 5161 3.1).
    untagged, _ = c.expect_ok("ENABLE imap4rev2")
    assert untagged == ["* ENABLED"], untagged
    c.expect_ok("SELECT INBOX")
    _, tagged = c.command("ENABLE IMAP4rev2")
    assert " BAD " in tagged, tagged          # ENABLE is for the authenticated state


def test_no_recent():
    server = make_server()
    rev2 = session(server)
    rev1 = session(server, rev2=False)
    append(rev2, "one")
    untagged, _ = rev2.expect_ok("SELECT INBOX")
    assert not [l for l in untagged if "RECENT" in l or "[UNSEEN" in l], untagged
    assert "* 1 EXISTS" in untagged, untagged
    rev1.expect_ok("SELECT INBOX")
    append(rev1, "two")
    untagged, _ = rev2.expect_ok("NOOP")
    assert "* 2 EXISTS" in untagged and not [l for l in untagged if "RECENT" in l], untagged
    untagged, _ = rev1.expect_ok("NOOP")
    append(rev2, "three")
    untagged, _ = rev1.expect_ok("NOOP")
    # "two" and "three" arrived while rev1 had INBOX selected.
    assert "* 3 EXISTS" in untagged and "* 2 RECENT" in untagged, untagged
    untagged, _ = rev1.expect_ok("FETCH 3 FLAGS")
    assert "\\Recent" in untagged[0], untagged
    untagged, _ = rev2.expect_ok("FETCH 1:* FLAGS")
    assert len(untagged) == 3 and not [l for l in untagged if "\\Recent" in l], untagged
    untagged, _ = rev2.expect_ok("STORE 3 +FLAGS (\\Flagged)")
    assert not [l for l in untagged if "\\Recent" in l], untagged
    # RECENT and NEW match nothing, OLD everything.
    untagged, _ = rev2.expect_ok("SEARCH RECENT")
    assert untagged == ['* ESEARCH (TAG "%s")' % f"t{rev2.tag_counter}"], untagged
    untagged, _ = rev2.expect_ok("SEARCH RETURN (COUNT) OLD")
    assert untagged[0].endswith("COUNT 3"), untagged


def test_esearch_answers():
    server = make_server()
    c = session(server)
    for i in range(3):
        append(c, f"m{i}", flags="\\Seen" if i else "")
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.command("SEARCH ALL", tag="s1")
    assert untagged == ['* ESEARCH (TAG "s1") ALL 1:3'], untagged
    untagged, _ = c.command("UID SEARCH SEEN", tag="s2")
    assert untagged == ['* ESEARCH (TAG "s2") UID ALL 2:3'], untagged
    untagged, _ = c.command("SEARCH DELETED", tag="s3")
    assert untagged == ['* ESEARCH (TAG "s3")'], untagged
    untagged, _ = c.command("SEARCH RETURN (MIN COUNT) SEEN", tag="s4")
    assert untagged == ['* ESEARCH (TAG "s4") MIN 2 COUNT 2'], untagged
    rev1 = session(server, rev2=False)
    rev1.expect_ok("SELECT INBOX")
    untagged, _ = rev1.expect_ok("SEARCH ALL")
    assert untagged == ["* SEARCH 1 2 3"], untagged


def test_utf8_mailbox_names():
    server = make_server()
    c = session(server)
    c.send('c1 CREATE "Entwürfe/Päckchen"\r\n'.encode())
    _, tagged = c.read_until_tagged("c1")
    assert tagged.startswith("c1 OK"), tagged
    untagged, _ = c.expect_ok('LIST "" "Entw*"')
    names = list_attrs(untagged)
    assert set(names) == {"Entwürfe", "Entwürfe/Päckchen"}, untagged
    append(c, "x", mailbox='"Entwürfe/Päckchen"')
    untagged, _ = c.expect_ok('STATUS "Entwürfe/Päckchen" (MESSAGES)')
    assert untagged == ['* STATUS "Entwürfe/Päckchen" (MESSAGES 1)'], untagged
    # An IMAP4rev1 session sees modified UTF-7 (RFC 3501 5.1.3).
    rev1 = session(server, rev2=False)
    untagged, _ = rev1.expect_ok('LIST "" "Entw*"')
    assert set(list_attrs(untagged)) == {"Entw&APw-rfe", "Entw&APw-rfe/P&AOQ-ckchen"}, untagged


def test_list_nonexistent():
    server = make_server()
    c = session(server)
    c.expect_ok("CREATE a/b")
    c.expect_ok("DELETE a")                 # "a" goes, "a/b" stays
    c.expect_ok("SUBSCRIBE ghost")
    untagged, _ = c.expect_ok('LIST "" "%"')
    attrs = list_attrs(untagged)
    # "a" holds a mailbox but is none: \NonExistent (implies \Noselect).
    assert attrs["a"] == {"\\NonExistent", "\\HasChildren"}, attrs
    assert attrs["INBOX"] == {"\\HasNoChildren"}, attrs
    assert "ghost" not in attrs, attrs
    untagged, _ = c.expect_ok('LIST (SUBSCRIBED) "" "*"')
    attrs = list_attrs(untagged)
    assert attrs["ghost"] >= {"\\NonExistent", "\\Subscribed"}, attrs
    untagged, _ = c.expect_ok('LIST "" "*" RETURN (SUBSCRIBED)')
    attrs = list_attrs(untagged)
    assert "\\Subscribed" in attrs["INBOX"] and "\\Subscribed" not in attrs["a/b"], attrs
    # LSUB still answers for clients that send it, in its IMAP4rev1 words.
    untagged, _ = c.expect_ok('LSUB "" "*"')
    lsub = list_attrs(untagged)
    assert lsub["ghost"] == {"\\Noselect"} and "INBOX" in lsub, lsub
    # The delimiter query is unchanged.
    untagged, _ = c.expect_ok('LIST "" ""')
    assert untagged == ['* LIST (\\Noselect) "/" ""'], untagged
    rev1 = session(server, rev2=False)
    untagged, _ = rev1.expect_ok('LIST "" "%"')
    assert list_attrs(untagged)["a"] == {"\\Noselect", "\\HasChildren"}, untagged


def test_select_sends_list():
    server = make_server()
    c = session(server)
    c.expect_ok("CREATE INBOX/Sub")
    untagged, tagged = c.expect_ok("SELECT inbox")
    # The server's spelling of the name, with accurate attributes.
    assert list_attrs(untagged) == {"INBOX": {"\\HasChildren"}}, untagged
    assert "[READ-WRITE]" in tagged, tagged
    untagged, _ = c.expect_ok("EXAMINE Sent")
    assert untagged[0] == "* OK [CLOSED] Previous mailbox closed", untagged
    assert list_attrs(untagged) == {"Sent": {"\\HasNoChildren", "\\Sent"}}, untagged
    untagged, _ = c.expect_ok('SELECT "INBOX/Sub"')
    assert list_attrs(untagged) == {"INBOX/Sub": {"\\HasNoChildren"}}, untagged
    rev1 = session(server, rev2=False)
    untagged, _ = rev1.expect_ok("SELECT INBOX")
    assert not [l for l in untagged if l.startswith("* LIST")], untagged
    assert [l for l in untagged if "RECENT" in l], untagged


def test_rfc822_items_still_work():
    c = session(make_server())
    append(c, "old items")
    c.expect_ok("SELECT INBOX")
    untagged, tagged = c.expect_ok("FETCH 1 (RFC822.SIZE RFC822.HEADER)")
    assert "RFC822.SIZE " in untagged[0] and "RFC822.HEADER {" in untagged[0], untagged


def test_non_synchronizing_literals():
    """LITERAL- (part of IMAP4rev2) through LITERAL+: {n+} and {n-} up to
    4096 bytes and beyond need no continuation."""
    c = session(make_server())
    for size in (20, 4096, 5000):
        body = b"Subject: lit\r\n\r\n" + b"x" * (size - 16)
        for mark in (b"+", b"-"):
            c.send(b"l1 APPEND INBOX {%d%s}\r\n" % (size, mark) + body + b"\r\n")
            _, tagged = c.read_until_tagged("l1")
            assert tagged.startswith("l1 OK"), (size, mark, tagged)
