"""djangoprod.stack.installed_packages, run as Ansible runs it, against a dpkg-query stand-in on
PATH that prints what dpkg's database would: only installed packages become facts, in
package_facts' form, and check mode reads the same."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "installed_packages.py"
sys.path.insert(0, str(MODULE.parent))
from installed_packages import parse  # noqa: E402

LISTING = (
    "nginx\t1.26.3-3\tamd64\tinstalled\n"
    "libc6\t2.41-12\tamd64\tinstalled\n"
    "libc6\t2.41-12\ti386\tinstalled\n"
    "redis-server\t5:8.0.2-3\tamd64\tconfig-files\n"
    "postgresql-17\t17.6-0+deb13u1\tamd64\thalf-installed\n"
)


def test_only_installed_packages_are_listed_with_every_architecture():
    packages = parse(LISTING)
    assert sorted(packages) == ["libc6", "nginx"]
    assert packages["nginx"] == [{"name": "nginx", "version": "1.26.3-3", "arch": "amd64", "source": "apt"}]
    assert [entry["arch"] for entry in packages["libc6"]] == ["amd64", "i386"]


@pytest.fixture
def fake_dpkg(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dpkg-query"
    script.write_text("#!/bin/sh\n[ \"$1\" = -W ] || exit 2\nprintf '%s' \"$LISTING\"\n")
    script.chmod(0o755)
    return bin_dir


def _run(bin_dir, tmp_path, check=False, listing=LISTING):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": check}}))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LISTING": listing}
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True,
                          check=False, env=env, timeout=60)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("check", [False, True])
def test_the_module_sets_the_facts_and_changes_nothing(fake_dpkg, tmp_path, check):
    result = _run(fake_dpkg, tmp_path, check)
    assert result["changed"] is False and not result.get("failed"), result
    assert sorted(result["ansible_facts"]["packages"]) == ["libc6", "nginx"]


def test_a_failing_dpkg_query_fails_the_module(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\necho 'dpkg-query: database broken' >&2\nexit 2\n")
    (bin_dir / "dpkg-query").chmod(0o755)
    result = _run(bin_dir, tmp_path)
    assert result["failed"] and "database broken" in result["msg"], result


def _run_script(bin_dir, tmp_path, script, script_args):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"script": script, "script_args": script_args}}))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LISTING": LISTING}
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True,
                          check=False, env=env, timeout=60)
    return json.loads(proc.stdout)


def test_a_probe_script_runs_in_the_same_call(fake_dpkg, tmp_path):
    result = _run_script(fake_dpkg, tmp_path, 'echo "zero $0"; echo "first $1"; echo "second $2"', ["a b", "c"])
    assert result["changed"] is False and not result.get("failed"), result
    assert result["stdout_lines"] == ["zero probe", "first a b", "second c"]
    assert sorted(result["ansible_facts"]["packages"]) == ["libc6", "nginx"]


def test_a_failing_probe_script_fails_the_module(fake_dpkg, tmp_path):
    result = _run_script(fake_dpkg, tmp_path, "echo broken >&2; exit 3", [])
    assert result["failed"] and "broken" in result["msg"] and result["rc"] == 3, result
