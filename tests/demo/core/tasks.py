from celery import shared_task

from .models import Heartbeat


@shared_task
def add(x, y):
    return x + y


@shared_task
def record_heartbeat():
    return Heartbeat.objects.create().pk
