"""The pg_role_settled filter: a role's SCRAM-SHA-256 verifier (made here the way PostgreSQL
makes it, RFC 5802) and attributes against the password and role_attr_flags asked for."""

import base64
import hashlib
import hmac

import pytest
from ansible.errors import AnsibleFilterError

import postgresql

FLAGS = "LOGIN,NOSUPERUSER,NOCREATEDB,NOCREATEROLE,NOREPLICATION"


def verifier(password, salt=b"0123456789abcdef", iterations=4096):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(hashlib.sha256(client_key).digest()).decode()}:{b64(server_key).decode()}")


def role(password="app-Secret-1", **attributes):
    flags = {"SUPERUSER": False, "CREATEROLE": False, "CREATEDB": False, "INHERIT": True,
             "LOGIN": True, "REPLICATION": False, "BYPASSRLS": False}
    return {"password": verifier(password) if password else None, **flags, **attributes}


def test_a_role_with_its_password_and_attributes_is_settled():
    assert postgresql.pg_role_settled(role(), "app-Secret-1", FLAGS)
    assert postgresql.pg_role_settled(role(REPLICATION=True), "app-Secret-1", "login, replication")


@pytest.mark.parametrize("entry, password, flags", [
    (None, "app-Secret-1", FLAGS),                           # no such role
    (role(), "another-Secret", FLAGS),                       # another password
    (role(password=None), "app-Secret-1", FLAGS),            # no password at all
    (role(password="pässwört"), "pässwört", FLAGS),          # not ASCII: the module decides
    ({**role(), "password": "md5" + "0" * 32}, "app-Secret-1", FLAGS),  # an MD5 hash
    (role(LOGIN=False), "app-Secret-1", FLAGS),              # cannot log in
    (role(SUPERUSER=True), "app-Secret-1", FLAGS),           # a superuser
    (role(), "app-Secret-1", FLAGS + ",CREATEDB"),           # an attribute it lacks
])
def test_anything_else_is_not_settled(entry, password, flags):
    assert not postgresql.pg_role_settled(entry, password, flags)


@pytest.mark.parametrize("entry, flags", [("demo", FLAGS), (role(), "LOGIN,NOTHING"), (role(), ["LOGIN"])])
def test_bad_input_raises(entry, flags):
    with pytest.raises(AnsibleFilterError):
        postgresql.pg_role_settled(entry, "x", flags)
