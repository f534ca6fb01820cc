#!/usr/bin/env python3
"""Bounded HTTPS load against the stack on this host, optionally restarting a unit meanwhile.

Runs inside a test container (standard library only) and sends requests only to a loopback
address. Prints one JSON object: requests sent, answered 200, failed, and how many requests were
in flight or started while the restart ran.

    loadcheck.py --host demo.example.test --path /health/ --threads 8 --seconds 8 \
        --restart-after 2 --restart-unit demo.service
"""

import argparse
import http.client
import json
import ssl
import subprocess
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True, help="Host header / SNI name")
    parser.add_argument("--address", default="127.0.0.1", help="loopback address to connect to")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--path", default="/health/")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="client timeout, longer than any restart window")
    parser.add_argument("--restart-after", type=float, default=0.0)
    parser.add_argument("--restart-unit", default="")
    args = parser.parse_args()
    if not (args.address.startswith("127.") or args.address == "::1"):
        parser.error("loadcheck only targets loopback addresses")

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    lock = threading.Lock()
    records = []  # (start, end, status or error text)
    budget = [args.max_requests]
    deadline = time.monotonic() + args.seconds

    def worker():
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            start = time.monotonic()
            try:
                conn = http.client.HTTPSConnection(args.address, args.port, timeout=args.timeout,
                                                   context=context)
                conn.putrequest("GET", args.path, skip_host=True)
                conn.putheader("Host", args.host)
                conn.endheaders()
                response = conn.getresponse()
                response.read()
                outcome = response.status
                conn.close()
            except Exception as exc:  # noqa: BLE001 - every failure counts as a dropped request
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                records.append((start, time.monotonic(), outcome))

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()

    window = None
    if args.restart_unit:
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
    print(json.dumps(result))


if __name__ == "__main__":
    main()
