from django.db import models


class Note(models.Model):
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.text[:50]


class Heartbeat(models.Model):
    """One row per run of the beat-scheduled task core.tasks.record_heartbeat."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return self.created.isoformat()
