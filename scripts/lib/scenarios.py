"""Find the molecule scenarios and run them, once per Debian release each one asks for.

Every directory molecule/<name>/ with a molecule.yml is a scenario (so a new one cannot be left
out); its `driver.releases` (default: the base config's) lists the releases it runs on. Jobs run
on a few workers at once (--workers), and on one more (--extra) whenever the CPU sat idle while
the others waited; two releases of one scenario never overlap (they share container names). Each
job's output goes to a log file, printed whole when the job fails. The run ends with how idle the
CPU was over it.

    python scenarios.py list                   scenario@release, one a line
    python scenarios.py run [NAME[@REL] ...]   run all (or the named) jobs, print a summary
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOLECULE = ROOT / "molecule"
BASE = ROOT / ".config" / "molecule" / "config.yml"
# Each job's duration in a whole run on the 2-core CI machine: the order of a fresh clone's first
# run (longest first). A run's own durations (.cache/test-logs/durations.yml) take over after it.
DURATIONS = ROOT / ".config" / "molecule" / "durations.yml"
LOGS = ROOT / ".cache" / "test-logs"
# Molecule's log line at the end of each action ("INFO [name > action] Executed: ...", or with
# colours "INFO name ➜ action: Executed: ..."), not its summary's copy at the end of the run.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ACTION_DONE = re.compile(r"^INFO\s+\[?\S+ (?:>|➜) (\w+)\]?:? Executed: ")
ACTION_STARTED = re.compile(r"^INFO\s+\[?\S+ (?:>|➜) (\w+)\]?:? Executing$")
RECAP = re.compile(r"^\s*│?\s*(\S+)\s+: ok=\d+\s+changed=(\d+)")


def _releases(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(r) for r in (data.get("driver") or {}).get("releases") or []]


def scenarios():
    """{name: [releases]} for every scenario directory, in name order."""
    default = _releases(BASE) or ["13"]
    found = {}
    for molecule_yml in sorted(MOLECULE.glob("*/molecule.yml")):
        found[molecule_yml.parent.name] = _releases(molecule_yml) or default
    return found


def jobs(selection):
    """(scenario, release) pairs: all of them, or those named as NAME or NAME@RELEASE."""
    known = scenarios()
    if not selection:
        return [(name, rel) for name, rels in known.items() for rel in rels]
    picked = []
    for item in selection:
        name, _sep, rel = item.partition("@")
        if name not in known:
            raise SystemExit(f"unknown scenario '{name}' (known: {', '.join(known)})")
        if rel and rel not in known[name]:
            raise SystemExit(f"scenario '{name}' does not run on Debian {rel} ({known[name]})")
        picked += [(name, r) for r in ([rel] if rel else known[name])]
    return picked


def _platforms(name):
    data = yaml.safe_load((MOLECULE / name / "molecule.yml").read_text(encoding="utf-8")) or {}
    return max(1, len(data.get("platforms") or []))


def _weight(job, history):
    """Longest first: last run's duration when known (this checkout's, else DURATIONS), else by
    the scenario's size (a guess in seconds: the hosts it converges, and the whole stack for a
    tier)."""
    name, rel = job
    if f"{name}@{rel}" in history:
        return history[f"{name}@{rel}"]
    return 200 * _platforms(name) + (400 if name.startswith("tier_") else 0)


def _molecule_test(name, env, log, start):
    """`molecule test -s name` with its output in `log`; (rc, [[action, seconds], ...]).

    Molecule's `check` action only fails when the run fails. A `check` after the converge must
    also report changed=0 on every host (a converged host has nothing to change): a change there
    fails the job, named at the end of its log."""
    actions, mark = [], start
    current, converged, changes = None, False, {}
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(["molecule", "test", "-s", name], cwd=ROOT, env=env, text=True,
                                errors="replace", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in proc.stdout:
            out.write(line)
            plain = ANSI.sub("", line).rstrip("\n")
            if started := ACTION_STARTED.search(plain):
                current = started.group(1)
                converged = converged or current == "converge"
            elif (recap := RECAP.match(plain)) and current == "check" and converged and int(recap.group(2)):
                changes[recap.group(1)] = int(recap.group(2))
            if done := ACTION_DONE.search(plain):
                now = time.monotonic()
                actions.append([done.group(1), round(now - mark)])
                mark = now
        rc = proc.wait()
        if changes:
            out.write(f"\n==> --check on the converged hosts reported changes: {changes} (it must report changed=0)\n")
            rc = rc or 1
    return rc, actions


def _clean_slate(ephemeral):
    """Molecule's state from an earlier run of the job (it would make molecule skip the create
    step, which replaces any container an earlier run left). The test sequence has no leading
    destroy: this costs nothing, a destroy step a whole playbook run."""
    shutil.rmtree(ephemeral, ignore_errors=True)


def _spent(actions):
    return ", ".join(f"{action} {seconds}" for action, seconds in actions) or "no action finished"


def _cpu():
    """(idle, total) jiffies of all CPUs since boot (/proc/stat): idle includes iowait."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def _idle_since(mark):
    idle, total = _cpu()
    return (idle - mark[0]) / max(1, total - mark[1])


