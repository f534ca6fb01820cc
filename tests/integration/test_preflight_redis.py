"""The preflight refuses a Redis layout that cannot work, before any role runs, and says why:
too few Sentinels to fail over, Sentinels without replication, a cache spread over one host.
The hosts are this machine (local connection): the preflight only gathers facts and reads the
inventory."""

import sys

import pytest
import yaml
from test_tier_shapes import ROOT, inventory, run

STACK = {
    "stack_app_name": "demo",
    "stack_domains": ["demo.example.test"],
    "stack_acme_enabled": False,
    "stack_django_settings_module": "demo.settings",
    "stack_wsgi_app": "demo.wsgi:application",
    "stack_secret_key": "preflight-test-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ",
    "stack_db_password": "preflight-test-db-password",
    "stack_redis_cache_password": "preflight-test-cache-password",
    "stack_redis_replication_password": "preflight-test-replication-password",
    "stack_redis_sentinel_password": "preflight-test-sentinel-password",
}
BASE = {"web": 1, "app": 1, "postgres_primary": 1}


@pytest.mark.parametrize(("counts", "extra", "message"), [
    ({"redis": 2}, {},
     ("With 2 hosts in group redis, Redis runs with Sentinels on the hosts of groups redis and redis_sentinel, "
     "and they need at least 3 hosts to fail over (a majority must remain): found redis1, redis2.")),
    ({"redis": 1, "redis_sentinel": 1}, {},
     "Group redis_sentinel (redis_sentinel1) runs Sentinels, which only a group redis of two or more hosts needs."),
    ({"redis": 1}, {"stack_redis_cache_sharded": True},
     ("stack_redis_cache_sharded: true spreads the cache over the hosts of group redis, and it has 1: "
     "put at least two hosts in group redis")),
])
def test_a_redis_layout_that_cannot_work_stops_the_preflight(tmp_path, counts, extra, message):
    variables = tmp_path / "stack.yml"
    # The facts come from this Python (the one running the tests), not the first python3 on PATH.
    variables.write_text(yaml.safe_dump({**STACK, **extra, "ansible_python_interpreter": sys.executable}))
    rc, out = run(["-i", str(inventory(tmp_path, **BASE, **counts)), "-e", f"@{variables}",
                   str(ROOT / "playbooks" / "preflight.yml")])
    flat = " ".join(out.split())
    assert rc != 0, out[-3000:]
    assert message in flat, out[-3000:]
    assert "TASK [Preflight | Check the site, the inventory groups and the Redis Sentinels]" in out, out[-3000:]


@pytest.mark.parametrize(("extra", "message"), [
    ({"redis_broker_enabled": True},
     "redis_broker_password is required while redis_broker_enabled is true (keep it in a vault file)"),
    ({"redis_replication_enabled": True, "redis_replication_password": ""},
     "replication needs redis_address and redis_replication_password"),
    ({"redis_sentinel_addresses": ["10.0.0.7"], "redis_sentinel_password": ""},
     "a Sentinel (or redis_sentinel_addresses) needs redis_address and redis_sentinel_password"),
])
def test_redis_settings_a_role_cannot_run_with_stop_the_preflight(tmp_path, extra, message):
    """What the broker, replication and Sentinels need when they are on is the redis role's own
    check (tasks/checks.yml): the preflight runs it on the Redis hosts before any host changes
    (limited to the Redis host: the other roles' checks would want an app to deploy)."""
    variables = tmp_path / "stack.yml"
    variables.write_text(yaml.safe_dump({**STACK, **extra, "ansible_python_interpreter": sys.executable}))
    rc, out = run(["-i", str(inventory(tmp_path, **BASE, redis=1)), "-e", f"@{variables}", "--limit", "redis1",
                   str(ROOT / "playbooks" / "preflight.yml")])
    flat = " ".join(out.split())
    assert rc != 0, out[-3000:]
    assert message in flat, out[-3000:]
    assert "TASK [djangoprod.stack.redis : Check the role's input against meta/input_rules.yml]" in out, out[-3000:]
