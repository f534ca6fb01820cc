# Copyright: djangoprod.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizing filters: derive service settings from a host's CPU count and memory.

Documentation for ansible-doc lives beside this file (pg_tune.yml, gunicorn_workers.yml,
redis_maxmemory.yml).
"""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError

_STORAGE = {
    # storage: (random_page_cost, effective_io_concurrency)
    "ssd": (1.1, 200),
    "san": (1.1, 300),
    "hdd": (4.0, 2),
}


def _positive_int(value, name, minimum=1):
    """Accept ints and integer-looking strings/floats (facts may arrive templated as text)."""
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{name} must be a whole number, got a boolean ({value!r})")
    try:
        if isinstance(value, str):
            value = value.strip()
            number = float(value) if "." in value else int(value)
        else:
            number = value
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError
            number = int(number)
        if not isinstance(number, int):
            raise ValueError
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise AnsibleFilterError(f"{name} must be at least {minimum}, got {number}")
    return number


def _fraction(value, name):
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{name} must be a number between 0 and 1, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0 < number <= 1:
        raise AnsibleFilterError(f"{name} must be a number between 0 and 1, got {value!r}")
    return number


def _pg_memory(kb):
    """PostgreSQL memory unit text for a size in kB, in the largest exact unit."""
    kb = max(64, int(kb))
    if kb % (1024 * 1024) == 0:
        return f"{kb // (1024 * 1024)}GB"
    if kb % 1024 == 0:
        return f"{kb // 1024}MB"
    return f"{kb}kB"


def pg_tune(memory_mb, cpus=2, max_connections=100, storage="ssd"):
    """PostgreSQL settings for an OLTP web workload (the pgtune 'web' profile)."""
    memory_mb = _positive_int(memory_mb, "memory_mb", minimum=256)
    cpus = _positive_int(cpus, "cpus")
    max_connections = _positive_int(max_connections, "max_connections", minimum=10)
    if storage not in _STORAGE:
        raise AnsibleFilterError(
            f"storage must be one of {', '.join(sorted(_STORAGE))}, got {storage!r}")

    total_kb = memory_mb * 1024
    shared_buffers_kb = (memory_mb // 4) * 1024
    effective_cache_kb = (memory_mb * 3 // 4) * 1024
    maintenance_kb = min((memory_mb // 16) * 1024, 2 * 1024 * 1024)
    # 3% of shared_buffers, at most 16MB (one WAL segment), rounded to whole MB past 14MB.
    wal_buffers_kb = shared_buffers_kb * 3 // 100
    if wal_buffers_kb > 14 * 1024:
        wal_buffers_kb = 16 * 1024
    wal_buffers_kb = max(wal_buffers_kb, 64)

    if cpus >= 4:
        per_gather = min(4, math.ceil(cpus / 2))
        worker_processes = cpus
        parallel_workers = cpus
        maintenance_workers = min(4, math.ceil(cpus / 2))
    else:
        per_gather = 1 if cpus > 1 else 0
        worker_processes = 8
        parallel_workers = cpus
        maintenance_workers = 1 if cpus > 1 else 0

    work_mem_kb = (total_kb - shared_buffers_kb) // ((max_connections + worker_processes) * 3)
    if per_gather > 1:
        work_mem_kb //= per_gather
    work_mem_kb = max(64, work_mem_kb)

    random_page_cost, io_concurrency = _STORAGE[storage]
    return {
        "shared_buffers": _pg_memory(shared_buffers_kb),
        "effective_cache_size": _pg_memory(effective_cache_kb),
        "maintenance_work_mem": _pg_memory(maintenance_kb),
        "work_mem": _pg_memory(work_mem_kb),
        "wal_buffers": _pg_memory(wal_buffers_kb),
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": 0.9,
        "random_page_cost": random_page_cost,
        "effective_io_concurrency": io_concurrency,
        "default_statistics_target": 100,
        "max_worker_processes": worker_processes,
        "max_parallel_workers": parallel_workers,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_maintenance_workers": maintenance_workers,
    }


def gunicorn_workers(cpus, memory_mb=None, per_worker_mb=150, max_workers=None):
    """Gunicorn worker count: 2 * cpus + 1, capped so workers fit in half the memory."""
    cpus = _positive_int(cpus, "cpus")
    workers = 2 * cpus + 1
    if memory_mb is not None and memory_mb != "":
        memory_mb = _positive_int(memory_mb, "memory_mb", minimum=64)
        per_worker_mb = _positive_int(per_worker_mb, "per_worker_mb", minimum=16)
        workers = min(workers, max(1, (memory_mb // 2) // per_worker_mb))
    if max_workers is not None and max_workers != "":
        workers = min(workers, _positive_int(max_workers, "max_workers"))
    return workers


def redis_maxmemory(memory_mb, fraction=0.25, min_mb=64):
    """Redis maxmemory for a cache instance: a fraction of the host's memory, in redis units."""
    memory_mb = _positive_int(memory_mb, "memory_mb", minimum=64)
    fraction = _fraction(fraction, "fraction")
    min_mb = _positive_int(min_mb, "min_mb")
    return f"{max(min_mb, int(memory_mb * fraction))}mb"


class FilterModule:
    """Sizing filters of djangoprod.stack."""

    def filters(self):
        return {
            "pg_tune": pg_tune,
            "gunicorn_workers": gunicorn_workers,
            "redis_maxmemory": redis_maxmemory,
        }
