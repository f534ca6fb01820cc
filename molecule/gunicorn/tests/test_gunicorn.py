"""Behaviour of gunicorn under systemd socket activation (tests run in file order)."""

import base64
import json
import pathlib
import re
import time

SOCKET = "/run/demo/gunicorn.sock"
CURL = f"curl -sS --max-time 30 --unix-socket {SOCKET}"
ACCESS_LOG = "/var/log/demo/gunicorn-access.log"


def journal(host, unit="demo.service"):
    return host.run(f"journalctl -u {unit} -n 50 --no-pager").stdout


def main_pid(host):
    return int(host.check_output("systemctl show -p MainPID --value demo.service"))


def worker_pids(host, pid):
    out = host.run(f"pgrep -P {pid}").stdout.split()
    return sorted(int(p) for p in out)


def wait_for(predicate, timeout=15.0, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def expected_workers(host):
    conf = host.file("/etc/gunicorn/demo.conf.py").content_string
    return int(re.search(r"^workers = (\d+)$", conf, re.M).group(1))


def test_socket_listens_and_service_waits_for_a_connection(host):
    host.run_test("systemctl stop demo.service")
    socket_unit = host.service("demo.socket")
    assert socket_unit.is_enabled
    assert socket_unit.is_running, journal(host, "demo.socket")
    listening = host.check_output("ss -xlnH")
    assert SOCKET in listening, listening
    state = host.run("systemctl is-active demo.service").stdout.strip()
    assert state == "inactive", state


def test_first_request_starts_gunicorn(host):
    out = host.run(f"{CURL} -w '\\n%{{http_code}}' http://localhost/")
    assert out.rc == 0, out.stderr + journal(host)
    body, code = out.stdout.rsplit("\n", 1)
    assert code == "200", out.stdout + journal(host)
    assert "server=gunicorn/" in body, body
    assert "env=hello" in body, body  # EnvironmentFile= is read
    assert host.service("demo.service").is_running, journal(host)


def test_socket_file_belongs_to_the_socket_unit(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("demo", "www-data", 0o660)


def test_workers_match_the_sizing(host):
    cpus = int(host.check_output("nproc"))
    mem_mb = int(host.check_output("awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"))
    expected = expected_workers(host)
    assert expected == min(2 * cpus + 1, max(1, mem_mb // 2 // 150))
    pid = main_pid(host)
    workers = wait_for(lambda: len(worker_pids(host, pid)) == expected and worker_pids(host, pid))
    assert workers and len(workers) == expected, (worker_pids(host, pid), journal(host))


def test_service_runs_sandboxed_as_the_app_user(host):
    props = host.check_output(
        "systemctl show demo.service -p User -p ProtectSystem -p PrivateTmp -p NoNewPrivileges "
        "-p TimeoutStopUSec -p KillMode -p Restart")
    assert "User=demo" in props
    assert "ProtectSystem=strict" in props
    assert "PrivateTmp=yes" in props
    assert "NoNewPrivileges=yes" in props
    assert "TimeoutStopUSec=15s" in props  # graceful_timeout 10 + 5
    assert "KillMode=mixed" in props
    assert "Restart=on-failure" in props
    pid = main_pid(host)
    assert host.check_output(f"ps -o user= -p {pid}") == "demo"
    # ProtectSystem=strict: the root file system is read-only in the service's namespace.
    root_options = host.check_output(f"awk '$5 == \"/\" {{print $6}}' /proc/{pid}/mountinfo").split()
    assert root_options and all(o.split(",")[0] == "ro" for o in root_options), root_options
    exposure = host.check_output("systemd-analyze security --no-pager demo.service | tail -n 1")
    level = float(re.search(r"level for demo.service: (\d+\.\d+)", exposure).group(1))
    assert level <= 2.0, host.check_output("systemd-analyze security --no-pager demo.service")


def test_restart_under_load_drops_no_request(host):
    script = (pathlib.Path(__file__).parent / "load_unix.py").read_bytes()
    encoded = base64.b64encode(script).decode()
    host.run_test(f"echo {encoded} | base64 -d > /tmp/load_unix.py")
    out = host.run(f"timeout 120 python3 /tmp/load_unix.py {SOCKET} 200 8 40 demo.service")
    assert out.rc == 0, out.stdout + out.stderr + journal(host)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("restart under load:", result)
    assert result["failed"] == 0, (result, journal(host))
    assert result["ok"] == 200, result
    # Answers came from the old workers and from the new ones: the restart happened under load.
    assert set(result["pids_after"]) - set(result["pids_before"]), result
    assert host.file(SOCKET).is_socket
    assert host.service("demo.socket").is_running


def test_reload_keeps_master_and_replaces_workers(host):
    pid = main_pid(host)
    before = wait_for(lambda: worker_pids(host, pid))
    host.run_test("systemctl reload demo.service")
    after = wait_for(lambda: (lambda w: w if w and not set(w) & set(before) else None)(worker_pids(host, pid)))
    assert main_pid(host) == pid, journal(host)
    assert after and not set(after) & set(before), (before, worker_pids(host, pid), journal(host))
    assert host.run(f"{CURL} -f http://localhost/").rc == 0


def test_access_log_records_requests_with_timing(host):
    host.run_test(f"{CURL} -f http://localhost/access-log-probe")
    line = wait_for(lambda: [
        x for x in host.file(ACCESS_LOG).content_string.splitlines() if "/access-log-probe" in x])
    assert line, host.run(f"tail -n 5 {ACCESS_LOG}").stdout + journal(host)
    assert re.search(r'"GET /access-log-probe HTTP/1.1" 200 .* rt=\d+\.\d+', line[-1]), line[-1]


def test_usr1_reopens_logs(host):
    host.run_test(f"mv {ACCESS_LOG} {ACCESS_LOG}.1")
    host.run_test(f"kill -USR1 {main_pid(host)}")

    def reopened():
        host.run(f"{CURL} http://localhost/after-rotation")
        return host.file(ACCESS_LOG).exists and "/after-rotation" in host.file(ACCESS_LOG).content_string

    assert wait_for(reopened, timeout=10, interval=0.5), journal(host)
    assert host.file(ACCESS_LOG).user == "demo"
