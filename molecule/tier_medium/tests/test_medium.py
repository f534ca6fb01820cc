"""The medium tier end to end, through its own hosts: either web host reaches both app hosts,
tasks run on both workers and beat fires once for the fleet, a row written through the app
reaches the replica, the web hosts (which have no code) serve the live release's static files
and an upload made through the other web host, the Redis primary's loss keeps tasks flowing
with nothing queued lost, and one app host down keeps every request succeeding (that test kills
a host: it runs last)."""

import json
import re
import shlex
import subprocess
import time
import uuid

import pytest

from helpers.stack import Site, address, file_digests, fleet, journal, wait_for

DOMAIN = "demo.example.test"
WEB, APP, WORKERS = ("m-web1", "m-web2"), ("m-app1", "m-app2"), ("m-worker1", "m-worker2")
REDIS = ("m-redis1", "m-redis2")
SENTINEL_PASSWORD = "test-only-sentinel-password"
ADMIN = "--user admin --pass test-only-redis-admin-password"


@pytest.fixture(scope="module")
def hosts():
    return fleet()


@pytest.fixture(scope="module")
def addresses(hosts):
    return {name: address(host) for name, host in hosts.items()}


def manage(host, code, timeout=120):
    """Python run by the app's manage.py shell on a host that has the code; its stdout."""
    result = host.run(f"timeout {timeout} demo-manage shell -c {shlex.quote(code)}")
    assert result.rc == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout.strip()


def send(host, count, tag):
    """Send `count` where() tasks from the app host; their ids."""
    out = manage(host, "import json; from core.tasks import where; "
                       f"print(json.dumps([where.delay({tag!r}).id for _ in range({count})]))")
    return json.loads(out.splitlines()[-1])


def results(host, ids, timeout=60):
    """The results of the tasks, waited for through the result backend; the states of those that
    did not finish in time make the assertion's message."""
    out = manage(host, "import json, time; from celery.result import AsyncResult; from demo.celery import app\n"
                       f"ids = {ids!r}; deadline = time.monotonic() + {timeout}\n"
                       "while time.monotonic() < deadline and not all(AsyncResult(i, app=app).ready() for i in ids):\n"
                       "    time.sleep(0.5)\n"
                       "print(json.dumps([[AsyncResult(i, app=app).state, AsyncResult(i, app=app).result]"
                       " for i in ids], default=repr))",
                 timeout=timeout + 60)
    states = json.loads(out.splitlines()[-1])
    assert all(state == "SUCCESS" for state, _result in states), states
    return [result for _state, result in states]


def test_requests_through_either_web_host_reach_both_app_hosts(hosts, addresses):
    upstreams = {f"{addresses[name]}:8000" for name in APP}
    for name in WEB:
        web, marker = hosts[name], f"/notes/{uuid.uuid4().int % 10**9}/"
        statuses = [Site(web, DOMAIN).request("GET", marker)[0] for _request in range(16)]
        # A note that does not exist: Django answers 404 from whichever app host served it.
        assert set(statuses) == {404}, statuses
        log = web.check_output(f"grep -F 'GET {marker} ' /var/log/nginx/demo.access.log")
        served = set(re.findall(r'ua="([^"]+)"', log))
        assert served == upstreams, (name, served, log[-2000:])
    # nginx balances by least connections, with passive health checks on each server.
    site = hosts[WEB[0]].file("/etc/nginx/sites-available/demo.conf").content_string
    assert "least_conn;" in site and site.count("max_fails=3 fail_timeout=10s") == 2, site


def test_a_row_written_through_the_app_reaches_the_replica(hosts):
    site = Site(hosts[WEB[1]], DOMAIN)
    text = f"medium-{uuid.uuid4().hex}"
    status, created = site.json("POST", "/notes/", {"text": text})
    assert status == 201 and created["db"] == "default", created

    def on_replica():
        with hosts["m-db2"].sudo("postgres"):
            return hosts["m-db2"].run(
                f"psql -d demo -Atc 'SELECT text FROM core_note WHERE id = {int(created['id'])}'").stdout.strip()
    assert wait_for(lambda: on_replica() == text, timeout=20)
    # Reads go to the replica (the router's alias for it), and find the row there.
    status, fetched = site.json("GET", f"/notes/{created['id']}/")
    assert status == 200 and fetched == {"id": created["id"], "text": text, "db": "replica1"}, fetched


def test_tasks_run_on_both_workers(hosts):
    done = results(hosts[APP[0]], send(hosts[APP[0]], 24, "spread"))
    workers = {result["worker"] for result in done}
    assert workers == {f"celery@{name}" for name in WORKERS}, done


def test_beat_fires_once_per_interval_across_the_fleet(hosts):
    beats = {name for name, host in hosts.items() if host.service("demo-celery-beat").is_running}
    assert beats == {"m-worker1"}, beats
    site = Site(hosts[WEB[0]], DOMAIN)
    _status, first = site.json("GET", "/heartbeats/")
    time.sleep(12)
    _status, second = site.json("GET", "/heartbeats/")
    # HEARTBEAT_SECONDS is 3: four in 12 s from one beat (eight, were there two).
    assert 3 <= second["count"] - first["count"] <= 5, (first, second)


