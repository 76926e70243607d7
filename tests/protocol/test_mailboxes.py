"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
LSUB, STATUS, NAMESPACE; names in modified UTF-7; special-use mailboxes;
one user never sees another's mailboxes."""
import re

from harness import Server, session


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def names(untagged, kind="LIST"):
    out = {}
    for line in untagged:
        m = re.match(r'\* %s \(([^)]*)\) "/" (.*)$' % kind, line)
        if m:
            out[m.group(2).strip('"')] = set(m.group(1).split())
    return out


def test_special_use_mailboxes_at_first_login():
    c = session(make_server())
    listed = names(c.expect_ok('LIST "" "*"')[0])
    assert listed["Sent"] >= {"\\Sent", "\\HasNoChildren"}, listed
    for box, attr in (("Drafts", "\\Drafts"), ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert attr in listed[box], listed
    assert "INBOX" in listed
    subscribed = names(c.expect_ok('LSUB "" "*"')[0], "LSUB")
    assert set(subscribed) == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}, subscribed
    untagged, _ = c.expect_ok('LIST (SPECIAL-USE) "" "*"')
    assert set(names(untagged)) == {"Drafts", "Sent", "Trash", "Junk", "Archive"}


def test_create_hierarchy_and_list_patterns():
    c = session(make_server())
    c.expect_ok("CREATE work/projects/2026")
    c.expect_ok("CREATE other/")
    assert "other" in names(c.expect_ok('LIST "" "other"')[0])
    _, tagged = c.command("CREATE work/")
    assert "NO [ALREADYEXISTS]" in tagged, tagged
    top = names(c.expect_ok('LIST "" "%"')[0])
    assert top["work"] == {"\\HasChildren"}, top
    assert "work/projects" not in top
    below = names(c.expect_ok('LIST "work/" "%"')[0])
    assert set(below) == {"work/projects"}, below
    everything = names(c.expect_ok('LIST "" "work*"')[0])
    assert set(everything) == {"work", "work/projects", "work/projects/2026"}
    assert everything["work/projects/2026"] == {"\\HasNoChildren"}
    untagged, _ = c.expect_ok('LIST "" ""')
    assert untagged == ['* LIST (\\Noselect) "/" ""'], untagged
    assert set(names(c.expect_ok('LIST "" "inbox"')[0])) == {"INBOX"}


def test_delete_and_rename():
    c = session(make_server())
    c.expect_ok("CREATE a/b")
    c.expect_ok("DELETE a")
    listed = names(c.expect_ok('LIST "" "a*"')[0])
    assert listed["a"] == {"\\Noselect", "\\HasChildren"} and "a/b" in listed, listed
    c.expect_ok("RENAME a/b c/d")
    listed = names(c.expect_ok('LIST "" "*"')[0])
    assert "c/d" in listed and "a/b" not in listed
    c.expect_ok("CREATE p")
    c.expect_ok("CREATE p/q")
    c.expect_ok("RENAME p r")
    listed = names(c.expect_ok('LIST "" "r*"')[0])
    assert set(listed) == {"r", "r/q"}, listed
    _, tagged = c.command("RENAME r Sent")
    assert "NO [ALREADYEXISTS]" in tagged, tagged
    _, tagged = c.command("RENAME nosuch x")
    assert "NO [NONEXISTENT]" in tagged, tagged
    _, tagged = c.command("DELETE INBOX")
    assert " NO " in tagged, tagged
    _, tagged = c.command("DELETE nosuch")
    assert "NO [NONEXISTENT]" in tagged, tagged


def test_rename_inbox_moves_its_messages():
    c = session(make_server())
    for i in range(3):
        msg = f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()
        c.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        _, tagged = c.read_until_tagged("a")
        assert " OK " in tagged
    c.expect_ok("RENAME INBOX old-inbox")
    untagged, _ = c.expect_ok("STATUS old-inbox (MESSAGES)")
    assert untagged == ["* STATUS old-inbox (MESSAGES 3)"], untagged
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES)")
    assert untagged == ["* STATUS INBOX (MESSAGES 0)"], untagged


def test_subscriptions():
    c = session(make_server())
    c.expect_ok("CREATE lists/a")
    c.expect_ok("SUBSCRIBE lists/a")
    c.expect_ok("SUBSCRIBE ghost")
    lsub = names(c.expect_ok('LSUB "" "*"')[0], "LSUB")
    assert "lists/a" in lsub and lsub["ghost"] == {"\\Noselect"} and "lists" not in lsub, lsub
    lsub = names(c.expect_ok('LSUB "" "%"')[0], "LSUB")
    assert lsub["lists"] == {"\\Noselect"}, lsub
    listed = names(c.expect_ok('LIST (SUBSCRIBED) "" "*"')[0])
    assert listed["ghost"] >= {"\\NonExistent", "\\Subscribed"}, listed
    assert "\\Subscribed" in listed["lists/a"]
    listed = names(c.expect_ok('LIST "" "*" RETURN (SUBSCRIBED)')[0])
    assert "\\Subscribed" in listed["lists/a"] and "\\Subscribed" not in listed["lists"], listed
    c.expect_ok("UNSUBSCRIBE lists/a")
    assert "lists/a" not in names(c.expect_ok('LSUB "" "*"')[0], "LSUB")


