"""The small tier, end to end: real requests through nginx, gunicorn, Django, PostgreSQL, Redis
and Celery on one host."""

import json
import os
import pathlib
import re
import subprocess
import time

import pytest

from helpers.stack import (
    Site,
    beat_send_times,
    celery_processes,
    fleet,
    install_helper,
    journal,
    main_pid,
    public_listeners,
    tcp_listeners,
    wildcards,
)

DOMAIN = "demo.example.test"
APP = "demo"
SOCKET = f"/run/{APP}/gunicorn.sock"
ACCESS_LOG = f"/var/log/nginx/{APP}.access.log"


@pytest.fixture(scope="module")
def site(host):
    return Site(host, DOMAIN)


def _access_log_lines(host, needle):
    return [line for line in host.file(ACCESS_LOG).content_string.splitlines() if needle in line]


def test_http_redirects_to_https(site):
    status, headers, _unused = site.request("GET", "/notes/1/?x=1", scheme="http")
    assert status == 301
    assert headers["location"] == f"https://{DOMAIN}/notes/1/?x=1"


def test_https_request_reaches_django_through_the_gunicorn_socket(host, site):
    status, body = site.json("GET", "/health/")
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["server"].startswith("gunicorn"), body
    # /ready/ is logged: its line names the unix socket as the upstream that answered.
    status, body = site.json("GET", "/ready/")
    assert status == 200, (body, journal(host, f"{APP}.service"))
    assert body == {"database": True, "cache": True, "broker": True}
    lines = _access_log_lines(host, '"GET /ready/')
    assert lines, "no access log line for /ready/"
    assert f'ua="unix:{SOCKET}"' in lines[-1], lines[-1]


def test_security_headers(site):
    status, headers, _unused = site.request("GET", "/health/")
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"


def test_admin_css_is_served_by_nginx_without_gunicorn(host, site):
    # The CSS the admin login page links to (hashed name from the static manifest).
    status, _unused, page = site.request("GET", "/admin/login/")
    assert status == 200
    match = re.search(r'href="(/static/admin/css/base(?:\.[0-9a-f]+)?\.css)"', page)
    assert match, page[:1000]
    path = match.group(1)
    status, headers, body = site.request("GET", path)
    assert status == 200
    assert headers.get("cache-control") == "max-age=2592000", headers  # nginx_static_expires: 30d
    # Collected into <release>/staticfiles (stack_static_root's default), served from current.
    on_disk = host.file(f"/srv/{APP}/current/staticfiles{path.removeprefix('/static')}").content_string
    assert body == on_disk
    line = _access_log_lines(host, f'"GET {path}')[-1]
    assert 'ua="-"' in line, line
    gunicorn_log = host.file(f"/var/log/{APP}/gunicorn-access.log").content_string
    assert path not in gunicorn_log


def test_the_projects_own_assets_are_collected_and_served(host, site):
    # The demo keeps its source assets in a top-level static/, as many projects do: STATIC_ROOT is
    # elsewhere, and what is collected from static/ is served by nginx under its hashed name.
    manifest = host.file(f"/srv/{APP}/current/staticfiles/staticfiles.json").content_string
    hashed = json.loads(manifest)["paths"]["demo/site.css"]
    status, _unused, body = site.request("GET", f"/static/{hashed}")
    assert status == 200
    assert body == host.file(f"/srv/{APP}/current/static/demo/site.css").content_string


def test_write_then_read_round_trip(host, site):
    text = f"round trip {time.time()}"
    status, created = site.json("POST", "/notes/", {"text": text})
    assert status == 201, created
    status, fetched = site.json("GET", f"/notes/{created['id']}/")
    assert status == 200 and fetched["text"] == text
    with host.sudo("postgres"):
        row = host.check_output(
            f"psql -d {APP} -Atc 'SELECT text FROM core_note WHERE id = {int(created['id'])}'")
    assert row == text


