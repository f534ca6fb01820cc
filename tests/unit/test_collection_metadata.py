"""The collection's metadata agrees with itself and with what the code uses.

- meta/runtime.yml's requires_ansible starts at the ansible-core release the project tests with
  (requirements.txt), and every role's min_ansible_version says the same.
- galaxy.yml declares every collection that roles/, playbooks/ and plugins/ use by FQCN, and
  nothing else, each with a range from a lower bound to before the next major release that the
  version bundled in the pinned ansible package satisfies.
"""

import io
import json
import pathlib
import re
import tokenize
from importlib import metadata

import pytest
import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
SELF = "djangoprod.stack"
# Part of ansible-core, never a dependency.
BUILTIN = {"ansible.builtin", "ansible.legacy"}
SCANNED = ("roles", "playbooks", "plugins")

FQCN = re.compile(r"(?<![\w.$/-])([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b")
# Where only a plugin name can stand, whether or not the collection is installed here:
# a filter after "|", a test after "is", a lookup, or a filter/test given by name to map/select.
JINJA_PLUGIN = re.compile(
    r"(?:\|\s*|\bis\s+(?:not\s+)?"
    r"|\b(?:lookup|query|q)\(\s*['\"]"
    r"|\b(?:map|select|reject|selectattr|rejectattr)\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"])"
    r"([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z_][a-z0-9_]*")
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _pinned(package):
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(rf"^{re.escape(package)}==([\w.]+)\s*(#.*)?$", line.strip())
        if match:
            return Version(match.group(1))
    raise AssertionError(f"requirements.txt does not pin {package} with ==")


def _requires_ansible():
    runtime = _load(ROOT / "meta" / "runtime.yml")
    assert "requires_ansible" in runtime, "meta/runtime.yml has no requires_ansible"
    try:
        spec = SpecifierSet(str(runtime["requires_ansible"]))
    except InvalidSpecifier as exc:
        raise AssertionError(f"meta/runtime.yml: requires_ansible is not a version range: {exc}") from None
    lower = [s for s in spec if s.operator == ">="]
    assert len(lower) == 1, f"meta/runtime.yml: requires_ansible {str(spec)!r} needs exactly one '>=' bound"
    return spec, Version(lower[0].version)


def _major_minor(version):
    return (version.major, version.minor)


# requires_ansible and min_ansible_version

def test_requires_ansible_starts_at_the_tested_core():
    spec, minimum = _requires_ansible()
    tested = _pinned("ansible-core")
    assert tested in spec, f"meta/runtime.yml: requires_ansible {str(spec)!r} excludes the tested ansible-core {tested}"
    assert _major_minor(minimum) == _major_minor(tested), (
        f"meta/runtime.yml: requires_ansible starts at {minimum}, but the collection is tested with "
        f"ansible-core {tested} (requirements.txt): the minimum should be {tested.major}.{tested.minor}.0")


@pytest.mark.parametrize("role", ROLES)
def test_role_min_ansible_version_matches_requires_ansible(role):
    minimum = _requires_ansible()[1]
    galaxy_info = _load(ROOT / "roles" / role / "meta" / "main.yml").get("galaxy_info") or {}
    assert "min_ansible_version" in galaxy_info, f"roles/{role}/meta/main.yml: no galaxy_info.min_ansible_version"
    declared = str(galaxy_info["min_ansible_version"])
    assert Version(declared) == minimum, (
        f"roles/{role}/meta/main.yml: min_ansible_version {declared!r} differs from "
        f"meta/runtime.yml's requires_ansible minimum {minimum}")


# galaxy.yml dependencies

def _installed_collections():
    """namespace.name -> version of the collections the installed ansible package bundles."""
    try:
        base = pathlib.Path(metadata.distribution("ansible").locate_file("ansible_collections"))
    except metadata.PackageNotFoundError:
        return {}
    found = {}
    for manifest in base.glob("*/*/MANIFEST.json"):
        info = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]
        found[f"{info['namespace']}.{info['name']}"] = info["version"]
    return found


def _without_comments(path, text):
    """The code of a file, without its comments (a comment naming a module is not a use)."""
    if path.suffix in (".yml", ".yaml"):
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if path.suffix == ".j2":
        return re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)
    if path.suffix == ".py":
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        return tokenize.untokenize((tok.type, tok.string) for tok in tokens if tok.type != tokenize.COMMENT)
    return text


