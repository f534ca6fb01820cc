"""The first converge installs the packages of the host's roles in one apt transaction
(common_packages_stack) and starts nginx and PostgreSQL once, configured: Debian's packages do not
start them with their defaults at install (policy-rc.d), nor Debian's stock Redis service, which
the redis role masks."""

import re


def apt_transactions(host):
    """[{package: version}] per apt run in /var/log/apt/history.log, oldest first."""
    text = host.file("/var/log/apt/history.log").content_string
    runs = []
    for block in text.split("\n\n"):
        install = re.search(r"^Install: (.*)$", block, re.MULTILINE)
        if install:
            runs.append(dict(re.findall(r"([a-z0-9.+-]+):[a-z0-9]+ \(([^,)]+)", install.group(1))))
    return runs


def test_the_roles_packages_arrive_in_one_apt_transaction(host):
    runs = apt_transactions(host)
    with_server = [run for run in runs if "postgresql" in run]
    assert len(with_server) == 1, runs
    one = with_server[0]
    # common's own, postgresql's, django's, nginx's, logrotate's and redis's, together
    for package in ("curl", "postgresql", "python3-psycopg2", "python3-venv", "nginx", "logrotate",
                    "redis-server", "redis-tools"):
        assert package in one, f"{package} not in the transaction that installed postgresql: {sorted(one)}"
    assert [run for run in runs if "redis-server" in run] == [one], runs


def test_nginx_and_postgresql_started_once_configured(host):
    for unit in ("postgresql@*", "nginx.service"):
        log = host.check_output(f"journalctl --boot --unit '{unit}' --output=cat --no-pager")
        starts = sum(1 for line in log.splitlines() if line.startswith("Started "))
        assert starts == 1, f"{unit} started {starts} times since boot (once expected, from its role)"


def test_the_stock_redis_service_never_ran(host):
    log = host.check_output("journalctl --boot --unit redis-server.service --output=cat --no-pager")
    assert not [line for line in log.splitlines() if line.startswith(("Started ", "Starting "))], log
    assert host.check_output("systemctl is-enabled redis-server.service || true") == "masked"
