"""APPEND of a big message streams it to disk as it arrives: a 50 MB literal,
synchronizing or LITERAL+, is stored byte for byte without the worker's
memory growing by anything like 50 MB; MULTIAPPEND mixes big and small
messages; a connection lost in the middle of a big literal leaves no temp
file; a bad mailbox gets TRYCREATE and stores nothing.

Memory is read from /proc/WORKER/status (VmRSS). Under ASan, freed memory
sits in a quarantine before reuse, so the server for the memory test runs
with a small quarantine: what is measured is what postern holds, not how
long ASan delays reuse."""
import hashlib
import os
import re
import subprocess
import time

from harness import Server

BIG = 50 * 1024 * 1024


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def session(server, user="alice"):
    c = server.connect("plain", timeout=60)
    c.read_greeting()
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    return c


def message(size, seed):
    """A plain text message of exactly size bytes, CRLF lines."""
    head = b"From: big@example.org\r\nTo: alice@example.org\r\nSubject: big %d\r\n\r\n" % seed
    line = b"%08d " % seed + b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[:size - len(head) - 2] + b"\r\n"


def worker_pid(server):
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True)
    pids = out.stdout.split()
    assert len(pids) == 1, pids
    return int(pids[0])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def user_dir(server, user="alice"):
    return os.path.join(server.dir, "data", "users", user)


def tmp_files(server, user="alice"):
    return os.listdir(os.path.join(user_dir(server, user), "blobs", "tmp"))


def blob_path(server, data, user="alice"):
    h = hashlib.sha256(data).hexdigest()
    return os.path.join(user_dir(server, user), "blobs", h[:2], h[2:])


def body_files(server, user="alice"):
    root = os.path.join(user_dir(server, user), "blobs")
    return sorted(os.path.join(root, d, f) for d in os.listdir(root) if len(d) == 2
                  for f in os.listdir(os.path.join(root, d)))


def status(c, mailbox="INBOX"):
    untagged, tagged = c.expect_ok(f"STATUS {mailbox} (MESSAGES SIZE)")
    m = re.search(r"MESSAGES (\d+) SIZE (\d+)", untagged[0])
    return int(m.group(1)), int(m.group(2))


def check_stored(server, data):
    """The body file holds exactly the bytes sent."""
    path = blob_path(server, data)
    assert os.path.getsize(path) == len(data), path
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.digest() == hashlib.sha256(data).digest()


