"""Each tier's playbook refuses an inventory of the wrong shape before any host changes, and names
every group that does not fit. No host is contacted: the shape play only reads the inventory."""

import json
import os
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
GROUPS = ("web", "app", "worker", "beat", "postgres_primary", "postgres_replica", "redis", "redis_sentinel")


def inventory(tmp_path, **counts):
    """An inventory with counts[group] hosts per group, named <group><n>; a host that is never
    contacted (the connection would be local, and the shape play makes none)."""
    lines = ["all:", "  children:"]
    for group in GROUPS:
        n = counts.get(group, 0)
        lines.append(f"    {group}:")
        lines.append("      hosts:" + ("" if n else " {}"))
        lines += [f"        {group}{i}: {{ansible_connection: local}}" for i in range(1, n + 1)]
    path = tmp_path / "hosts.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args, cwd=ROOT):
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(["ansible-playbook", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def shape_only(tmp_path, tier, hosts, *args):
    """The tier's shape check alone (the same task file and shapes the tier playbooks import)."""
    play = tmp_path / "shape.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n"
        f"  vars_files: [{ROOT}/playbooks/vars/tiers.yml]\n"
        f"  vars: {{__stack_tier: {tier}}}\n"
        f"  tasks:\n    - ansible.builtin.import_tasks: {ROOT}/playbooks/tasks/tier_shape.yml\n")
    return run(["-i", str(hosts), str(play), *args])


SMALL = {"web": 1, "app": 1, "worker": 1, "beat": 1, "postgres_primary": 1, "redis": 1}
MEDIUM = {"web": 2, "app": 2, "worker": 2, "beat": 1, "postgres_primary": 1, "postgres_replica": 1, "redis": 2,
          "redis_sentinel": 1}
LARGE = {"web": 4, "app": 4, "worker": 4, "beat": 1, "postgres_primary": 1, "postgres_replica": 2, "redis": 3}


@pytest.mark.parametrize(("tier", "counts"), [
    ("small", SMALL),
    ("small", {**SMALL, "worker": 0, "beat": 0}),
    ("medium", MEDIUM),
    ("medium", {**MEDIUM, "web": 3, "app": 5, "postgres_replica": 2, "redis": 3}),
    ("large", LARGE),
])
def test_fitting_inventory_passes(tmp_path, tier, counts):
    rc, out = shape_only(tmp_path, tier, inventory(tmp_path, **counts))
    assert rc == 0, out[-3000:]


@pytest.mark.parametrize(("tier", "counts", "misfits"), [
    ("small", {**SMALL, "web": 2}, ["group 'web' has 2 hosts (web1, web2), it needs exactly 1"]),
    ("small", {**SMALL, "postgres_replica": 1},
     ["group 'postgres_replica' has 1 host (postgres_replica1), it needs no host"]),
    ("small", {**SMALL, "beat": 2}, ["group 'beat' has 2 hosts (beat1, beat2), it needs at most 1"]),
    ("small", {**SMALL, "redis": 0}, ["group 'redis' has 0 hosts, it needs exactly 1"]),
    ("medium", {**MEDIUM, "postgres_replica": 0, "redis": 1, "beat": 2},
     ["group 'postgres_replica' has 0 hosts, it needs at least 1",
      "group 'redis' has 1 host (redis1), it needs at least 2",
      "group 'beat' has 2 hosts (beat1, beat2), it needs exactly 1"]),
    ("medium", {**MEDIUM, "web": 1, "worker": 1},
     ["group 'web' has 1 host (web1), it needs at least 2",
      "group 'worker' has 1 host (worker1), it needs at least 2"]),
    ("large", {**LARGE, "app": 3, "postgres_replica": 1, "redis": 2, "beat": 0},
     ["group 'app' has 3 hosts (app1, app2, app3), it needs at least 4",
      "group 'postgres_replica' has 1 host (postgres_replica1), it needs at least 2",
      "group 'redis' has 2 hosts (redis1, redis2), it needs at least 3",
      "group 'beat' has 0 hosts, it needs exactly 1"]),
    ("large", MEDIUM, ["group 'web' has 2 hosts (web1, web2), it needs at least 4"]),
    # Two Redis hosts and no third Sentinel: no majority would remain to fail over.
    ("medium", {**MEDIUM, "redis_sentinel": 0},
     ["groups 'redis' and 'redis_sentinel' together have 2 hosts (redis1, redis2), they need at least 3"]),
    ("small", {**SMALL, "redis_sentinel": 1},
     ["group 'redis_sentinel' has 1 host (redis_sentinel1), it needs no host"]),
])
def test_tier_playbook_refuses_wrong_shape_naming_every_group(tmp_path, tier, counts, misfits):
    rc, out = run(["-i", str(inventory(tmp_path, **counts)), f"playbooks/{tier}.yml"])
    assert rc != 0
    flat = " ".join(out.split())
    assert f"This inventory does not have the {tier} tier's shape" in flat, out[-3000:]
    for misfit in misfits:
        assert misfit in flat, out[-3000:]
    # Nothing ran after the shape play: no preflight, no role.
    assert "TASK [Preflight" not in out and "djangoprod.stack." not in out.split("PLAY RECAP")[0]


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
def test_example_inventory_has_its_tier_shape_and_vaulted_secrets(tmp_path, tier):
    example = ROOT / "inventories" / tier
    password = tmp_path / "vault-password"
    password.write_text("example-vault-password-change-me\n")
    rc, out = shape_only(tmp_path, tier, example, "--vault-password-file", str(password))
    assert rc == 0, out[-3000:]
    first = next(iter(yaml.safe_load((example / "hosts.yml").read_text())["all"]["hosts"]))
    proc = subprocess.run(["ansible-inventory", "-i", str(example), "--vault-password-file", str(password),
                           "--host", first], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    host_vars = json.loads(proc.stdout)
    names = ["secret_key", "db_password", "redis_cache_password", "redis_broker_password"]
    if tier != "small":
        # Streaming replicas and Redis replicas with Sentinels.
        names += ["db_replication_password", "redis_replication_password", "redis_sentinel_password"]
    for name in names:
        assert len(host_vars[f"vault_stack_{name}"]) >= 24, name
        assert host_vars[f"stack_{name}"] == f"{{{{ vault_stack_{name} }}}}", name
    assert (example / "group_vars" / "all" / "vault.yml").read_text().startswith("$ANSIBLE_VAULT;")
