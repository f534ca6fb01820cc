#!/usr/bin/env bash
# Request throughput of a converged stack container (the demo by default), measured with wrk
# inside the container against its own nginx on loopback (bounded: 2 threads, 15 s per path).
#   benchmarks/throughput.sh [container] [host-header]
source "$(dirname "$0")/../scripts/lib/common.sh"
name="${1:-djangoprod-demo}"
domain="${2:-localhost}"
docker inspect "$name" >/dev/null 2>&1 || die "no container $name (run scripts/demo first)"
docker exec "$name" bash -c 'command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null'
for path in /health/ /static/admin/css/base.css /ready/; do
  printf '\n== GET %s (nginx -> %s)\n' "$path" "$([ "$path" = /static/admin/css/base.css ] && echo 'disk' || echo 'gunicorn -> Django')"
  docker exec "$name" wrk -t2 -c32 -d15s --timeout 10s -H "Host: $domain" "https://127.0.0.1$path" \
    | grep -E 'Requests/sec|Latency|requests in|Non-2xx|Socket errors'
done
