#!/usr/bin/python
# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the Redis Sentinels of a set see each primary."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_sentinel_info
short_description: Where the Redis Sentinels of a set see each primary
description:
  - Asks each Sentinel of O(sentinels) where the primary of each name of O(names) is
    (C(SENTINEL GET-MASTER-ADDR-BY-NAME)), and returns the answer most of them give.
  - A Sentinel that cannot be reached, refuses the password or does not know a name gives no
    answer for it. A name no Sentinel knows (a new set, before any Sentinel runs) has none.
  - Changes nothing.
version_added: 0.3.0
author:
  - djangoprod.stack maintainers (@djangoprod)
options:
  sentinels:
    description: The Sentinels to ask, as C(address:port) (an IPv6 address in brackets).
    type: list
    elements: str
    required: true
  password:
    description: Password of the Sentinels (their C(requirepass)).
    type: str
    required: true
  names:
    description: The names of the primaries.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait for each Sentinel to accept a connection and answer.
    type: float
    default: 1.0
attributes:
  check_mode:
    description: Runs as usual, since the module only reads.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Ask the Sentinels where the primaries are
  djangoprod.stack.redis_sentinel_info:
    sentinels: [10.0.0.21:26379, 10.0.0.22:26379, 10.0.0.31:26379]
    password: "{{ vault_redis_sentinel_password }}"
    names: [shop-cache, shop-broker]
  register: sentinel_view
"""

RETURN = r"""
primaries:
  description: For each name, C(address:port) of its primary, or null when no Sentinel knows it.
  returned: always
  type: dict
  sample: {"shop-cache": "10.0.0.22:6379", "shop-broker": null}
answered:
  description: The Sentinels that answered.
  returned: always
  type: list
  elements: str
"""

from collections import Counter

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.djangoprod.stack.plugins.module_utils.redis_resp import Connection, RespError


def split_address(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{value}: expected address:port")
    return host.strip("[]"), int(port)


def main():
    module = AnsibleModule(
        argument_spec={
            "sentinels": {"type": "list", "elements": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "names": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    votes = {name: Counter() for name in module.params["names"]}
    answered = []
    for sentinel in module.params["sentinels"]:
        try:
            host, port = split_address(sentinel)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        try:
            with Connection(host, port, module.params["password"], timeout=module.params["timeout"]) as conn:
                for name, counter in votes.items():
                    reply = conn.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
                    if reply:
                        address = f"[{reply[0]}]" if ":" in reply[0] else reply[0]
                        counter[f"{address}:{reply[1]}"] += 1
            answered.append(sentinel)
        except (OSError, RespError):
            continue
    primaries = {name: (counter.most_common(1)[0][0] if counter else None) for name, counter in votes.items()}
    module.exit_json(changed=False, primaries=primaries, answered=answered)


if __name__ == "__main__":
    main()
