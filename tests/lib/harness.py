"""Helpers for protocol and interop tests: start a real postern on
127.0.0.1 with ports picked here, talk IMAP to it, stop it by PID.

Every server started through Server() is stopped when its test ends, and
its log is checked for sanitizer reports."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("POSTERN_BIN", os.path.join(ROOT, "build", "asan", "postern"))
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "secret words"}

_servers = []
_cert_cache = {}


class Skip(Exception):
    pass


_ports_given = set()


def free_port():
    """A port free now and not handed out before in this run: the kernel may
    give the same ephemeral port to two binds in a row once the first socket
    is closed, and two listeners of one server then clash (seen in CI)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise AssertionError("no fresh port in 100 tries")


def make_cert(directory, name="localhost", days=30, key_type="rsa:2048"):
    """A self-signed certificate for name; returns (cert, key) paths."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", key_type, "-nodes", "-keyout", key,
                    "-out", cert, "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return cert, key


def shared_cert(name="localhost"):
    if name not in _cert_cache:
        d = tempfile.mkdtemp(prefix="postern-certs-")
        _cert_cache[name] = make_cert(d, name)
    return _cert_cache[name]


def expired_cert(directory, name="localhost"):
    """A certificate for name that expired in 2020, signed with faked dates
    by a throwaway CA with fixed start and end dates; no SAN, so its CN is its name."""
    key = os.path.join(directory, "old.key")
    cert = os.path.join(directory, "old.crt")
    csr = os.path.join(directory, "old.csr")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    ca_dir = os.path.join(directory, "ca")
    os.makedirs(os.path.join(ca_dir, "new"))
    open(os.path.join(ca_dir, "index.txt"), "w").close()
    with open(os.path.join(ca_dir, "serial"), "w") as f:
        f.write("01\n")
    conf = os.path.join(directory, "ca.conf")
    with open(conf, "w") as f:
        f.write(f"""[ca]
