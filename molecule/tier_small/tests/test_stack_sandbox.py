"""The stack's services run sandboxed, and the sandboxes and Redis's ACL leave the stack working.

pytest runs this file after test_stack.py, whose requests, tasks and beat have gone through
Redis by then."""

import shlex

import pytest

from helpers.stack import exposure, journal, main_pid

APP = "demo"
REDIS_ADMIN = ("admin", "test-only-redis-admin-password")  # group_vars of the scenario

# Each unit the stack runs, and the highest systemd-analyze security exposure it may have.
UNITS = {
    "nginx.service": 2.6,
    f"{APP}.service": 1.4,
    f"{APP}-celery-worker.service": 1.4,
    f"{APP}-celery-beat.service": 1.4,
    "redis-server@cache.service": 1.2,
    "redis-server@broker.service": 1.2,
}


def _postgresql_unit(host):
    version = host.check_output("ls /etc/postgresql").split()[0]
    return f"postgresql@{version}-main.service"


@pytest.mark.parametrize("unit", [*UNITS, "postgresql"])
def test_unit_runs_sandboxed(host, unit):
    if unit == "postgresql":
        unit, limit = _postgresql_unit(host), 1.4
    else:
        limit = UNITS[unit]
    pid = main_pid(host, unit)
    assert pid, journal(host, unit)
    assert host.check_output(f"grep NoNewPrivs /proc/{pid}/status").split()[1] == "1"
    level = exposure(host, unit)
    print(f"systemd-analyze security {unit}: {level}")
    assert level <= limit, host.check_output(f"systemd-analyze security --no-pager {unit}")


def _celery(host, *args):
    """The app's celery command, as the app user with its environment."""
    unit = f"{APP}-celery-worker.service"
    exec_start = host.check_output(f"systemctl show -p ExecStart --value {unit}")
    # "{ path=/srv/.../bin/celery ; argv[]=/srv/.../bin/celery --app=... ; ... }"
    celery = next(word.rpartition("=")[2] for word in exec_start.split() if word.endswith("/bin/celery"))
    workdir = host.check_output(f"systemctl show -p WorkingDirectory --value {unit}")
    command = " ".join(shlex.quote(a) for a in [celery, f"--app={APP}", *args])
    return host.run(f"runuser -u {APP} -- sh -c 'set -a; . /etc/{APP}/env; cd {workdir} && {command}'")


def test_celery_control_works_through_the_broker(host):
    # inspect/control: a broadcast over the broker's pub/sub and reply queues.
    result = _celery(host, "inspect", "ping", "--timeout=10")
    assert result.rc == 0 and "pong" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("port", [6379, 6380], ids=["cache", "broker"])
def test_redis_refused_nothing_the_stack_sent(host, port):
    # After test_stack.py's traffic (cache, tasks and results, beat) and a readiness check and
    # a Celery inspect here: the application's ACL user was never refused a command.
    user, password = REDIS_ADMIN
    admin = f"redis-cli --no-auth-warning -p {port} --user {user} --pass {password}"
    host.run_test("curl -sk -o /dev/null --resolve demo.example.test:443:127.0.0.1 "
                  "https://demo.example.test/ready/")
    assert _celery(host, "inspect", "active", "--timeout=10").rc == 0
    log = host.check_output(f"{admin} ACL LOG")
    assert log == "", log
