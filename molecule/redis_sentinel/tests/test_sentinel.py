"""Replication and Sentinel: two Redis hosts and a Sentinel-only host, converged by the redis
role. The replicas follow the primary, three Sentinels watch both primaries, a lost primary host
is failed over with its acknowledged writes, and a re-run afterwards keeps the promoted primary
without restarting anything."""

import pathlib
import subprocess
import uuid

import pytest

from helpers.stack import address, fleet, journal, main_pid, playbook, wait_for

PRIMARY, REPLICA, SENTINEL_ONLY = "rs-redis1", "rs-redis2", "rs-sentinel"
INSTANCES = {"cache": (6379, "cache-secret-for-tests"), "broker": (6380, "broker-secret-for-tests")}
ADMIN = ("admin", "admin-secret-for-tests")
SENTINEL_PASSWORD = "sentinel-secret-for-tests"
NAMES = {"cache": "djangoprod-cache", "broker": "djangoprod-broker"}


@pytest.fixture(scope="module")
def hosts():
    return fleet()


@pytest.fixture(scope="module")
def addresses(hosts):
    return {name: address(host) for name, host in hosts.items()}


def redis(host, instance, *args, admin=False, password=None):
    port, secret = INSTANCES[instance]
    user, secret = ADMIN if admin else ("app", password or secret)
    quoted = " ".join(f"'{arg}'" for arg in args)
    return host.run(f"redis-cli --no-auth-warning -p {port} --user {user} --pass {secret} {quoted}")


def sentinel(host, *args, password=SENTINEL_PASSWORD):
    auth = f"--no-auth-warning --pass {password} " if password else ""
    quoted = " ".join(f"'{arg}'" for arg in args)
    return host.run(f"redis-cli {auth}-p 26379 {quoted}")


def role(host, instance):
    return redis(host, instance, "ROLE", admin=True).stdout.split()[0]


def master(host, name):
    lines = sentinel(host, "SENTINEL", "MASTER", name).stdout.split()
    return dict(zip(lines[::2], lines[1::2]))


def primary_seen_by(host, instance):
    return sentinel(host, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAMES[instance]).stdout.split()[:1]


def test_replicas_copy_the_primary_and_refuse_writes(hosts):
    for instance in INSTANCES:
        assert role(hosts[PRIMARY], instance) == "master", journal(hosts[PRIMARY], f"redis-server@{instance}")
        assert role(hosts[REPLICA], instance) == "slave", journal(hosts[REPLICA], f"redis-server@{instance}")
        key, value = f"probe:{uuid.uuid4().hex}", uuid.uuid4().hex
        assert redis(hosts[PRIMARY], instance, "SET", key, value).stdout.strip() == "OK"
        assert wait_for(lambda key=key, instance=instance, value=value:
                        redis(hosts[REPLICA], instance, "GET", key).stdout.strip() == value, timeout=10)
        refused = redis(hosts[REPLICA], instance, "SET", key, "other").stdout
        assert refused.startswith("READONLY"), refused


def test_the_replication_and_sentinel_users_can_do_only_their_part(hosts):
    # Their passwords are not the application's: the app's password does not log in as them, and
    # they cannot read or write data.
    primary = hosts[PRIMARY]
    for user, secret in (("replica", "replication-secret-for-tests"), ("sentinel", SENTINEL_PASSWORD)):
        out = primary.run(f"redis-cli --no-auth-warning -p 6380 --user {user} --pass {secret} GET anything").stdout
        assert out.startswith("NOPERM"), (user, out)
        result = primary.run(f"redis-cli --no-auth-warning -p 6380 --user {user} "
                             "--pass broker-secret-for-tests PING")
        assert "WRONGPASS" in result.stdout + result.stderr, (user, result.stdout, result.stderr)


def test_three_sentinels_watch_both_primaries(hosts, addresses):
    for name, host in hosts.items():
        for instance, sentinel_name in NAMES.items():
            info = master(host, sentinel_name)
            assert info.get("ip") == addresses[PRIMARY] and info["port"] == str(INSTANCES[instance][0]), (name, info)
            assert info["flags"] == "master", (name, info, journal(host, "redis-server@sentinel"))
            assert info["num-other-sentinels"] == "2" and info["num-slaves"] == "1", (name, info)
            assert (info["quorum"], info["down-after-milliseconds"], info["failover-timeout"]) == ("2", "2000", "10000")
    # A Sentinel-only host runs no Redis instance.
    sentinel_host = hosts[SENTINEL_ONLY]
    for instance in INSTANCES:
        assert not sentinel_host.service(f"redis-server@{instance}").is_running


def test_sentinels_want_their_password(hosts):
    for host in hosts.values():
        out = sentinel(host, "SENTINEL", "MASTERS", password=None).stdout
        assert out.startswith("NOAUTH"), out
        result = sentinel(host, "PING", password="wrong")
        assert "WRONGPASS" in result.stdout + result.stderr, (result.stdout, result.stderr)


