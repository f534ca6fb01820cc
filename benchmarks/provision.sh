#!/usr/bin/env bash
# Provisioning speed of the small tier on fresh Debian containers, in seconds:
#   floor       one bare `apt-get install` of the packages the stack ends up with + one
#               `pip install` of the demo's requirements (what no tool can beat)
#   converge    first run of playbooks/small.yml on a fresh container
#   rerun       a second, no-change run on the converged container
# Package caches are warmed first, so the three figures compare work, not downloads.
#   benchmarks/provision.sh [13|12]
source "$(dirname "$0")/../scripts/lib/common.sh"
release="${1:-13}"
need_root
DJANGOPROD_RELEASES="$release" bootstrap_all
tool_env
cd "$ROOT"
scripts/build-demo-archive >/dev/null
work="$ROOT/.cache/bench"
mkdir -p "$work"

converge() {  # name
  write_stack_inventory "$work/$1" "$1"
  cat > "$work/$1/inventory/host_vars/$1.yml" <<YAML
---
stack_app_source: archive
stack_app_archive: $ROOT/.cache/demo-app.tar.gz
stack_domains: [demo.example.test]
postgresql_memory_mb: 2048
redis_memory_mb: 2048
gunicorn_memory_mb: 2048
YAML
  ansible-playbook -i "$work/$1/inventory" --vault-password-file "$work/$1/vault-password" \
    playbooks/small.yml > "$work/$1.log" 2>&1 || { tail -n 40 "$work/$1.log"; die "converge of $1 failed"; }
}
seconds() { local s; s=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $s" | bc; }
apt_install bc

log "warming the package caches"
start_stack_container bench-warm "$release"
converge bench-warm
base_pkgs=$(docker run --rm "$IMAGE_PREFIX:$release" apt-mark showmanual | sort)
stack_pkgs=$(docker exec bench-warm apt-mark showmanual | sort | comm -13 <(echo "$base_pkgs") -)
docker rm -f bench-warm >/dev/null

log "floor: apt-get install + pip install on a fresh container"
start_stack_container bench-floor "$release"
docker cp "$ROOT/tests/demo/requirements.txt" bench-floor:/tmp/requirements.txt
floor=$(seconds docker exec bench-floor bash -c "
  set -e
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(echo $stack_pkgs) >/dev/null
  python3 -m venv /tmp/venv
  /tmp/venv/bin/pip install -q -r /tmp/requirements.txt")
docker rm -f bench-floor >/dev/null

log "first converge on a fresh container"
start_stack_container bench-stack "$release"
first=$(seconds converge bench-stack)
log "no-change re-run"
rerun=$(seconds converge bench-stack)
grep -E 'changed=' "$work/bench-stack.log" | tail -n 1
docker rm -f bench-stack >/dev/null

printf '\nsmall tier, Debian %s, %s cores, warm package caches\n' "$release" "$(nproc)"
printf '  %-10s %6.1f s  (%d packages + pip install of tests/demo/requirements.txt)\n' floor "$floor" "$(echo $stack_pkgs | wc -w)"
printf '  %-10s %6.1f s\n' converge "$first" rerun "$rerun"
