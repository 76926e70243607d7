#!/usr/bin/env python3
"""Writes bench/RESULTS.md from the RESULT lines bench/compare.sh collected.

Input (environment, set by compare.sh): RES, a TSV of
label, server, run, status (ok/failed/skipped), RESULT line or reason;
COMMANDS, the exact imapload command of each measurement; machine and
version facts. Every figure is the median over runs, with [min, max] when
there was more than one run. bench/findings.md, hand-written, is appended
as the analysis of what stands in the way of each missed target."""
import collections
import datetime
import os
import statistics

env = os.environ
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

runs = collections.defaultdict(list)       # (label, server) -> [dict]
problems = {}                              # (label, server) -> text
for line in open(env["RES"], encoding="utf-8", errors="replace"):
    parts = line.rstrip("\n").split("\t", 4)
    if len(parts) < 5:
        continue
    label, server, run, status, rest = parts
    if status != "ok":
        problems[(label, server)] = f"{status}: {rest}"
        continue
    fields = rest.split()
    d = {"kind": fields[1]}
    for f in fields[2:]:
        if "=" in f:
            k, v = f.split("=", 1)
            d[k] = v
    runs[(label, server)].append((int(run), d))

commands = [l.rstrip("\n").split("\t", 2) for l in open(env["COMMANDS"], encoding="utf-8")]


def values(label, server, kind, key, **match):
    """One value per run: from the RESULT line of `kind` whose fields match."""
    per_run = {}
    for run, d in runs.get((label, server), []):
        if d["kind"] != kind or any(d.get(k) != v for k, v in match.items()):
            continue
        if key in d:
            per_run[run] = float(d[key])
    return [per_run[r] for r in sorted(per_run)]


