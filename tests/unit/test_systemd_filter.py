"""Tables of good and bad input for the systemd_sandbox filter."""

import pytest
from ansible.errors import AnsibleFilterError

import systemd

# The sandbox the gunicorn and celery units carried before the filter, directive by directive.
UNIT_SANDBOX = """\
# Sandboxing (all of it works in unprivileged containers too; no PrivateUsers).
NoNewPrivileges=true
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=-/var/log/demo -/srv/demo/shared
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM"""


def _directives(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_default_sandbox_is_the_units_sandbox():
    assert systemd.systemd_sandbox(["/var/log/demo", "/srv/demo/shared"]) == UNIT_SANDBOX


def test_the_filter_is_registered():
    assert systemd.FilterModule().filters()["systemd_sandbox"] is systemd.systemd_sandbox


@pytest.mark.parametrize(
    "args, kwargs, present, absent",
    [
        (([],), {}, ["ProtectSystem=strict"], ["ReadWritePaths=", "PrivateUsers=true"]),
        ((None,), {}, ["ProtectSystem=strict"], ["ReadWritePaths="]),
        ((("/var/lib/demo",),), {}, ["ReadWritePaths=-/var/lib/demo"], []),
        ((["/var/log/demo"],), {"user_namespaces": True},
         ["ReadWritePaths=-/var/log/demo", "PrivateUsers=true"], []),
        ((["/var/log/demo"],), {"user_namespaces": False}, [], ["PrivateUsers=true"]),
        (([],), {"address_families": ["AF_UNIX", "AF_INET"]},
         ["RestrictAddressFamilies=AF_UNIX AF_INET"], ["AF_NETLINK"]),
        ((["/srv/a", "/srv/b", "/srv/c"],), {}, ["ReadWritePaths=-/srv/a -/srv/b -/srv/c"], []),
    ],
)
def test_sandbox_directives(args, kwargs, present, absent):
    result = systemd.systemd_sandbox(*args, **kwargs)
    directives = _directives(result)
    for directive in present:
        assert directive in directives, directive
    for text in absent:
        assert not any(text in line for line in directives), text
    # The hardening core never depends on the parameters.
    for directive in ("NoNewPrivileges=true", "CapabilityBoundingSet=", "ProtectHome=true",
                      "SystemCallFilter=~@privileged"):
        assert directive in directives
    assert not result.endswith("\n")


def test_user_namespaces_only_add_private_users():
    without = _directives(systemd.systemd_sandbox(["/var/log/demo"]))
    with_userns = _directives(systemd.systemd_sandbox(["/var/log/demo"], user_namespaces=True))
    assert sorted(set(with_userns) - set(without)) == ["PrivateUsers=true"]
    assert set(without) <= set(with_userns)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("/var/log/demo",), {}, "read_write_paths must be a list of strings, got str"),
        (({"/var/log/demo": True},), {}, "read_write_paths must be a list of strings"),
        ((42,), {}, "read_write_paths must be a list of strings, got int"),
        (([42],), {}, "read_write_paths must be a list of strings, got the item 42"),
        ((["var/log/demo"],), {}, "is not an absolute path"),
        (([""],), {}, "is not an absolute path"),
        ((["-/var/log/demo"],), {}, "is not an absolute path"),
        ((["/srv/my app"],), {}, "contains white space"),
        ((["/var/log/demo\nExecStartPre=/bin/sh"],), {}, "contains white space"),
        (([],), {"user_namespaces": "yes"}, "user_namespaces must be a boolean"),
        (([],), {"user_namespaces": 1}, "user_namespaces must be a boolean"),
        (([],), {"address_families": "AF_INET"}, "address_families must be a list of strings"),
        (([],), {"address_families": []}, "must name at least one address family"),
        (([],), {"address_families": ["inet"]}, "'inet' is not an address family"),
        (([],), {"address_families": ["AF_INET AF_PACKET"]}, "is not an address family"),
    ],
)
def test_bad_input_raises(args, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        systemd.systemd_sandbox(*args, **kwargs)


@pytest.mark.parametrize(
    ("word", "written"),
    [
        ("manage.py", "manage.py"),
        ("--since=2026-01-01", "--since=2026-01-01"),
        ("/srv/demo/current/.venv/bin/python", "/srv/demo/current/.venv/bin/python"),
        ("Weekly report", '"Weekly report"'),
        ("100%", '"100%%"'),
        ("%h", '"%%h"'),
        ("$HOME", '"$$HOME"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("it's", '"it\'s"'),
        ("", '""'),
    ],
)
def test_quote_writes_what_systemd_reads_back(word, written):
    assert systemd.systemd_quote(word) == written


@pytest.mark.parametrize("word", ["two\nlines", "tab\there", 5, None, ["a"]])
def test_quote_refuses_what_a_unit_file_cannot_hold(word):
    with pytest.raises(AnsibleFilterError, match="systemd_quote"):
        systemd.systemd_quote(word)