def run(selected, workers, extra=0, idle_threshold=0.4, window=20):
    """The jobs on `workers` threads, plus up to `extra` more that start a job only while the CPU
    was at least `idle_threshold` idle over the last `window` seconds (a job spends part of its
    time waiting: for a failover, a timer, a timeout) and return to waiting after it."""
    LOGS.mkdir(parents=True, exist_ok=True)
    history_file = LOGS / "durations.yml"
    history = {}
    for known in (DURATIONS, history_file):
        if known.exists():
            history.update(yaml.safe_load(known.read_text(encoding="utf-8")) or {})
    pending = sorted(selected, key=lambda j: -_weight(j, history))
    running, results, phases = set(), [], {}
    lock = threading.Condition()
    total = len(pending)

    def take(wait=True):
        with lock:
            while True:
                busy = {job[0] for job in running}
                for job in pending:
                    if job[0] not in busy:
                        pending.remove(job)
                        running.add(job)
                        return job
                if not pending or not wait:
                    return None
                lock.wait()

    def worker():
        while (job := take()) is not None:
            run_job(job)

    def opportunist():
        mark = _cpu()
        while True:
            with lock:
                if not pending:
                    return
            time.sleep(window)
            idle = _idle_since(mark)
            mark = _cpu()
            if idle >= idle_threshold and (job := take(wait=False)) is not None:
                print(f"==> the CPU was {idle:.0%} idle: one more job beside the others", flush=True)
                run_job(job)
                mark = _cpu()

    def run_job(job):
        name, rel = job
        label = f"{name}@{rel}"
        log = LOGS / f"{name}@{rel}.log"
        ephemeral = ROOT / ".cache" / "molecule" / label
        env = {**os.environ, "DJANGOPROD_RELEASE": rel, "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral)}
        _clean_slate(ephemeral)
        print(f"==> start  molecule test -s {name} (Debian {rel})", flush=True)
        start = time.monotonic()
        rc, actions = _molecule_test(name, env, log, start)
        took = round(time.monotonic() - start)
        with lock:
            running.discard(job)
            results.append((label, took, rc))
            history[label] = took
            phases[label] = actions
            state = "PASS" if rc == 0 else "FAIL"
            print(f"==> {state}   molecule test -s {name} (Debian {rel}) in {took}s "
                  f"({_spent(actions)}) [{len(results)}/{total}] log: {log.relative_to(ROOT)}",
                  flush=True)
            if rc != 0:
                sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
                print(f"==> end of log {label}", flush=True)
            lock.notify_all()

    suite_cpu = _cpu()
    threads = [threading.Thread(target=worker) for _worker in range(max(1, workers))]
    threads += [threading.Thread(target=opportunist) for _extra in range(max(0, extra))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"==> the CPU was {_idle_since(suite_cpu):.0%} idle over the scenarios", flush=True)
    history_file.write_text(yaml.safe_dump(history))
    (LOGS / "actions.yml").write_text(yaml.safe_dump(phases, sort_keys=True))
    for label, took, rc in sorted(results):
        print(f"{'PASS' if rc == 0 else 'FAIL'}  molecule {label} ({took}s: {_spent(phases[label])})")
    return sum(1 for result in results if result[2] != 0), len(results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    run_p = sub.add_parser("run")
    run_p.add_argument("names", nargs="*")
    run_p.add_argument("--workers", type=int, default=int(os.environ.get("DJANGOPROD_TEST_WORKERS", "2")))
    run_p.add_argument("--extra", type=int, default=int(os.environ.get("DJANGOPROD_TEST_EXTRA_WORKERS", "1")),
                       help="workers that start a job only while the CPU is idle (default 1)")
    run_p.add_argument("--summary", help="append 'PASS|FAIL label (s)' lines to this file")
    args = parser.parse_args()
    if args.cmd == "list":
        for name, rel in jobs([]):
            print(f"{name}@{rel}")
        return 0
    failed, count = run(jobs(args.names), args.workers, args.extra)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as handle:
            handle.write(f"{count - failed} {failed}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
