"""The roles' input rules (meta/input_rules.yml, applied by the input_errors filter): one bad value
a row, each refused with a message that names the variable and says what is expected; every
rule file well formed, its relations naming variables it has rules for, and every literal default
of the role passing its rule."""

import pathlib
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from input_rules import FORMATS, input_errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.parent.name for path in ROOT.glob("roles/*/meta/argument_specs.yml"))


def _rules(role):
    return yaml.safe_load((ROOT / "roles" / role / "meta" / "input_rules.yml").read_text(encoding="utf-8"))


def _spec(role):
    path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]


def _defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}


# role, {variable: bad value}, words the message must hold
BAD = [
    ("gunicorn", {"gunicorn_workers": 0}, "gunicorn_workers must be from 1 to 256, got 0"),
    ("gunicorn", {"gunicorn_workers": "many"}, 'gunicorn_workers must be a number, got "many"'),
    ("gunicorn", {"gunicorn_max_requests": 100, "gunicorn_max_requests_jitter": 500},
     "gunicorn_max_requests_jitter must be at most gunicorn_max_requests (100), got 500"),
    ("gunicorn", {"gunicorn_socket_mode": "660"}, None),  # fine: a mode without its leading 0
    ("gunicorn", {"gunicorn_socket_mode": "rw-rw----"}, "gunicorn_socket_mode must be an octal mode"),
    ("gunicorn", {"gunicorn_wsgi_app": "demo/wsgi.py"}, "gunicorn_wsgi_app must be a module and its application"),
    ("gunicorn", {"gunicorn_listen": "0.0.0.0"}, "gunicorn_listen must be a unix socket path"),
    ("gunicorn", {"gunicorn_app_name": "my app"}, "gunicorn_app_name must be a name of lower-case letters"),
    ("postgresql", {"postgresql_port": 70000}, "postgresql_port must be a port from 1 to 65535, got 70000"),
    ("postgresql", {"postgresql_shared_buffers": "2 GB"},
     "postgresql_shared_buffers must be a size as PostgreSQL spells it"),
    ("postgresql", {"postgresql_work_mem": "64mb"}, "case-sensitive unit"),
    ("postgresql", {"postgresql_max_parallel_workers": 16, "postgresql_max_worker_processes": 8},
     "postgresql_max_parallel_workers must be at most postgresql_max_worker_processes (8), got 16"),
    ("postgresql", {"postgresql_checkpoint_completion_target": 1.5}, "must be from 0 to 1, got 1.5"),
    ("postgresql", {"postgresql_log_autovacuum_min_duration": "10 seconds"},
     "postgresql_log_autovacuum_min_duration must be a time"),
    ("postgresql", {"postgresql_replication_slot": "db-2"}, "postgresql_replication_slot must be a slot name"),
    ("postgresql", {"postgresql_hba_entries": [{"type": "hostssl", "database": "demo", "user": "demo",
                                                "address": "10.0.0.5"}]},
     'postgresql_hba_entries[0].address must be a network in CIDR form (10.0.0.0/24, 10.0.0.5/32, fd00::/64)'),
    ("postgresql", {"postgresql_hba_entries": [{"database": "demo", "user": "demo", "address": "10.0.0.0/33"}]},
     "postgresql_hba_entries[0].address must be a network in CIDR form"),
    ("postgresql", {"postgresql_hba_entries": [
        {"database": "demo", "user": "+ops,demo", "address": "10.0.0.0/24", "options": "clientcert=verify-full"},
        {"database": "all", "user": "all", "address": "fd00::/64"},
        {"database": "replication", "user": "replicator", "address": ".internal.example.com"},
        {"database": "demo", "user": "demo", "address": "app1.internal"},
        {"database": "demo", "user": "demo", "address": "samenet"}]}, None),
    ("postgresql", {"postgresql_hba_entries": [{"database": "demo db", "user": "demo", "address": "10.0.0.0/24"}]},
     "postgresql_hba_entries[0].database must be a database name, all, replication, or names joined by commas"),
    ("postgresql", {"postgresql_hba_entries": [{"database": "demo", "user": "demo", "address": "10.0.0.0/24",
                                                "options": "clientcert verify-full"}]},
     "postgresql_hba_entries[0].options must be options such as clientcert=verify-full"),
    ("postgresql", {"postgresql_users": [{"name": "demo-user", "password": "x"}]},
     'postgresql_users[0].name must be a role name of letters, digits and "_", at most 63, got "demo-user"'),
    ("postgresql", {"postgresql_users": [{"name": "demo", "password": "x", "role_attr_flags": "LOGIN NOSUPERUSER"}]},
     "postgresql_users[0].role_attr_flags must be attributes joined by commas"),
    ("postgresql", {"postgresql_databases": [{"name": "demo", "owner": "demo", "extensions": ["pg trgm"]}]},
     "postgresql_databases[0].extensions[0] must be an extension name"),
    ("postgresql", {"postgresql_replicas": [{"name": "m-db2", "address": "db2.internal"}]},
     "postgresql_replicas[0].address must be an IPv4 or IPv6 address, or a network in CIDR form"),
    ("postgresql", {"postgresql_replicas": [{"name": "m-db2", "address": "10.0.0.6"},
                                            {"name": "m-db3", "address": "fd00::7/128"}],
                    "postgresql_synchronous_standbys": ["m-db2"]}, None),
    ("redis", {"redis_cache_password": "changeme"}, "redis_cache_password is a placeholder, not a secret"),
    ("redis", {"redis_cache_password": "same-secret-for-both-9", "redis_broker_password": "same-secret-for-both-9"},
     "redis_cache_password and redis_broker_password must differ, both are the same (values not shown)"),
    ("redis", {"redis_acl_denied_commands": ["@dangerous", "FLUSHALL now"]},
     'redis_acl_denied_commands[1] must be a command or @category such as flushdb or @dangerous, got "FLUSHALL now"'),
    ("redis", {"redis_cache_settings": {"maxmemory policy": "allkeys-lru"}},
     'redis_cache_settings (a key) must be a directive such as maxmemory-samples'),
    ("common", {"common_packages_extra": ["libpq-dev", "build essential"]},
     "common_packages_extra[1] must be a Debian package name such as libpq-dev"),
    ("common", {"common_sysctl_extra": {"net.core.somaxconn": 8192, "swappiness": 1}},
     'common_sysctl_extra (a key) must be a kernel setting such as net.core.somaxconn, got "swappiness"'),
    ("django", {"django_venv_packages": ["gunicorn==27.0.1", "psycopg[binary]>=3.2, <4", "uvicorn[standard]"]}, None),
    ("django", {"django_venv_packages": ["gunicorn 27"]}, "django_venv_packages[0] must be a requirement such as"),
    ("django", {"django_check_deploy_silenced": ["W021"]}, "django_check_deploy_silenced[0] must be a check id"),
    ("django", {"django_check_deploy_silenced": ["security.W021", "oauth2_provider.W001", "fields.E300"]}, None),
    ("nginx", {"nginx_security_headers": {"Content-Security-Policy": "default-src 'self'"}}, None),
    ("nginx", {"nginx_security_headers": {"X-Frame-Options": 'DENY" always; return 200 "x'}},
     'nginx_security_headers["X-Frame-Options"] must be a header value without double quotes'),
    ("nginx", {"nginx_gzip_types": ["text/css", "javascript"]}, "nginx_gzip_types[1] must be a MIME type"),
    ("nginx", {"nginx_tls_protocols": "TLSv1.2,TLSv1.3"}, "nginx_tls_protocols must be TLSv1.2, TLSv1.3 or both"),
    ("nginx", {"nginx_resolvers": ["127.0.0.11", "fd00::1", "[fd00::2]"]}, None),
    ("gunicorn", {"gunicorn_forwarded_allow_ips": "127.0.0.1, ::1,10.0.0.0/8"}, None),
    ("gunicorn", {"gunicorn_forwarded_allow_ips": "lb.example.com"},
     "gunicorn_forwarded_allow_ips must be addresses or networks joined by commas"),
    ("certbot", {"certbot_reload_services": ["nginx", "my app"]},
     "certbot_reload_services[1] must be a systemd unit name"),
    ("postgresql", {"postgresql_settings": {"statement_timeout": "30s", "auto_explain.log_min_duration": "1s"}}, None),
    ("postgresql", {"postgresql_settings": {"statement timeout": "30s"}},
     "postgresql_settings (a key) must be a setting name such as statement_timeout"),
    ("redis", {"redis_cache_maxmemory": "2 GB"},
     'redis_cache_maxmemory must be a size as Redis spells it, without a space: 268435456, 256mb or 2gb, got "2 GB"'),
    ("redis", {"redis_cache_port": 6380, "redis_broker_port": 6380},
     "redis_cache_port and redis_broker_port must differ, both are 6380"),
    ("redis", {"redis_acl_user": "admin", "redis_admin_user": "admin"},
     "redis_acl_user and redis_admin_user must differ"),
    ("redis", {"redis_sentinel_port": 0}, "redis_sentinel_port must be a port from 1 to 65535, got 0"),
    ("redis", {"redis_bind_addresses": []}, "redis_bind_addresses must not be empty"),
    ("redis", {"redis_sentinel_addresses": ["10.0.0.5:26379", "10.0.0.5:26379"]},
     'redis_sentinel_addresses lists "10.0.0.5:26379" more than once'),
    ("redis", {"redis_sentinel_addresses": ["10.0.0.5"]},
     "redis_sentinel_addresses[0] must be an address or host name and a port"),
    ("redis", {"redis_sentinel_addresses": ["[fd00::5]:26379", "fd00::6:26379", "redis1.internal:26379"]}, None),
    ("redis", {"redis_bind_addresses": ["127.0.0.1", "-::1", "10.0.0.5"]}, None),
    ("nginx", {"nginx_client_max_body_size": "25 MB"}, "nginx_client_max_body_size must be a size as nginx spells it"),
    ("nginx", {"nginx_rate_limit_rate": "20/s"},
     "nginx_rate_limit_rate must be a rate as nginx spells it: 10r/s or 600r/m"),
    ("nginx", {"nginx_proxy_read_timeout": "1 minute"}, "nginx_proxy_read_timeout must be a time as nginx spells it"),
    ("nginx", {"nginx_static_url": "/assets"}, "nginx_static_url must be a URL path that starts and ends with '/'"),
    ("nginx", {"nginx_static_url": "/files/", "nginx_media_url": "/files/"},
     "nginx_static_url and nginx_media_url must differ"),
    ("nginx", {"nginx_server_names": ["https://shop.example.com"]},
     'nginx_server_names[0] must be a host name or an IP address, got "https://shop.example.com"'),
    ("nginx", {"nginx_server_names": ["fd00::5"]}, None),  # an address is a server name too
    ("nginx", {"nginx_worker_processes": "0"}, "nginx_worker_processes must be auto or a number of processes"),
    ("celery", {"celery_soft_time_limit": 600, "celery_time_limit": 300},
     "celery_soft_time_limit must be at most celery_time_limit (300), got 600"),
    ("celery", {"celery_concurrency": 0}, "celery_concurrency must be from 1 to 1024, got 0"),
    ("celery", {"celery_queues": ["celery", "celery"]}, 'celery_queues lists "celery" more than once'),
    ("celery", {"celery_app": "demo app"}, "celery_app must be a module, or a module and its Celery app"),
    ("celery", {"celery_app": "demo.celery:app"}, None),
    ("django", {"django_git_version": "--upload-pack=touch /tmp/x"}, "django_git_version must be a branch, tag or"),
    ("django", {"django_git_repo": "-oProxyCommand=x"}, "django_git_repo must be a repository URL or path"),
    ("django", {"django_git_version": "v1.2.3"}, None),
    ("django", {"django_allowed_hosts": ["shop.example.com:443"]}, "django_allowed_hosts[0] must be a host name"),
    ("django", {"django_allowed_hosts": [".example.com", "[fd00::5]", "fd00::5", "10.0.0.5", "*"]}, None),
    ("common", {"common_journald_system_max_use": "1 GB"},
     "common_journald_system_max_use must be a size as journald spells it"),
    ("common", {"common_locale": "en_US.ISO-8859-1"}, "common_locale must be a UTF-8 locale"),
    ("common", {"common_app_user": "Demo User"}, "common_app_user must be a name of lower-case letters"),
    ("certbot", {"certbot_email": "ops at example.com"}, "certbot_email must be an email address"),
    ("certbot", {"certbot_acme_server": "acme.example.com/directory"}, "certbot_acme_server must be a URL"),
    ("django", {"django_secret_key": "django-insecure-" + "x1y2z3" * 10},
     "django_secret_key must be at least 50 characters"),
    ("django", {"django_secret_key": "abcdefghij" * 4}, "(value not shown)"),
    ("django", {"django_keep_releases": 0}, "django_keep_releases must be at least 1, got 0"),
    ("django", {"django_allowed_hosts": ["https://shop.example.com"]}, "django_allowed_hosts[0] must be a host name"),
    ("django", {"django_csrf_trusted_origins": ["shop.example.com"]},
     "django_csrf_trusted_origins[0] must be an origin with its scheme"),
    ("logrotate", {"logrotate_policies": [{"name": "demo app", "paths": ["/var/log/demo/*.log"]}]},
     "logrotate_policies[0].name must be a file name"),
    ("logrotate", {"logrotate_policies": [{"name": "demo", "paths": ["var/log/demo/*.log"], "rotate": -1}]},
     "logrotate_policies[0].paths[0] must be an absolute path"),
    # A name of . or .. would act on the directory of policies, or on /etc itself.
    ("logrotate", {"logrotate_policies_absent": [".."]},
     "logrotate_policies_absent[0] must be a file name of letters, digits, '.', '-' and '_' that does not start"),
    ("logrotate", {"logrotate_policies": [{"name": ".", "paths": ["/var/log/demo/*.log"]}]},
     "logrotate_policies[0].name must be a file name"),
    ("certbot", {"certbot_cert_name": ".."}, "certbot_cert_name must be a file name"),
    ("certbot", {"certbot_webroot": "/var/www/../../etc"}, "without spaces, quotes, or '.' and '..' components"),
    # Directories handed to a service user: never / or a system directory.
    ("common", {"common_app_home": "/"}, "common_app_home must be an absolute directory of its own"),
    ("common", {"common_app_home": "/home/demo"}, None),
    ("celery", {"celery_log_dir": "/var/log"}, "celery_log_dir must be an absolute directory of its own"),
    ("celery", {"celery_state_dir": "/var/lib/demo"}, None),
    ("gunicorn", {"gunicorn_log_dir": "/etc/demo"}, "gunicorn_log_dir must be an absolute directory of its own"),
    ("postgresql", {"postgresql_backup_dir": "/var"}, "postgresql_backup_dir must be an absolute directory"),
    ("redis", {"redis_cache_dir": "/srv/cache/../.."}, "redis_cache_dir must be an absolute directory of its own"),
    ("static", {"static_source_release_link": "/"}, "static_source_release_link must be an absolute directory"),
    ("django", {"django_home": "/usr/local/demo"}, "django_home must be an absolute directory of its own"),
    ("celery", {"celery_time_limit": 600, "celery_stop_timeout": 300},
     "celery_time_limit must be at most celery_stop_timeout (300), got 600"),
    ("nginx", {"nginx_proxy_read_timeout": "1m 30s"}, "nginx_proxy_read_timeout must be a time as nginx spells it"),
    ("nginx", {"nginx_proxy_read_timeout": "1m30s"}, None),
    ("redis", {"redis_cache_maxmemory": "0"}, "redis_cache_maxmemory must be more than 0"),
    ("redis", {"redis_cache_maxmemory": "0mb"}, "redis_cache_maxmemory must be more than 0"),
    ("redis", {"redis_cache_maxmemory": "512mb"}, None),
    ("redis", {"redis_broker_maxmemory": "0"}, None),
    ("django", {"django_timers": [{"name": "x", "command": "x", "on_calendar": "daily", "timeout": "ten minutes"}]},
     "django_timers[0].timeout must be a time span as systemd spells it"),
    ("django", {"django_services": [{"name": "x", "command": "x", "description": "x\nExecStartPre=/bin/true"}]},
     "django_services[0].description must be a value on one line"),
    ("django", {"django_services": [{"name": "x", "command": "x", "stop_timeout": 0}]},
     "django_services[0].stop_timeout must be at least 1, got 0"),
    ("django", {"django_timers": [{"name": "x", "command": "x", "on_calendar": "daily", "timeout": "15min"}]}, None),
    # Free-form settings: one line each, and not the directives the role owns.
    ("redis", {"redis_cache_settings": {"maxmemory-samples": "10\nuser default on nopass +@all"}},
     'redis_cache_settings["maxmemory-samples"] must be a value on one line'),
    ("redis", {"redis_broker_settings": {"port": 6390}}, "redis_broker_settings (a key) must be a directive such as"),
    ("redis", {"redis_cache_settings": {"maxmemory-samples": 10, "lazyfree-lazy-eviction": True}}, None),
    ("common", {"common_sysctl_extra": {"vm.swappiness": "10\nkernel.sysrq = 1"}},
     'common_sysctl_extra["vm.swappiness"] must be a value on one line'),
    ("postgresql", {"postgresql_settings": {"statement_timeout": "30s\nlisten_addresses = '*'"}},
     'postgresql_settings["statement_timeout"] must be a value on one line'),
    ("nginx", {"nginx_hardening_properties": {"ProtectHome": "yes\nExecStartPre=/bin/true"}},
     'nginx_hardening_properties["ProtectHome"] must be a value on one line'),
    ("nginx", {"nginx_tls_protocols": "TLSv1.1 TLSv1.2"}, "nginx_tls_protocols must be TLSv1.2, TLSv1.3 or both"),
    ("nginx", {"nginx_tls_protocols": "TLSv1.2 TLSv1.3"}, None),
    ("nginx", {"nginx_health_location": "/static/", "nginx_static_url": "/static/"},
     'nginx_health_location and nginx_static_url must differ'),
    # Ports from 1 to 65535 and real addresses in every address:port.
    ("gunicorn", {"gunicorn_listen": "10.0.0.5:70000"}, "gunicorn_listen must be a unix socket path"),
    ("gunicorn", {"gunicorn_listen": "10.0.0.300:8000"}, "gunicorn_listen must be a unix socket path"),
    ("gunicorn", {"gunicorn_listen": "app1.internal:8000"}, "gunicorn_listen must be a unix socket path"),
    ("gunicorn", {"gunicorn_listen": "[fd00::5]:8000"}, None),
    ("gunicorn", {"gunicorn_listen": "/run/demo/gunicorn.sock"}, None),
    ("nginx", {"nginx_upstream_servers": ["10.0.0.5:0"]}, "nginx_upstream_servers[0] must be unix:/path/to.sock"),
    ("nginx", {"nginx_upstream_servers": ["app1:99999"]}, "nginx_upstream_servers[0] must be unix:/path/to.sock"),
    ("nginx", {"nginx_upstream_servers": ["unix:/run/demo/gunicorn.sock", "app1:8000", "[::1]:8000"]}, None),
    ("redis", {"redis_sentinel_addresses": ["10.0.0.5:0"]}, "redis_sentinel_addresses[0] must be an address or host"),
    ("redis", {"redis_sentinel_addresses": ["10.0.0.5:26379", "redis2:26379"]}, None),
    # Passwords: the example vaults' values and placeholders at any depth, and what redis.conf splits.
    ("postgresql", {"postgresql_users": [{"name": "app", "password": "changeme"}]},
     "postgresql_users[0].password is a placeholder"),
    ("postgresql", {"postgresql_users": [{"name": "app", "password": "short"}]},
     "postgresql_users[0].password must be a password of at least 12 characters"),
    ("postgresql", {"postgresql_users": [{"name": "app", "password": "a long pass phrase"}]}, None),
    ("postgresql", {"postgresql_replication_password": "tiny"}, "postgresql_replication_password must be a password"),
    ("redis", {"redis_cache_password": "two words are here"}, "redis_cache_password must be at least 12 characters"),
    ("redis", {"redis_broker_password": 'quoted"password1'}, "redis_broker_password must be at least 12 characters"),
    ("certbot", {"certbot_fullchain_link": "/etc/ssl/shop.pem", "certbot_privkey_link": "/etc/ssl/shop.pem"},
     "certbot_fullchain_link and certbot_privkey_link must differ"),
    # PostgreSQL sizes carry their unit; log_temp_files is kB, 0 or -1.
    ("postgresql", {"postgresql_shared_buffers": "128"}, "postgresql_shared_buffers must be a size as PostgreSQL"),
    ("postgresql", {"postgresql_shared_buffers": "128mb"}, "postgresql_shared_buffers must be a size as PostgreSQL"),
    ("postgresql", {"postgresql_shared_buffers": "128MB"}, None),
    ("postgresql", {"postgresql_log_temp_files": -2}, "postgresql_log_temp_files must be at least -1"),
]


