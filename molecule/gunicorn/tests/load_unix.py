"""Bounded load over a unix socket with a restart in the middle (runs inside the container).

usage: python3 load_unix.py SOCKET TOTAL CONCURRENCY RESTART_AFTER UNIT
Prints one JSON line: ok, failed, errors, pids before/after the restart, max latency.
"""
import http.client
import json
import socket
import subprocess
import sys
import threading
import time

SOCK, TOTAL, CONC, RESTART_AFTER, UNIT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(SOCK)


lock = threading.Lock()
state = {"issued": 0, "done": 0, "ok": 0, "failed": 0, "errors": [], "max_latency": 0.0,
         "restart_seconds": None}
pids = {"before": set(), "after": set()}
restarted = threading.Event()


def one_request():
    start = time.monotonic()
    conn = UnixConnection("localhost", timeout=30)
    try:
        conn.request("GET", "/?sleep=0.02", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, body, time.monotonic() - start
    finally:
        conn.close()


def worker():
    while True:
        with lock:
            if state["issued"] >= TOTAL:
                return
            state["issued"] += 1
        phase = "after" if restarted.is_set() else "before"
        try:
            status, body, latency = one_request()
            with lock:
                state["max_latency"] = max(state["max_latency"], latency)
                if status == 200:
                    state["ok"] += 1
                    pids[phase].add(body.split()[0])
                else:
                    state["failed"] += 1
                    state["errors"].append(f"HTTP {status}")
        except Exception as exc:  # noqa: BLE001 - every failure counts
            with lock:
                state["failed"] += 1
                state["errors"].append(repr(exc))
        with lock:
            state["done"] += 1


threads = [threading.Thread(target=worker) for _ in range(CONC)]
for t in threads:
    t.start()
while True:
    with lock:
        if state["done"] >= RESTART_AFTER:
            break
    time.sleep(0.005)
began = time.monotonic()
subprocess.run(["systemctl", "restart", UNIT], check=True)
state["restart_seconds"] = round(time.monotonic() - began, 3)
restarted.set()
for t in threads:
    t.join()
state["max_latency"] = round(state["max_latency"], 3)
state["errors"] = state["errors"][:10]
state["pids_before"] = sorted(pids["before"])
state["pids_after"] = sorted(pids["after"])
print(json.dumps(state))
