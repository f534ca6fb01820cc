"""Streaming replication: a primary and two hot standbys, one of them added by the converge."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import uuid

import pytest

from helpers.stack import address, fleet, postgres_sql, wait_for
from helpers.stack import journal as _journal

PRIMARY = "pg-primary"
STANDBYS = ("pg-replica-a", "pg-replica-b")
SLOTS = ("pg_replica_a", "pg_replica_b")
UNIT = "postgresql@17-main"
DATA = "/var/lib/postgresql/17/main"
REPLICATION_PASSWORD = "replication:test\\password"  # vars/main.yml


@pytest.fixture(scope="module")
def hosts():
    return fleet()


def journal(host):
    return _journal(host, UNIT)


def psql(host, sql, database="demo", check=True):
    return postgres_sql(host, sql, database, check, UNIT)


def test_rows_written_on_the_primary_appear_on_both_standbys(hosts):
    marker = uuid.uuid4().hex
    psql(hosts[PRIMARY], "CREATE TABLE IF NOT EXISTS probe (id serial PRIMARY KEY, note text);"
                         "ALTER TABLE probe OWNER TO demo")
    psql(hosts[PRIMARY], f"INSERT INTO probe (note) VALUES ('{marker}')")
    for name in STANDBYS:
        seen = wait_for(lambda name=name: psql(hosts[name], f"SELECT count(*) FROM probe WHERE note = '{marker}'",
                                               check=False).stdout.strip() == "1")
        assert seen, f"{name} never replayed the row\n" + journal(hosts[name])


@pytest.mark.parametrize("name", STANDBYS)
def test_standbys_are_in_recovery_and_refuse_writes(hosts, name):
    assert psql(hosts[name], "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    assert hosts[name].file(f"{DATA}/standby.signal").exists
    result = psql(hosts[name], "INSERT INTO probe (note) VALUES ('must fail')", check=False)
    assert result.rc != 0
    assert "read-only transaction" in result.stderr


def test_both_standbys_stream_over_tls_through_their_slots(hosts):
    rows = psql(hosts[PRIMARY], """
        SELECT r.application_name, r.state, r.sync_state, s.ssl, sl.active
        FROM pg_stat_replication r
        JOIN pg_stat_ssl s USING (pid)
        JOIN pg_replication_slots sl ON sl.active_pid = r.pid
        ORDER BY 1""", database="postgres").stdout.split()
    assert rows == [f"{slot}|streaming|quorum|t|t" for slot in SLOTS], rows
    slots = psql(hosts[PRIMARY], "SELECT slot_name, slot_type FROM pg_replication_slots ORDER BY 1",
                 database="postgres").stdout.split()
    assert slots == [f"{slot}|physical" for slot in SLOTS]


def test_replication_settings_are_live(hosts):
    primary = hosts[PRIMARY]
    query = """SELECT name, setting FROM pg_settings WHERE name IN
        ('synchronous_standby_names', 'max_slot_wal_keep_size', 'wal_level', 'hot_standby', 'ssl')"""
    settings = dict(line.split("|") for line in psql(primary, query, database="postgres").stdout.splitlines())
    assert settings == {
        "synchronous_standby_names": "ANY 1 (pg_replica_a, pg_replica_b)",
        "max_slot_wal_keep_size": "10240",  # MB
        "wal_level": "replica",
        "hot_standby": "on",
        "ssl": "on",
    }
    # The role's drop-in holds the standby's connection, not postgresql.auto.conf (from -R).
    for name in STANDBYS:
        standby = hosts[name]
        assert "primary_conninfo" not in standby.file(f"{DATA}/postgresql.auto.conf").content_string
        conninfo = psql(standby, "SHOW primary_conninfo", database="postgres").stdout
        assert "passfile=/var/lib/postgresql/.pgpass" in conninfo and "sslmode=require" in conninfo
        assert REPLICATION_PASSWORD not in conninfo
        passfile = standby.file("/var/lib/postgresql/.pgpass")
        assert (passfile.user, passfile.mode) == ("postgres", 0o600)


def replication_login(client, target, user="replicator", password=REPLICATION_PASSWORD, sslmode="require"):
    """A replication connection from client to target's private address (IDENTIFY_SYSTEM)."""
    conninfo = f"host={target} port=5432 user={user} dbname=replication replication=true sslmode={sslmode}"
    return client.run(f"PGPASSWORD={shlex.quote(password)} PGCONNECT_TIMEOUT=5 "
                      f"psql -X -At {shlex.quote(conninfo)} -c IDENTIFY_SYSTEM")