@pytest.mark.parametrize("role, values, message", BAD, ids=[f"{row[0]}:{','.join(row[1])}" for row in BAD])
def test_a_bad_value_is_named_with_what_is_expected(role, values, message):
    # Only the rules of the variables given: the others, unset here, would be "empty".
    rules = {name: rule for name, rule in _rules(role).items() if name in values}
    errors = input_errors(rules, values)
    if message is None:
        assert errors == [], errors
    else:
        assert any(message in error for error in errors), errors


def test_the_example_vaults_are_refused_in_every_role_too():
    values = _example_vault_values()
    cache = next(value for label, value in values.items() if label.endswith(":vault_stack_redis_cache_password"))
    errors = input_errors(_rules("redis"), {"redis_cache_password": cache})
    assert any("redis_cache_password is a value the world knows" in error for error in errors), errors
    rules = {"postgresql_users": _rules("postgresql")["postgresql_users"]}
    errors = input_errors(rules, {"postgresql_users": [{"name": "app", "password": cache}]})
    assert errors == [errors[0]] and "postgresql_users[0].password is a value the world knows" in errors[0], errors
    assert all(cache not in error for error in errors)


def test_a_secret_stays_out_of_the_message():
    secret = "abcdefghij" * 4
    errors = input_errors(_rules("django"), {"django_secret_key": secret})
    assert errors and all(secret not in error and "abcdefghij" not in error for error in errors), errors


