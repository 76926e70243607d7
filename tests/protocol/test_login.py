"""LOGIN and AUTHENTICATE PLAIN (with and without SASL-IR), failures,
wrong state, unknown commands, throttling and the login log."""
import base64
import re
import time

from harness import PASSWORDS, Server


def plain(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def tls_client(server):
    c = server.connect("imaps")
    c.read_greeting()
    return c


def test_login_ok_and_logout():
    server = Server()
    c = tls_client(server)
    _, tagged = c.login("alice")
    assert re.match(r"t\d+ OK \[CAPABILITY [^\]]+\] ", tagged), tagged
    untagged, tagged = c.command("LOGOUT")
    assert untagged == ["* BYE Logging out"], untagged
    assert " OK " in tagged
    assert c.is_closed()


def test_login_with_literals_and_quoted_password():
    server = Server()
    c = tls_client(server)
    pw = PASSWORDS["carol"].encode()
    c.send(b"a1 LOGIN {5}\r\n")
    assert c.read_line().startswith("+ ")
    c.send(b"carol {%d}\r\n" % len(pw))
    assert c.read_line().startswith("+ ")
    c.send(pw + b"\r\n")
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 OK"), tagged


def test_login_literal_plus():
    server = Server()
    c = tls_client(server)
    c.send(b"a1 LOGIN {3+}\r\nbob {7+}\r\nbuilder\r\n")
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 OK"), tagged


def test_wrong_password_and_unknown_user():
    server = Server()
    c = tls_client(server)
    _, tagged = c.login("alice", "not the password")
    assert re.match(r"t\d+ NO \[AUTHENTICATIONFAILED\] ", tagged), tagged
    _, tagged = c.command('LOGIN nobody "whatever"')
    assert re.match(r"t\d+ NO \[AUTHENTICATIONFAILED\] ", tagged), tagged
    # Still not authenticated: the connection goes on.
    _, tagged = c.login("alice")
    assert " OK " in tagged, tagged


def test_authenticate_plain_with_sasl_ir():
    server = Server()
    c = tls_client(server)
    _, tagged = c.command("AUTHENTICATE PLAIN " + plain("alice", PASSWORDS["alice"]))
    assert re.match(r"t\d+ OK \[CAPABILITY ", tagged), tagged


def test_authenticate_plain_with_continuation():
    server = Server()
    c = tls_client(server)
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    assert c.read_line().startswith("+")
    c.send(plain("bob", PASSWORDS["bob"]) + "\r\n")
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 OK"), tagged


def test_authenticate_cancel_and_bad_input():
    server = Server()
    c = tls_client(server)
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    assert c.read_line().startswith("+")
    c.send("*\r\n")
    _, tagged = c.read_until_tagged("a1")
    assert tagged.startswith("a1 BAD"), tagged
    _, tagged = c.command("AUTHENTICATE PLAIN !!!notbase64")
    assert " BAD " in tagged, tagged
    _, tagged = c.command("AUTHENTICATE PLAIN " + plain("alice", "wrong"))
    assert " NO [AUTHENTICATIONFAILED]" in tagged, tagged
    _, tagged = c.command("AUTHENTICATE CRAM-MD5")
    assert " NO " in tagged, tagged
    _, tagged = c.command("AUTHENTICATE PLAIN " + plain("alice", PASSWORDS["alice"], authzid="bob"))
    assert " BAD " in tagged or " NO " in tagged, tagged
    _, tagged = c.command("AUTHENTICATE PLAIN =")
    assert " BAD " in tagged or " NO " in tagged, tagged


def test_wrong_state_and_unknown_command():
    server = Server()
    c = tls_client(server)
    _, tagged = c.command("ENABLE CONDSTORE")
    assert re.match(r"t\d+ BAD .*not valid in the not authenticated state", tagged), tagged
    _, tagged = c.command("FROBNICATE now")
    assert re.match(r"t\d+ BAD Unknown command", tagged), tagged
    c.login()
    _, tagged = c.login()
    assert re.match(r"t\d+ BAD .*not valid in the authenticated state", tagged), tagged
    _, tagged = c.command("AUTHENTICATE PLAIN")
    assert " BAD " in tagged, tagged
    untagged, tagged = c.command("ENABLE FOO BAR")
    assert untagged == ["* ENABLED"] and " OK " in tagged, (untagged, tagged)
    _, tagged = c.command("NOOP extra")
    assert " BAD " in tagged, tagged


def test_id_command():
    server = Server()
    c = tls_client(server)
    untagged, tagged = c.command('ID ("name" "test\\"client" "version" "1.0")')
    assert " OK " in tagged and untagged[0].startswith('* ID ("name" "postern"'), untagged
    _, tagged = c.command("ID NIL")
    assert " OK " in tagged
    _, tagged = c.command('ID ("odd")')
    assert " BAD " in tagged, tagged
    server.wait_log(r'event=client_id .*id_name="test\\"client"')


def test_failed_logins_are_delayed_and_owner_still_gets_in():
    server = Server()  # delays: 100 ms doubling to 400 ms
    c = tls_client(server)
    delays = []
    for _ in range(4):
        start = time.monotonic()
        _, tagged = c.login("alice", "wrong")
        delays.append(time.monotonic() - start)
        assert " NO [AUTHENTICATIONFAILED]" in tagged, tagged
    assert delays[0] >= 0.09, delays
    assert delays[2] >= 0.39, delays
    start = time.monotonic()
    _, tagged = c.login("alice")
    assert " OK " in tagged, tagged
    assert time.monotonic() - start >= 0.39  # the penalty still applied


def test_password_spraying_is_throttled_and_logged():
    server = Server(extra="auth_spray_threshold = 3")
    c = tls_client(server)
    for user in ("u1", "u2", "u3", "u4"):
        c.login(user, "guess")
    start = time.monotonic()
    _, tagged = c.login("u5", "guess")
    assert " NO " in tagged
    # Spraying doubles the maximum (400 ms -> 800 ms).
    assert time.monotonic() - start >= 0.79
    server.wait_log(r"event=login .*attack=password_spraying")


def test_login_log_has_user_ip_result_and_never_the_password():
    server = Server()
    c = tls_client(server)
    c.login("alice", "S3cretWrong")
    c.login("alice")
    server.wait_log(r"event=login .*user=alice ip=127\.0\.0\.1 mech=LOGIN result=fail")
    server.wait_log(r"event=login .*user=alice ip=127\.0\.0\.1 mech=LOGIN result=ok")
    log = server.read_log()
    assert "S3cretWrong" not in log and PASSWORDS["alice"] not in log


def test_passwd_file_changes_are_picked_up():
    server = Server()
    import harness
    with open(server.passwd, "a") as f:
        f.write("dave:" + harness.sha512_crypt("newpass") + "\n")
    c = tls_client(server)
    _, tagged = c.login("dave", "newpass")
    assert " OK " in tagged, tagged
