"""Certificates from a real ACME server (pebble), obtained through nginx's webroot on two web hosts,
renewed by certbot.timer's unit under load, kept while the ACME server is away, and a TLS setup
that testssl.sh rates without a finding of MEDIUM or worse."""

import contextlib
import json
import pathlib
import shlex
import subprocess
import uuid

import pytest

from helpers.stack import address, fleet, install_helper, journal, playbook

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[1]
NAMES = ["shop.example.test", "www.shop.example.test"]
LINEAGE = "/etc/letsencrypt/live/shop"
RENEWAL = "/etc/letsencrypt/renewal/shop.conf"
ACCESS_LOG = "/var/log/nginx/shop.access.log"
TEST_CA = "/etc/ssl/acme-test/ca.pem"
PEBBLE_ROOT = "/etc/ssl/acme-test/pebble-root.pem"
STATIC = "/static/css/app.css"


@pytest.fixture(scope="module")
def hosts():
    hosts = fleet()
    # The root of pebble's issuing chain (pebble makes a new one each time it starts).
    for name in ("web1", "web2"):
        hosts[name].run_test(
            f"curl -fsS --cacert {TEST_CA} -o {PEBBLE_ROOT} https://acme:15000/roots/0")
    return hosts


def served(host, name, path=STATIC, port=443):
    """curl through this host's nginx, verifying the chain against pebble's root and the name."""
    return host.run(
        f"curl -fsS --max-time 10 --cacert {PEBBLE_ROOT} --resolve {name}:{port}:127.0.0.1 "
        f"https://{name}:{port}{path}")


def certificate(host, name="shop.example.test"):
    """Serial, issuer and names of the certificate nginx serves for this name."""
    out = host.check_output(
        f"openssl s_client -connect 127.0.0.1:443 -servername {name} </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial -issuer -ext subjectAltName")
    return out


def serial(host):
    return certificate(host).splitlines()[0]


def converge(tmp_path, limit=None, **extra):
    return playbook(tmp_path, str(SCENARIO / "converge.yml"), extra or None, limit=limit)


def test_each_web_host_serves_a_certificate_from_the_acme_server(hosts):
    for name in ("web1", "web2"):
        host = hosts[name]
        for domain in NAMES:
            result = served(host, domain)
            assert result.rc == 0, (name, domain, result.stderr, journal(host, "nginx"))
            assert "color" in result.stdout
        info = certificate(host)
        assert "Pebble Intermediate" in info, info
        for domain in NAMES:
            assert f"DNS:{domain}" in info, info
        # nginx reads the lineage through the placeholder's paths.
        link = host.check_output("readlink /etc/ssl/djangoprod/shop/fullchain.pem")
        assert link == f"{LINEAGE}/fullchain.pem"


def test_a_challenge_for_the_other_host_reached_it_through_the_relay(hosts):
    # shop.example.test resolves to web1 only: web2's challenge for it was asked of web1, which
    # found no token of its own and fetched it from web2.
    web2_address = address(hosts["web2"])
    relayed = [line for line in hosts["web1"].file(ACCESS_LOG).content_string.splitlines()
               if "/.well-known/acme-challenge/" in line and f'ua="{web2_address}:80"' in line]
    assert relayed, hosts["web1"].file(ACCESS_LOG).content_string[-3000:]
    assert all('" 200 ' in line for line in relayed), relayed
    # ... and the other way round for www.shop.example.test.
    web1_address = address(hosts["web1"])
    relayed_back = [line for line in hosts["web2"].file(ACCESS_LOG).content_string.splitlines()
                    if "/.well-known/acme-challenge/" in line and f'ua="{web1_address}:80"' in line]
    assert relayed_back


