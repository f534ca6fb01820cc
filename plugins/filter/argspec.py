# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument-spec filters. Documentation for ansible-doc lives beside this file (without_defaults.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def without_defaults(options):
    """The options of an argument spec with every `default` removed, at every depth."""
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(f"without_defaults expects the options mapping of an argument spec, "
                                 f"got {type(options).__name__}")
    result = {}
    for name, attrs in options.items():
        if not isinstance(attrs, Mapping):
            raise AnsibleFilterError(f"without_defaults: option {name!r} is not a mapping of attributes")
        attrs = {key: value for key, value in attrs.items() if key != "default"}
        if "options" in attrs:
            attrs["options"] = without_defaults(attrs["options"])
        result[name] = attrs
    return result


class FilterModule:
    def filters(self):
        return {"without_defaults": without_defaults}
