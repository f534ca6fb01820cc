#!/usr/bin/python3
"""HTTP on a unix socket: 200 and a body naming the request; /big/ is a large text.

A stand-in for gunicorn in the nginx scenario (installed as /usr/local/bin/stub-app). It logs
each request it receives, so tests can prove a request did NOT reach the app, and listens on a
unix socket that nginx's workers (group www-data) can connect to.
"""

import os
import socketserver
from http.server import BaseHTTPRequestHandler

SOCKET = "/run/stub/app.sock"
LOG = "/var/log/stub/requests.log"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} {len(received)}\n")
        if self.path.startswith("/big/"):
            body = "stub app large text response line\n" * 2000
        else:
            body = (f"stub app: {self.command} {self.path} body={len(received)}"
                    f" host={self.headers.get('Host')}"
                    f" proto={self.headers.get('X-Forwarded-Proto')}"
                    f" real_ip={self.headers.get('X-Real-IP')}"
                    f" connection={self.headers.get('Connection')}\n")
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # nginx must replace this with its own header.
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = answer


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    os.umask(0o007)
    Server(SOCKET, Handler).serve_forever()


if __name__ == "__main__":
    main()
