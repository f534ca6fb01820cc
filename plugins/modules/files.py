#!/usr/bin/python
# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several files, directories and links in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: files
short_description: Several files, directories, links and removals in one call
description:
  - Brings a list of paths to the state each entry gives, in one module call. An entry is a whole
    file with its content, a directory, a symbolic link or a removal, with owner, group and mode.
  - Entries are applied in list order, so a directory listed before a file in it exists when the
    file is written.
  - A file whose content differs is written to a temporary file beside it, checked with the
    entry's O(files[].validate) command when there is one, and then moved into place, so a file
    the daemon rejects never replaces the one it runs with.
  - The action plugin of the same name renders O(files[].template) entries on the controller, the
    way M(ansible.builtin.template) does, before the module runs; so templates, contents and
    directories of a role cost one round trip instead of several per path.
version_added: 0.2.0
author:
  - djangoprod.stack maintainers (@djangoprod)
options:
  files:
    description: The paths, in the order they are applied.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the managed host.
        type: path
        required: true
      state:
        description:
          - V(file) writes O(files[].content) (or the rendered O(files[].template)). A link at
            the path is followed, and the file it points to is written.
          - V(directory) creates the directory and any missing parents (as root, mode 0755).
          - V(link) makes a symbolic link to O(files[].src), replacing a link that points
            elsewhere; a file or directory at the path is an error.
          - V(absent) removes a file, link or directory tree.
          - Every O(files[].path) must be absolute, without C(.) or C(..) components.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The whole content of the file (V(state=file)).
        type: str
      template:
        description:
          - A template of the role, rendered on the controller by the action plugin into
            O(files[].content). Only the action plugin reads it.
        type: str
      vars:
        description: Variables visible to O(files[].template) only, such as the item of a list.
        type: dict
      src:
        description: Target of the link (V(state=link)).
        type: str
      owner:
        description: Owner name; unchanged when not set.
        type: str
      group:
        description: Group name; unchanged when not set.
        type: str
      mode:
        description:
          - Octal mode as a string, such as V('0640'); unchanged when not set (a new file gets
            0644, a new directory 0755).
        type: str
      backup:
        description:
          - Keep a copy of a file this call replaces, beside it, named as
            M(ansible.builtin.template) names its backups; RV(files[].backup_file) gives its path.
        type: bool
        default: false
      validate:
        description:
          - Command run before a changed file replaces the old one; V(%s) stands for the
            temporary file. A non-zero exit fails the task and leaves the old file in place.
        type: str
      unit_check:
        description:
          - Have C(systemd-analyze verify) read the new content of a systemd unit (C(.service),
            C(.socket), C(.timer), C(.path), C(.target)) or of a drop-in (a file in C(<unit>.d/))
            before anything of the call changes. A line it cannot parse (an unknown directive, a
            value it refuses such as C(ProtectSystem=maybe) or a calendar it cannot read), or a
            unit it refuses to load, fails the task with systemd's own words and nothing
            written. A command the unit runs that is not installed yet does not count.
          - Unset, it applies to the units and drop-ins under C(/etc/systemd/system/). Hosts
            without C(systemd-analyze) skip it.
        type: bool
  probe:
    description:
      - A command, as a list of arguments run without a shell, that reads the host's state
        before any entry is checked or applied, also in check mode; it must change nothing.
      - Its output comes back in RV(probe), so a role that reads state (units, versions) just
        before writing its files needs no module call of its own for it.
      - A non-zero exit fails the task with nothing written.
    type: list
    elements: str
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows each changed file's content, and each changed state, owner, group and mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Content is text (UTF-8). Entries whose content carries secrets belong in a task with
    C(no_log), as with M(ansible.builtin.template).
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write the Redis instance configs and their data directories
  djangoprod.stack.files:
    files:
      - path: /var/lib/redis/cache
        state: directory
        owner: redis
        group: redis
        mode: "0750"
      - path: /etc/redis/cache.conf
        template: etc/redis/instance.conf.j2
        vars:
          item: {name: cache, port: 6379}
        owner: root
        group: redis
        mode: "0640"
        validate: redis-server %s --test-memory 0
  notify: redis_restart

- name: Enable the site and drop the distribution's default
  djangoprod.stack.files:
    files:
      - path: /etc/nginx/sites-enabled/app.conf
        state: link
        src: /etc/nginx/sites-available/app.conf
      - path: /etc/nginx/sites-enabled/default
        state: absent
