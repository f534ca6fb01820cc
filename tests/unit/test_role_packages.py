"""The role_packages filter reads each role's fixed package list from the role itself."""

import pytest
import yaml
from ansible.errors import AnsibleFilterError

import packages

ROLES = packages.ROLES_DIR


def fixed_list(role):
    return yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())[f"__{role}_packages"]


def test_reads_each_roles_own_list():
    for role in ("postgresql", "nginx", "django", "logrotate", "certbot"):
        assert packages.role_packages([role]) == fixed_list(role)


def test_union_keeps_order_and_each_package_once():
    union = packages.role_packages(["postgresql", "django", "nginx"])
    assert union == list(dict.fromkeys(fixed_list("postgresql") + fixed_list("django") + fixed_list("nginx")))
    assert union.count("acl") == 1  # in both postgresql's and django's lists


@pytest.mark.parametrize("role", ["gunicorn", "celery", "static", "redis"])
def test_roles_without_a_fixed_list_add_nothing(role):
    # redis keeps its packages in its defaults (redis_packages), which the inventory may change:
    # the wiring reads them itself.
    assert packages.role_packages([role]) == []


def test_templated_list_is_refused():
    # common's list is built from its input: only the role itself can resolve it.
    with pytest.raises(AnsibleFilterError, match="__common_packages .* must be a list of package names"):
        packages.role_packages(["common"])


@pytest.mark.parametrize(
    "roles, message",
    [
        ("nginx", "list of role names"),
        (None, "list of role names"),
        ([""], "non-empty string"),
        ([3], "non-empty string"),
        (["mysql"], "no role 'mysql'"),
    ],
)
def test_refuses(roles, message):
    with pytest.raises(AnsibleFilterError, match=message):
        packages.role_packages(roles)
