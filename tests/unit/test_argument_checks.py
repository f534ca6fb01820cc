"""Input the roles refuse through their argument specs, before anything changes on a host, with a
message that names the variable. The specs are checked the way Ansible checks a role's entry
point (ArgumentSpecValidator), option by option, so templated defaults play no part."""

import pathlib

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _option(role, name):
    path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
    return {name: spec[name]}


def _errors(role, name, value):
    result = ArgumentSpecValidator(_option(role, name)).validate({name: value})
    return [str(error) for error in result.errors]


def _hba_entry(method):
    return [{"database": "demo", "user": "demo", "address": "10.0.0.5/32", "method": method}]


@pytest.mark.parametrize("method", ["trust", "password", "md5", "ident", "SCRAM-SHA-256"])
def test_weak_pg_hba_methods_are_refused(method):
    errors = _errors("postgresql", "postgresql_hba_entries", _hba_entry(method))
    assert errors, method
    assert any("postgresql_hba_entries" in error and "method" in error for error in errors), errors


@pytest.mark.parametrize("method", ["scram-sha-256", "peer", "cert", "reject"])
def test_strong_pg_hba_methods_are_accepted(method):
    assert _errors("postgresql", "postgresql_hba_entries", _hba_entry(method)) == []


def test_pg_hba_method_defaults_to_scram():
    entry = [{"database": "demo", "user": "demo", "address": "10.0.0.5/32"}]
    result = ArgumentSpecValidator(_option("postgresql", "postgresql_hba_entries")).validate(
        {"postgresql_hba_entries": entry})
    assert result.error_messages == []
    assert result.validated_parameters["postgresql_hba_entries"][0]["method"] == "scram-sha-256"


@pytest.mark.parametrize(("role", "name", "value"), [
    ("nginx", "nginx_hardening_enabled", "maybe"),
    ("nginx", "nginx_hardening_properties", ["ProtectSystem=full"]),
    ("redis", "redis_hardening_properties", ["ProtectSystem=full"]),
    ("redis", "redis_acl_denied_commands", {"@dangerous": True}),
    ("postgresql", "postgresql_hardening_enabled", "maybe"),
    ("postgresql", "postgresql_hardening_properties", ["User=root"]),
])
def test_bad_hardening_input_is_refused(role, name, value):
    errors = _errors(role, name, value)
    assert errors and any(name in error for error in errors), errors
