"""Behaviour of the celery worker and beat units (tests run in file order)."""

import os
import pathlib
import re
import shutil
import subprocess
import time
import uuid

from helpers.stack import beat_send_times, celery_processes, journal, main_pid, playbook, task_ran, wait_for

WORKER = "demo-celery-worker.service"
BEAT = "demo-celery-beat.service"
PYTHON = "/srv/demo/current/.venv/bin/python"
WORKER_LOG = "/var/log/demo/celery-worker.log"
SCENARIO = pathlib.Path(__file__).resolve().parents[1]


def client(host, code, timeout=60):
    """Run Python code as the app user with the app importable (a producer on this host)."""
    return host.run(
        f"cd /srv/demo/current && timeout {timeout} runuser -u demo -- "
        f"env PYTHONPATH=/srv/demo/current {PYTHON} -c '{code}'")


def seconds(value):
    """systemd's "5min 30s" / "45s" to seconds."""
    parts = {unit: int(num) for num, unit in re.findall(r"(\d+)(min|s)\b", value)}
    return parts.get("min", 0) * 60 + parts.get("s", 0)


def test_worker_runs_a_task(host):
    assert host.service(WORKER).is_enabled
    assert host.service(WORKER).is_running, journal(host, WORKER)
    out = client(host, "import demo; print(demo.add.delay(19, 23).get(timeout=30))")
    assert out.rc == 0, out.stdout + out.stderr + journal(host, WORKER)
    assert out.stdout.strip() == "42"


def test_worker_command_line_user_and_pool(host):
    pid = main_pid(host, WORKER)
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    # celery_concurrency defaults to the host's vCPU count (the fact the role read).
    cpus = host.ansible("setup", "filter=ansible_processor_vcpus", check=False)["ansible_facts"][
        "ansible_processor_vcpus"]
    for option in (f"--concurrency={cpus} ", "--max-tasks-per-child=1000", "--time-limit=300",
                   "--soft-time-limit=240", "--queues=celery", "--loglevel=INFO",
                   f"--logfile={WORKER_LOG}"):
        assert option in cmdline + " ", cmdline
    assert host.check_output(f"ps -o user= -p {pid}") == "demo"
    # The prefork pool: exactly `concurrency` children of the main process, all of them workers.
    deadline = time.monotonic() + 15
    while True:
        processes = celery_processes(host)
        pool = sorted(p for p, (ppid, _unused) in processes.items() if ppid == pid)
        if len(pool) == cpus or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert processes[pid][1] == "worker", processes
    assert len(pool) == cpus, (processes, journal(host, WORKER))
    assert {processes[p][1] for p in pool} == {"worker"}, processes


def test_exactly_one_beat_process(host):
    beats = [pid for pid, (_unused, command) in celery_processes(host).items() if command == "beat"]
    assert beats == [main_pid(host, BEAT)], (beats, journal(host, BEAT))


def test_beat_writes_heartbeats(host):
    assert host.service(BEAT).is_enabled
    assert host.service(BEAT).is_running, journal(host, BEAT)

    def count():
        return int(host.run("cat /var/lib/demo/heartbeat 2>/dev/null | wc -l").stdout.strip() or 0)

    first = count()
    time.sleep(6.5)
    second = count()
    assert second - first >= 2, (first, second, journal(host, BEAT), journal(host, WORKER))
    assert host.file("/var/lib/demo/celerybeat-schedule").user == "demo"
    # One beat sends the heartbeat once per 2 s schedule: never two sends closer than that.
    sent = beat_send_times(host, "/var/log/demo/celery-beat.log", "heartbeat")
    assert len(sent) >= 4, (sent, journal(host, BEAT))
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(sent[-4:], sent[-3:])]
    assert min(gaps) >= 1.9, gaps


def test_stop_timeout_is_celery_stop_timeout(host):
    props = host.check_output(f"systemctl show {WORKER} -p TimeoutStopUSec -p KillMode -p KillSignal "
                              "-p Restart -p ExecStart")
    limit = int(re.search(r"--time-limit=(\d+)", props).group(1))
    timeout = re.search(r"TimeoutStopUSec=(.*)", props).group(1)
    assert seconds(timeout) == limit + 30, props  # the default celery_stop_timeout
    assert "KillMode=mixed" in props
    assert "KillSignal=15" in props
    assert "Restart=on-failure" in props


def test_restart_is_a_warm_shutdown(host):
    marker = f"/var/lib/demo/markers/{uuid.uuid4().hex}"
    send = client(host, f"import demo; print(demo.slow.delay(5, \"{marker}\").id)")
    assert send.rc == 0, send.stderr
    task_id = send.stdout.strip()
    deadline = time.monotonic() + 30
    while not host.file(f"{marker}.started").exists:
        assert time.monotonic() < deadline, "the slow task did not start\n" + journal(host, WORKER)
        time.sleep(0.3)
    began = time.monotonic()
    host.run_test(f"systemctl restart {WORKER}")
    took = time.monotonic() - began
    # The stop waited for the running task, which completed before the old worker exited.
    assert host.file(marker).exists, (took, journal(host, WORKER))
    assert took >= 2, took
    out = client(host, f"import demo; print(demo.app.AsyncResult(\"{task_id}\").get(timeout=30))")
    assert out.stdout.strip() == "slept", out.stdout + out.stderr + journal(host, WORKER)
    assert "Warm shutdown" in journal(host, WORKER)  # celery prints it on stdout, not in its log file
    assert host.service(WORKER).is_running, journal(host, WORKER)


def test_worker_logs_to_the_log_file(host):
    log = host.file(WORKER_LOG)
    assert log.user == "demo"
    assert log.contains("demo.add")
    assert log.contains("succeeded")


def test_guard_refuses_two_beat_hosts(host):
    """The role's guard (tasks/guard.yml), run on the controller against fake hosts."""
    playbook = shutil.which("ansible-playbook")
    assert playbook
    cmd = [playbook, "-i", "localhost,", str(SCENARIO / "beat_guard.yml"), "--check"]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")

    two = subprocess.run(cmd + ["-e", '{"beat_guard_claimants": ["beat-a", "beat-b"]}'],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    # Failures may go to stderr (molecule's ansible.cfg sets display_failed_stderr).
    out = two.stdout + two.stderr
    assert two.returncode != 0, out
    assert "celery_beat_enabled is true on 2 hosts of the play (beat-a, beat-b)" in " ".join(out.split()), out

    one = subprocess.run(cmd + ["-e", '{"beat_guard_claimants": ["beat-a"]}'],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert one.returncode == 0, one.stdout + one.stderr


def test_without_the_config_tag_the_service_reads_the_units_and_starts_them(host, tmp_path):
    """With --skip-tags celery_config the configuration's call (which reads the units' state
    first) is left out: the service tasks read the state themselves and start a stopped worker."""
    assert host.run(f"systemctl stop {WORKER}").rc == 0
    rc, out, changed = playbook(tmp_path, str(SCENARIO / "converge.yml"), env={"ANSIBLE_SKIP_TAGS": "celery_config"})
    assert rc == 0, out[-3000:]
    assert task_ran(out, "Read the worker and beat units' state"), out[-3000:]
    assert min(changed.values()) >= 1, out[-3000:]
    assert wait_for(lambda: host.service(WORKER).is_running), journal(host, WORKER)
