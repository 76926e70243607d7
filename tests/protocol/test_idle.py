"""IDLE (RFC 2177): updates pushed at once to idling sessions, in the same
worker and in another, DONE ends it, keepalives, and Python's imaplib."""
import re
import socket
import time

from harness import Server


def make_server(**kw):
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes\n" + kw.pop("extra", ""), **kw)


def session(server, user="alice"):
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    return c


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
