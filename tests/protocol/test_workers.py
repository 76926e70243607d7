"""Master and workers: several workers serve, a dead worker is restarted,
SIGTERM drains open sessions with a BYE."""
import os
import signal
import subprocess
import time

from harness import Server


def worker_pids(server):
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def test_worker_killed_is_restarted():
    server = Server(workers=2)
    before = worker_pids(server)
    assert len(before) == 2, before
    os.kill(before[0], signal.SIGKILL)
    server.wait_log("event=worker_exited .*signal=Killed")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = worker_pids(server)
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"worker not restarted: {worker_pids(server)}")
    for _ in range(4):
        c = server.connect("imaps")
        c.read_greeting()
        _, tagged = c.login()
        assert " OK " in tagged


def test_sigterm_drains_sessions_with_bye():
    server = Server(workers=2)
    clients = []
    for _ in range(4):
        c = server.connect("imaps")
        c.read_greeting()
        c.login()
        clients.append(c)
    server.signal(signal.SIGTERM)
    for c in clients:
        line = c.read_line()
        assert line.startswith("* BYE"), line
        assert c.is_closed()
    assert server.proc.wait(timeout=20) == 0
    server.wait_log("event=stopped")