def _task_modules(node):
    """Collection names of the modules (and roles) in the tasks of a parsed YAML document."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str) and key.count(".") == 2 and FQCN.fullmatch(key):
                        yield key.rsplit(".", 1)[0]
                for name in ("include_role", "import_role", "ansible.builtin.include_role",
                             "ansible.builtin.import_role"):
                    role = (item.get(name) or {}).get("name") if isinstance(item.get(name), dict) else None
                    if isinstance(role, str) and FQCN.fullmatch(role):
                        yield role.rsplit(".", 1)[0]
            yield from _task_modules(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "roles" and isinstance(value, list):
                for role in value:
                    name = role.get("role") or role.get("name") if isinstance(role, dict) else role
                    if isinstance(name, str) and FQCN.fullmatch(name):
                        yield name.rsplit(".", 1)[0]
            if key in TASK_LISTS or isinstance(value, (list, dict)):
                yield from _task_modules(value)


def _used_collections():
    """namespace.name -> files under roles/, playbooks/ and plugins/ that use it by FQCN."""
    installed = set(_installed_collections())
    used = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix == ".md" or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            code = _without_comments(path, text)
            names = {f"{m.group(1)}.{m.group(2)}" for m in FQCN.finditer(code)} & installed
            names |= {m.group(1) for m in JINJA_PLUGIN.finditer(code)}
            if path.suffix in (".yml", ".yaml"):
                try:
                    names |= set(_task_modules(yaml.safe_load(text)))
                except yaml.YAMLError:
                    pass
            for name in names - BUILTIN - {SELF}:
                used.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return used


def _dependencies():
    deps = _load(ROOT / "galaxy.yml").get("dependencies") or {}
    assert isinstance(deps, dict), "galaxy.yml: dependencies must be a mapping of collection to version range"
    return deps


def test_collection_uses_something():
    # A guard for the scanner itself: the roles use community.postgresql modules.
    assert "community.postgresql" in _used_collections()


def test_every_used_collection_is_declared():
    deps = _dependencies()
    missing = {name: files for name, files in _used_collections().items() if name not in deps}
    assert not missing, "galaxy.yml: dependencies lack collections used by FQCN: " + "; ".join(
        f"{name} (in {', '.join(files[:5])}{', ...' if len(files) > 5 else ''})"
        for name, files in sorted(missing.items()))


def test_every_declared_collection_is_used():
    used = _used_collections()
    unused = sorted(name for name in _dependencies() if name not in used)
    assert not unused, (
        f"galaxy.yml: dependencies declare {', '.join(unused)}, but nothing under "
        f"{', '.join(s + '/' for s in SCANNED)} uses it by FQCN")


def test_dependencies_exclude_self_and_builtin():
    wrong = sorted(set(_dependencies()) & (BUILTIN | {SELF}))
    assert not wrong, f"galaxy.yml: dependencies must not list {', '.join(wrong)}"


@pytest.mark.parametrize("name", sorted(_load(ROOT / "galaxy.yml").get("dependencies") or {}))
def test_dependency_range_is_bounded_and_holds_the_bundled_version(name):
    text = str(_dependencies()[name])
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        raise AssertionError(f"galaxy.yml: {name}: {text!r} is not a version range") from None
    lower = [Version(s.version) for s in spec if s.operator == ">="]
    upper = [Version(s.version) for s in spec if s.operator == "<"]
    assert len(lower) == 1 and len(upper) == 1 and len(spec) == 2, (
        f"galaxy.yml: {name}: {text!r} should be '>=X.Y.Z,<N.0.0' (one lower and one upper bound)")
    assert upper[0] == Version(f"{lower[0].major + 1}.0.0"), (
        f"galaxy.yml: {name}: {text!r} should end before the next major release, <{lower[0].major + 1}.0.0")
    pinned = _pinned("ansible")
    try:
        installed = Version(metadata.version("ansible"))
    except metadata.PackageNotFoundError:
        pytest.skip("the ansible package is not installed, so bundled versions cannot be checked")
    if installed != pinned:
        pytest.skip(f"ansible {installed} is installed, not the pinned {pinned}: bundled versions not checked")
    bundled = _installed_collections().get(name)
    assert bundled is not None, (
        f"galaxy.yml: {name} is not among the collections ansible {pinned} bundles "
        f"(the test machines install dependencies from that package, not from Galaxy)")
    assert Version(bundled) in spec, (
        f"galaxy.yml: {name}: {text!r} excludes {bundled}, the version ansible {pinned} bundles")
