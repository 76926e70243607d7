#!/bin/sh
# Records what Dovecot answers for ENVELOPE, BODYSTRUCTURE, BODY and
# BODY[1.MIME] for every message of this corpus into golden/NAME.txt, which
# tests/unit/test_mime.c compares postern's output with.
#
# A private Dovecot, no network: each message is saved with `doveadm save`
# into a throwaway Maildir and fetched by running the imap binary as a
# preauthenticated process on stdin. Needs dovecot-core and dovecot-imapd.
# Run as root (Dovecot then drops to nobody) or as an ordinary user.
#
# Golden file format, one block per item:
#   == ITEM LEN\n<LEN bytes: the item's value exactly as sent>\n
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/postern-dovecot.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" = 0 ]; then uid=65534; gid=65534; user=nobody
else uid=$(id -u); gid=$(id -g); user=$(id -un); fi
mkdir -p "$work/run" "$work/state"
cat > "$work/dovecot.conf" <<CONF
base_dir = $work/run
state_dir = $work/state
log_path = /dev/null
ssl = no
protocols = imap
mail_location = maildir:$work/Maildir
mail_uid = $uid
mail_gid = $gid
first_valid_uid = 0
first_valid_gid = 0
CONF
chown -R "$uid:$gid" "$work"
mkdir -p "$here/golden"
for eml in "$here"/*.eml; do
	name=$(basename "$eml" .eml)
	rm -rf "$work/Maildir"
	USER=$user HOME=$work doveadm -c "$work/dovecot.conf" save -m INBOX < "$eml"
	printf 'a SELECT INBOX\r\nb FETCH 1 (ENVELOPE)\r\nc FETCH 1 (BODYSTRUCTURE)\r\nd FETCH 1 (BODY)\r\ne FETCH 1 (BODY.PEEK[1.MIME])\r\nz LOGOUT\r\n' |
		USER=$user HOME=$work /usr/lib/dovecot/imap -c "$work/dovecot.conf" > "$work/out" 2>/dev/null
	python3 - "$work/out" "$here/golden/$name.txt" <<'PY'
import re, sys
data = open(sys.argv[1], 'rb').read()
out = bytearray()
# Walk the response honouring literals: a FETCH line may go on after {n}.
pos = 0
while pos < len(data):
    m = re.compile(rb'\* 1 FETCH \(').search(data, pos)
    if not m:
        break
    i = m.end()
    start = i
    while True:
        eol = data.index(b'\r\n', i)
        lit = re.search(rb'\{(\d+)\}$', data[i:eol])
        if lit:
            i = eol + 2 + int(lit.group(1))
            continue
        break
    item = data[start:eol - 1]         # drop the closing ")" of the FETCH
    sp = item.index(b' ')
    out += b'== ' + item[:sp] + b' ' + str(len(item) - sp - 1).encode() + b'\n'
    out += item[sp + 1:] + b'\n'
    pos = eol + 2
open(sys.argv[2], 'wb').write(out)
PY
done
echo "recorded $(ls "$here"/*.eml | wc -l) messages into $here/golden"
