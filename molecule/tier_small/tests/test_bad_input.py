"""Bad values against the converged small-tier host, one row each: every run stops in the
preflight with a message that names the variable and says what is expected, and reports
changed=0; after the whole table the host's configuration and code (/etc, /srv, /usr/local) are
byte-identical and every service runs with the PID it had. The rows run three at a time: a run
that stops in the preflight only reads. The first row gathers the host's facts into a fact cache
the others read (two seconds a row: the table is about the checks, not about the facts).

Debian 12 runs the rest of the scenario; the table is the controller's and the preflight's, the
same on both releases, so it runs once, on 13."""

import concurrent.futures
import io
import os
import pathlib
import tarfile
import tempfile

import pytest

from helpers.stack import Site, main_pid, playbook

pytestmark = pytest.mark.skipif(os.environ.get("DJANGOPROD_RELEASE", "13") != "13",
                                reason="the table runs once, on Debian 13")

# inventories/small's vault holds it; the vault password is in the README.
EXAMPLE_DB_PASSWORD = "ptNSerbDzm4Qw3ZTIsRWL4NsK3d2Jwvv"
SNAPSHOT = ("find /etc /srv /usr/local -xdev -type f -print0 | sort -z | xargs -0 sha256sum; "
            "find /etc /srv /usr/local -xdev -type l -printf '%p -> %l\\n' | sort")
UNITS = ["nginx.service", "demo.service", "postgresql@17-main.service", "redis-server@cache.service",
         "redis-server@broker.service", "demo-celery-worker.service", "demo-celery-beat.service"]

# Releases the table deploys: the demo with a pyproject.toml that asks for a Python no host has,
# and the demo without its requirements file (the fixture writes them).
BAD_RELEASES = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", tempfile.gettempdir())) / "bad-releases"
PYTHON_399 = str(BAD_RELEASES / "python-3.99.tar.gz")
# A repository on the host (outside the snapshot) whose main asks for Python 3.99 and whose branch
# "bare" has no requirements file (the fixture writes it).
BAD_REPO = "/var/tmp/bad-release.git"
BAD_REPO_SCRIPT = f"""set -e
rm -rf {BAD_REPO} {BAD_REPO}.work && mkdir {BAD_REPO}.work && cd {BAD_REPO}.work
git init -q -b main
printf 'django\\n' > requirements.txt
printf '[project]\\nname = "demo"\\nversion = "1"\\nrequires-python = ">=3.99"\\n' > pyproject.toml
git add . && git -c user.name=t -c user.email=t@example.test commit -qm python
git checkout -q -b bare && git rm -q requirements.txt
git -c user.name=t -c user.email=t@example.test commit -qm bare
git clone -q --bare . {BAD_REPO} && cd / && rm -rf {BAD_REPO}.work"""
NO_REQUIREMENTS = str(BAD_RELEASES / "no-requirements.tar.gz")

