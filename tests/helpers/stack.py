"""Shared testinfra helpers: requests through the stack from inside a test host, journals,
listening sockets, processes, and the collection's own sizing filters.

The verifier puts tests/ on PYTHONPATH (.config/molecule/config.yml): `from helpers.stack import ...`.
"""

import base64
import datetime
import functools
import importlib.util
import ipaddress
import json
import os
import pathlib
import re
import shlex
import subprocess
import time

import testinfra
import testinfra.utils.ansible_runner

HELPERS = pathlib.Path(__file__).resolve().parent
ROOT = HELPERS.parents[1]


class Site:
    """HTTP(S) requests through nginx on a test host, sent from that host to loopback."""

    def __init__(self, host, domain, address="127.0.0.1"):
        self.host = host
        self.domain = domain
        self.address = address

    def request(self, method, path, data=None, scheme="https", headers=None, form_file=None,
                body=True):
        """Return (status, headers dict, body text) using curl inside the host.

        With body=False the body is discarded (binary downloads) and returned as "".
        """
        port = 443 if scheme == "https" else 80
        cmd = [
            "curl", "-sS", "-k", "--max-time", "30", "-X", method,
            "--resolve", f"{self.domain}:{port}:{self.address}",
            "-D", "-", "-o", "/dev/stdout" if body else "/dev/null", "-w", "\n%{http_code}",
        ]
        for key, value in (headers or {}).items():
            cmd += ["-H", f"{key}: {value}"]
        if data is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(data)]
        if form_file:
            cmd += ["-F", f"file=@{form_file}"]
        cmd.append(f"{scheme}://{self.domain}{path}")
        out = self.host.run(" ".join(shlex.quote(c) for c in cmd))
        assert out.rc == 0, f"curl failed: {out.stderr}"
        raw, _unused, status = out.stdout.rpartition("\n")
        head, _unused, body = raw.partition("\r\n\r\n")
        while head.startswith("HTTP/") and body.startswith("HTTP/"):  # e.g. 100 Continue
            head, _unused, body = body.partition("\r\n\r\n")
        headers = {}
        for line in head.split("\r\n")[1:]:
            key, _unused, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(status), headers, body

    def json(self, method, path, data=None):
        status, _unused, body = self.request(method, path, data=data)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"_raw": body[:500]}


def journal(host, *units, lines=60, logs=()):
    """The last journal lines of one or more units (interleaved in time order) and the tail of
    any log files given, for assertion messages."""
    if not units and not logs:
        raise ValueError("journal() needs a unit or a log file")
    parts = []
    if units:
        selectors = " ".join(f"-u {shlex.quote(unit)}" for unit in units)
        parts.append(host.run(f"journalctl {selectors} -n {lines * len(units)} --no-pager").stdout)
    for log in logs:
        parts.append(f"==> {log} <==\n" + host.run(f"tail -n 20 {shlex.quote(log)}").stdout)
    return "\n".join(parts)


