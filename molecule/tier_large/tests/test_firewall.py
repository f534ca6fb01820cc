"""The firewall is up on every host before the promotion tests run through it: the database
servers admit PostgreSQL from the app host and from each other, and nothing else but SSH."""

import re

import pytest

from helpers.stack import address, fleet, journal

UNIT = "djangoprod-firewall.service"


@pytest.fixture(scope="module")
def hosts():
    return fleet()


def test_database_servers_admit_the_app_and_each_other(hosts):
    addresses = {name: address(host) for name, host in hosts.items()}
    for name in ("db1", "db2", "db3"):
        host = hosts[name]
        assert host.service(UNIT).is_running, journal(host, UNIT)
        table = host.check_output("nft list table inet djangoprod")
        assert "policy drop;" in table
        rules = re.findall(r"ip saddr \{? ?([^}]+?) ?\}? tcp dport (\S+) accept", table)
        expected = {addresses[other] for other in ("app1", "db1", "db2", "db3") if other != name}
        assert len(rules) == 1 and rules[0][1] == "5432", table
        assert set(rules[0][0].split(", ")) == expected, table
