"""Backups prove themselves by restoring: logical dumps (playbooks/backup.yml, restore.yml) and
point-in-time recovery with pgBackRest, compared with SQL dumps taken before and after.

These tests run before test_postgresql.py (name order) and leave the server a healthy primary.
"""

import json
import os
import pathlib
import re
import shlex
import subprocess
import time
import uuid

import pytest

from helpers.stack import journal

ROOT = pathlib.Path(__file__).resolve().parents[3]
DB = "ledger"  # converge.yml: owned by demo, backed up, destroyed and restored here
BACKUP_DIR = "/var/backups/postgresql"
SERVICE = "djangoprod-postgresql-backup.service"
TIMERS = ["djangoprod-postgresql-backup.timer", "djangoprod-pgbackrest-full.timer",
          "djangoprod-pgbackrest-diff.timer"]
HOOK_SWITCH = "/run/backup-hook-fails"  # converge.yml: the hook fails while this file exists


def playbook(name, **extra):
    """Run playbooks/<name> against the molecule inventory: (rc, stdout+stderr, changed counts)."""
    inventory_dir = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    cmd = ["ansible-playbook", "-i", str(inventory_dir), str(ROOT / "playbooks" / name)]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    return proc.returncode, out, [int(n) for n in re.findall(r"changed=(\d+)", recap)]


def unit(host):
    version = host.check_output("ls /etc/postgresql").split()[0]
    return f"postgresql@{version}-main"


def psql(host, sql, database=DB):
    """Run SQL as postgres; fail the test on an error."""
    with host.sudo("postgres"):
        result = host.run(f"psql -X -At -v ON_ERROR_STOP=1 -d {shlex.quote(database)} -c {shlex.quote(sql)}")
    assert result.rc == 0, f"{sql}\n{result.stderr}\n" + journal(host, unit(host))
    return result.stdout.strip()


def dump(host, database=DB):
    """The database as plain SQL (schema and rows; pg_dump writes a table's rows in physical order,
    which a restore keeps). PostgreSQL 17.6+ writes a random \\restrict key: left out."""
    with host.sudo("postgres"):
        out = host.check_output(f"pg_dump -d {shlex.quote(database)}")
    return "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict ", line))


def rows(host, table):
    return psql(host, f"SELECT id, note FROM {table} ORDER BY id").splitlines()


def dumps(host, name=DB):
    """The backup files of a database (or "globals"), oldest first (names carry the UTC time)."""
    out = host.check_output(f"find {BACKUP_DIR}/{name} -maxdepth 1 -type f -printf '%f\\n'")
    return sorted(out.split())


def fingerprint(host, name=DB):
    """Name, size, mtime and checksum of every file in the database's backup directory."""
    return host.check_output(
        f"cd {BACKUP_DIR}/{name} && find . -maxdepth 1 -type f -printf '%f %s %T@ ' -exec sha256sum {{}} \\; | sort")


def start_backup(host):
    """Start the backup unit as the timer would; the result of systemctl start (waits for it)."""
    return host.run(f"systemctl start {SERVICE}")


def wait_archived(host):
    """Switch to a new WAL segment and wait until the archiver has pushed the one just closed."""
    segment = psql(host, "SELECT pg_walfile_name(pg_switch_wal())", database="postgres")
    for _unused in range(60):
        archived = psql(host, "SELECT last_archived_wal FROM pg_stat_archiver", database="postgres")
        if archived and archived[8:] >= segment[8:]:
            return
        time.sleep(1)
    pytest.fail(f"WAL segment {segment} not archived: " + journal(host, unit(host)))


@pytest.fixture(autouse=True)
def healthy_after(host):
    """Every test leaves the server running, without failed units or the hook's switch."""
    yield
    host.run(f"rm -f {HOOK_SWITCH}")
    with host.sudo("postgres"):
        host.run(f"psql -X -c 'ALTER DATABASE {DB} ALLOW_CONNECTIONS true'")
    host.run(f"systemctl reset-failed {SERVICE} 'djangoprod-pgbackrest-backup@*' || true")


def test_timers_are_enabled_and_scheduled(host):
    for timer in TIMERS:
        assert host.service(timer).is_enabled, timer
        assert host.service(timer).is_running, timer
        next_run = host.check_output(f"systemctl show -p NextElapseUSecRealtime --value {timer}")
        assert re.match(r"\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", next_run), (timer, next_run)


