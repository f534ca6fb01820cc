"""A tiny Celery app for the celery scenario (installed as /srv/demo/releases/r1/demo.py).

The broker is kombu's filesystem transport and results go to files, so no Redis is needed.
"""

import os
import pathlib
import time

from celery import Celery

BASE = "/var/lib/demo"
app = Celery("demo", broker="filesystem://", backend=f"file://{BASE}/results")
app.conf.broker_transport_options = {
    "data_folder_in": f"{BASE}/broker/queue",
    "data_folder_out": f"{BASE}/broker/queue",
    "control_folder": f"{BASE}/broker/control",
    "processed_folder": f"{BASE}/broker/processed",
    "store_processed": False,
}
app.conf.broker_connection_retry_on_startup = True
app.conf.beat_schedule = {"heartbeat": {"task": "demo.heartbeat", "schedule": 2.0}}


@app.task(name="demo.add")
def add(x, y):
    return x + y


@app.task(name="demo.heartbeat")
def heartbeat():
    with open(f"{BASE}/heartbeat", "a", encoding="utf-8") as handle:
        handle.write(f"{time.time()} {os.environ.get('DEMO_GREETING', '')}\n")


@app.task(name="demo.slow")
def slow(seconds, marker):
    pathlib.Path(f"{marker}.started").write_text(str(os.getpid()))
    time.sleep(seconds)
    pathlib.Path(marker).write_text("done")
    return "slept"
