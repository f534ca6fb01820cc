"""The role map (playbooks/group_vars/all/roles.yml) is the one place that says which role runs
on which groups: site.yml's plays must agree with it, and it must name every role of the
collection."""

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE_MAP = yaml.safe_load((ROOT / "playbooks/group_vars/all/roles.yml").read_text())["__stack_role_map"]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
GROUPS = {"all", "web", "app", "worker", "beat", "postgres_primary", "postgres_replica", "redis",
          "redis_sentinel"}


def _site_roles():
    """{role: (play host groups, when conditions)} from playbooks/site.yml: its plays' `roles:`
    and the import_role/include_role tasks of their `tasks:`."""
    found = {}
    for play in yaml.safe_load((ROOT / "playbooks/site.yml").read_text()):
        entries = [(entry["role"], entry.get("when", [])) for entry in play.get("roles", [])]
        for task in play.get("tasks", []):
            for action in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                if action in task:
                    entries.append((task[action]["name"], task.get("when", [])))
        groups = set(play["hosts"].split(":")) if entries else set()
        for role, when in entries:
            name = role.removeprefix("djangoprod.stack.")
            entry = (groups, [when] if isinstance(when, str) else when)
            # A role entered in two halves (tasks/stack_build.yml, then tasks/stack.yml) runs
            # them on the same hosts, under the same condition.
            assert name not in found or found[name] == entry, f"site.yml runs role {name} on other hosts in two plays"
            found[name] = entry
    return found


def test_the_map_names_every_role_of_the_collection():
    assert sorted(ROLE_MAP) == ROLES


@pytest.mark.parametrize("role", sorted(ROLE_MAP))
def test_map_groups_are_inventory_groups(role):
    assert ROLE_MAP[role] and set(ROLE_MAP[role]) <= GROUPS, (role, ROLE_MAP[role])


def test_site_runs_every_mapped_role():
    assert sorted(_site_roles()) == sorted(ROLE_MAP)


@pytest.mark.parametrize("role", sorted(ROLE_MAP))
def test_site_play_matches_the_map(role):
    groups, when = _site_roles()[role]
    mapped = set(ROLE_MAP[role])
    # The play covers the role's groups ...
    assert mapped <= groups or groups == {"all"}, f"{role}: play hosts {groups} miss {mapped - groups}"
    # ... and a play wider than the role limits the role to the map's hosts, by the map.
    if groups != mapped:
        limit = f"inventory_hostname in __stack_role_hosts.{role}"
        assert limit in when, f"{role}: play hosts {groups} are wider than the map's {mapped}; add `when: {limit}`"
    else:
        # The map may still leave a role out (certbot with stack_acme_enabled: false): the
        # condition, when there is one, is the map's and nothing else.
        limit = f"inventory_hostname in __stack_role_hosts.{role}"
        assert when in ([], [limit]), f"{role}: a condition other than the map's: {when}"


def test_preflight_and_wiring_derive_hosts_from_the_map():
    preflight = (ROOT / "playbooks/preflight.yml").read_text()
    wiring = (ROOT / "playbooks/group_vars/all/wiring.yml").read_text()
    assert "__stack_role_hosts" in preflight
    # No host list of a role is spelled out again from groups in the wiring.
    spelled = re.findall(r"groups\['(app|worker|beat|web)'\]", wiring)
    assert "__stack_role_hosts.gunicorn" in wiring and "__stack_role_hosts.django" in wiring
    assert set(spelled) <= {"worker", "beat"}, spelled  # which Celery units a host runs


def _site_role_tasks():
    for play in yaml.safe_load((ROOT / "playbooks/site.yml").read_text()):
        assert not play.get("roles"), f"{play['name']}: a role under roles: enters through tasks/main.yml"
        for task in play.get("tasks", []):
            for action in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                if action in task:
                    yield task[action]


@pytest.mark.parametrize("role", ROLES)
def test_the_stack_enters_each_role_where_its_spec_is_not_checked_again(role):
    """site.yml enters every role through tasks/stack.yml (django in two halves, tasks/stack_build.yml
    early and tasks/stack.yml), which runs what tasks/main.yml runs but the role's fact gathering
    and input checks, and has no argument spec: the preflight gathered the facts and checked the
    input against the role's main spec and rules. The role run on its own keeps its main spec."""
    entries = {}
    for entry in _site_role_tasks():
        entries.setdefault(entry["name"].removeprefix("djangoprod.stack."), []).append(entry.get("tasks_from"))
    assert entries[role] in (["stack"], ["stack_build", "stack"]), f"site.yml enters {role} through {entries[role]}"

    def tasks(name):
        return yaml.safe_load((ROOT / "roles" / role / "tasks" / name).read_text())

    # Together, the entry points import what tasks/main.yml imports, in the same order: all it
    # does besides is gather the role's facts and check its input, which the preflight did.
    main = tasks("main.yml")
    entered = [task.get("ansible.builtin.import_tasks") for name in entries[role] for task in tasks(f"{name}.yml")]
    imported = [task["ansible.builtin.import_tasks"] for task in main if "ansible.builtin.import_tasks" in task]
    assert entered == imported, role
    others = [task["name"] for task in main if "ansible.builtin.import_tasks" not in task]
    assert others in (["Check the role's input"], ["Gather the facts this role needs", "Check the role's input"]), role
    checks = next(task for task in main if task["name"] == "Check the role's input")
    assert checks["ansible.builtin.include_tasks"]["file"] == "checks.yml", role
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert "main" in specs and "stack" not in specs, role