def test_unset_values_are_left_to_the_role_but_nonempty_is_not():
    assert input_errors({"a": {"port": True}}, {"a": None}) == []
    assert input_errors({"a": {"format": "host"}}, {"a": ""}) == []
    assert input_errors({"a": {"nonempty": True}}, {"a": ""}) == ["a must not be empty"]


def test_unset_values_do_not_differ_from_each_other():
    rules = {"a": {"differ": ["b"]}, "b": {}}
    assert input_errors(rules, {"a": "", "b": ""}) == []
    assert input_errors(rules, {"a": None, "b": None}) == []
    assert input_errors(rules, {"a": "x", "b": "x"}) == ['a and b must differ, both are "x"']


def test_booleans_are_not_numbers():
    assert input_errors({"a": {"min": 0}}, {"a": True}) == ["a must be a number, got True"]


def test_a_malformed_rule_is_an_error_of_the_collection():
    with pytest.raises(AnsibleFilterError, match="unknown keys"):
        input_errors({"a": {"minimum": 1}}, {"a": 1})
    with pytest.raises(AnsibleFilterError, match="unknown format"):
        input_errors({"a": {"format": "size"}}, {"a": "1"})


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_rules_for_its_own_options(role):
    rules, spec = _rules(role), _spec(role)
    assert isinstance(rules, dict) and rules, role
    for name, rule in rules.items():
        assert name in spec, f"{role}: a rule for {name}, which the argument spec does not know"
        for other in list(rule.get("differ") or []) + ([rule["at_most"]] if rule.get("at_most") else []):
            assert other in rules, f"{role}: {name} refers to {other}, which has no rule (its value is not read)"
        nested = ([rule, rule.get("each") or {}, rule.get("keys") or {}, rule.get("values") or {}]
                  + list((rule.get("each") or {}).get("fields", {}).values()))
        for part in nested:
            assert part.get("format") in (None, *FORMATS), f"{role}: {name}: unknown format {part.get('format')}"


