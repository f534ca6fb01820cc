"""Behaviour of the two Redis instances: auth, sizing, persistence, eviction, listeners."""

import pathlib
import re
import shlex
import uuid

import jinja2
import pytest
import yaml

from helpers.stack import assert_bad_sandbox_taken_back, assert_sandboxed, public_listeners, sizing, tcp_listeners
from helpers.stack import journal as _journal

USER = "app"
ADMIN = ("admin", "admin-secret-for-tests")  # redis_admin_user, redis_admin_password
INSTANCES = {
    # name: (port, password) as set in converge.yml
    "cache": (6379, "cache-secret-for-tests"),
    "broker": (6380, "broker-secret-for-tests"),
}
MEMORY_MB = 2048  # redis_memory_mb in converge.yml


def _bytes(value):
    number, unit = re.fullmatch(r"(\d+)([kmg]?b?)", value.lower()).groups()
    return int(number) * {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2,
                          "g": 1000**3, "gb": 1024**3}[unit]


def journal(host, name):
    """The journal of one instance's unit."""
    return _journal(host, f"redis-server@{name}.service")


def cli(host, name, *args, auth=True, stdin=None, admin=False):
    port, password = INSTANCES[name]
    user = USER
    if admin:
        user, password = ADMIN
    cmd = f"redis-cli --no-auth-warning -h 127.0.0.1 -p {port}"
    if auth:
        cmd += f" --user {user} --pass {password}"
    cmd += " " + " ".join(f"'{a}'" for a in args)
    if stdin is not None:
        cmd = f"{stdin} | {cmd}"
    return host.run(cmd)


def ok(host, name, *args, admin=False):
    result = cli(host, name, *args, admin=admin)
    refused = re.match(r"(ERR|NOAUTH|WRONGPASS|NOPERM|OOM)\b", result.stdout)
    assert result.rc == 0 and not refused, (
        f"redis-cli {args} on {name}: rc={result.rc} {result.stdout!r} {result.stderr!r}\n"
        + journal(host, name))
    return result.stdout.strip()


def config_get(host, name, key):
    lines = ok(host, name, "CONFIG", "GET", key, admin=True).splitlines()
    assert lines[0] == key, lines
    return lines[1] if len(lines) > 1 else ""


def info(host, name, section):
    out = ok(host, name, "INFO", section, admin=True)
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


@pytest.mark.parametrize("name", INSTANCES)
def test_instance_runs_from_its_own_config(host, name):
    port = INSTANCES[name][0]
    assert info(host, name, "server")["config_file"].strip() == f"/etc/redis/redis-{name}.conf"
    assert info(host, name, "server")["tcp_port"].strip() == str(port)


@pytest.mark.parametrize("name", INSTANCES)
def test_unauthenticated_command_is_refused(host, name):
    result = cli(host, name, "PING", auth=False)
    out = result.stdout + result.stderr
    assert "NOAUTH" in out and "PONG" not in out, out


@pytest.mark.parametrize("name", INSTANCES)
def test_wrong_password_is_refused(host, name):
    port = INSTANCES[name][0]
    result = host.run(f"redis-cli --no-auth-warning -p {port} --user {USER} --pass wrong PING")
    out = result.stdout + result.stderr
    assert "WRONGPASS" in out and "PONG" not in out, out


@pytest.mark.parametrize("name", INSTANCES)
def test_app_user_can_set_and_get(host, name):
    value = uuid.uuid4().hex
    assert ok(host, name, "SET", f"test:setget:{name}", value) == "OK"
    assert ok(host, name, "GET", f"test:setget:{name}") == value
    ok(host, name, "DEL", f"test:setget:{name}")


@pytest.mark.parametrize("name", INSTANCES)
def test_protected_mode_is_on(host, name):
    assert config_get(host, name, "protected-mode") == "yes"


def test_cache_is_bounded_lru_without_persistence(host):
    expected = _bytes(sizing().redis_maxmemory(MEMORY_MB))
    assert config_get(host, "cache", "maxmemory-policy") == "allkeys-lru"
    assert int(config_get(host, "cache", "maxmemory")) == expected
    assert config_get(host, "cache", "save") == ""
    assert config_get(host, "cache", "appendonly") == "no"


