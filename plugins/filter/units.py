# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""unit_states and units_unsettled: the state of systemd units read from one `systemctl show`
probe, and which of them are not yet in the state a role wants, so that a run with nothing to
change skips the systemd_service calls.

Documentation for ansible-doc lives beside this file (unit_states.yml, units_unsettled.yml).
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def unit_states(text):
    """{Id: {property: value}} from `systemctl show --property=Id,...` output (one block per
    unit, blank lines between); lines that are not KEY=VALUE are ignored."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"unit_states expects the probe's stdout, got {type(text).__name__}")
    states, block = {}, {}
    for line in text.splitlines() + [""]:
        key, sep, value = line.partition("=")
        if sep and key.isalpha():
            block[key] = value
            continue
        if not line.strip() and block.get("Id"):
            states[block["Id"]] = block
            block = {}
    return states


def units_unsettled(text, wanted):
    """Names of the units of `wanted` ({unit: True for enabled and active, False for disabled
    and inactive}) whose state in the probe's output differs, or that it does not list. A unit
    systemd does not know is settled when it is wanted stopped."""
    if not isinstance(wanted, Mapping):
        raise AnsibleFilterError(f"units_unsettled: wanted must map unit names to true or false, got {wanted!r}")
    states = unit_states(text)
    unsettled = []
    settled = {True: ("enabled", "active"), False: ("disabled", "inactive")}
    for unit, running in wanted.items():
        state = states.get(unit, {})
        if state.get("LoadState") == "not-found" and not running:
            continue
        if (state.get("LoadState"), state.get("UnitFileState"), state.get("ActiveState")) != \
                ("loaded", *settled[bool(running)]):
            unsettled.append(unit)
    return unsettled


class FilterModule:
    def filters(self):
        return {"unit_states": unit_states, "units_unsettled": units_unsettled}