def test_big_append_sync_and_literal_plus_keep_memory_flat():
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (old + ":" if old else "") + "quarantine_size_mb=4"
    try:
        server = make_server()
    finally:
        if old is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = old
    c = session(server)
    small = message(2000, 0)
    c.send(b"w APPEND INBOX {%d+}\r\n%s\r\n" % (len(small), small))
    _, tagged = c.read_until_tagged("w")
    assert " OK " in tagged, tagged
    pid = worker_pid(server)
    before = rss_kb(pid)
    peak = before

    # Synchronizing: "+" first, then the data in two halves, memory read
    # in between while the literal is half in.
    m1 = message(BIG, 1)
    c.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(m1))
    assert c.read_line().startswith("+ "), "no continuation"
    c.send(m1[:BIG // 2])
    time.sleep(0.5)
    peak = max(peak, rss_kb(pid))
    c.send(m1[BIG // 2:] + b"\r\n")
    _, tagged = c.read_until_tagged("a")
    assert " OK [APPENDUID " in tagged, tagged
    peak = max(peak, rss_kb(pid))

    # LITERAL+: the data follows the size at once.
    m2 = message(BIG, 2)
    c.send(b"b APPEND INBOX {%d+}\r\n" % len(m2) + m2[:BIG // 2])
    time.sleep(0.5)
    peak = max(peak, rss_kb(pid))
    c.send(m2[BIG // 2:] + b"\r\n")
    _, tagged = c.read_until_tagged("b")
    assert " OK [APPENDUID " in tagged, tagged
    after = rss_kb(pid)
    peak = max(peak, after)

    growth_mb = (peak - before) / 1024
    assert growth_mb < 20, f"worker RSS grew by {growth_mb:.1f} MB ({before} -> {peak} kB)"
    assert status(c) == (3, len(small) + 2 * BIG)
    check_stored(server, m1)
    check_stored(server, m2)
    assert tmp_files(server) == []
    # The metadata was computed from the mapped file: SELECT works and
    # the flags came along.
    untagged, _ = c.expect_ok("SELECT INBOX")
    assert "* 3 EXISTS" in untagged, untagged
    c.expect_ok("LOGOUT")


def test_multiappend_big_and_small():
    server = make_server()
    c = session(server)
    big = message(3 * 1024 * 1024, 3)
    s1 = b"Subject: small one\r\n\r\n1\r\n"
    s2 = b"Subject: small two\r\n\r\n2\r\n"
    big2 = message(400 * 1024, 4)
    c.send(b"m APPEND INBOX {%d+}\r\n%s (\\Flagged) {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s\r\n" %
           (len(s1), s1, len(big), big, len(s2), s2, len(big2), big2))
    _, tagged = c.read_until_tagged("m")
    m = re.search(r"\[APPENDUID \d+ 1:4\]", tagged)
    assert m, tagged
    assert status(c) == (4, len(s1) + len(big) + len(s2) + len(big2))
    check_stored(server, big)
    check_stored(server, big2)
    check_stored(server, s1)
    assert tmp_files(server) == []
    # The same with a synchronizing big literal in the middle.
    c.send(b"n APPEND INBOX {%d+}\r\n%s {%d}\r\n" % (len(s1), s1, len(big) + 1))
    assert c.read_line().startswith("+ ")
    c.send(big + b"y" + b" {%d+}\r\n%s\r\n" % (len(s2), s2))
    _, tagged = c.read_until_tagged("n")
    assert re.search(r"\[APPENDUID \d+ 5:7\]", tagged), tagged
    check_stored(server, big + b"y")
    # All or nothing: a bad flag on the last message stores neither big one.
    before = body_files(server)
    c.send(b"o APPEND INBOX {%d+}\r\n%s (\\Recent) {%d+}\r\n%s\r\n" %
           (len(big2), message(len(big2), 5), len(s1), s1))
    _, tagged = c.read_until_tagged("o")
    assert " BAD " in tagged, tagged
    assert status(c)[0] == 7
    assert body_files(server) == before
    assert tmp_files(server) == []


def test_dropped_in_the_middle_leaves_no_temp_file():
    server = make_server()
    for kind in (b"{%d}", b"{%d+}"):
        c = session(server)
        big = message(8 * 1024 * 1024, 6)
        c.send(b"a APPEND INBOX " + kind % len(big) + b"\r\n")
        if b"+" not in kind:
            assert c.read_line().startswith("+ ")
        c.send(big[:3 * 1024 * 1024])
        # The temp file is there while the literal comes in...
        deadline = time.monotonic() + 10
        while not tmp_files(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tmp_files(server)) == 1
        c.close()
        # ... and gone once the connection is.
        deadline = time.monotonic() + 10
        while tmp_files(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tmp_files(server) == [], tmp_files(server)
    # The server is fine: a new session appends and sees nothing stored.
    c = session(server)
    assert status(c) == (0, 0)
    small = b"Subject: after\r\n\r\nok\r\n"
    c.send(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(small), small))
    _, tagged = c.read_until_tagged("b")
    assert " OK " in tagged, tagged
    assert status(c) == (1, len(small))
    assert body_files(server) == [blob_path(server, small)]


def test_bad_mailbox_trycreate_stores_nothing():
    server = make_server()
    c = session(server)
    big = message(2 * 1024 * 1024, 7)
    c.send(b"a APPEND nosuch {%d+}\r\n%s\r\n" % (len(big), big))
    _, tagged = c.read_until_tagged("a")
    assert "NO [TRYCREATE]" in tagged, tagged
    c.send(b"b APPEND nosuch {%d}\r\n" % len(big))
    assert c.read_line().startswith("+ ")
    c.send(big + b"\r\n")
    _, tagged = c.read_until_tagged("b")
    assert "NO [TRYCREATE]" in tagged, tagged
    # A big literal as the mailbox name is refused, not read as one.
    c.send(b"c APPEND {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(big), big, len(big), big))
    _, tagged = c.read_until_tagged("c")
    assert " BAD " in tagged, tagged
    assert status(c) == (0, 0)
    assert body_files(server) == []
    assert tmp_files(server) == []
    _, tagged = c.command("NOOP")
    assert " OK " in tagged


def test_big_literal_elsewhere_and_too_big():
    """Other commands still take a big literal in memory, and a literal over
    max_literal_size is refused before any byte of it is read."""
    server = Server(listeners=(("plain", "none"),),
                    extra="allow_plaintext_auth = yes\nmax_literal_size = 4194304")
    c = session(server)
    name = b"x" * (300 * 1024)
    c.send(b"a STATUS {%d+}\r\n%s (MESSAGES)\r\n" % (len(name), name))
    _, tagged = c.read_until_tagged("a")
    assert " NO " in tagged or " BAD " in tagged, tagged
    c.send(b"b APPEND INBOX {%d}\r\n" % (4194304 + 1))
    line = c.read_line()
    assert line.startswith("b BAD [TOOBIG]"), line
    big = message(1024 * 1024, 8)
    c.send(b"c APPEND INBOX {%d+}\r\n%s\r\n" % (len(big), big))
    _, tagged = c.read_until_tagged("c")
    assert " OK " in tagged, tagged
    assert tmp_files(server) == []


def test_no_temp_file_refuses_before_the_data():
    """When no temp file can be made, a big synchronizing literal is refused
    instead of "+", and a LITERAL+ one is skipped with its command; the
    session goes on."""
    server = make_server()
    c = session(server)
    tmp = os.path.join(user_dir(server), "blobs", "tmp")
    os.rmdir(tmp)
    big = message(1024 * 1024, 9)
    c.send(b"a APPEND INBOX {%d}\r\n" % len(big))
    line = c.read_line()
    assert line.startswith("a NO [SERVERBUG]"), line
    c.send(b"b APPEND INBOX {%d+}\r\n%s (\\Seen) {3+}\r\nabc\r\n" % (len(big), big))
    _, tagged = c.read_until_tagged("b")
    assert tagged.startswith("b NO [SERVERBUG]"), tagged
    _, tagged = c.command("NOOP")
    assert " OK " in tagged, tagged
    assert status(c) == (0, 0)
    assert "event=store_error" in server.read_log()
    os.mkdir(tmp)
    c.send(b"d APPEND INBOX {%d+}\r\n%s\r\n" % (len(big), big))
    _, tagged = c.read_until_tagged("d")
    assert " OK " in tagged, tagged
    check_stored(server, big)
