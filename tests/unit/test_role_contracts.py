"""Each role's argument spec mirrors its defaults one to one, and carries what STYLE.md asks."""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _spec(role):
    spec = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")
    return spec["argument_specs"]["main"]["options"]


def test_the_roles_are_the_collections_list():
    role_map = _load(ROOT / "playbooks" / "group_vars" / "all" / "roles.yml")["__stack_role_map"]
    assert ROLES == sorted(role_map), "roles/ and the role map (playbooks/group_vars/all/roles.yml) disagree"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_the_expected_files(role):
    base = ROOT / "roles" / role
    for rel in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml",
                "tasks/main.yml", "README.md"):
        assert (base / rel).is_file(), f"{role}: missing {rel}"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_agree(role):
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    spec = _spec(role)
    missing_in_spec = sorted(set(defaults) - set(spec))
    assert not missing_in_spec, f"{role}: defaults without an argument spec entry: {missing_in_spec}"
    for name, option in spec.items():
        assert name.startswith(f"{role}_"), f"{role}: {name} lacks the role prefix"
        assert "type" in option, f"{role}: {name} has no explicit type"
        assert option.get("description"), f"{role}: {name} has no description"
        if option.get("required"):
            assert "default" not in option, f"{role}: required {name} has a default in the spec"
            assert name not in defaults, f"{role}: required {name} has a default in defaults/main.yml"
            continue
        if option.get("no_log") and "default" not in option:
            # A secret required only in some configurations (the role checks when): no default.
            assert name not in defaults, f"{role}: secret {name} has a default in defaults/main.yml"
            continue
        assert name in defaults, f"{role}: {name} is optional in the spec but not in defaults/main.yml"
        assert option.get("default") == defaults[name], (
            f"{role}: {name} default differs: spec {option.get('default')!r} vs defaults {defaults[name]!r}")


def _walk_secret_options(options, prefix=""):
    for name, option in (options or {}).items():
        path = f"{prefix}{name}"
        if option.get("no_log"):
            yield path, option
        yield from _walk_secret_options(option.get("options"), prefix=f"{path}.")


@pytest.mark.parametrize("role", ROLES)
def test_secrets_have_no_defaults(role):
    for path, option in _walk_secret_options(_spec(role)):
        # An empty value (no secret given) is the only default a secret may have.
        assert "default" not in option or option["default"] in ("", None, []), (
            f"{role}: secret {path} has a default")


@pytest.mark.parametrize("role", ROLES)
def test_templates_carry_the_managed_header(role):
    templates = ROOT / "roles" / role / "templates"
    for path in templates.rglob("*.j2") if templates.is_dir() else []:
        first = path.read_text(encoding="utf-8").lstrip().splitlines()[0:3]
        assert any("ansible_managed" in line for line in first), f"{path} has no ansible_managed header"


@pytest.mark.parametrize("role", ROLES)
def test_handlers_have_listen_topics(role):
    handlers_file = ROOT / "roles" / role / "handlers" / "main.yml"
    if not handlers_file.is_file():
        pytest.skip(f"{role} has no handlers")
    for handler in _load(handlers_file) or []:
        assert handler["name"][0].isupper(), f"{role}: handler {handler['name']} is not capitalised"
        assert handler.get("listen"), f"{role}: handler {handler['name']} has no listen topic"
