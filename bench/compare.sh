#!/bin/bash
# bench/compare.sh: postern and Dovecot side by side on this machine, every
# imapload workload against both, several runs each; writes bench/RESULTS.md.
# Run by `make bench` (which builds build/postern and build/imapload first).
#
# Both servers are private: their own configuration, data, logs and ports
# on 127.0.0.1 under one temporary directory, started here, stopped by PID
# at the end, the directory removed (BENCH_KEEP=1 keeps it). They get the
# same users (one passwd file, {SHA512-CRYPT}), the same ECDSA P-256
# certificate and the same messages (imapload's generator, fixed seed).
#
# Sizes are scaled so the whole run stays under 30 minutes on 2 cores;
# RESULTS.md lists the scaling. Override with the variables below, e.g.
# `BENCH_QUICK=1 make bench` for a two-minute smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAPLOAD=$ROOT/build/imapload
POSTERN=$ROOT/build/postern
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}

RUNS=${BENCH_RUNS:-3}                   # runs per measurement (median, min, max)
MIXED_CLIENTS=${BENCH_MIXED_CLIENTS:-"10 100"}
MIXED_SECONDS=${BENCH_MIXED_SECONDS:-10}
IDLE_SIZES=${BENCH_IDLE_SIZES:-"1000 10000"}
IDLE_BIG_RUNS=${BENCH_IDLE_BIG_RUNS:-1} # runs for sizes >= 10000
PUSH_SIZES=${BENCH_PUSH_SIZES:-"1000 10000"}
PUSH_APPENDS=${BENCH_PUSH_APPENDS:-10}
# The issue asks for push latency over 1,000 messages with 1,000 IDLE
# sessions: that size gets 1,000 APPENDs (postern only; Dovecot polls).
PUSH_APPENDS_1000=${BENCH_PUSH_APPENDS_1000:-1000}
DOVECOT_PUSH_SIZES=${BENCH_DOVECOT_PUSH_SIZES:-"1000"}
DOVECOT_PUSH_APPENDS=${BENCH_DOVECOT_PUSH_APPENDS:-3}
BIGBOX=${BENCH_BIGBOX:-100000}
# The issue's 1,000,000-message box, postern only (STATUS, SELECT, FETCH):
# about 20 GB of generated mail; 0 leaves it out.
BIGBOX_LARGE=${BENCH_BIGBOX_LARGE:-1000000}
DELIVER_SENDERS=${BENCH_DELIVER_SENDERS:-"1 10 50"}
DELIVER_SECONDS=${BENCH_DELIVER_SECONDS:-10}
HANDSHAKE_SECONDS=${BENCH_HANDSHAKE_SECONDS:-5}
USERS=100
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	RUNS=1 MIXED_CLIENTS="10" MIXED_SECONDS=3 IDLE_SIZES="200" PUSH_SIZES="100" PUSH_APPENDS=3
	DOVECOT_PUSH_SIZES="50" DOVECOT_PUSH_APPENDS=2 BIGBOX=2000 BIGBOX_LARGE=5000 DELIVER_SENDERS="1 10"
	DELIVER_SECONDS=3 HANDSHAKE_SECONDS=2
fi

say() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x "$IMAPLOAD" ] && [ -x "$POSTERN" ] || die "build first: make build/postern build/imapload"
if [ "$(id -u)" != 0 ]; then
	die "needs root: it installs Dovecot if missing, raises the open-file limit and runs Dovecot's mail processes as nobody"
fi

# --- what we need ----------------------------------------------------------
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ] || [ ! -x /usr/lib/dovecot/lmtp ] ||
	! command -v python3 >/dev/null || ! command -v openssl >/dev/null; then
	say "installing dovecot-imapd dovecot-lmtpd python3 openssl"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq dovecot-imapd dovecot-lmtpd python3 openssl >/dev/null
fi

# Tens of thousands of sockets in the servers and in imapload: as many as
# the hard limit allows (a container may forbid raising it).
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
CLIENT_LIMIT=$((FD_LIMIT < 40000 ? FD_LIMIT - 1000 : 40000))

T=$(mktemp -d /tmp/postern-bench.XXXXXX)
chmod 755 "$T" # Dovecot's auth process (user dovecot) reads the passwd file
POSTERN_PID="" DOVECOT_PID=""
stop_pid() { # PID NAME: SIGTERM, wait up to 30 s, then SIGKILL
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	say "$2 ignored SIGTERM for 30 s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	stop_pid "$POSTERN_PID" postern
	stop_pid "$DOVECOT_PID" dovecot
	wait 2>/dev/null || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT PID NAME
	local i
	for i in $(seq 300); do
		kill -0 "$2" 2>/dev/null || return 1
		if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),timeout=1)" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# --- shared data -----------------------------------------------------------
