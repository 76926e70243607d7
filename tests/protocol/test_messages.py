"""APPEND, STORE, COPY, MOVE, EXPUNGE and UID EXPUNGE; EXAMINE is read-only;
two sessions on one mailbox see each other's changes at the times RFC 9051
allows; UIDs are never reused; a crash loses no acknowledged APPEND."""
import os
import re
import signal
import threading
import time

from harness import Server, session


def make_server(**kw):
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes", **kw)


def append(c, mailbox="INBOX", body=None, flags="", date="", tag="ap"):
    body = body or f"From: x@example.org\r\nSubject: test {time.monotonic()}\r\n\r\nbody\r\n".encode()
    extra = (f" ({flags})" if flags else "") + (f' "{date}"' if date else "")
    c.send(f"{tag} APPEND {mailbox}{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    return c.read_until_tagged(tag)


def appenduid(tagged):
    m = re.search(r"\[APPENDUID (\d+) ([\d:,]+)\]", tagged)
    assert m, tagged
    return int(m.group(1)), m.group(2)


def test_append_flags_date_and_appenduid():
    c = session(make_server())
    _, tagged = append(c, flags="\\Seen \\Flagged $Work", date="14-Jul-2024 09:30:00 +0200")
    validity, uid = appenduid(tagged)
    assert uid == "1"
    _, tagged = append(c)
    assert appenduid(tagged) == (validity, "2")
    untagged, tagged = c.expect_ok("SELECT INBOX")
    assert "* 2 EXISTS" in untagged and f"* OK [UIDVALIDITY {validity}] UIDs valid" in untagged, untagged
    flags_line = [l for l in untagged if l.startswith("* FLAGS")][0]
    assert "$Work" in flags_line, flags_line
    assert "[READ-WRITE]" in tagged


def test_append_errors():
    c = session(make_server())
    _, tagged = append(c, mailbox="nosuch")
    assert "NO [TRYCREATE]" in tagged, tagged
    _, tagged = append(c, flags="\\Recent")
    assert " BAD " in tagged, tagged
    _, tagged = append(c, date="31-Foo-2024 00:00:00 +0000")
    assert " BAD " in tagged, tagged
    _, tagged = c.command("APPEND INBOX")
    assert " BAD " in tagged, tagged
    c.send(b"e APPEND INBOX {0}\r\n")
    line = c.read_line()
    if line.startswith("+"):
        c.send(b"\r\n")
        _, line = c.read_until_tagged("e")
    assert " NO " in line or " BAD " in line, line


def test_multiappend_is_all_or_nothing():
    c = session(make_server())
    m1 = b"Subject: one\r\n\r\n1\r\n"
    m2 = b"Subject: two\r\n\r\n2\r\n"
    c.send(b"m APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(m1), m1, len(m2), m2))
    _, tagged = c.read_until_tagged("m")
    assert appenduid(tagged)[1] == "1:2", tagged
    c.send(b"n APPEND INBOX {%d+}\r\n%s (\\Recent) {%d+}\r\n%s\r\n" % (len(m1), m1, len(m2), m2))
    _, tagged = c.read_until_tagged("n")
    assert " BAD " in tagged
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES)")
    assert untagged == ["* STATUS INBOX (MESSAGES 2)"]


def test_store_variants():
    c = session(make_server())
    append(c)
    append(c, flags="\\Draft")
    c.expect_ok("SELECT INBOX")
    untagged, _ = c.expect_ok("STORE 1 +FLAGS (\\Seen $Label)")
    assert any(re.match(r"\* 1 FETCH \(FLAGS \(\\Seen \$Label( \\Recent)?\)\)", l) for l in untagged), untagged
    untagged, _ = c.expect_ok("STORE 1:2 FLAGS.SILENT (\\Answered)")
    assert not any("FETCH" in l for l in untagged), untagged
    untagged, _ = c.expect_ok("UID STORE 2 -FLAGS (\\Answered)")
    assert any(re.match(r"\* 2 FETCH \(UID 2 FLAGS \(", l) for l in untagged), untagged
    untagged, _ = c.expect_ok("STORE 1 FLAGS \\Deleted")
    assert any("\\Deleted" in l for l in untagged), untagged
    for bad in ("STORE 3 +FLAGS (\\Seen)", "STORE 1 +FLAGS (\\Recent)", "STORE 1 BOGUS (\\Seen)",
                "STORE 1 +FLAGS (\\Unknown)", "STORE x +FLAGS (\\Seen)"):
        _, tagged = c.command(bad)
        assert " BAD " in tagged, (bad, tagged)
    _, tagged = c.command("UID STORE 999 +FLAGS (\\Seen)")
    assert " OK " in tagged, tagged


def test_expunge_numbers_and_uid_expunge():
    c = session(make_server())
    for _ in range(6):
        append(c)
    c.expect_ok("SELECT INBOX")
    c.expect_ok("STORE 2,4:5 +FLAGS.SILENT (\\Deleted)")
    untagged, _ = c.expect_ok("EXPUNGE")
    # Highest first keeps each number valid: 5, 4, 2.
    assert untagged == ["* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE"], untagged
    c.expect_ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    untagged, _ = c.expect_ok("UID EXPUNGE 3")
    assert untagged == ["* 2 EXPUNGE"], untagged
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES)")
    assert untagged == ["* STATUS INBOX (MESSAGES 2)"]
    c.expect_ok("CLOSE")
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES UIDNEXT)")
    assert untagged == ["* STATUS INBOX (MESSAGES 0 UIDNEXT 7)"], untagged