# Rows of (extra vars, words of the expected message, the run it shares). Runs by the check that
# stops them: "stack" the preflight's check of the site, groups and Sentinels; "host" its check of
# the stack variables' rules and secrets; "spec" the roles' argument specs; "common", "django",
# "nginx" and the other role names each role's own checks (tasks/checks.yml).
BAD_INPUT = [
    # No name at all; a name with its scheme; a malformed name, with or without an ACME server.
    ({"stack_domains": []}, "stack_domains is empty", "stack"),
    ({"stack_domains": ["https://shop.example.com"]},
     'stack_domains: "https://shop.example.com" is not a host name or an IP address', "stack-scheme"),
    ({"stack_domains": ["shop..example.com"]},
     'stack_domains: "shop..example.com" is not a host name or an IP address', "stack-malformed"),
    ({"stack_domains": ["shop.example.com", "bad_name.example.com"], "stack_acme_enabled": True,
      "stack_acme_email": "ops@example.com"},
     'stack_domains: "bad_name.example.com" is not a name an ACME server can validate', "stack-acme-name"),
    # A name an ACME server cannot validate over HTTP.
    ({"stack_domains": ["localhost", "10.0.0.5"], "stack_acme_enabled": True,
      "stack_acme_email": "ops@example.com"},
     'stack_domains: "localhost", "10.0.0.5" are not a name an ACME server can validate', "stack-acme-local"),
    # Certificates from an ACME server need an account email.
    ({"stack_acme_enabled": True}, "stack_acme_email must be the email address of the account", "stack"),
    ({"stack_acme_enabled": True, "stack_acme_email": "ops at example.com"},
     'the account at the ACME server (expiry notices go there), found "ops at example.com"', "stack-acme-email"),
    # Celery hosts need the Celery application.
    ({"stack_celery_app": ""}, "stack_celery_app must name the project's Celery application", "stack"),
    ({"stack_hosts_down": ["pg-primary-typo"]}, 'stack_hosts_down: "pg-primary-typo" is not in the inventory', "stack"),
    ({"stack_postgres_synchronous_standbys": 1},
     "stack_postgres_synchronous_standbys (1) is more than the hosts in group postgres_replica (0)", "stack"),
    # Management commands: where they run, their names and commands, systemd's own calendar check
    # (read only once the commands are well formed).
    ({"stack_app_timers": [{"name": "x", "command": "clearsessions", "on_calendar": "daily", "group": "web"}]},
     "an entry's group must be one of app, worker, beat", "stack"),
    ({"stack_app_services": [{"name": "Send Alerts", "command": "sendalerts"}]},
     "django_services and django_timers are lists of {name, command}", "django"),
    ({"stack_app_services": [{"name": "alerts", "command": ""}]},
     "django_services and django_timers are lists of {name, command}", "django-empty-command"),
    ({"stack_app_timers": [{"name": "reports", "command": "sendreports", "on_calendar": "every tuesday"}]},
     "django_timers: systemd cannot read the on_calendar of reports", "django-calendar"),
    ({"stack_static_root": "../static"}, "django_static_root must be a path relative to the release", "django"),
    # The code to deploy, what it needs and the host's Python, before any host changes.
    ({"stack_app_archive": "/nonexistent/demo.tar.gz"},
     "django_archive_src: /nonexistent/demo.tar.gz is not a file on the controller", "django"),
    ({"stack_app_archive": NO_REQUIREMENTS},
     f"django_requirements_file: requirements.txt is not in the archive {NO_REQUIREMENTS}", "django-empty-command"),
    ({"stack_app_archive": PYTHON_399},
     "the release asks for Python >=3.99 (requires-python in its pyproject.toml), and django_python",
     "django-calendar"),
    # A git checkout, read on the host before anything changes: a repository the host cannot fetch,
    # a commit without the requirements file, a commit that asks for a Python the host lacks.
    ({"stack_app_source": "git", "stack_app_git_repo": "file:///var/tmp/missing.git"},
     "cannot fetch main from file:///var/tmp/missing.git: fatal:",
     "git-missing"),
    ({"stack_app_source": "git", "stack_app_git_repo": "file://" + BAD_REPO, "stack_app_git_version": "bare"},
     f"django_requirements_file: requirements.txt is not in bare of file://{BAD_REPO}", "git-bare"),
    ({"stack_app_source": "git", "stack_app_git_repo": "file://" + BAD_REPO},
     "the release asks for Python >=3.99 (requires-python in its pyproject.toml), and django_python", "git"),
    ({"stack_app_env": {"DB-HOST": "x"}}, "Names in django_env_extra must be shell identifiers: DB-HOST", "django"),
    # Load balancers in front: addresses or networks only; the nginx role's own lists too.
    ({"stack_trusted_proxies": ["10.0.0.0/8", "lb.example.test"]},
     ('stack_trusted_proxies: entries must be IPv4 or IPv6 addresses or networks without host bits '
      '(10.0.0.5, 10.0.0.0/24, fd00::/64), got "lb.example.test"'), "stack"),
    ({"nginx_rate_limit_allowlist": ["127.0.0.1", "10.1.2.3/16"]},
     ('nginx_rate_limit_allowlist: entries must be IPv4 or IPv6 addresses or networks without host '
      'bits (10.0.0.5, 10.0.0.0/24, fd00::/64), got "10.1.2.3/16"'), "nginx"),
    ({"nginx_real_ip_header": "X-Forwarded-For; proxy_pass x"},
     "nginx_real_ip_header: a header name such as X-Forwarded-For or X-Real-IP, or proxy_protocol", "nginx"),
    # An unknown TLS profile, checked against the nginx role's argument spec.
    ({"nginx_tls_profile": "old"}, "nginx_tls_profile must be one of: intermediate, modern, got: old", "spec"),
]

