"""The unit_states and units_unsettled filters against systemctl show output as systemd 252 and
257 print it (one block per unit, in the order asked, blank lines between)."""

import pytest
from ansible.errors import AnsibleFilterError

import units

PROBE = """\
config=present
Id=nginx.service
LoadState=loaded
ActiveState=active
UnitFileState=enabled

Id=demo-celery-beat.service
LoadState=loaded
ActiveState=inactive
UnitFileState=enabled

Id=redis-server.service
LoadState=masked
ActiveState=inactive
UnitFileState=masked

Id=redis-server@broker.service
LoadState=loaded
ActiveState=inactive
UnitFileState=disabled

Id=gone.service
LoadState=not-found
ActiveState=inactive
UnitFileState=
"""


def test_unit_states_reads_each_block_and_ignores_other_lines():
    states = units.unit_states(PROBE)
    assert sorted(states) == ["demo-celery-beat.service", "gone.service", "nginx.service",
                              "redis-server.service", "redis-server@broker.service"]
    assert states["redis-server.service"] == {"Id": "redis-server.service", "LoadState": "masked",
                                              "ActiveState": "inactive", "UnitFileState": "masked"}
    assert states["gone.service"]["UnitFileState"] == ""


@pytest.mark.parametrize("wanted, unsettled", [
    # Enabled and running: settled.
    ({"nginx.service": True}, []),
    # Enabled but stopped, or stopped and disabled when it should run.
    ({"demo-celery-beat.service": True}, ["demo-celery-beat.service"]),
    ({"redis-server@broker.service": True}, ["redis-server@broker.service"]),
    # Stopped and disabled, as wanted; unknown to systemd and wanted stopped: nothing to do.
    ({"redis-server@broker.service": False, "gone.service": False}, []),
    # Running when it should not; enabled (but stopped) when it should not; masked is not disabled.
    ({"nginx.service": False, "demo-celery-beat.service": False, "redis-server.service": False},
     ["nginx.service", "demo-celery-beat.service", "redis-server.service"]),
    # Unknown to systemd, or not in the probe at all, and wanted running.
    ({"gone.service": True, "missing.service": True}, ["gone.service", "missing.service"]),
])
def test_units_unsettled(wanted, unsettled):
    assert units.units_unsettled(PROBE, wanted) == unsettled


def test_an_empty_probe_leaves_every_wanted_unit_unsettled():
    assert units.units_unsettled("", {"nginx.service": True}) == ["nginx.service"]


@pytest.mark.parametrize("text, wanted", [(None, {}), (["Id=x"], {}), (PROBE, ["nginx.service"])])
def test_bad_input_raises(text, wanted):
    with pytest.raises(AnsibleFilterError):
        units.units_unsettled(text, wanted)
