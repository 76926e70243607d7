"""`postern deliver [-c FILE] [-m MAILBOX] USER < message`, the MDA: each
exit code from <sysexits.h> an MTA acts on, the -m fallback to INBOX, bare
LF made CRLF, and the message visible over IMAP."""
import hashlib
import os
import re
import subprocess

import harness
from harness import Server

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 67, 75, 78


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def deliver(server, *args, message=b"Subject: hi\r\n\r\nbody\r\n", config=None):
    cmd = [harness.BIN, "deliver", "-c", config or server.config, *args]
    return subprocess.run(cmd, input=message, capture_output=True, timeout=60)


def status(server, user="alice", mailbox="INBOX"):
    c = server.connect("plain")
    c.read_greeting()
    assert " OK " in c.login(user)[1]
    untagged, _ = c.expect_ok(f"STATUS {mailbox} (MESSAGES SIZE)")
    c.close()
    m = re.search(r"MESSAGES (\d+) SIZE (\d+)", untagged[0])
    return int(m.group(1)), int(m.group(2))


def blob_exists(server, user, data):
    h = hashlib.sha256(data).hexdigest()
    return os.path.exists(os.path.join(server.dir, "data", "users", user, "blobs", h[:2], h[2:]))


def test_deliver_inbox_visible_over_imap():
    server = make_server()
    c = server.connect("plain")
    c.read_greeting()
    c.login("alice")
    c.expect_ok("SELECT INBOX")
    msg = b"From: a@example.org\r\nSubject: via deliver\r\n\r\nhello\r\n"
    r = deliver(server, "alice", message=msg)
    assert r.returncode == EX_OK, r.stderr
    assert r.stderr == b"", r.stderr
    untagged, _ = c.expect_ok("NOOP")               # an open session sees it
    assert "* 1 EXISTS" in untagged, untagged
    assert status(server) == (1, len(msg))
    assert blob_exists(server, "alice", msg)


def test_deliver_bare_lf_and_mbox_from_line():
    server = make_server()
    r = deliver(server, "bob", message=b"From sender@example.org Thu Jan  1 00:00:00 2025\n"
                                       b"Subject: lf\n\nline one\nline two\r\nend")
    assert r.returncode == EX_OK, r.stderr
    want = b"Subject: lf\r\n\r\nline one\r\nline two\r\nend"
    assert status(server, "bob") == (1, len(want))
    assert blob_exists(server, "bob", want)


def test_deliver_mailbox_and_fallback():
    server = make_server()
    c = server.connect("plain")
    c.read_greeting()
    c.login("alice")
    c.expect_ok("CREATE Lists")
    c.close()
    r = deliver(server, "-m", "Lists", "alice")
    assert r.returncode == EX_OK and r.stderr == b"", r.stderr
    r = deliver(server, "-m", "NoSuch", "alice")
    assert r.returncode == EX_OK, r.stderr
    assert b"NoSuch does not exist" in r.stderr and b"INBOX" in r.stderr, r.stderr
    r = deliver(server, "-m", "", "alice")          # an empty ${extension}
    assert r.returncode == EX_OK and r.stderr == b"", r.stderr
    assert status(server, mailbox="Lists")[0] == 1
    assert status(server)[0] == 2


def test_deliver_unknown_user_67():
    server = make_server()
    r = deliver(server, "nobody")
    assert r.returncode == EX_NOUSER, (r.returncode, r.stderr)
    assert b"no such user" in r.stderr


def test_deliver_empty_input_65():
    server = make_server()
    for msg in (b"", b"\n\n", b"From x Thu Jan  1 00:00:00 2025\n"):
        r = deliver(server, "alice", message=msg)
        assert r.returncode == EX_DATAERR, (msg, r.returncode, r.stderr)
        assert b"empty" in r.stderr
    assert status(server)[0] == 0


def test_deliver_too_large_65():
    server = Server(listeners=(("plain", "none"),),
                    extra="allow_plaintext_auth = yes\nmax_literal_size = 1K")
    r = deliver(server, "alice", message=b"Subject: x\r\n\r\n" + b"x" * 2000)
    assert r.returncode == EX_DATAERR and b"max_literal_size" in r.stderr, r.stderr


def test_deliver_store_failure_75():
    server = make_server()
    users = os.path.join(server.dir, "data", "users")
    os.makedirs(users, exist_ok=True)
    with open(os.path.join(users, "carol"), "w") as f:
        f.write("not a directory")
    r = deliver(server, "carol")
    assert r.returncode == EX_TEMPFAIL, (r.returncode, r.stderr)
    assert b"delivery to carol failed" in r.stderr, r.stderr


def test_deliver_config_errors_78_and_usage_64():
    server = make_server()
    bad = os.path.join(server.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("workers = many\n")
    r = deliver(server, "alice", config=bad)
    assert r.returncode == EX_CONFIG and b"bad.conf" in r.stderr, r.stderr
    r = deliver(server, "alice", config=os.path.join(server.dir, "missing.conf"))
    assert r.returncode == EX_CONFIG, r.stderr
    nopasswd = os.path.join(server.dir, "nopasswd.conf")
    with open(server.config) as f, open(nopasswd, "w") as g:
        g.write(f.read().replace(f"passwd_file = {server.passwd}",
                                 f"passwd_file = {server.dir}/missing-passwd"))
    r = deliver(server, "alice", config=nopasswd)
    assert r.returncode == EX_CONFIG and b"password file" in r.stderr, r.stderr
    r = subprocess.run([harness.BIN, "deliver", "-c", server.config], capture_output=True)
    assert r.returncode == EX_USAGE
    r = subprocess.run([harness.BIN, "deliver", "-x", "alice"], capture_output=True)
    assert r.returncode == EX_USAGE


def test_deliver_unwritable_store_says_so():
    if os.geteuid() == 0:
        # Root writes anywhere; check as another account when one exists.
        import pwd
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            raise harness.Skip("no 'nobody' account")
        server = make_server()
        os.chmod(server.dir, 0o755)
        os.chmod(server.config, 0o644)
        os.chmod(server.passwd, 0o644)
        os.makedirs(os.path.join(server.dir, "data", "users"), exist_ok=True)
        os.chmod(os.path.join(server.dir, "data"), 0o755)
        os.chmod(os.path.join(server.dir, "data", "users"), 0o755)

        def as_nobody():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        r = subprocess.run([harness.BIN, "deliver", "-c", server.config, "alice"],
                           input=b"Subject: x\r\n\r\ny\r\n", capture_output=True,
                           preexec_fn=as_nobody, timeout=60)
    else:
        server = make_server()
        users = os.path.join(server.dir, "data", "users")
        os.makedirs(users, exist_ok=True)
        os.chmod(users, 0o555)
        r = deliver(server, "alice")
        os.chmod(users, 0o755)
    assert r.returncode == EX_TEMPFAIL, (r.returncode, r.stderr)
    assert b"cannot write" in r.stderr and b"run it as" in r.stderr, r.stderr
