"""SEARCH answered from the store's search index (docs/design.md "SEARCH"):
the header cache (written with each message) for FROM, TO, CC, BCC,
SUBJECT and the full-text index (search.db, written after delivery by the
worker's indexer or `postern index`) for BODY and TEXT give the same
answers a scan of the messages gives, without reading message files;
strings of fewer than 3 characters, and messages the index does not cover
(stored before the index existed, not yet indexed), are read instead.

Each search here checks both the answer and, through the server's debug
log, how many message files it read: an answer from a scan, or a wrong one
from the index, fails."""
import base64
import os
import re
import sqlite3
import subprocess
import time

import harness
from harness import Server, session


def make_server(indexer=True, **kwargs):
    extra = "allow_plaintext_auth = yes" + ("" if indexer else "\nsearch_indexer = no")
    return Server(listeners=(("plain", "none"),), extra=extra, **kwargs)


def index_now(server, *users):
    """`postern index`: returns once nothing is pending; its output."""
    r = subprocess.run([harness.BIN, "index", "-c", server.config, *(users or ("alice",))],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def fts_states(server, user="alice"):
    """blobs.fts of every body: 0 pending, 1 indexed, 2 left out."""
    db = sqlite3.connect(index_db(server, user), timeout=10)
    states = [row[0] for row in db.execute("SELECT fts FROM blobs ORDER BY id")]
    db.close()
    return states


def search_db(server, user="alice"):
    return os.path.join(server.dir, "data", "users", user, "search.db")


def append(c, body, mailbox="INBOX", flags=""):
    if isinstance(body, str):
        body = body.encode()
    extra = f" ({flags})" if flags else ""
    c.send(f"ap APPEND {mailbox}{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert tagged.startswith("ap OK"), tagged


def b64(text):
    return base64.b64encode(text.encode()).decode()


def crlf_b64(data):
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


# Encoded words: UTF-8 in B, ISO-8859-1 in Q; a plain text body.
E1 = (
    "From: =?utf-8?B?" + b64("Zoë Walrus") + "?= <zoe@example.org>\r\n"
    "To: team@example.org\r\n"
    "Subject: =?iso-8859-1?Q?R=E9union_trimestrielle?=\r\n"
    "\r\n"
    "The quarterly lighthouse inventory is due.\r\n"
)

# ISO-8859-1 in Q in From, UTF-8 in B in Subject, a Latin-1 QP body with
# double quotes.
E2 = (
    "From: =?ISO-8859-1?Q?Andr=E9_M=FCller?= <andre@example.de>\r\n"
    "To: alice@example.org\r\n"
    "Cc: walrus-fans@example.net\r\n"
    "Subject: =?UTF-8?B?" + b64("Ωmega report") + "?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 au lait, say \"hello\" twice.\r\n"
)

# Multipart: a UTF-8 base64 text part, an HTML part, a base64 attachment
# whose bytes hold words the text parts don't (not text: never matched),
# and an attached message (its header and text are body text).
E3 = (
    "From: keeper@example.com\r\n"
    "To: alice@example.org\r\n"
    "Subject: Logbook\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + crlf_b64("Привет, lighthouse keeper.\r\n".encode()) +
    "--b1\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Storm warning</p>\r\n"
    "--b1\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + crlf_b64(b"ATTACHMENTONLY lighthouse inventory " * 20) +
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.com\r\n"
    "Subject: Inner walrus\r\n"
    "\r\n"
    "nested needle text\r\n"
    "--b1--\r\n"
)

# Short header and body.
E4 = (
    "From: bob@example.com\r\n"
    "Subject: ab\r\n"
    "\r\n"
    "xy\r\n"
)


def to_wire(criteria):
    """criteria as bytes, each quoted string or atom holding non-ASCII
    characters sent as a literal (8-bit text is not allowed in quoted
    strings before UTF8=ACCEPT)."""
    out, i = [], 0
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', criteria):
        text = m.group(1) if m.group(1) is not None else m.group(2)
        if text.isascii():
            out.append(m.group(0).encode())
            continue
        if m.group(1) is not None:
            text = re.sub(r"\\(.)", r"\1", text)
        data = text.encode()
        out.append(b"{%d+}\r\n" % len(data) + data)
    return b" ".join(out)


class Searcher:
    """Runs SEARCH and reads the server's log line for it."""

    def __init__(self, server, c):
        self.server, self.c, self.done = server, c, 0

    def __call__(self, criteria, uid=False):
        """(numbers, message files read) of SEARCH criteria."""
        tag = self.c.next_tag()
        if isinstance(criteria, str):
            criteria = to_wire(criteria)
        self.c.send(tag.encode() + (b" UID SEARCH " if uid else b" SEARCH ") + criteria + b"\r\n")
        untagged, tagged = self.c.read_until_tagged(tag)
        assert tagged.startswith(f"{tag} OK"), (criteria, tagged)
        lines = [l for l in untagged if l.startswith("* SEARCH")]
        assert len(lines) == 1, (criteria, untagged)
        self.done += 1
        self.server.wait_log(r"event=search ", count=self.done)
        logged = re.findall(r"event=search .*bodies_read=(\d+)", self.server.read_log())
        return [int(n) for n in lines[0].split()[2:]], int(logged[-1])


def mailbox(server=None, index=True):
    server = server or make_server()
    c = session(server)
    for m in (E1, E2, E3, E4):
        append(c, m)
    if index:
        index_now(server)
    c.expect_ok("SELECT INBOX")
    return server, c, Searcher(server, c)


def check(search, cases, reads=0):
    for criteria, expected in cases.items():
        got, read = search(criteria)
        assert got == expected, (criteria, got, expected)
        assert read == reads, (criteria, "read", read, "files, expected", reads)


def test_header_keys_from_the_cache():
    _, _, search = mailbox()
    check(search, {
        "FROM walrus": [1], 'FROM "ZOË"': [1], "FROM zoe@example": [1],
        # The raw encoded word matches too, as it always did.
        "FROM =?utf-8?b?": [1], 'FROM "andr=e9"': [2],
        'FROM "andré müller"': [2], "FROM example": [1, 2, 3, 4],
        "TO alice": [2, 3], "CC walrus": [2], "BCC walrus": [], "CC nobody": [],
        'SUBJECT "réunion TRIMESTRIELLE"': [1], 'SUBJECT "ΩMEGA"': [2],
        # An attached message's header is not the message's header.
        'SUBJECT "inner walrus"': [],
        # Shorter than a trigram: the header cache has no such limit.
        "SUBJECT ab": [4], "FROM bo": [4], "FROM é": [2],
        # RFC 3501 6.4.4: an empty string matches every message with the field.
        'SUBJECT ""': [1, 2, 3, 4], 'CC ""': [2], 'BCC ""': [],
        'HEADER From walrus': [1], 'HEADER SUBJECT ab': [4],
        "NOT FROM walrus": [2, 3, 4], "OR FROM walrus SUBJECT ab": [1, 4],
        "NOT OR CC walrus TO alice": [1, 4],
    })
    # Other fields are not cached: those messages are read.
    got, read = search("HEADER Content-Type multipart")
    assert got == [3] and read == 4, (got, read)


def test_text_and_body_from_the_full_text_index():
    _, _, search = mailbox()
    check(search, {
        'BODY "lighthouse inventory"': [1],		# E3's attachment is not text
        "BODY lighthouse": [1, 3], 'TEXT "LIGHTHOUSE keeper"': [3],
        'BODY "привет, LIGHTHOUSE"': [3], 'BODY "storm warning"': [3],
        'BODY "inner walrus"': [3], 'BODY "nested needle"': [3],
        'TEXT "réunion"': [1], 'BODY "réunion"': [], 'TEXT "ωmega rep"': [2],
        'BODY "café au lait"': [2], 'BODY "attachmentonly"': [],
        # Quotes in the string: FTS5 phrase quoting must not break them.
        'BODY "\\"hello\\""': [2], 'BODY "say \\"hel"': [2], 'TEXT "\\"\\"\\""': [],
        'BODY "' + "x" * 300 + '"': [],
        "NOT BODY lighthouse": [2, 4], "OR BODY привет TEXT walrus": [1, 2, 3],
        "NOT OR BODY café TEXT logbook": [1, 4],
        'TEXT "zoe@" BODY "due."': [1],
        # Searches combined with other keys: the index gives candidates,
        # the rest of the key still decides.
        "BODY lighthouse 2:4": [3], "UNSEEN TEXT walrus": [1, 2, 3],
        "SEEN BODY lighthouse": [],
    })
    c = search.c
    c.expect_ok("STORE 3 +FLAGS (\\Seen)")
    check(search, {"SEEN BODY lighthouse": [3], "UNSEEN BODY lighthouse": [1]})


def test_short_strings_are_read():
    _, _, search = mailbox()
    # Under three characters the index has no trigram: every candidate is
    # read, and the answer is the same as ever.
    check(search, {"BODY xy": [4], "TEXT é": [1, 2], "BODY ab": [], 'BODY ""': [1, 2, 3, 4]},
          reads=4)
    check(search, {"SEEN BODY xy": []}, reads=0)		# flags decide first
    # A string of three characters in five bytes is a trigram.
    check(search, {'BODY "afé"': [2]}, reads=0)


def test_after_expunge_copy_and_move():
    server, c, search = mailbox()
    c.expect_ok("CREATE Keep")
    c.expect_ok("COPY 1:3 Keep")
    c.expect_ok("STORE 1 +FLAGS (\\Deleted)")
    c.expect_ok("EXPUNGE")
    check(search, {"FROM walrus": [], "BODY lighthouse": [2], "TEXT walrus": [1, 2],
                   "NOT BODY lighthouse": [1, 3]})
    # Copies share the body and its index rows.
    c.expect_ok("SELECT Keep")
    check(search, {"FROM walrus": [1], "BODY lighthouse": [1, 3], "SUBJECT ωmega": [2]})
    c.expect_ok("MOVE 1 INBOX")
    check(search, {"FROM walrus": [], "BODY lighthouse": [2]})
    c.expect_ok("SELECT INBOX")
    check(search, {"FROM walrus": [4], "BODY lighthouse": [2, 4]})
    # Expunge every copy: the body and its rows go; a new message with the
    # same content is indexed again.
    c.expect_ok("STORE 1:* +FLAGS (\\Deleted)")
    c.expect_ok("EXPUNGE")
    c.expect_ok("SELECT Keep")
    c.expect_ok("STORE 1:* +FLAGS (\\Deleted)")
    c.expect_ok("EXPUNGE")
    # The indexer drains the text of deleted bodies from search.db.
    index_now(server)
    db = sqlite3.connect(index_db(server), timeout=10)
    rows = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("search_headers", "search_gone")]
    db.close()
    sdb = sqlite3.connect(search_db(server), timeout=10)
    rows += [sdb.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("docs", "fts_text")]
    sdb.close()
    assert rows == [0, 0, 0, 0], rows
    append(c, E1)
    index_now(server)
    c.expect_ok("SELECT INBOX")
    check(search, {"FROM walrus": [1], "BODY lighthouse": [1]})


def index_db(server, user="alice"):
    return os.path.join(server.dir, "data", "users", user, "index.db")


def test_messages_without_index_rows_are_read():
    # No background indexer: nothing re-indexes E2 behind the test's back.
    server, c, search = mailbox(make_server(indexer=False))
    # As if E2 had been stored before the index existed.
    db = sqlite3.connect(index_db(server), timeout=10)
    with db:
        blob = db.execute("SELECT blob_id FROM messages WHERE uid = 2").fetchone()[0]
        db.execute("DELETE FROM search_headers WHERE blob_id = ?", (blob,))
        db.execute("UPDATE blobs SET fts = 0 WHERE id = ?", (blob,))
    db.close()
    check(search, {"FROM müller": [2], "FROM walrus": [1], 'BODY "café"': [2],
                   "NOT BODY lighthouse": [2, 4], "CC walrus": [2]}, reads=1)


def test_store_from_before_the_index():
    server, c, search = mailbox()
    c.close()
    server.stop()
    # Schema 1 had no index tables and no fts column.
    db = sqlite3.connect(index_db(server))
    with db:
        db.execute("DROP TRIGGER blobs_delete_search")
        db.execute("DROP TABLE search_headers")
        db.execute("DROP TABLE search_gone")
        db.execute("DROP INDEX blobs_fts_pending")
        db.execute("ALTER TABLE blobs DROP COLUMN fts")
        db.execute("PRAGMA user_version = 1")
    db.close()
    os.remove(search_db(server))
    # Without the background indexer, to see each step.
    with open(server.config) as f:
        config = f.read()
    with open(server.config, "w") as f:
        f.write(config.replace("allow_plaintext_auth = yes", "allow_plaintext_auth = yes\nsearch_indexer = no", 1))
    server.start()
    c = session(server)
    append(c, "From: olga@example.com\r\nSubject: Omicron\r\n\r\nCafé crème\r\n")
    assert fts_states(server) == [0] * 5, fts_states(server)
    c.expect_ok("SELECT INBOX")
    search = Searcher(server, c)
    # Every message is searchable: the old ones are read, the new one has
    # its header fields but no full text yet.
    check(search, {"FROM walrus": [1], "SUBJECT ωmega": [2]}, reads=4)
    check(search, {"SUBJECT omicron": [5]}, reads=4)
    check(search, {"BODY lighthouse": [1, 3], "BODY café": [2, 5]}, reads=5)
    # Indexed: the old bodies get header fields and full text.
    out = index_now(server)
    assert "alice: 5 messages indexed" in out, out
    assert fts_states(server) == [1] * 5, fts_states(server)
    check(search, {"FROM walrus": [1], "SUBJECT omicron": [5], "BODY lighthouse": [1, 3],
                   "BODY café": [2, 5]}, reads=0)


def wait_indexed(server, count, user="alice", timeout=30):
    deadline = time.monotonic() + timeout
    while fts_states(server, user) != [1] * count:
        assert time.monotonic() < deadline, fts_states(server, user)
        time.sleep(0.05)


def test_lmtp_and_deliver_are_indexed_in_the_background():
    server = make_server(lmtp=True)
    client = server.lmtp()
    client.sendmail("sender@example.com", ["alice@test.example"], E1.encode())
    client.quit()
    # `postern deliver` tells no indexer: the login finds it pending.
    cmd = [harness.BIN, "deliver", "-c", server.config, "alice"]
    r = subprocess.run(cmd, input=E3.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c = session(server)
    wait_indexed(server, 2)
    c.expect_ok("SELECT INBOX")
    check(Searcher(server, c), {"FROM walrus": [1], "BODY lighthouse": [1, 2],
                                'TEXT "inner walrus"': [2]})
    # An APPEND is indexed after its commit, without anyone asking.
    append(c, E2)
    wait_indexed(server, 3)
    c.expect_ok("NOOP")
    check(Searcher(server, c), {'BODY "café au lait"': [3]})


def test_same_answers_before_and_after_indexing():
    server, c, search = mailbox(make_server(indexer=False), index=False)
    cases = {"BODY lighthouse": [1, 3], 'TEXT "LIGHTHOUSE keeper"': [3], 'BODY "café au lait"': [2],
             'BODY "attachmentonly"': [], "NOT BODY lighthouse": [2, 4], 'TEXT "réunion"': [1],
             'BODY "inner walrus"': [3], "OR BODY привет TEXT walrus": [1, 2, 3]}
    # search_indexer = no: nothing is indexed behind SEARCH's back.
    assert fts_states(server) == [0] * 4, fts_states(server)
    assert not os.path.exists(search_db(server))
    before = {k: search(k)[0] for k in cases}
    assert before == cases, before
    assert fts_states(server) == [0] * 4, fts_states(server)
    out = index_now(server)
    assert re.search(r"alice: 4 messages indexed, 0 left out, 0 removed in [0-9.]+ s \([0-9]+ messages/s\)", out), out
    check(search, cases, reads=0)


def test_postern_index_answers_from_the_index():
    server, c, search = mailbox()
    # Proof that the text comes from search.db: with the message files
    # gone, a scan could match nothing (a message that cannot be read does
    # not match), the index still does.
    blobs = os.path.join(server.dir, "data", "users", "alice", "blobs")
    for d in os.listdir(blobs):
        if d != "tmp":
            for f in os.listdir(os.path.join(blobs, d)):
                os.remove(os.path.join(blobs, d, f))
    check(search, {'BODY "lighthouse inventory"': [1], 'TEXT "LIGHTHOUSE keeper"': [3],
                   "FROM walrus": [1]}, reads=0)
    # Indexing again finds nothing to do.
    assert "alice: 0 messages indexed" in index_now(server)


def test_postern_index_refuses_unknown_users():
    server = make_server()
    r = subprocess.run([harness.BIN, "index", "-c", server.config, "nobody"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "no such user: nobody" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([harness.BIN, "index", "-c", server.config], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "usage" in r.stderr, (r.returncode, r.stderr)


def test_raw_8bit_text_is_indexed_exactly():
    server = make_server()
    c = session(server)
    # Raw Latin-1 bytes in a header and a body without a charset: not
    # UTF-8, yet indexed (those bytes stand as U+FFFD there, which no
    # indexed needle holds).
    append(c, b"From: Ren\xe9 <rene@example.fr>\r\nSubject: Caf\xe9 walrus\r\n\r\n"
              b"na\xefve lighthouse \xff\xfe inventory\r\n")
    append(c, E1)
    index_now(server)
    c.expect_ok("SELECT INBOX")
    check(Searcher(server, c), {
        'TEXT "walrus"': [1, 2], 'BODY "lighthouse"': [1, 2],
        'BODY "lighthouse inventory"': [2], 'TEXT "ren"': [1],
        'BODY "ve lighthouse"': [1], 'BODY "\\"hi\\" \\"there\\""': [],
    })
