#!/bin/bash
# Record MIT/UNM-style traces of our own (issue 11): a long-running privileged mail server,
# Debian 12's exim4 (daemon, local delivery), traced with `strace -f` under a realistic normal
# workload and under attacks that fit an MTA (commands run through a user's .forward delivery
# pipe), then split into one trace per SMTP session (the daemon's child for that connection and
# all its descendants: receiving, routing, delivery, pipes), as UNM's sendmail traces hold one
# daemon child's processes.
#
#   bench/offline/mta_traces.sh OUT [NORMAL_SESSIONS] [ATTACKS_PER_FAMILY] [SEED]
#
# Writes OUT/train (the first 40 % of the normal sessions, in time order), OUT/normal (the
# rest), OUT/attack/FAMILY_1 (one directory per attack family), OUT/manifest.tsv, and keeps
# the raw trace in OUT/raw/exim.strace. Then, e.g.:
#   ngram-ids eval --format strace --train OUT/train --normal OUT/normal --attack OUT/attack \
#       --far 0.01 --detector both --callset --select
#
# Needs root, mmdebstrap (a Debian 12 chroot with exim4-daemon-light, procmail, bsd-mailx, from
# the Debian mirror), strace, unshare and python3 on the host. Nothing listens outside a private
# network namespace (loopback only); the chroot is WORK (default /tmp/mta-root), reused if
# present. Run it at low priority on a shared machine: `nice -n 19 bench/offline/mta_traces.sh`.
set -euo pipefail

OUT=${1:?usage: mta_traces.sh OUT [NORMAL_SESSIONS] [ATTACKS_PER_FAMILY] [SEED]}
NORMAL=${2:-400}
ATTACKS=${3:-12}
SEED=${4:-11}
WORK=${WORK:-/tmp/mta-root}
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" = 0 ] || { echo "mta_traces.sh: needs root (chroot, unshare, strace of a setuid daemon)" >&2; exit 1; }
for t in mmdebstrap strace unshare python3 ip; do
    command -v "$t" >/dev/null || { echo "mta_traces.sh: $t is missing; apt-get install it" >&2; exit 1; }
done

if [ ! -x "$WORK/usr/sbin/exim4" ]; then
    mmdebstrap --variant=minbase \
        --include=exim4-daemon-light,exim4-config,strace,procmail,bsd-mailx,netcat-openbsd \
        bookworm "$WORK"
fi

# --- the server: users, aliases, .forward files, exim's configuration -------------------------
in_root() { chroot "$WORK" "$@"; }
# Every run starts from the same state: fresh homes, empty mailboxes, queue and /tmp.
for u in alice bob carol dave erin mallory grace frank; do
    in_root id "$u" >/dev/null 2>&1 || in_root useradd -m -s /bin/bash "$u"
    rm -rf "${WORK:?}/home/$u"
    cp -a "$WORK/etc/skel" "$WORK/home/$u"
    in_root chown -R "$u:$u" "/home/$u"
done
find "$WORK/tmp" "$WORK/var/mail" "$WORK/var/spool/exim4/input" "$WORK/var/spool/exim4/msglog" \
    -mindepth 1 -delete 2>/dev/null || true
