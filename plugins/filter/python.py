# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""python_fits: whether a Python version meets a requires-python specifier (PEP 440), for the
django role's check of a release against the host before anything changes.

Documentation for ansible-doc lives beside this file (python_fits.yml).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - ansible-core depends on packaging
    SpecifierSet = None


def python_fits(version, specifier):
    if SpecifierSet is None:
        raise AnsibleFilterError("python_fits needs the Python package 'packaging' on the controller")
    if not str(specifier or "").strip():
        return True
    try:
        return SpecifierSet(str(specifier)).contains(Version(str(version)), prereleases=True)
    except InvalidSpecifier as exc:
        raise AnsibleFilterError(f"python_fits: {specifier!r} is not a version specifier (PEP 440)") from exc
    except InvalidVersion as exc:
        raise AnsibleFilterError(f"python_fits: {version!r} is not a version") from exc


class FilterModule:
    def filters(self):
        return {"python_fits": python_fits}
