"""Behaviour of gunicorn under systemd socket activation (tests run in file order)."""

import json
import pathlib
import re

from helpers.stack import install_helper, journal, main_pid, playbook, public_listeners, sizing, task_ran, tcp_listeners
from helpers.stack import wait_for as _wait_for

SERVICE = "demo.service"
SOCKET = "/run/demo/gunicorn.sock"
CURL = f"curl -sS --max-time 30 --unix-socket {SOCKET}"
ACCESS_LOG = "/var/log/demo/gunicorn-access.log"


def worker_pids(host, pid):
    out = host.run(f"pgrep -P {pid}").stdout.split()
    return sorted(int(p) for p in out)


def wait_for(predicate, timeout=15.0, interval=0.3):
    return _wait_for(predicate, timeout=timeout, interval=interval)


def expected_workers(host):
    conf = host.file("/etc/gunicorn/demo.conf.py").content_string
    return int(re.search(r"^workers = (\d+)$", conf, re.MULTILINE).group(1))


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
    assert out.rc == 0, out.stderr + journal(host, SERVICE)
    body, code = out.stdout.rsplit("\n", 1)
    assert code == "200", out.stdout + journal(host, SERVICE)
    assert "server=gunicorn/" in body, body
    assert "env=hello" in body, body  # EnvironmentFile= is read
    assert host.service("demo.service").is_running, journal(host, SERVICE)


def test_socket_file_belongs_to_the_socket_unit(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("demo", "www-data", 0o660)


def test_no_tcp_listener_in_unix_socket_mode(host):
    # gunicorn_bind is the unix socket: nothing on this host listens on a public address.
    assert public_listeners(host) == set(), tcp_listeners(host)


def test_workers_match_the_sizing(host):
    # The role sizes from these facts through the collection's filter; so does the test.
    facts = host.ansible("setup", "filter=ansible_processor_vcpus,ansible_memtotal_mb",
                         check=False)["ansible_facts"]
    expected = expected_workers(host)
    assert expected == sizing().gunicorn_workers(facts["ansible_processor_vcpus"], facts["ansible_memtotal_mb"])
    pid = main_pid(host, SERVICE)
    workers = wait_for(lambda: len(worker_pids(host, pid)) == expected and worker_pids(host, pid))
    assert workers and len(workers) == expected, (worker_pids(host, pid), journal(host, SERVICE))


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
    pid = main_pid(host, SERVICE)
    assert host.check_output(f"ps -o user= -p {pid}") == "demo"
    # ProtectSystem=strict: the root file system is read-only in the service's namespace.
    root_options = host.check_output(f"awk '$5 == \"/\" {{print $6}}' /proc/{pid}/mountinfo").split()
    assert root_options and all(o.split(",")[0] == "ro" for o in root_options), root_options
    exposure = host.check_output("systemd-analyze security --no-pager demo.service | tail -n 1")
    level = float(re.search(r"level for demo.service: (\d+\.\d+)", exposure).group(1))
    assert level <= 2.0, host.check_output("systemd-analyze security --no-pager demo.service")


def test_restart_under_load_drops_no_request(host):
    script = install_helper(host, "loadcheck.py")
    out = host.run(
        f"timeout 120 python3 {script} --unix-socket {SOCKET} --path '/?sleep=0.02' --threads 8 "
        "--max-requests 200 --seconds 60 --timeout 30 --restart-after-requests 40 "
        "--restart-unit demo.service --responder 'pid=(\\d+)'")
    assert out.rc == 0, out.stdout + out.stderr + journal(host, SERVICE)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("restart under load:", result)
    assert result["failed"] == 0, (result, journal(host, SERVICE))
    assert result["sent"] == result["ok"] == 200, result
    assert result["during_restart"] > 0, result
    # Answers came from the old workers and from the new ones: the restart happened under load.
    assert set(result["responders_after"]) - set(result["responders_before"]), result
    assert host.file(SOCKET).is_socket
    assert host.service("demo.socket").is_running


def test_reload_keeps_master_and_replaces_workers(host):
    pid = main_pid(host, SERVICE)
    before = wait_for(lambda: worker_pids(host, pid))
    host.run_test("systemctl reload demo.service")

    def replaced():
        workers = worker_pids(host, pid)
        return workers if workers and not set(workers) & set(before) else None

    after = wait_for(replaced)
    assert main_pid(host, SERVICE) == pid, journal(host, SERVICE)
    assert after and not set(after) & set(before), (before, worker_pids(host, pid), journal(host, SERVICE))
    assert host.run(f"{CURL} -f http://localhost/").rc == 0


def test_access_log_records_requests_with_timing(host):
    host.run_test(f"{CURL} -f http://localhost/access-log-probe")
    line = wait_for(lambda: [
        x for x in host.file(ACCESS_LOG).content_string.splitlines() if "/access-log-probe" in x])
    assert line, host.run(f"tail -n 5 {ACCESS_LOG}").stdout + journal(host, SERVICE)
    assert re.search(r'"GET /access-log-probe HTTP/1.1" 200 .* rt=\d+\.\d+', line[-1]), line[-1]


def test_usr1_reopens_logs(host):
    host.run_test(f"mv {ACCESS_LOG} {ACCESS_LOG}.1")
    host.run_test(f"kill -USR1 {main_pid(host, SERVICE)}")

    def reopened():
        host.run(f"{CURL} http://localhost/after-rotation")
        return host.file(ACCESS_LOG).exists and "/after-rotation" in host.file(ACCESS_LOG).content_string

    assert wait_for(reopened, timeout=10, interval=0.5), journal(host, SERVICE)
    assert host.file(ACCESS_LOG).user == "demo"


def test_control_socket_lives_in_the_runtime_directory(host):
    """gunicorn 25.1+ opens a control socket; the sandbox keeps the home read-only, so it lives
    in the unit's runtime directory, where only the app user reaches it, and no start logs an error."""
    host.run_test(f"{CURL} -f http://localhost/")
    control = "/run/demo-gunicorn/control.sock"
    assert wait_for(lambda: host.file(control).exists), journal(host, SERVICE)
    sock = host.file(control)
    assert sock.is_socket and (sock.user, sock.mode) == ("demo", 0o600), (sock.user, oct(sock.mode))
    out = host.run(f"runuser -u demo -- /srv/demo/current/.venv/bin/gunicornc -s {control} -c 'show workers' -j")
    assert out.rc == 0, out.stdout + out.stderr
    assert len(json.loads(out.stdout)["workers"]) == expected_workers(host), out.stdout
    errors = host.file("/var/log/demo/gunicorn-error.log").content_string
    assert "Control server error" not in errors, errors[-2000:]


def test_a_worker_class_the_virtualenv_lacks_is_refused_before_the_config_is_written(host, tmp_path):
    """gunicorn of the virtualenv reads the candidate config and loads its worker class before it
    replaces the live one: a class whose package is not installed fails the run, and the live
    config and the serving master stay as they were."""
    conf = "/etc/gunicorn/demo.conf.py"
    before = host.file(conf).sha256sum
    assert host.run(f"{CURL} http://localhost/").rc == 0
    pid = main_pid(host, SERVICE)
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, _changed = playbook(tmp_path, converge, {"gunicorn_worker_class": "uvicorn.workers.UvicornWorker"})
    assert rc != 0 and "the new content failed validation" in out, out[-3000:]
    assert host.file(conf).sha256sum == before
    assert main_pid(host, SERVICE) == pid
    assert host.run(f"{CURL} http://localhost/").rc == 0, journal(host, SERVICE)


def test_without_the_config_tag_the_service_reads_the_socket_and_starts_it(host, tmp_path):
    """With --skip-tags gunicorn_config the configuration's call (which reads the socket's state
    first) is left out: the service tasks read the state themselves and start a stopped socket."""
    assert host.run("systemctl stop demo.socket demo.service").rc == 0
    assert not host.socket("unix://" + SOCKET).is_listening
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, converge, env={"ANSIBLE_SKIP_TAGS": "gunicorn_config"})
    assert rc == 0, out[-3000:]
    assert task_ran(out, "Read the socket unit's state"), out[-3000:]
    assert min(changed.values()) >= 1, out[-3000:]
    assert wait_for(lambda: host.socket("unix://" + SOCKET).is_listening), journal(host, "demo.socket")
    assert host.run(f"{CURL} http://localhost/").rc == 0, journal(host, SERVICE)


