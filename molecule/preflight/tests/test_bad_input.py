"""Bad input fails before anything on a fresh host changes, with a message naming the variable:
nothing installed, no file written. The table of bad values runs against a converged host, in
the tier_small scenario (molecule/tier_small/tests/test_bad_input.py)."""

import functools
import http.server
import json
import os
import pathlib
import re
import socket
import struct
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "small.yml"
GOOD_SECRET = {"stack_redis_broker_password": "test-only-broker-password"}


def _run(tmp_path, extra=None, inventory=None, playbook=PLAYBOOK):
    inventory_dir = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    cmd = ["ansible-playbook", "-i", str(inventory_dir), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra is not None:
        path = tmp_path / "extra.json"
        path.write_text(json.dumps(extra))
        cmd += ["-e", f"@{path}"]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    changed = [int(n) for n in re.findall(r"changed=(\d+)", recap)]
    return proc.returncode, out, changed


MARK = "/var/tmp/preflight-baseline"
PACKAGES = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'"


@pytest.fixture()
def baseline(host):
    """The host's installed packages, and a mark to find files changed after this point."""
    host.check_output(f"touch {MARK}")
    return host.check_output(PACKAGES)


def _assert_untouched(host, baseline):
    assert not host.package("nginx").is_installed
    assert not host.package("postgresql").is_installed
    assert not host.user("demo").exists
    assert not host.file("/srv/demo").exists
    # Nothing installed, removed or upgraded, and no configuration or app file written.
    assert host.check_output(PACKAGES) == baseline
    changed = host.check_output(f"find /etc /srv /opt /usr/local -xdev -newer {MARK} -print")
    assert changed == "", changed


def test_missing_secret_is_named(host, tmp_path, baseline):
    # Required because the inventory has Celery hosts (worker, beat): the broker is theirs.
    rc, out, changed = _run(tmp_path)
    assert rc != 0
    assert "stack_redis_broker_password must be a string" in out, out[-3000:]
    assert "it is not set" in out, out[-3000:]
    assert changed and set(changed) == {0}, out[-2000:]
    _assert_untouched(host, baseline)


@pytest.mark.parametrize("name, value", [
    ("gunicorn_workers", "many"),  # a role's variable, checked against the role's argument spec
    ("stack_app_port", "eighty"),  # a stack variable, checked against playbooks/vars/stack_spec.yml
])
def test_wrong_type_is_named(host, tmp_path, baseline, name, value):
    rc, out, changed = _run(tmp_path, {**GOOD_SECRET, name: value})
    assert rc != 0
    assert f"argument '{name}' is of type str" in out, out[-3000:]
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


def test_unusable_secret_is_named_without_echoing_it(host, tmp_path, baseline):
    secret = "has'a-quote-in-it-0123"
    rc, out, changed = _run(tmp_path, {"stack_redis_broker_password": secret})
    assert rc != 0
    assert "stack_redis_broker_password must be a string" in out, out[-3000:]
    assert "it is not set" not in out
    assert secret not in out
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


@pytest.fixture()
def twin_inventory(tmp_path):
    """A second inventory name for the same container, also in group beat."""
    inventory = tmp_path / "twin.yml"
    inventory.write_text(
        "all:\n"
        "  children:\n"
        "    beat:\n"
        "      hosts:\n"
        "        preflight-twin:\n"
        "          ansible_host: preflight\n"
        "          ansible_connection: community.docker.docker\n")
    return inventory


def test_two_beat_hosts_fail_before_any_change(host, tmp_path, twin_inventory, baseline):
    # site.yml (any tier): the general preflight names the group and the role variable.
    rc, out, changed = _run(tmp_path, GOOD_SECRET, inventory=twin_inventory,
                            playbook=ROOT / "playbooks" / "site.yml")
    assert rc != 0
    assert "at most one host in group 'beat'" in out, out[-3000:]
    assert "celery_beat_enabled" in out
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


def _gateway(host):
    """The container's default gateway: the controller's end of the scenario's docker network."""
    for route in host.file("/proc/net/route").content_string.splitlines()[1:]:
        fields = route.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    raise AssertionError("the container has no default route")


@pytest.fixture()
def served_repo(host, tmp_path):
    """A repository on the controller whose main asks for Python 3.99, served over git's dumb HTTP
    on the controller's end of the scenario's network only; its URL as the container reaches it."""
    work, served = tmp_path / "work", tmp_path / "served"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    work.mkdir()
    (work / "requirements.txt").write_text("Django\n")
    (work / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1"\nrequires-python = ">=3.99"\n')
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "python 3.99"],
                 ["clone", "-q", "--bare", ".", str(served / "demo.git")]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
    subprocess.run(["git", "update-server-info"], cwd=served / "demo.git", check=True, capture_output=True)
    gateway = _gateway(host)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{gateway}:{server.server_address[1]}/demo.git"
    server.shutdown()


def test_a_git_release_is_read_on_the_controller_while_the_host_has_no_git(host, tmp_path, baseline, served_repo):
    # The fresh host cannot read the commit itself; the controller reads it for the check.
    assert host.run("command -v git").rc != 0
    rc, out, changed = _run(tmp_path, {**GOOD_SECRET, "stack_app_source": "git", "stack_app_git_repo": served_repo})
    assert rc != 0
    assert "the release asks for Python >=3.99 (requires-python in its pyproject.toml), and django_python" in out, \
        out[-3000:]
    assert set(changed) == {0}
    _assert_untouched(host, baseline)
