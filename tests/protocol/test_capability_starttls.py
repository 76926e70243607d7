"""Greeting and CAPABILITY before and after STARTTLS and login,
LOGINDISABLED, and the STARTTLS command injection case (RFC 9051 6.2.1,
RFC 2595 3.1, CVE-2011-0411)."""
import re

from harness import Server


def caps_of(line):
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", line)
    assert m, line
    return m.group(1).split()


def test_implicit_tls_greeting_offers_auth():
    server = Server()
    c = server.connect("imaps")
    greeting = c.read_greeting()
    assert greeting.startswith("* OK [CAPABILITY "), greeting
    caps = caps_of(greeting)
    assert "IMAP4rev1" in caps and "AUTH=PLAIN" in caps and "SASL-IR" in caps
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert caps == c.capabilities()


def test_starttls_listener_before_tls():
    server = Server()
    c = server.connect("imap")
    caps = caps_of(c.read_greeting())
    assert "STARTTLS" in caps and "LOGINDISABLED" in caps
    assert not any(cap.startswith("AUTH=") for cap in caps), caps
    assert c.capabilities() == caps
    _, tagged = c.login()
    assert re.match(r"t\d+ NO \[PRIVACYREQUIRED\]", tagged), tagged
    _, tagged = c.command("AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=")
    assert re.match(r"t\d+ NO \[PRIVACYREQUIRED\]", tagged), tagged


def test_capabilities_change_after_tls_and_login():
    server = Server()
    c = server.connect("imap")
    c.read_greeting()
    c.starttls()
    caps = c.capabilities()
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    _, tagged = c.command("STARTTLS")
    assert re.match(r"t\d+ BAD", tagged), tagged
    _, tagged = c.login()
    assert " OK [CAPABILITY " in tagged, tagged
    after = caps_of(tagged)
    assert "IMAP4rev1" in after and not any(x.startswith("AUTH=") for x in after)
    assert after == c.capabilities()


def test_starttls_discards_pipelined_commands():
    server = Server()
    c = server.connect("imap")
    c.read_greeting()
    # The injected command rides in the same packet as STARTTLS.
    c.send("s1 STARTTLS\r\ninjected CAPABILITY\r\n")
    untagged, tagged = c.read_until_tagged("s1")
    assert tagged.startswith("s1 OK"), tagged
    c.buf = b""
    import harness
    c.sock = harness.client_tls_context().wrap_socket(c.sock)
    untagged, tagged = c.command("NOOP", tag="after")
    assert untagged == [] and tagged.startswith("after OK"), (untagged, tagged)
    c.send("x1 LOGOUT\r\n")
    rest = []
    try:
        while True:
            rest.append(c.read_line())
    except EOFError:
        pass
    assert not any(line.startswith("injected") for line in rest), rest


def test_starttls_refused_on_implicit_and_plain_listeners():
    server = Server(listeners=(("imaps", "implicit"), ("plain", "none")))
    c = server.connect("imaps")
    c.read_greeting()
    _, tagged = c.command("STARTTLS")
    assert " BAD " in tagged, tagged
    p = server.connect("plain")
    caps = caps_of(p.read_greeting())
    assert "STARTTLS" not in caps and "LOGINDISABLED" in caps
    _, tagged = p.command("STARTTLS")
    assert " BAD " in tagged, tagged


def test_allow_plaintext_auth():
    server = Server(listeners=(("plain", "none"),), extra="allow_plaintext_auth = yes")
    c = server.connect("plain")
    caps = caps_of(c.read_greeting())
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
    _, tagged = c.login()
    assert " OK " in tagged, tagged