@pytest.mark.parametrize("role", ROLES)
def test_every_literal_default_passes_its_rule(role):
    rules, defaults = _rules(role), _defaults(role)
    literal = {name: value for name, value in defaults.items() if name in rules and "{{" not in str(value)}
    assert input_errors({name: rules[name] for name in literal}, literal) == []


@pytest.mark.parametrize("role", ROLES)
def test_the_role_applies_its_rules_before_any_change(role):
    main = (ROOT / "roles" / role / "tasks" / "main.yml").read_text(encoding="utf-8")
    checks = (ROOT / "roles" / role / "tasks" / "checks.yml").read_text(encoding="utf-8")
    assert "meta/input_rules.yml" in checks and "djangoprod.stack.input_errors" in checks, role
    # checks.yml is included before the first task that can change the host, skipped only where
    # the stack's preflight recorded that it ran them on this host.
    tasks = yaml.safe_load(main)
    include = [i for i, task in enumerate(tasks)
               if (task.get("ansible.builtin.include_tasks") or {}).get("file") == "checks.yml"]
    assert len(include) == 1, role
    task = tasks[include[0]]
    assert task["when"] == f"'{role}' not in __djangoprod_checked_roles | default([])", role
    assert "always" in task["tags"] and "always" in task["ansible.builtin.include_tasks"]["apply"]["tags"], role
    changing = [i for i, task in enumerate(tasks) if "ansible.builtin.import_tasks" in task
                and task["ansible.builtin.import_tasks"] != "preflight.yml"]
    assert not changing or include[0] < changing[0], role


