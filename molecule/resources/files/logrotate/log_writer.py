#!/usr/bin/python3
"""Write a line every 0.2 s: 'watched' reopens by itself, 'signal' reopens on SIGUSR1.

The logrotate scenario installs it as /usr/local/bin/demo-log-writer:
    demo-log-writer watched|signal PATH
"""

import logging
import logging.handlers
import signal
import sys
import time


def main():
    mode, path = sys.argv[1], sys.argv[2]
    reopen = []
    if mode == "watched":
        handler = logging.handlers.WatchedFileHandler(path)  # Django's handler for app.log
    else:
        handler = logging.FileHandler(path)  # a plain handler that reopens on USR1, like gunicorn
        signal.signal(signal.SIGUSR1, lambda signum, frame: reopen.append(signum))
    log = logging.getLogger("writer")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    n = 0
    while True:
        if reopen:
            reopen.clear()
            handler.setStream(handler._open()).close()
        n += 1
        log.info("line %d", n)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
