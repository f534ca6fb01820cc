# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""input_errors: check a role's input against the rules its argument spec cannot express
(ranges, formats as each daemon spells them, relations between values).

Each role keeps its rules in meta/input_rules.yml, beside meta/argument_specs.yml; its
tasks/checks.yml applies them, and the stack's preflight runs those checks on every host before
any host changes. Documentation for ansible-doc lives beside this file (input_errors.yml).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible.errors import AnsibleFilterError

# Top-level directories no service directory belongs under, and those whose own children are
# the system's (/var/log, /var/lib, /home/<user> is fine: /home is not listed).
_SYSTEM_TREES = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin",
                 "sys", "tmp", "usr"}
_SYSTEM_PARENTS = {"var", "root"}


def _is_owned_dir(value):
    if not isinstance(value, str) or not re.search(r"^/[^\s'\"\\;]*$", value):
        return False
    parts = [part for part in value.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts) or parts[0] in _SYSTEM_TREES:
        return False
    return len(parts) >= (3 if parts[0] in _SYSTEM_PARENTS else 2)


def _is_endpoint(value):
    """host:port, IPv4:port or IPv6:port (in brackets or not) with a port from 1 to 65535 and a
    real address."""
    found = re.search(r"^(\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.:-]+)):(?P<port>[0-9]{1,5})$", value)
    if not found or not 1 <= int(found["port"]) <= 65535:
        return False
    host = found["v6"] or found["host"]
    if found["v6"] or ":" in host:
        return ":" in host and _is_address(host)
    if re.search(r"^[0-9.]+$", host):
        return _is_address(host)
    return re.search(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$", host) is not None


def _is_address(value):
    try:
        ipaddress.ip_address(str(value).strip("[]"))
        return True
    except ValueError:
        return False


def _is_network(value):
    """An IPv4 or IPv6 network with its prefix length (host bits allowed)."""
    if "/" not in str(value):
        return False
    try:
        ipaddress.ip_network(str(value), strict=False)
        return True
    except ValueError:
        return False


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A dotted module path, optionally with ":object" (gunicorn's and Celery's -A form).
_MODULE_AND_OBJECT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?$"
# format: (regular expression, what is expected). Sizes and times as each daemon reads them.
FORMATS = {
    "name": (r"^[a-z][a-z0-9_-]{0,31}$",
             ("a name of lower-case letters, digits, '-' and '_' that starts with a letter, at most 32 "
              "characters (it names a system user, units and directories)")),
    "python_path": (r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
                    "a dotted Python path such as myproject.settings"),
    "wsgi_app": (_MODULE_AND_OBJECT, "a module and its application such as myproject.wsgi:application"),
    "celery_app": (_MODULE_AND_OBJECT, "a module, or a module and its Celery app, such as demo or demo.celery:app"),
    # git reads an argument that starts with "-" as an option.
    "git_repo": (r"^[^\s-]\S*$", "a repository URL or path without spaces that does not start with '-'"),
    "git_version": (r"^[A-Za-z0-9_][A-Za-z0-9._/+@^~-]*$",
                    "a branch, tag or commit id that does not start with '-' or '.'"),
    # A value written as the rest of a config line (redis.conf, postgresql.conf, sysctl.d, a
    # systemd drop-in): a newline would start a directive of its own. Numbers and booleans pass.
    "one_line": (r"^[^\n\r]*$", "a value on one line (a newline would add a directive of its own)"),
    "absolute_path": (r"^/(?!(.*/)?\.\.?(/|$))[^\s'\"\\;]*$",
                      "an absolute path without spaces, quotes, or '.' and '..' components"),
    # A directory the role creates and hands to a service user: never / or a system directory.
    "owned_dir": (_is_owned_dir,
                  ("an absolute directory of its own, such as /srv/demo or /var/lib/demo (not /, a "
                   "system directory such as /var or /var/log, nothing under /etc, /usr, /run or "
                   "/tmp, and no '.' or '..' components)")),
    # A file in a directory of files (/etc/logrotate.d, /etc/letsencrypt/live): never . or ..
    "file_name": (r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
                  "a file name of letters, digits, '.', '-' and '_' that does not start with '.'"),
    "url_path": (r"^/[A-Za-z0-9._~/-]*/$", "a URL path that starts and ends with '/', such as /static/"),
    "mode": (r"^0?[0-7]{3}$", "an octal mode such as 0660"),
    "redis_size": (r"(?i)^[0-9]+(b|k|kb|m|mb|g|gb)?$",
                   "a size as Redis spells it, without a space: 268435456, 256mb or 2gb"),
    "nginx_size": (r"^[0-9]+[kKmMgG]?$", "a size as nginx spells it, without a space: 512k, 10m or 1g"),
    "nginx_time": (r"^([0-9]+(ms|s|m|h|d|w|M|y)?)+$",
                   "a time as nginx spells it, without a space: 500ms, 60s, 5m, 1h or 1m30s"),
    "nginx_rate": (r"^[0-9]+r/[sm]$", "a rate as nginx spells it: 10r/s or 600r/m"),
    # A bare number counts in a unit of each setting's own (8kB pages for shared_buffers, kB for
    # work_mem, MB for max_wal_size): the unit is required.
    "pg_size": (r"^[0-9]+(B|kB|MB|GB|TB)$",
                ("a size as PostgreSQL spells it, with its case-sensitive unit: 8MB, 128MB or 4GB (a bare "
                 "number counts in a unit of each setting's own)")),
    "journald_size": (r"^[0-9]+[KMGTPE]?$", "a size as journald spells it: 500M or 2G"),
    "systemd_time": (r"^([0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)? ?)+$",
                     "a time span as systemd spells it: 30s, 5min or 1h"),
    "host": (rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$", "a host name or an IP address"),
    "url": (r"^[a-z][a-z0-9+.-]*://\S+$", "a URL such as https://acme.example.com/directory"),
    "debian_package": (r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+:~-]+)?$",
                       "a Debian package name such as libpq-dev (with =version to pin one)"),
    "systemd_unit": (r"^[A-Za-z0-9@._:-]+$", "a systemd unit name such as nginx or nginx.service"),
    "sysctl_key": (r"^[a-z0-9_-]+(\.[A-Za-z0-9_*-]+)+$", "a kernel setting such as net.core.somaxconn"),
    "systemd_directive": (r"^[A-Z][A-Za-z0-9]+$", "a systemd directive such as MemoryDenyWriteExecute"),
    "redis_command": (r"^@?[a-z][a-z0-9_-]*(\|[a-z0-9_-]+)?$", "a command or @category such as flushdb or @dangerous"),
    "endpoint": (_is_endpoint, ("an address or host name and a port from 1 to 65535, such as 10.0.0.5:26379, "
                                "[fd00::5]:26379 or redis1.internal:26379")),
    # A password written into a daemon's own config (redis.conf's requirepass and ACL rules,
    # where a space or a quote splits or ends the value).
    "password": (r"^[^\s'\"\\]{12,}$",
                 "at least 12 characters without spaces, quotes or backslashes (keep it in a vault file)"),
    "upstream": (lambda text: re.search(r"^unix:/[^\s;'\"]+$", text) is not None or _is_endpoint(text),
                 "unix:/path/to.sock, or an address or host name and a port from 1 to 65535 (10.0.0.5:8000)"),
    # What systemd's ListenStream= takes: a socket path, or an address (not a name) and a port.
    "listen": (lambda text: re.search(FORMATS["absolute_path"][0], text) is not None
               or (_is_endpoint(text) and _is_address(text.rsplit(":", 1)[0])),
               ("a unix socket path (/run/app/gunicorn.sock), or an IP address and a port from 1 to "
                "65535 (10.0.0.5:8000, [fd00::5]:8000)")),
    "ip_address": (_is_address, "an IPv4 or IPv6 address such as 10.0.0.5 or fd00::5"),
    "ip_or_network": (lambda text: _is_address(text) or _is_network(text),
                      "an IPv4 or IPv6 address, or a network in CIDR form (10.0.0.5, 10.0.0.0/24, fd00::/64)"),
    # The address column of pg_hba.conf: a network in CIDR form (an address alone would need a
    # netmask column the role does not write), a host name or a domain after ".", or a keyword.
    "pg_hba_address": (lambda text: _is_network(text) or text in ("all", "samehost", "samenet")
                       or (re.search(rf"^\.?{_LABEL}(\.{_LABEL})*$", text) is not None
                           and not re.search(r"^[0-9.]+$", text) and ":" not in text),
                       ("a network in CIDR form (10.0.0.0/24, 10.0.0.5/32, fd00::/64), a host name, "
                        "a domain after a dot (.example.com), all, samehost or samenet")),
    # Django's deploy check (security.W009) rejects a key shorter than 50 characters, with fewer
    # than 5 different characters, or made by startproject for development.
    "django_secret_key": (lambda text: len(text) >= 50 and len(set(text)) >= 5
                          and not text.startswith("django-insecure-"),
                          ("at least 50 characters with at least 5 different ones, not a "
                           "'django-insecure-' development key (Django's deploy check refuses those)")),
}
# SHA-256 of secrets the world knows: every value in the example inventories' vaults
# (inventories/*/group_vars/all/vault.yml, whose password the README gives). Every rule with
# secret: true refuses them, in the stack's rules and in each role's; tests/unit/test_input_rules.py
# fails when an example vault holds a value missing here.
KNOWN_SECRET_SHA256 = frozenset([
    "1890fc503b237071be2e8788dc2752d7571ec359c72c504d8a5efbf3b7920676",
    "205428ea2da782bc658eb67805bd027473d63ca9abb21e2a6f6a70856dab5e8a",
    "25c44d39e585ff7b9ead18319aef60e2fbbc84ba182c929f45e20967b0d21d9d",
    "30d9853589d1714f3369fec9026d316e7f1ca28b79ff15c2e78977f6062d5d22",
    "4c08aac534a5c239f4a8fc2254577a6125eae20380d14137ad8d8392df47bb9c",
    "6629fb085983ee601ed30dd70d41230e2714e43fa601a2ab2a068365520d70d9",
    "6ff185dd6caca6f44f90c0ddca8cdfaf733c0763304d395a3a6f7075db8b3f3b",
    "a7f034337e2616939fe99548a25152cc8ce5ed7badf2d3d4758b5668bbc990b1",
    "ada9debd7af917bb2b6c34bcc2d6bc1dffb8d9df91ef029d261c8f4ac54ceed2",
    "bdca105dfa7a8657512d0653f80d10effc8e69184fc422cecf5afb9cde54b00f",
    "c242b23d2e5cf35b236f2a719c5d90b63793ec7b0d8202b6411a3996b0db6dea",
    "c9ffe74fcb6b1d5b124c5d05df02fe0acf3f9fead1990a1acab74a42b07ee8b7",
    "ca091778e7eff94e1bb0d5beb676c0f4c59094b437cb4d39415686be924a3c0c",
    "ca5bed845067c25f2775a9bac0aeb4960a00665c02716f0b1c3bcfeb065749ba",
    "cfa45cb9f61ef97579a6a286e546278a01498e8186e2544199bc03bcdde9c3f6",
    "d49bbb92adcaf569a54a59f3f8e629abc6d7dae5b21948a980364e98cf509874",
    "dcc1e877d1f5f21fc620aa016dbd49ae8dcf57772411ba2ad5d3578bedf10883",
    "fa9637f00fb05c0926e5256bef16484c5c5c88a7da3d766581ee8be18aeaf083",
])
# Secrets that are placeholders rather than secrets.
PLACEHOLDER = re.compile(r"(?i)^(change[-_ ]?(me|it|this)\b.*|(my|the|your)?[-_ ]?(password|passwd|secret|"
                         r"secret[-_ ]?key|key|token)s?[0-9]*|admin|root|test|demo|example|default|"
                         r"todo|fixme|x+|\*+|0+|1234.*|qwerty.*|letmein|s3cr3t|p[a@]ssw[o0]rd.*)$")