def test_backup_unit_runs_sandboxed_as_postgres(host):
    show = host.check_output(f"systemctl show -p User -p ProtectSystem -p NoNewPrivileges {SERVICE}")
    assert sorted(show.splitlines()) == ["NoNewPrivileges=yes", "ProtectSystem=strict", "User=postgres"]
    directory = host.file(BACKUP_DIR)
    assert (directory.user, directory.group, directory.mode) == ("postgres", "postgres", 0o700)


def test_logical_restore_brings_back_exactly_the_backup(host):
    psql(host, "DROP TABLE IF EXISTS backup_probe;"
               "CREATE TABLE backup_probe (id serial PRIMARY KEY, note text NOT NULL);"
               "INSERT INTO backup_probe (note) SELECT 'row ' || g FROM generate_series(1, 500) g;")
    marker = f"marker {uuid.uuid4()}"
    psql(host, f"INSERT INTO backup_probe (note) VALUES ('{marker}')")
    before = dump(host)
    newest = dumps(host)[-1] if host.file(f"{BACKUP_DIR}/{DB}").exists else None

    started = time.monotonic()
    rc, out, _changed = playbook("backup.yml")
    backup_seconds = time.monotonic() - started
    assert rc == 0, out[-4000:]
    new = dumps(host)[-1]
    assert new != newest and re.fullmatch(rf"{DB}-\d{{8}}T\d{{6}}Z\.dump", new), dumps(host)
    assert f"{BACKUP_DIR}/{DB}/{new}" in out, out[-3000:]

    # Written after the backup: a restore must not bring these back.
    psql(host, "INSERT INTO backup_probe (note) SELECT 'after ' || g FROM generate_series(1, 20) g")
    assert dump(host) != before
    psql(host, "TRUNCATE backup_probe")
    destroyed = dump(host)

    # The table still exists: refused, naming the variable, changing nothing.
    rc, out, changed = playbook("restore.yml", restore_database=DB)
    assert rc != 0
    assert "restore_overwrite" in out and "has 1 table(s)" in out, out[-3000:]
    assert changed and set(changed) == {0}, out[-3000:]
    assert dump(host) == destroyed

    started = time.monotonic()
    rc, out, _changed = playbook("restore.yml", restore_database=DB, restore_overwrite=True)
    restore_seconds = time.monotonic() - started
    assert rc == 0, out[-4000:]
    assert dump(host) == before
    assert psql(host, f"SELECT count(*) FROM backup_probe WHERE note = '{marker}'") == "1"
    # The database's own properties came back with it.
    assert psql(host, f"SELECT pg_get_userbyid(datdba), has_database_privilege('public', '{DB}', 'CONNECT'), "
                      f"has_database_privilege('demo', '{DB}', 'CONNECT') FROM pg_database "
                      f"WHERE datname = '{DB}'") == "demo|f|t"
    assert psql(host, "SELECT count(*) FROM pg_database WHERE datname LIKE '%pre_restore%'") == "0"

    # A dropped database comes back without restore_overwrite: there is nothing to overwrite.
    psql(host, f"DROP DATABASE {DB} WITH (FORCE)", database="postgres")
    rc, out, _changed = playbook("restore.yml", restore_database=DB)
    assert rc == 0, out[-4000:]
    assert dump(host) == before
    print(f"backup.yml {backup_seconds:.1f} s, restore.yml {restore_seconds:.1f} s")


def test_restore_refuses_a_database_with_connections(host):
    # otherdb has no tables of its own (pg_trgm's objects are the extension's): only the
    # connection stands in the way.
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    holder = "backup-test-connection"
    host.run_test(f"systemd-run --collect --unit={holder} --uid=postgres "
                  "psql -X -d otherdb -c 'SELECT pg_sleep(300)'")
    try:
        for _unused in range(20):
            if psql(host, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'otherdb'",
                    database="postgres") == "1":
                break
            time.sleep(0.5)
        rc, out, changed = playbook("restore.yml", restore_database="otherdb")
        assert rc != 0
        assert "has 0 table(s) and 1 connection(s)" in out and "restore_overwrite=true" in out, out[-3000:]
        assert set(changed) == {0}
        assert psql(host, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'otherdb'",
                    database="postgres") == "1"
    finally:
        host.run(f"systemctl stop {holder}")