@functools.cache
def sizing():
    """The collection's sizing filters (plugins/filter/sizing.py), loaded by path: tests expect
    exactly what the roles compute, without restating the formulas."""
    spec = importlib.util.spec_from_file_location("djangoprod_sizing", ROOT / "plugins" / "filter" / "sizing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tcp_listeners(host):
    """Every listening TCP socket of the host as a set of (address, port), the address as ss
    prints it without an interface zone: ("0.0.0.0", 80), ("[::]", 443), ("127.0.0.1", 5432)."""
    listeners = set()
    for line in host.check_output("ss -ltnH").splitlines():
        address, _unused, port = line.split()[3].rpartition(":")
        listeners.add((address.split("%", 1)[0], int(port)))
    return listeners


def _is_loopback(address):
    if address == "*":
        return False
    ip = ipaddress.ip_address(address.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def public_listeners(host):
    """The (address, port) pairs listening on a wildcard or any other non-loopback address."""
    return {(address, port) for address, port in tcp_listeners(host) if not _is_loopback(address)}


def wildcards(host):
    """The wildcard addresses a server that listens everywhere binds on this host: IPv4's, and
    IPv6's when the host has an IPv6 address (what the roles decide from the same fact)."""
    # Ansible's all_ipv6_addresses: every IPv6 address but ::1 (read the same way, without an
    # ansible process per call).
    found = re.findall(r"\binet6 ([0-9a-f:]+)/", host.check_output("ip -6 -o addr show"))
    return ("0.0.0.0", "[::]") if set(found) - {"::1"} else ("0.0.0.0",)


def celery_processes(host):
    """Celery processes on the host as {pid: (ppid, subcommand)}, e.g. {812: (1, "beat")}; the
    subcommand is the first word after the celery program that is not an option."""
    found = {}
    for line in host.check_output("ps -eo pid=,ppid=,args=").splitlines():
        pid, ppid, *args = line.split()
        programs = [i for i, arg in enumerate(args[:2]) if arg.rsplit("/", 1)[-1] == "celery"]
        if not programs:
            continue
        words = [arg for arg in args[programs[0] + 1:] if not arg.startswith("-")]
        found[int(pid)] = (int(ppid), words[0] if words else "")
    return found


def beat_send_times(host, log, entry):
    """When Celery beat sent the schedule entry, from its log file (celery's default format)."""
    pattern = (r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+): INFO/MainProcess\] "
               rf"Scheduler: Sending due task {re.escape(entry)} \(")
    return [datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
            for stamp in re.findall(pattern, host.file(log).content_string, re.MULTILINE)]


def fleet(pattern="all"):
    """{inventory name: testinfra host} for the molecule inventory's hosts matching the pattern,
    for assertions about the whole fleet (e.g. exactly one beat among all hosts)."""
    inventory = str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    names = testinfra.utils.ansible_runner.AnsibleRunner(inventory).get_hosts(pattern)
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in names}


def main_pid(host, unit):
    """The unit's main PID (0 when it is not running)."""
    return int(host.check_output(f"systemctl show -p MainPID --value {shlex.quote(unit)}"))


def install_helper(host, name, dest_dir="/usr/local/lib/djangoprod-tests"):
    """Copy a helper script from tests/helpers into the host; return its path there."""
    payload = base64.b64encode((HELPERS / name).read_bytes()).decode()
    dest = f"{dest_dir}/{name}"
    host.run_test(f"mkdir -p {dest_dir} && echo {payload} | base64 -d > {dest}")
    return dest


def address(host):
    """The host's default IPv4 address (its address on the scenario's network): the source of its
    route to the world, as Ansible's default_ipv4 fact finds it (one command, not an ansible
    process per call)."""
    return re.search(r"\bsrc (\S+)", host.check_output("ip -4 route get 8.8.8.8")).group(1)


def postgres_sql(host, sql, database="demo", check=True, unit="postgresql@17-main"):
    """psql as the postgres superuser over the local socket; with check, a failure shows the
    cluster unit's journal."""
    with host.sudo("postgres"):
        result = host.run(f"psql -X -At -v ON_ERROR_STOP=1 -d {database} -c {shlex.quote(sql)}")
    if check:
        assert result.rc == 0, result.stderr + journal(host, unit)
    return result


def env_file(host, path="/etc/demo/env"):
    """{name: value} of an environment file the django role wrote (values unquoted)."""
    lines = host.file(path).content_string.splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name: value.strip("'") for name, value in pairs}


def file_digests(host, path):
    """{relative path: sha256} of every file under path on the host (a link to a directory is
    followed)."""
    out = host.check_output(f"cd {shlex.quote(path)}/ && find . -type f -exec sha256sum {{}} +")
    return {line[66:].removeprefix("./"): line[:64] for line in out.splitlines()}