# Firewall input that could lock the operator out.
FIREWALL_LOCKOUT = [
    ({"common_firewall_ssh_ports": []}, "common_firewall_ssh_ports is empty", "common"),
    ({"common_firewall_ssh_ports": [0]}, "common_firewall_ssh_ports: a port must be from 1 to 65535", "common-port-0"),
    ({"common_firewall_public_ports": [443, 70000]},
     "common_firewall_public_ports: a port must be from 1 to 65535", "common"),
    ({"common_firewall_allow_extra": [{"ports": [65536], "sources": ["10.0.0.5"]}]},
     "common_firewall_allow_extra: a port must be from 1 to 65535", "common"),
    ({"common_firewall_ssh_ports": [2222], "common_firewall_public_ports": [80, 443, 2222]},
     "A port taken twice in common_firewall_ssh_ports and common_firewall_public_ports: 2222", "common-twice"),
    ({"common_firewall_allow_extra": [{"ports": [9100], "sources": ["monitoring.example"]}]},
     "sources must be IPv4 or IPv6 addresses", "common-port-0"),
]


# The rules beside the specs: the stack's (playbooks/vars/stack_rules.yml) name the variable you
# set; each role's (roles/<role>/meta/input_rules.yml) the role variable. Ranges, sizes and times
# as each daemon spells them, relations, and secrets the world knows.
RULES = [
    ({"stack_app_name": "my app"}, "stack_app_name must be a name of lower-case letters, digits", "host"),
    ({"stack_app_port": 70000}, "stack_app_port must be a port from 1 to 65535, got 70000", "host"),
    ({"stack_private_address": "db.internal"}, "stack_private_address must be an IPv4 or IPv6 address", "host"),
    # git would read a version that starts with "-" as an option of its own.
    ({"stack_app_git_version": "--upload-pack=touch /tmp/x"},
     "stack_app_git_version must be a branch, tag or commit id that does not start with '-' or '.'", "host"),
    ({"stack_secret_key": "django-insecure-" + "k3y" * 20},
     "stack_secret_key must be at least 50 characters with at least 5 different ones, not a 'django-insecure-'",
     "host"),
    ({"stack_secret_key": "changeme"}, "stack_secret_key is a placeholder, not a secret", "host-placeholder"),
    ({"stack_db_password": EXAMPLE_DB_PASSWORD}, "stack_db_password is a value the world knows", "host"),
    ({"stack_redis_cache_password": "test-only-db-password"},
     "stack_db_password and stack_redis_cache_password must differ, both are the same (values not shown)",
     "host-placeholder"),
    ({"gunicorn_workers": 0}, "gunicorn_workers must be from 1 to 256, got 0", "gunicorn"),
    ({"postgresql_port": 70000}, "postgresql_port must be a port from 1 to 65535, got 70000", "postgresql"),
    ({"postgresql_port": 5433}, "postgresql_port=5433 on small (the stack uses 5432)", "ports"),
    ({"postgresql_shared_buffers": "1 GB"}, "postgresql_shared_buffers must be a size as PostgreSQL spells it",
     "postgresql"),
    # pg_hba.conf entries, names and schedules as PostgreSQL and systemd read them (systemd-analyze on
    # the host judges a schedule that is not the role's default).
    ({"postgresql_hba_entries": [{"type": "hostssl", "database": "demo", "user": "demo", "address": "10.0.0.5"}]},
     "postgresql_hba_entries[0].address must be a network in CIDR form", "postgresql"),
    ({"postgresql_hba_entries": [{"type": "host", "database": "all", "user": "all"}]},
     ("an entry of type host, hostssl or hostnossl needs its address (a network in CIDR form such as "
      "10.0.0.0/24), got none for all/all"), "postgresql-hba"),
    ({"postgresql_hba_entries": [{"type": "host", "database": "demo", "user": "demo", "address": "10.0.0.0/24",
                                  "method": "peer"}]},
     "method peer works only with type local, and cert or a clientcert option only with type hostssl",
     "postgresql-hba-method"),
    ({"postgresql_backup_on_calendar": "every night"},
     "postgresql_backup_on_calendar: systemd cannot read it as a calendar expression", "postgresql"),
    ({"postgresql_synchronous_standbys": ["db9"]},
     "postgresql_synchronous_standbys: db9 is not the name of a standby in postgresql_replicas (empty)",
     "postgresql"),
    ({"postgresql_synchronous_count": 3},
     "postgresql_synchronous_count (3) is more than the standbys in postgresql_synchronous_standbys (1)",
     "postgresql"),
    ({"postgresql_users": [{"name": "demo-user", "password": "a-long-enough-pass-phrase"}]},
     "postgresql_users[0].name must be a role name of letters, digits", "postgresql-hba"),
    ({"redis_cache_maxmemory": "2 GB"}, 'redis_cache_maxmemory must be a size as Redis spells it, without a space',
     "redis"),
    ({"nginx_client_max_body_size": "25 MB"}, "nginx_client_max_body_size must be a size as nginx spells it", "nginx"),
    ({"nginx_rate_limit_rate": "20/s"}, "nginx_rate_limit_rate must be a rate as nginx spells it: 10r/s or 600r/m",
     "nginx"),
    ({"celery_soft_time_limit": 600}, "celery_soft_time_limit must be at most celery_time_limit (300), got 600",
     "celery"),
    ({"common_locale": "en_US.ISO-8859-1"}, "common_locale must be a UTF-8 locale", "common"),
    # Names as Debian, pip, systemd, nginx and Redis read them.
    ({"common_packages_extra": ["build essential"]},
     "common_packages_extra[0] must be a Debian package name such as libpq-dev", "common"),
    ({"django_database_url": "postgres//demo:s3cret-in-url@db/demo"},
     ("django_database_url must be a URL such as postgresql://user:password@host:5432/name or "
      "redis://:password@host:6379/0 (value not shown)"), "django"),
    ({"django_venv_packages": ["gunicorn 27"]},
     "django_venv_packages[0] must be a requirement such as gunicorn==27.0.1", "django"),
    ({"gunicorn_worker_class": "gthread; rm -rf /"},
     "gunicorn_worker_class must be a worker class such as gthread", "gunicorn"),
    ({"nginx_gzip_types": ["text/css", "javascript"]}, "nginx_gzip_types[1] must be a MIME type such as text/css",
     "nginx"),
    ({"redis_acl_denied_commands": ["FLUSHALL now"]},
     "redis_acl_denied_commands[0] must be a command or @category", "redis"),
    ({"redis_sentinel_addresses": ["10.0.0.5:26379", "10.0.0.6:26379"], "redis_sentinel_quorum": 3},
     "redis_sentinel_quorum (3) is more than the Sentinels in redis_sentinel_addresses (2)", "redis"),
    ({"logrotate_policies": [{"name": "demo app", "paths": ["/var/log/demo/*.log"]}]},
     "logrotate_policies[0].name must be a file name", "logrotate"),
    # Paths that would act on a system directory: /etc/logrotate.d/.. is /etc.
    ({"logrotate_policies_absent": [".."]}, "logrotate_policies_absent[0] must be a file name", "logrotate"),
    # Two policies for one log: logrotate would refuse the duplicate entry, and fail every day.
    ({"logrotate_policies": [{"name": "demo-app", "paths": ["/var/log/demo/app.log"]},
                             {"name": "demo-more", "paths": ["/var/log/demo/app.log"]}]},
     'logrotate_policies: the path "/var/log/demo/app.log" is in more than one policy', "logrotate-twice"),
    ({"celery_log_dir": "/var/log"}, "celery_log_dir must be an absolute directory of its own", "celery"),
    ({"nginx_proxy_read_timeout": "1m 30s"},
     "nginx_proxy_read_timeout must be a time as nginx spells it, without a space", "nginx"),
    # Ports from 1 to 65535 and real addresses wherever a role takes address:port.
    ({"gunicorn_listen": "10.0.0.5:70000"}, "gunicorn_listen must be a unix socket path", "gunicorn"),
    ({"nginx_upstream_servers": ["app1:0"]}, "nginx_upstream_servers[0] must be unix:/path/to.sock", "nginx"),
    # Passwords given to a role: placeholders at any depth, what redis.conf would split.
    ({"postgresql_users": [{"name": "reports", "password": "changeme"}]},
     "postgresql_users[0].password is a placeholder, not a secret", "postgresql-hba-method"),
    ({"redis_admin_password": "three words here"},
     "redis_admin_password must be at least 12 characters without spaces, quotes or backslashes", "redis"),
    # PostgreSQL: a size without its unit, walsenders too few for the standbys.
    ({"postgresql_work_mem": "4096"}, "postgresql_work_mem must be a size as PostgreSQL spells it",
     "postgresql-hba-method"),
    ({"postgresql_replicas": [{"name": "db2", "address": "10.0.0.6/32"}], "postgresql_max_wal_senders": 2},
     "postgresql_max_wal_senders (2) must be at least the standbys in postgresql_replicas plus 2 (3)",
     "postgresql-hba"),
]

