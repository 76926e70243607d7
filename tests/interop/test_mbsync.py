"""mbsync (isync) keeps a local Maildir tree and postern in step, over
implicit TLS (993, SSLType IMAPS) and over STARTTLS (143, SSLType
STARTTLS): initial pull of several folders, local flag change, new local
message, local deletion and a new local folder pushed, a server-side
expunge and flag change pulled, then a run that must change nothing.

mbsync runs with -Dn, so its output holds the whole IMAP exchange: a
failed assertion shows exactly what was said."""
import os
import re
import shutil
import subprocess
import tempfile

import harness
import syncclients as sc
from harness import PASSWORDS, Server

MUTATING = ("APPEND", "STORE", "EXPUNGE", "CREATE", "DELETE", "RENAME", "COPY", "MOVE")


def write_config(tmp, port, ssltype, cert):
    root = os.path.join(tmp, "mail")
    os.makedirs(root)
    rc = os.path.join(tmp, "mbsyncrc")
    with open(rc, "w") as f:
        f.write(f"""IMAPAccount postern
Host localhost
Port {port}
User alice
PassCmd "echo {PASSWORDS['alice']}"
SSLType {ssltype}
CertificateFile {cert}
Timeout 20

IMAPStore remote
Account postern

MaildirStore local
Path {root}/
Inbox {root}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc, root


def untagged(body):
    """The message without the X-TUID header mbsync adds to every copy it
    makes (its way of finding the copy again), with CRLF line ends."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", sc.crlf(body), count=1)


class Run:
    def __init__(self, rc):
        proc = subprocess.run(["mbsync", "-c", rc, "-a", "-Dn"], capture_output=True, text=True,
                              timeout=60)
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        # Commands mbsync sent, without their tags; pipelined ones are
        # printed as "(N in progress) >>> tag command".
        self.sent = [mo.group(1) for mo in
                     re.finditer(r"(?m)^(?:\(\d+ in progress\) )?>>> \S+ (.*)$", self.out)]

    def ok(self, what):
        assert self.rc == 0, f"{what}: mbsync exited {self.rc}:\n{self.out[-6000:]}"
        bad = [l for l in self.out.splitlines() if re.match(r"(Error|Warning|IMAP error)", l)]
        # Every command succeeded: no tagged NO or BAD from postern.
        bad += re.findall(r"(?m)^\d+ (?:NO|BAD) .*$", self.out)
        assert not bad, f"{what}: {bad}\n{self.out[-6000:]}"
        return self

    def commands(self, verb):
        return [c for c in self.sent if re.match(r"(UID )?%s\b" % verb, c)]

    def mutating(self):
        return [c for c in self.sent if re.match(r"(UID )?(%s)\b" % "|".join(MUTATING), c)]