def wait_for(predicate, timeout=60.0, interval=0.5):
    """Poll until the predicate returns something true, or the timeout; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def playbook(tmp_path, name, extra=None, limit=None, timeout=900, tags=None, check=False, env=None):
    """ansible-playbook on the molecule inventory: a playbook of playbooks/ by name, or any path,
    with extra variables, a --limit and --tags when given, under --check with check=True, and
    with `env` added to the environment.

    Returns (rc, output, {host: changed}); the output is stdout and stderr together (molecule's
    ansible.cfg sends failures to stderr).
    """
    inventory = str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    target = pathlib.Path(name) if os.path.isabs(name) else ROOT / "playbooks" / name
    cmd = ["ansible-playbook", "-i", inventory, str(target)]
    if extra:
        path = tmp_path / "extra.json"
        path.write_text(json.dumps(extra))
        cmd += ["-e", f"@{path}"]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})})
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    changed = {h: int(n) for h, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.MULTILINE)}
    return proc.returncode, out, changed


def task_ran(out, name):
    """Whether the task `name` reported ok or changed in a playbook's output (a skipped task, or
    one the run never reached, did not); the timestamp line of a profiling callback may follow
    its banner."""
    pattern = re.escape(name) + r"\] \*+\n(?:(?!TASK \[|skipping: ).*\n){0,2}(?:ok|changed): "
    return re.search(pattern, out) is not None


def assert_bad_sandbox_taken_back(host, tmp_path, converge, variable, dropin, serving):
    """A `*_hardening_properties` value systemd parses but the service cannot start in (a
    ReadWritePaths entry that does not exist: 226/NAMESPACE): the run fails naming the variable,
    the previous drop-in is back byte for byte with nothing left beside it, `serving()` (which
    asserts) holds again, and the next run with the old values changes nothing."""
    directory = shlex.quote(os.path.dirname(dropin))
    before, listing = host.file(dropin).sha256sum, host.check_output(f"ls -A {directory}")
    rc, out, _changed = playbook(tmp_path, converge, {variable: {"ReadWritePaths": "/nonexistent/djangoprod"}})
    text = " ".join(out.split())
    assert rc != 0, out[-3000:]
    assert "did not start in the sandbox this run wrote" in text and variable in text, out[-3000:]
    assert host.file(dropin).sha256sum == before
    assert host.check_output(f"ls -A {directory}") == listing
    serving()
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and set(changed.values()) == {0}, out[-3000:]


# Capability numbers (linux/capability.h) of the capabilities the collection's units keep.
CAPABILITIES = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
                "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10}


def exposure(host, unit):
    """The overall exposure level `systemd-analyze security` gives a unit (0.0 to 10.0)."""
    out = host.check_output(f"systemd-analyze security --no-pager {shlex.quote(unit)} | tail -n 1")
    return float(re.search(r"level for \S+: (\d+\.\d+)", out).group(1))


def process_status(host, pid):
    """/proc/<pid>/status as a dict of stripped strings."""
    lines = host.check_output(f"cat /proc/{int(pid)}/status").splitlines()
    return {key: value.strip() for key, _sep, value in (line.partition(":") for line in lines)}


def mount_access(host, pid, path):
    """"ro" or "rw": how `path` is mounted for process `pid`, from the kernel's view of the
    process's mount namespace (/proc/<pid>/mountinfo: the last mount on the longest mount point
    that contains the path). ProtectSystem=strict remounts / read-only there and binds the unit's
    ReadWritePaths read-write on top."""
    best, access = "", None
    for line in host.check_output(f"cat /proc/{int(pid)}/mountinfo").splitlines():
        fields = line.split()
        point, options = fields[4].replace("\\040", " "), fields[5].split(",")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, access = point, options[0]
    return access


def assert_sandboxed(host, unit, writable, read_only=("/etc", "/usr"), capabilities=(),
                     max_exposure=3.0):
    """The sandbox of a running unit is live, not only written: its main process has no new
    privileges and exactly the capability bounding set given, its mount namespace has the
    read_only directories read-only and the writable ones read-write, and systemd-analyze scores
    it at most max_exposure."""
    pid = main_pid(host, unit)
    assert pid, journal(host, unit)
    status = process_status(host, pid)
    assert status["NoNewPrivs"] == "1", status
    expected = sum(1 << CAPABILITIES[name] for name in capabilities)
    assert int(status["CapBnd"], 16) == expected, (status["CapBnd"], capabilities)
    for directory in writable:
        assert mount_access(host, pid, directory) == "rw", f"{unit} cannot write {directory}"
    for directory in read_only:
        assert mount_access(host, pid, directory) == "ro", f"{unit} can write {directory}"
    level = exposure(host, unit)
    assert level <= max_exposure, host.check_output(f"systemd-analyze security --no-pager {shlex.quote(unit)}")
    return level
