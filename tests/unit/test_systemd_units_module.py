"""djangoprod.stack.systemd_units, run as Ansible runs it, against a systemctl stand-in on PATH that keeps
each unit's state in a JSON file and logs every command: one call brings several units to their
state in list order, changes only what differs, reports what it started, changes nothing under
check mode, and fails naming a unit systemd does not know."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "systemd_units.py"
sys.path.insert(0, str(MODULE.parent))
from systemd_units import is_enabled, parse_show, plan  # noqa: E402

FAKE_SYSTEMCTL = r'''#!/usr/bin/env python3
import json, os, sys
path = os.environ["UNITS_STATE"]
units = json.load(open(path))
args = [arg for arg in sys.argv[1:] if arg != "--"]
with open(os.environ["UNITS_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
verb, names = args[0], args[1:]
if verb == "daemon-reload":
    sys.exit(0)
if verb == "show":
    for name in names[1:]:
        unit = units.get(name, {"LoadState": "not-found", "UnitFileState": "", "ActiveState": "inactive"})
        print(f"LoadState={unit['LoadState']}\nUnitFileState={unit['UnitFileState']}\nActiveState={unit['ActiveState']}\n")
    sys.exit(0)
unit = units.get(names[0])
if verb == "is-enabled":
    print(unit["UnitFileState"])
    sys.exit(0 if unit["UnitFileState"] in ("enabled", "static", "indirect") else 1)
if unit is None and verb != "mask":
    print(f"Unit {names[0]} not found.", file=sys.stderr)
    sys.exit(5)
if unit is None:
    unit = units[names[0]] = {"LoadState": "masked", "UnitFileState": "masked", "ActiveState": "inactive"}
if unit.get("fails") == verb:
    print(f"Job for {names[0]} failed.", file=sys.stderr)
    sys.exit(1)
changes = {"start": ("ActiveState", "active"), "stop": ("ActiveState", "inactive"),
           "enable": ("UnitFileState", "enabled"), "disable": ("UnitFileState", "disabled"),
           "mask": ("UnitFileState", "masked"), "unmask": ("UnitFileState", "disabled")}
key, value = changes[verb]
unit[key] = value
json.dump(units, open(path, "w"))
'''


def _unit(active="inactive", file_state="disabled", load="loaded", **extra):
    return {"LoadState": load, "UnitFileState": file_state, "ActiveState": active, **extra}


@pytest.fixture
def host(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)

    class Host:
        state = tmp_path / "units.json"
        log = tmp_path / "systemctl.log"

        def set(self, units):
            self.state.write_text(json.dumps(units))

        def units(self):
            return json.loads(self.state.read_text())

        def commands(self):
            return [line for line in self.log.read_text().splitlines() if not line.startswith("show ")] \
                if self.log.exists() else []

        def run(self, units, check=False, diff=False, daemon_reload=False):
            args = tmp_path / "args.json"
            args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
                "units": units, "daemon_reload": daemon_reload,
                "_ansible_check_mode": check, "_ansible_diff": diff}}))
            env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                   "UNITS_STATE": str(self.state), "UNITS_LOG": str(self.log)}
            proc = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True,
                                  check=False, env=env, timeout=60)
            return json.loads(proc.stdout)

    return Host()


def test_units_are_started_and_enabled_in_one_call_and_only_what_differs_changes(host):
    host.set({"a.service": _unit(), "b.service": _unit("active", "enabled")})
    result = host.run([{"name": "a.service", "enabled": True, "state": "started"},
                       {"name": "b.service", "enabled": True, "state": "started"}], daemon_reload=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert host.commands() == ["daemon-reload", "is-enabled a.service", "enable a.service", "start a.service",
                               "is-enabled b.service"]
    assert result["started"] == ["a.service"] and result["stopped"] == []
    assert [unit["actions"] for unit in result["units"]] == [["enable", "start"], []]
    assert host.units()["a.service"]["ActiveState"] == "active"
    again = host.run([{"name": "a.service", "enabled": True, "state": "started"},
                      {"name": "b.service", "enabled": True, "state": "started"}])
    assert again["changed"] is False and again["started"] == []


def test_stop_disable_and_mask(host):
    host.set({"worker.service": _unit("active", "enabled"), "stock.service": _unit("deactivating", "enabled")})
    result = host.run([{"name": "worker.service", "enabled": False, "state": "stopped"},
                       {"name": "stock.service", "masked": True, "state": "stopped"}])
    assert result["changed"] is True
    assert result["stopped"] == ["worker.service", "stock.service"]
    units = host.units()
    assert units["worker.service"]["UnitFileState"] == "disabled"
    assert units["stock.service"]["UnitFileState"] == "masked"
    assert units["stock.service"]["ActiveState"] == "inactive"


def test_check_mode_reports_the_changes_with_a_diff_and_changes_nothing(host):
    host.set({"a.service": _unit()})
    result = host.run([{"name": "a.service", "enabled": True, "state": "started"}], check=True, diff=True,
                      daemon_reload=True)
    assert result["changed"] is True and result["started"] == ["a.service"]
    assert host.commands() == ["is-enabled a.service"]
    assert host.units()["a.service"] == _unit()
    assert "a.service: masked=no enabled=no active=inactive" in result["diff"]["before"]
    assert "a.service: masked=no enabled=yes active=active" in result["diff"]["after"]


def test_an_unknown_unit_wanted_running_fails_naming_it_before_anything_changes(host):
    host.set({"a.service": _unit()})
    result = host.run([{"name": "a.service", "state": "started"}, {"name": "gone.service", "enabled": True}])
    assert result.get("failed") is True
    assert "gone.service" in result["msg"] and "nothing was changed" in result["msg"]
    assert host.commands() == []


def test_an_unknown_unit_wanted_stopped_is_left_alone(host):
    host.set({})
    result = host.run([{"name": "gone.service", "enabled": False, "state": "stopped"}])
    assert result["changed"] is False and not result.get("failed"), result
    assert host.commands() == []


def test_a_failed_command_fails_the_call_and_keeps_what_it_applied(host):
    host.set({"a.service": _unit(), "b.service": _unit(fails="start")})
    result = host.run([{"name": "a.service", "state": "started"}, {"name": "b.service", "state": "started"}])
    assert result.get("failed") is True and result["changed"] is True
    assert "systemctl start -- b.service failed" in result["msg"] and "Job for b.service failed" in result["msg"]
    assert host.units()["a.service"]["ActiveState"] == "active"


@pytest.mark.parametrize(("rc", "out", "enabled"), [
    (0, "enabled\n", True), (0, "static\n", True), (0, "enabled-runtime\n", False),
    (0, "indirect\n", False), (0, "alias\n", False),
    (1, "disabled\n", False), (1, "masked\n", False)])
def test_enabled_is_read_as_systemd_service_reads_it(rc, out, enabled):
    assert is_enabled(rc, out) is enabled


def test_plan_follows_systemd_service_order_and_states():
    status = _unit("activating", "masked", load="masked")
    assert plan({"masked": False, "enabled": True, "state": "started"}, status, False) == ["unmask", "enable"]
    assert plan({"state": "stopped"}, _unit("inactive"), None) == []
    assert plan({"state": "started"}, _unit("failed"), None) == ["start"]


def test_show_output_must_have_a_block_per_unit():
    text = "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n\n"
    assert parse_show(text, ["a.service"]) == [_unit("active", "enabled")]
    with pytest.raises(ValueError):
        parse_show(text, ["a.service", "b.service"])
