#!/usr/bin/env bash
# Installs what xdplb needs on a Debian machine, idempotently: a second run installs nothing.
set -euo pipefail
source "$(dirname "$0")/lib/as-root.sh"
as_root "$(realpath "$0")" "$@"
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 nftables iptables
  wrk haproxy pkg-config chromium ethtool curl procps util-linux bird2 etcd-server etcd-client systemd)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# bpffs for pinning; the kernel mounts it nowhere by default on this machine.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi

# npm dependencies: only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.xdplb-lock; then
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.xdplb-lock
fi
