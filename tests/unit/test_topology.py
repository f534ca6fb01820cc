"""Tables of good and bad input for the topology filters (role map, private addresses)."""

import pytest
from ansible.errors import AnsibleFilterError

import topology

GROUPS = {"all": ["a", "b", "c"], "web": ["a"], "app": ["b", "c"], "worker": ["c"], "beat": ["b"]}


@pytest.mark.parametrize(
    "role_map, expected",
    [
        ({"nginx": ["web"]}, {"nginx": ["a"]}),
        ({"common": ["all"]}, {"common": ["a", "b", "c"]}),
        ({"celery": ["worker", "beat"]}, {"celery": ["c", "b"]}),  # inventory order, each host once
        ({"django": ["app", "worker", "beat"]}, {"django": ["b", "c"]}),
        ({"replica": ["postgres_replica"]}, {"replica": []}),  # a group the inventory lacks
        ({}, {}),
    ],
)
def test_role_hosts(role_map, expected):
    assert topology.role_hosts(role_map, GROUPS) == expected


@pytest.mark.parametrize(
    "role_map, groups, message",
    [
        (["web"], GROUPS, "mapping of role to groups"),
        ({"nginx": "web"}, GROUPS, "groups of role 'nginx' must be a list"),
        ({"nginx": None}, GROUPS, "groups of role 'nginx' must be a list"),
        ({"nginx": ["web"]}, ["a"], "inventory's groups"),
    ],
)
def test_role_hosts_refuses(role_map, groups, message):
    with pytest.raises(AnsibleFilterError, match=message):
        topology.role_hosts(role_map, groups)


HOSTVARS = {
    "a": {"stack_private_address": "10.0.0.1", "ansible_facts": {"default_ipv4": {"address": "192.0.2.1"}}},
    "b": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.2"}}},
    "c": {"other_address": "10.0.0.3"},
    "d": {"ansible_facts": {}},
}


@pytest.mark.parametrize(
    "hosts, variable, expected",
    [
        (["a", "b"], "stack_private_address", {"a": "10.0.0.1", "b": "192.0.2.2"}),  # inventory wins over facts
        (["c"], "other_address", {"c": "10.0.0.3"}),
        ([], "stack_private_address", {}),
    ],
)
def test_private_addresses(hosts, variable, expected):
    assert topology.private_addresses(hosts, HOSTVARS, variable) == expected


@pytest.mark.parametrize(
    "hosts, message",
    [
        (["d"], "no private address for host 'd': set stack_private_address"),
        (["c"], "no private address for host 'c'"),
        (["zz"], "'zz' is not in the inventory"),
        ("a", "expects a list of hosts"),
    ],
)
def test_private_addresses_refuses(hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        topology.private_addresses(hosts, HOSTVARS)


PLACE_GROUPS = {"app": ["a1", "a2", "a3"], "worker": ["w1"], "beat": []}


@pytest.mark.parametrize(
    "entries, host, down, expected",
    [
        ([{"name": "x", "command": "c"}], "a1", [], [{"name": "x", "command": "c"}]),
        ([{"name": "x", "command": "c"}], "a2", [], []),  # once in the fleet: the first app host
        ([{"name": "x", "hosts": "all"}], "a3", [], [{"name": "x"}]),
        ([{"name": "x", "hosts": "one"}], "a2", ["a1"], [{"name": "x"}]),  # the first that is up
        ([{"name": "x", "group": "worker"}], "w1", [], [{"name": "x"}]),
        ([{"name": "x", "group": "worker"}], "a1", [], []),
        ([{"name": "x", "group": "beat"}], "a1", [], []),  # an empty group runs it nowhere
        ([{"name": "x"}, {"name": "y", "hosts": "all"}], "a2", [], [{"name": "y"}]),
        ([], "a1", [], []),
    ],
)
def test_placed_on(entries, host, down, expected):
    assert topology.placed_on(entries, host, PLACE_GROUPS, down) == expected


@pytest.mark.parametrize(
    "entries, allowed, message",
    [
        ("x", None, "expects a list"),
        (["x"], None, "must be a mapping"),
        ([{"name": "x", "hosts": "some"}], None, "entry 'x' has hosts 'some'"),
        ([{"name": "x", "group": "web"}], ["app", "worker", "beat"], "entry 'x' has group 'web'"),
    ],
)
def test_placed_on_refuses(entries, allowed, message):
    with pytest.raises(AnsibleFilterError, match=message):
        topology.placed_on(entries, "a1", PLACE_GROUPS, [], allowed)