def _preflight_tasks():
    """The tasks of the preflight's play (after playbooks/controller.yml, imported first)."""
    plays = yaml.safe_load((ROOT / "playbooks" / "preflight.yml").read_text(encoding="utf-8"))
    return next(play for play in plays if play.get("name") == "Preflight | inventory and stack variables")["tasks"]


def test_the_preflight_records_the_roles_it_checked():
    """The flag the roles read is set by the preflight, after the loop that runs their checks."""
    tasks = _preflight_tasks()
    names = [task["name"] for task in tasks]
    loop = names.index("Preflight | Check each role's own rules on the hosts that run it")
    record = names.index("Preflight | Record which roles' input is checked on this host")
    assert loop < record == len(names) - 1
    assert "__djangoprod_checked_roles" in tasks[record]["ansible.builtin.set_fact"]


def test_the_preflight_resolves_only_the_wirings_own_host_lists():
    """The wiring values the preflight keeps as facts are the wiring's own (__stack_* of
    group_vars/all), hold no secret, and are resolved before the role checks read them."""
    tasks = _preflight_tasks()
    names = [task["name"] for task in tasks]
    resolve = names.index("Preflight | Resolve the wiring's host lists and addresses once")
    assert resolve < names.index("Preflight | Check each role's input on the hosts that run it")
    assert resolve > names.index("Preflight | Gather the network facts of the hosts outside --limit")
    facts = tasks[resolve]["ansible.builtin.set_fact"]
    wiring = {}
    for path in sorted((ROOT / "playbooks" / "group_vars" / "all").glob("*.yml")):
        wiring.update(yaml.safe_load(path.read_text(encoding="utf-8")))
    for name, value in facts.items():
        assert name.startswith("__stack_") and name in wiring, name
        assert value == "{{ " + name + " }}", name
        assert not re.search("password|credential|secret|url", name), name


