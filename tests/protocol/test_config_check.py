"""`postern config check [-c FILE]`: a good file prints "FILE: ok"; each
problem in the file or in what it points to (certificates, data_dir, the
password file, the listening ports) is one "FILE:LINE: ..." line; exit 0
when valid, 1 otherwise, 2 on a usage error."""
import os
import shutil
import socket
import subprocess
import tempfile

import harness
from harness import BIN, Server


def check(path):
    proc = subprocess.run([BIN, "config", "check", "-c", path], capture_output=True, text=True, timeout=60)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def write(directory, lines):
    path = os.path.join(directory, "postern.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_config_check_good_file_prints_ok():
    server = Server(start=False)
    code, out, err = check(server.config)
    assert code == 0, err
    assert out == f"{server.config}: ok\n", (out, err)


def test_config_check_reports_each_problem_with_its_line():
    d = tempfile.mkdtemp(prefix="postern-check-")
    cert, key = harness.shared_cert()
    data = os.path.join(d, "data")
    os.mkdir(data)
    os.chmod(data, 0o500)
    passwd = os.path.join(d, "passwd")
    with open(passwd, "w") as f:
        f.write(f"alice:{harness.sha512_crypt('wonderland')}\nthis line has no colon\nbob:{{PLAIN}}x\n")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    free = harness.free_port()
    other_dir = os.path.join(d, "other")
    _, other_key = harness.make_cert(other_dir, "other.example")
    conf = write(d, [
        "# a config with a problem on several lines",     # 1
        f"data_dir = {data}",                              # 2
        f"passwd_file = {passwd}",                         # 3
        "user = nobody",                                   # 4
        f"tls_cert = {d}/missing/cert.pem",                # 5
        f"tls_key = {key}",                                # 6
        "",                                                # 7
        "[listener imap]",                                 # 8
        f"address = 127.0.0.1:{free}",                     # 9
        "",                                                # 10
        "[listener busy]",                                 # 11
        f"address = 127.0.0.1:{busy}",                     # 12
        "",                                                # 13
        "[certificate other]",                             # 14
        f"cert = {cert}",                                  # 15
        f"key = {other_key}",                              # 16
    ])
    try:
        code, out, err = check(conf)
        assert code == 1, err
        assert out == "", out
        lines = err.splitlines()

        def line_for(prefix, *words):
            for line in lines:
                if line.startswith(prefix) and all(w in line for w in words):
                    return line
            raise AssertionError(f"no line {prefix!r} with {words}:\n{err}")

        line_for(f"{conf}:5: ", "tls_cert", f"{d}/missing/cert.pem", "No such file")
        line_for(f"{conf}:2: ", "data_dir", data)
        line_for(f"{conf}:3: ", "passwd_file", f"{passwd}:2:")
        line_for(f"{conf}:12: ", "listener busy", f"127.0.0.1:{busy}", "already in use",
                 f"pid {os.getpid()} (")
        line_for(f"{conf}:16: ", "[certificate other] key", other_key, "does not match")
        if os.geteuid() == 0:
            # The server rereads these after dropping to `user`.
            line_for(f"{conf}:3: ", "passwd_file", "not readable by user nobody")
            line_for(f"{conf}:6: ", "tls_key", key, "not readable by user nobody")
        assert not any(f"127.0.0.1:{free}" in l for l in lines), err
        assert lines[-1].startswith(f"{conf}: ") and lines[-1].endswith(" problems"), err
    finally:
        holder.close()
        os.chmod(data, 0o700)
        shutil.rmtree(d, ignore_errors=True)


def test_config_check_missing_data_dir_parent_and_user():
    d = tempfile.mkdtemp(prefix="postern-check-")
    cert, key = harness.shared_cert()
    passwd = os.path.join(d, "passwd")
    with open(passwd, "w") as f:
        f.write("alice:{PLAIN}x\n")
    conf = write(d, [
        f"data_dir = {d}/no/such/dir",
        f"passwd_file = {passwd}",
        f"tls_cert = {cert}",
        f"tls_key = {key}",
        "user = no-such-account-xyz",
        "[listener imap]",
        f"address = 127.0.0.1:{harness.free_port()}",
        "[listener lmtp]",
        "protocol = lmtp",
        f"address = unix:{d}/missing/lmtp.sock",
    ])
    code, out, err = check(conf)
    assert code == 1, err
    assert f"{conf}:1: data_dir {d}/no/such/dir does not exist, nor its parent {d}/no/such" in err, err
    assert f"{conf}:10: listener lmtp: directory {d}/missing does not exist" in err, err
    if os.geteuid() == 0:
        assert f"{conf}:5: user 'no-such-account-xyz' does not exist" in err, err
    else:
        assert "no-such-account-xyz" not in err, err   # only root drops privileges
    shutil.rmtree(d, ignore_errors=True)


def test_config_check_syntax_errors_stop_before_the_files():
    d = tempfile.mkdtemp(prefix="postern-check-")
    conf = write(d, ["workers = many", "tls_certs = /x", "[listener a]", "tls = sometimes"])
    code, out, err = check(conf)
    assert code == 1 and out == "", err
    for prefix in (f"{conf}:1:", f"{conf}:2:", f"{conf}:4:"):
        assert prefix in err, err
    assert "did you mean 'tls_cert'" in err, err
    assert err.splitlines()[-1] == f"{conf}: not valid", err
    # The defaults that stand in for the bad lines are not checked.
    assert "/etc/postern/tls/cert.pem" not in err, err
    shutil.rmtree(d, ignore_errors=True)


def test_config_check_beside_the_running_server():
    server = Server(listeners=(("imaps", "implicit"),))
    code, out, err = check(server.config)
    assert code == 0, err
    assert out == f"{server.config}: ok\n", out
    assert f"127.0.0.1:{server.ports['imaps']} is in use by pid {server.proc.pid} (postern)" in err, err


def test_config_check_usage():
    for args in ([], ["verify"], ["check", "-x"], ["check", "-c"]):
        proc = subprocess.run([BIN, "config", *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "usage: postern config check" in proc.stderr, proc.stderr
    proc = subprocess.run([BIN, "config", "check", "-c", "/nonexistent/postern.conf"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "/nonexistent/postern.conf: No such file or directory" in proc.stderr, proc.stderr