def test_uids_never_reused_across_restart():
    server = make_server()
    c = session(server)
    for _ in range(3):
        append(c)
    c.expect_ok("SELECT INBOX")
    c.expect_ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    c.expect_ok("EXPUNGE")
    c.close()
    server.stop()
    server.start()
    c = session(server)
    _, tagged = append(c)
    assert appenduid(tagged)[1] == "4", tagged


def test_copy_and_move_with_copyuid():
    c = session(make_server())
    for _ in range(3):
        append(c)
    c.expect_ok("CREATE dest")
    c.expect_ok("SELECT INBOX")
    _, tagged = c.expect_ok("COPY 1:2 dest")
    assert re.search(r"\[COPYUID \d+ 1:2 1:2\]", tagged), tagged
    untagged, tagged = c.expect_ok("UID MOVE 2:3 dest")
    assert re.match(r"\* OK \[COPYUID \d+ 2:3 3:4\]", untagged[0]), untagged
    assert untagged[1:] == ["* 3 EXPUNGE", "* 2 EXPUNGE"], untagged
    _, tagged = c.command("COPY 1 nosuch")
    assert "NO [TRYCREATE]" in tagged, tagged
    _, tagged = c.command("UID COPY 99 dest")
    assert " OK " in tagged, tagged
    untagged, _ = c.expect_ok("STATUS dest (MESSAGES)")
    assert untagged == ["* STATUS dest (MESSAGES 4)"], untagged