def scenario(listener, ssltype):
    if shutil.which("mbsync") is None:
        raise harness.Skip("mbsync is not installed (Debian package isync)")
    if not sc.localhost_is_loopback():
        raise harness.Skip("localhost is not 127.0.0.1 here; mbsync must connect by the cert's name")
    server = Server()
    sc.seed(server)
    tmp = tempfile.mkdtemp(prefix="postern-mbsync-")
    rc, root = write_config(tmp, server.ports[listener], ssltype, server.cert)

    # 1. Initial pull: every folder, every message byte for byte, flags.
    run = Run(rc).ok("initial pull")
    assert "Connection is now encrypted" in run.out, run.out
    if ssltype == "STARTTLS":
        assert run.sent[:2] == ["STARTTLS", "CAPABILITY"], run.sent
    else:
        assert "STARTTLS" not in run.sent, run.sent
    assert run.sent[-1] == "LOGOUT", run.sent
    assert not run.mutating(), run.mutating()
    folders = sc.maildir_folders(root)
    assert set(folders) == {"INBOX", "Work", "Work/Projects", "Sent", "Drafts", "Trash", "Junk",
                            "Archive"}, folders
    before = sc.server_state(server)
    for box in sc.FOLDERS:
        local = sc.maildir_messages(folders[box])
        assert set(local) == {sc.msgid(box, 1), sc.msgid(box, 2)}, (box, local)
        for i in (1, 2):
            _, flags, body = local[sc.msgid(box, i)]
            assert untagged(body) == sc.message(box, i), (box, i, body)
            assert flags == ("F" if i == 2 else ""), (box, i, flags)
    for box in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert sc.maildir_messages(folders[box]) == {}, box

    # 2. Local changes: \Seen on INBOX 1, INBOX 2 deleted, a new message in
    # Work/Projects, a big one (a streamed APPEND) in Work, a new folder
    # Personal with one message.
    inbox = sc.maildir_messages(folders["INBOX"])
    sc.set_maildir_flags(inbox[sc.msgid("INBOX", 1)][0], "S")
    os.unlink(inbox[sc.msgid("INBOX", 2)][0])
    new_msg = sc.message("Work/Projects", 3, " (written locally)").replace(b"\r\n", b"\n")
    sc.deliver_local(folders["Work/Projects"], "1700000000.local1.host", new_msg)
    sc.deliver_local(folders["Work"], "1700000000.local3.host", sc.big_message())
    personal = os.path.join(root, "Personal")
    sc.make_maildir(personal)
    sc.deliver_local(personal, "1700000000.local2.host", sc.message("Personal", 1).replace(b"\r\n", b"\n"))

    run = Run(rc).ok("push")
    stores = run.commands("STORE")
    assert any(re.match(r"UID STORE 1 \+FLAGS(\.SILENT)? \(\\Seen\)", c) for c in stores), run.sent
    assert any(re.match(r"UID STORE 2 \+FLAGS(\.SILENT)? \(\\Deleted\)", c) for c in stores), run.sent
    assert any(c.startswith('CREATE "Personal"') or c.startswith("CREATE Personal") for c in run.sent), run.sent
    appends = run.commands("APPEND")
    assert len(appends) == 3, appends
    after = sc.server_state(server)
    assert set(after) == set(before) | {"Personal"}, after.keys()
    assert after["INBOX"]["msgs"][sc.msgid("INBOX", 1)][1] == {"\\Seen"}, after["INBOX"]
    assert set(after["INBOX"]["msgs"]) == {sc.msgid("INBOX", 1)}, after["INBOX"]["msgs"].keys()
    projects = after["Work/Projects"]["msgs"]
    assert set(projects) == {sc.msgid("Work/Projects", i) for i in (1, 2, 3)}, projects.keys()
    assert untagged(projects[sc.msgid("Work/Projects", 3)][2]) == sc.crlf(new_msg), projects
    assert projects[sc.msgid("Work/Projects", 3)][0] == 3, projects
    assert list(after["Personal"]["msgs"]) == [sc.msgid("Personal", 1)], after["Personal"]
    assert untagged(after['Work']['msgs'][sc.BIG_ID][2]) == sc.crlf(sc.big_message())
    assert after["Work"]["msgs"][sc.BIG_ID][0] == 3, after["Work"]["msgs"].keys()
    del after["Work"]["msgs"][sc.BIG_ID]
    assert after["Work"]["msgs"] == before["Work"]["msgs"], (before["Work"], after["Work"])
    # The pushed message stays one local copy (mbsync renames it with its UID).
    local = sc.maildir_messages(folders["Work/Projects"])
    assert set(local) == set(projects), local.keys()

    # 3. Server side: expunge Work 2, \Answered on Work/Projects 1.
    m = sc.imap(server)
    m.select("Work")
    typ, data = m.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
    assert typ == "OK", data
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"2"], (typ, data)
    m.select("Work/Projects")
    typ, data = m.uid("STORE", "1", "+FLAGS", r"(\Answered)")
    assert typ == "OK", data
    m.logout()

    run = Run(rc).ok("pull expunge")
    assert not run.mutating(), run.mutating()
    work = sc.maildir_messages(folders["Work"])
    assert set(work) == {sc.msgid("Work", 1), sc.BIG_ID}, work.keys()
    local = sc.maildir_messages(folders["Work/Projects"])
    assert local[sc.msgid("Work/Projects", 1)][1] == "R", local
    assert local[sc.msgid("Work/Projects", 2)][1] == "F", local

    # 4. Nothing changed anywhere: a run changes nothing, on either side.
    server_before = sc.server_state(server)
    local_before = sc.maildir_snapshot(root)
    run = Run(rc).ok("no-op run")
    assert not run.mutating(), run.mutating()
    assert sc.server_state(server) == server_before
    assert sc.maildir_snapshot(root) == local_before
    shutil.rmtree(tmp, ignore_errors=True)


def test_mbsync_imaps():
    scenario("imaps", "IMAPS")


def test_mbsync_starttls():
    scenario("imap", "STARTTLS")
