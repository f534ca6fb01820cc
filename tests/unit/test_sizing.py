"""Tables of good and bad input for the sizing filters."""

import pytest
from ansible.errors import AnsibleFilterError

import sizing


@pytest.mark.parametrize(
    "memory_mb, cpus, expected",
    [
        (1024, 1, {"shared_buffers": "256MB", "effective_cache_size": "768MB",
                   "maintenance_work_mem": "64MB", "max_parallel_workers_per_gather": 0}),
        (2048, 2, {"shared_buffers": "512MB", "effective_cache_size": "1536MB",
                   "maintenance_work_mem": "128MB", "wal_buffers": "16MB",
                   "work_mem": "4854kB", "max_worker_processes": 8}),
        (16384, 8, {"shared_buffers": "4GB", "effective_cache_size": "12GB",
                    "maintenance_work_mem": "1GB", "wal_buffers": "16MB",
                    "max_worker_processes": 8, "max_parallel_workers_per_gather": 4,
                    "max_parallel_maintenance_workers": 4}),
        (65536, 16, {"shared_buffers": "16GB", "maintenance_work_mem": "2GB",
                     "max_parallel_workers": 16}),
        ("4096", "4", {"shared_buffers": "1GB", "max_parallel_workers_per_gather": 2}),
    ],
)
def test_pg_tune_values(memory_mb, cpus, expected):
    result = sizing.pg_tune(memory_mb, cpus=cpus)
    for key, value in expected.items():
        assert result[key] == value, key


def test_pg_tune_small_shared_buffers_gives_small_wal_buffers():
    assert sizing.pg_tune(256)["wal_buffers"] == "1966kB"


@pytest.mark.parametrize("storage, rpc, eio", [("ssd", 1.1, 200), ("hdd", 4.0, 2), ("san", 1.1, 300)])
def test_pg_tune_storage(storage, rpc, eio):
    result = sizing.pg_tune(4096, storage=storage)
    assert (result["random_page_cost"], result["effective_io_concurrency"]) == (rpc, eio)


def test_pg_tune_work_mem_shrinks_with_connections():
    few = sizing.pg_tune(8192, cpus=4, max_connections=50)["work_mem"]
    many = sizing.pg_tune(8192, cpus=4, max_connections=500)["work_mem"]
    assert int(few.rstrip("kB")) > int(many.rstrip("kB"))


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((128,), {}, "memory_mb must be at least 256"),
        (("lots",), {}, "memory_mb must be a whole number"),
        ((True,), {}, "memory_mb must be a whole number"),
        ((2048.5,), {}, "memory_mb must be a whole number"),
        ((None,), {}, "memory_mb must be a whole number"),
        ((2048,), {"cpus": 0}, "cpus must be at least 1"),
        ((2048,), {"max_connections": 5}, "max_connections must be at least 10"),
        ((2048,), {"storage": "nvme"}, "storage must be one of hdd, san, ssd"),
    ],
)
def test_pg_tune_rejects(args, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sizing.pg_tune(*args, **kwargs)


@pytest.mark.parametrize(
    "cpus, kwargs, expected",
    [
        (1, {}, 3),
        (2, {}, 5),
        (8, {}, 17),
        ("4", {}, 9),
        (2, {"memory_mb": 24000}, 5),
        (2, {"memory_mb": 512}, 1),
        (4, {"memory_mb": 1024}, 3),
        (4, {"memory_mb": 2048, "per_worker_mb": 100}, 9),
        (16, {"max_workers": 12}, 12),
        (2, {"memory_mb": ""}, 5),
    ],
)
def test_gunicorn_workers(cpus, kwargs, expected):
    assert sizing.gunicorn_workers(cpus, **kwargs) == expected


@pytest.mark.parametrize(
    "cpus, kwargs, message",
    [
        (0, {}, "cpus must be at least 1"),
        ("two", {}, "cpus must be a whole number"),
        (2, {"memory_mb": 32}, "memory_mb must be at least 64"),
        (2, {"memory_mb": 1024, "per_worker_mb": 0}, "per_worker_mb must be at least 16"),
        (2, {"max_workers": 0}, "max_workers must be at least 1"),
    ],
)
def test_gunicorn_workers_rejects(cpus, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sizing.gunicorn_workers(cpus, **kwargs)


@pytest.mark.parametrize(
    "memory_mb, kwargs, expected",
    [
        (2048, {}, "512mb"),
        (24000, {}, "6000mb"),
        (128, {}, "64mb"),
        (4096, {"fraction": 0.5}, "2048mb"),
        (4096, {"fraction": "0.1"}, "409mb"),
        (1024, {"fraction": 0.01, "min_mb": 100}, "100mb"),
    ],
)
def test_redis_maxmemory(memory_mb, kwargs, expected):
    assert sizing.redis_maxmemory(memory_mb, **kwargs) == expected


@pytest.mark.parametrize(
    "memory_mb, kwargs, message",
    [
        (32, {}, "memory_mb must be at least 64"),
        (2048, {"fraction": 0}, "fraction must be a number between 0 and 1"),
        (2048, {"fraction": 1.5}, "fraction must be a number between 0 and 1"),
        (2048, {"fraction": "half"}, "fraction must be a number between 0 and 1"),
        (2048, {"min_mb": -1}, "min_mb must be at least 1"),
    ],
)
def test_redis_maxmemory_rejects(memory_mb, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sizing.redis_maxmemory(memory_mb, **kwargs)


def test_filters_are_registered():
    assert set(sizing.FilterModule().filters()) == {"pg_tune", "gunicorn_workers", "redis_maxmemory"}
