"""Behaviour of the postgresql role: clients connect, privileges hold, tuning is live."""

import pathlib
import re
import shlex

import pytest

from helpers.stack import (
    assert_bad_sandbox_taken_back,
    assert_sandboxed,
    main_pid,
    playbook,
    public_listeners,
    sizing,
    tcp_listeners,
)
from helpers.stack import journal as _journal

APP = ("demo", "demo-test-password", "demo")
OTHER = ("other", "other-test-password", "otherdb")
MEMORY_MB = 2048  # postgresql_memory_mb in converge.yml


def unit(host):
    """postgresql@<version>-main: 17 on Debian 13, 15 on Debian 12."""
    version = host.check_output("ls /etc/postgresql").split()[0]
    return f"postgresql@{version}-main"


def journal(host):
    """The journal of this release's cluster unit."""
    return _journal(host, unit(host))


def psql_tcp(host, user, password, database, sql):
    """psql over TCP to 127.0.0.1 with a password (never peer authentication)."""
    cmd = (
        f"PGPASSWORD={shlex.quote(password)} PGCONNECT_TIMEOUT=5 psql -X -v ON_ERROR_STOP=1 -At "
        f"-h 127.0.0.1 -p 5432 -U {shlex.quote(user)} -d {shlex.quote(database)} "
        f"-c {shlex.quote(sql)}"
    )
    return host.run(cmd)


def psql_admin(host, sql, database="postgres"):
    with host.sudo("postgres"):
        return host.run(f"psql -X -At -d {shlex.quote(database)} -c {shlex.quote(sql)}")


def test_server_is_running(host):
    assert host.service(unit(host)).is_running, journal(host)


def test_app_user_writes_and_reads_its_database(host):
    user, password, database = APP
    sql = (
        "CREATE TABLE IF NOT EXISTS molecule_probe (id serial PRIMARY KEY, note text);"
        "INSERT INTO molecule_probe (note) VALUES ('hello from testinfra');"
        "SELECT note FROM molecule_probe ORDER BY id DESC LIMIT 1;"
    )
    result = psql_tcp(host, user, password, database, sql)
    assert result.rc == 0, result.stderr + journal(host)
    assert result.stdout.strip().splitlines()[-1] == "hello from testinfra"


def test_wrong_password_is_refused(host):
    user, _unused, database = APP
    result = psql_tcp(host, user, "not-the-password", database, "SELECT 1")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_passwords_are_stored_as_scram(host):
    out = psql_admin(host, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                           "WHERE rolname IN ('demo', 'other')")
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["t", "t"]


@pytest.mark.parametrize("sql, message", [
    ("CREATE DATABASE sneaky", "permission denied to create database"),
    ("CREATE ROLE sneaky", "permission denied to create role"),
    # PostgreSQL 15 words it "must be superuser to alter superuser roles".
    ("ALTER ROLE demo SUPERUSER", r"permission denied|must be superuser"),
])
def test_app_user_has_least_privilege(host, sql, message):
    user, password, database = APP
    result = psql_tcp(host, user, password, database, sql)
    assert result.rc != 0, f"{sql!r} succeeded for the app user"
    assert re.search(message, result.stderr), result.stderr


def test_other_user_cannot_connect_to_the_app_database(host):
    user, password, _unused = OTHER
    result = psql_tcp(host, user, password, APP[2], "SELECT 1")
    assert result.rc != 0
    assert "permission denied for database" in result.stderr
    # ...while it does reach its own database.
    own = psql_tcp(host, user, password, OTHER[2], "SELECT current_database()")
    assert own.rc == 0, own.stderr
    assert own.stdout.strip() == OTHER[2]


def test_public_has_no_connect_privilege(host):
    out = psql_admin(host, "SELECT has_database_privilege('public', 'demo', 'CONNECT'), "
                           "has_database_privilege('demo', 'demo', 'CONNECT')")
    assert out.stdout.strip() == "f|t", out.stderr


def test_databases_are_owned_by_their_users(host):
    out = psql_admin(host, "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database "
                           "WHERE datname IN ('demo', 'otherdb') ORDER BY datname")
    assert out.stdout.split() == ["demo:demo", "otherdb:other"]