def test_broker_never_evicts_and_keeps_an_aof(host):
    assert config_get(host, "broker", "maxmemory-policy") == "noeviction"
    assert config_get(host, "broker", "appendonly") == "yes"
    assert config_get(host, "broker", "appendfsync") == "everysec"
    assert info(host, "broker", "persistence")["aof_enabled"].strip() == "1"


def test_broker_keeps_a_key_across_a_restart(host):
    key, value = "test:durable", uuid.uuid4().hex
    assert ok(host, "broker", "SET", key, value) == "OK"
    restart = host.run("systemctl restart redis-server@broker.service")
    assert restart.rc == 0, restart.stderr + journal(host, "broker")
    assert ok(host, "broker", "GET", key) == value, journal(host, "broker")
    ok(host, "broker", "DEL", key)


def test_full_cache_evicts_instead_of_refusing_writes(host):
    original = config_get(host, "cache", "maxmemory")
    used = int(info(host, "cache", "memory")["used_memory"])
    evicted_before = int(info(host, "cache", "stats")["evicted_keys"])
    try:
        # Room for about 1 MB more, then write about 4 MB of 1 KB values.
        ok(host, "cache", "CONFIG", "SET", "maxmemory", str(used + 1024 * 1024), admin=True)
        writes = ("v=$(head -c 1024 /dev/zero | tr '\\0' x); "
                  "seq 4000 | sed \"s/.*/SET test:fill:& $v/\"")
        result = cli(host, "cache", stdin=writes)
        assert result.rc == 0, result.stderr + journal(host, "cache")
        replies = result.stdout.split()
        assert replies and set(replies) == {"OK"}, sorted(set(replies))[:5]
        assert int(info(host, "cache", "stats")["evicted_keys"]) > evicted_before
        assert int(ok(host, "cache", "DBSIZE")) < 4000
    finally:
        ok(host, "cache", "CONFIG", "SET", "maxmemory", original, admin=True)
        ok(host, "cache", "FLUSHALL", admin=True)


def test_instances_listen_only_on_loopback(host):
    listeners = tcp_listeners(host)
    # Nothing on this host listens on a public or wildcard address...
    assert public_listeners(host) == set(), listeners
    # ...and each instance listens on IPv4 loopback, and on IPv6's where the host has one
    # (redis_bind_addresses: 127.0.0.1 -::1, the optional bind).
    has_ipv6_loopback = host.run("grep -q '^0*1 .* lo$' /proc/net/if_inet6").rc == 0
    expected = {"127.0.0.1", "[::1]"} if has_ipv6_loopback else {"127.0.0.1"}
    for name, (port, _unused) in INSTANCES.items():
        addresses = {address for address, listening in listeners if listening == port}
        assert addresses == expected, f"{name}: {listeners}\n" + journal(host, name)


def test_stock_single_instance_is_off(host):
    assert not host.service("redis-server").is_running
    # Masked before the package's postinst could start it: it never ran, so it never failed.
    assert host.check_output("systemctl is-enabled redis-server.service || true") == "masked"
    assert host.check_output("systemctl show -p ActiveState --value redis-server.service") == "inactive"


def test_no_failed_units(host):
    assert host.check_output("systemctl list-units --state=failed --no-legend --plain") == ""


