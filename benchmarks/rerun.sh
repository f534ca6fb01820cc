#!/usr/bin/env bash
# No-change re-run of the small and the medium tier, each converged by its molecule scenario
# (tier_small: one container; tier_medium: ten hosts, m-outside left alone): after the scenario's
# create, prepare and converge, RUNS more `molecule converge` runs, each of which must report
# changed=0 on every host; the figure is the fastest. Hosts run in parallel, so the medium tier's
# re-run should take about as long as the small tier's (issue: "nothing serialises the fleet
# without a reason"). The CPU column is the busy share of all the machine's cores during the run
# (the controller and the containers share them here): near 100 % means the fleet waits for CPU,
# not for a step that serialises it. The fastest run's log stays in .cache/bench/rerun-<scenario>.log,
# with its time per role (profile_roles). Not a test: figures only, on Debian 13.
#   benchmarks/rerun.sh [RUNS]       (default 2; uses the scenarios' container names, so not while
#                                    those scenarios run)
source "$(dirname "$0")/../scripts/lib/common.sh"
runs="${1:-2}"
need_root
DJANGOPROD_RELEASES=13 bootstrap_all
tool_env
cd "$ROOT" || exit 1
scripts/build-demo-archive >/dev/null
apt_install bc
export DJANGOPROD_RELEASE=13
work=$(mktemp -d)
mkdir -p "$ROOT/.cache/bench"
current=""
trap '[ -n "$current" ] && molecule destroy -s "$current" >/dev/null 2>&1; rm -rf "$work"' EXIT

# Busy share of all the machine's cores (controller and containers alike) between two readings
# of /proc/stat: near 100 % means the run waits for CPU, not for anything serialised.
cpu_ticks() { awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; print busy, busy+$5+$6}' /proc/stat; }
busy_share() {  # "busy total" before, "busy total" after
  echo "$1 $2" | awk '{printf "%.0f", 100 * ($3 - $1) / ($4 - $2)}'
}

declare -A best tasks hosts busy
for scenario in tier_small tier_medium; do
  current=$scenario
  export MOLECULE_EPHEMERAL_DIRECTORY="$ROOT/.cache/molecule/bench-$scenario"
  log "$scenario: create, prepare, converge (log in $work/$scenario.log)"
  for action in destroy create prepare converge; do
    molecule "$action" -s "$scenario" >>"$work/$scenario.log" 2>&1 ||
      { tail -40 "$work/$scenario.log"; die "molecule $action -s $scenario failed"; }
  done
  for run in $(seq 1 "$runs"); do
    start=$(date +%s.%N)
    ticks=$(cpu_ticks)
    molecule converge -s "$scenario" >"$work/$scenario.rerun.log" 2>&1 ||
      { tail -40 "$work/$scenario.rerun.log"; die "re-run $run of $scenario failed"; }
    took=$(echo "$(date +%s.%N) - $start" | bc)
    share=$(busy_share "$ticks" "$(cpu_ticks)")
    recaps=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$scenario.rerun.log" | grep -E '^\s*│?\s*\S+\s+: ok=[0-9]+\s+changed=')
    if echo "$recaps" | grep -vqE 'changed=0\b'; then
      echo "$recaps"; die "re-run $run of $scenario changed something"
    fi
    log "$scenario: re-run $run took ${took} s, CPU ${share} % busy (changed=0 on $(echo "$recaps" | wc -l) hosts)"
    if [ -z "${best[$scenario]:-}" ] || [ "$(echo "$took < ${best[$scenario]}" | bc)" -eq 1 ]; then
      best[$scenario]=$took
      busy[$scenario]=$share
      cp "$work/$scenario.rerun.log" "$ROOT/.cache/bench/rerun-$scenario.log"
    fi
  done
  hosts[$scenario]=$(echo "$recaps" | wc -l)
  tasks[$scenario]=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$scenario.rerun.log" | grep -cE '^\s*│?\s*TASK \[' || true)
  molecule destroy -s "$scenario" >>"$work/$scenario.log" 2>&1 || true
  current=""
done

printf '\nno-change re-run, Debian 13, %s cores, fastest of %s (seconds, molecule converge; CPU busy over all cores)\n' \
  "$(nproc)" "$runs"
for scenario in tier_small tier_medium; do
  printf '  %-12s %2s hosts %4s tasks %8.1f  CPU %3s %%\n' "$scenario" "${hosts[$scenario]}" "${tasks[$scenario]}" \
    "${best[$scenario]}" "${busy[$scenario]}"
done
printf '  medium / small: %s\n' "$(echo "scale=2; ${best[tier_medium]} / ${best[tier_small]}" | bc)"
