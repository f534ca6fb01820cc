#!/usr/bin/python
# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several systemd units enabled, started, stopped or masked in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: systemd_units
short_description: Several systemd units brought to their wanted state in one call
description:
  - Brings a list of systemd units to the state each entry gives (masked, enabled, started or
    stopped), in one module call, where M(ansible.builtin.systemd_service) takes one call per
    unit. A role that runs two or three units (a worker and its scheduler, a server and its
    umbrella unit, several instances of a template) starts them with one round trip.
  - Reads every unit's state with one C(systemctl show) first, and C(systemctl is-enabled) for
    the units whose O(units[].enabled) is set; then applies the entries in list order, each as
    M(ansible.builtin.systemd_service) would in one call (mask or unmask, enable or disable, start
    or stop). Only what differs is changed.
  - A unit systemd does not know fails the task, naming it, when it is wanted enabled or started;
    wanted disabled or stopped, it is left alone, as there is nothing to stop.
  - A failed C(systemctl) command fails the task with its message; the entries before it stay
    applied, as with a loop of M(ansible.builtin.systemd_service).
version_added: 0.3.0
author:
  - djangoprod.stack maintainers (@djangoprod)
options:
  units:
    description: The units, in the order they are applied.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit's full name, with its suffix (C(nginx.service), C(app.socket)).
        type: str
        required: true
      enabled:
        description: Whether the unit starts at boot; unchanged when not set.
        type: bool
      state:
        description: V(started) starts the unit unless it is active or activating; V(stopped)
          stops it when it is active, activating or deactivating. Unchanged when not set.
        type: str
        choices: [started, stopped]
      masked:
        description: Whether the unit is masked; unchanged when not set. Masking a unit systemd
          does not know yet is allowed (before the package that brings it is installed).
        type: bool
  daemon_reload:
    description:
      - Have systemd read its unit files again before anything else (not under check mode), as
        after a unit or a drop-in changed. It does not count as a change.
    type: bool
    default: false
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows each unit's state before and after.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Hosts run by systemd only.
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Enable and start the Redis instances
  djangoprod.stack.systemd_units:
    units:
      - name: redis-server@cache.service
        enabled: true
        state: started
      - name: redis-server@broker.service
        enabled: true
        state: started
    daemon_reload: true
  register: redis_units

- name: Run the worker, stop the scheduler
  djangoprod.stack.systemd_units:
    units:
      - {name: app-worker.service, enabled: true, state: started}
      - {name: app-beat.service, enabled: false, state: stopped}
"""

RETURN = r"""
units:
  description: One entry per unit, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The unit.
      type: str
    changed:
      description: Whether the call changed (or, under check mode, would change) the unit.
      type: bool
    actions:
      description: The C(systemctl) verbs applied (or, under check mode, due), in order.
      type: list
      elements: str
      sample: [enable, start]
    status:
      description: The unit's state before the call, as C(systemctl show) gave it.
      type: dict
      sample: {"LoadState": "loaded", "UnitFileState": "disabled", "ActiveState": "inactive"}
started:
  description: The units this call started (or, under check mode, would start).
  returned: always
  type: list
  elements: str
stopped:
  description: The units this call stopped (or, under check mode, would stop).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

_PROPERTIES = ("LoadState", "UnitFileState", "ActiveState")
# As systemd_service reads them: a unit activating counts as running, and one deactivating is
# stopped again.
_RUNNING = ("active", "activating")
_STOPPING = _RUNNING + ("deactivating",)


def parse_show(text, names):
    """[{property: value}] per unit of `names`, from `systemctl show` of those units in that
    order (one block each, blank lines between)."""
    blocks, block = [], {}
    for line in text.splitlines() + [""]:
        key, sep, value = line.partition("=")
        if sep and key in _PROPERTIES:
            block[key] = value
        elif not line.strip() and block:
            blocks.append(block)
            block = {}
    if len(blocks) != len(names):
        raise ValueError(f"systemctl show gave {len(blocks)} blocks for {len(names)} units")
    return blocks


