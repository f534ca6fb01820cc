"""Behaviour of a deployed release: the code runs, the database is migrated, static files are
collected, the environment stays private, releases are kept, pruned and share a virtualenv, and
the app reads from its replica and writes to its primary.

Runs after side_effect.yml: the git release (converge) is the previous one, the archive
release is current.
"""
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import tarfile
import uuid

import pytest

from helpers.stack import assert_sandboxed, journal, main_pid, playbook, wait_for

MANAGE = "/usr/local/bin/demo-manage"
HOME = "/srv/demo"
REPLICA_URL = "sqlite:////var/lib/demo/replica1.sqlite3"
# The note only the replica holds (converge.yml).
REPLICA_NOTE = {"id": 900001, "text": "replica1-only"}


def manage(host, *args):
    return host.run(" ".join([MANAGE, *args]))


def shell(host, code):
    """Run Python in the app's Django shell; return the last line printed."""
    cmd = host.run(f"{MANAGE} shell -c {json.dumps(code)}")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def web(host):
    """The app's gunicorn (demo-web.service, restarted by side_effect's last run), once it answers."""
    up = host.run("curl -sS -o /dev/null --max-time 60 --retry 30 --retry-connrefused --retry-delay 1 "
                  "http://127.0.0.1:8000/health/")
    assert up.rc == 0, f"{up.stderr}\n{journal(host, 'demo-web.service')}"
    return host


def app(host, method, path, data=None):
    """(status, JSON body) of a request to the app's gunicorn, sent as nginx sends it: the
    site's Host and X-Forwarded-Proto: https."""
    cmd = ["curl", "-sS", "--max-time", "30", "-X", method,
           "-H", "Host: demo.example.test", "-H", "X-Forwarded-Proto: https", "-w", "\n%{http_code}"]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(data)]
    cmd.append(f"http://127.0.0.1:8000{path}")
    out = host.run(" ".join(shlex.quote(c) for c in cmd))
    assert out.rc == 0, f"curl failed: {out.stderr}\n{journal(host, 'demo-web.service')}"
    body, _unused, status = out.stdout.rpartition("\n")
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status), {"_raw": body[:500]}


def on_primary(host, note_id):
    """The text of a note read from the primary ("default"), or "None"."""
    return shell(host, "from core.models import Note; print(Note.objects.using('default')"
                       f".filter(pk={note_id}).values_list('text', flat=True).first())")


def stamps(host):
    """Lines of /var/log/demo/stamps.log as (label, release dir, pid, time)."""
    found = []
    for line in host.file("/var/log/demo/stamps.log").content_string.splitlines():
        match = re.fullmatch(r"(.+) release=(\S+) pid=(\d+) at=([\d.]+)", line)
        assert match, line
        found.append((match[1], match[2], int(match[3]), float(match[4])))
    return found


def env_lines(host, path):
    return host.check_output(f"cat {path}").splitlines()