def test_status_items():
    c = session(make_server())
    msg = b"Subject: x\r\n\r\nhello\r\n"
    c.send(b"a APPEND INBOX (\\Seen) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    c.read_until_tagged("a")
    c.send(b"b APPEND INBOX (\\Deleted) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    c.read_until_tagged("b")
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN DELETED SIZE UIDVALIDITY)")
    m = re.match(r"\* STATUS INBOX \(MESSAGES 2 RECENT \d+ UIDNEXT 3 UNSEEN 1 DELETED 1 SIZE (\d+) UIDVALIDITY \d+\)", untagged[0])
    assert m and int(m.group(1)) == 2 * len(msg), untagged
    _, tagged = c.command("STATUS INBOX (BOGUS)")
    assert " BAD " in tagged
    _, tagged = c.command("STATUS nosuch (MESSAGES)")
    assert "NO [NONEXISTENT]" in tagged
    untagged, _ = c.expect_ok('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
    assert untagged[1] == "* STATUS INBOX (MESSAGES 2 UNSEEN 1)", untagged


def test_mailbox_names_utf7_and_invalid():
    c = session(make_server())
    c.expect_ok('CREATE "Entw&APw-rfe"')
    assert "Entw&APw-rfe" in names(c.expect_ok('LIST "" "Entw*"')[0])
    for bad in ('"a//b"', '"/lead"', '"bad&name"', '"x&AGE-"', '"ctl\x01"'):
        _, tagged = c.command("CREATE " + bad)
        assert " NO " in tagged or " BAD " in tagged, (bad, tagged)
    _, tagged = c.command('CREATE "' + "x" * 1200 + '"')
    assert " NO " in tagged or " BAD " in tagged, tagged
    _, tagged = c.command('CREATE "caf\xc3\xa9"')
    assert " BAD " in tagged, tagged
    _, tagged = c.command('CREATE "../../etc"')
    untagged, _ = c.expect_ok('LIST "" "*"')
    # A name is only ever a name: nothing escapes to the filesystem.
    assert all("etc/passwd" not in l for l in untagged)


def test_namespace():
    c = session(make_server())
    untagged, _ = c.expect_ok("NAMESPACE")
    assert untagged == ['* NAMESPACE (("" "/")) NIL NIL'], untagged


def test_second_user_sees_nothing_of_the_first():
    server = make_server()
    a = session(server, "alice")
    a.expect_ok("CREATE secret")
    msg = b"Subject: private\r\n\r\nfor alice only\r\n"
    a.send(b"x APPEND secret {%d+}\r\n" % len(msg) + msg + b"\r\n")
    a.read_until_tagged("x")
    b = session(server, "bob")
    assert "secret" not in names(b.expect_ok('LIST "" "*"')[0])
    for cmd in ("SELECT secret", "STATUS secret (MESSAGES)", "DELETE secret", 'RENAME secret mine',
                "SELECT ../alice/secret", "EXAMINE alice/secret"):
        _, tagged = b.command(cmd)
        assert " NO " in tagged or " BAD " in tagged, (cmd, tagged)
    untagged, _ = b.expect_ok("STATUS INBOX (MESSAGES)")
    assert untagged == ["* STATUS INBOX (MESSAGES 0)"]
    untagged, _ = a.expect_ok("STATUS secret (MESSAGES)")
    assert untagged == ["* STATUS secret (MESSAGES 1)"]


def test_commands_need_login_and_selection():
    server = make_server()
    c = server.connect("plain")
    c.read_greeting()
    for cmd in ("SELECT INBOX", 'LIST "" "*"', "CREATE x", "APPEND INBOX {1+}\r\nx"):
        _, tagged = c.command(cmd)
        assert " BAD " in tagged, (cmd, tagged)
    c.login()
    for cmd in ("EXPUNGE", "CLOSE", "STORE 1 +FLAGS (\\Seen)", "COPY 1 INBOX", "UID MOVE 1 INBOX", "CHECK"):
        _, tagged = c.command(cmd)
        assert " BAD " in tagged, (cmd, tagged)


def test_unquoted_wildcard_patterns():
    # RFC 9051 9: list-mailbox allows % and * in atoms.
    c = session(make_server())
    c.expect_ok("CREATE a/b")
    assert set(names(c.expect_ok('LIST "" *')[0])) >= {"INBOX", "Sent", "a", "a/b"}
    assert set(names(c.expect_ok('LIST "" %')[0])) == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "a"}
    assert set(names(c.expect_ok("LIST a/ %")[0])) == {"a/b"}
    assert set(names(c.expect_ok('LIST "" Tr%h')[0])) == {"Trash"}
    lsub = names(c.expect_ok('LSUB "" *')[0], "LSUB")
    assert lsub["Sent"] == set(), lsub