def is_enabled(rc, out):
    """Whether the unit counts as enabled, read from `systemctl is-enabled` as systemd_service
    reads it: exit status 0, except for 'enabled-runtime' (enabled until the next boot only, as by
    a generator: it is enabled for good), 'indirect' and 'alias'."""
    return rc == 0 and out.strip() not in ("enabled-runtime", "indirect", "alias")


def plan(entry, status, enabled):
    """The systemctl verbs that bring one unit from `status` (and `enabled`, None when not read)
    to its entry, in the order systemd_service applies them."""
    actions = []
    masked = status.get("LoadState") == "masked" or status.get("UnitFileState") == "masked"
    if entry.get("masked") is True and not masked:
        actions.append("mask")
    elif entry.get("masked") is False and masked:
        actions.append("unmask")
    if status.get("LoadState") == "not-found":
        # Wanted disabled and stopped (the call failed before otherwise): nothing to do.
        return actions
    if entry.get("enabled") is not None and entry["enabled"] != enabled:
        actions.append("enable" if entry["enabled"] else "disable")
    if entry.get("state") == "started" and status.get("ActiveState") not in _RUNNING:
        actions.append("start")
    elif entry.get("state") == "stopped" and status.get("ActiveState") in _STOPPING:
        actions.append("stop")
    return actions


def describe(status, enabled, masked):
    return (f"masked={'yes' if masked else 'no'} enabled={'-' if enabled is None else ('yes' if enabled else 'no')}"
            f" active={status.get('ActiveState', '')}")


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "enabled": {"type": "bool"},
                "state": {"type": "str", "choices": ["started", "stopped"]},
                "masked": {"type": "bool"},
            }},
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path("systemctl", required=True)
    entries = module.params["units"]
    names = [entry["name"] for entry in entries]

    def run(*args):
        rc, out, err = module.run_command([systemctl, *args], environ_update={"LC_ALL": "C"})
        if rc != 0:
            module.fail_json(msg=f"systemctl {' '.join(args)} failed, rc {rc}: {(err or out).strip()}",
                             rc=rc, stdout=out, stderr=err, units=results,
                             changed=any(result["changed"] for result in results))
        return out

    results = []
    if module.params["daemon_reload"] and not module.check_mode:
        run("daemon-reload")
    statuses = parse_show(run("show", "--property=" + ",".join(_PROPERTIES), "--", *names), names) if names else []

    unknown = [entry["name"] for entry, status in zip(entries, statuses)
               if status.get("LoadState") == "not-found" and (entry.get("enabled") or entry.get("state") == "started")]
    if unknown:
        module.fail_json(msg=f"Could not find the requested service {', '.join(unknown)}: systemd does not know it "
                             "(nothing was changed)", units=[], changed=False)

    before, after, started, stopped = [], [], [], []
    for entry, status in zip(entries, statuses):
        enabled = None
        if entry.get("enabled") is not None and status.get("LoadState") != "not-found":
            rc, out, _err = module.run_command([systemctl, "is-enabled", "--", entry["name"]],
                                               environ_update={"LC_ALL": "C"})
            enabled = is_enabled(rc, out)
        actions = plan(entry, status, enabled)
        masked = status.get("LoadState") == "masked" or status.get("UnitFileState") == "masked"
        before.append(f"{entry['name']}: {describe(status, enabled, masked)}\n")
        new_status = dict(status)
        if "start" in actions:
            new_status["ActiveState"] = "active"
            started.append(entry["name"])
        if "stop" in actions:
            new_status["ActiveState"] = "inactive"
            stopped.append(entry["name"])
        new_enabled = entry["enabled"] if entry.get("enabled") is not None else enabled
        new_masked = entry["masked"] if entry.get("masked") is not None else masked
        after.append(f"{entry['name']}: {describe(new_status, new_enabled, new_masked)}\n")
        if not module.check_mode:
            for action in actions:
                run(action, "--", entry["name"])
        results.append({"name": entry["name"], "changed": bool(actions), "actions": actions, "status": status})

    changed = any(result["changed"] for result in results)
    result = {"changed": changed, "units": results, "started": started, "stopped": stopped}
    if module._diff and changed:
        result["diff"] = {"before": "".join(before), "after": "".join(after),
                          "before_header": "units", "after_header": "units"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