@pytest.fixture(scope="module")
def archive_release():
    archive = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "demo.tar.gz")
    with open(archive, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def test_current_is_the_archive_release_with_code(host, archive_release):
    current = host.file(f"{HOME}/current")
    assert current.is_symlink
    assert current.linked_to == f"{HOME}/releases/{archive_release}"
    assert host.file(f"{HOME}/current/manage.py").is_file


def test_previous_release_kept_and_old_one_pruned(host, archive_release):
    releases = set(host.file(f"{HOME}/releases").listdir())
    assert archive_release in releases
    assert "000000000000" not in releases, "django_keep_releases: 2 should prune the old release"
    assert len(releases) == 2, releases
    (previous,) = releases - {archive_release}
    assert host.file(f"{HOME}/releases/{previous}/manage.py").is_file


def test_releases_share_one_virtualenv(host):
    links = {
        host.file(f"{HOME}/releases/{r}/.venv").linked_to
        for r in host.file(f"{HOME}/releases").listdir()
    }
    assert len(links) == 1, links
    (venv,) = links
    assert venv.startswith(f"{HOME}/venvs/")
    assert host.file(f"{venv}/bin/python").exists
    assert host.file(f"{HOME}/venvs").listdir() == [os.path.basename(venv)]


def test_code_is_read_only_for_the_app(host):
    touch = host.run(f"runuser -u demo -- touch {HOME}/current/intruder")
    assert touch.rc != 0
    assert host.file(f"{HOME}/current/collected").user == "demo"
    # The project's own top-level static/ (its source assets) stays root's.
    assert host.file(f"{HOME}/current/static").user == "root"


def test_check_deploy_passes_with_only_the_roles_own_choice_left_out(host):
    # The demo silences nothing itself: alone, the check warns about one thing, the HSTS preload
    # the role keeps off, which the role's own run of the check leaves out (the deploys passed).
    plain = manage(host, "check", "--deploy", "--fail-level", "WARNING")
    found = set(re.findall(r"\(([a-z0-9_]+\.[CEWI]\d+)\)", plain.stdout + plain.stderr))
    assert plain.rc != 0 and found == {"security.W021"}, plain.stdout + plain.stderr
    assert manage(host, "check", "--deploy", "--fail-level", "ERROR").rc == 0


def test_migrations_applied(host):
    out = host.check_output(f"{MANAGE} showmigrations")
    assert "[X] 0001_initial" in out
    assert "[ ]" not in out, out


def test_note_written_is_readable(host):
    text = f"note-{uuid.uuid4().hex}"
    pk = shell(host, f"from core.models import Note; print(Note.objects.create(text='{text}').pk)")
    # From the primary: plain reads go to the replica, which does not replicate here.
    assert on_primary(host, pk) == text
    # The database lives where DATABASE_URL says, owned by the app user.
    assert host.file("/var/lib/demo/db.sqlite3").user == "demo"


def test_views_answer(host):
    code = (
        "import json; from django.test import Client; "
        "c = Client(HTTP_HOST='demo.example.test', HTTP_X_FORWARDED_PROTO='https'); "
        "h = c.get('/health/'); r = c.get('/ready/'); "
        "print(json.dumps([h.status_code, h.json()['status'], r.status_code, r.json()]))"
    )
    health_status, status, ready_status, ready = json.loads(shell(host, code))
    assert (health_status, status) == (200, "ok")
    # SQLite and the local-memory cache answer; no broker is configured in this scenario.
    assert ready_status == 503
    assert ready == {"database": True, "cache": True, "broker": False, "replicas": {"replica1": True}}


def test_static_files_collected(host):
    # django_static_root: collected (relative: each release has its own).
    collected = f"{HOME}/current/collected/admin/css/base.css"
    source = host.check_output(
        f"{HOME}/current/.venv/bin/python -c "
        "'import django, os; print(os.path.dirname(django.__file__))'") + "/contrib/admin/static/admin/css/base.css"
    assert host.run(f"cmp {collected} {source}").rc == 0, "collectstatic did not copy admin/css/base.css"
    # ManifestStaticFilesStorage: the manifest names a content-hashed copy (its url()s rewritten).
    manifest = json.loads(host.file(f"{HOME}/current/collected/staticfiles.json").content_string)
    hashed = manifest["paths"]["admin/css/base.css"]
    assert re.fullmatch(r"admin/css/base\.[0-9a-f]{12}\.css", hashed), hashed
    assert host.file(f"{HOME}/current/collected/{hashed}").size > 0, hashed
    # The project's own assets (its top-level static/, in STATICFILES_DIRS) are collected too.
    site_css = manifest["paths"]["demo/site.css"]
    assert host.file(f"{HOME}/current/collected/{site_css}").content_string == host.file(
        f"{HOME}/current/static/demo/site.css").content_string


def test_env_file_is_private(host):
    env = host.file("/etc/demo/env")
    assert env.mode == 0o640
    assert (env.user, env.group) == ("root", "demo")
    assert host.run("runuser -u demo -- cat /etc/demo/env").rc == 0
    assert host.run("runuser -u nobody -- cat /etc/demo/env").rc != 0
    assert "SECRET_KEY='" in env.content_string
    assert "STATIC_ROOT='/srv/demo/current/collected'" in env.content_string
    assert "HEARTBEAT_SECONDS='5'" in env.content_string
    assert f"DATABASE_REPLICA_URLS='{REPLICA_URL}'" in env.content_string.splitlines()


def test_no_replicas_write_an_empty_value(host):
    # The environment file of side_effect's run with django_database_replica_urls: [].
    without = env_lines(host, "/var/tmp/demo-env-without-replicas")
    current = env_lines(host, "/etc/demo/env")
    assert "DATABASE_REPLICA_URLS=''" in without
    changed = set(without) ^ set(current)
    assert changed == {"DATABASE_REPLICA_URLS=''", f"DATABASE_REPLICA_URLS='{REPLICA_URL}'"}, changed


def test_reads_come_from_the_replica(host, web):
    note_id = REPLICA_NOTE["id"]
    status, body = app(host, "GET", f"/notes/{note_id}/")
    assert status == 200, (body, journal(host, "demo-web.service"))
    assert body == {**REPLICA_NOTE, "db": "replica1"}
    # Only a read from the replica can return that note: the primary never had it.
    assert on_primary(host, note_id) == "None"


def test_writes_go_to_the_primary(host, web):
    text = f"written-{uuid.uuid4().hex}"
    status, created = app(host, "POST", "/notes/", {"text": text})
    assert status == 201, (created, journal(host, "demo-web.service"))
    assert (created["text"], created["db"]) == (text, "default")
    assert on_primary(host, created["id"]) == text
    # Reads go to the replica, which this scenario does not feed: the app cannot find the note.
    status, body = app(host, "GET", f"/notes/{created['id']}/")
    assert status == 404, body


def test_ready_reports_the_replica(host, web):
    status, body = app(host, "GET", "/ready/")
    assert status == 503, body  # no broker in this scenario
    assert body == {"database": True, "cache": True, "broker": False, "replicas": {"replica1": True}}


def test_ready_fails_when_a_replica_does_not_answer(host):
    # The replica's file moved out of reach for this one process: SQLite cannot open it.
    code = (
        "import json; from django.db import connections; from django.test import Client; "
        "replica = connections['replica1']; replica.close(); "
        "replica.settings_dict['NAME'] = '/nonexistent/replica1.sqlite3'; "
        "r = Client(HTTP_HOST='demo.example.test').get('/ready/'); "
        "print(json.dumps([r.status_code, r.json()]))"
    )
    status, body = json.loads(shell(host, code))
    assert (status, body["database"], body["replicas"]) == (503, True, {"replica1": False})


def test_router_rules(host):
    code = (
        "import json; from django.db import router; from core.models import Note; "
        "from demo.db_router import use_primary; "
        "primary = Note.objects.using('default').first(); "
        "replica = Note.objects.using('replica1').get(pk=900001); "
        "print(json.dumps(["
        "router.db_for_read(Note), router.db_for_write(Note), "
        "use_primary()(lambda: router.db_for_read(Note))(), "
        "router.db_for_read(Note, instance=primary), "
        "router.allow_relation(primary, replica), "
        "router.allow_migrate('default', 'core'), router.allow_migrate('replica1', 'core')]))"
    )
    assert json.loads(shell(host, code)) == ["replica1", "default", "default", "default", True, True, False]


def test_ansible_output_never_shows_the_secrets(host):
    # Every ansible run of the scenario, diffs on (molecule.yml: ANSIBLE_LOG_PATH, diff always).
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.log"), encoding="utf-8") as f:
        log = f.read()
    assert "Write the environment file" in log
    assert "+++ after" in log, "no diff in the log: the check below would prove nothing"
    secrets = {}
    for line in env_lines(host, "/etc/demo/env"):
        name, sep, value = line.partition("=")
        if sep and name in ("SECRET_KEY", "DATABASE_URL", "DATABASE_REPLICA_URLS"):
            secrets[name] = value.strip("'")
    assert len(secrets) == 3 and all(secrets.values()), sorted(secrets)
    leaked = sorted(name for name, value in secrets.items() if value in log)
    assert not leaked, f"ansible's output shows {leaked}"


def test_app_logs_to_log_dir(host):
    marker = f"probe-{uuid.uuid4().hex}"
    shell(host, f"import logging; logging.getLogger('core').warning('{marker}'); print('ok')")
    log = host.file("/var/log/demo/app.log")
    assert log.user == "demo"
    assert marker in log.content_string


def test_units_restarted_once_per_change(host):
    # converge (git release), side_effect's run that changes only the environment, and its
    # archive release each restart once; the idempotence and check runs do not.
    starts = host.file("/var/tmp/demo-probe.starts").content_string.split()
    assert len(starts) == 3, journal(host, "demo-probe.service")


def test_the_projects_own_pins_win_over_the_added_packages(host):
    python = f"{HOME}/current/.venv/bin/python"
    code = "import importlib.metadata as m; print(m.version('gunicorn'), m.version('six'))"
    assert host.check_output(f'{python} -c "{code}"') == "27.0.1 1.16.0"


def test_environment_entries_added_copied_replaced_and_removed(host):
    lines = env_lines(host, "/etc/demo/env")
    assert "HEARTBEAT_SECONDS='5'" in lines
    # A copy of a role value under the project's own name, next to the original.
    assert "APP_DATABASE='sqlite:////var/lib/demo/db.sqlite3'" in lines
    assert "DATABASE_URL='sqlite:////var/lib/demo/db.sqlite3'" in lines
    # The role's own entry replaced, not doubled; a null removes the entry.
    origins = [line for line in lines if line.startswith("CSRF_TRUSTED_ORIGINS=")]
    assert origins == ["CSRF_TRUSTED_ORIGINS='https://demo.example.test,https://partner.example.test'"], origins
    assert not [line for line in lines if line.startswith("CELERY_BROKER_URL=")], lines


def test_release_commands_ran_in_each_release_before_it_went_live(host, archive_release):
    runs = [s for s in stamps(host) if s[0] == "release-command"]
    releases = [release for _label, release, _pid, _at in runs]
    # The git release of converge, then the archive release; none for runs without a new release.
    assert len(runs) == 2 and releases[-1] == f"{HOME}/releases/{archive_release}", runs
    switched = float(host.check_output(f"stat -c %Y {HOME}/current"))
    assert runs[-1][3] <= switched + 1, (runs[-1], switched)


def test_long_running_command_runs_the_live_release_sandboxed(host, archive_release):
    unit = "demo-manage-stamper.service"
    assert host.service(unit).is_running and host.service(unit).is_enabled, journal(host, unit)
    text = host.file(f"/etc/systemd/system/{unit}").content_string
    assert 'stamp "loop 100%%" --every 2' in text, text
    pid = main_pid(host, unit)

    def stamped():
        return [s for s in stamps(host) if s[0] == "loop 100%" and s[2] == pid]

    # The argument with a space and a "%" reaches the command as written; it runs the live release.
    assert wait_for(stamped, timeout=10), journal(host, unit)
    assert stamped()[-1][1] == f"{HOME}/releases/{archive_release}"
    process = host.check_output(f"ps -o user= -p {pid}")
    assert process == "demo", process
    assert_sandboxed(host, unit, writable=["/var/log/demo"], read_only=["/etc", "/usr", HOME + "/current/"])
    # Its output reaches the journal as it is written (PYTHONUNBUFFERED), not when it exits.
    assert wait_for(lambda: "stamped loop 100%" in host.check_output(
        f"journalctl -u {unit} --no-pager -o cat --since=-30s"), timeout=10), journal(host, unit)


def test_timer_ran_and_went_with_its_entry(host):
    # The timer ran the git release's code every 5 s until side_effect's run dropped it.
    runs = [s for s in stamps(host) if s[0] == "timer"]
    assert runs, host.run("journalctl -u demo-manage-stamp.service --no-pager | tail").stdout
    assert all(release.startswith(f"{HOME}/releases/") for _l, release, _p, _a in runs)
    for suffix in ("service", "timer"):
        assert not host.file(f"/etc/systemd/system/demo-manage-stamp.{suffix}").exists
        state = host.run(f"systemctl is-active demo-manage-stamp.{suffix}").stdout.strip()
        assert state == "inactive", state


def test_a_run_that_stops_after_the_switch_is_finished_by_the_next(host, tmp_path):
    """The switch happened, a later task failed, the handlers never ran: the units still run the
    old release. The next run, with nothing left to change on disk, restarts them."""
    halfway = os.path.join(os.path.dirname(os.path.dirname(__file__)), "halfway.yml")
    probe_starts = len(host.file("/var/tmp/demo-probe.starts").content_string.split())
    stamper = main_pid(host, "demo-manage-stamper.service")

    rc, out, _changed = playbook(tmp_path, halfway, {"halfway_fail": True})
    assert rc != 0 and "a later role failed" in out, out[-3000:]
    assert host.file(f"{HOME}/current").linked_to == f"{HOME}/releases/halfway"
    assert host.file(f"{HOME}/releases/.restart-pending").exists
    assert len(host.file("/var/tmp/demo-probe.starts").content_string.split()) == probe_starts
    assert main_pid(host, "demo-manage-stamper.service") == stamper

    rc, out, _changed = playbook(tmp_path, halfway, {"halfway_fail": False})
    assert rc == 0, out[-3000:]
    assert "pending from an earlier run" in out, out[-3000:]
    assert len(host.file("/var/tmp/demo-probe.starts").content_string.split()) == probe_starts + 1
    assert main_pid(host, "demo-manage-stamper.service") not in (0, stamper)
    # The note is gone with the restart: a further run restarts nothing (no switch, no change).
    assert not host.file(f"{HOME}/releases/.restart-pending").exists


REFUSED_MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.AddField("note", "refused", models.BooleanField(default=False))]
"""


def test_a_release_the_deploy_check_refuses_leaves_the_database_and_current_alone(host, tmp_path):
    """Django's deploy check runs before migrate: a release that fails it (DEBUG left on,
    security.W018) stops the deploy with its new migration unapplied, `current` where it was and
    the environment file as it was."""
    release = tmp_path / "release"
    shutil.copytree(pathlib.Path(__file__).resolve().parents[3] / "tests" / "demo", release,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite3"))
    (release / "core" / "migrations" / "0002_refused.py").write_text(REFUSED_MIGRATION)
    with (release / "demo" / "settings.py").open("a") as settings:
        settings.write("\nDEBUG = True\n")
    archive = tmp_path / "refused.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(release, arcname=".")
    current = host.file(f"{HOME}/current").linked_to
    env = host.check_output("sha256sum /etc/demo/env")
    applied = "from django.db.migrations.recorder import MigrationRecorder as R; " \
              "print(R.Migration.objects.filter(app='core', name='0002_refused').exists())"

    refused = os.path.join(os.path.dirname(os.path.dirname(__file__)), "refused.yml")
    rc, out, _changed = playbook(tmp_path, refused, {"refused_archive": str(archive)})
    assert rc != 0 and "security.W018" in out, out[-3000:]
    assert "Apply database migrations" not in out, out[-3000:]
    assert shell(host, applied) == "False"
    assert host.file(f"{HOME}/current").linked_to == current
    assert host.check_output("sha256sum /etc/demo/env") == env
    assert not host.file(f"{HOME}/releases/.restart-pending").exists
