"""Shared testinfra helpers: requests through the stack from inside a test host, and journals."""

import base64
import json
import pathlib
import shlex

HELPERS = pathlib.Path(__file__).resolve().parent


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
        raw, _, status = out.stdout.rpartition("\n")
        head, _, body = raw.partition("\r\n\r\n")
        while head.startswith("HTTP/") and body.startswith("HTTP/"):  # e.g. 100 Continue
            head, _, body = body.partition("\r\n\r\n")
        headers = {}
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(status), headers, body

    def json(self, method, path, data=None):
        status, _, body = self.request(method, path, data=data)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"_raw": body[:500]}


def journal(host, unit, lines=60):
    """The unit's last journal lines, for assertion messages."""
    return host.run(f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager").stdout


def install_helper(host, name, dest_dir="/usr/local/lib/djangoprod-tests"):
    """Copy a helper script from tests/helpers into the host; return its path there."""
    payload = base64.b64encode((HELPERS / name).read_bytes()).decode()
    dest = f"{dest_dir}/{name}"
    host.run_test(f"mkdir -p {dest_dir} && echo {payload} | base64 -d > {dest}")
    return dest
