#!/usr/bin/env bash
# Replication figures on the fleet of the postgresql_replication scenario (a primary and two
# standbys on Debian 13, synchronous_standby_names = ANY 1 (both), converged by the role):
#   1. pgbench (TPC-B like, scale 10, 4 clients) writes on the primary for SECONDS while each
#      standby's replay lag (pg_stat_replication.replay_lag, and bytes not yet replayed) is sampled
#      every 0.2 s: p50, p99 and max per standby;
#   2. the primary's postmaster is killed (kill -9) and a standby promoted (pg_promote): the time
#      from the kill's return until the standby commits a write.
# Traffic stays inside the scenario's containers. Not a test: figures only.
#   benchmarks/replication.sh [SECONDS]      (default 30; uses the scenario's container names, so
#                                            not while that scenario runs)
source "$(dirname "$0")/../scripts/lib/common.sh"
seconds="${1:-30}"
need_root
bootstrap_all
tool_env
cd "$ROOT" || exit 1
scenario=postgresql_replication
export DJANGOPROD_RELEASE=13
export MOLECULE_EPHEMERAL_DIRECTORY="$ROOT/.cache/molecule/bench-$scenario"
work=$(mktemp -d)
trap 'molecule destroy -s "$scenario" >/dev/null 2>&1; rm -rf "$work"' EXIT

as_postgres() {  # container, psql arguments...
  local container="$1"; shift
  docker exec -u postgres -e PGOPTIONS="${PGOPTIONS:-}" "$container" psql -X -At -v ON_ERROR_STOP=1 "$@"
}

log "fleet: $scenario (create, prepare, converge; log in $work/molecule.log)"
start=$(date +%s)
for action in destroy create prepare converge; do
  molecule "$action" -s "$scenario" >>"$work/molecule.log" 2>&1 || { tail -40 "$work/molecule.log"; die "molecule $action failed"; }
done
log "fleet ready in $(( $(date +%s) - start )) s"

log "pgbench: initialise scale 10"
docker exec -u postgres pg-primary pgbench -q -i -s 10 demo >/dev/null 2>&1 || die "pgbench -i failed"

log "pgbench: ${seconds} s of writes, 4 clients, sampling replay lag every 0.2 s"
docker exec -u postgres pg-primary pgbench -c 4 -j 2 -T "$seconds" -n demo >"$work/pgbench.out" 2>&1 &
bench=$!
sampler_query="SELECT application_name, coalesce(extract(epoch FROM replay_lag) * 1000, 0),
               pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"
while kill -0 "$bench" 2>/dev/null; do
  as_postgres pg-primary -F ' ' -c "$sampler_query" >>"$work/lag.txt" 2>/dev/null || true
  sleep 0.2
done
wait "$bench" || { cat "$work/pgbench.out"; die "pgbench failed"; }
grep -E '^(tps|latency average|number of transactions actually processed)' "$work/pgbench.out"

python3 - "$work/lag.txt" <<'EOF'
import statistics
import sys
from collections import defaultdict

samples = defaultdict(lambda: ([], []))
for line in open(sys.argv[1], encoding="ascii"):
    name, ms, lag_bytes = line.split()
    samples[name][0].append(float(ms))
    samples[name][1].append(float(lag_bytes))


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


print(f"{'standby':<14} {'samples':>7} {'lag p50':>10} {'lag p99':>10} {'lag max':>10} {'bytes p50':>10} {'bytes p99':>10}")
for name, (ms, lag_bytes) in sorted(samples.items()):
    print(f"{name:<14} {len(ms):>7} {pct(ms, 50):>8.1f}ms {pct(ms, 99):>8.1f}ms {max(ms):>8.1f}ms "
          f"{statistics.median(lag_bytes) / 1024:>8.0f}kB {pct(lag_bytes, 99) / 1024:>8.0f}kB")
EOF

log "promotion: kill -9 the primary's postmaster, promote pg-replica-a"
docker exec pg-primary sh -c 'kill -9 "$(head -1 /var/lib/postgresql/17/main/postmaster.pid)"'
t0=$(date +%s.%N)
as_postgres pg-replica-a -c "SELECT pg_promote(true, 60)" >/dev/null
# The standby's drop-in names synchronous standbys that still follow the dead primary: this
# write commits locally.
until PGOPTIONS='-c synchronous_commit=local' as_postgres pg-replica-a -d demo -c "CREATE TABLE IF NOT EXISTS promoted (at timestamptz DEFAULT now());
                                           INSERT INTO promoted DEFAULT VALUES" >/dev/null 2>&1; do
  sleep 0.05
done
t1=$(date +%s.%N)
python3 -c "import sys; print(f'promotion: first write committed on the new primary {float(sys.argv[2]) - float(sys.argv[1]):.2f} s after the kill')" "$t0" "$t1"
printf 'full promotion with repointing (playbooks/promote.yml): see the tier_large scenario log\n'
