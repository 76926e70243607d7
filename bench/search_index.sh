#!/bin/bash
# What the search index costs and gives (bench/findings.md "Search index"):
# one private postern (loopback ports only, its own data directory), then
#   - bigbox run 1: 100,000 generated messages by MULTIAPPEND (the APPEND
#     rate), then SELECT, FETCH, UID SEARCH FROM and UID SEARCH TEXT (before
#     `postern index`: what the background indexer had done by then);
#   - `postern index bigbox`, timed: returns once nothing is pending, and
#     prints its own indexing rate (skipped for a postern without it);
#   - bigbox runs 2..RUNS: the same commands on the indexed mailbox;
#   - deliver: LMTP deliveries with 1 and 10 senders, 10 s each;
#   - the size of index.db and search.db and of their tables (dbstat),
#     after a clean stop.
# Usage: [RUNS=3] [INDEXER=yes|no] bench/search_index.sh POSTERN IMAPLOAD [MESSAGES]
# INDEXER sets `search_indexer` (the background thread); with "no" the
# `postern index` rate is the whole mailbox's.
# Prints RESULT lines; the server is stopped by its PID on exit.
set -euo pipefail
POSTERN=$(realpath "$1")
IMAPLOAD=$(realpath "$2")
MESSAGES=${3:-100000}
RUNS=${RUNS:-3}
INDEXER=${INDEXER:-yes}

T=$(mktemp -d /tmp/postern-search-bench.XXXXXX)
PID=""
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		wait "$PID" || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 300); do
		kill -0 "$PID" 2>/dev/null || return 1
		python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),timeout=1)" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/key.pem" \
	-out "$T/cert.pem" -days 30 -subj /CN=localhost 2>/dev/null
HASH=$(openssl passwd -6 bench)
for u in $(seq -f 'bench%g' 1 50) bigbox; do printf '%s:{SHA512-CRYPT}%s\n' "$u" "$HASH"; done >"$T/passwd"
P_IMAPS=$(free_port) P_LMTP=$(free_port)
cat >"$T/postern.conf" <<EOF
hostname = bench.localhost
max_connections_per_ip = 1000000
max_sessions_per_user = 1000000
max_sessions_per_user_ip = 1000000
max_commands_per_second = 1000000
data_dir = $T/data
passwd_file = $T/passwd
user = $(id -un)
workers = $(nproc)
$( [ "$INDEXER" = no ] && echo "search_indexer = no" )
tls_cert = $T/cert.pem
tls_key = $T/key.pem

[listener imaps]
address = 127.0.0.1:$P_IMAPS
tls = implicit

[listener lmtp]
protocol = lmtp
address = 127.0.0.1:$P_LMTP
EOF
"$POSTERN" serve -c "$T/postern.conf" >>"$T/postern.log" 2>&1 &
PID=$!
wait_port "$P_IMAPS" || { tail -5 "$T/postern.log"; exit 1; }

bigbox() {
	echo "# bigbox run $1"
	"$IMAPLOAD" -q -w bigbox -h 127.0.0.1 -p "$P_IMAPS" --tls -u bigbox -P bench -m "$MESSAGES" --timeout 900 |
		grep RESULT
}
bigbox 1
echo "# postern index"
start=$(date +%s.%N)
if "$POSTERN" index -c "$T/postern.conf" bigbox; then
	echo "RESULT index_wall seconds=$(echo "$(date +%s.%N) - $start" | bc)"
else
	echo "RESULT index unsupported"
fi
for run in $(seq 2 "$RUNS"); do
	bigbox "$run"
done
for senders in 1 10; do
	echo "# deliver, $senders senders"
	"$IMAPLOAD" -q -w deliver -h 127.0.0.1 -p "$P_LMTP" -u 'bench%d' --users 50 -c "$senders" -d 10 | grep RESULT
done
kill -TERM "$PID"
wait "$PID" || true
PID=""
U=$T/data/users/bigbox
echo "RESULT size index.db=$(stat -c %s "$U/index.db") wal=$(stat -c %s "$U/index.db-wal" 2>/dev/null || echo 0)" \
	"search.db=$(stat -c %s "$U/search.db" 2>/dev/null || echo 0)" \
	"search_wal=$(stat -c %s "$U/search.db-wal" 2>/dev/null || echo 0)" \
	"blobs=$(du -sb "$U/blobs" | cut -f1)"
for db in index.db search.db; do
	[ -f "$U/$db" ] || continue
	sqlite3 "$U/$db" "SELECT 'RESULT table $db ' || name || ' bytes=' || sum(pgsize) FROM dbstat GROUP BY name
		ORDER BY sum(pgsize) DESC LIMIT 8"
done
