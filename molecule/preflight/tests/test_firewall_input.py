"""Firewall input that could lock the operator out fails in the preflight, before any host
changes, with a message naming the variable."""

import pytest
from test_bad_input import GOOD_SECRET, _assert_untouched, _run, baseline  # noqa: F401 (fixture)


@pytest.mark.parametrize("extra, message", [
    ({"common_firewall_ssh_ports": []}, "common_firewall_ssh_ports is empty"),
    ({"common_firewall_ssh_ports": [0]}, "common_firewall_ssh_ports: a port must be from 1 to 65535"),
    ({"common_firewall_public_ports": [443, 70000]},
     "common_firewall_public_ports: a port must be from 1 to 65535"),
    ({"common_firewall_allow_extra": [{"ports": [65536], "sources": ["10.0.0.5"]}]},
     "common_firewall_allow_extra: a port must be from 1 to 65535"),
    ({"common_firewall_ssh_ports": [2222], "common_firewall_public_ports": [80, 443, 2222]},
     "A port taken twice in common_firewall_ssh_ports and common_firewall_public_ports: 2222"),
    ({"common_firewall_allow_extra": [{"ports": [9100], "sources": ["monitoring.example"]}]},
     "sources must be IPv4 or IPv6 addresses"),
])
def test_firewall_lockout_is_refused_before_any_change(host, tmp_path, baseline, extra, message):  # noqa: F811
    rc, out, changed = _run(tmp_path, {**GOOD_SECRET, **extra})
    assert rc != 0
    assert message in out, out[-3000:]
    assert set(changed) == {0}, out[-2000:]
    _assert_untouched(host, baseline)

