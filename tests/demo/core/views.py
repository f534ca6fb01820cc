"""JSON endpoints the stack's tests drive: health, readiness, database, Celery, uploads."""
import json
import logging
import os
import uuid

from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from kombu import Connection

from demo import db_router
from demo.celery import app as celery_app

from .models import Heartbeat, Note
from .tasks import add

logger = logging.getLogger(__name__)


def _payload(request):
    """The request's JSON object, or its form fields."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return request.POST


@require_GET
def health(request):
    return JsonResponse(
        {"status": "ok", "server": request.META.get("SERVER_SOFTWARE"), "pid": os.getpid()}
    )


def _database_ok(alias=DEFAULT_DB_ALIAS):
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _cache_ok():
    key, value = f"ready:{uuid.uuid4().hex}", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=10)
        ok = cache.get(key) == value
        cache.delete(key)
        return ok
    except Exception:  # noqa: BLE001
        return False


def _broker_ok():
    if not settings.CELERY_BROKER_URL:
        return False
    try:
        # With Sentinels the transport options name the primary (master_name).
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


@require_GET
def ready(request):
    checks = {"database": _database_ok(), "cache": _cache_ok(), "broker": _broker_ok()}
    ok = all(checks.values())
    # Each read may land on any replica: one that does not answer makes the app not ready.
    # Without replicas the key is left out, so the answer stays what it was.
    replicas = {alias: _database_ok(alias) for alias in db_router.replicas()}
    if replicas:
        checks["replicas"] = replicas
        ok = ok and all(replicas.values())
    return JsonResponse(checks, status=200 if ok else 503)


@csrf_exempt
@require_POST
def notes(request):
    data = _payload(request)
    text = data.get("text") if data is not None else None
    if not isinstance(text, str) or not text:
        return JsonResponse({"error": "text is required"}, status=400)
    note = Note.objects.create(text=text)
    # Read back from the primary: a replica may not have the row yet.
    stored = Note.objects.using(DEFAULT_DB_ALIAS).get(pk=note.pk)
    logger.info("note %s written", stored.pk)
    return JsonResponse({"id": stored.pk, "text": stored.text, "db": note._state.db}, status=201)


@require_GET
def note_detail(request, pk):
    # A plain read: the router picks the database (a replica when there are any).
    note = Note.objects.filter(pk=pk).first()
    if note is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"id": note.pk, "text": note.text, "db": note._state.db})


@csrf_exempt
@require_POST
def task_add(request):
    data = _payload(request)
    try:
        x, y = int(data["x"]), int(data["y"])
    except (TypeError, KeyError, ValueError):
        return JsonResponse({"error": "x and y must be integers"}, status=400)
    result = add.delay(x, y)
    logger.info("task %s sent", result.id)
    return JsonResponse({"task_id": result.id}, status=202)


@require_GET
def task_status(request, task_id):
    if not settings.CELERY_RESULT_BACKEND:
        return JsonResponse({"error": "no result backend configured"}, status=503)
    result = AsyncResult(task_id, app=celery_app)
    value = result.result if result.successful() else None
    if result.failed():
        value = repr(result.result)
    return JsonResponse({"state": result.state, "result": value})


@require_GET
def heartbeats(request):
    last = Heartbeat.objects.order_by("-created").first()
    return JsonResponse(
        {
            "count": Heartbeat.objects.count(),
            "last": last.created.isoformat() if last else None,
        }
    )


@csrf_exempt
@require_POST
def upload(request):
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return JsonResponse({"error": "multipart field 'file' is required"}, status=400)
    try:
        name = default_storage.get_valid_name(os.path.basename(uploaded.name))
    except SuspiciousFileOperation:
        return JsonResponse({"error": "invalid file name"}, status=400)
    name = default_storage.save(f"uploads/{name}", uploaded)
    return JsonResponse({"url": default_storage.url(name), "size": uploaded.size}, status=201)
