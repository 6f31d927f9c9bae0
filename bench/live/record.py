#!/usr/bin/env python3
"""Labelled recordings of the live suite for the offline evaluation (issue 11, decision 113).

Per service, with run.py's images, load drivers and attacks (imported, not copied), every
container labelled `ngram-ids.record=1` (decision 19: the supervisor records it into
<store>/records/<profile>/<container id>.ntrc), one container per run:

  train/runK.ntrc             REC_TRAIN_RUNS training runs (train runtime): start, prepare, load
                              of REC_TRAIN_SECS (seed SEED*1000+K), docker stop
  normal/heldout.ntrc         one held-out run (alert runtime): REC_HELDOUT_SECS of load with
                              another seed (SEED*1000+501)
  attack/NAME_1/ATTACK.ntrc   one run per attack (alert runtime): normal load throughout (seed
                              SEED*1000+600+i), the attack REC_PRE_SECS after the load starts,
                              the recording stopped REC_POST_SECS after it
  attack/NAME_1/ATTACK.json   the attack's request time in LID-DS 2021's shape
                              ({"exploit": true, "time": {"exploit": [{"absolute": SECS}]}}):
                              `ngram-ids eval --format native` starts the attack at the first call
                              at or after it
  manifest.json               per run: requests, failures, the attack's control (did it work),
                              the live detector's alerts in that run and its first alert's
                              latency from the request

Usage: bench/live/record.py OUT [--services python,nginx,redis]
Environment:
  REC_TRAIN_RUNS (3), REC_TRAIN_SECS (40), REC_HELDOUT_SECS (180), REC_PRE_SECS (6),
  REC_POST_SECS (6), REC_SEED (1), REC_CLIENTS (4)
  REC_TRAIN_RUNTIME, REC_ALERT_RUNTIME  runtime names (ngram-ids-train, ngram-ids)
  REC_STORE     the store those runtimes were given (--store; /var/lib/ngram-ids): the records
                are found under REC_STORE/records and the profiles there
  NGRAM_IDS     the binary used for `profile show/rm` (as run.py)
  NGRAM_IDS_ALERTS  those runtimes' alert log (as run.py)
Exit status: 0 when every run was recorded, 1 when one failed (the others are kept), 2 on bad
usage.
"""
import argparse
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as live  # noqa: E402  (run.py's services, load drivers and attacks)

RECORD_LABEL = "ngram-ids.record=1"


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        print("record.py: error: %s must be an integer" % name, file=sys.stderr)
        sys.exit(2)


def ids(store, *args, timeout=60):
    """An offline ngram-ids command on the profile database `store` (NGRAM_IDS_DB)."""
    os.environ["NGRAM_IDS_DB"] = store
    return live.sh([live.ids_bin()] + list(args), timeout=timeout, check=False)


def profile_runs(store, profile):
    rc, out, _ = ids(store, "profile", "show", profile, "--json")
    if rc != 0:
        return None
    try:
        return json.loads(out).get("runs", 0)
    except ValueError:
        return None


def record_path(store, profile, cid):
    return os.path.join(store, "records", profile, cid + ".ntrc")


def wait_complete(store, profile, path, timeout=120):
    """Waits until the supervisor has finished the recording (its end record is written: the
    file reads as a whole trace, which `score` checks: 0 or 3, normal or anomalous); raises
    HarnessError otherwise."""
    deadline = time.time() + timeout
    last = "not written"
    while time.time() < deadline:
        if os.path.exists(path):
            rc, _, err = ids(store, "score", "--format", "native", profile, path, timeout=300)
            if rc in (0, 3):
                return
            last = err.strip()[-200:]
        time.sleep(1)
    raise live.HarnessError("recording %s not complete after %d s: %s" % (path, timeout, last))


def start(svc, phase, runtime, profile):
    """A recorded container of `svc`: (name, id, port)."""
    name = "rec-%s-%s-%s" % (svc.name, phase, live.RUN_ID)
    live.docker_rm(name)
    cid, err = live.docker_run(name, runtime, svc.image, svc.port, profile, extra=("--label", RECORD_LABEL))
    if cid is None:
        raise live.HarnessError("%s: docker run under %s failed: %s" % (name, runtime, err))
    port = live.host_port(name, svc.port)
    why = live.wait_ready(svc, name, port, svc.start_timeout)
    if why:
        raise live.HarnessError("%s under %s: %s" % (name, runtime, why))
    svc.prepare(port)
    return name, cid, port


