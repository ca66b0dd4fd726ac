#!/usr/bin/env bash
# `npm run soak [-- --minutes N] [--seed S]`: the writable path under server faults, kill -9 of the
# mount daemon and of the server at random moments, resumed with `ebsmount commit --journal`, and
# a final byte-for-byte check of the last child snapshot (scripts/soak/main.ts). Not part of
# `npm test`. As root (FUSE mounts). Runs in a fresh work dir under /tmp; whatever happens
# (failure, Ctrl-C, the node process killed), the trap unmounts everything under it, stops every
# process whose command line names it, and deletes it. Figures: stdout and .soak/last.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh --no-build
npm run --silent build >&2
if [ "$(id -u)" != 0 ]; then
  echo "soak: FUSE mounts need root: run 'sudo npm run soak'" >&2
  exit 1
fi
work=$(mktemp -d /tmp/ebsmount-soak.XXXXXX)

cleanup() {
  local p
  # Mounts under the work dir, deepest first.
  awk -v w="$work" '{ p = $5; if (index(p, w "/") == 1) print length(p) "\t" p }' /proc/self/mountinfo |
    sort -rn | cut -f2- | while read -r p; do umount -l "$p" 2>/dev/null || true; done
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$work"; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
node dist/scripts/soak/main.js --work "$work" "$@"
