#!/usr/bin/env bash
# `npm run bench`: ebsmount's performance benchmark, unattended, on a fresh clone (as root: it drops
# the page cache, mounts FUSE and loop devices).
#   1. ensure dependencies (with fio: EBSMOUNT_NEED_FIO=1) and build
#   2. run dist/scripts/bench/main.js in a fresh work dir under /tmp
#   3. whatever happens (failure, Ctrl-C, the node process killed), the trap unmounts everything
#      under the work dir, detaches loop devices backed by files there, stops every process it
#      recorded or whose argv names the work dir, and deletes the work dir.
# Knobs: BENCH_SIZE_MIB (default 2048), BENCH_QUICK=1 (small smoke run), BENCH_OUT, BENCH_CPU_PROF=1
# (see scripts/bench/settings.ts). Outputs: docs/bench/{results.json,results.md,throughput.svg}, and
# for the full default run, README.md's Performance section (between the bench markers).
set -euo pipefail
cd "$(dirname "$0")/.."
EBSMOUNT_NEED_FIO=1 bash scripts/ensure-deps.sh --no-build
# tsc emits JavaScript even when it reports type errors: measure what was built, but say so.
if ! npm run --silent build >&2; then
  echo "bench: WARNING: the build reported type errors (above); benchmarking the JavaScript tsc emitted anyway" >&2
fi
for f in dist/src/cli/main.js dist/scripts/bench/main.js dist/scripts/bench/memfuse.js; do
  [ -f "$f" ] || { echo "bench: $f was not built" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
  echo "bench: dropping the page cache and mounting need root: run 'sudo npm run bench'" >&2
  exit 1
fi
[ -w /proc/sys/vm/drop_caches ] || { echo "bench: /proc/sys/vm/drop_caches is not writable here" >&2; exit 1; }

work=$(mktemp -d /tmp/ebsmount-bench.XXXXXX)
bench_pid=""

# Mount points at or under $work, deepest first (octal escapes of /proc/self/mountinfo decoded).
mounts_under_work() {
  awk -v w="$work" '{ p = $5; gsub(/\\040/, " ", p); if (p == w || index(p, w "/") == 1) print length(p) "\t" p }' /proc/self/mountinfo |
    sort -rn | cut -f2-
}

# Pids whose command line names the work dir (everything the bench starts does), except ours.
pids_naming_work() {
  local d
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    { tr '\0' '\n' <"$d/cmdline"; } 2>/dev/null | grep -qF "$work" && echo "${d#/proc/}"
  done
  return 0
}

# Pids recorded by the bench ("PID START" lines) that still run with the same start time.
recorded_pids_alive() {
  local pid start now
  [ -f "$work/pids" ] || return 0
  while read -r pid start; do
    now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
    [ -n "$now" ] && [ "$now" = "$start" ] && echo "$pid"
  done <"$work/pids"
  return 0
}

cleanup() {
  local rc=$? m dev pid sig
  set +e
  trap - EXIT INT TERM
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$bench_pid" 2>/dev/null
  fi
  while read -r m; do
    [ -n "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done < <(mounts_under_work)
  while read -r dev; do
    [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
  done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$work/" 'index($2, w) == 1 { print $1 }')
  for sig in TERM KILL; do
    for pid in $( { recorded_pids_alive; pids_naming_work; } | sort -u); do
      kill "-$sig" "$pid" 2>/dev/null
    done
    [ "$sig" = TERM ] && sleep 1
  done
  while read -r m; do [ -n "$m" ] && umount -l "$m" 2>/dev/null; done < <(mounts_under_work)
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
BENCH_WORK="$work" node dist/scripts/bench/main.js "$@" &
bench_pid=$!
set +e
wait "$bench_pid"
status=$?
set -e
bench_pid=""
echo "bench: finished in $(( $(date +%s) - start )) s (exit $status)" >&2
exit "$status"
