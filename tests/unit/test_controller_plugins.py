"""playbooks/controller.yml loads the template plugins on the controller before any host's task:
every entry playbook imports it before its first play, and its `hosts` template names a core test
and filter and, for each collection whose filters or tests the roles and playbooks use, one of
them (Jinja looks each one up when it compiles the template, which loads the collection's plugin
files). A filter of a collection it does not name would be loaded again by every forked task."""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
# A filter: `| ns.collection.name` or `map('ns.collection.name'`; a test: `is ns.collection.name`
# or `select('ns.collection.name'` (and reject, selectattr, rejectattr).
FILTER = r"(?:\|\s*|\bmap\(\s*')([a-z_]+\.[a-z_]+)\.[a-z_]+"
TEST = (r"(?:\bis\s+(?:not\s+)?|\b(?:select|reject)\(\s*'|\b(?:select|reject)attr\([^)]*?,\s*')"
        r"([a-z_]+\.[a-z_]+)\.[a-z_]+")


def _controller_hosts():
    plays = yaml.safe_load((PLAYBOOKS / "controller.yml").read_text(encoding="utf-8"))
    assert len(plays) == 1 and plays[0]["tasks"] == [] and plays[0]["gather_facts"] is False
    return plays[0]["hosts"]


def _collections_used(kind_pattern):
    used = set()
    for path in list((ROOT / "roles").rglob("*.yml")) + list((ROOT / "roles").rglob("*.j2")) + \
            list(PLAYBOOKS.rglob("*.yml")):
        if path.name == "controller.yml":
            continue
        for match in re.finditer(kind_pattern, path.read_text(encoding="utf-8")):
            used.add(match.group(1))
    return used


def test_the_controller_play_names_a_filter_of_each_collection_the_stack_uses():
    hosts = _controller_hosts()
    used = _collections_used(FILTER)
    assert {"djangoprod.stack", "community.general"} <= used, used
    named = set(re.findall(r"\|\s*([a-z_]+\.[a-z_]+)\.[a-z_]+", hosts))
    assert used - {"ansible.builtin"} <= named, sorted(used - named)


def test_the_controller_play_names_a_core_test_and_the_collections_tests():
    hosts = _controller_hosts()
    assert re.search(r"\bis\s+string\b", hosts), hosts
    used = _collections_used(TEST)
    named = set(re.findall(r"\bis\s+(?:not\s+)?([a-z_]+\.[a-z_]+)\.[a-z_]+", hosts))
    assert used <= named, sorted(used - named)


def test_the_controller_play_targets_every_host_whatever_the_branch():
    """The template's result is the pattern `all`: the branch naming the plugins is never taken."""
    hosts = _controller_hosts()
    assert hosts.startswith("{{ 'all' if 'all' is string"), hosts


def test_every_entry_playbook_imports_it_first():
    for name in ("small.yml", "medium.yml", "large.yml", "preflight.yml", "promote.yml", "backup.yml", "restore.yml"):
        plays = yaml.safe_load((PLAYBOOKS / name).read_text(encoding="utf-8"))
        assert plays[0].get("ansible.builtin.import_playbook") == "controller.yml", name
