#!/usr/bin/env bash
# `npm test`: installs what is missing, builds, and runs every test (unit and end-to-end, real
# FUSE and loop devices) with node's built-in runner. Extra arguments filter test files by name.
set -euo pipefail
cd "$(dirname "$0")/.."
EBSMOUNT_NEED_AWSCLI=1 bash scripts/ensure-deps.sh
if [ "$(id -u)" != 0 ]; then
  echo "test: the end-to-end tests mount filesystems and attach loop devices: run npm test as root" >&2
  exit 1
fi
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ $# -gt 0 ]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$(IFS='|'; echo "$*")")
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "test: no test files found under dist/test${*:+ matching $*} (did the build run?)" >&2
  exit 1
fi
exec node --test --test-concurrency="${TEST_CONCURRENCY:-1}" --test-timeout=600000 "${files[@]}"
