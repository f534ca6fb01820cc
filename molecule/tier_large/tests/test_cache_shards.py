"""The large tier's cache: spread over the three Redis hosts (django-redis's ShardClient), each
host's cache instance a primary of its own that no Sentinel watches, while the broker beside it
replicates and fails over. Keys set through the app land on every shard, each on exactly one;
losing a shard turns only its keys into misses, at once when its Redis is stopped and within the
connect timeout when its host hangs, and no cache call raises."""

import json
import shlex
import subprocess
from urllib.parse import urlsplit

import pytest

from helpers.stack import Site, address, env_file, fleet, journal

DOMAIN = "demo.example.test"
SHARDS = ("redis1", "redis2", "app1")
ADMIN_PASSWORD = "test-only-redis-admin-password"
SENTINEL_PASSWORD = "test-only-sentinel-password"
KEYS = 300


@pytest.fixture(scope="module")
def hosts():
    return fleet()


def redis(host, *command, port=6379, password=ADMIN_PASSWORD):
    """redis-cli as the admin user (a Sentinel has only its password)."""
    login = ["--user", "admin"] if port != 26379 else []
    argv = ["redis-cli", "--no-auth-warning", "-p", str(port), *login, "--pass", password, *command]
    return host.check_output(" ".join(shlex.quote(a) for a in argv))


def app_cache(app, code):
    """Run code in the app's Django shell (as the app user, through the stack's manage wrapper)
    with `cache` imported; it prints one JSON document, returned parsed."""
    script = "import json\nfrom django.core.cache import cache\n" + code
    result = app.run(f"demo-manage shell -c {shlex.quote(script)}")
    assert result.rc == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


SET_KEYS = f"""
keys = [f"spread:{{i}}" for i in range({KEYS})]
for key in keys:
    cache.set(key, key, 600)
shard = {{key: cache.client.get_server_name(cache.client.make_key(key)) for key in keys}}
print(json.dumps(shard))
"""

READ_KEYS = f"""
import time
started = time.monotonic()
values = {{}}
for i in range({KEYS}):
    values[f"spread:{{i}}"] = cache.get(f"spread:{{i}}")
cache.set("spread:written-while-one-is-lost", "yes", 60)
print(json.dumps({{"values": values, "seconds": time.monotonic() - started}}))
"""


@pytest.fixture(scope="module")
def placement(hosts):
    """{key: shard host name}, for keys set through the app."""
    addresses = {address(hosts[name]): name for name in SHARDS}
    shard = app_cache(hosts["app1"], SET_KEYS)
    return {key: addresses[urlsplit(url).hostname] for key, url in shard.items()}


def test_the_app_lists_every_shard_and_no_cache_primary(hosts):
    values = env_file(hosts["app1"])
    urls = values["CACHE_URL"].split(",")
    # In the inventory's order of group redis, the same on every client.
    order = hosts["app1"].ansible("debug", "var=groups.redis", check=False)["groups.redis"]
    assert sorted(order) == sorted(SHARDS), order
    assert [urlsplit(url).hostname for url in urls] == [address(hosts[name]) for name in order], (urls, order)
    assert all(urlsplit(url).port == 6379 and urlsplit(url).username == "app" for url in urls), urls
    assert "CACHE_MASTER_NAME" not in values
    assert values["CELERY_BROKER_MASTER_NAME"] == "demo-broker"
    assert len(values["REDIS_SENTINELS"].split(",")) == 3


def test_keys_land_on_every_shard_and_on_one_only(hosts, placement):
    counts = {name: int(redis(hosts[name], "DBSIZE")) for name in SHARDS}
    expected = {name: sum(1 for shard in placement.values() if shard == name) for name in SHARDS}
    # Nothing replicates the cache: the three hold KEYS keys between them, each where the app put it.
    assert counts == expected, (counts, expected)
    assert sum(counts.values()) == KEYS
    assert all(count >= KEYS // 6 for count in counts.values()), counts
    for key, name in list(placement.items())[:30]:
        assert redis(hosts[name], "EXISTS", f":1:{key}") == "1", (key, name)


def test_each_cache_is_a_primary_and_the_sentinels_watch_only_the_broker(hosts):
    for name in SHARDS:
        info = redis(hosts[name], "INFO", "replication")
        assert "role:master" in info and "connected_slaves:0" in info, (name, info)
    for name in SHARDS:
        masters = redis(hosts[name], "SENTINEL", "MASTERS", port=26379, password=SENTINEL_PASSWORD)
        assert "demo-broker" in masters and "demo-cache" not in masters, (name, masters)
    # The broker still has one primary and two replicas.
    roles = sorted("role:master" in redis(hosts[name], "INFO", "replication", port=6380) for name in SHARDS)
    assert roles == [False, False, True], roles


def _read_all(app):
    return app_cache(app, READ_KEYS)


def test_a_lost_shard_costs_only_its_keys(hosts, placement):
    app, lost = hosts["app1"], hosts["redis2"]
    site = Site(app, DOMAIN)
    lost.run_test("systemctl stop redis-server@cache.service")
    try:
        result = _read_all(app)
        missed = {key for key, value in result["values"].items() if value is None}
        assert missed == {key for key, name in placement.items() if name == "redis2"}, sorted(missed)[:10]
        assert all(value == key for key, value in result["values"].items() if key not in missed)
        # Refused at once: the whole read of KEYS keys stays quick.
        assert result["seconds"] < 10, result["seconds"]
        status, _headers, _body = site.request("GET", "/health/")
        assert status == 200
    finally:
        lost.run_test("systemctl start redis-server@cache.service")

    # A host that hangs (frozen): each of its keys waits for the client's timeouts (0.5 s to
    # connect, 1 s to answer), no longer, and the other shards answer at once.
    timed_get = ("import time\nstarted = time.monotonic()\nvalue = cache.get({key!r})\n"
                 "print(json.dumps({{'value': value, 'seconds': time.monotonic() - started}}))")
    lost_key = next(key for key, name in placement.items() if name == "redis2")
    kept_key = next(key for key, name in placement.items() if name == "redis1")
    subprocess.run(["docker", "pause", "redis2"], check=True, capture_output=True, timeout=60)
    try:
        hung = app_cache(app, timed_get.format(key=lost_key))
        kept = app_cache(app, timed_get.format(key=kept_key))
    finally:
        subprocess.run(["docker", "unpause", "redis2"], check=True, capture_output=True, timeout=60)
    assert hung["value"] is None and hung["seconds"] < 2.5, hung
    assert kept["value"] == kept_key and kept["seconds"] < 0.5, kept
    assert redis(hosts["redis2"], "PING") == "PONG", journal(hosts["redis2"], "redis-server@cache.service")
