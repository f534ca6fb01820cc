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
    for role in ("common", "postgresql", "redis", "django", "gunicorn", "celery", "nginx", "logrotate"):
        assert f"djangoprod.stack.{role} :" in out, role
