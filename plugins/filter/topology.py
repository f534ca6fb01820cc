# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Topology filters: which hosts run which role, and how the stack's hosts reach each other.

Documentation for ansible-doc lives beside this file (role_hosts.yml, private_addresses.yml).
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def role_hosts(role_map, groups):
    """{role: [hosts]} from {role: [groups]} and the inventory's groups, in inventory order."""
    if not isinstance(role_map, Mapping):
        raise AnsibleFilterError(f"role_hosts expects a mapping of role to groups, got {type(role_map).__name__}")
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError(f"role_hosts expects the inventory's groups, got {type(groups).__name__}")
    result = {}
    for role, role_groups in role_map.items():
        if isinstance(role_groups, str) or not isinstance(role_groups, (list, tuple)):
            raise AnsibleFilterError(f"role_hosts: the groups of role '{role}' must be a list, got {role_groups!r}")
        hosts = []
        for group in role_groups:
            for host in groups.get(group) or []:
                if host not in hosts:
                    hosts.append(host)
        result[role] = hosts
    return result


def private_addresses(hosts, hostvars, variable="stack_private_address"):
    """{host: address}: the host's `variable` when set, else its default IPv4 address from facts.

    Reads only hostvars (inventory variables and gathered facts), never a fact set by a play, so
    every host sees the same addresses whatever --limit ran.
    """
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"private_addresses expects a list of hosts, got {hosts!r}")
    result = {}
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"private_addresses: '{host}' is not in the inventory")
        hvars = hostvars[host]
        address = hvars.get(variable) if hasattr(hvars, "get") else None
        if not address:
            facts = hvars.get("ansible_facts") or {}
            address = (facts.get("default_ipv4") or {}).get("address")
        if not address:
            raise AnsibleFilterError(
                f"no private address for host '{host}': set {variable} for it in the inventory, "
                "or gather its facts (it has no default IPv4 route)")
        result[host] = str(address)
    return result


class FilterModule:
    def filters(self):
        return {"role_hosts": role_hosts, "private_addresses": private_addresses}