def test_pg_hba_admits_replication_only_from_standbys_with_tls_and_the_password(hosts):
    primary_address = address(hosts[PRIMARY])
    standby = hosts[STANDBYS[0]]
    ok = replication_login(standby, primary_address)
    assert ok.rc == 0, ok.stderr
    wrong = replication_login(standby, primary_address, password="not-the-password")
    assert wrong.rc != 0 and "password authentication failed" in wrong.stderr
    plain = replication_login(standby, primary_address, sslmode="disable")
    assert plain.rc != 0 and "no pg_hba.conf entry" in plain.stderr
    # The primary itself is not a standby: its own private address is not admitted.
    own = replication_login(hosts[PRIMARY], primary_address)
    assert own.rc != 0 and "no pg_hba.conf entry" in own.stderr
    # Nor is the app user allowed to replicate from a standby's address.
    app = replication_login(standby, primary_address, user="demo", password="demo-test-password")
    assert app.rc != 0


def test_adding_the_second_standby_left_the_primary_running_and_its_data_alone(hosts):
    primary = hosts[PRIMARY]
    started, rows, digest = psql(primary, """
        SELECT pg_postmaster_start_time() = (SELECT min(primary_started) FROM before_second_standby),
               count(*), md5(string_agg(digest, '' ORDER BY n)) FROM before_second_standby""").stdout.strip().split("|")
    expected = psql(primary, "SELECT md5(string_agg(md5(n::text), '' ORDER BY n)) "
                             "FROM generate_series(1, 10000) AS n").stdout.strip()
    assert started == "t", "the primary restarted after prepare\n" + journal(primary)
    assert (rows, digest) == ("10000", expected)
    # ... and the new standby has the same rows.
    assert psql(hosts[STANDBYS[1]], "SELECT count(*) FROM before_second_standby").stdout.strip() == "10000"


def test_a_stopped_standby_restarts_and_catches_up(hosts):
    primary, standby = hosts[PRIMARY], hosts[STANDBYS[1]]
    standby.run_test(f"systemctl stop {UNIT}")
    try:
        # Writes go on: the other standby acknowledges them (ANY 1).
        psql(primary, "INSERT INTO probe (note) SELECT 'while-b-was-down-' || n FROM generate_series(1, 500) AS n")
        psql(primary, "SELECT pg_switch_wal()", database="postgres")
        slot = psql(primary, "SELECT active, wal_status FROM pg_replication_slots WHERE slot_name = 'pg_replica_b'",
                    database="postgres").stdout.strip()
        assert slot == "f|reserved", slot
    finally:
        standby.run_test(f"systemctl start {UNIT}")
    caught_up = wait_for(lambda: psql(standby, "SELECT count(*) FROM probe WHERE note LIKE 'while-b-was-down-%'",
                                      check=False).stdout.strip() == "500")
    assert caught_up, journal(standby)
    streaming = wait_for(lambda: psql(primary, "SELECT state FROM pg_stat_replication "
                                               "WHERE application_name = 'pg_replica_b'",
                                      database="postgres").stdout.strip() == "streaming")
    assert streaming


