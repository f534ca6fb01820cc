"""Promotion under writes: the primary is killed while a client inserts through it, the most
advanced standby is promoted by playbooks/promote.yml, the app and the other standby follow it,
and the former primary comes back as a standby."""

import pathlib
import shlex
import time

import pytest

from helpers.stack import Site, address, env_file, fleet, install_helper, playbook, postgres_sql, wait_for
from helpers.stack import journal as _journal

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOMAIN = "demo.example.test"
DATA = "/var/lib/postgresql/17/main"
UNIT = "postgresql@17-main"


@pytest.fixture(scope="module")
def hosts():
    return fleet()


def journal(host):
    return _journal(host, UNIT)


def psql(host, sql, database="demo", check=True):
    return postgres_sql(host, sql, database, check, UNIT)


class Writer:
    """tests/helpers/writer.py in a transient unit on the app host, inserting through DATABASE_URL."""

    def __init__(self, app, table):
        self.app, self.unit, self.acked = app, f"writer-{table}", f"/var/tmp/acked-{table}"
        script = install_helper(app, "writer.py")
        python = app.check_output("ls /srv/demo/venvs/*/bin/python | head -1")
        dsn = env_file(app)["DATABASE_URL"]
        app.run_test(f"rm -f {self.acked}; systemd-run --unit={self.unit} --collect "
                     f"--property=StandardOutput=file:/var/tmp/{self.unit}.log --property=StandardError=inherit "
                     f"{python} {script} --dsn {shlex.quote(dsn)} --table {table} --acked {self.acked} --seconds 120")

    def running(self):
        return self.app.run(f"systemctl is-active {self.unit}").stdout.strip() == "active"

    def count(self):
        return int(self.app.run(f"cat {self.acked} 2>/dev/null | wc -l").stdout.strip() or 0)

    def numbers(self):
        return [int(n) for n in self.app.check_output(f"cat {self.acked}").split()]

    def log(self):
        return self.app.run(f"cat /var/tmp/{self.unit}.log; journalctl -u {self.unit} --no-pager | tail -20").stdout


def start_writer(app, table, at_least=200):
    """Start a writer and wait until the server acknowledged at_least inserts."""
    writer = Writer(app, table)
    assert wait_for(lambda: writer.count() >= at_least, 30), writer.log()
    return writer


def test_the_app_writes_to_the_primary_and_reads_from_the_standbys(hosts):
    values = env_file(hosts["app1"])
    db1, db2, db3 = (address(hosts[name]) for name in ("db1", "db2", "db3"))
    assert f"@{db1}:5432/demo" in values["DATABASE_URL"]
    replicas = values["DATABASE_REPLICA_URLS"].split(",")
    assert sorted(url.split("@")[1] for url in replicas) == sorted(f"{a}:5432/demo" for a in (db2, db3))
    site = Site(hosts["app1"], DOMAIN)
    status, note = site.json("POST", "/notes/", {"text": "before the failover"})
    assert status == 201 and note["db"] == "default", note
    read = wait_for(lambda: site.json("GET", f"/notes/{note['id']}/"))
    assert read[0] == 200 and read[1]["db"].startswith("replica"), read


def test_promotion_refuses_while_the_primary_runs(hosts, tmp_path):
    rc, out, changed = playbook(tmp_path, "promote.yml", {"promote": "db2"})
    assert rc != 0
    assert "db1 still runs PostgreSQL as the primary" in out, out[-3000:]
    assert set(changed.values()) == {0}, out[-2000:]
    rc, out, changed = playbook(tmp_path, "promote.yml", {"promote": "app1"})
    assert rc != 0 and "promote must name a standby of the current primary db1" in out, out[-3000:]
    assert psql(hosts["db2"], "SELECT pg_is_in_recovery()").stdout.strip() == "t"


