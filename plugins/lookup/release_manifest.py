# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_manifest: what a release archive on the controller holds that the django role needs
to know before it changes a host: whether the requirements file is there, and the Python
versions its pyproject.toml asks for."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_manifest
author:
  - djangoprod.stack maintainers (@djangoprod)
version_added: 0.1.0
short_description: read a release archive's requirements file and requires-python on the controller
description:
  - Opens a C(.tar.gz) release archive on the controller (the django role's C(django_archive_src))
    and returns, for each archive given, whether the requirements file is in it and the
    C(project.requires-python) of its C(pyproject.toml) (an empty string when there is none).
  - Member names are read as C(tar --strip-components) would leave them.
options:
  _terms:
    description: Paths of release archives on the controller.
    type: list
    elements: path
    required: true
  strip_components:
    description: Leading path components to strip from each member name.
    type: int
    default: 0
  requirements_file:
    description: The requirements file's path inside the release.
    type: str
    default: requirements.txt
  checksum:
    description: Also return the archive's SHA-256 (RV(_raw[].sha256)), which names its release.
    type: bool
    default: false
    version_added: 0.3.0
"""

EXAMPLES = r"""
- name: Show the Python a release asks for
  ansible.builtin.debug:
    msg: "{{ lookup('djangoprod.stack.release_manifest', '/srv/builds/shop.tar.gz').requires_python }}"
"""

RETURN = r"""
_raw:
  description: One mapping per archive.
  type: list
  elements: dict
  contains:
    requirements_found:
      description: Whether the requirements file is a file in the archive.
      type: bool
    pyproject_found:
      description: Whether the archive holds a C(pyproject.toml) at the top of the release.
      type: bool
    requires_python:
      description: C(project.requires-python) of that C(pyproject.toml); an empty string when it has none.
      type: str
    sha256:
      description: The SHA-256 of the archive file, in hex.
      type: str
      returned: with O(checksum=true)
"""

import hashlib
import posixpath
import re
import tarfile

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

try:
    import tomllib
except ImportError:  # Python < 3.11 on the controller
    tomllib = None

_REQUIRES_PYTHON = re.compile(r'^\s*requires-python\s*=\s*["\']([^"\']*)["\']', re.MULTILINE)


def _release_path(name, strip):
    """A member's path inside the release, or None when stripping leaves nothing."""
    parts = [part for part in posixpath.normpath(name).split("/") if part not in ("", ".")]
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def _requires_python(text):
    if tomllib is not None:
        try:
            project = tomllib.loads(text).get("project") or {}
        except tomllib.TOMLDecodeError as exc:
            raise AnsibleLookupError(f"pyproject.toml is not valid TOML: {exc}") from exc
        value = project.get("requires-python", "")
        return value if isinstance(value, str) else ""
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    match = _REQUIRES_PYTHON.search(section.group(1)) if section else None
    return match.group(1) if match else ""


def manifest(path, strip=0, requirements_file="requirements.txt", checksum=False):
    wanted = posixpath.normpath(requirements_file).lstrip("/")
    result = {"requirements_found": False, "pyproject_found": False, "requires_python": ""}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                inside = _release_path(member.name, strip)
                if inside is None or not member.isfile():
                    continue
                if inside == wanted:
                    result["requirements_found"] = True
                if inside == "pyproject.toml":
                    result["pyproject_found"] = True
                    data = archive.extractfile(member).read()
                    result["requires_python"] = _requires_python(data.decode("utf-8", "replace")).strip()
        if checksum:
            digest = hashlib.sha256()
            with open(path, "rb") as data:
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    digest.update(chunk)
            result["sha256"] = digest.hexdigest()
    except (OSError, tarfile.TarError) as exc:
        raise AnsibleLookupError(f"cannot read the release archive {path}: {to_native(exc)}") from exc
    return result


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        strip = self.get_option("strip_components")
        requirements_file = self.get_option("requirements_file")
        checksum = self.get_option("checksum")
        return [manifest(term, strip, requirements_file, checksum) for term in terms]
