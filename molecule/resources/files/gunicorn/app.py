"""A tiny WSGI app for the gunicorn scenario (installed as /srv/demo/releases/r1/app.py).

Answers "pid=<worker pid> server=<SERVER_SOFTWARE> env=<DEMO_GREETING>"; ?sleep=<seconds> delays
the answer (load tests keep requests in flight across a restart).
"""

import os
import time


def application(environ, start_response):
    params = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    if "sleep" in params:
        time.sleep(float(params["sleep"]))
    body = "pid={} server={} env={}\n".format(
        os.getpid(), environ.get("SERVER_SOFTWARE", ""), os.environ.get("DEMO_GREETING", "")
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
