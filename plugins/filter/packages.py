# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Debian packages a role of this collection installs, read from the role itself.

Documentation for ansible-doc lives beside this file (role_packages.yml).
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from ansible.errors import AnsibleFilterError

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"


@functools.cache
def _packages_of(role):
    role_dir = ROLES_DIR / role
    if not role_dir.is_dir():
        raise AnsibleFilterError(f"role_packages: this collection has no role '{role}'")
    vars_file = role_dir / "vars" / "main.yml"
    if not vars_file.is_file():
        return ()
    try:
        role_vars = yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AnsibleFilterError(f"role_packages: {vars_file} is not valid YAML: {exc}") from exc
    packages = role_vars.get(f"__{role}_packages")
    if packages is None:
        return ()
    # Only a plain list is the role's fixed package set; a templated value depends on the role's
    # input, which only the role itself resolves.
    if not isinstance(packages, list) or not all(isinstance(p, str) and "{" not in p for p in packages):
        raise AnsibleFilterError(
            f"role_packages: __{role}_packages in {vars_file} must be a list of package names, got {packages!r}"
        )
    return tuple(packages)


def role_packages(roles):
    """The union of the fixed package lists (vars/main.yml's __<role>_packages) of `roles`, in order."""
    if isinstance(roles, str) or not isinstance(roles, (list, tuple)):
        raise AnsibleFilterError(f"role_packages expects a list of role names, got {type(roles).__name__}")
    result = []
    for role in roles:
        if not isinstance(role, str) or not role:
            raise AnsibleFilterError(f"role_packages: a role name must be a non-empty string, got {role!r}")
        for package in _packages_of(role):
            if package not in result:
                result.append(package)
    return result


class FilterModule:
    def filters(self):
        return {"role_packages": role_packages}
