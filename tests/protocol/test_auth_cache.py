"""The verified-login cache: a password verified once is accepted again
without the slow hash (the login log says cache=hit, and
postern_login_cache_hits_total counts it); a password change in the
passwd file, a wrong password and the throttle all behave as without it."""
import base64
import os
import re
import signal
import time
import urllib.request

from harness import PASSWORDS, Server, free_port, sha512_crypt


def cache_server(extra=""):
    port = free_port()
    server = Server(extra=f"{extra}\n[metrics]\naddress = 127.0.0.1:{port}")
    server.metrics_port = port
    return server


def metric(server, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def login(server, user="alice", password=None):
    """One connection, one LOGIN; returns (tagged reply, seconds taken)."""
    c = server.connect("imaps")
    c.read_greeting()
    start = time.monotonic()
    _, tagged = c.login(user, password)
    elapsed = time.monotonic() - start
    c.command("LOGOUT")
    c.close()
    return tagged, elapsed


def login_lines(server, user="alice"):
    return re.findall(rf"event=login [^\n]*user={user} [^\n]*", server.read_log())


def set_password(server, user, password):
    """Replaces the user's hash the way `postern user` does: a new file
    renamed over the old one, which the server notices at the next login."""
    with open(server.passwd) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith(user + ":")]
    lines.append(f"{user}:{sha512_crypt(password)}")
    tmp = server.passwd + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, server.passwd)


def test_second_login_is_a_cache_hit():
    server = cache_server()
    for _ in range(3):
        tagged, _ = login(server)
        assert " OK " in tagged, tagged
    c = server.connect("imaps")
    c.read_greeting()
    plain = base64.b64encode(f"\0alice\0{PASSWORDS['alice']}".encode()).decode()
    assert " OK " in c.command("AUTHENTICATE PLAIN " + plain)[1]
    c.close()
    server.wait_log(r"event=login [^\n]*mech=PLAIN result=ok", count=1)
    lines = login_lines(server)
    assert len(lines) == 4, lines
    assert "cache=hit" not in lines[0], lines
    assert all("cache=hit" in l for l in lines[1:]), lines
    assert metric(server, "postern_login_cache_hits_total") == 3
    assert metric(server, 'postern_logins_total{mechanism="LOGIN",result="ok"}') == 3
    assert PASSWORDS["alice"] not in server.read_log()


def test_password_change_refuses_the_old_and_takes_the_new():
    server = cache_server()
    for _ in range(2):
        assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 1
    set_password(server, "alice", "looking glass")
    tagged, _ = login(server)
    assert " NO [AUTHENTICATIONFAILED]" in tagged, tagged
    tagged, _ = login(server, password="looking glass")
    assert " OK " in tagged, tagged
    tagged, _ = login(server, password="looking glass")
    assert " OK " in tagged, tagged
    lines = login_lines(server)
    assert ["result=ok" in l for l in lines] == [True, True, False, True, True], lines
    assert ["cache=hit" in l for l in lines] == [False, True, False, False, True], lines
    assert metric(server, "postern_login_cache_hits_total") == 2


def test_wrong_password_after_a_cached_success_is_refused_and_throttled():
    server = cache_server()  # auth_failure_delay = 100 ms
    for _ in range(2):
        assert " OK " in login(server)[0]
    tagged, elapsed = login(server, password="wonderlanD")
    assert " NO [AUTHENTICATIONFAILED]" in tagged, tagged
    assert elapsed >= 0.09, elapsed
    tagged, elapsed = login(server, password="wonderland ")
    assert " NO [AUTHENTICATIONFAILED]" in tagged, tagged
    assert elapsed >= 0.19, elapsed      # the penalty grew: failures still count
    # The owner still gets in from the cache, but only after the
    # throttle's delay: the throttle is asked before the cache.
    tagged, elapsed = login(server)
    assert " OK " in tagged, tagged
    assert elapsed >= 0.19, elapsed
    outcomes = [(re.search(r"result=(\w+)", l).group(1), "cache=hit" in l) for l in login_lines(server)]
    assert outcomes == [("ok", False), ("ok", True), ("fail", False), ("fail", False), ("ok", True)], outcomes
    assert metric(server, 'postern_logins_total{mechanism="LOGIN",result="failed"}') == 2
    assert metric(server, "postern_login_throttled_total") >= 3


def test_unknown_user_and_other_users_are_not_served_from_the_cache():
    server = cache_server()
    assert " OK " in login(server)[0]
    tagged, elapsed = login(server, user="mallory", password=PASSWORDS["alice"])
    assert " NO " in tagged
    tagged, _ = login(server, user="bob", password=PASSWORDS["alice"])
    assert " NO " in tagged
    assert metric(server, "postern_login_cache_hits_total") == 0


def test_ttl_zero_turns_the_cache_off_and_a_reload_turns_it_on():
    server = cache_server("auth_cache_ttl = 0")
    for _ in range(2):
        assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 0
    assert not any("cache=hit" in l for l in login_lines(server))
    with open(server.config) as f:
        text = f.read()
    with open(server.config, "w") as f:
        f.write(text.replace("auth_cache_ttl = 0", "auth_cache_ttl = 60"))
    server.signal(signal.SIGHUP)
    server.wait_log(r"event=worker_reloaded")
    for _ in range(2):
        assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 1


def test_entries_expire_after_the_ttl():
    server = cache_server("auth_cache_ttl = 1")
    assert " OK " in login(server)[0]
    assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 1
    time.sleep(1.1)
    assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 1
    assert " OK " in login(server)[0]
    assert metric(server, "postern_login_cache_hits_total") == 2
