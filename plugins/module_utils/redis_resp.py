# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal Redis client (RESP2 over TCP) for modules that talk to Redis and Sentinel.

Modules run on hosts that need not have the redis Python package; redis-cli would put the
password in a process's arguments or environment. Commands go out as RESP arrays of bulk
strings; replies come back as str, int, None or lists, and an error reply raises RespError.
"""

from __future__ import annotations

import socket


class RespError(Exception):
    """An error reply from the server (such as "ERR No such master with that name")."""


class Connection:
    def __init__(self, host, port, password=None, username=None, timeout=2.0):
        self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._file = self._sock.makefile("rb")
        if password:
            self.command(*(["AUTH", username] if username else ["AUTH"]), password)

    def close(self):
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self):
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the server")
        return line[:-2]

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            return data[:-2].decode()
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _item in range(count)]
        raise ConnectionError(f"unexpected reply from the server: {line[:40]!r}")


def pairs(reply):
    """A flat [key, value, key, value, ...] reply as a dict."""
    return dict(zip(reply[::2], reply[1::2]))
