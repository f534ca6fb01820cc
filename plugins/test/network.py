# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address tests. Documentation for ansible-doc lives beside this file (ip_network.yml)."""

from __future__ import annotations

import ipaddress


def ip_network(value):
    """True for an IPv4 or IPv6 address, or a network in CIDR form without host bits."""
    if not isinstance(value, str) or value != value.strip() or not value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"ip_network": ip_network}