@pytest.mark.parametrize("name", [
    "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "wal_buffers",
])
def test_memory_settings_follow_pg_tune(host, name):
    # The collection's own sizing filter: the expected values come from the same code.
    expected = sizing().pg_tune(MEMORY_MB, cpus=int(host.check_output("nproc")))[name]
    result = psql_admin(host, f"SHOW {name}")
    assert result.stdout.strip() == expected, journal(host)


def test_nothing_waits_for_a_restart(host):
    out = psql_admin(host, "SELECT count(*) FROM pg_settings WHERE pending_restart")
    assert out.stdout.strip() == "0", journal(host)


@pytest.mark.parametrize("name, expected", [
    ("password_encryption", "scram-sha-256"),
    ("shared_preload_libraries", "pg_stat_statements"),
    ("log_min_duration_statement", "500ms"),
    ("log_lock_waits", "on"),
    ("log_checkpoints", "on"),
    ("log_temp_files", "0"),
    ("listen_addresses", "localhost"),
])
def test_settings_are_live(host, name, expected):
    assert psql_admin(host, f"SHOW {name}").stdout.strip() == expected


def test_config_files_have_no_errors(host):
    out = psql_admin(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL")
    assert out.stdout.strip() == "0"
    out = psql_admin(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert out.stdout.strip() == "0"


def test_pg_stat_statements_records_queries(host):
    user, password, database = APP

    def recorded():
        result = psql_tcp(host, user, password, database,
                          "SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%molecule_marker%'")
        assert result.rc == 0, result.stderr
        return result.stdout.strip()

    before = recorded()
    calls = int(before.rpartition("|")[2]) if before else 0
    psql_tcp(host, user, password, database, "SELECT 42 AS molecule_marker")
    # One normalised statement (the constant became a parameter), called once more.
    assert recorded() == f"SELECT $1 AS molecule_marker|{calls + 1}", before


def test_extensions_exist_in_each_database(host):
    out = psql_admin(host, "SELECT extname FROM pg_extension ORDER BY extname", database="demo")
    assert out.stdout.split() == ["pg_stat_statements", "plpgsql"], out.stdout
    out = psql_admin(host, "SELECT extname FROM pg_extension ORDER BY extname", database="otherdb")
    assert out.stdout.split() == ["pg_stat_statements", "pg_trgm", "plpgsql"], out.stdout


def test_server_listens_on_loopback_only(host):
    # listen_addresses = localhost: the loopback addresses only, and nothing on this host
    # listens on a public or wildcard address.
    assert public_listeners(host) == set(), tcp_listeners(host)
    addresses = {address for address, port in tcp_listeners(host) if port == 5432}
    assert "127.0.0.1" in addresses and addresses <= {"127.0.0.1", "[::1]"}, (addresses, journal(host))


def test_client_authentication_has_no_weak_method(host):
    # The whole pg_hba.conf is the role's: Debian's lines are gone, and no rule admits a client
    # without a password, with a clear-text one or with md5.
    rules = psql_admin(host, "SELECT line_number, type, auth_method FROM pg_hba_file_rules")
    assert rules.rc == 0, rules.stderr
    methods = {line.split("|")[2] for line in rules.stdout.splitlines()}
    assert methods and methods <= {"peer", "scram-sha-256", "cert", "reject"}, rules.stdout
    assert not methods & {"trust", "password", "md5"}, rules.stdout


def test_unit_carries_the_sandbox(host):
    name = unit(host)
    props = host.check_output(
        f"systemctl show {name} -p User -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "
        "-p PrivateDevices -p ProtectHome -p RestrictNamespaces -p SystemCallArchitectures "
        "-p CapabilityBoundingSet -p MemoryDenyWriteExecute -p DropInPaths")
    shown = dict(line.split("=", 1) for line in props.splitlines())
    assert shown["User"] == "postgres"
    assert shown["ProtectSystem"] == "strict"
    assert shown["NoNewPrivileges"] == shown["PrivateTmp"] == shown["PrivateDevices"] == "yes"
    assert shown["ProtectHome"] == shown["RestrictNamespaces"] == "yes"
    assert shown["SystemCallArchitectures"] == "native"
    assert shown["CapabilityBoundingSet"] == ""
    # jit is on (PostgreSQL's default): its compiled code needs writable executable memory.
    assert shown["MemoryDenyWriteExecute"] == "no"
    assert "/etc/systemd/system/postgresql@.service.d/60-djangoprod-hardening.conf" in shown["DropInPaths"]


def test_sandbox_is_live_in_the_running_server(host):
    level = assert_sandboxed(
        host, f"{unit(host)}.service",
        writable=["/var/lib/postgresql", "/var/log/postgresql", "/run/postgresql", "/var/spool/pgbackrest"],
        read_only=["/etc", "/etc/postgresql", "/usr", "/var/backups"], capabilities=[], max_exposure=2.0)
    print(f"systemd-analyze security {unit(host)}.service:", level)
    assert host.check_output(f"ps -o user= -p {main_pid(host, unit(host))}") == "postgres"


def test_jit_compiles_queries_in_the_sandbox(host):
    out = psql_admin(host, "SET jit_above_cost = 0; SET jit_optimize_above_cost = 0; "
                           "SELECT pg_jit_available(), sum(x) FROM generate_series(1, 100000) x")
    assert out.rc == 0 and out.stdout.strip().splitlines()[-1] in ("t|5000050000", "f|5000050000"), (
        out.stdout + out.stderr + journal(host))


def test_server_stops_reloads_and_restarts_in_the_sandbox(host):
    name = unit(host)
    host.run_test(f"systemctl reload {name}")
    restart = host.run(f"systemctl restart {name}")
    assert restart.rc == 0 and host.service(name).is_running, restart.stderr + journal(host)
    assert psql_tcp(host, *APP, "SELECT 1").stdout.strip() == "1", journal(host)


@pytest.mark.parametrize(("settings", "refused"), [
    ({"shared_buffers": "lots"}, 'invalid value for parameter "shared_buffers": "lots"'),
    ({"work_mem": "64XB"}, 'invalid value for parameter "work_mem": "64XB"'),
    ({"max_wal_sender": 10}, 'unrecognized configuration parameter "max_wal_sender"'),
])
def test_a_setting_postgres_refuses_is_never_written(host, tmp_path, settings, refused):
    """PostgreSQL reads the candidate settings file before it replaces the live one: a value the
    server would refuse at its next start fails the run, naming the parameter, with nothing
    changed and the server still running as it was."""
    conf = host.check_output("ls /etc/postgresql/*/main/conf.d/50-djangoprod.conf")
    before, pid = host.file(conf).sha256sum, main_pid(host, unit(host))
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, converge, {"postgresql_settings": settings})
    assert rc != 0 and refused in out, out[-3000:]
    assert set(changed.values()) == {0}, (changed, out[-3000:])
    assert host.file(conf).sha256sum == before
    assert main_pid(host, unit(host)) == pid


def test_client_authentication_postgres_refuses_is_never_written(host, tmp_path):
    """pg_hba.conf is parsed by the running server before it replaces the live file: an entry
    PostgreSQL refuses (peer over TCP) fails the run with PostgreSQL's own words, changing nothing.
    The role's checks refuse that entry first; they are skipped here as if the stack's preflight
    had run them, to reach the second guard."""
    hba = host.check_output("ls /etc/postgresql/*/main/pg_hba.conf")
    before, pid = host.file(hba).sha256sum, main_pid(host, unit(host))
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    entry = {"type": "host", "database": "demo", "user": "demo", "address": "10.0.0.0/24", "method": "peer"}
    rc, out, changed = playbook(tmp_path, converge, {"postgresql_hba_entries": [entry],
                                                     "__djangoprod_checked_roles": ["postgresql"]})
    assert rc != 0 and "peer authentication is only supported on local sockets" in out, out[-3000:]
    assert set(changed.values()) == {0}, (changed, out[-3000:])
    assert host.file(hba).sha256sum == before
    assert main_pid(host, unit(host)) == pid
    assert psql_admin(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").stdout.strip() == "0"


def test_a_sandbox_the_server_cannot_start_in_is_taken_back(host, tmp_path):
    def serving():
        assert psql_tcp(host, *APP, "SELECT 1").stdout.strip() == "1", journal(host)

    assert_bad_sandbox_taken_back(host, tmp_path, str(pathlib.Path(__file__).parents[1] / "converge.yml"),
                                  "postgresql_hardening_properties",
                                  "/etc/systemd/system/postgresql@.service.d/60-djangoprod-hardening.conf", serving)
