#!/usr/bin/env bash
# Makes sure what ebsmount's tests and demo need is here: npm packages, a build, and Debian's
# libfuse2, fusermount, mkfs tools (ext4, xfs, btrfs, vfat, exfat, ntfs), gdisk/fdisk, util-linux's
# losetup, ntfs-3g (browse mounts NTFS with it) and The Sleuth Kit (tests read partition files with it); with
# EBSMOUNT_NEED_FIO=1 also fio (bench), with EBSMOUNT_NEED_AWSCLI=1 also awscli (tests).
# Installs them with apt-get when running as root; otherwise stops naming what is missing.
# Usage: ensure-deps.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libfuse.so.2'         || need_pkgs+=(libfuse2)
# fusermount: from fuse3, not fuse: ntfs-3g depends on fuse3, which replaces (Breaks) fuse and
# ships the fusermount that fuse-native calls; libfuse2 (the library) stays alongside.
command -v fusermount >/dev/null || need_pkgs+=(fuse3)
command -v mkfs.ext4 >/dev/null  || need_pkgs+=(e2fsprogs)
command -v mkfs.xfs >/dev/null   || need_pkgs+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need_pkgs+=(btrfs-progs)
command -v sgdisk >/dev/null     || need_pkgs+=(gdisk)
command -v sfdisk >/dev/null     || need_pkgs+=(fdisk)
command -v losetup >/dev/null    || need_pkgs+=(mount)
command -v ntfs-3g >/dev/null    || need_pkgs+=(ntfs-3g)
command -v mkfs.vfat >/dev/null  || need_pkgs+=(dosfstools)
command -v mkfs.exfat >/dev/null || need_pkgs+=(exfatprogs)
command -v fls >/dev/null        || need_pkgs+=(sleuthkit)
command -v getfattr >/dev/null   || need_pkgs+=(attr)        # diff --files: xattrs
if [ "${EBSMOUNT_NEED_FIO:-0}" = 1 ]; then command -v fio >/dev/null || need_pkgs+=(fio); fi
# The tests also drive the local server with the AWS CLI, unmodified.
if [ "${EBSMOUNT_NEED_AWSCLI:-0}" = 1 ]; then command -v aws >/dev/null || need_pkgs+=(awscli); fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-deps: installing Debian packages: ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "ensure-deps: missing Debian packages: ${need_pkgs[*]} (run as root to install them, or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
fi

if [ ! -e /dev/fuse ]; then
  echo "ensure-deps: /dev/fuse is missing: load the fuse kernel module (modprobe fuse) or run the container with --device /dev/fuse" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >/dev/null
fi

if [ "${1:-}" != "--no-build" ]; then
  npm run --silent build
fi
