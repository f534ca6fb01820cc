"""The collection builds into a tarball that installs and works by FQCN."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def _run(cmd, env, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("collection")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_HOME"] = str(work / "home")
    env["ANSIBLE_NOCOLOR"] = "1"
    out = _run(["ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(work)], env, work)
    tarball = next(work.glob("djangoprod-stack-*.tar.gz"))
    assert "Created collection" in out
    path = work / "collections"
    # Dependencies are the collections the ansible package bundles (Galaxy is not reachable).
    _run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(path), str(tarball)], env, work)
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{path}:{os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':')[-1]}"
    return {"env": env, "work": work, "path": path, "tarball": tarball}


def test_tarball_leaves_out_development_files(installed):
    listing = subprocess.run(["tar", "-tzf", str(installed["tarball"])], capture_output=True, text=True,
                             check=True).stdout.split()
    assert "galaxy.yml" not in listing and "MANIFEST.json" in listing
    assert not [name for name in listing if name.startswith((".venv", ".cache", ".demo", ".git/"))]
    for role in ROLES:
        assert f"roles/{role}/meta/argument_specs.yml" in listing


def test_installed_collection_is_listed(installed):
    out = _run(["ansible-galaxy", "collection", "list", "djangoprod.stack", "-p", str(installed["path"])],
               installed["env"], installed["work"])
    assert "djangoprod.stack" in out


def test_filters_work_and_are_documented_by_fqcn(installed):
    out = _run(["ansible", "localhost", "-m", "ansible.builtin.debug",
                "-a", "msg={{ 2048 | djangoprod.stack.pg_tune }}"], installed["env"], installed["work"])
    assert "512MB" in out
    out = _run(["ansible-doc", "-t", "filter", "djangoprod.stack.gunicorn_workers"],
               installed["env"], installed["work"])
    assert "2 * cpus + 1" in out


@pytest.mark.parametrize("role", ROLES)
def test_roles_resolve_by_fqcn(installed, role):
    out = _run(["ansible-doc", "-t", "role", f"djangoprod.stack.{role}"], installed["env"], installed["work"])
    assert f"ROLE: *djangoprod.stack.{role}* ({installed['path']}" in out
    assert "ENTRY POINT: *main*" in out


def test_site_playbook_runs_by_fqcn(installed):
    inventory = installed["work"] / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n      ansible_connection: local\n")
    out = _run(["ansible-playbook", "-i", str(inventory), "djangoprod.stack.site", "--syntax-check"],
               installed["env"], installed["work"])
    assert f"playbook: {installed['path']}/ansible_collections/djangoprod/stack/playbooks/site.yml" in out
    out = _run(["ansible-playbook", "-i", str(inventory), "djangoprod.stack.site", "--list-tasks"],
               installed["env"], installed["work"])
    for role in ("common", "postgresql", "redis", "django", "nginx", "logrotate"):
        assert f"djangoprod.stack.{role} :" in out, role
    # The roles narrower than their play are included on their own hosts (include_role): the
    # list shows the include, and the run resolves the role by its FQCN when it gets there.
    for task in ("Serve the project with gunicorn", "Run the Celery worker and beat",
                 "Copy the live release's static files", "Ask the ACME server for the certificate"):
        assert task in out, task


GOOD_VARS = """\
stack_app_name: demo
stack_domains: [demo.example.test]
stack_acme_email: ops@demo.example.test
stack_app_source: git
stack_app_git_repo: "file://{repo}"
stack_django_settings_module: demo.settings
stack_wsgi_app: demo.wsgi:application
stack_celery_app: demo
stack_secret_key: test-only-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOP
stack_db_password: test-only-db-password
stack_redis_cache_password: test-only-cache-password
stack_redis_broker_password: test-only-broker-password
"""


@pytest.fixture()
def two_hosts(installed, tmp_path, tmp_path_factory):
    """An inventory of two hosts on this machine's loopback (local connection): web1 carries
    nginx, app1 everything else. Only the preflight runs against it: it changes nothing. The
    code is a repository on this machine, since the checks read the commit to deploy."""
    python = os.path.realpath(os.sys.executable)
    repo = tmp_path_factory.mktemp("repo") / "demo.git"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    repo.mkdir()
    (repo / "requirements.txt").write_text("Django\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "demo"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "main.yml").write_text(GOOD_VARS.format(repo=repo))
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n"
        f"    web1: {{ansible_connection: local, ansible_python_interpreter: {python}}}\n"
        f"    app1: {{ansible_connection: local, ansible_python_interpreter: {python}}}\n"
        "  children:\n    web: {hosts: {web1: {}}}\n"
        + "".join(f"    {g}: {{hosts: {{app1: {{}}}}}}\n"
                  for g in ("app", "worker", "beat", "postgres_primary", "redis")))
    return tmp_path


def _preflight(installed, inventory, *args):
    cmd = ["ansible-playbook", "-i", str(inventory), "djangoprod.stack.preflight", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=installed["env"], cwd=installed["work"],
                          timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_installed_playbooks_load_their_wiring(installed, two_hosts):
    # Every role's required inputs (nginx_upstream_servers, gunicorn_listen, ...) come only from
    # the wiring in the collection's playbooks/group_vars/all: the role checks pass only if it loaded.
    # The specs of nginx (on web1) and gunicorn (on app1) are among those checked: their
    # required inputs exist only in the wiring.
    rc, out = _preflight(installed, two_hosts)
    assert rc == 0, out[-4000:]
    task = out.split("TASK [Preflight | Check each role's input on the hosts that run it]")[1].split("TASK [")[0]
    assert "ok: [web1]" in task and "ok: [app1]" in task, task


def test_limit_reads_addresses_of_hosts_outside_it(installed, two_hosts):
    # Under --limit web1, nginx's upstream needs app1's address: its facts are gathered by
    # delegation, never taken from a fact that only a play on app1 would have set.
    rc, out = _preflight(installed, two_hosts, "--limit", "web1")
    assert rc == 0, out[-4000:]
    assert "ok: [web1 -> app1] => (item=app1)" in out, out[-4000:]


def test_inventory_group_vars_override_the_wiring(installed, two_hosts):
    # A wired variable set in the inventory's group_vars/<group> reaches the role (here, a wrong
    # type that the role's spec refuses, so the override provably won over the wiring).
    (two_hosts / "group_vars" / "worker").mkdir()
    (two_hosts / "group_vars" / "worker" / "main.yml").write_text("celery_worker_enabled: sometimes\n")
    rc, out = _preflight(installed, two_hosts)
    assert rc != 0
    assert "celery_worker_enabled" in out and "unable to convert to bool" in out, out[-4000:]


def test_wired_variable_in_inventory_group_vars_all_is_refused(installed, two_hosts):
    # Ansible ranks the inventory's group_vars/all below the playbooks' own: refused, not ignored.
    (two_hosts / "group_vars" / "all" / "tuning.yml").write_text("nginx_static_root: /srv/elsewhere/\n")
    rc, out = _preflight(installed, two_hosts)
    assert rc != 0
    assert "nginx_static_root: set in your inventory's group_vars/all" in out, out[-4000:]
    assert "group_vars/web" in out


@pytest.mark.parametrize(("settings", "named"), [
    ("django_secure_hsts_seconds: 0\n", "django_secure_hsts_seconds (security.W004)"),
    ("django_secure_ssl_redirect: false\ndjango_csrf_cookie_secure: false\n",
     "django_secure_ssl_redirect (security.W008), django_csrf_cookie_secure (security.W016)"),
])
def test_a_setting_the_deploy_check_refuses_stops_the_preflight(installed, two_hosts, settings, named):
    # Django's deploy check would stop the deploy on the host, after the environment file changed.
    (two_hosts / "group_vars" / "app").mkdir()
    (two_hosts / "group_vars" / "app" / "main.yml").write_text(settings)
    rc, out = _preflight(installed, two_hosts)
    assert rc != 0
    assert f"{named}: Django's deploy check warns about this value" in out, out[-4000:]
    # Left out of the deploy check, the same value passes.
    checks = ("security.W004", "security.W008", "security.W016", "security.W021")
    silenced = "".join(f"  - {check}\n" for check in checks)
    (two_hosts / "group_vars" / "app" / "main.yml").write_text(settings + "django_check_deploy_silenced:\n" + silenced)
    rc, out = _preflight(installed, two_hosts)
    assert rc == 0, out[-4000:]
