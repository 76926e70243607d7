"""offlineimap keeps a local Maildir tree and postern in step, over
implicit TLS (993, ssl = yes) and over STARTTLS (143, ssl = no with
starttls = yes): initial pull of several folders, local flag change, new
local message, local deletion and a new local folder pushed, a server-side
expunge and flag change pulled, then a run that must change nothing.

offlineimap 8.0.0 checks the certificate against sslcacertfile only with
ssl = yes: over STARTTLS it calls imaplib2's starttls() without ca_certs
and accepts any certificate (seen by hand with a wrong sslcacertfile), so
the STARTTLS run proves the upgrade and the login over TLS, not the chain.

Over STARTTLS with TLS 1.3, offlineimap 8.0.0 (imaplib2 3.05) now and then
never sends the CAPABILITY it writes right after the handshake: about 3 in
100 connections, none with TLS 1.2 (measured with imaplib2 alone). strace
of the postern worker shows the handshake complete (client Finished read,
the two session tickets written, then read() -> EAGAIN) and no byte from
the client after it until it gives up; imaplib2 logs "writer > CAPABILITY"
all the same. imaplib2 restarts its reader thread right after the
handshake, and that thread reads the session tickets with SSL_read while
the writer thread calls SSL_write on the same SSL object: OpenSSL does not
allow that. Implicit TLS is not affected: there the client reads the
greeting (and the tickets with it) before it writes. It is a client bug,
so Run() starts that one run again when, and only when, it is this hang:
offlineimap's "Failed to start TLS connection: command: CAPABILITY" plus a
postern session that timed out before login with TLS up. The test
server's login_timeout is 5 s so that such a hang ends quickly.

offlineimap runs one-shot (-o -u basic) with -d imap, so its output holds
the IMAP exchange: a failed assertion shows exactly what was said."""
import ast
import os
import re
import shutil
import subprocess
import tempfile

import harness
import syncclients as sc
from harness import PASSWORDS, Server

MUTATING = ("APPEND", "STORE", "EXPUNGE", "CREATE", "DELETE", "RENAME", "COPY", "MOVE")


def binary():
    for name in ("offlineimap", "offlineimap3"):
        path = shutil.which(name)
        if path:
            return path
    raise harness.Skip("offlineimap is not installed (Debian package offlineimap)")


def write_config(tmp, port, tls, cert):
    root = os.path.join(tmp, "mail")
    os.makedirs(root)
    conf = os.path.join(tmp, "offlineimaprc")
    ssl = "ssl = yes\nstarttls = no" if tls == "implicit" else "ssl = no\nstarttls = yes"
    with open(conf, "w") as f:
        f.write(f"""[general]
accounts = test
metadata = {tmp}/metadata

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {root}
sep = /

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {port}
remoteuser = alice
remotepass = {PASSWORDS['alice']}
{ssl}
sslcacertfile = {cert}
timeout = 20
""")
    return conf, root


STARTTLS_HANG = "Failed to start TLS connection: command: CAPABILITY"


# A postern session closed by login_timeout before login, with TLS up.
HANG_LOG = r"event=disconnect [^\n]*user=- reason=timeout [^\n]*tls=TLSv1\.3"


def starttls_hangs(server):
    return len(re.findall(HANG_LOG, server.read_log()))


class Run:
    def __init__(self, conf, server, retries=2):
        for attempt in range(retries + 1):
            hangs = starttls_hangs(server)
            proc = subprocess.run([binary(), "-c", conf, "-o", "-u", "basic", "-d", "imap"],
                                  capture_output=True, text=True, timeout=90)
            self.rc = proc.returncode
            self.out = proc.stdout + proc.stderr
            if self.rc < 0:
                # The client itself died of a signal (seen: SIGSEGV in
                # imaplib2's threads right after STARTTLS): run again.
                print(f"     note: offlineimap died of signal {-self.rc} (client crash), "
                      f"run again ({attempt + 1})")
                continue
            if not (self.rc != 0 and STARTTLS_HANG in self.out):
                break
            server.wait_log(HANG_LOG, count=hangs + 1, timeout=15)
            print(f"     note: offlineimap's imaplib2 STARTTLS/TLS 1.3 hang (client bug), "
                  f"run again ({attempt + 1})")
        # Commands offlineimap sent (imaplib2's writer prints the repr of
        # each write), without their tags.
        self.sent = []
        for mo in re.finditer(r"(?m)writer > (b(['\"]).*\2)$", self.out):
            data = ast.literal_eval(mo.group(1)).decode("utf-8", "replace")
            cmd = re.match(r"[A-Z]{4}\d+ (.*)\r\n$", data)
            if cmd:
                self.sent.append(cmd.group(1))

    def ok(self, what):
        assert self.rc == 0, f"{what}: offlineimap exited {self.rc}:\n{self.out[-6000:]}"
        bad = [l for l in self.out.splitlines() if re.match(r"\s*(ERROR|WARNING|Traceback)", l)]
        # Every command succeeded: no tagged NO or BAD from postern.
        bad += re.findall(r"reader < b['\"][A-Z]{4}\d+ (?:NO|BAD) .*", self.out)
        assert not bad, f"{what}: {bad}\n{self.out[-6000:]}"
        return self

    def commands(self, verb):
        return [c for c in self.sent if re.match(r"(UID )?%s\b" % verb, c)]

    def mutating(self):
        return [c for c in self.sent if re.match(r"(UID )?(%s)\b" % "|".join(MUTATING), c)]