default_ca = local
[local]
dir = {ca_dir}
database = {ca_dir}/index.txt
new_certs_dir = {ca_dir}/new
serial = {ca_dir}/serial
default_md = sha256
policy = anything
[anything]
commonName = supplied
""")
    subprocess.run(["openssl", "ca", "-batch", "-config", conf, "-selfsign", "-keyfile", key,
                    "-in", csr, "-out", cert, "-startdate", "20200101000000Z",
                    "-enddate", "20200201000000Z"], check=True, capture_output=True)
    return cert, key


def sha512_crypt(password):
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                         capture_output=True, text=True, check=True)
    return "{SHA512-CRYPT}" + out.stdout.strip()


class Server:
    """A postern server. listeners: list of (name, tls) with tls one of
    implicit, starttls, none. extra: more `key = value` config lines.
    lmtp: True adds `[listener lmtp]` with protocol = lmtp on a loopback
    port (self.ports["lmtp"]), "unix" on a unix socket (self.lmtp_socket);
    lmtp_lines: more lines for that section."""

    def __init__(self, listeners=(("imaps", "implicit"), ("imap", "starttls")), extra="",
                 users=PASSWORDS, workers=1, start=True, cert=None, lmtp=False, lmtp_lines=()):
        self.dir = tempfile.mkdtemp(prefix="postern-test-")
        self.cert, self.key = cert or shared_cert()
        self.ports = {}
        self.listeners = listeners
        self.passwd = os.path.join(self.dir, "passwd")
        with open(self.passwd, "w") as f:
            for user, password in users.items():
                f.write(f"{user}:{sha512_crypt(password)}\n")
        self.config = os.path.join(self.dir, "postern.conf")
        lines = [
            f"hostname = test.example",
            f"data_dir = {self.dir}/data",
            f"passwd_file = {self.passwd}",
            f"user = {_current_user()}",
            f"workers = {workers}",
            f"tls_cert = {self.cert}",
            f"tls_key = {self.key}",
            "auth_failure_delay = 100",
            "auth_failure_delay_max = 400",
            "log_level = debug",
            "tls_watch_interval = 1",
        ]
        # Keys given in extra (before any section) replace the defaults above.
        overridden = set()
        for line in extra.splitlines():
            if line.strip().startswith("["):
                break
            if "=" in line:
                overridden.add(line.split("=", 1)[0].strip())
        lines = [l for l in lines if l.split("=", 1)[0].strip() not in overridden] + [extra]
        for name, tls in listeners:
            port = free_port()
            self.ports[name] = port
            lines += ["", f"[listener {name}]", f"address = 127.0.0.1:{port}", f"tls = {tls}"]
        self.lmtp_socket = None
        if lmtp == "unix":
            self.lmtp_socket = os.path.join(self.dir, "lmtp.sock")
            lines += ["", "[listener lmtp]", "protocol = lmtp", f"address = unix:{self.lmtp_socket}"]
        elif lmtp:
            self.ports["lmtp"] = free_port()
            lines += ["", "[listener lmtp]", "protocol = lmtp", f"address = 127.0.0.1:{self.ports['lmtp']}"]
        if lmtp:
            lines += list(lmtp_lines)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        if start:
            self.start()

    def start(self, expect_fail=False, timeout=20, env=None, ready="log"):
        """env: extra environment variables for the server process.
        ready: "log" waits for the master's ready line; "port" (for a
        server that logs to syslog) until the first listener accepts."""
        self.log = open(self.log_path, "ab")
        log_start = self.log.tell()
        # A test runner started by systemd must not have its servers
        # report to the runner's own manager.
        full_env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        full_env.update(env or {})
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir, env=full_env)
        _servers.append(self)
        if expect_fail:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError("server started but was expected to fail")
            return self.proc.returncode
        # The master logs "ready" after every listener is bound; probing
        # the ports instead would count as connections in the metrics.
        deadline = time.monotonic() + timeout
        if ready == "port":
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.read_log()}")
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", next(iter(self.ports.values())))) == 0:
                        return 0
                if time.monotonic() > deadline:
                    raise AssertionError(f"server never listened:\n{self.read_log()}")
                time.sleep(0.02)
        while "event=ready" not in self.read_log()[log_start:]:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.read_log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server never became ready:\n{self.read_log()}")
            time.sleep(0.02)
        return 0

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.read_log())) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"log never showed {pattern!r}:\n{self.read_log()[-3000:]}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=False):
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server ignored SIGTERM")
        self._close_log()
        if check and self.proc.returncode != 0:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.read_log()[-5000:]}")

    def _close_log(self):
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def sanitizer_report(self):
        text = self.read_log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                return text
        return None

    def lmtp(self, timeout=30):
        """An smtplib.LMTP client on the lmtp listener (after LHLO)."""
        import smtplib
        if self.lmtp_socket:
            client = smtplib.LMTP(self.lmtp_socket, timeout=timeout)
        else:
            client = smtplib.LMTP("127.0.0.1", self.ports["lmtp"], timeout=timeout)
        client.ehlo_or_helo_if_needed()
        return client

    def connect(self, name="imap", **kwargs):
        tls = dict(self.listeners)[name]
        return Client(self.ports[name], tls=(tls == "implicit"), **kwargs)


def _current_user():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def check_all_servers_clean():
    for server in _servers:
        report = server.sanitizer_report()
        if report:
            raise AssertionError("sanitizer report in server log:\n" + report[-6000:])


def stop_all_servers(check=False):
    errors = []
    while _servers:
        server = _servers.pop()
        try:
            server.stop(check=check)
            report = server.sanitizer_report()
            if check and report:
                errors.append("sanitizer report in server log:\n" + report[-6000:])
        except Exception as e:
            errors.append(str(e))
        if not errors:
            shutil.rmtree(server.dir, ignore_errors=True)
    if check and errors:
        raise AssertionError("\n".join(errors))


def dump_server_logs():
    for server in _servers:
        print(f"--- server log {server.log_path} (last 3000 bytes) ---")
        print(server.read_log()[-3000:])


def client_tls_context(minimum=None, maximum=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


class Client:
    """A line-oriented IMAP client for tests: raw bytes in, lines out."""

    def __init__(self, port, tls=False, timeout=10, context=None, server_hostname=None,
                 source=None, rcvbuf=None):
        """source: local address to connect from ("127.0.0.2"); rcvbuf: a
        small receive buffer for a client that plays a slow reader."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        if tls:
            self.sock = (context or client_tls_context()).wrap_socket(
                self.sock, server_hostname=server_hostname)
        self.buf = b""
        self.greeting = None
        self.tag_counter = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_greeting(self):
        self.greeting = self.read_line()
        return self.greeting

    def next_tag(self):
        self.tag_counter += 1
        return f"t{self.tag_counter}"

    def command(self, text, tag=None):
        """Sends `tag text`, returns (untagged lines, tagged line)."""
        tag = tag or self.next_tag()
        self.send(f"{tag} {text}\r\n")
        return self.read_until_tagged(tag)

    def read_until_tagged(self, tag):
        untagged = []
        while True:
            line = self.read_line()
            if line.startswith(tag + " "):
                return untagged, line
            untagged.append(line)

    def expect_ok(self, text):
        untagged, tagged = self.command(text)
        status = tagged.split(" ", 2)[1]
        assert status == "OK", f"{text!r} -> {tagged!r}"
        return untagged, tagged

    def capabilities(self):
        untagged, tagged = self.command("CAPABILITY")
        assert tagged.split()[1] == "OK", tagged
        caps = [l for l in untagged if l.startswith("* CAPABILITY ")]
        assert len(caps) == 1, untagged
        return caps[0].split()[2:]

    def starttls(self, context=None):
        _, tagged = self.command("STARTTLS")
        assert tagged.split()[1] == "OK", tagged
        assert self.buf == b"", "data after STARTTLS OK"
        self.sock = (context or client_tls_context()).wrap_socket(self.sock)

    def login(self, user="alice", password=None):
        password = PASSWORDS[user] if password is None else password
        return self.command(f'LOGIN {user} "{password}"')

    def is_closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
            return data == b""
        except (ConnectionResetError, ssl.SSLError):
            return True


def session(server, user="alice"):
    """A logged-in client on the server's "plain" listener."""
    c = server.connect("plain")
    c.read_greeting()
    _, tagged = c.login(user)
    assert " OK " in tagged, tagged
    return c
