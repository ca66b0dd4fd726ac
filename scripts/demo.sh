#!/usr/bin/env bash
# `npm run demo`: the main job end to end on the embedded default, no AWS account needed.
#   1. start `ebsmount serve` (a local, disk-backed EBS direct API server) on a free port
#   2. build a sample ext4 disk image with mkfs.ext4 and import it as a snapshot
#   3. inspect it (partition table, filesystems) without mounting
#   4. browse it: ebsmount mounts the snapshot and its filesystem read-only; list and read files
#   5. show `ebsmount status`, then clean everything up (also on failure or Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
if [ "$(id -u)" != 0 ]; then
  echo "demo: browsing mounts filesystems and attaches loop devices: run 'sudo npm run demo'" >&2
  exit 1
fi

EBSMOUNT=(node "$PWD/dist/src/cli/main.js")
work=$(mktemp -d /tmp/ebsmount-demo.XXXXXX)
server_pid="" ; fsmnt="$work/evidence"
cleanup() {
  set +e
  mountpoint -q "$fsmnt" 2>/dev/null && "${EBSMOUNT[@]}" unmount "$fsmnt" >/dev/null 2>&1
  mountpoint -q "$fsmnt" 2>/dev/null && umount -l "$fsmnt"
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting the local EBS direct API server (ebsmount serve)"
mkfifo "$work/ready"
"${EBSMOUNT[@]}" serve --data "$work/server-data" --port 0 >"$work/ready" 2>"$work/server.log" &
server_pid=$!
read -r -t 20 line <"$work/ready" || { echo "demo: the server did not start; its log:" >&2; cat "$work/server.log" >&2; exit 1; }
endpoint=$(grep -o 'http://[0-9.:]*' <<<"$line")
echo "server ready at $endpoint"
export AWS_ENDPOINT_URL_EBS="$endpoint" AWS_REGION=us-east-1

step "Building a sample 256 MiB ext4 disk image"
mkdir -p "$work/tree/etc" "$work/tree/var/log" "$work/tree/home/alice"
printf 'demo-host\n' >"$work/tree/etc/hostname"
printf 'Hello from inside an EBS snapshot!\n' >"$work/tree/home/alice/notes.txt"
seq 1 50000 | sed 's/^/log line /' >"$work/tree/var/log/syslog"
head -c 20M /dev/urandom >"$work/tree/home/alice/data.bin"
truncate -s 256M "$work/disk.img"
mkfs.ext4 -q -F -L demo -d "$work/tree" "$work/disk.img"
ls -ls "$work/disk.img"

step "Importing it as a snapshot (ebsmount import)"
snap=$("${EBSMOUNT[@]}" import "$work/disk.img" --description "ebsmount demo")
echo "snapshot: $snap"

step "What is in it, without mounting (ebsmount inspect)"
"${EBSMOUNT[@]}" inspect "$snap"

step "Browsing it read-only, forensic-safe (ebsmount browse $snap $fsmnt)"
mkdir -p "$fsmnt"
"${EBSMOUNT[@]}" browse "$snap" "$fsmnt"
find "$fsmnt" -mindepth 1 -path "$fsmnt/lost+found" -prune -o -print | sed "s|^$fsmnt||" | sort
echo
echo "cat /home/alice/notes.txt:"
cat "$fsmnt/home/alice/notes.txt"
cmp "$fsmnt/home/alice/data.bin" "$work/tree/home/alice/data.bin" && echo "data.bin (20 MiB) is identical to the source"

step "What it cost (ebsmount status)"
"${EBSMOUNT[@]}" status

step "Unmounting (ebsmount unmount $fsmnt: the filesystem, its loop device, the snapshot mount)"
"${EBSMOUNT[@]}" unmount "$fsmnt"
echo "demo finished: everything is unmounted and cleaned up"
