#!/usr/bin/env python3
"""Bounded HTTP load against a service on this host, optionally restarting a unit meanwhile.

Runs inside a test container (standard library only) and sends requests only to a loopback
address (HTTPS through nginx) or to a unix socket on this host (plain HTTP, e.g. gunicorn's).
Every run is bounded twice: at most --max-requests requests and at most --seconds seconds.
Prints one JSON object: requests sent, answered 200, failed, how many requests were in flight
or started while the restart ran and, with --responder, which responders answered before and
after the restart.

    loadcheck.py --host demo.example.test --path /health/ --threads 8 --seconds 8 \
        --restart-after 2 --restart-unit demo.service
    loadcheck.py --unix-socket /run/demo/gunicorn.sock --path '/?sleep=0.02' --max-requests 200 \
        --restart-after-requests 40 --restart-unit demo.service --responder 'pid=(\\d+)'
"""

import argparse
import http.client
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import threading
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP over a unix socket of this host."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="localhost", help="Host header / SNI name")
    parser.add_argument("--address", default="127.0.0.1", help="loopback address to connect to (HTTPS)")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--unix-socket", default="", help="plain HTTP to this unix socket instead")
    parser.add_argument("--path", default="/health/")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="stop sending after this long")
    parser.add_argument("--max-requests", type=int, default=20000, help="stop sending after this many")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="client timeout, longer than any restart window")
    parser.add_argument("--restart-unit", default="")
    parser.add_argument("--restart-after", type=float, default=0.0, help="seconds into the run")
    parser.add_argument("--restart-after-requests", type=int, default=0,
                        help="restart once this many requests have completed (instead of a delay)")
    parser.add_argument("--responder", default="",
                        help="regex whose first group in a 200 body names the answering process")
    args = parser.parse_args()
    if args.unix_socket:
        try:
            is_socket = stat.S_ISSOCK(os.stat(args.unix_socket).st_mode)
        except OSError:
            is_socket = False
        if not is_socket:
            parser.error(f"{args.unix_socket} is not a unix socket on this host")
    elif not (args.address.startswith("127.") or args.address == "::1"):
        parser.error("loadcheck only targets loopback addresses")
    if not (0 < args.max_requests <= 100000 and 0 < args.seconds <= 300 and 0 < args.threads <= 64):
        parser.error("bounds: 1-100000 requests, at most 300 seconds, 1-64 threads")
    return args


def main():
    args = parse_args()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    responder = re.compile(args.responder) if args.responder else None

    def connection():
        if args.unix_socket:
            return UnixHTTPConnection(args.unix_socket, args.timeout)
        return http.client.HTTPSConnection(args.address, args.port, timeout=args.timeout, context=context)

    lock = threading.Lock()
    records = []  # (start, end, status or error text, responder or None)
    budget = [args.max_requests]
    deadline = time.monotonic() + args.seconds

    def worker():
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            start = time.monotonic()
            answered_by = None
            try:
                conn = connection()
                conn.putrequest("GET", args.path, skip_host=True)
                conn.putheader("Host", args.host)
                conn.putheader("Connection", "close")
                conn.endheaders()
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                outcome = response.status
                conn.close()
                if responder and outcome == 200:
                    match = responder.search(body)
                    answered_by = match.group(1) if match else None
            except Exception as exc:  # noqa: BLE001 - every failure counts as a dropped request
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                records.append((start, time.monotonic(), outcome, answered_by))

    threads = [threading.Thread(target=worker) for _unused in range(args.threads)]
    for thread in threads:
        thread.start()

    window = None
    if args.restart_unit:
        if args.restart_after_requests:
            while time.monotonic() < deadline:
                with lock:
                    if len(records) >= args.restart_after_requests:
                        break
                time.sleep(0.005)
        else:
            time.sleep(args.restart_after)
        begin = time.monotonic()
        subprocess.run(["systemctl", "restart", args.restart_unit], check=True)
        window = (begin, time.monotonic())

    for thread in threads:
        thread.join()

    failures = [r for r in records if r[2] != 200]
    result = {
        "sent": len(records),
        "ok": len(records) - len(failures),
        "failed": len(failures),
        "failures": sorted({str(r[2]) for r in failures})[:5],
        "max_latency_s": round(max((r[1] - r[0] for r in records), default=0.0), 3),
    }
    if window:
        result["restart_seconds"] = round(window[1] - window[0], 3)
        result["during_restart"] = sum(1 for r in records if r[0] <= window[1] and r[1] >= window[0])
    if responder:
        # Before: started while the old processes could still answer; after: started once the
        # restart had returned.
        after = window[1] if window else float("inf")
        result["responders_before"] = sorted({r[3] for r in records if r[3] and r[0] < after})
        result["responders_after"] = sorted({r[3] for r in records if r[3] and r[0] >= after})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