def test_an_unknown_challenge_is_asked_of_the_peer_once_and_never_bounced(hosts):
    token = uuid.uuid4().hex
    code = hosts["web1"].check_output(
        "curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example.test' "
        f"http://127.0.0.1/.well-known/acme-challenge/{token}")
    assert code == "404"
    counts = [h.file(ACCESS_LOG).content_string.count(token) for h in (hosts["web1"], hosts["web2"])]
    assert counts == [1, 1], counts
    # Everything else on port 80 still redirects to HTTPS.
    location = hosts["web1"].check_output(
        "curl -s -o /dev/null -w '%{redirect_url}' -H 'Host: shop.example.test' http://127.0.0.1/x?y=1")
    assert location == "https://shop.example.test/x?y=1"


def test_nginx_accepts_the_configuration_without_a_warning(hosts):
    for name in ("web1", "web2"):
        result = hosts[name].run("nginx -t")
        assert result.rc == 0, result.stderr
        assert "[warn]" not in result.stderr, result.stderr
        # pebble's certificates name no OCSP responder: no stapling.
        assert "ssl_stapling on" not in hosts[name].check_output("nginx -T 2>/dev/null")


def test_renewal_timer_and_its_sandboxed_unit(hosts):
    for name in ("web1", "web2"):
        host = hosts[name]
        assert host.service("certbot.timer").is_enabled
        assert host.service("certbot.timer").is_running
        show = host.check_output(
            "systemctl show certbot.service -p ProtectSystem -p NoNewPrivileges -p Environment")
        assert "ProtectSystem=strict" in show and "NoNewPrivileges=yes" in show, show
        assert f"REQUESTS_CA_BUNDLE={TEST_CA}" in show, show
        hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/djangoprod-reload")
        assert hook.mode == 0o755 and "systemctl reload" in hook.content_string
        exposure = host.check_output(
            "systemd-analyze security --no-pager certbot.service | tail -1")
        print(name, "certbot.service:", exposure)


def test_a_renewal_by_the_timer_unit_swaps_the_certificate_under_load(hosts):
    host = hosts["web1"]
    before = serial(host)
    # Make the certificate due (pebble's live for years) and run the unit certbot.timer starts,
    # with its drop-in (the CA of the ACME server) and its sandbox, while a client keeps asking.
    host.run_test(f"sed -i '1a renew_before_expiry = 36500 days' {RENEWAL}")
    try:
        script = install_helper(host, "loadcheck.py")
        out = host.run(
            f"python3 {script} --host shop.example.test --path {STATIC} --threads 4 --seconds 10 "
            "--restart-after 1 --restart-unit certbot.service")
    finally:
        host.run_test(f"sed -i '/^renew_before_expiry/d' {RENEWAL}")
    assert out.rc == 0, out.stderr + journal(host, "certbot.service")
    result = json.loads(out.stdout)
    print("renewal under load:", result)
    assert host.check_output("systemctl show -p Result --value certbot.service") == "success"
    assert result["during_restart"] > 0, result
    assert result["failed"] == 0, (result, journal(host, "nginx", "certbot.service"))
    after = serial(host)
    assert after != before, "nginx still serves the old certificate: the deploy hook did not reload it"
    assert served(host, "shop.example.test").rc == 0
    assert host.service("nginx").is_running


@contextlib.contextmanager
def acme_server_unreachable():
    """Take the ACME server's container off the scenario's network (pebble keeps its state: it
    forgets accounts and its CA when it restarts, as no real ACME server does)."""
    network = f"djangoprod-{SCENARIO.name}"
    subprocess.run(["docker", "network", "disconnect", network, "acme"], check=True)
    try:
        yield
    finally:
        subprocess.run(["docker", "network", "connect", network, "acme"], check=True)


