#!/usr/bin/env bash
# Provisioning speed of the small tier on fresh Debian containers, in seconds:
#   floor       one bare `apt-get install` of the packages the stack ends up with + one
#               `pip install` of the demo's requirements (what no tool can beat)
#   converge    first run of playbooks/small.yml on a fresh container
#   rerun       a second, no-change run on the converged container
#   mitogen     the same first converge and re-run with the opt-in fast path (Mitogen's strategy,
#               README "Faster runs") on another fresh container
# Package caches are warmed first, so the three figures compare work, not downloads.
# With a directory of peer roles (default: ../shared/peers beside the checkout, when it exists:
# unmodified geerlingguy nginx, postgresql and redis roles and peer-play.yml), the same three
# figures for the peers on an identical fresh container in the same run, and the ratios.
#   benchmarks/provision.sh [13|12] [PEERS_DIR | --no-peers]
source "$(dirname "$0")/../scripts/lib/common.sh"
release="${1:-13}"
peers="${2:-$ROOT/../shared/peers}"
[ "$peers" = "--no-peers" ] && peers=""
[ -n "$peers" ] && [ ! -f "$peers/peer-play.yml" ] && peers=""
need_root
DJANGOPROD_RELEASES="$release" bootstrap_all
tool_env
cd "$ROOT" || exit 1
scripts/build-demo-archive >/dev/null
work="$ROOT/.cache/bench"
mkdir -p "$work"