def test_a_failed_dump_keeps_the_previous_one_and_fails_the_unit(host):
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    kept = fingerprint(host)
    demo_before = dumps(host, "demo")
    time.sleep(1.1)  # a new run gets a new time stamp
    # pg_dump cannot connect: the dump of this database fails, the others go on.
    psql(host, f"ALTER DATABASE {DB} ALLOW_CONNECTIONS false", database="postgres")
    result = start_backup(host)
    assert result.rc != 0
    assert host.run(f"systemctl is-failed {SERVICE}").stdout.strip() == "failed"
    log = journal(host, SERVICE)
    assert f"{DB}: the dump failed" in log and f"backup failed: {DB}" in log, log
    assert fingerprint(host) == kept
    assert host.check_output(f"find {BACKUP_DIR} -name '*.tmp'") == ""
    assert len(dumps(host, "demo")) == len(demo_before) + 1


def test_a_full_disk_keeps_the_previous_dump(host):
    # The dump fails halfway through writing: its partial file must never replace the good one.
    psql(host, "DROP TABLE IF EXISTS bulk; CREATE TABLE bulk AS "
               "SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS note FROM generate_series(1, 20000) g")
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    directory = f"{BACKUP_DIR}/{DB}"
    size = int(host.check_output(f"stat -c %s {directory}/{dumps(host)[-1]}"))
    saved = "/var/tmp/backup-test-ledger"
    host.run_test(f"rm -rf {saved} && cp -a {directory} {saved}")
    # Room for the files there now and half a dump more.
    room = int(host.check_output(f"du -sb {directory} | cut -f1")) + size // 2
    host.run_test(f"mount -t tmpfs -o size={room},mode=0700,uid=postgres,gid=postgres tmpfs {directory}")
    try:
        host.run_test(f"cp -a {saved}/. {directory}/")
        kept = fingerprint(host)
        time.sleep(1.1)
        assert start_backup(host).rc != 0
        log = journal(host, SERVICE)
        assert "No space left on device" in log and f"{DB}: the dump failed" in log, log
        assert fingerprint(host) == kept
    finally:
        # A process of the failed run may still hold the mount for a moment: detach it lazily
        # then, so that the directory is the real one again for the next tests.
        host.run(f"umount {directory} || umount --lazy {directory}")
        host.run(f"rm -rf {saved}")
        psql(host, "DROP TABLE IF EXISTS bulk")
    assert host.run(f"mountpoint -q {directory}").rc != 0, f"{directory} is still a mount point"


def test_the_hook_gets_each_new_file_and_its_failure_fails_the_unit(host):
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    newest = f"{BACKUP_DIR}/{DB}/{dumps(host)[-1]}"
    checksum = host.check_output(f"sha256sum {newest}")
    assert checksum in journal(host, SERVICE, lines=200)

    host.run_test(f"touch {HOOK_SWITCH}")
    time.sleep(1.1)
    count = len(dumps(host))
    assert start_backup(host).rc != 0
    assert f"{DB}: the hook failed" in journal(host, SERVICE)
    assert len(dumps(host)) == count + 1  # the dump itself is good and stays


def test_retention_removes_old_dumps_and_keeps_the_newest(host):
    directory = f"{BACKUP_DIR}/{DB}"
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    newest = dumps(host)[-1]
    host.run_test(f"cp -p {directory}/{newest} {directory}/{DB}-20000101T000000Z.dump && "
                  f"touch -d '8 days ago' {directory}/{DB}-20000101T000000Z.dump && "
                  f"cp -p {directory}/{newest} {directory}/{DB}-20000102T000000Z.dump && "
                  f"touch -d '6 days ago' {directory}/{DB}-20000102T000000Z.dump")
    time.sleep(1.1)
    assert start_backup(host).rc == 0, journal(host, SERVICE)
    names = dumps(host)
    assert f"{DB}-20000101T000000Z.dump" not in names  # older than 7 days
    assert f"{DB}-20000102T000000Z.dump" in names and newest in names
    assert f"removed {directory}/{DB}-20000101T000000Z.dump" in journal(host, SERVICE)

    # Every dump is old and the new one fails: nothing is deleted, the newest good one least of all.
    host.run_test(f"find {directory} -type f -exec touch -d '30 days ago' {{}} +")
    kept = fingerprint(host)
    psql(host, f"ALTER DATABASE {DB} ALLOW_CONNECTIONS false", database="postgres")
    time.sleep(1.1)
    assert start_backup(host).rc != 0
    assert fingerprint(host) == kept
    psql(host, f"ALTER DATABASE {DB} ALLOW_CONNECTIONS true", database="postgres")
    host.run_test(f"rm -f {directory}/{DB}-2000*.dump")