def test_a_run_keeps_the_certificate_while_the_acme_server_is_away(hosts, tmp_path):
    web1 = hosts["web1"]
    names = NAMES + ["api.shop.example.test"]
    before = serial(web1)
    with acme_server_unreachable():
        assert web1.run("curl -sS --max-time 5 -o /dev/null https://acme:14000/dir").rc != 0
        rc, out, _changed = converge(tmp_path, limit="web1", certbot_domains=names)
        assert rc == 0, out[-4000:]
        assert "could not issue shop" in " ".join(out.split()), out[-4000:]
        assert serial(web1) == before
        assert served(web1, "shop.example.test").rc == 0

        # Without a valid certificate to keep, the run fails and says why.
        rc, out, _changed = converge(tmp_path, limit="web1", certbot_cert_name="other")
        assert rc != 0
        assert "has no valid certificate to keep" in " ".join(out.split()), out[-4000:]

    # The ACME server is back: the next run issues for the new list of names.
    rc, out, changed = converge(tmp_path, limit="web1", certbot_domains=names)
    assert rc == 0, out[-4000:]
    assert changed["web1"] > 0
    assert "DNS:api.shop.example.test" in certificate(web1)
    assert served(web1, "api.shop.example.test").rc == 0

    # A run with nothing to change does not talk to the ACME server at all.
    with acme_server_unreachable():
        rc, out, changed = converge(tmp_path, limit="web1", certbot_domains=names)
    assert rc == 0 and changed == {"web1": 0}, out[-4000:]


def test_a_missing_ca_bundle_stops_the_role_before_it_changes_anything(hosts, tmp_path):
    web1 = hosts["web1"]
    snapshot = ("find /etc/letsencrypt /etc/nginx /etc/systemd/system -xdev -type f -print0 | sort -z"
                " | xargs -0 sha256sum --")
    before = web1.check_output(snapshot)
    # The names the test before this one left (nginx, converged first, has nothing to change).
    rc, out, changed = converge(tmp_path, limit="web1", certbot_domains=NAMES + ["api.shop.example.test"],
                                certbot_acme_ca_bundle="/etc/ssl/acme-test/missing.pem")
    assert rc != 0 and changed == {"web1": 0}, out[-4000:]
    assert "certbot_acme_ca_bundle: /etc/ssl/acme-test/missing.pem is not a file on web1" in " ".join(out.split()), \
        out[-4000:]
    assert web1.check_output(snapshot) == before


def test_testssl_finds_nothing_medium_or_worse(hosts):
    acme, web1 = hosts["acme"], hosts["web1"]
    root = web1.file(PEBBLE_ROOT).content_string
    acme.run_test(f"printf %s {shlex.quote(root)} > /tmp/pebble-root.pem")
    acme.run("rm -f /tmp/testssl.json")
    # Every check that rates the server (protocols, cipher categories, forward secrecy, server
    # preference and defaults, headers, vulnerabilities); not the client simulation, which
    # reports which browsers connect, all at severity INFO, and takes a third of the run.
    result = acme.run(
        "testssl --quiet --color 0 --warnings off --add-ca /tmp/pebble-root.pem "
        "--protocols --std --fs --server-preference --server-defaults --headers --vulnerable "
        "--jsonfile /tmp/testssl.json https://shop.example.test/static/css/app.css")
    assert acme.file("/tmp/testssl.json").exists, (result.rc, result.stdout[-3000:], result.stderr[-3000:])
    findings = json.loads(acme.file("/tmp/testssl.json").content_string)
    # pebble's certificates carry no revocation information (no CRL, no OCSP) and live five years:
    # properties of the test CA, not of the server's setup (testssl 3.0 on Debian 12 calls the
    # second cert_validityPeriod).
    test_ca_only = {"cert_revocation", "cert_crlDistributionPoints", "cert_ocspURL", "cert_extlifeSpan",
                    "cert_validityPeriod"}
    bad = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")
           and f.get("id") not in test_ca_only]
    summary = {}
    for f in findings:
        summary[f.get("severity")] = summary.get(f.get("severity"), 0) + 1
    report = ROOT / ".cache" / "test-logs" / "testssl-certbot.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"summary": summary, "findings": findings}, indent=1))
    print("testssl.sh severities:", summary)
    assert findings, result.stdout[-3000:]
    assert not bad, json.dumps(bad, indent=1)


def test_no_failed_units(hosts):
    for name, host in hosts.items():
        failed = host.check_output("systemctl list-units --failed --plain --no-legend")
        assert not failed.strip(), (name, failed)
