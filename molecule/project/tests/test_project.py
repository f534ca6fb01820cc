"""ephios 0.27.1, a third-party Django project, on the small tier with documented variables only:
pages through nginx and gunicorn, static files from nginx, its settings under its own names, its
cron jobs as timers, and no Celery anywhere."""

import re

import pytest

from helpers.stack import Site, assert_sandboxed, journal, tcp_listeners, wait_for

DOMAIN = "shifts.example.test"
APP = "ephios"
STATIC = "/var/www/ephios/static"
ACCESS_LOG = f"/var/log/nginx/{APP}.access.log"


@pytest.fixture(scope="module")
def site(host):
    return Site(host, DOMAIN)


def test_pages_are_served_through_nginx_and_gunicorn(host, site):
    status, headers, _unused = site.request("GET", "/")
    assert status == 302 and headers["location"].startswith("/accounts/login/"), (status, headers)
    status, headers, page = site.request("GET", "/accounts/login/")
    assert status == 200, host.run(f"tail -n 60 /var/log/{APP}/*.log").stdout + journal(host, f"{APP}.service")
    assert "ephios" in page and 'name="csrfmiddlewaretoken"' in page, page[:2000]
    # Secure cookies and HSTS from ephios's own settings, fed by the stack's SECURE_* values.
    assert headers["strict-transport-security"].startswith("max-age=31536000; includeSubDomains"), headers
    assert "secure" in headers.get("set-cookie", "").lower(), headers


def test_static_files_come_from_nginx_out_of_the_absolute_static_root(host, site):
    _status, _headers, page = site.request("GET", "/accounts/login/")
    # Compressed offline by the release command, collected into the shared absolute STATIC_ROOT.
    links = re.findall(r'(?:href|src)="(/static/CACHE/(?:css|js)/[^"]+)"', page)
    assert links, page[:3000]
    for path in links:
        status, headers, body = site.request("GET", path)
        assert status == 200, path
        assert body == host.file(STATIC + path.removeprefix("/static")).content_string, path
        assert headers.get("cache-control") == "max-age=2592000", headers
        line = [x for x in host.file(ACCESS_LOG).content_string.splitlines() if f'"GET {path}' in x][-1]
        assert 'ua="-"' in line, line  # nginx answered, no upstream
    assert path not in host.file(f"/var/log/{APP}/gunicorn-access.log").content_string
    root = host.file(STATIC)
    assert (root.user, root.mode) == (APP, 0o755)
    # The project's source assets stay in the release; nothing was collected into it.
    assert not host.file(f"/srv/{APP}/current/staticfiles").exists


def test_the_app_server_and_drivers_were_added_to_the_projects_dependencies(host):
    # ephios lists none of them (pyproject.toml): django_venv_packages adds them, pinned.
    python = f"/srv/{APP}/current/.venv/bin/python"
    code = ("import importlib.metadata as m; "
            "print(*(m.version(n) for n in ('gunicorn', 'psycopg', 'redis', 'ephios')))")
    assert host.check_output(f'{python} -c "{code}"').split()[:3] == ["27.0.1", "3.3.9", "8.1.0"]


def test_environment_speaks_the_projects_names(host):
    lines = host.check_output(f"cat /etc/{APP}/env").splitlines()
    for line in ("SITE_URL='https://shifts.example.test'", "TRUST_X_FORWARDED_PROTO='true'",
                 "DATA_DIR='/var/lib/ephios'", f"STATIC_ROOT='{STATIC}'", "DEBUG='false'",
                 "DATABASE_URL='postgresql://ephios:test-only-db-password@127.0.0.1:5432/ephios'",
                 "CACHE_URL='redis://app:test-only-cache-password@127.0.0.1:6379/0'"):
        assert line in lines, line
    assert not [x for x in lines if x.startswith(("CELERY_BROKER_URL=", "DATABASE_REPLICA_URLS="))], lines


def test_the_project_uses_postgresql_and_redis(host):
    manage = f"/usr/local/bin/{APP}-manage"
    code = ("from django.db import connection; from django.core.cache import cache; "
            "cache.set('probe', 'from-redis', 60); "
            "print(connection.vendor, connection.settings_dict['HOST'], cache.get('probe'))")
    out = host.run(f"{manage} shell -c \"{code}\"")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "postgresql 127.0.0.1 from-redis", out.stdout
    with host.sudo("postgres"):
        tables = host.check_output(f"psql -d {APP} -Atc \"SELECT count(*) FROM django_migrations\"")
    assert int(tables) > 50


def test_cron_jobs_run_as_timers_of_the_live_release(host):
    for name, command in (("periodic", "run_periodic"), ("notifications", "send_notifications")):
        timer = host.service(f"{APP}-manage-{name}.timer")
        assert timer.is_running and timer.is_enabled, name
        unit = host.file(f"/etc/systemd/system/{APP}-manage-{name}.service").content_string
        assert f"/srv/{APP}/current/manage.py {command}" in unit, unit
    # run_periodic fires every minute, as ephios's cron did; each run exits cleanly.
    service = f"{APP}-manage-periodic.service"

    def triggered():
        return host.check_output(f"systemctl show -p LastTriggerUSecMonotonic --value {APP}-manage-periodic.timer")

    assert wait_for(lambda: triggered() not in ("", "0"), timeout=70), journal(host, service)
    host.run_test(f"systemctl start {service}")
    shown = host.check_output(f"systemctl show -p Result -p ExecMainStatus --value {service}").split()
    assert shown == ["success", "0"], journal(host, service)


def test_the_projects_units_are_sandboxed(host):
    # gunicorn writes its log and django-compressor's runtime output (gunicorn_read_write_paths),
    # nothing else; the code and the rest of the static files stay read-only.
    assert_sandboxed(host, f"{APP}.service", writable=[f"/var/log/{APP}", f"{STATIC}/CACHE"],
                     read_only=["/etc", "/usr", STATIC, f"{STATIC}/ephios", f"/srv/{APP}/current/"])


def test_no_celery_and_no_broker(host):
    # (list-unit-files exits 1 when nothing matches)
    assert host.run("systemctl list-unit-files --no-legend 'ephios-celery*'").stdout.strip() == ""
    assert host.run("systemctl is-active redis-server@broker.service").stdout.strip() == "inactive"
    assert host.run("systemctl is-enabled redis-server@broker.service").stdout.strip() != "enabled"
    assert host.service("redis-server@cache.service").is_running
    ports = {port for _address, port in tcp_listeners(host)}
    assert 6380 not in ports and 6379 in ports, ports
    assert not host.file("/etc/redis/redis-broker.conf").exists


def test_every_unit_is_fine(host):
    failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
    assert failed == "", failed