def test_a_new_configuration_restarts_only_a_service_that_ran(host, tmp_path):
    """A changed configuration restarts gunicorn only when it ran when the role looked at its
    units: a stopped service is not asked about nor started (the next connection starts it with the
    new file); a running one is restarted onto the new file."""
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    conf = "/etc/gunicorn/demo.conf.py"
    assert host.run(f"systemctl stop {SERVICE}").rc == 0
    rc, out, changed = playbook(tmp_path, converge, {"gunicorn_keepalive": 7})
    assert rc == 0 and min(changed.values()) >= 1, out[-3000:]
    assert "keepalive = 7" in host.file(conf).content_string
    assert not task_ran(out, "Check whether gunicorn is running"), out[-3000:]
    assert not task_ran(out, "Restart gunicorn"), out[-3000:]
    assert main_pid(host, SERVICE) == 0, journal(host, SERVICE)
    assert host.run(f"{CURL} http://localhost/").rc == 0, journal(host, SERVICE)
    started = main_pid(host, SERVICE)
    assert started != 0
    # The default again, with the service running: it restarts.
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and min(changed.values()) >= 1, out[-3000:]
    assert "keepalive = 5" in host.file(conf).content_string
    assert task_ran(out, "Check whether gunicorn is running") and task_ran(out, "Restart gunicorn"), out[-3000:]
    assert wait_for(lambda: main_pid(host, SERVICE) not in (0, started)), journal(host, SERVICE)
    assert host.run(f"{CURL} http://localhost/").rc == 0, journal(host, SERVICE)
