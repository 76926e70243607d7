"""Postfix from Debian delivers to postern over LMTP, on loopback only.

A private Postfix instance (`postfix -c DIR`) with its own main.cf,
master.cf, queue and data directories in a temporary directory: smtpd on a
free 127.0.0.1 port, mydestination = example.test handed to postern's LMTP
listener through mailbox_transport, no DNS, no chroot, its log in the
temporary directory. Mail goes in with smtplib; IMAP shows what arrived.

Needs root (Postfix's master starts as root) and the `postfix` package;
skipped otherwise. The system's own Postfix instance is never touched."""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

from harness import Server, Skip, free_port

SENDER = "bob@example.test"

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{smtpd_addr} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
recipient_delimiter = +
mailbox_transport = lmtp:inet:127.0.0.1:{lmtp_port}
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
biff = no
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
"""


def postfix_binary():
    if os.geteuid() != 0:
        raise Skip("Postfix's master must start as root")
    path = shutil.which("postfix") or ("/usr/sbin/postfix" if os.access("/usr/sbin/postfix", os.X_OK) else None)
    if path is None:
        raise Skip("postfix is not installed (apt-get install postfix, see .ci/run)")
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        raise Skip("no postfix account (the package's postinst creates it)")
    return path


class Postfix:
    """A private Postfix instance under a temporary directory."""

    def __init__(self, binary, lmtp_port):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="postern-postfix-")
        os.chmod(self.dir, 0o755)                   # the postfix account walks into queue/
        self.conf = os.path.join(self.dir, "etc")
        os.mkdir(self.conf, 0o755)
        os.mkdir(os.path.join(self.dir, "queue"), 0o755)   # start fills it in
        self.port = free_port()
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(d=self.dir, lmtp_port=lmtp_port))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtpd_addr=f"127.0.0.1:{self.port}"))
        self.log_path = os.path.join(self.dir, "maillog")
        self.pid_file = os.path.join(self.dir, "queue", "pid", "master.pid")
        self.master = None

    def run(self, *args, timeout=30):
        return subprocess.run([self.binary, "-c", self.conf, *args], capture_output=True,
                              text=True, timeout=timeout)

    def start(self):
        proc = self.run("start")
        if proc.returncode != 0:
            raise AssertionError(f"postfix start failed ({proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}\n{self.read_log()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.master = self.master_pid()
            if self.master and self.accepts():
                return
            time.sleep(0.05)
        raise AssertionError(f"postfix smtpd never answered:\n{self.read_log()}")

    def master_pid(self):
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def accepts(self):
        try:
            smtplib.SMTP("127.0.0.1", self.port, timeout=5).quit()
            return True
        except OSError:
            return False

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.read_log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"postfix log never showed {pattern!r}:\n{self.read_log()[-4000:]}")

    def stop(self):
        """postfix stop, then wait until the master and every process it
        started are gone; SIGKILL by PID as a last resort."""
        if self.master is None:
            self.master = self.master_pid()
        family = descendants(self.master) if self.master else []
        self.run("stop")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in family):
            time.sleep(0.05)
        left = [p for p in family if alive(p)]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.master = None
        return left

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid):
    """pid and every process below it, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def imap(server, user="alice"):
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    return c


def search_subject(c, mailbox, subject):
    c.expect_ok(f"SELECT {mailbox}")
    untagged, _ = c.expect_ok(f'UID SEARCH SUBJECT "{subject}"')
    return [int(n) for line in untagged if line.startswith("* SEARCH") for n in line.split()[2:]]


def fetch_body(c, uid):
    c.send(f"f1 UID FETCH {uid} BODY.PEEK[]\r\n")
    line = c.read_line()
    m = re.search(r"\{(\d+)\}$", line)
    assert m, line
    size = int(m.group(1))
    while len(c.buf) < size:
        chunk = c.sock.recv(65536)
        assert chunk, "connection closed in a literal"
        c.buf += chunk
    body, c.buf = c.buf[:size], c.buf[size:]
    _, tagged = c.read_until_tagged("f1")
    assert tagged.startswith("f1 OK"), tagged
    return body


def wait_for(c, mailbox, subject, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        uids = search_subject(c, mailbox, subject)
        if uids:
            return uids
        time.sleep(0.1)
    raise AssertionError(f"{subject!r} never arrived in {mailbox}")


def test_postfix_delivers_over_lmtp():
    binary = postfix_binary()
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes", lmtp=True)
    c = imap(server)
    c.expect_ok("CREATE Work")
    postfix = Postfix(binary, server.ports["lmtp"])
    try:
        postfix.start()
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as smtp:
            smtp.ehlo("client.example.test")
            smtp.sendmail(SENDER, ["alice@example.test"],
                          b"From: bob@example.test\r\nTo: alice@example.test\r\n"
                          b"Subject: via postfix inbox\r\n\r\nfirst line\r\n.dotted line\r\n")
            smtp.sendmail(SENDER, ["alice+Work@example.test"],
                          b"From: bob@example.test\r\nTo: alice+Work@example.test\r\n"
                          b"Subject: via postfix work\r\n\r\nfor the Work folder\r\n")
            # local_recipient_maps is empty, so smtpd accepts anyone and
            # postern is the one to say no.
            smtp.sendmail(SENDER, ["nosuchuser@example.test"],
                          b"From: bob@example.test\r\nTo: nosuchuser@example.test\r\n"
                          b"Subject: via postfix nobody\r\n\r\nbounces\r\n")

        uids = wait_for(c, "INBOX", "via postfix inbox")
        assert len(uids) == 1, uids
        body = fetch_body(c, uids[0])
        assert body.startswith(b"Return-Path: <bob@example.test>\r\nDelivered-To: alice@example.test\r\n"), body[:200]
        assert b"Received: from mx.example.test" in body or b"by mx.example.test" in body, body[:800]
        assert b"\r\n\r\nfirst line\r\n.dotted line\r\n" in body, body
        assert search_subject(c, "INBOX", "via postfix work") == []

        uids = wait_for(c, "Work", "via postfix work")
        body = fetch_body(c, uids[0])
        assert b"Delivered-To: alice+Work@example.test\r\n" in body, body[:300]
        assert b"for the Work folder\r\n" in body

        # The unknown user: postern's 550 5.1.1 in Postfix's log, and the
        # bounce delivered (through postern again) to the sender, bob.
        m = postfix.wait_log(r"to=<nosuchuser@example\.test>.*status=bounced \((.*)\)")
        assert "550 5.1.1" in m.group(1), m.group(0)
        b = imap(server, "bob")
        uids = wait_for(b, "INBOX", "Undelivered Mail Returned to Sender")
        dsn = fetch_body(b, uids[0])
        assert b"nosuchuser@example.test" in dsn and b"550 5.1.1" in dsn, dsn[:2000]
        b.close()

        log = postfix.read_log()
        assert re.search(r"to=<alice@example\.test>.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                         % server.ports["lmtp"], log), log[-3000:]
        assert "status=deferred" not in log, log[-3000:]
        c.close()
    finally:
        left = postfix.stop()
        log = postfix.read_log()
        postfix.remove()
    assert not left, f"postfix processes still running after stop: {left}"
    # The master's own "terminating" line goes through postlogd, which
    # stops with it, so the script's line is the one that always shows.
    assert "daemon started -- version" in log and "stopping the Postfix mail system" in log, log[-2000:]
