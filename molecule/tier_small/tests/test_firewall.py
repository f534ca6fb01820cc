"""The firewall is up on the single host of the small tier while every other test runs: SSH and
the public ports only; the host serves itself over loopback, so no allow rule."""

from helpers.stack import journal

UNIT = "djangoprod-firewall.service"


def test_the_firewall_is_up(host):
    assert host.service(UNIT).is_enabled, journal(host, UNIT)
    assert host.service(UNIT).is_running, journal(host, UNIT)
    table = host.check_output("nft list table inet djangoprod")
    assert "type filter hook input priority filter; policy drop;" in table
    assert 'tcp dport 22 accept comment "ssh"' in table, table
    assert 'tcp dport { 80, 443 } accept comment "public"' in table, table
    assert "saddr" not in table, table
