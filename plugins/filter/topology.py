# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Topology filters: which hosts run which role, and how the stack's hosts reach each other.

Documentation for ansible-doc lives beside this file (role_hosts.yml, private_addresses.yml,
placed_on.yml).
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


PLACEMENTS = ("one", "all")


def placed_on(entries, host, groups, hosts_down=None, allowed_groups=None):
    """The entries (dicts) that run on `host`, without their placement keys.

    An entry runs on the hosts of its `group` (default "app"): on the first of them that is not
    down with `hosts: one` (the default: a job that must run once in the fleet), on every one with
    `hosts: all`.
    """
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError(f"placed_on expects a list of entries, got {entries!r}")
    down = set(hosts_down or [])
    placed = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"placed_on: an entry must be a mapping, got {entry!r}")
        group = entry.get("group", "app")
        placement = entry.get("hosts", "one")
        name = entry.get("name", "?")
        if allowed_groups is not None and group not in allowed_groups:
            raise AnsibleFilterError(
                f"placed_on: entry '{name}' has group {group!r}, expected one of {', '.join(allowed_groups)}")
        if placement not in PLACEMENTS:
            raise AnsibleFilterError(f"placed_on: entry '{name}' has hosts {placement!r}, expected 'one' or 'all'")
        members = [member for member in groups.get(group) or [] if member not in down]
        chosen = members if placement == "all" else members[:1]
        if host in chosen:
            placed.append({key: value for key, value in entry.items() if key not in ("group", "hosts")})
    return placed


class FilterModule:
    def filters(self):
        return {"role_hosts": role_hosts, "private_addresses": private_addresses, "placed_on": placed_on}