def test_kill_the_primary_under_writes_and_promote_a_standby(hosts, tmp_path, capsys):
    app, db1 = hosts["app1"], hosts["db1"]
    psql(db1, "CREATE TABLE promotion_probe (n bigint PRIMARY KEY); ALTER TABLE promotion_probe OWNER TO demo")
    writer = start_writer(app, "promotion_probe")
    # kill -9 the postmaster: no shutdown, no last WAL sent.
    db1.run_test(f"kill -9 $(head -1 {DATA}/postmaster.pid)")
    assert wait_for(lambda: not writer.running(), 30), writer.log()
    acked = writer.numbers()
    assert acked

    # What each standby has of the acknowledged writes, before the promotion.
    missing = {}
    for name in ("db2", "db3"):
        rows = psql(hosts[name], "SELECT n FROM promotion_probe").stdout.split()
        missing[name] = len(set(acked) - {int(n) for n in rows})
    with capsys.disabled():
        print(f"\nacknowledged inserts: {len(acked)}; missing on each standby at the kill: {missing} "
              "(ANY 1: each commit waited for one of them; the other lags as an asynchronous standby would)")
    # The standby that has every acknowledged write is the one with the most WAL: promote it.
    received = {name: float(psql(hosts[name], "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')")
                            .stdout) for name in ("db2", "db3")}
    chosen = max(received, key=received.get)
    other = "db3" if chosen == "db2" else "db2"

    # A standby whose server is down is not a healthy standby: refused, nothing changed.
    hosts[other].run_test(f"systemctl stop {UNIT}")
    try:
        rc, out, changed = playbook(tmp_path, "promote.yml", {"promote": other})
        assert rc != 0 and f"{other} is not a healthy standby to promote" in out, out[-3000:]
        assert set(changed.values()) == {0}, out[-2000:]
    finally:
        hosts[other].run_test(f"systemctl start {UNIT}")

    started = time.monotonic()
    rc, out, _changed = playbook(tmp_path, "promote.yml", {"promote": chosen})
    took = time.monotonic() - started
    assert rc == 0, out[-5000:]
    with capsys.disabled():
        print(f"promote.yml promoted {chosen} and repointed the fleet in {took:.1f} s")

    new = hosts[chosen]
    assert psql(new, "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    rows = {int(n) for n in psql(new, "SELECT n FROM promotion_probe").stdout.split()}
    lost = sorted(set(acked) - rows)
    assert lost == [], f"{len(lost)} acknowledged inserts lost with a synchronous standby: {lost[:20]}"

    # The other standby follows the new primary, through its slot, over TLS.
    def replication_rows():
        return psql(new, "SELECT application_name, state, s.ssl FROM pg_stat_replication "
                         "JOIN pg_stat_ssl s USING (pid)", database="postgres").stdout.split()

    streaming = wait_for(replication_rows)
    assert streaming == [f"{other}|streaming|t"], streaming
    # The app now writes to the new primary and reads from the other standby.
    values = env_file(hosts["app1"])
    assert f"@{address(new)}:5432/demo" in values["DATABASE_URL"]
    assert values["DATABASE_REPLICA_URLS"].split(",") == [
        f"postgresql://demo:test-only-db-password@{address(hosts[other])}:5432/demo"]
    site = Site(hosts["app1"], DOMAIN)
    status, note = site.json("POST", "/notes/", {"text": "after the failover"})
    assert status == 201, note
    assert wait_for(lambda: psql(hosts[other], f"SELECT count(*) FROM core_note WHERE id = {note['id']}")
                    .stdout.strip() == "1")


def test_the_former_primary_comes_back_as_a_standby(hosts, tmp_path):
    new = next(name for name in ("db2", "db3") if psql(hosts[name], "SELECT pg_is_in_recovery()").stdout.strip() == "f")
    # Without being asked, site.yml refuses to overwrite the former primary's data.
    rc, out, changed = playbook(tmp_path, "site.yml", {"stack_postgres_primary": new}, limit="db1,db2,db3")
    assert rc != 0 and "postgresql_replica_rebuild" in out, out[-3000:]
    assert changed.get("db1") == 0, out[-2000:]
    # The rest of the fleet's life is asynchronous: the next failover shows what that costs.
    rebuild = {"stack_postgres_primary": new, "postgresql_replica_rebuild": True,
               "stack_postgres_synchronous_standbys": 0}
    # For one run, on the host to clone and the primary it clones from (the other standby stays).
    rc, out, changed = playbook(tmp_path, "site.yml", rebuild, limit=f"db1,{new}")
    assert rc == 0, out[-5000:]
    assert changed["db1"] > 0, changed
    db1 = hosts["db1"]
    assert psql(db1, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    assert db1.run_test(f"ls -d {DATA}.replaced-*").stdout.strip()
    streaming = wait_for(lambda: psql(hosts[new], "SELECT application_name FROM pg_stat_replication "
                                                  "WHERE state = 'streaming' ORDER BY 1", database="postgres")
                         .stdout.split() == sorted(["db1", "db3" if new == "db2" else "db2"]))
    assert streaming
    marker = f"rejoined-{time.time_ns()}"
    psql(hosts[new], f"INSERT INTO promotion_probe (n) VALUES ({time.time_ns() % 10**12})")
    psql(hosts[new], "CREATE TABLE IF NOT EXISTS rejoin_marker (note text)")
    psql(hosts[new], f"INSERT INTO rejoin_marker VALUES ('{marker}')")
    assert wait_for(lambda: psql(db1, f"SELECT count(*) FROM rejoin_marker WHERE note = '{marker}'",
                                 check=False).stdout.strip() == "1")


def test_an_asynchronous_failover_reports_what_it_lost(hosts, tmp_path, capsys):
    state = {name: psql(hosts[name], "SELECT pg_is_in_recovery()").stdout.strip() for name in ("db1", "db2", "db3")}
    primary = next(name for name, recovery in state.items() if recovery == "f")
    standbys = [name for name, recovery in state.items() if recovery == "t"]
    assert len(standbys) == 2, state
    assert psql(hosts[primary], "SHOW synchronous_standby_names").stdout.strip() == ""
    psql(hosts[primary], "CREATE TABLE async_probe (n bigint PRIMARY KEY); ALTER TABLE async_probe OWNER TO demo")
    writer = start_writer(hosts["app1"], "async_probe", at_least=500)
    hosts[primary].run_test(f"kill -9 $(head -1 {DATA}/postmaster.pid)")
    assert wait_for(lambda: not writer.running(), 30), writer.log()
    acked = writer.numbers()
    received = {name: float(psql(hosts[name], "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')").stdout)
                for name in standbys}
    chosen = max(received, key=received.get)
    # The inventory still names db1 as the primary: promote_from says which host it is now.
    rc, out, _changed = playbook(tmp_path, "promote.yml", {"promote": chosen, "promote_from": primary})
    assert rc == 0, out[-5000:]
    rows = {int(n) for n in psql(hosts[chosen], "SELECT n FROM async_probe").stdout.split()}
    lost = sorted(set(acked) - rows)
    with capsys.disabled():
        print(f"\nasynchronous failover: {len(acked)} inserts acknowledged, {len(lost)} of them lost "
              f"after promoting {chosen}")
    assert psql(hosts[chosen], "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    assert f"@{address(hosts[chosen])}:5432/demo" in env_file(hosts["app1"])["DATABASE_URL"]
    # The killed server stays down, as a lost host would.
    hosts[primary].run_test(f"systemctl reset-failed {UNIT}")


def test_no_failed_units(hosts):
    for name, host in hosts.items():
        failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
        assert failed == "", f"{name}: {failed}"
