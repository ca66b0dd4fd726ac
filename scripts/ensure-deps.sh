#!/usr/bin/env bash
# Makes sure what ebsmount's tests and demo need is here: npm packages, a build, and Debian's
# libfuse2, fuse (fusermount), mkfs tools, gdisk/fdisk and util-linux's losetup; with
# EBSMOUNT_NEED_FIO=1 also fio (bench), with EBSMOUNT_NEED_AWSCLI=1 also awscli (tests).
# Installs them with apt-get when running as root; otherwise stops naming what is missing.
# Usage: ensure-deps.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libfuse.so.2'         || need_pkgs+=(libfuse2)
command -v fusermount >/dev/null || need_pkgs+=(fuse)
command -v mkfs.ext4 >/dev/null  || need_pkgs+=(e2fsprogs)
command -v mkfs.xfs >/dev/null   || need_pkgs+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need_pkgs+=(btrfs-progs)
command -v sgdisk >/dev/null     || need_pkgs+=(gdisk)
command -v sfdisk >/dev/null     || need_pkgs+=(fdisk)
command -v losetup >/dev/null    || need_pkgs+=(mount)
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