say "temporary directory $T"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/key.pem" \
	-out "$T/cert.pem" -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
PASS=bench
: >"$T/passwd"
for u in $(seq -f 'bench%g' 1 $USERS) push bigbox biggest; do
	printf '%s:{SHA512-CRYPT}%s\n' "$u" "$(openssl passwd -6 "$PASS")" >>"$T/passwd"
done
chmod 644 "$T/passwd"

# --- postern ---------------------------------------------------------------
P_IMAPS=$(free_port) P_IMAP=$(free_port) P_LMTP=$(free_port)
mkdir -p "$T/postern"
write_postern_conf() { # with_lmtp [workers [search_indexer]]
	cat >"$T/postern/postern.conf" <<-EOF
	# Written by bench/compare.sh: defaults except paths, loopback ports and
	# the per-address and per-user limits, which a load generator on one
	# address trips by design (Dovecot's equivalents are raised as well).
	hostname = bench.localhost
	max_connections_per_ip = 1000000
	max_sessions_per_user = 1000000
	max_sessions_per_user_ip = 1000000
	max_commands_per_second = 1000000
	data_dir = $T/postern/data
	passwd_file = $T/passwd
	user = $(id -un)
	workers = ${2:-$(nproc)}
	search_indexer = ${3:-yes}
	tls_cert = $T/cert.pem
	tls_key = $T/key.pem

	[listener imaps]
	address = 127.0.0.1:$P_IMAPS
	tls = implicit

	[listener imap]
	address = 127.0.0.1:$P_IMAP
	tls = starttls
	EOF
	if [ "$1" = 1 ]; then
		printf '\n[listener lmtp]\nprotocol = lmtp\naddress = 127.0.0.1:%s\n' "$P_LMTP" >>"$T/postern/postern.conf"
	fi
}
start_postern() {
	"$POSTERN" serve -c "$T/postern/postern.conf" >>"$T/postern/postern.log" 2>&1 &
	POSTERN_PID=$!
	wait_port "$P_IMAPS" "$POSTERN_PID" postern
}
POSTERN_LMTP=1
write_postern_conf 1
if ! start_postern; then
	if grep -q "lmtp" "$T/postern/postern.log"; then
		say "postern has no LMTP yet: $(grep -m1 lmtp "$T/postern/postern.log")"
		POSTERN_LMTP=0
		POSTERN_LMTP_WHY=$(grep -m1 lmtp "$T/postern/postern.log" | sed 's/^postern: //')
		write_postern_conf 0
		start_postern || die "postern did not start: $(tail -5 "$T/postern/postern.log")"
	else
		die "postern did not start: $(tail -5 "$T/postern/postern.log")"
	fi
fi
say "postern pid $POSTERN_PID: imaps $P_IMAPS, imap $P_IMAP$([ $POSTERN_LMTP = 1 ] && echo ", lmtp $P_LMTP")"

# --- Dovecot ---------------------------------------------------------------
D_IMAPS=$(free_port) D_IMAP=$(free_port) D_LMTP=$(free_port)
D=$T/dovecot
mkdir -p "$D/run" "$D/state" "$D/mail"
chown nobody "$D/mail"
# Defaults except: paths and loopback ports; the mail files owned by nobody
# (Dovecot refuses root); limits raised so that 10,000 sessions fit (one
# imap process per session is Dovecot's design, so process_limit must
# cover them); imap-login in Dovecot's documented "high-performance" mode
# (one login process per core serving many connections) because the
# default high-security mode keeps a login process per TLS session and
# would not fit 10,000 sessions in memory. fsync settings are Dovecot's
# defaults (mail_fsync = optimized).
cat >"$D/dovecot.conf" <<EOF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
instance_name = postern-bench
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$T/cert.pem
ssl_key = <$T/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
default_client_limit = $CLIENT_LIMIT
default_process_limit = 1000
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100000
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $T/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $D_IMAP
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $D_IMAPS
    ssl = yes
  }
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = $CLIENT_LIMIT
  vsz_limit = 2G
}
service imap {
  process_limit = 12000
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $D_LMTP
  }
  process_limit = 200
}
protocol lmtp {
  auth_username_format = %n
}
EOF
start_dovecot() {
	dovecot -F -c "$D/dovecot.conf" >>"$D/dovecot.stderr" 2>&1 &
	DOVECOT_PID=$!
	wait_port "$D_IMAPS" "$DOVECOT_PID" dovecot ||
		die "Dovecot did not start: $(tail -5 "$D/dovecot.stderr" "$D/dovecot.log" 2>/dev/null)"
}
start_dovecot
say "dovecot pid $DOVECOT_PID: imaps $D_IMAPS, imap $D_IMAP, lmtp $D_LMTP"