def scenario(listener, tls):
    binary()
    if not sc.localhost_is_loopback():
        raise harness.Skip("localhost is not 127.0.0.1 here; offlineimap must connect by the cert's name")
    server = Server(extra="login_timeout = 5")
    sc.seed(server)
    tmp = tempfile.mkdtemp(prefix="postern-offlineimap-")
    conf, root = write_config(tmp, server.ports[listener], tls, server.cert)

    # 1. Initial pull: every folder, every message byte for byte, flags.
    run = Run(conf, server).ok("initial pull")
    if tls == "starttls":
        assert run.sent.index("STARTTLS") < run.sent.index("AUTHENTICATE PLAIN"), run.sent
        server.wait_log(r"event=login [^\n]*user=alice[^\n]*tls=TLSv1\.[23]")
    else:
        assert "STARTTLS" not in run.sent, run.sent
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
            assert sc.crlf(body) == sc.message(box, i), (box, i, body)
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
    sc.deliver_local(folders["Work/Projects"], "1700000000.local1.host:2,", new_msg)
    sc.deliver_local(folders["Work"], "1700000000.local3.host:2,", sc.big_message())
    personal = os.path.join(root, "Personal")
    sc.make_maildir(personal)
    sc.deliver_local(personal, "1700000000.local2.host:2,", sc.message("Personal", 1).replace(b"\r\n", b"\n"))

    run = Run(conf, server).ok("push")
    stores = run.commands("STORE")
    assert any(re.match(r"UID STORE 1 \+FLAGS(\.SILENT)? \(\\Seen\)", c) for c in stores), run.sent
    assert any(re.match(r"UID STORE 2 \+FLAGS(\.SILENT)? \(\\Deleted\)", c) for c in stores), run.sent
    assert any(re.match(r'CREATE "?Personal"?$', c) for c in run.sent), run.sent
    appends = run.commands("APPEND")
    assert len(appends) == 3, appends
    after = sc.server_state(server)
    assert set(after) == set(before) | {"Personal"}, after.keys()
    assert after["INBOX"]["msgs"][sc.msgid("INBOX", 1)][1] == {"\\Seen"}, after["INBOX"]
    assert set(after["INBOX"]["msgs"]) == {sc.msgid("INBOX", 1)}, after["INBOX"]["msgs"].keys()
    projects = after["Work/Projects"]["msgs"]
    assert set(projects) == {sc.msgid("Work/Projects", i) for i in (1, 2, 3)}, projects.keys()
    assert projects[sc.msgid("Work/Projects", 3)][2] == sc.crlf(new_msg), projects
    assert projects[sc.msgid("Work/Projects", 3)][0] == 3, projects
    assert list(after["Personal"]["msgs"]) == [sc.msgid("Personal", 1)], after["Personal"]
    assert after['Work']['msgs'][sc.BIG_ID][2] == sc.crlf(sc.big_message())
    assert after["Work"]["msgs"][sc.BIG_ID][0] == 3, after["Work"]["msgs"].keys()
    del after["Work"]["msgs"][sc.BIG_ID]
    assert after["Work"]["msgs"] == before["Work"]["msgs"], (before["Work"], after["Work"])
    # The pushed message stays one local copy, now named with its server UID
    # (offlineimap learns it from APPENDUID).
    local = sc.maildir_messages(folders["Work/Projects"])
    assert set(local) == set(projects), local.keys()
    assert ",U=3," in os.path.basename(local[sc.msgid("Work/Projects", 3)][0]), local

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

    run = Run(conf, server).ok("pull expunge")
    assert not run.mutating(), run.mutating()
    work = sc.maildir_messages(folders["Work"])
    assert set(work) == {sc.msgid("Work", 1), sc.BIG_ID}, work.keys()
    local = sc.maildir_messages(folders["Work/Projects"])
    assert local[sc.msgid("Work/Projects", 1)][1] == "R", local
    assert local[sc.msgid("Work/Projects", 2)][1] == "F", local

    # 4. Nothing changed anywhere: a run changes nothing, on either side.
    server_before = sc.server_state(server)
    local_before = sc.maildir_snapshot(root)
    run = Run(conf, server).ok("no-op run")
    assert not run.mutating(), run.mutating()
    assert sc.server_state(server) == server_before
    assert sc.maildir_snapshot(root) == local_before
    shutil.rmtree(tmp, ignore_errors=True)


def test_offlineimap_imaps():
    scenario("imaps", "implicit")


def test_offlineimap_starttls():
    scenario("imap", "starttls")
