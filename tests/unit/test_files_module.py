"""The djangoprod.stack.files module run as Ansible runs it: a process given its arguments."""

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

MODULE = pathlib.Path(__file__).resolve().parents[2] / "plugins" / "modules" / "files.py"


def run(tmp_path, entries, check=False, diff=False):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "files": entries, "_ansible_check_mode": check, "_ansible_diff": diff}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_writes_each_state_once_then_reports_nothing(tmp_path):
    base = tmp_path / "t"
    (base / "gone").mkdir(parents=True)
    (base / "gone" / "x").write_text("x")
    entries = [
        {"path": f"{base}/d/sub", "state": "directory", "mode": "0750"},
        {"path": f"{base}/d/sub/a.conf", "content": "a = 1\n", "mode": "0640"},
        {"path": f"{base}/link", "state": "link", "src": f"{base}/d/sub/a.conf"},
        {"path": f"{base}/gone", "state": "absent"},
    ]
    first = run(tmp_path, entries)
    assert first["changed"] is True, first
    assert first["changed_paths"] == [e["path"] for e in entries]
    assert mode(base / "d" / "sub") == 0o750
    assert (base / "d" / "sub" / "a.conf").read_text() == "a = 1\n"
    assert mode(base / "d" / "sub" / "a.conf") == 0o640
    assert os.readlink(base / "link") == f"{base}/d/sub/a.conf"
    assert not (base / "gone").exists()
    again = run(tmp_path, entries)
    assert again["changed"] is False and again["changed_paths"] == [], again
    assert [f["changed"] for f in again["files"]] == [False] * 4


def test_check_mode_reports_and_changes_nothing(tmp_path):
    target = tmp_path / "f.conf"
    target.write_text("old\n")
    entries = [{"path": str(target), "content": "new\n"},
               {"path": f"{tmp_path}/new/dir", "state": "directory", "owner": "no-such-user"},
               {"path": f"{tmp_path}/new/dir/file", "content": "x", "owner": "no-such-user"}]
    result = run(tmp_path, entries, check=True, diff=True)
    assert result["changed_paths"] == [e["path"] for e in entries], result
    assert target.read_text() == "old\n"
    assert not (tmp_path / "new").exists()
    assert {"before": "old\n", "after": "new\n"}.items() <= result["diff"][0].items()


def test_only_a_changed_mode_is_applied(tmp_path):
    target = tmp_path / "f"
    target.write_text("same\n")
    target.chmod(0o600)
    result = run(tmp_path, [{"path": str(target), "content": "same\n", "mode": "0644"}], diff=True)
    assert result["changed_paths"] == [str(target)]
    assert mode(target) == 0o644
    assert result["diff"][0]["after"] == {"mode": "0644"}


def test_a_link_is_written_through(tmp_path):
    real = tmp_path / "locale.conf"
    real.write_text("LANG=C\n")
    (tmp_path / "locale").symlink_to(real)
    run(tmp_path, [{"path": f"{tmp_path}/locale", "content": "LANG=C.UTF-8\n"}])
    assert os.path.islink(tmp_path / "locale")
    assert real.read_text() == "LANG=C.UTF-8\n"


def test_rejected_content_leaves_the_old_file(tmp_path):
    target = tmp_path / "site.conf"
    target.write_text("good\n")
    result = run(tmp_path, [{"path": str(target), "content": "bad\n", "validate": "grep -q good %s"}])
    assert result.get("failed") is True
    assert "failed validation" in result["msg"] and str(target) in result["msg"]
    assert target.read_text() == "good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.json", "site.conf"]


@pytest.mark.parametrize(("entry", "setup", "message"), [
    ({"state": "file"}, None, "needs content"),
    ({"content": "x", "mode": "rw-r--r--"}, None, "is not an octal number"),
    ({"content": "x", "mode": "99999"}, None, "is not an octal number"),
    ({"content": "x", "owner": "no-such-user"}, None, "owner 'no-such-user' does not exist"),
    ({"state": "directory", "group": "no-such-group"}, None, "group 'no-such-group' does not exist"),
    ({"state": "link"}, None, "needs src"),
    ({"state": "link", "src": "/etc"}, "file", "is not a link"),
    ({"state": "directory"}, "file", "is not a directory"),
    ({"content": "x"}, "dir", "is not a regular file"),
    ({"content": "x", "validate": "true"}, None, "must contain %s"),
    ({"content": "x", "template": "t.j2"}, None, "rendered by the action plugin"),
])
def test_bad_entries_fail_naming_the_path(tmp_path, entry, setup, message):
    path = tmp_path / "p"
    if setup == "file":
        path.write_text("x")
    elif setup == "dir":
        path.mkdir()
    if entry.get("template"):
        entry = {**entry, "content": None}
    result = run(tmp_path, [{"path": str(path), **entry}])
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert str(path) in result["msg"]


def test_relative_path_is_refused(tmp_path):
    result = run(tmp_path, [{"path": "etc/x", "content": "x"}])
    assert result.get("failed") is True and "must be absolute" in result["msg"]


@pytest.mark.parametrize("name", ["..", ".", "../kept", "./kept"])
def test_a_dot_component_is_refused_before_anything_changes(tmp_path, name):
    # state=absent on <dir>/.. would remove the parent of <dir>, with everything in it.
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "kept").write_text("kept")
    result = run(tmp_path, [{"path": f"{tmp_path}/conf.d/{name}", "state": "absent"}])
    assert result.get("failed") is True and "'.' or '..' components" in result["msg"], result
    assert (tmp_path / "kept").read_text() == "kept" and (tmp_path / "conf.d").is_dir()


