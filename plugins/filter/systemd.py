# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd filters: the sandbox of the collection's own service units, written once.

Documentation for ansible-doc lives beside this file (systemd_sandbox.yml, systemd_quote.yml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

DEFAULT_ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK")

_ADDRESS_FAMILY = re.compile(r"^AF_[A-Z0-9]+$")
# systemd splits ReadWritePaths= on white space; control characters have no place in a path.
_BAD_PATH_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")


def _string_list(value, name):
    """A list of strings (not a bare string, which would iterate over its characters)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise AnsibleFilterError(f"{name} must be a list of strings, got {type(value).__name__} {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise AnsibleFilterError(f"{name} must be a list of strings, got the item {item!r}")
    return list(value)


def _read_write_path(path):
    if not path.startswith("/"):
        raise AnsibleFilterError(f"read_write_paths: {path!r} is not an absolute path")
    if _BAD_PATH_CHARACTERS.search(path):
        raise AnsibleFilterError(
            f"read_write_paths: {path!r} contains white space or a control character "
            "(systemd splits the list on white space)")
    # "-": a path that does not exist (yet) is skipped instead of failing the unit's start.
    return f"-{path}"


# Words that need no quotes on an Exec*= line.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_./:=,@+-]+$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def systemd_quote(word):
    """One argument of an Exec*= line, as systemd reads it back: the very same string."""
    if not isinstance(word, str):
        raise AnsibleFilterError(f"systemd_quote takes a string, got {type(word).__name__} {word!r}")
    if _CONTROL_CHARACTERS.search(word):
        raise AnsibleFilterError(f"systemd_quote: {word!r} contains a control character such as a newline")
    # % starts a specifier and $ a variable on Exec*= lines, even inside quotes.
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.match(word):
        return escaped
    escaped = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def systemd_sandbox(read_write_paths, user_namespaces=False, address_families=None):
    """The [Service] sandbox directives of a long-running, unprivileged network service."""
    paths = [_read_write_path(path) for path in _string_list(read_write_paths, "read_write_paths")]
    if not isinstance(user_namespaces, bool):
        raise AnsibleFilterError(f"user_namespaces must be a boolean, got {user_namespaces!r}")
    families = _string_list(
        DEFAULT_ADDRESS_FAMILIES if address_families is None else address_families, "address_families")
    if not families:
        raise AnsibleFilterError("address_families must name at least one address family")
    for family in families:
        if not _ADDRESS_FAMILY.match(family):
            raise AnsibleFilterError(f"address_families: {family!r} is not an address family such as AF_INET")

    if user_namespaces:
        lines = ["# Sandboxing, with a private user namespace (the host provides user namespaces)."]
    else:
        lines = ["# Sandboxing (all of it works in unprivileged containers too; no PrivateUsers)."]
    lines += [
        "NoNewPrivileges=true",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
    ]
    if paths:
        lines.append("ReadWritePaths=" + " ".join(paths))
    lines += [
        "ProtectHome=true",
        "PrivateTmp=true",
        "PrivateDevices=true",
    ]
    if user_namespaces:
        lines.append("PrivateUsers=true")
    lines += [
        "ProtectKernelTunables=true",
        "ProtectKernelModules=true",
        "ProtectKernelLogs=true",
        "ProtectControlGroups=true",
        "ProtectClock=true",
        "ProtectHostname=true",
        "ProtectProc=invisible",
        "RestrictNamespaces=true",
        "RestrictRealtime=true",
        "RestrictSUIDSGID=true",
        "LockPersonality=true",
        "RestrictAddressFamilies=" + " ".join(families),
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
    ]
    return "\n".join(lines)


class FilterModule:
    """systemd filters of djangoprod.stack."""

    def filters(self):
        return {
            "systemd_sandbox": systemd_sandbox,
            "systemd_quote": systemd_quote,
        }