def test_examine_is_read_only():
    c = session(make_server())
    append(c)
    untagged, tagged = c.expect_ok("EXAMINE INBOX")
    assert "[READ-ONLY]" in tagged and "* OK [PERMANENTFLAGS ()] Flags permitted" in untagged
    for cmd in ("STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "MOVE 1 Trash"):
        _, tagged = c.command(cmd)
        assert "NO [READ-ONLY]" in tagged, (cmd, tagged)
    c.expect_ok("COPY 1 Trash")
    untagged, tagged = c.expect_ok("SELECT INBOX")
    assert "[READ-WRITE]" in tagged and untagged[0] == "* OK [CLOSED] Previous mailbox closed", untagged
    c.expect_ok("UNSELECT")


def test_two_sessions_see_each_others_changes():
    server = make_server()
    a = session(server)
    b = session(server)
    append(a)
    a.expect_ok("SELECT INBOX")
    b.expect_ok("SELECT INBOX")
    append(b)
    untagged, _ = a.expect_ok("NOOP")
    assert "* 2 EXISTS" in untagged, untagged
    b.expect_ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    untagged, _ = a.expect_ok("NOOP")
    assert any(re.match(r"\* 1 FETCH \(FLAGS \(\\Flagged", l) for l in untagged), untagged
    b.expect_ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.expect_ok("EXPUNGE")
    # RFC 9051 7.4.1: no EXPUNGE while answering STORE; it waits.
    untagged, _ = a.expect_ok("STORE 2 +FLAGS (\\Seen)")
    assert not any("EXPUNGE" in l for l in untagged), untagged
    assert any(l.startswith("* 2 FETCH") for l in untagged), untagged
    untagged, _ = a.expect_ok("NOOP")
    assert "* 1 EXPUNGE" in untagged, untagged


def test_sessions_in_different_workers():
    server = make_server(workers=2)
    clients = [session(server) for _ in range(4)]
    for c in clients:
        c.expect_ok("SELECT INBOX")
    append(clients[0])
    for c in clients[1:]:
        untagged, _ = c.expect_ok("NOOP")
        assert "* 1 EXISTS" in untagged, untagged


def test_kill_during_concurrent_appends_loses_nothing_acknowledged():
    server = make_server(workers=2)
    acknowledged = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n):
        try:
            c = session(server)
            i = 0
            while not stop.is_set():
                body = f"Subject: w{n}-{i}\r\n\r\n{'x' * (i * 37 % 4000)}\r\n".encode()
                _, tagged = append(c, body=body, flags="\\Flagged", tag=f"w{i}")
                if " OK " in tagged:
                    with lock:
                        acknowledged.append((appenduid(tagged)[1], body))
                i += 1
        except (OSError, EOFError):
            pass

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.kill(server.proc.pid, signal.SIGKILL)
    for pid in os.popen(f"pgrep -f '{server.config}'").read().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    stop.set()
    for t in threads:
        t.join(10)
    server.proc.wait()
    assert len(acknowledged) > 5, acknowledged
    server.start()
    c = session(server)
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES)")
    count = int(re.search(r"MESSAGES (\d+)", untagged[0]).group(1))
    assert count >= len(acknowledged), (count, len(acknowledged))
    c.expect_ok("SELECT INBOX")
    # Every acknowledged UID is there with its flag.
    uids = ",".join(uid for uid, _ in acknowledged)
    untagged, _ = c.expect_ok(f"UID STORE {uids} +FLAGS (\\Seen)")
    got = {re.search(r"UID (\d+)", l).group(1) for l in untagged if "FETCH" in l}
    assert got == {uid for uid, _ in acknowledged}, (len(got), len(acknowledged))
    assert all("\\Flagged" in l for l in untagged if "FETCH" in l)
    # And whole: every acknowledged body comes back byte for byte.
    for uid, body in acknowledged:
        c.send(f"f{uid} UID FETCH {uid} BODY.PEEK[]\r\n")
        first = c.read_line()
        m = re.search(r"BODY\[\] \{(\d+)\}$", first)
        assert m and int(m.group(1)) == len(body), (first, len(body))
        while len(c.buf) < len(body):
            c.buf += c.sock.recv(65536)
        assert c.buf[:len(body)] == body, uid
        c.buf = c.buf[len(body):]
        _, tagged = c.read_until_tagged(f"f{uid}")
        assert " OK " in tagged, tagged


def test_commands_arriving_with_the_close_are_still_run():
    # The client pipelines everything and shuts its side at once: the bytes
    # and the FIN come in one read, and the commands must still run.
    import socket
    server = make_server()
    s = socket.create_connection(("127.0.0.1", server.ports["plain"]), timeout=10)
    body = b"Subject: last words\r\n\r\nsent right before the close\r\n"
    s.sendall(b'a LOGIN alice wonderland\r\nb APPEND INBOX {%d+}\r\n%s\r\nc LOGOUT\r\n' % (len(body), body))
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
    s.close()
    c = session(server)
    untagged, _ = c.expect_ok("STATUS INBOX (MESSAGES)")
    assert untagged == ["* STATUS INBOX (MESSAGES 1)"], untagged