echo vm > "$WORK/etc/mailname"
sed -i "s/^dc_local_interfaces=.*/dc_local_interfaces='127.0.0.1'/" "$WORK/etc/exim4/update-exim4.conf.conf"
cat > "$WORK/etc/aliases" <<'EOF'
mailer-daemon: postmaster
postmaster: root
abuse: postmaster
root: alice
team: alice, bob, carol
ops: dave, erin
EOF
# A secret for the attacks to look for (the client password file a smarthost setup holds).
echo "smtp.example.test:relayuser:S3cretRelayPass" > "$WORK/etc/exim4/passwd.client"
chmod 640 "$WORK/etc/exim4/passwd.client"
in_root chgrp Debian-exim /etc/exim4/passwd.client
# bob: keep a copy and archive to a file; carol: procmail sorts by subject; dave: an
# auto-reply script (a legitimate shell pipe); erin: plain mailbox; mallory: the attacker's
# account, whose .forward runs the commands of each message's "CMD:" lines (a mail shell);
# grace and frank: below.
printf '\\bob, /home/bob/archive.mbox\n' > "$WORK/home/bob/.forward"
cat > "$WORK/home/carol/.procmailrc" <<'EOF'
MAILDIR=$HOME/Mail
:0:
* ^Subject:.*(report|weekly)
reports
:0:
* ^Subject:.*invoice
invoices
EOF
mkdir -p "$WORK/home/carol/Mail"
cat > "$WORK/home/dave/autoreply.sh" <<'EOF'
#!/bin/sh
# Vacation auto-reply: log the sender, answer local senders once a message, never himself
# nor automatic mail (RFC 3834's Auto-Submitted), so that two auto-replies cannot loop.
head=$(sed -n '1,/^$/p')
from=$(printf '%s\n' "$head" | sed -n 's/^From: .*<\(.*\)>.*/\1/p; s/^From: \([^<]*@[^ >]*\)$/\1/p' | head -n 1)
echo "$(date +%s) $from" >> "$HOME/vacation.log"
printf '%s\n' "$head" | grep -qi '^Auto-Submitted: auto' && exit 0
case "$from" in
    dave@*) ;;
    *@vm) printf 'To: %s\nSubject: out of office\nAuto-Submitted: auto-replied\n\nI am away until Monday.\n' "$from" | /usr/sbin/sendmail -t ;;
esac
exit 0
EOF
chmod 755 "$WORK/home/dave/autoreply.sh"
printf '\\dave, "|/home/dave/autoreply.sh"\n' > "$WORK/home/dave/.forward"
printf '"|/bin/sh -c '"'"'sed -n \\"s/^CMD: //p\\" | /bin/sh > /tmp/.out 2>&1'"'"'"\n' > "$WORK/home/mallory/.forward"
# grace: the same mail shell behind procmail; frank: a file delivery into ~/.ssh.
printf ':0\n| sed -n "s/^CMD: //p" | /bin/sh > /tmp/.g 2>&1\n' > "$WORK/home/grace/.procmailrc"
mkdir -p "$WORK/home/frank/.ssh"
printf '/home/frank/.ssh/authorized_keys\n' > "$WORK/home/frank/.forward"
for u in bob carol dave mallory grace frank; do in_root chown -R "$u:$u" "/home/$u"; done
in_root update-exim4.conf

# --- record ------------------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT/raw"
RAW=$(cd "$OUT/raw" && pwd)
mkdir -p "$WORK/trace"
export WORK RAW NORMAL ATTACKS SEED HERE
unshare --net --pid --fork --mount bash -euo pipefail -c '
    ip link set lo up
    mount -t proc proc "$WORK/proc"
    mount --bind /dev "$WORK/dev"
    mount --bind "$RAW" "$WORK/trace"
    chroot "$WORK" strace -f -tt -s 0 -o /trace/exim.strace \
        /usr/sbin/exim4 -bdf -oX 2525 -oP /trace/exim.pid &
    tracer=$!
    python3 "$HERE/mta_workload.py" --port 2525 --normal "$NORMAL" --attacks "$ATTACKS" \
        --seed "$SEED" --manifest "$RAW/manifest.tsv" --proc "$WORK/proc" --pidfile "$RAW/exim.pid"
    kill -TERM "$(cat "$RAW/exim.pid")"   # the daemon stops; strace ends with it
    wait "$tracer" || true
    umount "$WORK/trace" "$WORK/dev" "$WORK/proc"
'
python3 "$HERE/strace_sessions.py" "$RAW/exim.strace" "$RAW/manifest.tsv" "$OUT"