def test_celery_task_sent_by_the_app_completes(host, site):
    status, sent = site.json("POST", "/tasks/add/", {"x": 19, "y": 23})
    assert status == 202, sent
    state = {}
    for _unused in range(60):
        status, state = site.json("GET", f"/tasks/{sent['task_id']}/")
        if state.get("state") == "SUCCESS":
            break
        time.sleep(0.5)
    assert state.get("state") == "SUCCESS", (state, journal(host, f"{APP}-celery-worker.service"))
    assert state["result"] == 42


def test_beat_heartbeats_arrive(host, site):
    _unused, first = site.json("GET", "/heartbeats/")
    time.sleep(8)
    _unused, second = site.json("GET", "/heartbeats/")
    assert second["count"] > first["count"], (first, second, journal(host, f"{APP}-celery-beat.service"))
    # Beat sent them once per schedule (HEARTBEAT_SECONDS: 3 in the test inventory), never two
    # sends closer together, as a second beat would.
    sent = beat_send_times(host, f"/var/log/{APP}/celery-beat.log", "record-heartbeat")
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(sent[-4:], sent[-3:])]
    assert len(gaps) == 3 and min(gaps) >= 2.9, (gaps, journal(host, f"{APP}-celery-beat.service"))


def test_media_upload_is_served_by_nginx(host, site):
    host.run_test("head -c 300000 /dev/urandom > /tmp/upload.bin")
    status, _unused, body = site.request("POST", "/upload/", form_file="/tmp/upload.bin")
    assert status == 201, body
    uploaded = json.loads(body)
    assert uploaded["size"] == 300000
    status, headers, _unused = site.request("GET", uploaded["url"], body=False)
    assert status == 200
    assert headers["content-length"] == "300000"
    line = _access_log_lines(host, f'"GET {uploaded["url"]}')[-1]
    assert 'ua="-"' in line


def test_socket_unit_holds_the_socket(host):
    socket = host.service(f"{APP}.socket")
    assert socket.is_enabled
    assert socket.is_running
    listen = host.check_output(f"systemctl show {APP}.socket -p Listen --value")
    assert SOCKET in listen
    assert host.socket(f"unix://{SOCKET}").is_listening


def test_restart_under_load_drops_no_request(host):
    script = install_helper(host, "loadcheck.py")
    out = host.run(
        f"python3 {script} --host {DOMAIN} --path /health/ --threads 8 --seconds 8 "
        f"--restart-after 2 --restart-unit {APP}.service")
    assert out.rc == 0, out.stderr
    result = json.loads(out.stdout)
    print("restart under load:", result)
    assert result["during_restart"] > 0, result
    assert result["failed"] == 0, (result, journal(host, f"{APP}.service"))
    assert host.service(f"{APP}.service").is_running


def test_logrotate_and_processes_keep_writing(host, site):
    host.run_test(f"logrotate -f /etc/logrotate.d/{APP} /etc/logrotate.d/{APP}-gunicorn")
    for name in ("gunicorn-access.log", "celery-worker.log"):
        assert host.file(f"/var/log/{APP}/{name}.1").exists, name
    # New traffic and a new task after the rotation land in the new files.
    site.json("GET", "/ready/")
    site.json("POST", "/notes/", {"text": "after rotation"})
    status, _unused = site.json("POST", "/tasks/add/", {"x": 1, "y": 1})
    assert status == 202
    deadline = time.time() + 30
    sizes = {}
    while time.time() < deadline:
        sizes = {name: host.file(f"/var/log/{APP}/{name}").size
                 for name in ("gunicorn-access.log", "app.log", "celery-worker.log")}
        if all(sizes.values()):
            break
        time.sleep(1)
    assert all(sizes.values()), sizes
    owner = host.file(f"/var/log/{APP}/gunicorn-access.log")
    assert (owner.user, owner.group) == (APP, APP)


