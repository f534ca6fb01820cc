"""The wiring gives each host's common role the fixed packages of the host's other roles (one apt
transaction on a first converge), read from the roles themselves; a Redis host's redis_packages,
the role's default unless the inventory sets them. No host is contacted: the ad-hoc run only
templates the playbooks' group_vars."""

import json
import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fixed(role):
    return yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())[f"__{role}_packages"]


REDIS = yaml.safe_load((ROOT / "roles" / "redis" / "defaults" / "main.yml").read_text())["redis_packages"]


def wired_packages(tmp_path, inventory):
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(inventory)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "json"}
    proc = subprocess.run(
        ["ansible", "all", "-i", str(hosts), "--playbook-dir", str(ROOT / "playbooks"),
         "-m", "ansible.builtin.debug", "-a", "var=common_packages_stack"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    return {host: value["common_packages_stack"]
            for play in result["plays"] for task in play["tasks"] for host, value in task["hosts"].items()}


INVENTORY = """
all:
  vars: {ansible_connection: local}
  children:
    web: {hosts: {web1: {}}}
    app: {hosts: {app1: {}}}
    worker: {hosts: {app1: {}, worker1: {}}}
    beat: {hosts: {worker1: {}}}
    postgres_primary: {hosts: {db1: {}}}
    postgres_replica: {hosts: {db2: {}}}
    redis: {hosts: {db1: {}, cache1: {}}}
    redis_sentinel: {hosts: {sentinel1: {}}}
"""


def test_each_host_gets_its_roles_packages(tmp_path):
    wired = wired_packages(tmp_path, INVENTORY)
    code = list(dict.fromkeys(fixed("django") + fixed("logrotate")))
    assert wired["web1"] == fixed("nginx") + fixed("certbot")
    assert wired["app1"] == code
    assert wired["worker1"] == code
    assert wired["db1"] == fixed("postgresql") + REDIS
    assert wired["db2"] == fixed("postgresql")
    assert wired["cache1"] == REDIS
    assert wired["sentinel1"] == REDIS
    assert REDIS == ["redis-server", "redis-tools"]


def test_a_redis_host_gets_the_packages_the_inventory_gives(tmp_path):
    wired = wired_packages(tmp_path, INVENTORY.replace("redis: {hosts: {db1: {}, cache1: {}}}",
                                                       "redis: {hosts: {db1: {}, cache1: {redis_packages: [valkey]}}}"))
    assert wired["cache1"] == ["valkey"]
    assert wired["db1"] == fixed("postgresql") + REDIS


def test_certbot_packages_only_where_certificates_come_from_acme(tmp_path):
    # With stack_acme_enabled: false no web host runs certbot.
    wired = wired_packages(tmp_path, INVENTORY.replace("vars: {ansible_connection: local}",
                                                       "vars: {ansible_connection: local, stack_acme_enabled: false}"))
    assert wired["web1"] == fixed("nginx")