def docker(*args):
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def test_a_lost_primary_host_is_failed_over_and_a_rerun_keeps_the_new_primary(hosts, addresses, tmp_path):
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    # A write the replica acknowledged (WAIT) before the primary host stops answering.
    key, value = f"kept:{uuid.uuid4().hex}", uuid.uuid4().hex
    out = primary.run(f"redis-cli --no-auth-warning -p 6380 --user app --pass broker-secret-for-tests "
                      f"SET {key} {value} && redis-cli --no-auth-warning -p 6380 --user app "
                      f"--pass broker-secret-for-tests WAIT 1 2000").stdout.split()
    assert out == ["OK", "1"], out
    docker("pause", PRIMARY)
    try:
        others = [replica, hosts[SENTINEL_ONLY]]
        for instance in INSTANCES:
            promoted = wait_for(lambda instance=instance: all(
                primary_seen_by(host, instance) == [addresses[REPLICA]] for host in others), timeout=60)
            assert promoted, [journal(host, "redis-server@sentinel") for host in others]
            assert wait_for(lambda instance=instance: role(replica, instance) == "master", timeout=10)
        assert redis(replica, "broker", "GET", key).stdout.strip() == value
        assert redis(replica, "broker", "SET", f"after:{key}", "1").stdout.strip() == "OK"
    finally:
        docker("unpause", PRIMARY)
    # The old primary comes back and the Sentinels make it a replica of the new one.
    for instance in INSTANCES:
        assert wait_for(lambda instance=instance: role(primary, instance) == "slave", timeout=60), \
            journal(hosts[SENTINEL_ONLY], "redis-server@sentinel")
    assert wait_for(lambda: redis(primary, "broker", "GET", f"after:{key}").stdout.strip() == "1", timeout=20)

    pids = {name: {unit: main_pid(host, unit) for unit in
                   ("redis-server@cache", "redis-server@broker", "redis-server@sentinel")}
            for name, host in hosts.items()}
    scenario_converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, scenario_converge)
    assert rc == 0, out[-4000:]
    # The replication files catch up with the failover; the Sentinel-only host has nothing to do.
    assert changed[PRIMARY] > 0 and changed[REPLICA] > 0 and changed[SENTINEL_ONLY] == 0, (changed, out[-4000:])
    replication = "/etc/redis/redis-broker-replication.conf"
    assert f"replicaof {addresses[REPLICA]} 6380" in primary.file(replication).content_string
    assert "replicaof" not in replica.file(replication).content_string
    # Nothing restarted, and the promoted primary stays the primary.
    assert pids == {name: {unit: main_pid(host, unit) for unit in pids[name]} for name, host in hosts.items()}
    for instance in INSTANCES:
        assert role(replica, instance) == "master" and role(primary, instance) == "slave"
        assert primary_seen_by(hosts[SENTINEL_ONLY], instance) == [addresses[REPLICA]]
    rc, out, changed = playbook(tmp_path, scenario_converge)
    assert rc == 0 and set(changed.values()) == {0}, (changed, out[-4000:])


def test_a_cache_made_a_shard_stops_replicating_and_leaves_the_sentinels(hosts, tmp_path):
    """redis_cache_sharded on a running replicated set (what a third Redis host brings to the
    playbooks): the cache that was a replica restarts as a primary of its own, the Sentinels forget
    the cache, and the broker is left as it was."""
    redis_hosts = [hosts[PRIMARY], hosts[REPLICA]]
    was_replica = next(host for host in redis_hosts if role(host, "cache") == "slave")
    was_primary = next(host for host in redis_hosts if host is not was_replica)
    units = ("redis-server@cache", "redis-server@broker", "redis-server@sentinel")
    pids = {host: {unit: main_pid(host, unit) for unit in units} for host in redis_hosts}
    scenario_converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, scenario_converge, {"redis_cache_sharded": True})
    assert rc == 0, out[-4000:]
    for host in redis_hosts:
        assert role(host, "cache") == "master", journal(host, "redis-server@cache")
        assert "replicaof" not in host.file("/etc/redis/redis-cache-replication.conf").content_string
    assert main_pid(was_replica, "redis-server@cache") != pids[was_replica]["redis-server@cache"]
    # Nothing else restarted: the other cache, the broker instances, the Sentinels.
    assert main_pid(was_primary, "redis-server@cache") == pids[was_primary]["redis-server@cache"]
    for host in redis_hosts:
        for unit in units[1:]:
            assert main_pid(host, unit) == pids[host][unit], (unit, out[-4000:])
    for host in hosts.values():
        assert "No such master" in sentinel(host, "SENTINEL", "MASTER", NAMES["cache"]).stdout
        assert master(host, NAMES["broker"]).get("name") == NAMES["broker"]
    rc, out, changed = playbook(tmp_path, scenario_converge, {"redis_cache_sharded": True})
    assert rc == 0 and set(changed.values()) == {0}, (changed, out[-4000:])


def test_a_stopped_sentinel_is_started_again_and_the_others_are_left_alone(hosts, tmp_path):
    """A Sentinel stopped outside the role: the next run (which reads the Sentinel's state with the
    instances') enables and starts it, and it watches the broker again; on the other hosts, whose
    Sentinels run, the run changes nothing and restarts nothing."""
    stopped = hosts[SENTINEL_ONLY]
    assert stopped.run("systemctl stop redis-server@sentinel").rc == 0
    running = {name: main_pid(host, "redis-server@sentinel") for name, host in hosts.items() if name != SENTINEL_ONLY}
    scenario_converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    # The cache stays sharded, as the test before left it.
    rc, out, changed = playbook(tmp_path, scenario_converge, {"redis_cache_sharded": True})
    assert rc == 0 and changed[SENTINEL_ONLY] >= 1, (changed, out[-4000:])
    assert all(changed[name] == 0 for name in running), (changed, out[-4000:])
    assert wait_for(lambda: stopped.service("redis-server@sentinel").is_running), \
        journal(stopped, "redis-server@sentinel")
    assert wait_for(lambda: master(stopped, NAMES["broker"]).get("name") == NAMES["broker"], timeout=20)
    assert running == {name: main_pid(hosts[name], "redis-server@sentinel") for name in running}