"""

RETURN = r"""
files:
  description: One entry per input entry, in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
    state:
      description: The state asked for.
      type: str
    changed:
      description: Whether this path changed (or would change, in check mode).
      type: bool
    backup_file:
      description: The copy of the replaced file, for entries with O(files[].backup).
      type: str
      returned: when a file with O(files[].backup) was replaced
probe:
  description: What the O(probe) command returned, read before any entry was applied.
  returned: when O(probe) is set
  type: dict
  contains:
    rc:
      description: Its exit status, always 0 (another fails the task).
      type: int
    stdout:
      description: Its standard output, without the trailing newline.
      type: str
    stdout_lines:
      description: RV(probe.stdout) split into lines.
      type: list
      elements: str
    stderr:
      description: Its standard error.
      type: str
changed_paths:
  description: The paths that changed (or would change, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [/etc/redis/cache.conf]
"""

import grp
import os
import pwd
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

# Content larger than this is not shown in a diff (the template module's limit).
MAX_DIFF = 104448


class EntryError(Exception):
    """A path that cannot be brought to its state; names the path."""


def _mode(value, path):
    if value is None:
        return None
    text = str(value)
    try:
        mode = int(text, 8)
    except ValueError:
        raise EntryError(f"{path}: mode {text!r} is not an octal number such as '0640'")
    if mode < 0 or mode > 0o7777:
        raise EntryError(f"{path}: mode {text!r} is out of range")
    return mode


def _uid(name, path, check_mode):
    if name is None:
        return None
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        if check_mode:  # an earlier task of the same run creates it
            return -1
        raise EntryError(f"{path}: owner {name!r} does not exist")


def _gid(name, path, check_mode):
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if check_mode:
            return -1
        raise EntryError(f"{path}: group {name!r} does not exist")


UNIT_DIR = "/etc/systemd/system/"
# A drop-in is read as a part of a stub unit of its type: what systemd needs to load the unit at all.
UNIT_STUBS = {".service": "[Service]\nExecStart=/bin/true\n",
              ".socket": "[Socket]\nListenStream=/run/djangoprod-unit-check.sock\n",
              ".timer": "[Timer]\nOnCalendar=daily\n",
              ".path": "[Path]\nPathExists=/\n",
              ".target": ""}


def _unit_candidate(path, entry):
    """(unit name, path of the candidate relative to the unit's directory) of an entry whose
    content systemd should read first, or None."""
    check = entry.get("unit_check")
    if check is False or (check is None and not path.startswith(UNIT_DIR)):
        return None
    parent, base = os.path.split(path)
    owner = os.path.basename(parent)
    # A template (name@.service) cannot be loaded as such: its instance name@check.service can.
    if owner.endswith(".d") and owner[:-2].endswith(tuple(UNIT_STUBS)):
        unit = owner[:-2].replace("@.", "@check.")
        return unit, f"{unit}.d/{base}"
    if base.endswith(tuple(UNIT_STUBS)):
        unit = base.replace("@.", "@check.")
        return unit, unit
    return None


def _unit_errors(module, candidates):
    """What systemd-analyze verify says is wrong with candidates [(path, unit, relative, data)]:
    one message per file, in one run of systemd-analyze for all of them."""
    exe = module.get_bin_path("systemd-analyze")
    if not candidates or not exe:
        return []
    top = tempfile.mkdtemp(prefix="djangoprod-unit-check-")
    try:
        units, files = [], {}
        for index, (path, unit, relative, data) in enumerate(candidates):
            here = os.path.join(top, str(index))
            os.makedirs(os.path.dirname(os.path.join(here, relative)))
            if relative != unit:
                with open(os.path.join(here, unit), "w", encoding="utf-8") as handle:
                    handle.write(UNIT_STUBS[os.path.splitext(unit)[1]])
            with open(os.path.join(here, relative), "wb") as handle:
                handle.write(data)
            units.append(os.path.join(here, unit))
            files[path] = (os.path.join(here, relative), unit if relative == unit else None)
        _rc, out, err = module.run_command([exe, "--man=no", "--recursive-errors=no", "verify"] + units)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    lines = (out + "\n" + err).splitlines()
    errors = []
    for path, (candidate, unit) in files.items():
        # Lines about the file itself (parse errors), and for a whole unit what makes systemd
        # refuse to load it; not a missing command or dependency, which a later step installs.
        said = [line.replace(candidate, path) for line in lines
                if line.startswith(candidate + ":")
                or (unit and line.startswith(unit + ":") and line.rstrip().endswith("Refusing."))]
        if said:
            errors.append(f"{path}: systemd cannot read the new content: " + " ".join(said))
    return errors


class Files:
    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.diffs = []
        self.backups = {}

    # -- attributes -------------------------------------------------------------------------
    def attrs(self, path, entry, st):
        """Owner, group and mode of an existing path; True when they change."""
        uid = _uid(entry.get("owner"), path, self.check)
        gid = _gid(entry.get("group"), path, self.check)
        mode = _mode(entry.get("mode"), path)
        before, after = {}, {}
        if uid is not None and uid != st.st_uid:
            before["owner"], after["owner"] = st.st_uid, entry["owner"]
        if gid is not None and gid != st.st_gid:
            before["group"], after["group"] = st.st_gid, entry["group"]
        if mode is not None and mode != stat.S_IMODE(st.st_mode):
            before["mode"], after["mode"] = f"{stat.S_IMODE(st.st_mode):04o}", f"{mode:04o}"
        if not after:
            return False
        self.diffs.append({"before_header": path, "after_header": path,
                           "before": before, "after": after})
        if not self.check:
            if "owner" in after or "group" in after:
                os.lchown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            if "mode" in after:
                os.chmod(path, mode)
        return True

    def new_attrs(self, target, entry, default_mode, path):
        """Owner, group and mode of target, just created for path."""
        uid = _uid(entry.get("owner"), path, False)
        gid = _gid(entry.get("group"), path, False)
        mode = _mode(entry.get("mode"), path)
        if uid is not None or gid is not None:
            os.chown(target, -1 if uid is None else uid, -1 if gid is None else gid)
        os.chmod(target, default_mode if mode is None else mode)

    def state_diff(self, path, before, after):
        self.diffs.append({"before_header": path, "after_header": path,
                           "before": {"path": path, "state": before},
                           "after": {"path": path, "state": after}})

    # -- states -----------------------------------------------------------------------------
    def absent(self, path, entry):
        if not os.path.lexists(path):
            return False
        st = os.lstat(path)
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
        self.state_diff(path, kind, "absent")
        if not self.check:
            if kind == "directory":
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return True

    def makedirs(self, path):
        """Missing parents of path, root-owned 0755 like the file module's."""
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent) and not self.check:
            os.makedirs(parent, 0o755, exist_ok=True)

    def directory(self, path, entry):
        if os.path.lexists(path):
            st = os.stat(path) if os.path.exists(path) else os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise EntryError(f"{path}: exists and is not a directory")
            return self.attrs(path, entry, st)
        _mode(entry.get("mode"), path)
        self.state_diff(path, "absent", "directory")
        if not self.check:
            os.makedirs(path, 0o755, exist_ok=True)
            self.new_attrs(path, entry, 0o755, path)
        return True

    def link(self, path, entry):
        src = entry.get("src")
        if not src:
            raise EntryError(f"{path}: state=link needs src")
        if os.path.islink(path):
            if os.readlink(path) == src:
                return False
            before = "link to " + os.readlink(path)
        elif os.path.lexists(path):
            raise EntryError(f"{path}: exists and is not a link; remove it first (state=absent)")
        else:
            before = "absent"
        self.state_diff(path, before, "link to " + src)
        if not self.check:
            self.makedirs(path)
            tmp = f"{path}.{os.getpid()}.tmp-link"
            os.symlink(src, tmp)
            os.replace(tmp, path)
        return True

    def file(self, path, entry):
        if os.path.islink(path):  # write the file the link points to, as template follow=true
            path = os.path.realpath(path)
        content = entry.get("content")
        if content is None:
            raise EntryError(f"{path}: state=file needs content or template")
        data = to_bytes(content, errors="surrogate_or_strict")
        _mode(entry.get("mode"), path)  # a bad mode fails before anything is written
        exists = os.path.lexists(path)
        old = None
        if exists:
            st = os.stat(path) if os.path.exists(path) else None
            if st is None or not stat.S_ISREG(st.st_mode):
                raise EntryError(f"{path}: exists and is not a regular file")
            with open(path, "rb") as handle:
                old = handle.read()
            if old == data:
                return self.attrs(path, entry, st)
        self.content_diff(path, old, data)
        if self.check:
            if exists:
                self.attrs(path, entry, st)
            return True
        self.makedirs(path)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if exists:  # keep the owner the entry leaves unset
                os.chown(tmp, st.st_uid, st.st_gid)
            self.new_attrs(tmp, entry, 0o644 if not exists else stat.S_IMODE(st.st_mode), path)
            if entry.get("validate"):
                self.validate(path, tmp, entry["validate"])
            if exists and entry.get("backup"):
                self.backups[entry["path"]] = self.module.backup_local(path)
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return True

    def content_diff(self, path, old, new):
        if len(new) > MAX_DIFF or (old is not None and len(old) > MAX_DIFF):
            self.diffs.append({"before_header": path, "after_header": path,
                               "before": "(content too large to show)\n",
                               "after": "(content too large to show)\n"})
            return
        self.diffs.append({"before_header": path if old is not None else f"{path} (absent)",
                           "after_header": path,
                           "before": to_text(old or b"", errors="surrogate_or_replace"),
                           "after": to_text(new, errors="surrogate_or_replace")})

    def validate(self, path, tmp, command):
        if "%s" not in command:
            raise EntryError(f"{path}: validate must contain %s (the file to check): {command!r}")
        rc, out, err = self.module.run_command(command.replace("%s", tmp), use_unsafe_shell=False)
        if rc != 0:
            raise EntryError(f"{path}: the new content failed validation ({command}), rc {rc}; "
                             f"the old file is left in place: {(err or out).strip()}")


def _changed_units(entries):
    """(entry, unit candidate, new content) of the unit files and drop-ins whose content changes."""
    for entry in entries:
        if entry["state"] != "file" or entry.get("content") is None:
            continue
        candidate = _unit_candidate(entry["path"], entry)
        if candidate is None:
            continue
        data = to_bytes(entry["content"], errors="surrogate_or_strict")
        try:
            with open(os.path.realpath(entry["path"]), "rb") as handle:
                if handle.read() == data:
                    continue
        except OSError:
            pass
        yield entry, candidate, data


def main():
    entry_spec = {
        "path": {"type": "path", "required": True},
        "state": {"type": "str", "default": "file", "choices": ["file", "directory", "link", "absent"]},
        "content": {"type": "str"},
        "template": {"type": "str"},
        "vars": {"type": "dict"},
        "src": {"type": "str"},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "str"},
        "validate": {"type": "str"},
        "unit_check": {"type": "bool"},
        "backup": {"type": "bool", "default": False},
    }
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True, "options": entry_spec},
                       "probe": {"type": "list", "elements": "str"}},
        supports_check_mode=True,
    )
    probe = None
    if module.params["probe"]:
        # Before anything else: the state the role decides on is the one before this call.
        rc, out, err = module.run_command(module.params["probe"])
        if rc != 0:
            module.fail_json(msg=f"the probe {module.params['probe']!r} failed, rc {rc} (nothing was changed): "
                                 f"{(err or out).strip()}", rc=rc, stdout=out, stderr=err, files=[], changed=False)
        out = out.rstrip("\n")
        probe = {"rc": rc, "stdout": out, "stdout_lines": out.splitlines(), "stderr": err.rstrip("\n")}
    files = Files(module)
    # Every entry is checked before the first one changes anything: a bad path, mode, owner or
    # group in the last entry must not leave the first ones written.
    problems = []
    for entry in module.params["files"]:
        path = entry["path"]
        if not os.path.isabs(path):
            problems.append(f"{path}: path must be absolute")
        # A "." or ".." component would make the entry act on another path than the one it names
        # (state=absent on /etc/logrotate.d/.. removes /etc).
        elif any(part in (".", "..") for part in path.split("/")):
            problems.append(f"{path}: path must not have '.' or '..' components")
        if entry.get("template") is not None and entry.get("content") is None:
            problems.append(f"{path}: template entries are rendered by the action plugin; "
                            "call the module as djangoprod.stack.files")
        if entry["state"] != "absent":
            try:
                _mode(entry.get("mode"), path)
                _uid(entry.get("owner"), path, module.check_mode)
                _gid(entry.get("group"), path, module.check_mode)
            except EntryError as exc:
                problems.append(str(exc))
    if not problems:
        problems = _unit_errors(module, [(entry["path"], *candidate, data)
                                         for entry, candidate, data in _changed_units(module.params["files"])])
    if problems:
        module.fail_json(msg="; ".join(problems) + " (nothing was changed)", files=[], changed=False,
                         **({"probe": probe} if probe is not None else {}))
    results, changed_paths = [], []
    for entry in module.params["files"]:
        path = entry["path"]
        try:
            changed = getattr(files, entry["state"])(path, entry)
        except (EntryError, OSError) as exc:
            module.fail_json(msg=str(exc), files=results, changed=bool(changed_paths),
                             changed_paths=changed_paths)
        results.append({"path": path, "state": entry["state"], "changed": changed})
        if path in files.backups:
            results[-1]["backup_file"] = files.backups[path]
        if changed:
            changed_paths.append(path)
    result = {"changed": bool(changed_paths), "files": results, "changed_paths": changed_paths}
    if probe is not None:
        result["probe"] = probe
    if module._diff and files.diffs:
        result["diff"] = files.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
