"""manage.py stamp LABEL [--every SECONDS]: append "LABEL release=<project dir> pid=<pid> at=<time>"
to LOG_DIR/stamps.log, once or every SECONDS until stopped (a long-running command)."""
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Append a line naming the release to LOG_DIR/stamps.log, once or in a loop."

    def add_arguments(self, parser):
        parser.add_argument("label")
        parser.add_argument("--every", type=float, default=0.0)

    def handle(self, *args, label, every, **options):
        path = Path(os.environ.get("LOG_DIR") or settings.BASE_DIR) / "stamps.log"
        while True:
            with path.open("a", encoding="utf-8") as stamps:
                stamps.write(f"{label} release={settings.BASE_DIR} pid={os.getpid()} at={time.time():.3f}\n")
            self.stdout.write(f"stamped {label}")
            if every <= 0:
                return
            time.sleep(every)