def test_check_deploy_passes_on_deployed_settings(host):
    # Everything but security.W021 (HSTS preload, which the stack keeps off; the deploy's own
    # check leaves it out, django_check_deploy_silenced): a check at WARNING finds nothing else.
    out = host.run(f"/usr/local/bin/{APP}-manage check --deploy --fail-level WARNING")
    found = set(re.findall(r"\(([a-z0-9_]+\.[CEWI]\d+)\)", out.stdout + out.stderr))
    assert found == {"security.W021"}, out.stdout + out.stderr
    assert host.run(f"/usr/local/bin/{APP}-manage check --deploy --fail-level ERROR").rc == 0


def test_exactly_one_beat_in_the_fleet():
    """One beat process among all the fleet's processes: the main process of the beat unit on
    the host of group beat (the test runs once, over every host of the inventory)."""
    beat_host = fleet("beat")
    assert len(beat_host) == 1, beat_host
    (beat_name,) = beat_host
    beats = sorted((name, pid) for name, node in fleet().items()
                   for pid, (_unused, command) in celery_processes(node).items() if command == "beat")
    expected = main_pid(beat_host[beat_name], f"{APP}-celery-beat.service")
    assert beats == [(beat_name, expected)], (
        beats, expected, journal(beat_host[beat_name], f"{APP}-celery-beat.service"))


def test_worker_runs_its_pool(host):
    unit = f"{APP}-celery-worker.service"
    pid = main_pid(host, unit)
    assert pid, journal(host, unit)
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    concurrency = int(re.search(r"--concurrency=(\d+)", cmdline).group(1))
    processes = celery_processes(host)
    pool = [p for p, (ppid, command) in processes.items() if ppid == pid and command == "worker"]
    assert processes[pid][1] == "worker", processes
    assert len(pool) == concurrency, (processes, journal(host, unit))


def test_only_expected_ports_listen_publicly(host):
    # The whole list of what listens on a wildcard or public address, against the exact set:
    # nginx's 80 and 443 (on IPv6 too where the host has it), sshd's 22 where sshd is installed.
    ports = [80, 443] + ([22] if host.file("/usr/sbin/sshd").exists else [])
    expected = {(address, port) for address in wildcards(host) for port in ports}
    public = public_listeners(host)
    leaked = {(address, port) for address, port in public if port in (5432, 6379, 6380, 8000)}
    assert not leaked, (leaked, tcp_listeners(host))
    assert public == expected, tcp_listeners(host)


def test_check_mode_on_the_converged_host_changes_nothing():
    """ansible-playbook --check --diff of the same playbook reports changed=0, runs clean, and
    makes no apt or systemd call."""
    scenario = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    playbook = (scenario / "../../playbooks/small.yml").resolve()
    inventory_dir = str(pathlib.Path(inventory).parent)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory_dir, str(playbook), "--check", "--diff"],
        capture_output=True, text=True, timeout=900, check=False, env=env)
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    counts = dict(re.findall(r"(\w+)=(\d+)", recap))
    assert counts.get("changed") == "0", recap
    assert counts.get("failed") == "0", recap
    # With nothing to change, each role only reads and compares: no task that installs packages or
    # starts, stops, enables, masks, reloads or restarts a unit runs (the probes found them all as
    # wanted), so a no-change run makes no apt or systemd call.
    # (A profiling callback's timestamp line may follow a banner.)
    ran = re.findall(r"^(?:TASK|RUNNING HANDLER) \[(?:[\w.]+ : )?([^\]]*)\] \**\n"
                     r"(?:(?!TASK \[|RUNNING HANDLER \[|skipping: ).*\n){0,2}(?:ok|changed): ",
                     proc.stdout, re.MULTILINE)
    acting = [name for name in ran if re.match(r"(Enable|Start|Stop|Restart|Reload|Install|Mask)\b", name)]
    assert ran and acting == [], acting


def test_no_failed_units(host):
    assert host.check_output("systemctl list-units --state=failed --no-legend --plain") == ""
