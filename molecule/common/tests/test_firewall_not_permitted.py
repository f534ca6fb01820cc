"""This scenario's container has no NET_ADMIN: the role warns and applies no firewall instead of
failing, and leaves no unit behind that would fail at every boot."""

UNIT = "djangoprod-firewall.service"


def test_nft_is_not_permitted_here(host):
    assert host.package("nftables").is_installed
    result = host.run("nft list tables")
    assert result.rc != 0 and "Operation not permitted" in result.stderr, result.stderr


def test_no_firewall_unit_is_installed(host):
    assert not host.file(f"/etc/systemd/system/{UNIT}").exists
    assert not host.file("/etc/nftables.d/djangoprod.nft").exists
    assert host.check_output("systemctl list-units --state=failed --no-legend --plain") == ""