def fmt(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def cell(vals, label, server):
    if not vals:
        why = problems.get((label, server))
        return why.replace("failed: imapload: FAILED: ", "failed: ").replace("|", "/") if why else "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(vals))}–{fmt(max(vals))}]"


def size_of(label):
    """'idle-10000w4' -> ('10,000 (postern: workers = 4)', 'idle-10000'): the row's name and the
    label of the Dovecot run it is compared with."""
    kind, size = label.split("-", 1)
    if size.endswith("w4"):
        return f"{int(size[:-2]):,} (postern: workers = 4)", f"{kind}-{size[:-2]}"
    return f"{int(size):,}", label


def med(vals):
    return statistics.median(vals) if vals else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


out = []
w = out.append
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
w("# postern and Dovecot side by side\n")
w("Written by `make bench` (bench/compare.sh, bench/results.py); do not edit by hand: "
  "the analysis at the end comes from bench/findings.md.\n")
w(f"- Date: {now}; the workloads took {int(env['ELAPSED']) // 60} min {int(env['ELAPSED']) % 60} s.")
w(f"- Machine: {env['M_CORES']} cores ({env['M_CPU']}), {env['M_MEM']} memory, Linux {env['V_KERNEL']}; "
  f"fs.inotify.max_user_instances = {env['M_INOTIFY']}, kernel.pid_max = {env['M_PIDMAX']}, "
  f"open files per process (hard limit) = {env['M_FDLIMIT']}. "
  "Servers and load generator share the cores: every figure is for all three on one 2-core machine. "
  f"The machine is shared with other work (load average {env.get('LOAD_START', '?')} at the start, "
  f"{env.get('LOAD_END', '?')} at the end); runs alternate between the servers so both see the same noise, "
  "and [min–max] shows how much it moved the figures.")
w(f"- Versions: postern `{env['V_POSTERN']}` (release build, `build/postern`), Dovecot {env['V_DOVECOT']}, "
  f"{env['V_OPENSSL']}.")
w(f"- Figures: median of {env['RUNS']} runs, [min–max] when there were several. Ratio = postern ÷ Dovecot. "
  "Traffic on 127.0.0.1 only. TLS everywhere except LMTP; certificate ECDSA P-256.")
w("- Setup: both servers private, same passwd file ({SHA512-CRYPT}), same users (bench1..bench100, push, "
  "bigbox), same generated messages (imapload's genmail, seed 1). postern: its defaults (2 workers). "
  "Dovecot: its defaults except paths, loopback ports, Maildir, raised process and client limits, "
  "imap-login in high-performance mode (see compare.sh).")
w("")

# ---- mixed
w("## mixed: imaptest's default round (ops/s, higher is better; latency in ms, lower is better)\n")
w("Each client connects (TLS), then LOGIN, SELECT INBOX, FETCH 1:* (FLAGS), FETCH n (UID BODY.PEEK[]) "
  "(again with 30% probability), STORE n ±FLAGS (50%), STORE n +FLAGS.SILENT (\\Deleted) (\"DELETE\"), "
  "EXPUNGE, APPEND (again 5%), LOGOUT, and starts over; these are imaptest's default state probabilities "
  "for those commands (imaptest also does LIST 50%, STATUS 50% and COPY 33%, left out here). "
  "One user per client, mailboxes filled to 20 messages first. "
  f"{env['MIXED_SECONDS']} s per run. CONNECT is TCP + TLS + greeting.\n")
labels = sorted({l for (l, s) in runs} | {l for (l, s) in problems}, key=lambda x: (x.split("-")[0], len(x), x))
for label in [l for l in labels if l.startswith("mixed-")]:
    n = label.split("-")[1]
    w(f"### {n} clients\n")
    w("| command | postern ops/s | Dovecot ops/s | ratio | postern p50 / p99 / p99.9 ms | Dovecot p50 / p99 / p99.9 ms |")
    w("|---|---|---|---|---|---|")
    for cmd in ["ALL", "CONNECT", "LOGIN", "SELECT", "FETCH", "FETCH2", "STORE", "DELETE", "EXPUNGE", "APPEND", "LOGOUT"]:
        row = [f"**{cmd}**" if cmd == "ALL" else cmd]
        pv = values(label, "postern", "mixed", "ops", cmd=cmd)
        dv = values(label, "dovecot", "mixed", "ops", cmd=cmd)
        row += [cell(pv, label, "postern"), cell(dv, label, "dovecot"), ratio(med(pv), med(dv))]
        for server in ("postern", "dovecot"):
            lat = [med(values(label, server, "mixed", k, cmd=cmd)) for k in ("p50", "p99", "p999")]
            row.append(" / ".join(fmt(x) for x in lat) if None not in lat else "–")
        w("| " + " | ".join(row) + " |")
    w("")

# ---- idle
w("## idle: server memory per TLS session in IDLE (KiB, lower is better)\n")
w("N sessions over TLS, spread over 100 users, each LOGIN, SELECT INBOX, IDLE. The server's memory is "
  "summed over its master and all its descendants from /proc before the sessions open and 3 s after the "
  "last one is in IDLE; the difference is divided by N. VmRSS counts shared pages once per process "
  "(what the issue asks for); Pss splits them, which is fairer to Dovecot's process per session.\n")
w("| sessions | postern VmRSS/session | Dovecot VmRSS/session | ratio | postern Pss/session | Dovecot Pss/session | ratio | sessions set up per s, postern / Dovecot |")
w("|---|---|---|---|---|---|---|---|")
for label in [l for l in labels if l.startswith("idle-")]:
    pr, dr = values(label, "postern", "idle", "rss_kib_per_session"), values(label, "dovecot", "idle", "rss_kib_per_session")
    pp, dp = values(label, "postern", "idle", "pss_kib_per_session"), values(label, "dovecot", "idle", "pss_kib_per_session")
    ps, ds = values(label, "postern", "idle", "setup_per_s"), values(label, "dovecot", "idle", "setup_per_s")
    n, dlabel = size_of(label)
    dr, dp, ds = (values(dlabel, "dovecot", "idle", k) for k in ("rss_kib_per_session", "pss_kib_per_session", "setup_per_s"))
    w(f"| {n} | {cell(pr, label, 'postern')} | {cell(dr, dlabel, 'dovecot')} | {ratio(med(pr), med(dr))} "
      f"| {cell(pp, label, 'postern')} | {cell(dp, dlabel, 'dovecot')} | {ratio(med(pp), med(dp))} "
      f"| {fmt(med(ps)) if ps else '–'} / {fmt(med(ds)) if ds else '–'} |")
w("")

# ---- push
w("## push: APPEND to EXISTS in every IDLE session (ms, lower is better)\n")
w(f"N sessions of one user in IDLE on INBOX; another session of the same user APPENDs "
  f"{env.get('PUSH_APPENDS_1000', '1000')} messages at 1,000 sessions and {env['PUSH_APPENDS']} at larger sizes "
  f"(Dovecot: {env['DOVECOT_PUSH_APPENDS']}), one at a time, each after every "
  "session saw the previous one. Latency: from the moment the APPEND is sent to the moment each session "
  "reads its `* n EXISTS`; one sample per session per APPEND.\n")
w("| idle sessions | postern median | postern p99 | Dovecot median | Dovecot p99 | ratio of medians |")
w("|---|---|---|---|---|---|")
for label in [l for l in labels if l.startswith("push-")]:
    p50, p99 = values(label, "postern", "push", "p50"), values(label, "postern", "push", "p99")
    n, dlabel = size_of(label)
    d50, d99 = values(dlabel, "dovecot", "push", "p50"), values(dlabel, "dovecot", "push", "p99")
    w(f"| {n} | {cell(p50, label, 'postern')} | {cell(p99, label, 'postern')} "
      f"| {cell(d50, dlabel, 'dovecot')} | {cell(d99, dlabel, 'dovecot')} | {ratio(med(p50), med(d50))} |")
w("")

# ---- bigbox
w(f"## bigbox: one mailbox of {int(env['BIGBOX']):,} messages (ms, lower is better)\n")
w("Generated messages (text/plain in us-ascii, utf-8 and iso-8859-1, 7bit, 8bit and quoted-printable; "
  "multipart/alternative; multipart/mixed with base64 attachments of 2–60 KB; forwarded message/rfc822; "
  "RFC 2047 subjects), appended with MULTIAPPEND of 200 and LITERAL+. Each run is a new connection: "
  "STATUS INBOX (MESSAGES UIDNEXT UNSEEN), SELECT INBOX, FETCH 1:* (UID FLAGS), a CONDSTORE resync "
  "(STATUS INBOX (HIGHESTMODSEQ), then \\Answered toggled on 1% of the messages in 20 runs spread over the "
  "box, then the timed UID FETCH 1:* (FLAGS) (CHANGEDSINCE that modseq), which must bring back exactly "
  "those messages), "
  "UID SEARCH FROM \"walrus\" (a header field; 1 in 40 messages), UID SEARCH TEXT \"quarterly lighthouse "
  "inventory\" (1 in 50). imapload checks the EXISTS count, the number of FETCH responses and both "
  "search results against what the generator wrote.\n")
pv = values("bigbox-populate", "postern", "bigbox_populate", "per_s")
dv = values("bigbox-populate", "dovecot", "bigbox_populate", "per_s")
w(f"Populate (APPEND throughput, one connection): postern {cell(pv, 'bigbox-populate', 'postern')} messages/s, "
  f"Dovecot {cell(dv, 'bigbox-populate', 'dovecot')} messages/s, ratio {ratio(med(pv), med(dv))}.\n")
iv = values("bigbox-index", "postern", "bigbox_index", "per_s")
isec = values("bigbox-index", "postern", "bigbox_index", "seconds")
ibytes = values("bigbox-index", "postern", "bigbox_index", "search_db_bytes")
if iv:
    w(f"Full-text index: `postern index` after the populate (the background indexer off meanwhile) built "
      f"search.db for the {int(env['BIGBOX']):,} messages in {fmt(med(isec))} s, {fmt(med(iv))} messages/s, "
      f"{med(ibytes) / 1048576:,.0f} MiB. Dovecot's default configuration has no full-text index: its "
      f"SEARCH TEXT reads every message.\n")
elif ("bigbox-index", "postern") in problems:
    w(f"Full-text index: {problems[('bigbox-index', 'postern')]}\n")
w("| command | postern ms | Dovecot ms | ratio |")
w("|---|---|---|---|")
for cmd in ["STATUS", "SELECT", "FETCH_1:*", "CONDSTORE_RESYNC", "SEARCH_FROM", "SEARCH_TEXT"]:
    p, d = values("bigbox", "postern", "bigbox", "ms", cmd=cmd), values("bigbox", "dovecot", "bigbox", "ms", cmd=cmd)
    w(f"| {cmd} | {cell(p, 'bigbox', 'postern')} | {cell(d, 'bigbox', 'dovecot')} | {ratio(med(p), med(d))} |")
w("")

# ---- bigbox, 1,000,000 messages, postern only
large = int(env.get("BIGBOX_LARGE") or 0)
if large > 0:
    w(f"## bigbox: one mailbox of {large:,} messages, postern only (ms, lower is better)\n")
    w(f"The same generated messages and commands as above (the resync changes {large // 100:,} messages), without the "
      "two searches (`--no-search`): "
      "the issue's target is SELECT and FETCH 1:* (UID FLAGS) of 1,000,000 messages in under a second. "
      "Dovecot is left out: populating 1,000,000 messages through its Maildir takes longer than the "
      "whole run's budget.\n")
    lp = values("bigbox-large-populate", "postern", "bigbox_populate", "per_s")
    w(f"Populate (APPEND throughput, one connection): postern {cell(lp, 'bigbox-large-populate', 'postern')} "
      "messages/s.\n")
    w("| command | postern ms |")
    w("|---|---|")
    for cmd in ["STATUS", "SELECT", "FETCH_1:*", "CONDSTORE_RESYNC"]:
        w(f"| {cmd} | {cell(values('bigbox-large', 'postern', 'bigbox', 'ms', cmd=cmd), 'bigbox-large', 'postern')} |")
    w("")

# ---- deliver
w("## deliver: LMTP deliveries per second (higher is better)\n")
w(f"Each sender keeps one LMTP connection: LHLO once, then MAIL FROM, RCPT TO (one of 50 users), DATA "
  f"pipelined, the message (dot-stuffed), and waits for the 250; {env['DELIVER_SECONDS']} s per run.\n")
w("| senders | postern /s | Dovecot /s | ratio | postern p50 / p99 ms | Dovecot p50 / p99 ms |")
w("|---|---|---|---|---|---|")
for label in [l for l in labels if l.startswith("deliver-")]:
    p, d = values(label, "postern", "deliver", "per_s"), values(label, "dovecot", "deliver", "per_s")
    pl = [med(values(label, "postern", "deliver", k)) for k in ("p50", "p99")]
    dl = [med(values(label, "dovecot", "deliver", k)) for k in ("p50", "p99")]
    w(f"| {label.split('-')[1]} | {cell(p, label, 'postern')} | {cell(d, label, 'dovecot')} | {ratio(med(p), med(d))} "
      f"| {' / '.join(fmt(x) for x in pl) if None not in pl else '–'} | {' / '.join(fmt(x) for x in dl) if None not in dl else '–'} |")
w("")

# ---- handshake
sign = float(env.get("SIGN_PER_S") or 0)
x25519 = float(env.get("X25519_PER_S") or 0)
w("## handshake: TLS handshakes per second (higher is better)\n")
w("8 connections at a time, each: TCP connect, TLS handshake, read the IMAP greeting, close_notify, close. "
  "Resumed: each connection offers the newest session ticket its slot received. "
  f"`openssl speed -seconds 3 ecdsap256` on this machine: {fmt(sign)} signs/s on one core; "
  f"`openssl speed -seconds 3 ecdhx25519`: {fmt(x25519)} X25519 operations/s. A full TLS 1.3 handshake costs the "
  "server one ECDSA signature and one X25519 key exchange (two operations: key generation and derivation), "
  f"so one core tops out near {fmt(1 / (1 / sign + 2 / x25519)) if sign and x25519 else '–'} full handshakes/s from "
  "public-key work alone. The 'vs openssl speed' column compares with the sign rate on one core, as the "
  "issue asks; the load generator's own X25519 work shares the same two cores.\n")
w("| mode | postern /s | Dovecot /s | ratio | postern vs openssl speed sign/s (1 core) | postern p50 / p99 ms | Dovecot p50 / p99 ms |")
w("|---|---|---|---|---|---|---|")
for mode in ("full", "resumed"):
    label = f"handshake-{mode}"
    p, d = values(label, "postern", "handshake", "per_s"), values(label, "dovecot", "handshake", "per_s")
    pl = [med(values(label, "postern", "handshake", k)) for k in ("p50", "p99")]
    dl = [med(values(label, "dovecot", "handshake", k)) for k in ("p50", "p99")]
    vs = f"{100 * med(p) / sign:.0f}%" if p and sign else "–"
    res = values(label, "postern", "handshake", "resumed")
    note = ""
    if mode == "resumed" and res:
        full = values(label, "postern", "handshake", "full")
        note = f" ({int(sum(res))} resumed, {int(sum(full))} full)"
    w(f"| {mode} | {cell(p, label, 'postern')}{note} | {cell(d, label, 'dovecot')} | {ratio(med(p), med(d))} | {vs} "
      f"| {' / '.join(fmt(x) for x in pl) if None not in pl else '–'} | {' / '.join(fmt(x) for x in dl) if None not in dl else '–'} |")
w("")

# ---- scaling
w("## Scaling (to finish within 30 minutes on 2 cores)\n")
w(f"- mixed: {env['MIXED_SECONDS']} s per run (imaptest runs for minutes); 10 and 100 clients as in the issue.")
w(f"- idle and push at 10,000 sessions: {env['IDLE_BIG_RUNS']} run(s) each, since opening 10,000 TLS sessions "
  "with a SHA512-CRYPT login each takes about a minute per server. 50,000 sessions do not fit this machine: "
  f"the hard limit on open files per process is {env['M_FDLIMIT']} and cannot be raised here (no "
  "CAP_SYS_RESOURCE in this container), so neither one imapload process nor one postern worker (2 workers: "
  f"25,000 each) can hold them, and Dovecot, one process per session, would also hit kernel.pid_max = "
  f"{env['M_PIDMAX']}. A postern session holds one descriptor (its socket; store handles are shared per "
  "user per worker), so 10,000 sessions fit the default 2 workers; rows marked 'workers = 4', if any, are "
  "the same measurement with 4 workers (BENCH_WORKERS4=1).")
w(f"- push on Dovecot: {env['DOVECOT_PUSH_APPENDS']} APPENDs at 1,000 sessions only. Dovecot's imap processes "
  f"each take an inotify instance, and fs.inotify.max_user_instances is {env['M_INOTIFY']}: every session past "
  "those falls back to polling every 30 s (mailbox_idle_check_interval), so a round takes up to 30 s; at "
  "10,000 sessions 10,000 extra processes would be forked as well.")
w(f"- bigbox: {int(env['BIGBOX']):,} messages on both servers; the issue's 1,000,000 on postern only "
  f"({large:,} in this run; populating it through Dovecot's Maildir would take more than the whole budget), "
  "without the searches.")
w("")

# ---- commands
w("## Exact commands\n")
w("Run by bench/compare.sh (ports are picked at run time; `--pid-tree` is the server's master PID):\n")
w("```")
for label, server, cmd in commands:
    w(f"# {label} {server}\n{cmd}")
w("```\n")

findings = os.path.join(ROOT, "bench", "findings.md")
if os.path.exists(findings):
    w(open(findings, encoding="utf-8").read().rstrip() + "\n")

with open(env["OUT"], "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
