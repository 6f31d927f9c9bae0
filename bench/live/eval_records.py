#!/usr/bin/env python3
"""The offline side-by-side evaluation of the live suite's recordings (record.py's OUT), as
docs/evaluation.md reports it ("The live suite's recordings"): per service, `ngram-ids eval`
on OUT/<service>/{train,normal,attack} cut into slices of SLICE seconds, twice (the sequence
autoencoder with the n-gram model, STIDE, the call set and their sums; the masked
autoencoder), and markdown tables of the figures, per detector and per attack, with the live
detector's own alerts in the same runs (OUT/manifest.json).

Usage: bench/live/eval_records.py OUT [--slice SECS] [--services a,b] [--runs collapse|keep]
  NGRAM_IDS  the binary (ngram-ids on PATH)
Prints the tables, and each command it ran before them.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

NAMES = {"ngram": "n-gram", "stide": "STIDE", "callset": "call set", "autoencoder": "autoencoder (sequence)",
         "ngram+callset": "n-gram + call set", "ngram+autoencoder": "n-gram + autoencoder (sequence)",
         "masked": "autoencoder (masked)"}
ORDER = ["ngram", "stide", "autoencoder", "masked", "callset", "ngram+callset", "ngram+autoencoder"]


def binary():
    return os.environ.get("NGRAM_IDS") or shutil.which("ngram-ids") or "ngram-ids"


def eval_cmd(out, svc, secs, runs, extra):
    d = os.path.join(out, svc)
    return [binary(), "eval", "--format", "native", "--train", d + "/train", "--normal", d + "/normal",
            "--attack", d + "/attack", "--far", "0.01", "--slice", secs, "--runs", runs] + extra


def run(cmd):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("eval_records.py: %s failed (%d): %s" % (" ".join(cmd[:2]), p.returncode, p.stderr.strip()[-400:]))
    for line in p.stderr.splitlines():
        if line.startswith(("slice:", "autoencoder:")):
            print("  " + line[:300], file=sys.stderr)
    return json.loads(p.stdout)


def family(source):
    return os.path.basename(os.path.dirname(source)).rsplit("_", 1)[0]


def fmt_mttd(x, digits):
    return "–" if x is None else ("%." + str(digits) + "f") % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--slice", default="1")
    ap.add_argument("--services", default="python,nginx,redis")
    ap.add_argument("--runs", default="collapse")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.out, "manifest.json")))
    live = {r["service"]: {a["attack"]: a for a in r.get("attacks", [])} for r in manifest["results"]}
    rows, per_attack = [], []
    for svc in args.services.split(","):
        both = run(eval_cmd(args.out, svc, args.slice, args.runs, ["--detector", "both", "--callset"]))
        masked = run(eval_cmd(args.out, svc, args.slice, args.runs, ["--detector", "autoencoder", "--ae-input", "masked"]))
        dets = {d["detector"]: d for d in both["detectors"]}
        dets["masked"] = masked["detectors"][0]
        for k in ORDER:
            d = dets[k]
            rows.append("| %s | %s | %.4f | %.3f (%d of %d) | %.3f (%d of %d) | %d | %s | %s |" % (
                svc, NAMES[k], d["auc"], d["detection_rate"], d["detected"], d["attack_traces"], d["false_alarm_rate"],
                d["false_alarms"], d["normal_test_traces"], d["consecutive_false_alarms"],
                fmt_mttd(d["mean_time_to_detect"], 1), fmt_mttd(d["mean_seconds_to_detect"], 3)))
        attacks = sorted({family(a["source"]) for a in dets["ngram"]["attacks"]})
        for fam in attacks:
            cells = []
            for k in ["ngram", "stide", "autoencoder", "masked", "callset"]:
                a = next(x for x in dets[k]["attacks"] if family(x["source"]) == fam)
                if not a["detected"]:
                    cells.append("no")
                elif a["time_to_detect"] is None:
                    cells.append("yes, alarm before the attack")
                else:
                    cells.append("%d calls, %.3f s" % (a["time_to_detect"], a["seconds_to_detect"] or 0))
            lv = live.get(svc, {}).get(fam, {})
            lat = lv.get("live_latency_ms")
            cells.append("%s (%d alerts)" % ("%.0f ms" % lat if lat is not None else "no", lv.get("live_alerts", 0)))
            per_attack.append("| %s | %s%s | %d | %s |" % (
                svc, fam, "" if lv.get("effect", True) else " (did not work)",
                next(x for x in dets["ngram"]["attacks"] if family(x["source"]) == fam)["calls"], " | ".join(cells)))
    print("| service | detector | AUC | DR @1% | FAR @1% | CFA | MTTD (calls) | MTTD (s) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("| service | attack | calls in its slice | n-gram | STIDE | AE sequence | AE masked | call set | live rule (same run) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(per_attack))
    print()
    for r in manifest["results"]:
        if r["service"] not in args.services.split(","):
            continue
        h = r.get("heldout", {})
        print("- %s: training %s requests in %d runs; held-out %s requests (%s failed), the live rule's alerts in "
              "it: %s; attack runs' normal requests failed: %d" % (
                  r["service"], sum(t["load"]["requests"] for t in r.get("train", [])), len(r.get("train", [])),
                  h.get("load", {}).get("requests"), h.get("load", {}).get("failed"), h.get("live_alerts"),
                  sum(a["load"]["failed"] for a in r.get("attacks", []))))


if __name__ == "__main__":
    main()
