"""Run by every molecule scenario (the base config's verifier lists this file), before the
scenario's own tests: each host of the scenario, converged and re-run, has booted into a
system without failed units (`systemctl is-system-running` says "running", not "degraded").

The scenario's own tests then break things on purpose (killed processes, stopped containers)
and clean up after themselves; this one sees the host as the converge left it.
"""


def test_system_running_without_failed_units(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl list-units --state=failed --plain --no-legend").stdout
    assert (state, failed.strip()) == ("running", ""), f"{state}; failed units:\n{failed}"