def finish(cfg, name, cid, profile, dest, merged_runs=None):
    """Stops the container, waits for its training to merge (`merged_runs`: the profile's runs
    after it) and for its recording, and moves the recording to `dest`."""
    live.docker_stop(name)
    if merged_runs:
        deadline = time.time() + 90
        while time.time() < deadline and (profile_runs(cfg["store"], profile) or 0) < merged_runs:
            time.sleep(0.5)
    src = record_path(cfg["store"], profile, cid)
    wait_complete(cfg["store"], profile, src)
    live.docker_rm(name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(src, dest)
    return os.path.getsize(dest)


def live_alerts(cid, t0):
    """The live detector's alerts of the container, and its first one's latency (ms) from t0."""
    found = [a for a in live.alerts_of(cid) if a.get("evt.time", 0) >= t0]
    first = found[0] if found else None
    return len(found), (round((first["evt.time"] - t0) / 1e6, 2) if first else None)


def record_service(svc, cfg, lst, out):
    profile = "rec-" + svc.name
    ids(cfg["store"], "profile", "rm", profile)
    base = os.path.join(out, svc.name)
    man = {"service": svc.name, "image": svc.image, "profile": profile, "train": [], "attacks": []}

    for k in range(1, cfg["train_runs"] + 1):
        name, cid, port = start(svc, "train%d" % k, cfg["train_rt"], profile)
        st = svc.load(port, cfg["train_secs"], cfg["seed"] * 1000 + k, cfg["clients"])
        size = finish(cfg, name, cid, profile, os.path.join(base, "train", "run%d.ntrc" % k), merged_runs=k)
        man["train"].append({"run": k, "load": st.json(), "bytes": size, "profile_runs": profile_runs(cfg["store"], profile)})
        live.log("%s: training run %d: %d requests (%d failed), %d bytes recorded" % (svc.name, k, st.requests, st.failed, size))

    name, cid, port = start(svc, "heldout", cfg["alert_rt"], profile)
    t0 = live.now_ns()
    st = svc.load(port, cfg["heldout_secs"], cfg["seed"] * 1000 + 501, cfg["clients"])
    alerts, _ = live_alerts(cid, 0)
    size = finish(cfg, name, cid, profile, os.path.join(base, "normal", "heldout.ntrc"))
    man["heldout"] = {"load": st.json(), "bytes": size, "live_alerts": alerts, "start_ns": t0}
    live.log("%s: held-out run: %d requests (%d failed), %d live alerts, %d bytes" % (svc.name, st.requests, st.failed, alerts, size))

    for i, (aname, fn, _) in enumerate(svc.attacks(lst)):
        name, cid, port = start(svc, "atk-" + aname, cfg["alert_rt"], profile)
        box = {}

        def bg():
            box["stats"] = svc.load(port, cfg["pre_secs"] + cfg["post_secs"], cfg["seed"] * 1000 + 600 + i, cfg["clients"])

        loader = threading.Thread(target=bg, daemon=True)
        loader.start()
        time.sleep(cfg["pre_secs"])
        live._REQUEST["t0"] = None
        t0 = live.now_ns()
        try:
            effect, evidence = fn(port, name)
        except (OSError, live.http.client.HTTPException, live.HarnessError) as e:
            effect, evidence = False, "request failed: %s" % e
        t0 = live._REQUEST["t0"] or t0  # an attack that staged a file first: its request
        loader.join(cfg["pre_secs"] + cfg["post_secs"] + 300)
        time.sleep(1)
        alerts, latency = live_alerts(cid, t0)
        d = os.path.join(base, "attack", "%s_1" % aname)
        size = finish(cfg, name, cid, profile, os.path.join(d, aname + ".ntrc"))
        with open(os.path.join(d, aname + ".json"), "w") as f:
            # Seconds as a float, as LID-DS writes them (about 0.2 us of rounding).
            json.dump({"exploit": True, "time": {"exploit": [{"absolute": t0 / 1e9}]}, "attack_ns": t0,
                       "service": svc.name, "attack": aname}, f)
        st = box.get("stats") or live.Stats()
        man["attacks"].append({"attack": aname, "effect": effect, "evidence": evidence, "attack_ns": t0,
                               "load": st.json(), "bytes": size, "live_alerts": alerts, "live_latency_ms": latency})
        live.log("%s: %-16s effect=%s live alerts=%d (first after %s ms), load %d requests (%d failed), %d bytes" % (
            svc.name, aname, effect, alerts, latency, st.requests, st.failed, size))
    ids(cfg["store"], "profile", "rm", profile)
    return man


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--services", default="python,nginx,redis")
    args = ap.parse_args()
    services = args.services.split(",")
    bad = [s for s in services if s not in live.ALL]
    if bad:
        print("record.py: error: unknown service(s) %s (known: %s)" % (",".join(bad), ",".join(live.ALL)), file=sys.stderr)
        sys.exit(2)
    if os.geteuid() != 0:
        print("record.py: error: must run as root (docker, the profile store)", file=sys.stderr)
        sys.exit(2)
    cfg = {"train_runs": env_int("REC_TRAIN_RUNS", 3), "train_secs": env_int("REC_TRAIN_SECS", 40),
           "heldout_secs": env_int("REC_HELDOUT_SECS", 180), "pre_secs": env_int("REC_PRE_SECS", 6),
           "post_secs": env_int("REC_POST_SECS", 6), "seed": env_int("REC_SEED", 1),
           "clients": env_int("REC_CLIENTS", 4),
           "train_rt": os.environ.get("REC_TRAIN_RUNTIME", live.TRAIN_RT),
           "alert_rt": os.environ.get("REC_ALERT_RUNTIME", live.ALERT_RT),
           "store": os.environ.get("REC_STORE", "/var/lib/ngram-ids")}
    os.makedirs(args.out, exist_ok=True)
    manifest = {"config": cfg, "services": services, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "results": []}
    failed = False
    lst = live.Listener()

    def write_manifest():
        with open(os.path.join(args.out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)

    try:
        for name in services:
            svc = live.service(name)
            try:
                manifest["results"].append(record_service(svc, cfg, lst, args.out))
            except live.HarnessError as e:
                live.log("%s: FAILED: %s" % (name, e))
                manifest["results"].append({"service": name, "error": str(e)})
                failed = True
                for c in list(live.CONTAINERS):
                    live.docker_rm(c)
            write_manifest()  # after each service: the finished ones can be evaluated
    finally:
        for c in list(live.CONTAINERS):
            live.docker_rm(c)
        lst.stop = True
        write_manifest()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
