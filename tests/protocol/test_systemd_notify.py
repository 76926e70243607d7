"""sd_notify without libsystemd: the master sends READY=1 once it listens,
RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when it drains,
with STATUS= lines, to the datagram socket $NOTIFY_SOCKET names (a path,
or an abstract name written with a leading '@')."""
import os
import signal
import socket
import subprocess
import time

from harness import Server


def datagram_socket(address):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(20)
    return sock


def messages(sock):
    """Yields every datagram as a dict of its KEY=value lines."""
    while True:
        data = sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.split("\n") if line)
        yield data, fields


def next_with(stream, key):
    for data, fields in stream:
        if key in fields:
            return fields
    raise AssertionError("stream ended")


def run_lifecycle(notify_env, sock):
    server = Server(start=False)
    server.start(env={"NOTIFY_SOCKET": notify_env})
    stream = messages(sock)
    ready = next_with(stream, "READY")
    assert ready["READY"] == "1"
    assert ready["MAINPID"] == str(server.proc.pid)
    assert ready["STATUS"].startswith("Serving 2 listeners with 1 workers"), ready
    # It listens by the time it says so.
    c = server.connect("imaps")
    assert c.read_greeting().startswith("* OK")
    c.close()

    server.signal(signal.SIGHUP)
    reloading = next_with(stream, "RELOADING")
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert reloading["STATUS"].startswith("Reloading")
    ready = next_with(stream, "READY")
    assert ready["STATUS"].startswith("Reloaded"), ready

    # A reload with a broken file keeps the running settings, and still
    # says READY=1 (the service goes on).
    with open(server.config, "a") as f:
        f.write("no_such_key = 1\n")
    server.signal(signal.SIGHUP)
    next_with(stream, "RELOADING")
    ready = next_with(stream, "READY")
    assert ready["STATUS"].startswith("Reload failed"), ready

    server.signal(signal.SIGTERM)
    stopping = next_with(stream, "STOPPING")
    assert stopping["STOPPING"] == "1"
    assert server.proc.wait(timeout=20) == 0


def test_ready_reloading_stopping_on_a_socket_path():
    path = os.path.join(Server(start=False).dir, "notify.sock")
    sock = datagram_socket(path)
    try:
        run_lifecycle(path, sock)
    finally:
        sock.close()


def test_abstract_socket_name():
    name = f"postern-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = datagram_socket("\0" + name)
    try:
        run_lifecycle("@" + name, sock)
    finally:
        sock.close()


def test_without_notify_socket_nothing_breaks():
    server = Server()       # the harness never passes NOTIFY_SOCKET on
    server.signal(signal.SIGHUP)
    server.wait_log("event=worker_reloaded")
    c = server.connect("imaps")
    assert c.read_greeting().startswith("* OK")


def test_bad_notify_socket_is_not_fatal():
    server = Server(start=False)
    server.start(env={"NOTIFY_SOCKET": "relative/path"})
    c = server.connect("imaps")
    assert c.read_greeting().startswith("* OK")


def test_worker_death_is_reported_in_status():
    path = os.path.join(Server(start=False).dir, "notify.sock")
    sock = datagram_socket(path)
    try:
        server = Server(start=False)
        server.start(env={"NOTIFY_SOCKET": path})
        stream = messages(sock)
        next_with(stream, "READY")
        pid = int(subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                                 text=True).stdout.split()[0])
        os.kill(pid, signal.SIGKILL)
        status = next_with(stream, "STATUS")
        assert status["STATUS"] == f"worker 0 (pid {pid}) killed by signal 9; restarting it", status
    finally:
        sock.close()