# All tables, one row a test.
ROWS = BAD_INPUT + FIREWALL_LOCKOUT + RULES


def _runs():
    """{run: extra vars of all its rows}, in the order of the runs' first rows. Rows of a run set
    different variables (a variable set twice would hide one of them)."""
    runs = {}
    for extra, _message, run in ROWS:
        merged = runs.setdefault(run, {})
        assert not set(extra) & set(merged), (run, sorted(set(extra) & set(merged)))
        merged.update(extra)
    return runs


RUNS = _runs()


def write_bad_releases():
    """PYTHON_399 and NO_REQUIREMENTS, made from the demo's archive."""
    demo = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".cache" / "demo-app.tar.gz"
    BAD_RELEASES.mkdir(exist_ok=True)
    pyproject = b'[project]\nname = "demo"\nversion = "1"\nrequires-python = ">=3.99"\n'
    with tarfile.open(demo) as source, tarfile.open(PYTHON_399, "w:gz") as python, \
            tarfile.open(NO_REQUIREMENTS, "w:gz") as bare:
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            content = data.read() if data else None
            python.addfile(member, io.BytesIO(content) if content is not None else None)
            if member.name.lstrip("./") != "requirements.txt":
                bare.addfile(member, io.BytesIO(content) if content is not None else None)
        info = tarfile.TarInfo("./pyproject.toml")
        info.size = len(pyproject)
        python.addfile(info, io.BytesIO(pyproject))