def _stack_rules():
    return yaml.safe_load((ROOT / "playbooks" / "vars" / "stack_rules.yml").read_text(encoding="utf-8"))


def _example_vault_values():
    from ansible.parsing.vault import VaultLib, VaultSecret
    vault = VaultLib([("default", VaultSecret(b"example-vault-password-change-me"))])
    values = {}
    for path in sorted(ROOT.glob("inventories/*/group_vars/all/vault.yml")):
        data = yaml.safe_load(vault.decrypt(path.read_bytes()).decode("utf-8"))
        values.update({f"{path.parts[-4]}:{name}": value for name, value in data.items()})
    return values


def test_every_secret_of_the_example_inventories_is_refused():
    rules = _stack_rules()
    values = _example_vault_values()
    assert len(values) >= 18, values.keys()
    for label, value in values.items():
        name = label.split(":", 1)[1].removeprefix("vault_")
        assert rules.get(name, {}).get("secret"), f"{name} (from {label}) has no secret rule"
        errors = input_errors({name: rules[name]}, {name: value})
        expected = (f"{name} is a value the world knows (from the example inventories, whose vault password "
                    "is public): make a new one, e.g. with `python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`")
        assert errors == [expected], (label, errors)
        assert all(value not in error for error in errors)


@pytest.mark.parametrize("value", ["changeme", "CHANGE-ME-please", "password", "Passw0rd!", "secret", "mysecret1",
                                   "xxxxxxxx", "12345678", "test", "******"])
