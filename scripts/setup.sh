#!/usr/bin/env bash
# Installs the Debian packages the tests use. Idempotent: a machine that has them skips apt.
set -euo pipefail
packages=(iproute2 iputils-ping iputils-arping ndisc6 nftables etcd-server rsync openssl curl make tcpdump
  golang-go golang-github-hashicorp-memberlist-dev
  gcc libc6-dev containerd runc umoci containernetworking-plugins iptables conntrack busybox-static
  prometheus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts etcd, containerd and Prometheus as services on install; the tests run their own
  # etcd and containerd, and use only Prometheus's promtool (to lint /metrics).
  systemctl disable --now etcd containerd prometheus >/dev/null 2>&1 || true
fi
