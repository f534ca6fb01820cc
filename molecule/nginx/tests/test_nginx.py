"""Behaviour of the nginx role in front of the stand-in app of prepare.yml."""

import json
import pathlib
import uuid

import pytest

from helpers.stack import (
    assert_bad_sandbox_taken_back,
    assert_sandboxed,
    journal,
    main_pid,
    playbook,
    public_listeners,
    task_ran,
    tcp_listeners,
    wildcards,
)

NAME = "app.example.test"
CERT = "/etc/ssl/djangoprod/stub/fullchain.pem"
ACCESS_LOG = "/var/log/nginx/stub.access.log"
STUB_LOG = "/var/log/stub/requests.log"
SOCKET = "unix:/run/stub/app.sock"
# Every HTTPS request trusts only the placeholder certificate, so each one also checks the SAN.
CURL = (f"curl -sS -i --max-time 10 --cacert {CERT} "
        f"--resolve {NAME}:80:127.0.0.1 --resolve {NAME}:443:127.0.0.1")


def diagnostics(host):
    """nginx's and the stand-in app's journals and nginx's error log, for assertion messages."""
    return journal(host, "nginx.service", "stub-app.service", logs=["/var/log/nginx/error.log"])


def request(host, url, options=""):
    """Return (status, headers as {lowercase name: [values]}, body) of a curl request."""
    result = host.run(f"{CURL} {options} '{url}'")
    assert result.rc == 0, f"curl {url}: {result.stderr}\n{diagnostics(host)}"
    head, _unused, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _unused, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


def log_line(host, marker):
    return host.run(f"grep -F -- '{marker}' {ACCESS_LOG}").stdout


def python(host, script):
    return host.run(f"python3 - <<'EOF'\n{script}\nEOF")


def test_http_redirects_to_https_with_same_host_and_path(host):
    status, headers, _unused = request(host, f"http://{NAME}/some/path/?q=1")
    assert status == 301, diagnostics(host)
    assert headers["location"] == [f"https://{NAME}/some/path/?q=1"]


def test_acme_challenge_is_served_over_http_from_the_webroot(host):
    token = uuid.uuid4().hex
    directory = "/var/www/acme/.well-known/acme-challenge"
    host.run_test(f"mkdir -p {directory} && echo 'key-authz-{token}' > {directory}/{token}")
    try:
        status, headers, body = request(host, f"http://{NAME}/.well-known/acme-challenge/{token}")
    finally:
        host.run(f"rm -f {directory}/{token}")
    assert status == 200, diagnostics(host)
    assert body.strip() == f"key-authz-{token}"
    assert "location" not in headers


def test_https_reaches_the_app_through_the_unix_socket(host):
    marker = uuid.uuid4().hex
    status, _unused, body = request(host, f"https://{NAME}/hello/?probe={marker}")
    assert status == 200, diagnostics(host)
    assert f"stub app: GET /hello/?probe={marker}" in body
    # Proxy headers and upstream keep-alive (empty Connection header).
    assert f"host={NAME} proto=https real_ip=127.0.0.1 connection=None" in body
    line = log_line(host, marker)
    assert f'ua="{SOCKET}" us=200' in line, line
    assert "rt=" in line and "urt=" in line


@pytest.mark.parametrize("path, expected", [("/hello/", 200), ("/static/css/app.css", 200),
                                            ("/media/photo.txt", 200), ("/static/missing.css", 404)])
def test_https_responses_carry_hsts_and_security_headers(host, path, expected):
    status, headers, _unused = request(host, f"https://{NAME}{path}")
    assert status == expected, diagnostics(host)
    assert headers["strict-transport-security"] == ["max-age=31536000; includeSubDomains"]
    assert headers["x-content-type-options"] == ["nosniff"]
    # Exactly one value: the app's SAMEORIGIN is hidden behind nginx's DENY.
    assert headers["x-frame-options"] == ["DENY"]
    assert headers["referrer-policy"] == ["same-origin"]
    assert headers["cross-origin-opener-policy"] == ["same-origin"]
    assert headers["server"] == ["nginx"]  # server_tokens off: no version


def test_static_files_are_served_by_nginx_with_cache_headers(host):
    marker = uuid.uuid4().hex
    status, headers, body = request(host, f"https://{NAME}/static/css/app.css?probe={marker}")
    assert status == 200, diagnostics(host)
    assert body == "body { color: #333; }\n"
    assert headers["cache-control"] == ["max-age=2592000"]
    assert "expires" in headers
    assert 'ua="-"' in log_line(host, marker)
    assert marker not in host.file(STUB_LOG).content_string


def test_media_files_are_served_by_nginx(host):
    status, headers, body = request(host, f"https://{NAME}/media/photo.txt")
    assert status == 200, diagnostics(host)
    assert body == "uploaded media\n"
    assert headers["cache-control"] == ["max-age=604800"]


