"""Logs rotate and the writers keep writing to the new files."""
import pathlib
import time

import pytest

from helpers.stack import journal, playbook, task_ran

WRITERS = {"demo-app": "demo-app-writer.service", "demo-gunicorn": "demo.service"}
LOGS = {"demo-app": "/var/log/demo/app.log", "demo-gunicorn": "/var/log/demo/gunicorn-access.log"}


def inode_size(host, path):
    out = host.run(f"stat -c '%i %s' {path}")
    if out.rc != 0:
        return None, 0
    inode, size = out.stdout.split()
    return int(inode), int(size)


@pytest.mark.parametrize("policy", ["demo-app", "demo-gunicorn"])
def test_policy_file_validates(host, policy):
    result = host.run(f"logrotate --debug /etc/logrotate.d/{policy}")
    assert result.rc == 0, result.stderr


def test_whole_configuration_validates(host):
    result = host.run("logrotate --debug /etc/logrotate.conf")
    assert result.rc == 0, result.stderr


def test_retired_policy_is_removed(host):
    assert not host.file("/etc/logrotate.d/demo-old").exists


@pytest.mark.parametrize("policy", ["demo-app", "demo-gunicorn"])
def test_rotation_keeps_the_writer_writing_to_the_new_file(host, policy):
    log, unit = LOGS[policy], WRITERS[policy]
    assert host.service(unit).is_running, journal(host, unit)
    old_inode, _unused = inode_size(host, log)
    assert old_inode is not None, journal(host, unit)
    result = host.run(f"logrotate -v -f /etc/logrotate.d/{policy}")
    assert result.rc == 0, result.stderr + journal(host, unit)
    rotated = host.file(f"{log}.1")
    assert rotated.exists, result.stderr
    assert rotated.user == "demo"
    new = host.file(log)
    assert (new.user, new.group, new.mode) == ("demo", "demo", 0o640)  # `create 0640 demo demo`
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        inode, size = inode_size(host, log)
        if inode != old_inode and size > 0:
            break
        time.sleep(0.1)
    assert inode != old_inode and size > 0, (
        f"{unit} did not write to the new {log}\n{result.stderr}\n" + journal(host, unit))
    # and the rotated file no longer grows: the writer let go of it
    _unused, before = inode_size(host, f"{log}.1")
    time.sleep(0.6)
    _unused, after = inode_size(host, f"{log}.1")
    assert before == after, journal(host, unit)
    assert host.service(unit).is_running, journal(host, unit)


def test_timer_is_enabled_and_the_service_runs_clean(host):
    timer = host.service("logrotate.timer")
    assert timer.is_enabled and timer.is_running, journal(host, "logrotate.timer")
    result = host.run("systemctl start logrotate.service")
    assert result.rc == 0, result.stderr + journal(host, "logrotate.service")
    assert host.check_output("systemctl show -p Result --value logrotate.service") == "success", \
        journal(host, "logrotate.service")


def test_the_service_tag_alone_reads_the_timer_and_starts_it(host, tmp_path):
    """With --tags logrotate_service the policies' call (which reads the timer's state first) is
    left out: the service task reads the state itself and starts a stopped timer."""
    assert host.run("systemctl stop logrotate.timer").rc == 0
    converge = str(pathlib.Path(__file__).resolve().parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, converge, tags="logrotate_service")
    assert rc == 0, out[-3000:]
    assert task_ran(out, "Read the timer's state"), out[-3000:]
    assert min(changed.values()) >= 1, out[-3000:]
    assert host.service("logrotate.timer").is_running, journal(host, "logrotate.timer")
