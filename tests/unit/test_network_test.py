"""Table of values the ip_network test accepts and refuses."""

import pytest

import network


@pytest.mark.parametrize("value", [
    "10.0.0.5", "10.0.0.0/24", "0.0.0.0/0", "127.0.0.1/32", "::1", "fd00::/64", "2001:db8::7", "::/0",
])
def test_addresses_and_networks_pass(value):
    assert network.ip_network(value)


@pytest.mark.parametrize("value", [
    "10.0.0.5/24", "999.1.1.1", "10.0.0", "10.0.0.0/33", "fd00::1/64", "lb.example.test", "",
    " 10.0.0.5", "10.0.0.5 ", "10.0.0.5,10.0.0.6", None, 10, ["10.0.0.5"],
])
def test_anything_else_fails(value):
    assert not network.ip_network(value)
