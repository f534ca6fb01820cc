"""The firewall from the inventory's topology, seen from a host outside the stack and from the
stack's own hosts (fw-web1: nginx; fw-app1: everything else): from fw-outside only SSH (on every
host) and HTTP/HTTPS (on the web host) answer, over IPv4 and IPv6; the web host reaches gunicorn's
TCP listener and nothing else of the app host; requests still go through nginx to Django,
PostgreSQL and Redis."""

import json
import os
import pathlib
import re
import subprocess

import pytest

from helpers.network import addresses, connect, https_get
from helpers.stack import fleet, journal

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOMAIN = "demo.example.test"
TABLE = "inet djangoprod"
UNIT = "djangoprod-firewall.service"
TIMEOUT = 1.5
# On fw-app1: PostgreSQL, the Redis cache and broker instances, gunicorn's TCP listener.
SERVICE_PORTS = [5432, 6379, 6380, 8000]


@pytest.fixture(scope="module")
def hosts():
    return fleet()


@pytest.fixture(scope="module")
def address(hosts):
    """{name: {"ipv4": first address, "ipv6": first address or None}}."""
    found = {}
    for name, host in hosts.items():
        both = addresses(host)
        found[name] = {family: (both[family] or [None])[0] for family in ("ipv4", "ipv6")}
    return found


FAMILIES = ["ipv4", "ipv6"]


def _family_address(address, name, family):
    if address[name][family] is None:
        pytest.skip(f"{name} has no {family} address (the scenario network has no IPv6)")
    return address[name][family]


def _table(host):
    result = host.run(f"nft list table {TABLE}")
    assert result.rc == 0, result.stderr + journal(host, UNIT)
    return result.stdout


def test_the_table_is_loaded_on_the_stack_hosts_only(hosts):
    for name in ("fw-web1", "fw-app1"):
        host = hosts[name]
        assert host.service(UNIT).is_enabled, journal(host, UNIT)
        assert host.service(UNIT).is_running, journal(host, UNIT)
        assert "type filter hook input priority filter; policy drop;" in _table(host)
    # The converge left the outside host alone: no nftables, no stack.
    assert not hosts["fw-outside"].package("nftables").is_installed


def test_other_tables_survive(hosts):
    # Docker's embedded DNS keeps its NAT table inside each container: a `flush ruleset` would
    # have removed it (and name resolution with it).
    for name in ("fw-web1", "fw-app1"):
        tables = hosts[name].check_output("nft list tables")
        assert "table ip nat" in tables, tables
        assert hosts[name].run("getent hosts fw-outside").rc == 0


def test_rules_follow_the_topology(hosts, address):
    web_rules = _table(hosts["fw-web1"])
    app_rules = _table(hosts["fw-app1"])
    # fw-web1: SSH and the public ports, nothing else.
    assert re.search(r'tcp dport 22 accept comment "ssh"', web_rules), web_rules
    assert re.search(r'tcp dport \{ 80, 443 \} accept comment "public"', web_rules), web_rules
    assert "saddr" not in web_rules, web_rules
    # fw-app1 serves its own database and Redis over loopback: only gunicorn is open, to web1 only.
    assert "public" not in app_rules, app_rules
    allowed = re.findall(r"ip6? saddr (\S+) tcp dport (\S+) accept", app_rules)
    assert allowed == [(address["fw-web1"]["ipv4"], "8000")], app_rules


@pytest.mark.parametrize("family", FAMILIES)
def test_service_ports_are_filtered_from_outside(hosts, address, family):
    target = _family_address(address, "fw-app1", family)
    results = connect(hosts["fw-outside"], [(target, port) for port in SERVICE_PORTS + [80, 443]], TIMEOUT)
    for (_unused, port), (state, seconds) in results.items():
        # Dropped, not refused: the connect waits for the whole timeout.
        assert state == "filtered", (port, state, seconds, _table(hosts["fw-app1"]))
        assert seconds >= TIMEOUT * 0.9, (port, seconds)


@pytest.mark.parametrize("family", FAMILIES)
def test_ssh_http_and_https_answer_from_outside(hosts, address, family):
    web = _family_address(address, "fw-web1", family)
    app = _family_address(address, "fw-app1", family)
    results = connect(hosts["fw-outside"], [(web, 80), (web, 443), (web, 22), (app, 22)], TIMEOUT)
    assert results[(web, 80)][0] == "open", results
    assert results[(web, 443)][0] == "open", results
    # No sshd runs in the containers: an open port in the firewall answers RST at once.
    for target in ((web, 22), (app, 22)):
        state, seconds = results[target]
        assert state == "refused", (target, results)
        assert seconds < TIMEOUT / 3, (target, results)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_web_host_reaches_gunicorn_and_nothing_else_of_the_app_host(hosts, address, family):
    app = _family_address(address, "fw-app1", family)
    results = connect(hosts["fw-web1"], [(app, port) for port in SERVICE_PORTS], TIMEOUT)
    expected = {5432: "filtered", 6379: "filtered", 6380: "filtered",
                # gunicorn listens on fw-app1's private IPv4 address; IPv6 is not allowed to it.
                8000: "open" if family == "ipv4" else "filtered"}
    assert {port: state for (_unused, port), (state, _s) in results.items()} == expected, results


def test_the_app_host_reaches_its_services(hosts):
    # What Django and Celery use, over loopback (always open).
    results = connect(hosts["fw-app1"], [("127.0.0.1", port) for port in (5432, 6379, 6380)], TIMEOUT)
    assert {state for state, _unused in results.values()} == {"open"}, results


@pytest.mark.parametrize("family", FAMILIES)
def test_https_from_outside_reaches_django_through_the_firewall(hosts, address, family):
    web = _family_address(address, "fw-web1", family)
    status, body = https_get(hosts["fw-outside"], web, DOMAIN, "/ready/")
    assert status == 200, (body[:500], journal(hosts["fw-app1"], "demo.service"))
    assert json.loads(body) == {"database": True, "cache": True, "broker": True}


def _converge(limit, tags="common"):
    """site.yml on the molecule inventory; (rc, output, {host: changed})."""
    inventory = str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "site.yml"),
         "--limit", limit, "--tags", tags],
        capture_output=True, text=True, timeout=900, check=False, env=env)
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    changed = {name: int(n) for name, n in re.findall(r"^(\S+)\s+:.*?changed=(\d+)", recap, re.MULTILINE)}
    return proc.returncode, out, changed


def test_a_change_outside_the_role_is_undone_by_the_next_converge(hosts, address):
    app = hosts["fw-app1"]
    target = (address["fw-app1"]["ipv4"], 6379)
    app.run_test(f"nft insert rule {TABLE} input tcp dport 6379 accept")
    try:
        # Through the firewall now (refused: Redis listens on loopback only on this host).
        assert connect(hosts["fw-outside"], [target], TIMEOUT)[target][0] == "refused"
        rc, out, changed = _converge("fw-app1")
        assert rc == 0, out[-4000:]
        assert changed.get("fw-app1", 0) >= 1, out[-3000:]
        assert connect(hosts["fw-outside"], [target], TIMEOUT)[target][0] == "filtered", _table(app)
        # And a run over the restored firewall changes nothing.
        rc, out, changed = _converge("fw-app1")
        assert rc == 0 and changed == {"fw-app1": 0}, out[-3000:]
    finally:
        app.run(f"systemctl reload {UNIT}")


def test_no_failed_units(hosts):
    for name, host in hosts.items():
        failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
        assert failed == "", f"{name}: {failed}"
