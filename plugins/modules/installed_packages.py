#!/usr/bin/python
# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The packages dpkg has installed, as ansible_facts.packages."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: installed_packages
short_description: The packages dpkg has installed, as ansible_facts.packages
description:
  - Reads dpkg's database with C(dpkg-query) and sets C(ansible_facts.packages) in the form
    M(ansible.builtin.package_facts) gives, for the packages whose state is C(installed).
  - Unlike M(ansible.builtin.package_facts) with the apt manager it needs no C(python3-apt) and
    does not open apt's cache, which takes a second or more on every call; a role can ask it
    once and skip apt when every package it needs is there.
  - Changes nothing.
  - With O(script), also runs a read-only shell script (a role's probe of the host's state) in the
    same call and returns its output, so that one round trip over the connection answers both.
version_added: 0.1.0
author:
  - djangoprod.stack maintainers (@djangoprod)
options:
  script:
    description:
      - A shell script that only reads, run with C(sh -c) after the packages are read; its output
        comes back as RV(stdout) and RV(stdout_lines). A non-zero exit status fails the task.
    type: str
    version_added: 0.3.0
  script_args:
    description: The script's arguments (C($1), C($2)...; C($0) is C(probe)).
    type: list
    elements: str
    default: []
    version_added: 0.3.0
attributes:
  check_mode:
    description: Runs as usual, since the module only reads.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
  facts:
    description: Sets C(ansible_facts.packages).
    support: full
notes:
  - Debian and its derivatives only (dpkg).
"""

EXAMPLES = r"""
- name: Read the installed packages
  djangoprod.stack.installed_packages:
  when: ansible_facts.packages is not defined

- name: Install nginx
  ansible.builtin.apt:
    name: nginx
  when: "'nginx' not in ansible_facts.packages"

- name: Read the installed packages and whether the zone exists, in one call
  djangoprod.stack.installed_packages:
    script: 'if [ -e "/usr/share/zoneinfo/$1" ]; then echo "zone yes"; else echo "zone no"; fi'
    script_args: [Europe/Berlin]
  register: host_state
"""

RETURN = r"""
ansible_facts:
  description: The installed packages.
  returned: always
  type: dict
  contains:
    packages:
      description: For each package name, a list with one entry per installed architecture.
      type: dict
      sample: {"nginx": [{"name": "nginx", "version": "1.26.3-3", "arch": "amd64", "source": "apt"}]}
stdout:
  description: What O(script) printed.
  returned: when O(script) is given
  type: str
  sample: "zone yes"
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when O(script) is given
  type: list
  elements: str
  sample: ["zone yes"]
"""

from ansible.module_utils.basic import AnsibleModule

_FORMAT = "${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n"


def parse(output):
    """{name: [{name, version, arch, source}]} of the lines whose state is 'installed'."""
    packages = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) != 4 or fields[3] != "installed":
            continue
        name, version, arch, _state = fields
        packages.setdefault(name, []).append({"name": name, "version": version, "arch": arch, "source": "apt"})
    return packages


def main():
    module = AnsibleModule(argument_spec={"script": {"type": "str"},
                                          "script_args": {"type": "list", "elements": "str", "default": []}},
                           supports_check_mode=True)
    dpkg_query = module.get_bin_path("dpkg-query", required=True)
    rc, out, err = module.run_command([dpkg_query, "-W", "-f", _FORMAT], environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg=f"dpkg-query failed: {err.strip()}", rc=rc)
    result = {"changed": False, "ansible_facts": {"packages": parse(out)}}
    if module.params["script"] is not None:
        rc, out, err = module.run_command(["sh", "-c", module.params["script"], "probe", *module.params["script_args"]])
        if rc != 0:
            module.fail_json(msg=f"the script failed: {err.strip()}", rc=rc, stdout=out, stderr=err)
        result.update(stdout=out, stdout_lines=out.splitlines())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
