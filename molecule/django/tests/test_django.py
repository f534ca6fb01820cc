"""Behaviour of a deployed release: the code runs, the database is migrated, static files are
collected, the environment stays private, releases are kept, pruned and share a virtualenv.

Runs after side_effect.yml: the git release (converge) is the previous one, the archive
release is current.
"""
import hashlib
import json
import os
import re
import uuid

import pytest

from helpers.stack import journal

MANAGE = "/usr/local/bin/demo-manage"
HOME = "/srv/demo"


def manage(host, *args):
    return host.run(" ".join([MANAGE, *args]))


def shell(host, code):
    """Run Python in the app's Django shell; return the last line printed."""
    cmd = host.run(f"{MANAGE} shell -c {json.dumps(code)}")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip().splitlines()[-1]


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
    assert host.file(f"{HOME}/current/static").user == "demo"


def test_check_deploy_passes(host):
    cmd = manage(host, "check", "--deploy", "--fail-level", "WARNING")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_migrations_applied(host):
    out = host.check_output(f"{MANAGE} showmigrations")
    assert "[X] 0001_initial" in out
    assert "[ ]" not in out, out


def test_note_written_is_readable(host):
    text = f"note-{uuid.uuid4().hex}"
    pk = shell(host, f"from core.models import Note; print(Note.objects.create(text='{text}').pk)")
    read = shell(host, f"from core.models import Note; print(Note.objects.get(pk={pk}).text)")
    assert read == text
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
    assert ready == {"database": True, "cache": True, "broker": False}


def test_static_files_collected(host):
    collected = f"{HOME}/current/static/admin/css/base.css"
    source = host.check_output(
        f"{HOME}/current/.venv/bin/python -c "
        "'import django, os; print(os.path.dirname(django.__file__))'") + "/contrib/admin/static/admin/css/base.css"
    assert host.run(f"cmp {collected} {source}").rc == 0, "collectstatic did not copy admin/css/base.css"
    # ManifestStaticFilesStorage: the manifest names a content-hashed copy (its url()s rewritten).
    manifest = json.loads(host.file(f"{HOME}/current/static/staticfiles.json").content_string)
    hashed = manifest["paths"]["admin/css/base.css"]
    assert re.fullmatch(r"admin/css/base\.[0-9a-f]{12}\.css", hashed), hashed
    assert host.file(f"{HOME}/current/static/{hashed}").size > 0, hashed


def test_env_file_is_private(host):
    env = host.file("/etc/demo/env")
    assert env.mode == 0o640
    assert (env.user, env.group) == ("root", "demo")
    assert host.run("runuser -u demo -- cat /etc/demo/env").rc == 0
    assert host.run("runuser -u nobody -- cat /etc/demo/env").rc != 0
    assert "SECRET_KEY='" in env.content_string
    assert "STATIC_ROOT='/srv/demo/current/static'" in env.content_string
    assert "HEARTBEAT_SECONDS='5'" in env.content_string


def test_app_logs_to_log_dir(host):
    marker = f"probe-{uuid.uuid4().hex}"
    shell(host, f"import logging; logging.getLogger('core').warning('{marker}'); print('ok')")
    log = host.file("/var/log/demo/app.log")
    assert log.user == "demo"
    assert marker in log.content_string


def test_units_restarted_once_per_release(host):
    # converge (git release) and side_effect (archive release) each restart once; the
    # idempotence and check runs do not.
    starts = host.file("/var/tmp/demo-probe.starts").content_string.split()
    assert len(starts) == 2, journal(host, "demo-probe.service")
