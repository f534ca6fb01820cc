# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renders the template entries of djangoprod.stack.files on the controller, then runs the
module once for every entry."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

try:  # ansible-core 2.19
    from ansible._internal._templating._template_vars import generate_ansible_template_vars
except ImportError:  # pragma: no cover - older cores
    from ansible.template import generate_ansible_template_vars


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    def _render(self, entry, task_vars):
        name = entry["template"]
        try:
            source = self._find_needle("templates", name)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{entry.get('path')}: {to_text(exc)}")
        data = trust_as_template(self._loader.get_text_file_contents(source))

        searchpath = list(task_vars.get("ansible_search_path", []))
        searchpath.extend([self._loader._basedir, os.path.dirname(source)])
        paths = []
        for path in searchpath:
            paths.extend([os.path.join(path, "templates"), path])

        variables = dict(task_vars)
        variables.update(generate_ansible_template_vars(
            path=name, fullpath=source, dest_path=entry.get("path"),
            include_ansible_managed="ansible_managed" not in variables))
        variables.update(entry.get("vars") or {})
        templar = self._templar.copy_with_new_env(searchpath=paths, available_variables=variables)
        rendered = templar.template(data, escape_backslashes=False,
                                    overrides={"trim_blocks": True, "lstrip_blocks": False})
        return "" if rendered is None else to_text(rendered)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        entries = self._task.args.get("files")
        if not isinstance(entries, list):
            raise AnsibleActionFail("files must be a list of entries (dicts with at least path)")
        module_entries = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("path"):
                raise AnsibleActionFail(f"files[{index}] must be a dict with a path, got {entry!r}")
            entry = dict(entry)
            if entry.get("template") is not None:
                if entry.get("content") is not None:
                    raise AnsibleActionFail(f"{entry['path']}: give template or content, not both")
                if entry.get("state", "file") != "file":
                    raise AnsibleActionFail(f"{entry['path']}: a template needs state=file")
                entry["content"] = self._render(entry, task_vars)
            entry.pop("template", None)
            entry.pop("vars", None)
            module_entries.append(entry)

        module_args = {"files": module_entries}
        if self._task.args.get("probe") is not None:
            module_args["probe"] = self._task.args["probe"]
        result.update(self._execute_module(
            module_name="djangoprod.stack.files",
            module_args=module_args,
            task_vars=task_vars,
        ))
        return result
