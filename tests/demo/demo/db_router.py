"""Database router: reads go to the replicas, writes and migrations to the primary.

settings.DATABASES holds the primary as "default" (DATABASE_URL) and one alias per read replica,
"replica1", "replica2"... (DATABASE_REPLICA_URLS). Enable it with

    DATABASE_ROUTERS = ["demo.db_router.PrimaryReplicaRouter"]

Replicas lag behind the primary: code that reads what it has just written reads from the
primary, with Model.objects.using("default"), or inside use_primary():

    with use_primary():
        ...

    @use_primary()
    def view(request):
        ...
"""

import contextlib
import contextvars
import random

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA_PREFIX = "replica"

_pinned = contextvars.ContextVar("demo_db_router_pinned", default=False)


def replicas():
    """The replica aliases of settings.DATABASES, in order."""
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


@contextlib.contextmanager
def use_primary():
    """Send every read in the block (or the decorated function) to the primary."""
    token = _pinned.set(True)
    try:
        yield
    finally:
        _pinned.reset(token)


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        if _pinned.get():
            return DEFAULT_DB_ALIAS
        # A read that starts from an object (a related manager, a foreign key) stays on the
        # database the object came from: a row just written is followed on the primary.
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return instance._state.db
        aliases = replicas()
        return random.choice(aliases) if aliases else DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replicas hold the primary's data: an object read from one may point to another.
        databases = {DEFAULT_DB_ALIAS, *replicas()}
        if obj1._state.db in databases and obj2._state.db in databases:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas receive the schema through replication.
        return db == DEFAULT_DB_ALIAS