@pytest.fixture(scope="module")
def table_run(host, tmp_path_factory):
    """Every run, three at a time, between two snapshots of the host: ({run: (rc, out, changed)},
    (files, pids) before, (files, pids) after)."""
    def state():
        return host.check_output(SNAPSHOT), {unit: main_pid(host, unit) for unit in UNITS}

    write_bad_releases()
    host.run_expect([0], BAD_REPO_SCRIPT)
    # A request first: gunicorn starts on its socket's first connection.
    assert Site(host, "demo.example.test").request("GET", "/ready/")[0] == 200
    before = state()

    # The directories first: pytest's base directory is not made safely from several threads.
    names = list(RUNS)
    directories = {name: tmp_path_factory.mktemp(f"run-{name}") for name in names}

    facts = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
             "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path_factory.mktemp("facts"))}

    def run(name):
        return name, playbook(directories[name], "small.yml", RUNS[name], env=facts)

    results = dict([run(names[0])])
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results.update(pool.map(run, names[1:]))
    return results, before, state()


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[message for _extra, message, _run in ROWS])
def test_bad_input_is_named_before_any_change(table_run, index):
    results, _before, _after = table_run
    rc, out, changed = results[ROWS[index][2]]
    assert rc != 0, out[-3000:]
    assert ROWS[index][1] in " ".join(out.split()), out[-3000:]
    assert changed and set(changed.values()) == {0}, out[-2000:]
    assert EXAMPLE_DB_PASSWORD not in out


def test_the_table_left_every_file_and_service_as_it_was(table_run):
    _results, (files_before, pids_before), (files_after, pids_after) = table_run
    assert all(pids_before.values()), pids_before
    assert pids_after == pids_before
    changed = sorted(set(files_before.splitlines()) ^ set(files_after.splitlines()))
    assert not changed, changed[:40]
