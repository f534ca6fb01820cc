"""Bad input fails before anything on the host changes, with a message naming the variable."""

import concurrent.futures
import json
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "small.yml"
GOOD_SECRET = {"stack_redis_broker_password": "test-only-broker-password"}
# inventories/small's vault holds it; the vault password is in the README.
EXAMPLE_DB_PASSWORD = "ptNSerbDzm4Qw3ZTIsRWL4NsK3d2Jwvv"


def _run(tmp_path, extra=None, inventory=None, playbook=PLAYBOOK):
    inventory_dir = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    cmd = ["ansible-playbook", "-i", str(inventory_dir), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra is not None:
        path = tmp_path / "extra.json"
        path.write_text(json.dumps(extra))
        cmd += ["-e", f"@{path}"]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    out = proc.stdout + proc.stderr
    recap = out[out.rfind("PLAY RECAP"):]
    changed = [int(n) for n in re.findall(r"changed=(\d+)", recap)]
    return proc.returncode, out, changed


MARK = "/var/tmp/preflight-baseline"
PACKAGES = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'"


@pytest.fixture()
def baseline(host):
    """The host's installed packages, and a mark to find files changed after this point."""
    host.check_output(f"touch {MARK}")
    return host.check_output(PACKAGES)


def _assert_untouched(host, baseline):
    assert not host.package("nginx").is_installed
    assert not host.package("postgresql").is_installed
    assert not host.user("demo").exists
    assert not host.file("/srv/demo").exists
    # Nothing installed, removed or upgraded, and no configuration or app file written.
    assert host.check_output(PACKAGES) == baseline
    changed = host.check_output(f"find /etc /srv /opt /usr/local -xdev -newer {MARK} -print")
    assert changed == "", changed


def test_missing_secret_is_named(host, tmp_path, baseline):
    # Required because the inventory has Celery hosts (worker, beat): the broker is theirs.
    rc, out, changed = _run(tmp_path)
    assert rc != 0
    assert "stack_redis_broker_password must be a string" in out, out[-3000:]
    assert "it is not set" in out, out[-3000:]
    assert changed and set(changed) == {0}, out[-2000:]
    _assert_untouched(host, baseline)


@pytest.mark.parametrize("name, value", [
    ("gunicorn_workers", "many"),  # a role's variable, checked against the role's argument spec
    ("stack_app_port", "eighty"),  # a stack variable, checked against playbooks/vars/stack_spec.yml
])
def test_wrong_type_is_named(host, tmp_path, baseline, name, value):
    rc, out, changed = _run(tmp_path, {**GOOD_SECRET, name: value})
    assert rc != 0
    assert f"argument '{name}' is of type str" in out, out[-3000:]
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


def test_unusable_secret_is_named_without_echoing_it(host, tmp_path, baseline):
    secret = "has'a-quote-in-it-0123"
    rc, out, changed = _run(tmp_path, {"stack_redis_broker_password": secret})
    assert rc != 0
    assert "stack_redis_broker_password must be a string" in out, out[-3000:]
    assert "it is not set" not in out
    assert secret not in out
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


@pytest.fixture()
def twin_inventory(tmp_path):
    """A second inventory name for the same container, also in group beat."""
    inventory = tmp_path / "twin.yml"
    inventory.write_text(
        "all:\n"
        "  children:\n"
        "    beat:\n"
        "      hosts:\n"
        "        preflight-twin:\n"
        "          ansible_host: preflight\n"
        "          ansible_connection: community.docker.docker\n")
    return inventory


def test_two_beat_hosts_fail_before_any_change(host, tmp_path, twin_inventory, baseline):
    # site.yml (any tier): the general preflight names the group and the role variable.
    rc, out, changed = _run(tmp_path, GOOD_SECRET, inventory=twin_inventory,
                            playbook=ROOT / "playbooks" / "site.yml")
    assert rc != 0
    assert "at most one host in group 'beat'" in out, out[-3000:]
    assert "celery_beat_enabled" in out
    assert set(changed) == {0}
    _assert_untouched(host, baseline)


# Rows of (extra vars, words of the expected message). The rows run at the same time against
# the one fresh host (tables_run below): every run is read-only, so they cannot disturb each other.
BAD_INPUT = [
    # No name at all; a name with its scheme; a malformed name, with or without an ACME server.
    ({"stack_domains": []}, "stack_domains is empty"),
    ({"stack_domains": ["https://shop.example.com"]},
     'stack_domains: "https://shop.example.com" is not a host name or an IP address'),
    ({"stack_domains": ["shop..example.com"]},
     'stack_domains: "shop..example.com" is not a host name or an IP address'),
    ({"stack_domains": ["shop.example.com", "bad_name.example.com"], "stack_acme_enabled": True,
      "stack_acme_email": "ops@example.com"},
     'stack_domains: "bad_name.example.com" is not a name an ACME server can validate'),
    # A name an ACME server cannot validate over HTTP.
    ({"stack_domains": ["localhost", "10.0.0.5"], "stack_acme_enabled": True,
      "stack_acme_email": "ops@example.com"},
     'stack_domains: "localhost", "10.0.0.5" are not a name an ACME server can validate'),
    # Certificates from an ACME server need an account email.
    ({"stack_acme_enabled": True}, "stack_acme_email must be the email address of the account"),
    ({"stack_acme_enabled": True, "stack_acme_email": "ops at example.com"},
     'the account at the ACME server (expiry notices go there), found "ops at example.com"'),
    # Celery hosts need the Celery application.
    ({"stack_celery_app": ""}, "stack_celery_app must name the project's Celery application"),
    # Management commands: where they run, their names and commands, systemd's own calendar check.
    ({"stack_app_timers": [{"name": "x", "command": "clearsessions", "on_calendar": "daily", "group": "web"}]},
     "an entry's group must be one of app, worker, beat"),
    ({"stack_app_services": [{"name": "Send Alerts", "command": "sendalerts"}]},
     "django_services and django_timers are lists of {name, command}"),
    ({"stack_app_services": [{"name": "alerts", "command": ""}]},
     "django_services and django_timers are lists of {name, command}"),
    ({"stack_app_timers": [{"name": "reports", "command": "sendreports", "on_calendar": "every tuesday"}]},
     "django_timers: systemd cannot read the on_calendar of reports"),
    ({"stack_static_root": "../static"}, "django_static_root must be a path relative to the release"),
    ({"stack_app_env": {"DB-HOST": "x"}}, "Names in django_env_extra must be shell identifiers: DB-HOST"),
    # Load balancers in front: addresses or networks only; the nginx role's own lists too.
    ({"stack_trusted_proxies": ["10.0.0.0/8", "lb.example.test"]},
     ('stack_trusted_proxies: entries must be IPv4 or IPv6 addresses or networks without host bits '
      '(10.0.0.5, 10.0.0.0/24, fd00::/64), got "lb.example.test"')),
    ({"nginx_rate_limit_allowlist": ["127.0.0.1", "10.1.2.3/16"]},
     ('nginx_rate_limit_allowlist: entries must be IPv4 or IPv6 addresses or networks without host '
      'bits (10.0.0.5, 10.0.0.0/24, fd00::/64), got "10.1.2.3/16"')),
    ({"nginx_real_ip_header": "X-Forwarded-For; proxy_pass x"},
     "nginx_real_ip_header: a header name such as X-Forwarded-For or X-Real-IP, or proxy_protocol"),
    # An unknown TLS profile, checked against the nginx role's argument spec.
    ({"nginx_tls_profile": "old"}, "nginx_tls_profile must be one of: intermediate, modern, got: old"),
]

# Firewall input that could lock the operator out.
FIREWALL_LOCKOUT = [
    ({"common_firewall_ssh_ports": []}, "common_firewall_ssh_ports is empty"),
    ({"common_firewall_ssh_ports": [0]}, "common_firewall_ssh_ports: a port must be from 1 to 65535"),
    ({"common_firewall_public_ports": [443, 70000]},
     "common_firewall_public_ports: a port must be from 1 to 65535"),
    ({"common_firewall_allow_extra": [{"ports": [65536], "sources": ["10.0.0.5"]}]},
     "common_firewall_allow_extra: a port must be from 1 to 65535"),
    ({"common_firewall_ssh_ports": [2222], "common_firewall_public_ports": [80, 443, 2222]},
     "A port taken twice in common_firewall_ssh_ports and common_firewall_public_ports: 2222"),
    ({"common_firewall_allow_extra": [{"ports": [9100], "sources": ["monitoring.example"]}]},
     "sources must be IPv4 or IPv6 addresses"),
]


# The rules beside the specs: the stack's (playbooks/vars/stack_rules.yml) name the variable you
# set; each role's (roles/<role>/meta/input_rules.yml) the role variable. Ranges, sizes and times
# as each daemon spells them, relations, and secrets the world knows.
RULES = [
    ({"stack_app_name": "my app"}, "stack_app_name must be a name of lower-case letters, digits"),
    ({"stack_app_port": 70000}, "stack_app_port must be a port from 1 to 65535, got 70000"),
    ({"stack_secret_key": "django-insecure-" + "k3y" * 20},
     "stack_secret_key must be at least 50 characters with at least 5 different ones, not a 'django-insecure-'"),
    ({"stack_secret_key": "changeme"}, "stack_secret_key is a placeholder, not a secret"),
    ({"stack_db_password": EXAMPLE_DB_PASSWORD}, "stack_db_password is a value the world knows"),
    ({"stack_redis_cache_password": "test-only-db-password"},
     "stack_db_password and stack_redis_cache_password must differ, both are the same (values not shown)"),
    ({"gunicorn_workers": 0}, "gunicorn_workers must be from 1 to 256, got 0"),
    ({"postgresql_port": 70000}, "postgresql_port must be a port from 1 to 65535, got 70000"),
    ({"postgresql_shared_buffers": "1 GB"}, "postgresql_shared_buffers must be a size as PostgreSQL spells it"),
    ({"redis_cache_maxmemory": "2 GB"}, 'redis_cache_maxmemory must be a size as Redis spells it, without a space'),
    ({"nginx_client_max_body_size": "25 MB"}, "nginx_client_max_body_size must be a size as nginx spells it"),
    ({"nginx_rate_limit_rate": "20/s"}, "nginx_rate_limit_rate must be a rate as nginx spells it: 10r/s or 600r/m"),
    ({"celery_soft_time_limit": 600}, "celery_soft_time_limit must be at most celery_time_limit (300), got 600"),
    ({"common_locale": "en_US.ISO-8859-1"}, "common_locale must be a UTF-8 locale"),
    ({"logrotate_policies": [{"name": "demo app", "paths": ["/var/log/demo/*.log"]}]},
     "logrotate_policies[0].name must be a file name"),
]

# All tables, one row a test.
ROWS = BAD_INPUT + FIREWALL_LOCKOUT + RULES


@pytest.fixture(scope="module")
def tables_run(host, tmp_path_factory):
    """Every row, run three at a time after one baseline of the host: ({index: (rc, out,
    changed)}, baseline)."""
    host.check_output(f"touch {MARK}")
    packages = host.check_output(PACKAGES)

    def run(index):
        extra = ROWS[index][0]
        return index, _run(tmp_path_factory.mktemp(f"row{index}"), {**GOOD_SECRET, **extra})

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(run, range(len(ROWS))))
    return results, packages


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[message for _extra, message in ROWS])
def test_bad_input_is_named_before_any_change(host, tables_run, index):
    results, baseline = tables_run
    rc, out, changed = results[index]
    assert rc != 0
    assert ROWS[index][1] in " ".join(out.split()), out[-3000:]
    assert set(changed) == {0}, out[-2000:]
    assert EXAMPLE_DB_PASSWORD not in out
    _assert_untouched(host, baseline)