# Formats that numbers and booleans meet as their text.
_SCALAR_FORMATS = {"one_line"}
_KEYS = {"min", "max", "port", "format", "match", "expect", "each", "nonempty", "differ", "at_most",
         "secret", "unique", "fields", "keys", "values"}


def _number(value):
    """The value as an int or float, or None when it is not a number (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
    return None


def _shown(value, secret):
    return "(value not shown)" if secret else f"got {_json(value)}"


def _json(value):
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value) if not isinstance(value, (list, dict)) else str(value)


def _secret_errors(label, value, known):
    """A secret the world knows (its SHA-256 in `known`) or a placeholder: a list of messages."""
    if not isinstance(value, str):
        return []
    advice = "make a new one, e.g. with `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    if hashlib.sha256(value.encode("utf-8")).hexdigest() in known:
        return [(f"{label} is a value the world knows (from the example inventories, whose vault password "
                 f"is public): {advice}")]
    if PLACEHOLDER.match(value.strip()):
        return [f"{label} is a placeholder, not a secret: {advice}"]
    return []


def _value_errors(label, value, rule, secret, known=KNOWN_SECRET_SHA256):
    """What is wrong with one value under one rule (relations aside): a list of messages. A
    secret rule's value (at any depth: a field of a list of users too) is checked against
    `known` and the placeholders, and never shown."""
    secret = secret or bool(rule.get("secret"))
    errors = []
    if rule.get("nonempty") and (value is None or (hasattr(value, "__len__") and len(value) == 0)):
        return [f"{label} must not be empty"]
    if value is None or value == "":  # not set: the role's own defaults and asserts decide
        return errors
    if rule.get("secret"):
        errors += _secret_errors(label, value, known)
    low, high = rule.get("min"), rule.get("max")
    if rule.get("port"):
        low, high = max(low or 1, 1), min(high or 65535, 65535)
    if low is not None or high is not None:
        number = _number(value)
        if number is None:
            errors.append(f"{label} must be a number, {_shown(value, secret)}")
        elif (low is not None and number < low) or (high is not None and number > high):
            if rule.get("port"):
                wanted = "a port from 1 to 65535" if (low, high) == (1, 65535) else f"a port from {low} to {high}"
            elif high is None:
                wanted = f"at least {low}"
            elif low is None:
                wanted = f"at most {high}"
            else:
                wanted = f"from {low} to {high}"
            errors.append(f"{label} must be {wanted}, {_shown(value, secret)}")
    patterns = []
    if rule.get("format"):
        name = rule["format"]
        if name not in FORMATS:
            raise AnsibleFilterError(f"input_errors: {label}: unknown format {name!r} (known: {', '.join(FORMATS)})")
        patterns.append(FORMATS[name])
    if rule.get("match"):
        patterns.append((rule["match"], rule.get("expect") or f"a value matching {rule['match']}"))
    for pattern, expected in patterns:
        text = value if isinstance(value, str) else None
        if rule.get("format") in _SCALAR_FORMATS and isinstance(value, (bool, int, float)):
            text = str(value)
        test = pattern if callable(pattern) else (lambda string, regex=pattern: re.search(regex, string) is not None)
        good = text is not None and test(text)
        if rule.get("format") == "host" and text is not None and _is_address(text):
            good = True
        if not good:
            errors.append(f"{label} must be {expected}, {_shown(value, secret)}")
    if rule.get("unique") and isinstance(value, list):
        seen, twice = set(), []
        for item in value:
            key = _json(item)
            if key in seen and item not in twice:
                twice.append(item)
            seen.add(key)
        if twice:
            errors.append(f"{label} lists {', '.join(_json(item) for item in twice)} more than once")
    if rule.get("fields"):
        if not isinstance(value, dict):
            errors.append(f"{label} must be a mapping, {_shown(value, secret)}")
        else:
            for field, field_rule in rule["fields"].items():
                errors += _value_errors(f"{label}.{field}", value.get(field), field_rule, secret, known)
    if rule.get("keys") or rule.get("values"):
        if not isinstance(value, dict):
            errors.append(f"{label} must be a mapping, {_shown(value, secret)}")
        else:
            for key, item in value.items():
                if rule.get("keys"):
                    errors += _value_errors(f"{label} (a key)", key, rule["keys"], secret, known)
                if rule.get("values"):
                    errors += _value_errors(f"{label}[{_json(key)}]", item, rule["values"], secret, known)
    if rule.get("each"):
        if not isinstance(value, list):
            errors.append(f"{label} must be a list, {_shown(value, secret)}")
        else:
            for index, item in enumerate(value):
                errors += _value_errors(f"{label}[{index}]", item, rule["each"], secret, known)
    return errors


def input_errors(rules, values, known=None):
    """The messages for every value in `values` ({name: value}) that breaks its rule in `rules`
    ({name: rule}); [] when all is well. A name missing from `values` (or None) is skipped unless
    its rule says nonempty. A value under a `secret` rule is never shown, and is refused when it
    is a placeholder or its SHA-256 is in KNOWN_SECRET_SHA256 or `known` (secrets the world knows)."""
    known = KNOWN_SECRET_SHA256 | set(known or [])
    if not isinstance(rules, dict) or not isinstance(values, dict):
        raise AnsibleFilterError("input_errors expects a dict of rules and a dict of values")
    errors = []
    for name, rule in rules.items():
        if not isinstance(rule, dict) or not set(rule) <= _KEYS:
            unknown = sorted(set(rule) - _KEYS) if isinstance(rule, dict) else rule
            raise AnsibleFilterError(f"input_errors: the rule of {name} has unknown keys: {unknown}")
        secret = bool(rule.get("secret"))
        value = values.get(name)
        errors += _value_errors(name, value, rule, secret, known)
        if value is None or value == "":
            continue
        for other in rule.get("differ") or []:
            if values.get(other) not in (None, "") and _json(values[other]) == _json(value):
                errors.append(f"{name} and {other} must differ, both are "
                              + ("the same (values not shown)" if secret else _json(value)))
        ceiling = rule.get("at_most")
        if ceiling and values.get(ceiling) is not None:
            mine, theirs = _number(value), _number(values[ceiling])
            if mine is not None and theirs is not None and mine > theirs:
                errors.append(f"{name} must be at most {ceiling} ({_json(values[ceiling])}), got {_json(value)}")
    return errors


class FilterModule:
    def filters(self):
        return {"input_errors": input_errors}