# --- running imapload ----------------------------------------------------------
RES=$T/results.tsv
: >"$RES"
COMMANDS=$T/commands.txt
: >"$COMMANDS"
# il LABEL SERVER RUN imapload-args...: one run; its RESULT lines (or its
# failure) go to $RES, the command line to $COMMANDS (first run only).
il() {
	local label=$1 server=$2 run=$3 out rc
	shift 3
	out=$T/out.$label.$server.$run
	[ "$run" = 1 ] && printf '%s\t%s\timapload %s\n' "$label" "$server" "$*" >>"$COMMANDS"
	say "$label $server run $run: imapload $*"
	set +e
	timeout "${IL_LIMIT:-900}" "$IMAPLOAD" -q "$@" >"$out" 2>"$out.err"
	rc=$?
	set -e
	if [ $rc = 0 ]; then
		grep '^RESULT ' "$out" | sed "s/^/$label\t$server\t$run\tok\t/" >>"$RES" || true
	else
		local why
		why=$(grep -m1 'FAILED' "$out.err" || tail -1 "$out.err")
		[ $rc = 124 ] && why="timed out after ${IL_LIMIT:-900} s"
		say "  failed: $why"
		printf '%s\t%s\t%s\tfailed\t%s\n' "$label" "$server" "$run" "$why" >>"$RES"
	fi
	return 0
}
skip() { # LABEL SERVER WHY
	printf '%s\t%s\t1\tskipped\t%s\n' "$1" "$2" "$3" >>"$RES"
}
P=(-h 127.0.0.1)
pt() { echo "-p $P_IMAPS --tls --pid-tree $POSTERN_PID"; }
dt() { echo "-p $D_IMAPS --tls --pid-tree $DOVECOT_PID"; }
STARTED=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# mixed: imaptest's default round per connection, one user per client.
for c in $MIXED_CLIENTS; do
	for r in $(seq "$RUNS"); do
		il "mixed-$c" postern "$r" -w mixed "${P[@]}" $(pt) -u 'bench%d' -P $PASS -c "$c" -d "$MIXED_SECONDS"
		il "mixed-$c" dovecot "$r" -w mixed "${P[@]}" $(dt) -u 'bench%d' -P $PASS -c "$c" -d "$MIXED_SECONDS"
	done
done

# handshake: TLS handshakes per second, and the signing limit.
SPEED=$T/speed.txt
openssl speed -seconds 3 ecdsap256 >"$SPEED" 2>/dev/null || true
SIGN_PER_S=$(awk '/ecdsa \(nistp256\)/ { v=$(NF-1) } END { print v+0 }' "$SPEED")
openssl speed -seconds 3 ecdhx25519 >>"$SPEED" 2>/dev/null || true
X25519_PER_S=$(awk '/ecdh \(X25519\)/ { v=$NF } END { print v+0 }' "$SPEED")
for mode in full resumed; do
	extra=""
	[ $mode = resumed ] && extra="--resume"
	for r in $(seq "$RUNS"); do
		il "handshake-$mode" postern "$r" -w handshake "${P[@]}" $(pt) -c 8 -d "$HANDSHAKE_SECONDS" $extra
		il "handshake-$mode" dovecot "$r" -w handshake "${P[@]}" $(dt) -c 8 -d "$HANDSHAKE_SECONDS" $extra
	done
done

# deliver: LMTP.
for s in $DELIVER_SENDERS; do
	for r in $(seq "$RUNS"); do
		if [ $POSTERN_LMTP = 1 ]; then
			il "deliver-$s" postern "$r" -w deliver "${P[@]}" -p "$P_LMTP" -u 'bench%d' --users 50 -c "$s" -d "$DELIVER_SECONDS"
		elif [ "$r" = 1 ]; then
			skip "deliver-$s" postern "no LMTP in postern yet ($POSTERN_LMTP_WHY)"
		fi
		il "deliver-$s" dovecot "$r" -w deliver "${P[@]}" -p "$D_LMTP" -u 'bench%d' --users 50 -c "$s" -d "$DELIVER_SECONDS"
	done