def test_commits_wait_for_a_synchronous_standby(hosts):
    primary = hosts[PRIMARY]
    for name in STANDBYS:
        hosts[name].run_test(f"systemctl stop {UNIT}")
    try:
        # With no standby to acknowledge, the commit waits (statement_timeout does not cover
        # the wait at commit): the client gives up after 5 s. The row is committed locally and
        # reaches the standbys when they come back.
        result = primary.run(
            "PGPASSWORD=demo-test-password timeout 5 psql -X -At -h 127.0.0.1 -U demo -d demo "
            "-c \"INSERT INTO probe (note) VALUES ('unacknowledged')\"")
        assert result.rc == 124, result.stdout + result.stderr
    finally:
        for name in STANDBYS:
            hosts[name].run_test(f"systemctl start {UNIT}")
    assert wait_for(lambda: psql(primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                                 database="postgres").stdout.strip() == "2")
    # With a standby back, the same kind of commit returns at once.
    quick = primary.run("PGPASSWORD=demo-test-password timeout 5 psql -X -At -h 127.0.0.1 -U demo -d demo "
                        "-c \"INSERT INTO probe (note) VALUES ('acknowledged')\"")
    assert quick.rc == 0, quick.stderr
    for name in STANDBYS:
        assert wait_for(lambda name=name: psql(hosts[name], "SELECT count(*) FROM probe WHERE note IN "
                                                            "('unacknowledged', 'acknowledged')").stdout.strip() == "2")


def converge(tmp_path, extra):
    """ansible-playbook converge.yml on the molecule inventory; (rc, output, {host: changed})."""
    scenario = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    inventory = str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(["ansible-playbook", "-i", inventory, str(scenario / "converge.yml"), "-e", f"@{path}"],
                          capture_output=True, text=True, timeout=600, check=False, env=env)
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    counts = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.MULTILINE)
    return proc.returncode, out, {host: int(n) for host, n in counts}


def test_the_role_refuses_to_turn_a_standby_into_a_primary_or_to_clone_over_a_primary(hosts, tmp_path):
    # One run, two wrong inventories: pg-replica-a called a primary, pg-primary called a standby.
    wrong = "{{ inventory_hostname != 'pg-replica-a' and inventory_hostname in groups['all'] }}"
    rc, out, changed = converge(tmp_path, {"postgresql_standby": wrong})
    assert rc != 0
    assert "pg-replica-a is a hot standby" in out and "playbooks/promote.yml" in out, out[-3000:]
    assert "pg-primary should be a standby" in out and "postgresql_replica_rebuild" in out, out[-3000:]
    assert changed == {name: 0 for name in (PRIMARY, *STANDBYS)}, out[-2000:]
    assert psql(hosts[STANDBYS[0]], "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    assert psql(hosts[PRIMARY], "SELECT count(*) FROM before_second_standby").stdout.strip() == "10000"


def test_a_standby_is_cloned_afresh_when_asked(hosts, tmp_path):
    standby = hosts[STANDBYS[1]]
    assert standby.run(f"ls -d {DATA}.replaced-*").rc != 0
    rc, out, changed = converge(tmp_path, {"postgresql_replica_rebuild": "{{ inventory_hostname == 'pg-replica-b' }}"})
    assert rc == 0, out[-5000:]
    assert changed[STANDBYS[1]] > 0 and changed[PRIMARY] == 0 and changed[STANDBYS[0]] == 0, changed
    # The former data directory is kept aside; the new clone streams again through its slot.
    assert standby.file(f"{DATA}/standby.signal").exists
    assert standby.run(f"ls -d {DATA}.replaced-*").rc == 0
    assert psql(standby, "SELECT count(*) FROM before_second_standby").stdout.strip() == "10000"
    assert wait_for(lambda: psql(hosts[PRIMARY], "SELECT active FROM pg_replication_slots "
                                                 "WHERE slot_name = 'pg_replica_b'", database="postgres")
                    .stdout.strip() == "t")


def test_no_failed_units(hosts):
    for name, host in hosts.items():
        failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
        assert failed == "", f"{name}: {failed}"
