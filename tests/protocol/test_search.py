"""SEARCH and UID SEARCH (RFC 3501 6.4.4, RFC 9051 6.4.4): every search key
against messages appended here, MIME decoding (quoted-printable, base64,
ISO-8859-1, UTF-8, encoded words), case-insensitive matching beyond ASCII,
CHARSET, ESEARCH result options (RFC 4731), syntax errors, and a message
expunged by another session while a search runs."""
import base64
import datetime
import re

from harness import Server, session


def make_server():
    return Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")


def append(c, body, flags="", date=""):
    if isinstance(body, str):
        body = body.encode()
    extra = (f" ({flags})" if flags else "") + (f' "{date}"' if date else "")
    c.send(f"ap APPEND INBOX{extra} {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    _, tagged = c.read_until_tagged("ap")
    assert tagged.startswith("ap OK"), tagged


M1 = (
    "From: Alice Example <alice@example.org>\r\n"
    "To: bob@example.com\r\n"
    "Cc: carol@example.net\r\n"
    "Bcc: dave@example.com\r\n"
    "Subject: Hello world\r\n"
    "Date: Mon, 1 Jul 2024 23:30:00 -0700\r\n"
    "X-Custom: Foo Bar\r\n"
    "\r\n"
    "The quick brown fox jumps over the lazy dog.\r\n"
)

M2 = (
    "From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <juergen@example.de>\r\n"
    "To: alice@example.org\r\n"
    "Subject: =?iso-8859-1?Q?Caf=E9_cr=E8me?=\r\n"
    "Date: 15 Mar 2023 10:00:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Gr=FC=DFe aus K=F6ln, =C4PFEL und Birnen.\r\n"
)

_m3_body = base64.encodebytes("Привет, мир! Ich mag äpfel. ΣΟΦΊΑ\r\n".encode()).decode().replace("\n", "\r\n")
M3 = (
    "From: nikos@example.gr\r\n"
    "To: alice@example.org\r\n"
    "Subject: =?utf-8?B?" + base64.b64encode("Ελληνικά θέματα".encode()).decode() + "?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + _m3_body
)

_attachment = base64.encodebytes(b"SECRETWORD " * 200).decode().replace("\n", "\r\n")
M4 = (
    "From: billing@example.com\r\n"
    "To: alice@example.org\r\n"
    "Subject: Your invoice\r\n"
    "Date: Thu, 2 Jan 2025 08:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Invoice attached, total 12=E2=82=AC.\r\n"
    "--b1\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + _attachment +
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.com\r\n"
    "Subject: Inner subject\r\n"
    "\r\n"
    "inner body text\r\n"
    "--b1--\r\n"
)


def mailbox():
    """A server with INBOX holding M1..M4 (UIDs 1..4), selected."""
    server = make_server()
    c = session(server)
    append(c, M1, flags="\\Seen \\Flagged $Work", date="14-Jul-2024 09:30:00 +0200")
    append(c, M2, flags="\\Answered", date="01-Mar-2023 12:00:00 +0000")
    append(c, M3, flags="\\Deleted \\Draft", date="20-Aug-2024 23:59:59 +0000")
    append(c, M4, date="02-Jan-2025 08:00:00 +0000")
    c.expect_ok("SELECT INBOX")
    return server, c


def search(c, criteria, uid=False):
    """The numbers of `SEARCH criteria` (criteria: str or bytes)."""
    tag = c.next_tag()
    if isinstance(criteria, str):
        criteria = criteria.encode()
    c.send(tag.encode() + (b" UID SEARCH " if uid else b" SEARCH ") + criteria + b"\r\n")
    untagged, tagged = c.read_until_tagged(tag)
    assert tagged.startswith(f"{tag} OK"), (criteria, tagged)
    lines = [l for l in untagged if l.startswith("* SEARCH")]
    assert len(lines) == 1, (criteria, untagged)
    return [int(n) for n in lines[0].split()[2:]]


def literal(text):
    data = text.encode()
    return b"{%d+}\r\n" % len(data) + data


def test_flag_keys():
    _, c = mailbox()
    cases = {
        "ALL": [1, 2, 3, 4],
        "SEEN": [1], "UNSEEN": [2, 3, 4],
        "ANSWERED": [2], "UNANSWERED": [1, 3, 4],
        "DELETED": [3], "UNDELETED": [1, 2, 4],
        "DRAFT": [3], "UNDRAFT": [1, 2, 4],
        "FLAGGED": [1], "UNFLAGGED": [2, 3, 4],
        "KEYWORD $Work": [1], "KEYWORD $work": [1], "UNKEYWORD $Work": [2, 3, 4],
        "KEYWORD $Never": [], "UNKEYWORD $Never": [1, 2, 3, 4],
        "seen": [1], "UnSeen": [2, 3, 4],
    }
    for criteria, expected in cases.items():
        assert search(c, criteria) == expected, criteria


def test_recent_new_old():
    _, c = mailbox()
    # Present when SELECT ran: not recent for this session.
    assert search(c, "RECENT") == []
    assert search(c, "OLD") == [1, 2, 3, 4]
    append(c, "Subject: late\r\n\r\nlate arrival\r\n")
    c.expect_ok("NOOP")
    assert search(c, "RECENT") == [5]
    assert search(c, "NEW") == [5]
    assert search(c, "OLD") == [1, 2, 3, 4]
    c.expect_ok("STORE 5 +FLAGS (\\Seen)")
    assert search(c, "NEW") == []


def test_size_and_internal_date_keys():
    _, c = mailbox()
    cases = {
        "LARGER 2000": [4], "SMALLER 1000": [1, 2, 3], "LARGER 4000000000": [],
        "ON 14-Jul-2024": [1], "ON 14-JUL-2024": [1], 'ON "14-Jul-2024"': [1],
        "BEFORE 14-Jul-2024": [2], "SINCE 14-Jul-2024": [1, 3, 4],
        "SINCE 15-Jul-2024": [3, 4], "ON 1-Mar-2023": [2], "ON 01-Mar-2023": [2],
        "BEFORE 1-Jan-1990": [], "SINCE 1-Jan-2030": [],
    }
    for criteria, expected in cases.items():
        assert search(c, criteria) == expected, criteria


def test_sent_saved_older_younger():
    _, c = mailbox()
    # Sent dates disregard time and zone: 23:30 -0700 on 1 July is 1 July.
    assert search(c, "SENTON 1-Jul-2024") == [1]
    assert search(c, "SENTON 2-Jul-2024") == []
    assert search(c, "SENTBEFORE 1-Jul-2024") == [2]
    # M3 has no Date: its internal date (20 Aug 2024) stands in.
    assert search(c, "SENTON 20-Aug-2024") == [3]
    assert search(c, "SENTSINCE 1-Jan-2025") == [4]
    today = datetime.datetime.now(datetime.timezone.utc)
    day = f"{today.day}-{today.strftime('%b')}-{today.year}"
    assert search(c, f"SAVEDON {day}") == [1, 2, 3, 4]
    assert search(c, "SAVEDBEFORE 1-Jan-2000") == []
    assert search(c, "SAVEDSINCE 1-Jan-2000") == [1, 2, 3, 4]
    assert search(c, "OLDER 3600") == [1, 2, 3, 4]
    assert search(c, "YOUNGER 3600") == []
    append(c, "Subject: now\r\n\r\nfresh\r\n")
    c.expect_ok("NOOP")
    assert search(c, "YOUNGER 3600") == [5]
    assert search(c, "OLDER 3600") == [1, 2, 3, 4]


def test_header_keys():
    _, c = mailbox()
    cases = {
        "FROM alice": [1], 'FROM "ALICE@EXAMPLE.ORG"': [1], "FROM example": [1, 2, 3, 4],
        "TO bob": [1], "CC carol": [1], "BCC dave": [1], "CC nobody": [],
        'SUBJECT "hello WORLD"': [1], "SUBJECT invoice": [4],
        # Raw text of an encoded word matches too.
        "SUBJECT caf=E9": [2],
        "HEADER X-Custom bar": [1], 'HEADER x-custom ""': [1], 'HEADER X-Missing ""': [],
        'HEADER Content-Transfer-Encoding "base64"': [3],
        # Only the top-level header: the inner message's From is body text.
        "FROM inner": [],
    }
    for criteria, expected in cases.items():
        assert search(c, criteria) == expected, criteria
    # Encoded words, decoded, matched without case beyond ASCII.
    assert search(c, b"SUBJECT " + literal("café")) == [2]
    assert search(c, b"SUBJECT " + literal("CAFÉ CRÈME")) == [2]
    assert search(c, b"CHARSET UTF-8 SUBJECT " + literal("ΘΈΜΑΤΑ")) == [3]
    assert search(c, b"FROM " + literal("jürgen müller")) == [2]


def test_body_and_text():
    _, c = mailbox()
    assert search(c, "BODY quick") == [1]
    assert search(c, "BODY Hello") == []          # the subject is not body
    assert search(c, "TEXT Hello") == [1]
    assert search(c, "TEXT quick") == [1]
    assert search(c, "TEXT x-custom") == [1]      # field names are header text
    # Quoted-printable ISO-8859-1 and base64 UTF-8, any case.
    assert search(c, b"BODY " + literal("ÄPFEL")) == [2, 3]
    assert search(c, b"BODY " + literal("äpfel")) == [2, 3]
    assert search(c, b"BODY " + literal("KÖLN")) == [2]
    assert search(c, b"BODY " + literal("grüße")) == [2]
    assert search(c, b"BODY " + literal("МИР")) == [3]
    assert search(c, b"BODY " + literal("σοφία")) == [3]
    assert search(c, b"BODY " + literal("12€")) == [4]
    # Attachments are not text; an attached message's header and body are.
    assert search(c, "BODY SECRETWORD") == []
    assert search(c, 'BODY "inner body"') == [4]
    assert search(c, 'BODY "inner subject"') == [4]
    assert search(c, 'TEXT "INNER SUBJECT"') == [4]
    assert search(c, 'BODY ""') == [1, 2, 3, 4]


def test_logic_and_sets():
    _, c = mailbox()
    cases = {
        "NOT SEEN": [2, 3, 4], "NOT NOT SEEN": [1],
        "OR SEEN DELETED": [1, 3], "OR (SEEN FLAGGED) DRAFT": [1, 3],
        "(SEEN FLAGGED)": [1], "(SEEN ANSWERED)": [],
        "UNSEEN SMALLER 1000": [2, 3], "NOT (UNSEEN SMALLER 1000)": [1, 4],
        "OR BODY quick KEYWORD $Work": [1], "OR BODY quick BODY invoice": [1, 4],
        "2:3": [2, 3], "2,4": [2, 4], "*": [4], "3:*": [3, 4], "4:2": [2, 3, 4],
        "1:10": [1, 2, 3, 4], "UID 1:2": [1, 2], "UID 3:*": [3, 4], "UID 99": [],
        "UID 99:*": [4], "NOT UID 2": [1, 3, 4],
        "1:* UNDELETED": [1, 2, 4],
    }
    for criteria, expected in cases.items():
        assert search(c, criteria) == expected, criteria


def test_uid_search():
    _, c = mailbox()
    c.expect_ok("STORE 1 +FLAGS (\\Deleted)")
    c.expect_ok("UID EXPUNGE 1")  # UIDs 2, 3, 4 are now messages 1, 2, 3
    assert search(c, "ALL") == [1, 2, 3]
    assert search(c, "ALL", uid=True) == [2, 3, 4]
    assert search(c, "UID 3:4", uid=True) == [3, 4]
    assert search(c, "UID 3:4") == [2, 3]
    assert search(c, "1", uid=True) == [2]
    assert search(c, "uid 1", uid=True) == []
    untagged, tagged = c.command("uid search deleted")
    assert untagged == ["* SEARCH 3"] and " OK " in tagged, (untagged, tagged)


def test_charset():
    _, c = mailbox()
    assert search(c, "CHARSET UTF-8 SEEN") == [1]
    assert search(c, "CHARSET us-ascii FROM alice") == [1]
    assert search(c, 'CHARSET "utf-8" TEXT fox') == [1]
    _, tagged = c.command("SEARCH CHARSET ISO-8859-1 FROM alice")
    assert re.match(r"t\d+ NO \[BADCHARSET \(UTF-8 US-ASCII\)\] ", tagged), tagged
    _, tagged = c.command("UID SEARCH CHARSET KOI8-R ALL")
    assert " NO [BADCHARSET (UTF-8 US-ASCII)]" in tagged, tagged


def test_esearch():
    _, c = mailbox()
    untagged, tagged = c.command("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN", tag="e1")
    assert untagged == ['* ESEARCH (TAG "e1") MIN 2 MAX 4 COUNT 3 ALL 2:4'], untagged
    assert tagged.startswith("e1 OK"), tagged
    untagged, _ = c.command("UID SEARCH RETURN () OR SEEN DELETED", tag="e2")
    assert untagged == ['* ESEARCH (TAG "e2") UID ALL 1,3'], untagged
    untagged, _ = c.command("SEARCH RETURN (COUNT) KEYWORD $Never", tag="e3")
    assert untagged == ['* ESEARCH (TAG "e3") COUNT 0'], untagged
    untagged, _ = c.command("SEARCH RETURN (MIN MAX ALL) KEYWORD $Never", tag="e4")
    assert untagged == ['* ESEARCH (TAG "e4")'], untagged
    untagged, _ = c.command("search return (max min) charset utf-8 all", tag="e5")
    assert untagged == ['* ESEARCH (TAG "e5") MIN 1 MAX 4'], untagged
    untagged, _ = c.command("UID SEARCH RETURN (COUNT) 1:*", tag="e6")
    assert untagged == ['* ESEARCH (TAG "e6") UID COUNT 4'], untagged


def test_syntax_errors():
    _, c = mailbox()
    cases = {
        "SEARCH": "at least one search key",
        "SEARCH FOO": "Unknown search key FOO",
        "SEARCH FROM": "FROM needs a string",
        "SEARCH HEADER Subject": "needs a string after the field name",
        "SEARCH BEFORE 32-Jan-2024": "Bad date after BEFORE",
        "SEARCH ON 1-Foo-2024": "Bad date after ON",
        "SEARCH SINCE 2024-01-01": "Bad date after SINCE",
        "SEARCH LARGER ten": "LARGER needs a number",
        "SEARCH LARGER 99999999999": "LARGER needs a number",
        "SEARCH OLDER 0": "above 0",
        "SEARCH OR SEEN": "OR needs two search keys",
        "SEARCH NOT": "NOT needs a search key",
        "SEARCH ()": "Empty parentheses",
        "SEARCH UID 1:x": "Invalid sequence set",
        "SEARCH 0": "Invalid sequence set",
        "SEARCH $,1": "Invalid sequence set",
        "SEARCH RETURN (BOGUS) ALL": "Unknown RETURN option BOGUS",
        "SEARCH RETURN ALL": "parenthesised list",
        "SEARCH CHARSET": "CHARSET needs a charset name",
        "SEARCH " + "NOT " * 100 + "SEEN": "nested too deeply",
        "SEARCH (SEEN": None,          # unbalanced: the command parser says so
        "SEARCH SEEN)": None,
        "SEARCH \"SEEN\"": "Expected a search key",
    }
    for command, text in cases.items():
        _, tagged = c.command(command)
        assert re.match(r"t\d+ BAD ", tagged), (command, tagged)
        if text:
            assert text in tagged, (command, tagged)
    # The session goes on after every error.
    assert search(c, "SEEN") == [1]


def test_search_needs_selected_state():
    server = make_server()
    c = session(server)
    _, tagged = c.command("SEARCH ALL")
    assert " BAD " in tagged and "not valid in the authenticated state" in tagged, tagged


def test_message_expunged_by_other_session():
    server, a = mailbox()
    b = session(server)
    b.expect_ok("SELECT INBOX")
    b.expect_ok("STORE 2 +FLAGS (\\Deleted)")
    b.expect_ok("EXPUNGE")
    # a still numbers the message 2; its body is gone: it simply doesn't
    # match, and no EXPUNGE arrives during SEARCH (RFC 9051 7.4.1).
    untagged, tagged = a.command("SEARCH BODY " + '"aus"')
    assert " OK " in tagged, tagged
    assert "* SEARCH" in untagged and not any("EXPUNGE" in l for l in untagged), untagged
    assert search(a, b"BODY " + literal("köln")) == []
    untagged, _ = a.expect_ok("NOOP")
    assert "* 2 EXPUNGE" in untagged, untagged


def test_large_body_search_yields_and_pipelines():
    server = make_server()
    c = session(server)
    # Enough bodies to take several slices under the sanitizers.
    # The needle is shorter than a trigram, so the full-text index cannot
    # answer and every body is read (test_search_index.py covers the index).
    parts = []
    for i in range(300):
        word = "q7" if i % 7 == 0 else "hay"
        body = (f"Subject: m{i}\r\n\r\n" + ("filler text line\r\n" * 200) + word + "\r\n").encode()
        parts.append(f"a{i} APPEND INBOX {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    c.send(b"".join(parts))
    for i in range(300):
        _, tagged = c.read_until_tagged(f"a{i}")
        assert " OK " in tagged, tagged
    c.expect_ok("SELECT INBOX")
    # A search and a NOOP pipelined: answers come in order.
    c.send(b"s1 SEARCH BODY q7\r\ns2 NOOP\r\n")
    untagged, tagged = c.read_until_tagged("s1")
    assert tagged.startswith("s1 OK"), tagged
    expected = [i + 1 for i in range(300) if i % 7 == 0]
    assert untagged == ["* SEARCH " + " ".join(map(str, expected))], untagged[:3]
    _, tagged = c.read_until_tagged("s2")
    assert tagged.startswith("s2 OK"), tagged
    server.wait_log(r"event=search session=\S+ messages=300 matches=43 bodies_read=300 slices=([2-9]|\d\d+) ")
    # Cheap keys first: flags decide before any body is read.
    assert search(c, "BODY q7 SEEN") == []
    server.wait_log(r"event=search session=\S+ messages=300 matches=0 bodies_read=0 ")
    assert search(c, "OR UNSEEN BODY q7")[:2] == [1, 2]
    server.wait_log(r"event=search session=\S+ messages=300 matches=300 bodies_read=0 ")
