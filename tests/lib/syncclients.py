"""Shared by the interop tests of synchronising clients (mbsync,
offlineimap): seed a postern account over IMAP, read back what the server
holds, and read a local Maildir tree the way the clients write it."""
import imaplib
import os
import re
import socket

import harness
from harness import PASSWORDS

FOLDERS = ("INBOX", "Work", "Work/Projects")


def message(folder, i, extra=""):
    tag = folder.replace("/", "-")
    return (f"From: Alice <alice@example.org>\r\n"
            f"To: Bob <bob@example.org>\r\n"
            f"Subject: {folder} message {i}{extra}\r\n"
            f"Date: Mon, 02 Mar 2026 10:0{i}:00 +0000\r\n"
            f"Message-ID: <{tag}-{i}@example.org>\r\n"
            f"\r\n"
            f"Body of {folder} {i}.\r\nSecond line.\r\n").encode()


def big_message():
    """About 440 KB in LF form: above postern's 256 KiB threshold, so its
    APPEND is streamed to disk (the LIMIT_STREAM_THRESHOLD path)."""
    lines = b"".join(b"line %06d " % i + b"x" * 60 + b"\n" for i in range(6000))
    return (b"From: Alice <alice@example.org>\nSubject: a big one\n"
            b"Message-ID: <big-1@example.org>\n\n" + lines)


BIG_ID = "<big-1@example.org>"


def msgid(folder, i):
    return f"<{folder.replace('/', '-')}-{i}@example.org>"


def localhost_is_loopback():
    """mbsync and offlineimap check the certificate's name, and the test
    certificate is for localhost (mbsync does not match IP addresses):
    they must connect to "localhost", which has to be 127.0.0.1."""
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo("localhost", None, socket.AF_INET)}
    except OSError:
        return False
    return "127.0.0.1" in addrs


def imap(server):
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=harness.client_tls_context(),
                          timeout=20)
    typ, data = m.login("alice", PASSWORDS["alice"])
    assert typ == "OK", data
    return m


def seed(server):
    """Work and Work/Projects; two messages in each of INBOX, Work and
    Work/Projects, the second of each \\Flagged."""
    m = imap(server)
    for box in ("Work", "Work/Projects"):
        typ, data = m.create(box)
        assert typ == "OK", data
    for box in FOLDERS:
        for i in (1, 2):
            typ, data = m.append(box, r"(\Flagged)" if i == 2 else None, None, message(box, i))
            assert typ == "OK", data
    m.logout()


def server_state(server):
    """{mailbox: {"uidvalidity", "uidnext", "msgs": {message-id: (uid, flags, body)}}}"""
    m = imap(server)
    typ, data = m.list('""', '"*"')
    assert typ == "OK", data
    state = {}
    for line in data:
        mo = re.match(rb'\(([^)]*)\) "/" (.*)$', line)
        assert mo, line
        name = mo.group(2).decode().strip('"')
        typ, st = m.status(f'"{name}"', "(UIDVALIDITY UIDNEXT MESSAGES)")
        assert typ == "OK", st
        mo = re.search(rb"UIDVALIDITY (\d+)", st[0])
        uidvalidity = int(mo.group(1))
        uidnext = int(re.search(rb"UIDNEXT (\d+)", st[0]).group(1))
        count = int(re.search(rb"MESSAGES (\d+)", st[0]).group(1))
        msgs = {}
        if count:
            typ, d = m.select(f'"{name}"', readonly=True)
            assert typ == "OK", d
            typ, d = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert typ == "OK", d
            for item in d:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                uid = int(re.search(rb"UID (\d+)", head).group(1))
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())
                mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", body)
                msgs[mid.group(1).decode() if mid else f"uid{uid}"] = (uid, frozenset(flags), body)
            m.close()
        assert len(msgs) == count, (name, count, msgs)
        state[name] = {"uidvalidity": uidvalidity, "uidnext": uidnext, "msgs": msgs}
    m.logout()
    return state


def maildir_folders(root):
    """{folder name ("Work/Projects"): path}, for every directory under root
    that holds cur, new and tmp."""
    out = {}
    for dirpath, dirnames, _ in os.walk(root):
        if {"cur", "new", "tmp"} <= set(dirnames):
            out[os.path.relpath(dirpath, root).replace(os.sep, "/")] = dirpath
    return out


def maildir_messages(path):
    """{message-id: (file path, maildir flags, body with CRLF)} in one folder."""
    msgs = {}
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        for name in sorted(os.listdir(d)):
            f = os.path.join(d, name)
            with open(f, "rb") as fh:
                body = fh.read()
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", body)
            key = mid.group(1).decode() if mid else name
            assert key not in msgs, f"two copies of {key} in {path}: {msgs[key][0]} and {f}"
            msgs[key] = (f, flags, body)
    return msgs


def crlf(body):
    return re.sub(rb"\r?\n", b"\r\n", body)


def maildir_snapshot(root):
    """Every file under root with its content: what a no-op run must leave."""
    snap = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            f = os.path.join(dirpath, name)
            with open(f, "rb") as fh:
                snap[os.path.relpath(f, root)] = fh.read()
    return snap


def set_maildir_flags(path, flags):
    """Renames a Maildir file to carry flags (moving it to cur/ as a
    client would); returns the new path."""
    d, name = os.path.split(path)
    base = name.split(":2,", 1)[0]
    new = os.path.join(os.path.dirname(d), "cur", base + ":2," + "".join(sorted(flags)))
    os.rename(path, new)
    return new


def deliver_local(folder_path, name, body):
    """Writes a new message into a local Maildir folder as a MUA would."""
    tmp = os.path.join(folder_path, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(body)
    os.rename(tmp, os.path.join(folder_path, "new", name))


def make_maildir(path):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