def test_pitr_restores_to_a_restore_point(host):
    psql(host, "DROP TABLE IF EXISTS pitr_probe; CREATE TABLE pitr_probe (id int PRIMARY KEY, note text);"
               "INSERT INTO pitr_probe SELECT g, 'before' FROM generate_series(1, 100) g")
    point = f"test-{uuid.uuid4().hex[:12]}"
    # The marker commits before the restore point is written, so recovery to it includes it.
    psql(host, "INSERT INTO pitr_probe VALUES (1000, 'marker')")
    psql(host, f"SELECT pg_create_restore_point('{point}')")
    expected = dump(host)
    psql(host, "INSERT INTO pitr_probe SELECT g, 'after' FROM generate_series(2000, 2099) g")
    wait_archived(host)

    rc, out, changed = playbook("restore.yml", restore_target_name=point)
    assert rc != 0
    assert "is running" in out and "restore_overwrite=true" in out, out[-3000:]
    assert set(changed) == {0}
    assert psql(host, "SELECT count(*) FROM pitr_probe WHERE note = 'after'") == "100"

    started = time.monotonic()
    rc, out, _changed = playbook("restore.yml", restore_target_name=point, restore_overwrite=True)
    seconds = time.monotonic() - started
    assert rc == 0, out[-4000:] + journal(host, unit(host))
    assert dump(host) == expected
    assert rows(host, "pitr_probe")[-1] == "1000|marker"
    assert psql(host, "SELECT count(*) FROM pitr_probe WHERE note = 'after'") == "0"
    assert_writable_primary(host)
    print(f"restore.yml to a restore point: {seconds:.1f} s")


def test_pitr_restores_to_a_time(host):
    psql(host, "DROP TABLE IF EXISTS pitr_time; CREATE TABLE pitr_time (id int PRIMARY KEY, note text);"
               "INSERT INTO pitr_time SELECT g, 'before' FROM generate_series(1, 100) g")
    time.sleep(1.1)
    target = psql(host, "SELECT now()::text", database="postgres")
    expected = dump(host)
    time.sleep(1.1)
    psql(host, "INSERT INTO pitr_time SELECT g, 'after' FROM generate_series(2000, 2099) g")
    psql(host, "UPDATE pitr_time SET note = 'changed after' WHERE id = 1")
    wait_archived(host)

    rc, out, _changed = playbook("restore.yml", restore_target_time=target, restore_overwrite=True)
    assert rc == 0, out[-4000:] + journal(host, unit(host))
    assert dump(host) == expected
    assert rows(host, "pitr_time")[0] == "1|before"
    assert_writable_primary(host)


def assert_writable_primary(host):
    assert psql(host, "SELECT pg_is_in_recovery()", database="postgres") == "f"
    psql(host, "CREATE TABLE IF NOT EXISTS after_restore (id int); INSERT INTO after_restore VALUES (1)")
    # pgBackRest archives on the new timeline and its recovery settings are gone.
    with host.sudo("postgres"):
        check = host.run("pgbackrest --stanza=main check")
    assert check.rc == 0, check.stdout + check.stderr
    assert psql(host, "SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%' "
                      "OR name = 'restore_command'", database="postgres") == "0"
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart", database="postgres") == "0"


def test_backups_work_after_the_restores(host):
    rc, out, _changed = playbook("backup.yml", backup_type="incr")
    assert rc == 0, out[-4000:]
    assert "type: incr" in out, out[-3000:]


def test_no_unit_has_failed(host):
    failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
    assert failed == "", failed