@pytest.mark.parametrize("last", [{"owner": "no-such-user"}, {"group": "no-such-group"}, {"mode": "0999"}])
def test_a_bad_last_entry_leaves_the_first_ones_unwritten(tmp_path, last):
    # The owner of a role run alone may not exist yet: nothing may be half written for it.
    (tmp_path / "kept.conf").write_text("old\n")
    entries = [{"path": f"{tmp_path}/kept.conf", "content": "new\n"},
               {"path": f"{tmp_path}/logs", "state": "directory"},
               {"path": f"{tmp_path}/logs/app.conf", "content": "x", **last}]
    result = run(tmp_path, entries)
    assert result.get("failed") is True and "(nothing was changed)" in result["msg"], result
    assert result["changed"] is False
    assert (tmp_path / "kept.conf").read_text() == "old\n" and not (tmp_path / "logs").exists()


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")


@needs_systemd_analyze
@pytest.mark.parametrize(("relative", "content", "said"), [
    ("nginx.service.d/60-hardening.conf", "[Service]\nProtectSystem=maybe\n", "Failed to parse"),
    ("nginx.service.d/60-hardening.conf", "[Service]\nProtectSytem=strict\n", "Unknown key"),
    ("app-manage-reports.timer", "[Timer]\nOnCalendar=every tuesday\n", "calendar"),
    ("demo.socket", "[Socket]\nListenStream=10.0.0.300:8000\n", "10.0.0.300:8000"),
    ("redis-server@.service.d/60-x.conf", "[Service]\nMemoryDenyWriteExecute=perhaps\n", "Failed to parse"),
])
def test_a_unit_systemd_cannot_read_is_refused_before_anything_changes(tmp_path, relative, content, said):
    (tmp_path / "other.conf").write_text("old\n")
    entries = [{"path": f"{tmp_path}/other.conf", "content": "new\n"},
               {"path": f"{tmp_path}/{relative}", "content": content, "unit_check": True}]
    result = run(tmp_path, entries)
    assert result.get("failed") is True, result
    assert f"{tmp_path}/{relative}:2:" in result["msg"] and said in result["msg"], result["msg"]
    assert "systemd cannot read the new content" in result["msg"] and "djangoprod-unit-check" not in result["msg"]
    assert (tmp_path / "other.conf").read_text() == "old\n" and not (tmp_path / relative).exists()


@needs_systemd_analyze
def test_a_readable_unit_is_written_even_when_its_command_is_not_installed_yet(tmp_path):
    entries = [{"path": f"{tmp_path}/demo.service", "unit_check": True,
                "content": "[Unit]\nAfter=postgresql.service\n[Service]\nExecStart=/srv/demo/venv/bin/gunicorn\n"},
               {"path": f"{tmp_path}/nginx.service.d/60-hardening.conf", "unit_check": True,
                "content": "[Service]\nProtectSystem=strict\nReadWritePaths=/var/log/nginx\n"},
               {"path": f"{tmp_path}/unchecked.service", "content": "[Service]\nNoSuchKey=1\n"}]
    result = run(tmp_path, entries)
    assert result.get("failed") is not True and result["changed"] is True, result
    assert (tmp_path / "nginx.service.d" / "60-hardening.conf").exists()


def test_backup_keeps_the_replaced_file(tmp_path):
    target = tmp_path / "site.conf"
    target.write_text("old\n")
    entry = {"path": str(target), "content": "new\n", "backup": True}
    result = run(tmp_path, [entry])
    backup = result["files"][0]["backup_file"]
    assert pathlib.Path(backup).read_text() == "old\n" and target.read_text() == "new\n"
    assert "backup_file" not in run(tmp_path, [entry])["files"][0]


def run_with_probe(tmp_path, entries, probe, check=False):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "files": entries, "probe": probe, "_ansible_check_mode": check}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("check", [False, True])
def test_the_probe_reads_the_state_before_the_entries(tmp_path, check):
    target = tmp_path / "unit"
    target.write_text("old\n")
    result = run_with_probe(tmp_path, [{"path": str(target), "content": "new\n"}],
                            ["sh", "-c", 'cat "$1"; echo second', "probe", str(target)], check=check)
    assert result["probe"]["rc"] == 0, result
    assert result["probe"]["stdout"] == "old\nsecond"
    assert result["probe"]["stdout_lines"] == ["old", "second"]
    assert result["changed_paths"] == [str(target)]
    assert target.read_text() == ("old\n" if check else "new\n")


def test_a_failing_probe_fails_with_nothing_written(tmp_path):
    target = tmp_path / "f"
    result = run_with_probe(tmp_path, [{"path": str(target), "content": "x"}],
                            ["sh", "-c", "echo broken >&2; exit 3"])
    assert result.get("failed") is True, result
    assert "rc 3" in result["msg"] and "broken" in result["msg"] and "nothing was changed" in result["msg"]
    assert not target.exists()


def test_without_a_probe_the_result_has_none(tmp_path):
    result = run(tmp_path, [{"path": f"{tmp_path}/f", "content": "x"}])
    assert "probe" not in result
