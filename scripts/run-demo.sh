#!/bin/sh
# `make run`: the server on its embedded default, from a fresh checkout.
# First run: writes ./run/postern.conf, a self-signed certificate and a demo
# user (demo / demo). As root it binds the standard ports 143 and 993;
# otherwise 1143 and 1993, since ports below 1024 need root.
set -eu
bin=${1:-build/postern}
dir=$(pwd)/run
mkdir -p "$dir/tls" "$dir/data"

if [ ! -s "$dir/tls/cert.pem" ] || [ ! -s "$dir/tls/key.pem" ]; then
	echo "postern demo: making a self-signed certificate for localhost in $dir/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" -days 365 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
	chmod 600 "$dir/tls/key.pem"
fi

if [ ! -s "$dir/passwd" ]; then
	echo "postern demo: adding the demo user 'demo' with password 'demo'"
	printf 'demo\n' | "$bin" user add demo -f "$dir/passwd"
fi

if [ "$(id -u)" = 0 ]; then
	imap_port=143 imaps_port=993
	echo "postern demo: running as root, so binding the standard ports 143 (STARTTLS) and 993 (TLS)"
	if id postern >/dev/null 2>&1; then
		run_user=postern
		chown -R postern "$dir/data"
		chmod 640 "$dir/tls/key.pem" "$dir/passwd"
		chgrp "$(id -gn postern)" "$dir/tls/key.pem" "$dir/passwd"
	else
		run_user=root
		echo "postern demo: no 'postern' account here, so the demo stays root;"
		echo "              production runs as a dedicated account (docs/operations.md)"
	fi
else
	imap_port=1143 imaps_port=1993
	run_user=$(id -un)
	echo "postern demo: not root, so binding 1143 (STARTTLS) and 1993 (TLS): ports below 1024 need root"
fi

cat > "$dir/postern.conf" <<CONF
# Written by 'make run' (scripts/run-demo.sh); see docs/configuration.md.
hostname = localhost
data_dir = $dir/data
passwd_file = $dir/passwd
user = $run_user
workers = 2
tls_cert = $dir/tls/cert.pem
tls_key = $dir/tls/key.pem

[listener imap]
address = 0.0.0.0:$imap_port
tls = starttls

[listener imaps]
address = 0.0.0.0:$imaps_port
tls = implicit
CONF

echo "postern demo: config $dir/postern.conf; try:"
echo "  openssl s_client -connect 127.0.0.1:$imaps_port   (then: a LOGIN demo demo)"
echo "  curl -k imaps://127.0.0.1:$imaps_port/ -u demo:demo -X CAPABILITY"
echo "postern demo: Ctrl-C stops it"
exec "$bin" serve -c "$dir/postern.conf"