done

# bigbox: populated once per server (timed as APPEND throughput), then
# measured RUNS times on fresh connections. postern's full-text index is
# built by `postern index` after the populate, timed on its own: the
# background indexer is off for this part (and for the 1,000,000-message
# box, which is never searched), so the two do not share the work.
write_postern_conf "$POSTERN_LMTP" "" no
stop_pid "$POSTERN_PID" postern
start_postern || die "postern did not restart: $(tail -5 "$T/postern/postern.log")"
postern_index() { # USER MESSAGES: RESULT line for the index build
	local t0 t1 out
	t0=$(date +%s.%N)
	if ! out=$("$POSTERN" index -c "$T/postern/postern.conf" "$1" 2>&1); then
		say "  postern index failed: $out"
		printf 'bigbox-index\tpostern\t1\tfailed\t%s\n' "$out" >>"$RES"
		return 0
	fi
	t1=$(date +%s.%N)
	say "  $out"
	local bytes
	bytes=$(cat "$T/postern/data/users/$1"/search.db* 2>/dev/null | wc -c)
	awk -v t0="$t0" -v t1="$t1" -v n="$2" -v bytes="$bytes" 'BEGIN {
		printf "bigbox-index\tpostern\t1\tok\tRESULT bigbox_index messages=%d seconds=%.2f per_s=%.1f search_db_bytes=%.0f\n",
			n, t1 - t0, n / (t1 - t0), bytes }' >>"$RES"
	printf 'bigbox-index\tpostern\tpostern index -c postern.conf %s\n' "$1" >>"$COMMANDS"
}
for server in postern dovecot; do
	a=$(pt)
	[ $server = dovecot ] && a=$(dt)
	il "bigbox-populate" $server 1 -w bigbox "${P[@]}" $a -u bigbox -P $PASS -m "$BIGBOX" --timeout 600
	if grep -q "^bigbox-populate	$server	1	failed" "$RES"; then continue; fi
	[ $server = postern ] && postern_index bigbox "$BIGBOX"
	for r in $(seq "$RUNS"); do
		il "bigbox" $server "$r" -w bigbox "${P[@]}" $a -u bigbox -P $PASS -m "$BIGBOX" --timeout 600
	done
done

# The 1,000,000-message box on postern alone: populating it through
# Dovecot's Maildir would take longer than the whole budget. Needs about
# 24 KB of disk a message (body files and index).
if [ "$BIGBOX_LARGE" -gt 0 ]; then
	need_kb=$((BIGBOX_LARGE * 24))
	free_kb=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
	if [ "$free_kb" -lt "$need_kb" ]; then
		skip "bigbox-large-populate" postern "not run: needs $((need_kb / 1048576)) GiB free in $T, has $((free_kb / 1048576)) GiB"
	else
		IL_LIMIT=1800 il "bigbox-large-populate" postern 1 -w bigbox "${P[@]}" $(pt) -u biggest -P $PASS -m "$BIGBOX_LARGE" --no-search --timeout 900
		if ! grep -q "^bigbox-large-populate	postern	1	failed" "$RES"; then
			for r in $(seq "$RUNS"); do
				il "bigbox-large" postern "$r" -w bigbox "${P[@]}" $(pt) -u biggest -P $PASS -m "$BIGBOX_LARGE" --no-search --timeout 900
			done
		fi
		rm -rf "$T/postern/data/users/biggest"
	fi
fi
write_postern_conf "$POSTERN_LMTP"

# idle: server memory per TLS session in IDLE, 100 users. Each run starts
# on a freshly started server: a process that already served other
# workloads keeps freed heap (malloc does not return it), and new sessions
# would reuse it unseen.
restart_postern() {
	stop_pid "$POSTERN_PID" postern
	start_postern || die "postern did not restart: $(tail -5 "$T/postern/postern.log")"
}
restart_dovecot() {
	stop_pid "$DOVECOT_PID" dovecot
	start_dovecot
}
for n in $IDLE_SIZES; do
	runs=$RUNS
	[ "$n" -ge 10000 ] && runs=$IDLE_BIG_RUNS
	for r in $(seq "$runs"); do
		restart_postern
		il "idle-$n" postern "$r" -w idle "${P[@]}" $(pt) -u 'bench%d' --users $USERS -P $PASS -c "$n" --timeout 120
		restart_dovecot
		il "idle-$n" dovecot "$r" -w idle "${P[@]}" $(dt) -u 'bench%d' --users $USERS -P $PASS -c "$n" --timeout 120
	done