def test_large_text_responses_are_gzipped(host):
    status, headers, _unused = request(host, f"https://{NAME}/big/", "-o /dev/null -D - -H 'Accept-Encoding: gzip'")
    assert status == 200, diagnostics(host)
    assert headers.get("content-encoding") == ["gzip"]
    assert "Accept-Encoding" in ", ".join(headers.get("vary", []))


def test_health_location_reaches_the_app_without_access_log(host):
    marker = uuid.uuid4().hex
    status, _unused, body = request(host, f"https://{NAME}/health/?probe={marker}")
    assert status == 200, diagnostics(host)
    assert f"GET /health/?probe={marker}" in body
    assert log_line(host, marker) == ""


TLS_PROBE = """
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.{version}
try:
    with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="{name}") as tls:
            print("accepted", tls.version())
except ssl.SSLError as error:
    print("refused", error)
"""


@pytest.mark.parametrize("version,accepted", [("TLSv1_1", False), ("TLSv1_2", True), ("TLSv1_3", True)])
def test_tls_versions(host, version, accepted):
    out = python(host, TLS_PROBE.format(version=version, name=NAME)).stdout
    if accepted:
        assert out.startswith("accepted"), out
    else:
        assert out.startswith("refused"), out
        # The server refused with a protocol_version alert: the client did offer the version.
        assert "PROTOCOL_VERSION" in out and "NO_PROTOCOLS_AVAILABLE" not in out, out


BODY_PROBE = """
import http.client, ssl
ctx = ssl.create_default_context(cafile="{cert}")
conn = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10)
conn.sock = ctx.wrap_socket(__import__("socket").create_connection(("127.0.0.1", 443)),
                            server_hostname="{name}")
conn.putrequest("POST", "/upload/", skip_host=True)
conn.putheader("Host", "{name}")
conn.putheader("Content-Length", str({size}))
conn.endheaders()
if {size} <= 1048576:
    conn.send(b"x" * {size})
response = conn.getresponse()
print(response.status, response.read().decode(errors="replace").splitlines()[0])
"""


def test_request_body_above_the_limit_is_refused(host):
    out = python(host, BODY_PROBE.format(cert=CERT, name=NAME, size=25 * 1024 * 1024 + 1)).stdout
    assert out.startswith("413"), out + diagnostics(host)


def test_request_body_below_the_limit_reaches_the_app(host):
    out = python(host, BODY_PROBE.format(cert=CERT, name=NAME, size=1048576)).stdout
    assert out.startswith("200 stub app: POST /upload/ body=1048576"), out + diagnostics(host)


RATE_PROBE = """
import collections, http.client, json, ssl, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conn = http.client.HTTPSConnection("{address}", 443, context=ctx, timeout=10)
codes = collections.Counter()
began = time.monotonic()
for _ in range(120):
    conn.request("GET", "{path}", headers={{"Host": "{name}", **{headers}}})
    response = conn.getresponse()
    response.read()
    codes[response.status] += 1
print(json.dumps({{"codes": codes, "seconds": time.monotonic() - began}}))
"""
# The role's defaults (converge.yml keeps them): nginx_rate_limit_rate 20r/s, _burst 40.
RATE, BURST = 20, 40


def rate_probe(host, address, path, headers=None):
    """120 requests on one keep-alive connection: ({status: count}, seconds they took)."""
    out = python(host, RATE_PROBE.format(address=address, path=path, name=NAME, headers=repr(headers or {}))).stdout
    result = json.loads(out)
    return {int(code): count for code, count in result["codes"].items()}, result["seconds"]


def container_address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1")


def test_clients_are_rate_limited(host):
    codes, seconds = rate_probe(host, container_address(host), "/limited/")
    # The burst passes at once, then the rate: everything else is refused with 429, nothing else.
    assert set(codes) == {200, 429}, codes
    assert BURST + 1 <= codes[200] <= BURST + 2 + RATE * seconds, (codes, seconds)
    assert codes[200] + codes[429] == 120


def test_health_location_is_not_rate_limited(host):
    codes, _unused = rate_probe(host, container_address(host), "/health/")
    assert codes == {200: 120}, codes


def test_allowlisted_clients_are_not_rate_limited(host):
    codes, _unused = rate_probe(host, "127.0.0.1", "/allowed/")
    assert codes == {200: 120}, codes


# converge.yml trusts loopback as a proxy (nginx_real_ip_from): what it names in X-Forwarded-For
# is the client, for the rate limit as for the logs; what anyone else names is ignored.
def test_trusted_proxy_names_the_client_for_rate_limit_and_log(host):
    marker = f"/real-ip-{uuid.uuid4().hex}/"
    codes, _unused = rate_probe(host, "127.0.0.1", marker, {"X-Forwarded-For": "198.51.100.7, 203.0.113.7"})
    # Loopback itself is allowlisted; the client it names is not, so the limit applies to it.
    assert set(codes) == {200, 429}, codes
    line = log_line(host, marker).splitlines()[0]
    assert line.startswith("203.0.113.7 "), line


