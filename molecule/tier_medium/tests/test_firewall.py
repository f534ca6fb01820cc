"""The firewall of the medium tier's topology, probed from every host of the stack and from
m-outside, which the converge left alone: each service port admits exactly the hosts that use it
(PostgreSQL the code hosts and the other database server, Redis and Sentinel the code hosts and
the Sentinels, gunicorn the web hosts), the rest of the world sees SSH everywhere and HTTP/HTTPS on
the web hosts only, over IPv4 and IPv6, and a rule added by hand is gone after the next converge.
The file sorts before test_medium.py, whose last test stops a host."""

import json

import pytest

from helpers.network import addresses, connect, https_get
from helpers.stack import fleet, journal, playbook

DOMAIN = "demo.example.test"
TABLE = "inet djangoprod"
UNIT = "djangoprod-firewall.service"
TIMEOUT = 1.5
OUTSIDE = "m-outside"
WEB = ["m-web1", "m-web2"]
APP = ["m-app1", "m-app2"]
WORKERS = ["m-worker1", "m-worker2"]
DATABASES = ["m-db1", "m-db2"]
REDIS = ["m-redis1", "m-redis2"]
SENTINELS = REDIS + ["m-worker1"]
CODE = APP + WORKERS
# port: (the hosts that serve it, the hosts it admits)
SERVICES = {
    5432: (DATABASES, CODE + DATABASES),
    6379: (REDIS, CODE + SENTINELS),
    6380: (REDIS, CODE + SENTINELS),
    26379: (SENTINELS, CODE + SENTINELS),
    8000: (APP, WEB),
}
STACK = WEB + APP + WORKERS + DATABASES + REDIS


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


def _table(host):
    result = host.run(f"nft list table {TABLE}")
    assert result.rc == 0, result.stderr + journal(host, UNIT)
    return result.stdout


def _ipv6(address, name):
    if address[name]["ipv6"] is None:
        pytest.fail(f"{name} has no IPv6 address: the scenario's network should have one")
    return address[name]["ipv6"]


def test_the_table_is_loaded_on_the_stack_hosts_only(hosts):
    assert sorted(hosts) == sorted(STACK + [OUTSIDE]), "the scenario's hosts changed: update the topology above"
    for name in STACK:
        host = hosts[name]
        assert host.service(UNIT).is_enabled, journal(host, UNIT)
        assert host.service(UNIT).is_running, journal(host, UNIT)
        assert "type filter hook input priority filter; policy drop;" in _table(host)
        # Docker's embedded DNS keeps its NAT table inside each container: a `flush ruleset`
        # would have removed it, and name resolution with it.
        assert "table ip nat" in host.check_output("nft list tables"), name
    assert not hosts[OUTSIDE].package("nftables").is_installed


def test_only_the_web_hosts_have_public_ports(hosts):
    for name in STACK:
        rules = _table(hosts[name])
        assert 'tcp dport 22 accept comment "ssh"' in rules, (name, rules)
        public = 'tcp dport { 80, 443 } accept comment "public"' in rules
        assert public == (name in WEB), (name, rules)
        if name in WEB:
            assert "saddr" not in rules, (name, rules)


@pytest.mark.parametrize("prober", STACK + [OUTSIDE])
def test_each_service_port_admits_exactly_the_hosts_that_use_it(hosts, address, prober):
    """From one host, a TCP connect to every service port of every other host over IPv4: open
    where the prober is a client of that service, dropped (filtered) everywhere else."""
    expected = {}
    for port, (servers, clients) in SERVICES.items():
        for server in servers:
            if server != prober:  # a host reaches itself over loopback, always open
                expected[(address[server]["ipv4"], port)] = "open" if prober in clients else "filtered"
    results = connect(hosts[prober], list(expected), TIMEOUT)
    names = {address[name]["ipv4"]: name for name in STACK}
    wrong = {f"{names[target]}:{port}": state
             for (target, port), (state, _seconds) in results.items() if state != expected[(target, port)]}
    assert not wrong, (prober, wrong)


def test_the_world_sees_ssh_everywhere_and_the_web_ports_on_the_web_hosts(hosts, address):
    targets = {}
    for name in STACK:
        for family in ("ipv4", "ipv6"):
            target = address[name]["ipv4"] if family == "ipv4" else _ipv6(address, name)
            # No sshd runs in the containers: an open port in the firewall answers RST at once.
            targets[(target, 22)] = "refused"
            for port in (80, 443):
                targets[(target, port)] = "open" if name in WEB else "filtered"
            for port, (servers, _clients) in SERVICES.items():
                if name in servers:
                    targets[(target, port)] = "filtered"
    results = connect(hosts[OUTSIDE], list(targets), TIMEOUT)
    wrong = {f"{target}:{port}": results[(target, port)]
             for (target, port), state in targets.items() if results[(target, port)][0] != state}
    assert not wrong, wrong
    for (target, port), state in targets.items():
        seconds = results[(target, port)][1]
        if state == "filtered":  # dropped, not refused: the connect waits for the whole timeout
            assert seconds >= TIMEOUT * 0.9, (target, port, seconds)


def test_gunicorn_admits_the_web_hosts_over_ipv4_only(hosts, address):
    # gunicorn listens on the app host's private IPv4 address; the firewall opens nothing on IPv6.
    results = connect(hosts[WEB[0]], [(_ipv6(address, name), 8000) for name in APP], TIMEOUT)
    assert {state for state, _seconds in results.values()} == {"filtered"}, results


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_https_from_outside_reaches_django_through_either_web_host(hosts, address, family):
    for name in WEB:
        target = address[name]["ipv4"] if family == "ipv4" else _ipv6(address, name)
        status, body = https_get(hosts[OUTSIDE], target, DOMAIN, "/ready/")
        assert status == 200, (name, body[:500], journal(hosts[APP[0]], "demo.service"))
        # Django reached PostgreSQL (primary and replica) and both Redis instances.
        assert json.loads(body) == {"database": True, "replicas": {"replica1": True},
                                    "cache": True, "broker": True}


def test_a_rule_added_by_hand_is_undone_by_the_next_converge(hosts, address, tmp_path):
    redis = hosts[REDIS[1]]
    target = (address[REDIS[1]]["ipv4"], 6379)
    redis.run_test(f"nft insert rule {TABLE} input tcp dport 6379 accept")
    try:
        assert connect(hosts[OUTSIDE], [target], TIMEOUT)[target][0] == "open"
        rc, out, changed = playbook(tmp_path, "medium.yml", limit=REDIS[1], tags="common")
        assert rc == 0, out[-4000:]
        assert changed.get(REDIS[1], 0) >= 1, out[-3000:]
        assert connect(hosts[OUTSIDE], [target], TIMEOUT)[target][0] == "filtered", _table(redis)
        # And a run over the restored firewall changes nothing.
        rc, out, changed = playbook(tmp_path, "medium.yml", limit=REDIS[1], tags="common")
        assert rc == 0 and changed == {REDIS[1]: 0}, out[-3000:]
    finally:
        redis.run(f"systemctl reload {UNIT}")