def test_each_web_host_serves_the_static_files_of_the_live_release(hosts):
    app = hosts[APP[0]]
    release = app.check_output("readlink -e /srv/demo/current")
    collected = file_digests(app, f"{release}/staticfiles")
    hashed = json.loads(app.file(f"{release}/staticfiles/staticfiles.json").content_string)["paths"]
    assert len(collected) > 50 and "admin/css/base.css" in hashed, sorted(collected)[:20]
    for name in WEB:
        web = hosts[name]
        # No code on a web host (no release, virtualenv or environment file): a copy of the tree.
        assert not web.file("/srv/demo/releases").exists and not web.file("/etc/demo").exists, name
        assert web.file("/srv/demo/static/current").linked_to == f"/srv/demo/static/{release.rsplit('/', 1)[1]}"
        assert file_digests(web, "/srv/demo/static/current") == collected, name
        for path in (hashed["admin/css/base.css"], hashed["demo/site.css"]):
            status, headers, body = Site(web, DOMAIN).request("GET", f"/static/{path}")
            assert status == 200 and headers.get("cache-control") == "max-age=2592000", (name, status, headers)
            assert body == app.file(f"{release}/staticfiles/{path}").content_string, (name, path)


def test_an_upload_through_one_web_host_is_served_through_the_other(hosts):
    sender, reader = hosts[WEB[0]], hosts[WEB[1]]
    uploads = {}
    for number in range(4):  # least_conn spreads them over the app hosts
        sender.run_test(f"head -c {100000 + number} /dev/urandom > /tmp/upload-{number}.bin")
        status, _headers, body = Site(sender, DOMAIN).request("POST", "/upload/", form_file=f"/tmp/upload-{number}.bin")
        assert status == 201, body
        uploads[json.loads(body)["url"]] = sender.check_output(f"sha256sum /tmp/upload-{number}.bin").split()[0]
    for url, digest in uploads.items():
        reader.run_test(f"curl -sS -k --max-time 30 --fail --resolve {DOMAIN}:443:127.0.0.1 "
                        f"-o /tmp/download.bin https://{DOMAIN}{url}")
        assert reader.check_output("sha256sum /tmp/download.bin").split()[0] == digest, url
        # From the web host's disk, not through an app host (no upstream in the access log).
        line = reader.check_output(f"grep -F 'GET {url} ' /var/log/nginx/demo.access.log").splitlines()[-1]
        assert 'ua="-"' in line, line


def docker(*args):
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def primary_seen_by(host, name):
    out = host.run(f"redis-cli --no-auth-warning --pass {SENTINEL_PASSWORD} -p 26379 "
                   f"SENTINEL GET-MASTER-ADDR-BY-NAME {name}").stdout.split()
    return out[0] if out else None


def role(host, port):
    return host.run(f"redis-cli --no-auth-warning {ADMIN} -p {port} ROLE").stdout.split()[:1]


def test_the_broker_fails_over_and_no_queued_task_is_lost(hosts, addresses):
    app = hosts[APP[0]]
    by_address = {addresses[name]: name for name in REDIS}
    old_name = by_address[primary_seen_by(hosts["m-worker1"], "demo-broker")]
    new_name = next(name for name in REDIS if name != old_name)
    old, new = hosts[old_name], hosts[new_name]
    assert role(new, 6380) == ["slave"]
    # The app's cache works through the Sentinels (the readiness check writes and reads it).
    site = Site(hosts[WEB[0]], DOMAIN)
    status, checks = site.json("GET", "/ready/")
    assert status == 200, checks
    # The workers stop, so the tasks sent now wait in the broker's queue.
    for name in WORKERS:
        hosts[name].run_test("systemctl stop demo-celery-worker.service")
    try:
        queued = send(app, 5, "queued-before-the-loss")
        docker("pause", old_name)
        try:
            promoted = wait_for(lambda: all(primary_seen_by(hosts[name], f"demo-{kind}") == addresses[new_name]
                                            for name in ("m-worker1", new_name) for kind in ("broker", "cache")),
                                timeout=60)
            assert promoted, journal(hosts["m-worker1"], "redis-server@sentinel.service")
            assert role(new, 6380) == ["master"]
        finally:
            for name in WORKERS:
                hosts[name].run_test("systemctl start demo-celery-worker.service")
        # Every task queued before the loss runs, and new ones flow through the new primary.
        after = send(app, 5, "sent-after-the-failover")
        try:
            done = results(app, queued + after, timeout=90)
        except AssertionError as failure:
            logs = [journal(hosts[name], "demo-celery-worker.service", logs=["/var/log/demo/celery-worker.log"])
                    for name in WORKERS]
            raise AssertionError("\n".join([str(failure), *logs])) from None
        assert [r["tag"] for r in done] == ["queued-before-the-loss"] * 5 + ["sent-after-the-failover"] * 5
        # The app's cache follows the promoted primary too: the running app processes find it
        # once their connections to the frozen host time out.
        assert wait_for(lambda: site.json("GET", "/ready/")[0] == 200, timeout=30), site.json("GET", "/ready/")
    finally:
        docker("unpause", old_name)
    # The old primary returns as a replica of the new one.
    assert wait_for(lambda: role(old, 6380) == ["slave"], timeout=60), journal(old, "redis-server@broker.service")


def test_one_app_host_down_keeps_every_request_succeeding(hosts):
    docker("kill", APP[0])  # the host dies at once: no shutdown, no goodbye to its peers
    for name in WEB:
        site = Site(hosts[name], DOMAIN)
        statuses = [site.request("GET", "/health/")[0] for _request in range(12)]
        assert statuses == [200] * 12, (name, statuses)
