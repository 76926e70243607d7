"""IDLE (RFC 2177): updates pushed at once to idling sessions, in the same
worker and in another, DONE ends it, keepalives, and Python's imaplib."""
import re
import socket
import time

from harness import Server, session


def make_server(**kw):
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\n" + kw.pop("extra", ""), **kw)


def append(c, tag="ap"):
    body = b"Subject: push\r\n\r\nnew mail\r\n"
    c.send(b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (tag.encode(), len(body), body))
    return c.read_until_tagged(tag)


def start_idle(c, tag="idle"):
    c.send(f"{tag} IDLE\r\n")
    line = c.read_line()
    assert line.startswith("+ "), line


def read_within(c, seconds):
    c.sock.settimeout(seconds)
    try:
        return c.read_line()
    finally:
        c.sock.settimeout(10)


def test_idle_gets_exists_expunge_and_flags_at_once():
    server = make_server()
    watcher = session(server)
    actor = session(server)
    watcher.expect_ok("SELECT INBOX")
    actor.expect_ok("SELECT INBOX")
    start_idle(watcher)
    started = time.monotonic()
    append(actor)
    assert read_within(watcher, 2) == "* 1 EXISTS"
    assert time.monotonic() - started < 2
    assert read_within(watcher, 2) == "* 1 RECENT"
    actor.expect_ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    line = read_within(watcher, 2)
    assert re.match(r"\* 1 FETCH \(FLAGS \(\\Flagged", line), line
    actor.expect_ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    read_within(watcher, 2)
    actor.expect_ok("EXPUNGE")
    assert read_within(watcher, 2) == "* 1 EXPUNGE"
    watcher.send("DONE\r\n")
    _, tagged = watcher.read_until_tagged("idle")
    assert tagged == "idle OK IDLE terminated", tagged


def test_idle_across_workers():
    server = make_server(workers=2)
    watchers = [session(server) for _ in range(3)]
    for w in watchers:
        w.expect_ok("SELECT INBOX")
        start_idle(w)
    actor = session(server)
    append(actor)
    for w in watchers:
        assert read_within(w, 2) == "* 1 EXISTS"


def test_idle_keepalive_and_bad_done():
    server = make_server(extra="idle_keepalive_interval = 1")
    c = session(server)
    c.expect_ok("SELECT INBOX")
    start_idle(c)
    assert read_within(c, 3) == "* OK Still here"
    c.send("NOTDONE\r\n")
    _, tagged = c.read_until_tagged("idle")
    assert tagged.startswith("idle BAD"), tagged
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_idle_without_selected_mailbox_and_logout_while_idling():
    server = make_server()
    c = session(server)
    start_idle(c)
    c.send("DONE\r\n")
    _, tagged = c.read_until_tagged("idle")
    assert " OK " in tagged
    start_idle(c, "i2")
    c.close()
    time.sleep(0.2)
    d = session(server)
    d.expect_ok("NOOP")


def test_imaplib_idle():
    import imaplib
    server = make_server()
    actor = session(server)
    m = imaplib.IMAP4("127.0.0.1", server.ports["plain"])
    m.login("alice", "wonderland")
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+")
    append(actor)
    m.sock.settimeout(3)
    assert m.readline().strip() == b"* 1 EXISTS"
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag.encode()):
            assert b" OK " in line
            break
    m.logout()


def fetch_state(c):
    """UID -> (flags, size, internaldate) of every message, as the client sees it."""
    c.send("st UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)\r\n")
    untagged, tagged = c.read_until_tagged("st")
    assert tagged.startswith("st OK"), tagged
    state = {}
    for line in untagged:
        m = re.match(r"\* \d+ FETCH \((.*)\)$", line)
        if not m:
            continue
        items = m.group(1)
        uid = int(re.search(r"UID (\d+)", items).group(1))
        flags = sorted(re.search(r"FLAGS \(([^)]*)\)", items).group(1).replace("\\Recent", "").split())
        size = int(re.search(r"RFC822\.SIZE (\d+)", items).group(1))
        date = re.search(r'INTERNALDATE "([^"]+)"', items).group(1)
        state[uid] = (flags, size, date)
    return state


def read_until(c, wanted, seconds=3):
    """Untagged lines up to and including the one equal to wanted."""
    lines = []
    while True:
        line = read_within(c, seconds)
        lines.append(line)
        if line == wanted:
            return lines


def expunges(lines):
    return [line for line in lines if line.endswith(" EXPUNGE")]


def test_idle_view_numbers_and_flags_through_gaps_and_done():
    """While idling the view is packed (runs of UIDs, a flag byte each):
    expunges at the start, middle and end split and shrink the runs, and
    the sequence numbers, flags and keywords sent must still be exact; after
    DONE the full view (sizes, dates) comes back from the store and says
    what a session that never idled says."""
    server = make_server()
    watcher = session(server)
    actor = session(server)
    actor.expect_ok("SELECT INBOX")
    for i in range(8):
        append(actor, tag=f"a{i}")
    actor.expect_ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    actor.expect_ok("STORE 3 +FLAGS.SILENT ($Label1)")
    watcher.expect_ok("SELECT INBOX")
    start_idle(watcher)

    # The \\Deleted may be reported on its own if a wake-up falls between
    # the two commands: only the EXPUNGE lines are checked.
    actor.expect_ok("UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    actor.expect_ok("EXPUNGE")
    assert expunges(read_until(watcher, "* 4 EXPUNGE")) == ["* 4 EXPUNGE"]
    actor.expect_ok("UID STORE 1,8 +FLAGS.SILENT (\\Deleted)")
    actor.expect_ok("EXPUNGE")
    # Highest first, so each number is valid when it is read.
    assert expunges(read_until(watcher, "* 1 EXPUNGE")) == ["* 7 EXPUNGE", "* 1 EXPUNGE"]
    # UIDs 2,3,5,6,7 are left: UID 6 is number 4.
    actor.expect_ok("UID STORE 6 +FLAGS.SILENT (\\Seen $Fresh)")
    lines = read_until(watcher, "* 4 FETCH (FLAGS (\\Seen $Fresh))")
    assert any(line.startswith("* FLAGS (") and "$Fresh" in line for line in lines), lines
    append(actor, tag="b1")
    assert read_until(watcher, "* 6 EXISTS")[-1] == "* 6 EXISTS"
    assert read_within(watcher, 2) == "* 1 RECENT"
    actor.expect_ok("UID STORE 3 -FLAGS.SILENT ($Label1)")
    assert read_within(watcher, 2) == "* 2 FETCH (FLAGS ())"

    # A change just before DONE: reported now or after, never lost.
    actor.expect_ok("UID STORE 2 +FLAGS.SILENT (\\Answered)")
    watcher.send("DONE\r\n")
    untagged, tagged = watcher.read_until_tagged("idle")
    assert tagged == "idle OK IDLE terminated", tagged
    more, _ = watcher.command("NOOP")
    seen = [line for line in untagged + more if line.startswith("* 1 FETCH")]
    assert seen and "\\Answered" in seen[-1] and "\\Flagged" in seen[-1], untagged + more

    actor.expect_ok("NOOP")
    expected = fetch_state(actor)
    assert sorted(expected) == [2, 3, 5, 6, 7, 9], expected
    assert fetch_state(watcher) == expected
    watcher.send("se SEARCH ALL\r\n")
    untagged, _ = watcher.read_until_tagged("se")
    assert "* SEARCH 1 2 3 4 5 6" in untagged, untagged
