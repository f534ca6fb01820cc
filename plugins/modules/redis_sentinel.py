#!/usr/bin/python
# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The primaries a Redis Sentinel watches, and their settings."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_sentinel
short_description: The primaries a Redis Sentinel watches, and their settings
description:
  - Makes a running Redis Sentinel watch each primary of O(masters) under its name
    (C(SENTINEL MONITOR)) with the settings given, and stop watching the names of O(absent)
    (C(SENTINEL REMOVE)). Sentinel saves what it is told in its own configuration file.
  - The address of a primary is used only when the Sentinel does not know the name yet. After a
    failover the Sentinels know a newer primary than any inventory does, and the module leaves it.
  - Quorum, C(down-after-milliseconds), C(failover-timeout) and C(parallel-syncs) are read back
    and set where they differ (a change). The credentials the Sentinel logs in to the primary
    with cannot be read back; they are set when the name is added and, outside check mode, again
    on every run, which is not reported as a change.
version_added: 0.3.0
author:
  - djangoprod.stack maintainers (@djangoprod)
options:
  host:
    description: Address of the Sentinel.
    type: str
    default: 127.0.0.1
  port:
    description: Port of the Sentinel.
    type: int
    default: 26379
  password:
    description: Password of the Sentinel (its C(requirepass)).
    type: str
    required: true
  masters:
    description: The primaries to watch.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The name clients ask the Sentinels for.
        type: str
        required: true
      address:
        description: Address of the primary, used only when the name is added.
        type: str
        required: true
      port:
        description: Port of the primary.
        type: int
        required: true
      quorum:
        description: Sentinels that must agree that the primary is down before a failover starts.
        type: int
        required: true
      down_after_milliseconds:
        description: How long the primary may not answer before this Sentinel thinks it is down.
        type: int
        default: 5000
      failover_timeout:
        description: Milliseconds a failover may take (and the pause before another is tried).
        type: int
        default: 60000
      parallel_syncs:
        description: Replicas that resynchronise with a new primary at the same time.
        type: int
        default: 1
      auth_user:
        description: ACL user the Sentinel logs in to the primary and its replicas as.
        type: str
      auth_pass:
        description: Password of O(masters[].auth_user).
        type: str
  absent:
    description: Names the Sentinel stops watching when it watches them.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for the Sentinel to accept a connection and answer.
    type: float
    default: 5.0
attributes:
  check_mode:
    description: Reads the Sentinel and reports what it would set, add or remove; sends it nothing that changes it.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
notes:
  - Talks to the Sentinel over TCP, without the C(redis) Python package or C(redis-cli).
"""

EXAMPLES = r"""
- name: Watch the cache and the broker
  djangoprod.stack.redis_sentinel:
    password: "{{ vault_redis_sentinel_password }}"
    masters:
      - name: shop-cache
        address: 10.0.0.21
        port: 6379
        quorum: 2
        auth_user: sentinel
        auth_pass: "{{ vault_redis_sentinel_password }}"
"""

RETURN = r"""
added:
  description: Names the Sentinel did not watch before.
  returned: always
  type: list
  elements: str
updated:
  description: Names whose settings were changed, with the settings.
  returned: always
  type: dict
removed:
  description: Names the Sentinel no longer watches.
  returned: always
  type: list
  elements: str
primaries:
  description: Where the Sentinel sees each primary of O(masters) now, as C(address:port).
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.djangoprod.stack.plugins.module_utils.redis_resp import Connection, RespError, pairs

SETTINGS = {
    # module option: (key in SENTINEL MASTER's reply, key of SENTINEL SET)
    "quorum": "quorum",
    "down_after_milliseconds": "down-after-milliseconds",
    "failover_timeout": "failover-timeout",
    "parallel_syncs": "parallel-syncs",
}


def connect(module):
    """The Sentinel may have been (re)started a moment ago: retry until the timeout."""
    params = module.params
    deadline = time.monotonic() + params["timeout"]
    while True:
        try:
            return Connection(params["host"], params["port"], params["password"],
                              timeout=params["timeout"])
        except OSError as exc:
            if time.monotonic() >= deadline:
                module.fail_json(msg=f"cannot reach the Sentinel at {params['host']}:{params['port']}: {exc}")
            time.sleep(0.2)
        except RespError as exc:
            module.fail_json(msg=f"the Sentinel refused the password: {exc}")


def master_info(conn, name):
    try:
        return pairs(conn.command("SENTINEL", "MASTER", name))
    except RespError as exc:
        if "no such master" in str(exc).lower():
            return None
        raise


def main():
    master_spec = {
        "name": {"type": "str", "required": True},
        "address": {"type": "str", "required": True},
        "port": {"type": "int", "required": True},
        "quorum": {"type": "int", "required": True},
        "down_after_milliseconds": {"type": "int", "default": 5000},
        "failover_timeout": {"type": "int", "default": 60000},
        "parallel_syncs": {"type": "int", "default": 1},
        "auth_user": {"type": "str"},
        "auth_pass": {"type": "str", "no_log": True},
    }
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 26379},
            "password": {"type": "str", "required": True, "no_log": True},
            "masters": {"type": "list", "elements": "dict", "default": [], "options": master_spec},
            "absent": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "float", "default": 5.0},
        },
        supports_check_mode=True,
    )
    check = module.check_mode
    added, updated, removed, primaries = [], {}, [], {}
    conn = connect(module)
    try:
        for master in module.params["masters"]:
            name = master["name"]
            info = master_info(conn, name)
            if info is None:
                added.append(name)
                primaries[name] = f"{master['address']}:{master['port']}"
                if check:
                    continue
                conn.command("SENTINEL", "MONITOR", name, master["address"], master["port"], master["quorum"])
                changes = {key: master[option] for option, key in SETTINGS.items() if option != "quorum"}
            else:
                primaries[name] = f"{info['ip']}:{info['port']}"
                changes = {key: master[option] for option, key in SETTINGS.items()
                           if str(info.get(key)) != str(master[option])}
                if changes:
                    updated[name] = changes
            if master["auth_user"] is not None:
                changes = {**changes, "auth-user": master["auth_user"]}
            if master["auth_pass"] is not None:
                changes = {**changes, "auth-pass": master["auth_pass"]}
            if changes and not check:
                args = [item for key, value in changes.items() for item in (key, value)]
                conn.command("SENTINEL", "SET", name, *args)
        for name in module.params["absent"]:
            if master_info(conn, name) is not None:
                removed.append(name)
                if not check:
                    conn.command("SENTINEL", "REMOVE", name)
    except (RespError, OSError) as exc:
        module.fail_json(msg=f"Sentinel at {module.params['host']}:{module.params['port']}: {exc}",
                         added=added, updated=updated, removed=removed)
    finally:
        conn.close()
    module.exit_json(changed=bool(added or updated or removed), added=added, updated=updated,
                     removed=removed, primaries=primaries)


if __name__ == "__main__":
    main()
