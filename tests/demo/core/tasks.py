from celery import shared_task

from .models import Heartbeat


@shared_task
def add(x, y):
    return x + y


@shared_task
def record_heartbeat():
    return Heartbeat.objects.create().pk


@shared_task(bind=True)
def where(self, tag=""):
    """The node name of the worker that ran it (celery@<host>), and the tag it was sent with."""
    return {"worker": self.request.hostname, "tag": tag}