converge() {  # name [connection]
  write_stack_inventory "$work/$1" "$1"
  # Mitogen takes over the connection by its short name only.
  [ -n "${2:-}" ] && sed -i "s/ansible_connection: .*/ansible_connection: $2/" "$work/$1/inventory/hosts.yml"
  cat > "$work/$1/inventory/host_vars/$1.yml" <<YAML
---
stack_app_source: archive
stack_app_archive: $ROOT/.cache/demo-app.tar.gz
stack_domains: [demo.example.test]
stack_acme_enabled: false
postgresql_memory_mb: 2048
redis_memory_mb: 2048
gunicorn_memory_mb: 2048
YAML
  ansible-playbook -i "$work/$1/inventory" --vault-password-file "$work/$1/vault-password" \
    playbooks/small.yml > "$work/$1.log" 2>&1 || { tail -n 40 "$work/$1.log"; die "converge of $1 failed"; }
}
# The test image lets dpkg skip its fsyncs (scripts/lib/common.sh); a server does not, so every
# benchmark container puts dpkg's default back, keeping the figures those of a real install.
bench_container() {  # name release
  start_stack_container "$@"
  docker exec "$1" rm -f /etc/dpkg/dpkg.cfg.d/docker-apt-speedup
}
last_recap() { grep -E 'changed=' "$1" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g'; }
seconds() { local s; s=$(date +%s.%N); "$@" || die "failed: $*"; echo "$(date +%s.%N) - $s" | bc; }
apt_install bc

log "warming the package caches"
bench_container bench-warm "$release"
converge bench-warm
base_pkgs=$(docker run --rm "$IMAGE_PREFIX:$release" apt-mark showmanual | sort)
stack_pkgs=$(docker exec bench-warm apt-mark showmanual | sort | comm -13 <(echo "$base_pkgs") - | tr '\n' ' ')
docker rm -f bench-warm >/dev/null

# /var/tmp, not /tmp: Debian 13 mounts a tmpfs on /tmp at boot, which hides what docker cp puts there.
log "floor: apt-get install + pip install on a fresh container"
bench_container bench-floor "$release"
docker cp "$ROOT/tests/demo/requirements.txt" bench-floor:/var/tmp/requirements.txt
floor=$(seconds docker exec bench-floor bash -c "
  set -e
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $stack_pkgs >/dev/null
  python3 -m venv /var/tmp/venv
  /var/tmp/venv/bin/pip install -q -r /var/tmp/requirements.txt")
docker rm -f bench-floor >/dev/null

peer_converge() {  # name: the peer play with the peer roles, as their README asks
  printf 'all:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n' "$1" > "$work/$1.yml"
  # The peers read facts as top-level variables (ansible_os_family...): injected, as by default.
  ANSIBLE_INJECT_FACT_VARS=True ANSIBLE_ROLES_PATH="$peers" ansible-playbook -i "$work/$1.yml" "$peers/peer-play.yml" \
    > "$work/$1.log" 2>&1 || { tail -n 40 "$work/$1.log"; die "converge of $1 failed"; }
}
peer_container() {  # name: a fresh container with the drop-in the peers' README asks for
  bench_container "$1" "$release"
  docker exec "$1" bash -c 'mkdir -p /etc/systemd/system/redis-server.service.d &&
    printf "[Service]\nPrivateUsers=false\n" > /etc/systemd/system/redis-server.service.d/userns.conf'
}

if [ -n "$peers" ]; then
  log "peers ($peers): warming the caches"
  peer_container bench-peer-warm
  peer_converge bench-peer-warm
  peer_pkgs=$(docker exec bench-peer-warm apt-mark showmanual | sort | comm -13 <(echo "$base_pkgs") - | tr '\n' ' ')
  docker rm -f bench-peer-warm >/dev/null
  log "peers: floor (apt-get install of their packages)"
  peer_container bench-peer-floor
  peer_floor=$(seconds docker exec bench-peer-floor bash -c "
    set -e
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $peer_pkgs >/dev/null")
  docker rm -f bench-peer-floor >/dev/null
  log "peers: first converge and no-change re-run"
  peer_container bench-peer
  peer_first=$(seconds peer_converge bench-peer)
  peer_rerun=$(seconds peer_converge bench-peer)
  peer_recap=$(last_recap "$work/bench-peer.log")
  peer_tasks=$(grep -cE '^TASK ' "$work/bench-peer.log" || true)
  docker rm -f bench-peer >/dev/null
fi

log "first converge on a fresh container"
bench_container bench-stack "$release"
first=$(seconds converge bench-stack)
log "no-change re-run"
rerun=$(seconds converge bench-stack)
recap=$(last_recap "$work/bench-stack.log")
tasks=$(grep -cE '^TASK ' "$work/bench-stack.log" || true)
docker rm -f bench-stack >/dev/null

log "the fast path: Mitogen, first converge and no-change re-run on a fresh container"
bench_container bench-mitogen "$release"
mitogen_first=$( (mitogen_env; seconds converge bench-mitogen docker) ) || exit 1
mitogen_rerun=$( (mitogen_env; seconds converge bench-mitogen docker) ) || exit 1
mitogen_recap=$(last_recap "$work/bench-mitogen.log")
docker rm -f bench-mitogen >/dev/null

ratio() { echo "scale=2; $1 / $2" | bc; }
printf '\nsmall tier, Debian %s, %s cores, warm package caches (seconds)\n' "$release" "$(nproc)"
printf '  %-34s %8s %18s %22s\n' "" floor "first converge" "no-change re-run"
printf '  %-34s %8.1f %10.1f (%4sx) %10.1f (%s tasks)\n' "djangoprod.stack small tier" \
  "$floor" "$first" "$(ratio "$first" "$floor")" "$rerun" "$tasks"
printf '    re-run recap: %s\n' "$(echo "$recap" | tr -s ' ')"
printf '  %-34s %8s %10.1f (%4sx) %10.1f\n' "  the same with Mitogen (opt-in)" "" \
  "$mitogen_first" "$(ratio "$mitogen_first" "$floor")" "$mitogen_rerun"
printf '    re-run recap: %s\n' "$(echo "$mitogen_recap" | tr -s ' ')"
if [ -n "$peers" ]; then
  printf '  %-34s %8.1f %10.1f (%4sx) %10.1f (%s tasks)\n' "peers: nginx+postgresql+redis" \
    "$peer_floor" "$peer_first" "$(ratio "$peer_first" "$peer_floor")" "$peer_rerun" "$peer_tasks"
  printf '    re-run recap: %s\n' "$(echo "$peer_recap" | tr -s ' ')"
  printf '  re-run ratio (stack / peers): %s   converge/floor: stack %s, peers %s\n' \
    "$(ratio "$rerun" "$peer_rerun")" "$(ratio "$first" "$floor")" "$(ratio "$peer_first" "$peer_floor")"
else
  printf '  (no peer roles given: floor comparison only)\n'
fi
