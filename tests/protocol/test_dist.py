"""dist/: the Grafana dashboard is valid JSON with the panels operators
look at, every metric its queries and the alert rules use exists in a
real scrape of a running server, the rules pass `promtool check rules`,
and the systemd unit says what the docs promise."""
import json
import os
import re
import shutil
import subprocess
import urllib.request

from harness import ROOT, Server, Skip, free_port

DIST = os.path.join(ROOT, "dist")
NAME = re.compile(r"postern_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard():
    with open(os.path.join(DIST, "grafana-dashboard.json")) as f:
        return json.load(f)


def dashboard_exprs():
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if isinstance(var.get("query"), dict):
            exprs.append(var["query"]["query"])
    return exprs


def alert_exprs():
    """The expr: lines of the rules file (one line each, by design), and,
    when PyYAML is there, the same read as YAML."""
    with open(os.path.join(DIST, "prometheus-alerts.yml")) as f:
        text = f.read()
    exprs = [m.group(1).strip() for m in re.finditer(r"^\s+expr:\s*(.+)$", text, re.M)]
    try:
        import yaml
    except ImportError:
        return exprs
    rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    assert [str(r["expr"]).strip() for r in rules] == exprs
    return exprs


def scrape_types():
    """{name: type} from a scrape of a server that has done some work, and
    the set of sample names it printed."""
    port = free_port()
    server = Server(lmtp=True, extra=f"[metrics]\naddress = 127.0.0.1:{port}")
    c = server.connect("imaps")
    c.read_greeting()
    c.login()
    c.expect_ok("SELECT INBOX")
    c.expect_ok("LOGOUT")
    lmtp = server.lmtp()
    lmtp.sendmail("a@example.org", ["alice@example.org"], b"Subject: x\r\n\r\nx\r\n")
    lmtp.quit()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    samples = set(re.findall(r"^(postern_[a-z_]+)[{ ]", text, re.M))
    return types, samples


def metric_family(name, types):
    """The family a name in a query belongs to: itself when declared; the
    histogram it is a _bucket, _sum or _count series of; else None. A bare
    histogram name (no series of that name exists) is None too."""
    if name in types:
        return None if types[name] in ("histogram", "summary") else name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return None


def test_metric_family_rules():
    types = {"a_seconds": "histogram", "b_count": "counter", "c_total": "counter"}
    assert metric_family("a_seconds_bucket", types) == "a_seconds"
    assert metric_family("a_seconds_count", types) == "a_seconds"
    assert metric_family("a_seconds", types) is None          # no such series
    assert metric_family("b_count", types) == "b_count"       # a counter named _count
    assert metric_family("c_total_sum", types) is None        # not a histogram
    assert metric_family("c_total", types) == "c_total"
    assert metric_family("d_total", types) is None


def test_dashboard_is_valid_json_with_the_panels():
    d = dashboard()
    titles = {p["title"] for p in d["panels"]}
    for wanted in ("Connection success rate per listener", "Command latency percentiles",
                   "TLS versions in use", "Days to certificate expiry", "Failed logins"):
        assert wanted in titles, titles
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]


def test_every_metric_used_exists_in_a_real_scrape():
    types, samples = scrape_types()
    used = {}
    for expr in dashboard_exprs() + alert_exprs():
        for name in NAME.findall(expr):
            used.setdefault(name, expr)
    assert len(used) >= 8, used
    missing = {n: e for n, e in used.items() if metric_family(n, types) is None}
    assert not missing, missing
    # And each one printed samples in that scrape.
    for name in used:
        assert name in samples, name


def test_promtool_check_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        raise Skip("promtool not installed (Debian package prometheus)")
    out = subprocess.run([promtool, "check", "rules", os.path.join(DIST, "prometheus-alerts.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 3 rules found" in out.stdout, out.stdout


def test_alerts_cover_certificate_and_success_rate():
    exprs = alert_exprs()
    assert any("postern_tls_certificate_expiry_timestamp_seconds" in e and "14 * 86400" in e for e in exprs)
    assert any("postern_connections_closed_total" in e and "< 0.99" in e for e in exprs)


def test_systemd_unit():
    with open(os.path.join(DIST, "postern.service")) as f:
        text = f.read()
    keys = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    assert keys["Type"] == ["notify"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["ReadWritePaths"] == ["/var/lib/postern"]
    assert set(keys["CapabilityBoundingSet"][0].split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_READ_SEARCH"}
    for k, v in (("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                 ("RuntimeDirectory", "postern"), ("SystemCallFilter", "@system-service")):
        assert keys[k] == [v], k
    assert "AF_UNIX" in keys["RestrictAddressFamilies"][0]
    assert int(keys["LimitNOFILE"][0]) >= 65536
    analyze = shutil.which("systemd-analyze")
    if analyze:
        out = subprocess.run([analyze, "verify", os.path.join(DIST, "postern.service")],
                             capture_output=True, text=True)
        # The binary and man pages are not installed here; the keys and
        # their values must all parse.
        problems = [l for l in (out.stdout + out.stderr).splitlines()
                    if re.search(r"Unknown|Invalid|Failed to parse|unsupported", l, re.I)]
        assert not problems, problems


def config_keys():
    with open(os.path.join(ROOT, "src", "core", "config.c")) as f:
        text = f.read()
    keys = set(re.findall(r'^\s+[GLC]\("([a-z_]+)"', text, re.M))
    keys |= set(re.findall(r'^\s+\{ "([a-z_]+)", SEC_METRICS', text, re.M))
    assert len(keys) > 30, keys
    return keys


def test_every_config_key_is_in_the_man_page_and_the_docs():
    with open(os.path.join(ROOT, "man", "postern.conf.5")) as f:
        man = f.read()
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        docs = f.read()
    missing_man = [k for k in config_keys() if not re.search(rf"^\.BR {k} ", man, re.M)]
    missing_docs = [k for k in config_keys() if f"`{k}`" not in docs]
    assert not missing_man and not missing_docs, (missing_man, missing_docs)


def test_make_install_with_prefix_and_destdir():
    import tempfile
    dest = tempfile.mkdtemp(prefix="postern-install-")
    binary = os.path.relpath(os.environ.get("POSTERN_BIN", os.path.join(ROOT, "build", "asan", "postern")), ROOT)
    out = subprocess.run(["make", "-s", "install", f"INSTALL_BIN={binary}", "PREFIX=/usr", f"DESTDIR={dest}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for path in ("usr/sbin/postern", "usr/share/man/man8/postern.8", "usr/share/man/man5/postern.conf.5",
                 "usr/lib/systemd/system/postern.service", "usr/share/doc/postern/operations.md",
                 "usr/share/doc/postern/configuration.md", "usr/share/doc/postern/grafana-dashboard.json",
                 "usr/share/doc/postern/prometheus-alerts.yml"):
        assert os.path.isfile(os.path.join(dest, path)), path
    assert os.access(os.path.join(dest, "usr/sbin/postern"), os.X_OK)
    with open(os.path.join(dest, "usr/lib/systemd/system/postern.service")) as f:
        assert "ExecStart=/usr/sbin/postern serve -c /etc/postern/postern.conf" in f.read()
    if shutil.which("man"):
        page = subprocess.run(["man", "-l", os.path.join(dest, "usr/share/man/man5/postern.conf.5")],
                              capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"))
        assert "max_connections_per_ip" in page.stdout
    shutil.rmtree(dest)