def test_untrusted_address_cannot_name_the_client(host):
    address = container_address(host)
    marker = f"/forged-{uuid.uuid4().hex}"
    status, _unused, _body = request(host, f"https://{NAME}{marker}",
                                     f"-H 'X-Forwarded-For: 203.0.113.9' --connect-to {NAME}:443:{address}:443")
    assert status == 200
    line = log_line(host, marker).splitlines()[0]
    assert line.startswith(f"{address} "), line


def test_certificate_names_the_server(host):
    out = host.run(
        f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} </dev/null 2>/dev/null"
        " | openssl x509 -noout -ext subjectAltName").stdout
    assert f"DNS:{NAME}" in out and f"DNS:www.{NAME}" in out, out


def test_nginx_config_passes_without_warnings(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_default_site_is_gone_and_the_site_is_enabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    link = host.file("/etc/nginx/sites-enabled/stub.conf")
    assert link.is_symlink and link.linked_to == "/etc/nginx/sites-available/stub.conf"


def test_only_http_and_https_listen_publicly(host):
    # The stand-in app is on a unix socket: 80 and 443 on the wildcards are the whole list.
    expected = {(address, port) for address in wildcards(host) for port in (80, 443)}
    assert public_listeners(host) == expected, tcp_listeners(host)


SANDBOX = {
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
}
FAMILIES = {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_unit_carries_the_sandbox(host):
    props = host.check_output(
        "systemctl show nginx.service -p RestrictAddressFamilies "
        + " ".join(f"-p {name}" for name in SANDBOX))
    shown = dict(line.split("=", 1) for line in props.splitlines())
    assert set(shown.pop("RestrictAddressFamilies").split()) == FAMILIES
    assert shown == SANDBOX
    dropins = host.check_output("systemctl show -p DropInPaths --value nginx.service")
    assert "/etc/systemd/system/nginx.service.d/60-djangoprod-hardening.conf" in dropins


def test_sandbox_is_live_in_the_running_master(host):
    level = assert_sandboxed(
        host, "nginx.service", writable=["/var/log/nginx", "/var/lib/nginx", "/run"],
        read_only=["/etc", "/etc/ssl", "/usr", "/var/www/acme"],
        capabilities=["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE",
                      "CAP_CHOWN", "CAP_KILL"])
    print("systemd-analyze security nginx.service:", level)


def test_reload_and_log_reopen_work_in_the_sandbox(host):
    pid = main_pid(host, "nginx.service")
    # certbot's deploy hook reloads nginx: the reload runs in the sandbox and keeps the master.
    host.run_test("systemctl reload nginx.service")
    # logrotate's postrotate: the master reopens the logs and hands them to www-data (CAP_CHOWN).
    host.run_test(f"mv {ACCESS_LOG} {ACCESS_LOG}.1 && kill -USR1 {pid}")
    marker = uuid.uuid4().hex
    try:
        for _attempt in range(20):
            request(host, f"https://{NAME}/?sandbox={marker}")
            if log_line(host, marker):
                break
        assert log_line(host, marker), diagnostics(host)
        assert host.file(ACCESS_LOG).user == "www-data"
    finally:
        host.run(f"rm -f {ACCESS_LOG}.1")
    assert main_pid(host, "nginx.service") == pid, diagnostics(host)
    assert host.service("nginx").is_running


def test_a_sandbox_nginx_cannot_start_in_is_taken_back(host, tmp_path):
    def serving():
        assert host.service("nginx").is_running, diagnostics(host)
        assert request(host, f"https://{NAME}/hello/")[0] == 200

    assert_bad_sandbox_taken_back(host, tmp_path, str(pathlib.Path(__file__).parents[1] / "converge.yml"),
                                  "nginx_hardening_properties",
                                  "/etc/systemd/system/nginx.service.d/60-djangoprod-hardening.conf", serving)


def test_a_configuration_broken_outside_the_role_fails_each_run_until_fixed(host, tmp_path):
    """nginx -t runs again only after a change, or where the probe's nginx -t failed: a run with
    nothing to change does not ask it; a file nginx rejects, put there by hand, fails every run
    with nginx's verdict while nginx keeps serving; once it is gone, the run passes unchanged."""
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and set(changed.values()) == {0}, out[-3000:]
    assert not task_ran(out, "Run nginx -t"), out[-3000:]
    broken = "/etc/nginx/conf.d/zz-broken-by-hand.conf"
    host.run(f"echo 'this_is_not_a_directive on;' > {broken}")
    try:
        for _run in range(2):
            rc, out, _changed = playbook(tmp_path, converge)
            text = " ".join(out.split())
            assert rc != 0 and "nginx -t rejects the configuration" in text, out[-3000:]
            assert "this_is_not_a_directive" in text, out[-3000:]
            assert request(host, f"https://{NAME}/hello/")[0] == 200
    finally:
        host.run(f"rm -f {broken}")
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and set(changed.values()) == {0}, out[-3000:]
