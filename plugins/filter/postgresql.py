# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_role_settled: whether a PostgreSQL role already has the password and attributes the
postgresql role asks for, read from pg_authid by one probe, so that a run with nothing to change
makes no community.postgresql.postgresql_user call.

Documentation for ansible-doc lives beside this file (pg_role_settled.yml).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_SCRAM = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")
# role_attr_flags words and the pg_authid columns the probe reports them under.
_FLAGS = ("SUPERUSER", "CREATEROLE", "CREATEDB", "INHERIT", "LOGIN", "REPLICATION", "BYPASSRLS")


def _password_matches(verifier, password):
    """The password against a SCRAM-SHA-256 verifier, as PostgreSQL checks it at login. A
    password that is not printable ASCII (SASLprep could change it), an MD5 hash or no password
    at all never match: the module then decides."""
    match = _SCRAM.match(verifier or "")
    if not match or not password or not all(" " <= c <= "~" for c in password):
        return False
    iterations, salt, _stored, server_key = match.groups()
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    expected = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(expected, base64.b64decode(server_key))


def pg_role_settled(role, password, flags):
    """True when `role` (the probe's entry for one role: its SCRAM verifier under `password` and
    each attribute of _FLAGS as a boolean; None when the role does not exist) has this password
    and every attribute `flags` (role_attr_flags: "LOGIN,NOSUPERUSER,...") names."""
    if role is None:
        return False
    if not isinstance(role, Mapping):
        raise AnsibleFilterError(f"pg_role_settled expects the probe's entry of a role, got {role!r}")
    if not isinstance(flags, str):
        raise AnsibleFilterError(f"pg_role_settled: flags must be a string such as 'LOGIN,NOSUPERUSER', got {flags!r}")
    for word in filter(None, (w.strip().upper() for w in flags.split(","))):
        wanted = not word.startswith("NO") or word[2:] not in _FLAGS
        name = word if wanted else word[2:]
        if name not in _FLAGS:
            raise AnsibleFilterError(f"pg_role_settled: unknown role attribute {word!r}")
        if bool(role.get(name)) != wanted:
            return False
    return _password_matches(role.get("password"), password)


class FilterModule:
    def filters(self):
        return {"pg_role_settled": pg_role_settled}