def test_placeholders_are_refused_as_secrets(value):
    errors = input_errors({"stack_db_password": {"secret": True}}, {"stack_db_password": value})
    assert errors and "is a placeholder, not a secret" in errors[0], errors
    assert all(f'"{value}"' not in error and f"got {value}" not in error for error in errors)


def test_a_real_secret_and_the_test_secrets_pass():
    rules = {"stack_db_password": {"secret": True}}
    for value in ["test-only-db-password", "ptNSerbDzm4Qw3ZTIsRWL4NsK3d2JwvvX", "correct horse battery staple"]:
        assert input_errors(rules, {"stack_db_password": value}) == [], value


def test_secrets_that_must_differ_are_not_shown():
    rules = _stack_rules()
    names = ["stack_db_password", "stack_redis_cache_password"]
    errors = input_errors({name: rules[name] for name in names}, dict.fromkeys(names, "one-shared-password-x"))
    expected = "stack_db_password and stack_redis_cache_password must differ, both are the same (values not shown)"
    assert errors == [expected], errors


def test_stack_rules_name_stack_variables():
    spec = yaml.safe_load((ROOT / "playbooks" / "vars" / "stack_spec.yml").read_text())["options"]
    for name, rule in _stack_rules().items():
        assert name in spec, name
        for other in rule.get("differ") or []:
            assert other in _stack_rules(), (name, other)