done

# push: N sessions of one user in IDLE, APPENDs from another session.
for n in $PUSH_SIZES; do
	runs=$RUNS
	[ "$n" -ge 10000 ] && runs=$IDLE_BIG_RUNS
	for r in $(seq "$runs"); do
		appends=$PUSH_APPENDS
		[ "$n" -eq 1000 ] && appends=$PUSH_APPENDS_1000
		il "push-$n" postern "$r" -w push "${P[@]}" $(pt) -u push -P $PASS -c "$n" -m "$appends" --timeout 300
	done
done
for n in $DOVECOT_PUSH_SIZES; do
	il "push-$n" dovecot 1 -w push "${P[@]}" $(dt) -u push -P $PASS -c "$n" -m "$DOVECOT_PUSH_APPENDS" --timeout 120
done
for n in $PUSH_SIZES; do
	case " $DOVECOT_PUSH_SIZES " in *" $n "*) ;; *) skip "push-$n" dovecot "not run: see the scaling notes" ;; esac
done

# The same sizes again with workers = 4 (BENCH_WORKERS4=1). Needed when
# postern kept an SQLite connection per session (4 descriptors each, over
# this machine's limit at 5,000 per worker); with shared store handles a
# session holds only its socket, so the default run leaves it out.
BIG_IDLE="" BIG_PUSH=""
if [ "${BENCH_WORKERS4:-0}" = 1 ]; then
	for n in $IDLE_SIZES; do [ "$n" -ge 10000 ] && BIG_IDLE="$BIG_IDLE $n"; done
	for n in $PUSH_SIZES; do [ "$n" -ge 10000 ] && BIG_PUSH="$BIG_PUSH $n"; done
fi
if [ -n "$BIG_IDLE$BIG_PUSH" ]; then
	write_postern_conf "$POSTERN_LMTP" 4
	for n in $BIG_IDLE; do
		for r in $(seq "$IDLE_BIG_RUNS"); do
			restart_postern
			il "idle-${n}w4" postern "$r" -w idle "${P[@]}" $(pt) -u 'bench%d' --users $USERS -P $PASS -c "$n" --timeout 120
		done
	done
	for n in $BIG_PUSH; do
		for r in $(seq "$IDLE_BIG_RUNS"); do
			restart_postern
			il "push-${n}w4" postern "$r" -w push "${P[@]}" $(pt) -u push -P $PASS -c "$n" -m "$PUSH_APPENDS" --timeout 120
		done
	done
	write_postern_conf "$POSTERN_LMTP"
fi

ELAPSED=$(($(date +%s) - STARTED))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
say "workloads done in ${ELAPSED}s; writing $OUT"

# --- RESULTS.md ----------------------------------------------------------------
export RES COMMANDS OUT SIGN_PER_S X25519_PER_S ELAPSED RUNS MIXED_SECONDS BIGBOX PUSH_APPENDS \
	BIGBOX_LARGE DOVECOT_PUSH_APPENDS DELIVER_SECONDS HANDSHAKE_SECONDS IDLE_BIG_RUNS USERS LOAD_START LOAD_END
export V_POSTERN=$(git describe --always --dirty 2>/dev/null || echo unknown)
export V_DOVECOT=$(dovecot --version)
export V_OPENSSL=$(openssl version)
export V_KERNEL=$(uname -r)
export M_CORES=$(nproc)
export M_CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
export M_MEM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
export M_INOTIFY=$(cat /proc/sys/fs/inotify/max_user_instances)
export M_PIDMAX=$(cat /proc/sys/kernel/pid_max)
export M_FDLIMIT=$FD_LIMIT
export P_LMTP_STATE=$POSTERN_LMTP
# Kept with BENCH_KEEP=1: `set -a; . DIR/report.env; python3 bench/results.py`
# writes the report again (after editing bench/findings.md).
export -p | grep -E ' (RES|COMMANDS|OUT|SIGN_PER_S|X25519_PER_S|ELAPSED|RUNS|MIXED_SECONDS|BIGBOX|BIGBOX_LARGE|PUSH_APPENDS|DOVECOT_PUSH_APPENDS|DELIVER_SECONDS|HANDSHAKE_SECONDS|IDLE_BIG_RUNS|USERS|LOAD_START|LOAD_END|V_[A-Z]+|M_[A-Z]+|P_LMTP_STATE)=' >"$T/report.env"
python3 "$ROOT/bench/results.py"
say "wrote $OUT"