# Commands of the @dangerous category the application's user is refused on both instances.
DENIED = [
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("FLUSHALL",),
    ("KEYS", "*"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("ACL", "SETUSER", "intruder", "on", "nopass", "+@all"),
    ("MODULE", "LIST"),
    ("SAVE",),
    ("BGSAVE",),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("SLAVEOF", "127.0.0.1", "1"),
    ("INFO",),
    ("CLIENT", "KILL", "TYPE", "normal"),
]


@pytest.mark.parametrize("name", INSTANCES)
@pytest.mark.parametrize("command", DENIED, ids=lambda c: "-".join(c[:2]))
def test_app_user_is_refused_dangerous_commands(host, name, command):
    # ACL DRYRUN asks the ACL alone (DEBUG and MODULE are also off by configuration)...
    verdict = ok(host, name, "ACL", "DRYRUN", USER, *command, admin=True)
    assert "no permissions" in verdict, (command, verdict)


@pytest.mark.parametrize("name", INSTANCES)
@pytest.mark.parametrize("command", [("CONFIG", "GET", "maxmemory"), ("FLUSHALL",), ("KEYS", "*"),
                                     ("SHUTDOWN", "NOSAVE"), ("INFO",)], ids=lambda c: c[0])
def test_app_user_gets_noperm(host, name, command):
    # ...and the command itself is refused, leaving the instance running.
    result = cli(host, name, *command)
    assert result.stdout.startswith("NOPERM"), (command, result.stdout, result.stderr)
    assert host.service(f"redis-server@{name}").is_running, journal(host, name)


def test_flushdb_is_allowed_on_the_cache_only(host):
    # Django's cache.clear() sends FLUSHDB; the broker's queues are not the application's to drop.
    assert ok(host, "cache", "FLUSHDB") == "OK"
    assert cli(host, "broker", "FLUSHDB").stdout.startswith("NOPERM")


@pytest.mark.parametrize("name", INSTANCES)
def test_app_user_keeps_what_celery_and_django_use(host, name):
    # Lists, sorted sets, hashes, transactions, pub/sub, expiry: kombu's and Django's commands.
    script = ("MULTI\nRPUSH test:q a\nZADD test:z 1 a\nHSET test:h a 1\nEXEC\n"
              "PUBLISH test:channel hi\nEXPIRE test:q 60\nLLEN test:q\nDEL test:q test:z test:h\n")
    result = cli(host, name, stdin=f"printf '{script}'")
    assert "NOPERM" not in result.stdout and result.rc == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", INSTANCES)
def test_default_user_cannot_log_in(host, name):
    port = INSTANCES[name][0]
    for password in ("", "nopass", "x"):
        out = host.run(f"redis-cli --no-auth-warning -p {port} AUTH default '{password}'").stdout
        assert "PONG" not in out and "OK" not in out, out
    acl = ok(host, name, "ACL", "GETUSER", "default", admin=True).splitlines()
    flags = acl[acl.index("flags") + 1:acl.index("passwords")]
    assert "off" in flags and "on" not in flags and "nopass" not in flags, acl


def test_broker_keeps_a_transaction_across_a_restart(host):
    # kombu writes in MULTI/EXEC. The client that replays the AOF at start runs as the default
    # user, and Redis checks its rights again for every transaction it replays.
    key = f"test:multi:{uuid.uuid4().hex}"
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    result = cli(host, "broker", stdin=f"printf 'MULTI\\nRPUSH {key} a\\nEXEC\\n'")
    assert "NOPERM" not in result.stdout and result.rc == 0, result.stdout
    restart = host.run("systemctl restart redis-server@broker.service")
    assert restart.rc == 0, restart.stderr + journal(host, "broker")
    assert ok(host, "broker", "LLEN", key) == "1", journal(host, "broker")
    ok(host, "broker", "DEL", key)
    log = host.check_output(f"journalctl -u redis-server@broker.service --since '{since}' --no-pager")
    assert "AOF-loading-client" not in log, log


def test_stock_config_serves_nobody(host):
    # Started by hand with a unix socket added (the masked unit would add none): no TCP
    # listener, and no way in.
    run = "/run/redis-stock-check"
    host.run_test(f"install -d -o redis -g redis -m 0750 {run}")
    try:
        host.run_test(f"runuser -u redis -- redis-server /etc/redis/redis.conf --supervised no "
                      f"--daemonize yes --pidfile {run}/pid --unixsocket {run}/sock --dir {run}")
        host.run_test(f"for i in $(seq 50); do test -S {run}/sock && break; sleep 0.1; done; test -S {run}/sock")
        pid = host.check_output(f"cat {run}/pid")
        assert f"pid={pid}," not in host.check_output("ss -Hltnp"), host.check_output("ss -Hltnp")
        ping = host.run(f"redis-cli -s {run}/sock PING").stdout
        assert ping.startswith("NOAUTH"), ping
        auth = host.run(f"redis-cli -s {run}/sock AUTH default ''").stdout
        assert "WRONGPASS" in auth or "ERR" in auth, auth
    finally:
        host.run(f"test -f {run}/pid && kill $(cat {run}/pid); sleep 0.5; rm -rf {run}")


@pytest.mark.parametrize("name", INSTANCES)
def test_unit_sandbox_is_live(host, name):
    unit = f"redis-server@{name}.service"
    dropins = host.check_output(f"systemctl show -p DropInPaths --value {unit}")
    assert "redis-server@.service.d/60-djangoprod-hardening.conf" in dropins
    paths = host.check_output(f"systemctl show -p ReadWritePaths --value {unit}")
    assert "/etc/redis" not in paths, paths
    level = assert_sandboxed(host, unit, writable=[INSTANCE_DIRS[name]],
                             read_only=["/etc/redis", "/usr", "/var/lib"], max_exposure=2.0)
    print(f"systemd-analyze security {unit}:", level)


INSTANCE_DIRS = {"cache": "/var/lib/redis/cache", "broker": "/var/lib/redis/broker"}


ROLE_VARS = pathlib.Path(__file__).resolve().parents[3] / "roles" / "redis" / "vars" / "main.yml"


def _validate_command(name, path):
    """The role's check of a candidate file (__redis_validate, or __redis_sentinel_validate)."""
    data = yaml.safe_load(ROLE_VARS.read_text(encoding="utf-8"))
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(data[name]).render(data)
    return text.replace("%s", shlex.quote(path))


@pytest.mark.parametrize(("extra", "accepted"), [
    ("", True),
    ("maxmemory-policy sometimes", False),
    ("maxmemory 2 GB", False),
    ("user auditor on #00 ~* +@no-such-category", False),
])
def test_a_config_is_checked_by_a_throw_away_server(host, extra, accepted):
    # The live cache config, as the role wrote it, with one directive appended: Redis itself
    # judges the candidate, and the throw-away server leaves nothing behind.
    candidate = f"/var/tmp/candidate-{uuid.uuid4().hex[:8]}.conf"
    host.check_output(f"cp /etc/redis/redis-cache.conf {candidate}")
    host.check_output(f"printf '%s\\n' {shlex.quote(extra)} >> {candidate}")
    before = host.check_output("ls /tmp")
    try:
        result = host.run(_validate_command("__redis_validate", candidate))
    finally:
        host.run(f"rm -f {candidate}")
    assert (result.rc == 0) == accepted, (extra, result.rc, result.stderr)
    assert host.check_output("ls /tmp") == before
    assert not host.run("pgrep -f '[r]edis-server.*--port 0'").stdout


def test_a_sentinel_config_is_checked_in_sentinel_mode(host):
    good = "port 26379\nsentinel monitor shop 127.0.0.1 6380 1\n"
    for text, accepted in ((good, True), (good + "sentinel no-such-option shop 1\n", False)):
        candidate = f"/var/tmp/sentinel-{uuid.uuid4().hex[:8]}.conf"
        host.check_output(f"printf {shlex.quote(text)} > {candidate}")
        try:
            result = host.run(_validate_command("__redis_sentinel_validate", candidate))
        finally:
            host.run(f"rm -f {candidate}")
        assert (result.rc == 0) == accepted, (text, result.rc, result.stderr)


def test_a_sandbox_redis_cannot_start_in_is_taken_back(host, tmp_path):
    def serving():
        for name in INSTANCES:
            assert cli(host, name, "PING").stdout.strip() == "PONG", journal(host, name)

    assert_bad_sandbox_taken_back(host, tmp_path, str(pathlib.Path(__file__).parents[1] / "converge.yml"),
                                  "redis_hardening_properties",
                                  "/etc/systemd/system/redis-server@.service.d/60-djangoprod-hardening.conf", serving)
