"""Migration: `postern import maildir` of a Maildir written by a real Dovecot
keeps UIDVALIDITY, UIDs, UIDNEXT, flags, keywords, folders and
subscriptions; `postern import mbox` reads From_ lines, mboxrd quoting and
Status/X-Status; `postern export maildir` writes a tree Dovecot reads back
with the same UIDs, flags and keywords. Every import runs twice: the second
run adds nothing.

Dovecot runs privately: its preauthenticated imap binary on stdin with a
config in a temporary directory, no daemon, no network. As root, Dovecot
refuses to touch mail, so its files then belong to nobody."""
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

from harness import BIN, Server, Skip, session

DOVECOT_IMAP = "/usr/lib/dovecot/imap"
NOBODY = 65534


def make_server(**kw):
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes", **kw)


def postern(server, *args, check=True):
    proc = subprocess.run([BIN, *args, "-c", server.config], capture_output=True, text=True,
                          timeout=120)
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, f"postern {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def imported_counts(output):
    m = re.search(r"imported (\d+) messages for \S+, (\d+) were there already", output)
    assert m, output
    return int(m.group(1)), int(m.group(2))


class Dovecot:
    """A private Dovecot over one Maildir, driven through its preauth imap
    binary (no daemon)."""

    def __init__(self, maildir=None):
        if shutil.which("doveadm") is None or not os.path.exists(DOVECOT_IMAP):
            raise Skip("Dovecot is not installed (dovecot-core, dovecot-imapd)")
        self.dir = tempfile.mkdtemp(prefix="postern-dovecot-")
        os.chmod(self.dir, 0o755)
        self.maildir = maildir or os.path.join(self.dir, "Maildir")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        os.makedirs(self.maildir, exist_ok=True)
        self.root = os.geteuid() == 0
        uid, gid = (NOBODY, NOBODY) if self.root else (os.geteuid(), os.getegid())
        self.config = os.path.join(self.dir, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(f"""base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
mail_location = maildir:{self.maildir}
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 0
first_valid_gid = 0
ssl = no
protocols = imap
listen =
""")
        self.own()

    def own(self):
        """As root, hand the tree to nobody so Dovecot can write its index."""
        if not self.root:
            return
        for top in (self.home, self.maildir):
            os.chown(top, NOBODY, NOBODY)
            for base, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.lchown(os.path.join(base, name), NOBODY, NOBODY)

    def imap(self, *commands):
        """Runs tagged commands (bytes, literals inline with LITERAL+);
        returns the output lines."""
        self.own()
        data = b"".join(b"d%d %s\r\n" % (i, c) for i, c in enumerate(commands)) + b"z LOGOUT\r\n"
        env = {"USER": "alice", "HOME": self.home, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([DOVECOT_IMAP, "-c", self.config], input=data, capture_output=True,
                              env=env, timeout=60)
        out = proc.stdout.decode("utf-8", "replace").split("\r\n")
        for i in range(len(commands)):
            tagged = [l for l in out if l.startswith(f"d{i} ")]
            assert tagged and tagged[0].split()[1] == "OK", (commands[i], out, proc.stderr)
        return out

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def append_cmd(mailbox, body, flags=""):
    return b"APPEND %s (%s) {%d+}\r\n%s" % (mailbox.encode(), flags.encode(), len(body), body)


def dovecot_state(dv, mailbox):
    """UIDVALIDITY, UIDNEXT and {uid: (flags, internaldate)} as Dovecot sees them."""
    out = dv.imap(b"EXAMINE " + mailbox.encode(), b"UID FETCH 1:* (FLAGS INTERNALDATE)")
    validity = int(re.search(r"\[UIDVALIDITY (\d+)\]", "\n".join(out)).group(1))
    uidnext = int(re.search(r"\[UIDNEXT (\d+)\]", "\n".join(out)).group(1))
    msgs = {}
    for line in out:
        m = re.match(r"\* \d+ FETCH \((.*)\)$", line)
        if not m:
            continue
        uid = int(re.search(r"UID (\d+)", line).group(1))
        flags = set(re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()) - {"\\Recent"}
        date = re.search(r'INTERNALDATE "([^"]+)"', line).group(1)
        msgs[uid] = (flags, time.mktime(time.strptime(date[:20], "%d-%b-%Y %H:%M:%S")) - time.timezone
                     - (int(date[21:24]) * 3600 + int(date[21] + date[24:26]) * 60))
    return validity, uidnext, msgs


def postern_status(c, mailbox):
    untagged, _ = c.expect_ok(f'STATUS "{mailbox}" (UIDVALIDITY UIDNEXT MESSAGES)')
    line = [l for l in untagged if l.startswith("* STATUS")][0]
    return tuple(int(re.search(k + r" (\d+)", line).group(1)) for k in ("UIDVALIDITY", "UIDNEXT", "MESSAGES"))


def postern_flags(c, mailbox):
    """{uid: flags} of every message, read through UID STORE answers (adding
    a throwaway keyword makes every message answer with all its flags)."""
    c.expect_ok(f'SELECT "{mailbox}"')
    untagged, _ = c.expect_ok("UID STORE 1:* +FLAGS ($Probe)")
    flags = {}
    for line in untagged:
        m = re.match(r"\* \d+ FETCH \(.*\)$", line)
        if not m:
            continue
        uid = int(re.search(r"UID (\d+)", line).group(1))
        flags[uid] = set(re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()) - {"\\Recent", "$Probe"}
    c.expect_ok("UID STORE 1:* -FLAGS.SILENT ($Probe)")
    return flags


def store_dates(server, user, mailbox):
    """{uid: internaldate} straight from the index (no FETCH needed)."""
    db = sqlite3.connect(os.path.join(server.dir, "data", "users", user, "index.db"))
    try:
        rows = db.execute("SELECT m.uid, m.internaldate FROM messages m JOIN mailboxes b"
                          " ON b.id = m.mailbox_id WHERE b.name = ?", (mailbox,)).fetchall()
    finally:
        db.close()
    return dict(rows)


def store_bodies(server, user, mailbox):
    db = sqlite3.connect(os.path.join(server.dir, "data", "users", user, "index.db"))
    try:
        rows = db.execute("SELECT m.uid, bl.hash FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                          " JOIN blobs bl ON bl.id = m.blob_id WHERE b.name = ? ORDER BY m.uid",
                          (mailbox,)).fetchall()
    finally:
        db.close()
    out = {}
    for uid, h in rows:
        with open(os.path.join(server.dir, "data", "users", user, "blobs", h[:2], h[2:]), "rb") as f:
            out[uid] = f.read()
    return out


def list_names(c):
    untagged, _ = c.expect_ok('LIST "" "*"')
    return {re.search(r'"/" "?([^"]*)"?$', l).group(1) for l in untagged if l.startswith("* LIST")}


def lsub_names(c):
    untagged, _ = c.expect_ok('LSUB "" "*"')
    return {re.search(r'"/" "?([^"]*)"?$', l).group(1) for l in untagged if l.startswith("* LSUB")}


def msg(n):
    return (f"From: sender{n}@example.org\nTo: alice@example.org\nSubject: message {n}\n"
            f"Message-ID: <m{n}@example.org>\n\nbody {n}\n").encode()


def test_import_maildir_written_by_dovecot():
    dv = Dovecot()
    try:
        dv.imap(append_cmd("INBOX", msg(1), "\\Seen $Work"),
                append_cmd("INBOX", msg(2), "\\Flagged \\Answered"),
                append_cmd("INBOX", msg(3), "\\Deleted"),
                append_cmd("INBOX", msg(4), "\\Draft Later"),
                b"SELECT INBOX", b"EXPUNGE",  # UID 3 gone: UIDs 1, 2, 4, UIDNEXT 5
                b"CREATE Sent", b"CREATE Work.Projects", b"CREATE Caf&AOk-",
                append_cmd("Work.Projects", msg(5), "\\Seen Junk $Label"),
                append_cmd("Sent", msg(6), "\\Seen"),
                b"SUBSCRIBE INBOX", b"SUBSCRIBE Work.Projects", b"SUBSCRIBE Caf&AOk-")
        # Mail Dovecot has not numbered yet: a file dropped into new/.
        with open(os.path.join(dv.maildir, "new", "1700000000.M1P1.elsewhere"), "wb") as f:
            f.write(msg(7))
        os.utime(os.path.join(dv.maildir, "new", "1700000000.M1P1.elsewhere"), (1700000000, 1700000000))
        inbox = dovecot_state(dv, "INBOX")
        work = dovecot_state(dv, "Work.Projects")
        assert sorted(inbox[2]) == [1, 2, 4, 5], inbox  # Dovecot numbered the new one 5 here
        # Forget Dovecot's numbering of the dropped file, as if it had just
        # been delivered: our import must give it Dovecot's next UID.
        with open(os.path.join(dv.maildir, "dovecot-uidlist")) as f:
            lines = f.read().splitlines()
        kept = [l for l in lines if "elsewhere" not in l]
        kept[0] = re.sub(r" N\d+", " N5", kept[0])
        with open(os.path.join(dv.maildir, "dovecot-uidlist"), "w") as f:
            f.write("\n".join(kept) + "\n")

        server = make_server()
        out = postern(server, "import", "maildir", dv.maildir, "alice").stdout
        assert imported_counts(out) == (6, 0), out

        c = session(server)
        assert postern_status(c, "INBOX") == (inbox[0], 6, 4)
        assert postern_status(c, "Work/Projects") == (work[0], work[1], 1)
        assert {"INBOX", "Sent", "Work/Projects", "Caf&AOk-"} <= list_names(c), list_names(c)
        assert lsub_names(c) >= {"INBOX", "Work/Projects", "Caf&AOk-"}
        assert "Sent" not in lsub_names(c)  # Dovecot's subscriptions file was honoured

        flags = postern_flags(c, "INBOX")
        for uid in (1, 2, 4):
            assert flags[uid] == inbox[2][uid][0], (uid, flags, inbox)
        assert flags[5] == set(), flags  # the unlisted one, from new/
        assert postern_flags(c, "Work/Projects") == {1: {"\\Seen", "Junk", "$Label"}}
        dates = store_dates(server, "alice", "INBOX")
        for uid in (1, 2, 4):
            assert dates[uid] == inbox[2][uid][1], (dates, inbox)
        assert dates[5] == 1700000000
        assert store_bodies(server, "alice", "INBOX")[4] == msg(4)

        # Again, with the server running: nothing new.
        out = postern(server, "import", "maildir", dv.maildir, "alice").stdout
        assert imported_counts(out) == (0, 6), out
        assert postern_status(c, "INBOX") == (inbox[0], 6, 4)
        assert postern_status(c, "Work/Projects") == (work[0], work[1], 1)
        c.close()
    finally:
        dv.cleanup()


def test_import_maildir_without_uidlist_resumes():
    """A plain Maildir (no dovecot-uidlist): new UIDs; an interrupted import
    (half the messages in) finishes without duplicates, and two identical
    messages both arrive."""
    d = tempfile.mkdtemp(prefix="postern-maildir-")
    try:
        for sub in ("cur", "new", "tmp", ".Lists.Café/cur"):
            os.makedirs(os.path.join(d, sub))
        os.rename(os.path.join(d, ".Lists.Café"), os.path.join(d, ".Lists.Caf&AOk-"))
        for i in range(6):
            name = f"17000000{i:02d}.M{i}P1.host:2,{'S' if i % 2 else ''}{'F' if i == 3 else ''}"
            with open(os.path.join(d, "cur", name), "wb") as f:
                f.write(msg(1) if i == 5 else msg(i))   # 1 and 5 are identical
        with open(os.path.join(d, ".Lists.Caf&AOk-", "cur", "1.M1P1.host:2,T"), "wb") as f:
            f.write(msg(9))
        server = make_server(start=False)
        # An "interrupted" first run: only half the files were there.
        half = os.path.join(d, "half")
        shutil.copytree(d, half)
        for name in sorted(os.listdir(os.path.join(half, "cur")))[3:]:
            os.unlink(os.path.join(half, "cur", name))
        assert imported_counts(postern(server, "import", "maildir", half, "alice").stdout) == (4, 0)
        shutil.rmtree(half)
        assert imported_counts(postern(server, "import", "maildir", d, "alice").stdout) == (3, 4)
        assert imported_counts(postern(server, "import", "maildir", d, "alice").stdout) == (0, 7)
        server.start()
        c = session(server)
        _, _, messages = postern_status(c, "INBOX")
        assert messages == 6
        assert sorted(store_bodies(server, "alice", "INBOX").values()) == sorted(
            [msg(1) if i == 5 else msg(i) for i in range(6)])
        flags = postern_flags(c, "Lists/Caf&AOk-")
        assert list(flags.values()) == [{"\\Deleted"}], flags
        assert "Lists/Caf&AOk-" in lsub_names(c)  # no subscriptions file: all subscribed
        c.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


MBOX = b"""From alice@example.org Tue Jul 14 09:30:00 2024
From: alice@example.org
Subject: one
Status: RO
X-Status: AF
X-Keywords: $Work Later
X-UID: 7

Hello
>From the start of a line
>>From quoted twice

From bob@example.org Wed Jul 15 10:00:00 2024 +0200
From: bob@example.org
Subject: two
Status: O
Content-Length: 40

From me: an unquoted line (mboxo) with no date is not a separator
end

From MAILER-DAEMON Thu Jul 16 11:00 2024
Subject: three
X-Status: TD
\tfolded part of X-Status

body three
"""


def test_import_mbox():
    d = tempfile.mkdtemp(prefix="postern-mbox-")
    try:
        path = os.path.join(d, "archive.mbox")
        with open(path, "wb") as f:
            f.write(MBOX)
        server = make_server()
        out = postern(server, "import", "mbox", path, "alice", "Archive/2024").stdout
        assert imported_counts(out) == (3, 0), out
        out = postern(server, "import", "mbox", path, "alice", "Archive/2024").stdout
        assert imported_counts(out) == (0, 3), out
        c = session(server)
        assert postern_status(c, "Archive/2024")[1:] == (4, 3)
        assert postern_flags(c, "Archive/2024") == {
            1: {"\\Seen", "\\Answered", "\\Flagged", "$Work", "Later"},
            2: set(),
            3: {"\\Draft", "\\Deleted"},
        }
        bodies = store_bodies(server, "alice", "Archive/2024")
        assert bodies[1] == (b"From: alice@example.org\nSubject: one\n\nHello\n"
                             b"From the start of a line\n>From quoted twice\n"), bodies[1]
        assert bodies[2] == (b"From: bob@example.org\nSubject: two\n\nFrom me: an unquoted line"
                             b" (mboxo) with no date is not a separator\nend\n"), bodies[2]
        assert bodies[3] == b"Subject: three\n\nbody three\n", bodies[3]
        dates = store_dates(server, "alice", "Archive/2024")
        assert dates == {1: 1720949400, 2: 1721030400, 3: 1721127600}, dates
        # Default mailbox is INBOX; a file that is not an mbox is refused.
        with open(os.path.join(d, "bad"), "wb") as f:
            f.write(b"Subject: no separator\n\nx\n")
        proc = postern(server, "import", "mbox", os.path.join(d, "bad"), "alice", check=False)
        assert proc.returncode == 1 and "not an mbox" in proc.stderr, proc.stderr
        proc = postern(server, "import", "mbox", check=False)
        assert proc.returncode == 2, proc.stderr
        c.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def append(c, mailbox, body, flags):
    c.send(f'a APPEND "{mailbox}" ({flags}) {{{len(body)}+}}\r\n'.encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("a")
    assert " OK " in tagged, tagged


def test_export_read_back_by_dovecot():
    server = make_server()
    c = session(server)
    for name in ("Work/Projects", "Caf&AOk-"):
        c.expect_ok(f'CREATE "{name}"')
    c.expect_ok('SUBSCRIBE "Work/Projects"')
    append(c, "INBOX", msg(1), "\\Seen $Work")
    append(c, "INBOX", msg(2), "\\Deleted")
    append(c, "INBOX", msg(3), "\\Answered \\Flagged Later $Work")
    append(c, "INBOX", msg(4), "\\Draft")
    c.expect_ok("SELECT INBOX")
    c.expect_ok("EXPUNGE")  # UIDs 1, 3, 4 and UIDNEXT 5
    append(c, "Work/Projects", msg(5), "\\Seen Junk")
    append(c, "Caf&AOk-", msg(6), "")
    want_inbox = postern_status(c, "INBOX")
    want_work = postern_status(c, "Work/Projects")
    want_flags = postern_flags(c, "INBOX")
    want_dates = store_dates(server, "alice", "INBOX")
    c.close()

    d = tempfile.mkdtemp(prefix="postern-export-")
    os.chmod(d, 0o755)  # Dovecot may run as nobody
    out_dir = os.path.join(d, "Maildir")
    try:
        out = postern(server, "export", "maildir", "alice", out_dir).stdout
        assert "exported 5 messages" in out, out
        proc = postern(server, "export", "maildir", "alice", out_dir, check=False)
        assert proc.returncode == 1 and "Maildir already" in proc.stderr, proc.stderr

        dv = Dovecot(maildir=out_dir)
        try:
            validity, uidnext, msgs = dovecot_state(dv, "INBOX")
            assert (validity, uidnext, len(msgs)) == want_inbox, (validity, uidnext, msgs, want_inbox)
            assert {uid: f for uid, (f, _) in msgs.items()} == want_flags, (msgs, want_flags)
            assert {uid: dt for uid, (_, dt) in msgs.items()} == want_dates
            validity, uidnext, msgs = dovecot_state(dv, "Work.Projects")
            assert (validity, uidnext) == want_work[:2]
            assert {uid: f for uid, (f, _) in msgs.items()} == {1: {"\\Seen", "Junk"}}
            out = "\n".join(dv.imap(b'LSUB "" "*"', b'LIST "" "*"'))
            assert '"." Work.Projects' in out and "Caf&AOk-" in out, out
            # Dovecot's view reimported into a second user: nothing lost.
            out = postern(server, "import", "maildir", out_dir, "bob").stdout
            assert imported_counts(out) == (5, 0), out
        finally:
            dv.cleanup()
    finally:
        shutil.rmtree(d, ignore_errors=True)
