"""djangoprod.stack.redis_sentinel and redis_sentinel_info run as Ansible runs them, against a
small in-process server that speaks RESP the way a Sentinel answers the commands they send."""

import json
import os
import pathlib
import socketserver
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = ROOT / "plugins" / "modules"
PASSWORD = "sentinel-secret"


def encode(value):
    if value is None:
        return b"*-1\r\n"
    if isinstance(value, Exception):
        return f"-{value}\r\n".encode()
    if isinstance(value, int):
        return f":{value}\r\n".encode()
    if isinstance(value, list):
        return f"*{len(value)}\r\n".encode() + b"".join(encode(v) for v in value)
    data = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class FakeSentinel(socketserver.ThreadingTCPServer):
    """masters: {name: {"ip", "port", "quorum", ...}}; commands: what it was sent (AUTH hidden)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, masters=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.masters = masters or {}
        self.commands = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def answer(self, args, authed):
        verb = [a.upper() for a in args[:2]]
        if verb[0] == "AUTH":
            return ("OK", True) if args[-1] == PASSWORD else (Exception("WRONGPASS invalid password"), False)
        if not authed:
            return Exception("NOAUTH Authentication required."), False
        self.commands.append(args)
        name = args[2] if len(args) > 2 else None
        if verb == ["SENTINEL", "MASTER"]:
            if name not in self.masters:
                return Exception("ERR No such master with that name"), True
            return [item for key, value in self.masters[name].items() for item in (key, str(value))], True
        if verb == ["SENTINEL", "GET-MASTER-ADDR-BY-NAME"]:
            master = self.masters.get(name)
            return ([master["ip"], str(master["port"])] if master else None), True
        if verb == ["SENTINEL", "MONITOR"]:
            self.masters[name] = {"name": name, "ip": args[3], "port": args[4], "quorum": args[5],
                                  "down-after-milliseconds": 30000, "failover-timeout": 180000,
                                  "parallel-syncs": 1}
            return "OK", True
        if verb == ["SENTINEL", "SET"]:
            for key, value in zip(args[3::2], args[4::2]):
                if key not in ("auth-user", "auth-pass"):
                    self.masters[name][key] = value
            return "OK", True
        if verb == ["SENTINEL", "REMOVE"]:
            self.masters.pop(name)
            return "OK", True
        return Exception("ERR unknown command"), True


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        authed = False
        while line := self.rfile.readline():
            count = int(line[1:])
            args = []
            for _item in range(count):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2].decode())
            reply, authed = self.server.answer(args, authed)
            self.wfile.write(encode(reply))


@pytest.fixture
def collection_path(tmp_path):
    """An ansible_collections tree with this checkout as djangoprod.stack (modules import their
    module_utils from there, as on a host)."""
    base = tmp_path / "collections" / "ansible_collections" / "djangoprod"
    base.mkdir(parents=True)
    (base / "stack").symlink_to(ROOT)
    return tmp_path / "collections"


def run(collection_path, module, check=False, **params):
    args = collection_path.parent / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**params, "_ansible_check_mode": check}}))
    env = {**os.environ, "PYTHONPATH": str(collection_path)}
    proc = subprocess.run([sys.executable, str(MODULES / f"{module}.py"), str(args)], capture_output=True,
                          text=True, check=False, env=env, timeout=60)
    return json.loads(proc.stdout)


def master(name, ip="10.0.0.1", port=6379, quorum=2, **settings):
    return {"name": name, "address": ip, "port": port, "quorum": quorum, **settings}


def test_watches_a_new_primary_with_its_settings_then_changes_nothing(collection_path):
    sentinel = FakeSentinel()
    masters = [master("shop-cache", down_after_milliseconds=2000, failover_timeout=10000,
                      auth_user="sentinel", auth_pass="instance-secret")]
    params = {"port": sentinel.server_address[1], "password": PASSWORD, "masters": masters}
    first = run(collection_path, "redis_sentinel", **params)
    assert first["changed"] is True and first["added"] == ["shop-cache"], first
    assert first["primaries"] == {"shop-cache": "10.0.0.1:6379"}
    watched = sentinel.masters["shop-cache"]
    settings = (watched["quorum"], watched["down-after-milliseconds"], watched["failover-timeout"])
    assert settings == ("2", "2000", "10000")
    sets = [c for c in sentinel.commands if c[:2] == ["SENTINEL", "SET"]]
    assert ["auth-user", "sentinel"] == sets[0][sets[0].index("auth-user"):][:2]
    assert "instance-secret" not in json.dumps(first)
    again = run(collection_path, "redis_sentinel", **params)
    assert again["changed"] is False and again["added"] == [] and again["updated"] == {}, again


def test_keeps_the_primary_the_sentinel_knows_and_corrects_settings(collection_path):
    # After a failover the Sentinel knows the promoted primary: the module's address is older.
    sentinel = FakeSentinel({"shop-broker": {"name": "shop-broker", "ip": "10.0.0.2", "port": 6380, "quorum": 2,
                                             "down-after-milliseconds": 5000, "failover-timeout": 60000,
                                             "parallel-syncs": 1}})
    params = {"port": sentinel.server_address[1], "password": PASSWORD,
              "masters": [master("shop-broker", port=6380, quorum=3)]}
    check = run(collection_path, "redis_sentinel", check=True, **params)
    assert check["changed"] is True and check["updated"] == {"shop-broker": {"quorum": 3}}, check
    assert sentinel.masters["shop-broker"]["quorum"] == 2
    result = run(collection_path, "redis_sentinel", **params)
    assert result["updated"] == {"shop-broker": {"quorum": 3}} and result["added"] == [], result
    assert sentinel.masters["shop-broker"]["ip"] == "10.0.0.2" and sentinel.masters["shop-broker"]["quorum"] == "3"
    assert result["primaries"] == {"shop-broker": "10.0.0.2:6380"}
    assert not [c for c in sentinel.commands if c[:2] == ["SENTINEL", "MONITOR"]]


def test_check_mode_adds_nothing_and_absent_names_are_removed(collection_path):
    sentinel = FakeSentinel({"shop-broker": {"name": "shop-broker", "ip": "10.0.0.2", "port": 6380, "quorum": 2}})
    params = {"port": sentinel.server_address[1], "password": PASSWORD,
              "masters": [master("shop-cache")], "absent": ["shop-broker", "never-watched"]}
    check = run(collection_path, "redis_sentinel", check=True, **params)
    assert check["changed"] is True and check["added"] == ["shop-cache"] and check["removed"] == ["shop-broker"]
    assert list(sentinel.masters) == ["shop-broker"]
    done = run(collection_path, "redis_sentinel", **params)
    assert done["removed"] == ["shop-broker"] and list(sentinel.masters) == ["shop-cache"], done


def test_a_wrong_password_or_no_sentinel_fails_naming_it(collection_path):
    sentinel = FakeSentinel()
    wrong = run(collection_path, "redis_sentinel", port=sentinel.server_address[1], password="wrong", masters=[])
    assert wrong["failed"] is True and "refused the password" in wrong["msg"], wrong
    sentinel.shutdown()
    sentinel.server_close()
    gone = run(collection_path, "redis_sentinel", port=sentinel.server_address[1], password=PASSWORD,
               masters=[], timeout=0.5)
    assert gone["failed"] is True and "cannot reach the Sentinel" in gone["msg"], gone


def test_info_returns_the_answer_most_sentinels_give(collection_path):
    new, old = {"ip": "10.0.0.2", "port": 6379}, {"ip": "10.0.0.1", "port": 6379}
    agreeing = [FakeSentinel({"shop-cache": dict(new)}) for _i in range(2)]
    stale = FakeSentinel({"shop-cache": dict(old)})
    empty = FakeSentinel()
    sentinels = [stale.address, *(s.address for s in agreeing), empty.address, "127.0.0.1:1"]
    result = run(collection_path, "redis_sentinel_info", sentinels=sentinels, password=PASSWORD,
                 names=["shop-cache", "shop-broker"])
    assert result["changed"] is False
    assert result["primaries"] == {"shop-cache": "10.0.0.2:6379", "shop-broker": None}, result
    assert result["answered"] == sentinels[:4]


def test_info_without_any_sentinel_knows_no_primary(collection_path):
    result = run(collection_path, "redis_sentinel_info", sentinels=["127.0.0.1:1"], password=PASSWORD,
                 names=["shop-cache"], timeout=0.5)
    assert result["primaries"] == {"shop-cache": None} and result["answered"] == [], result
