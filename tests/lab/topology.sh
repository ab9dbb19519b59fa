# shellcheck shell=bash disable=SC2154
# Shared by the lab scripts (source it after setting prefix, br, cl, v4_vips and v6_vips): the
# helpers every lab script uses and the LAN they all build. A bridge namespace $br (br0), nodes
# n1..nN with eth0 on 192.0.2.I/24 and 2001:db8:1::I/64 and every VIP on lo (the kernel does
# not answer ARP for them: only the speaker does), and a client $cl on 192.0.2.100 and
# 2001:db8:1::100. Everything lives in namespaces named "$prefix-*", which the caller's trap
# removes with lab_teardown.

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "== $*"; }
node_ns() { echo "$prefix-n$1"; }
node_mac() { printf '02:00:00:00:01:%02x' "$1"; }
node_v4() { echo "192.0.2.$1"; }
in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# lab_teardown STATUS NAME: the end of every lab's exit trap, once it has killed its own
# processes: waits for them, removes the lab's namespaces, keeps $work (and shows the speakers'
# last log lines) when STATUS says the lab failed, removes it otherwise; exits with STATUS.
lab_teardown() {
  local status=$1 ns f
  wait 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-"); do ip netns del "$ns"; done
  if [ "$status" -ne 0 ] && [ -d "$work" ]; then
    echo "$2 failed; speaker logs (last lines; all kept in $work):" >&2
    for f in "$work"/n*.log; do echo "--- $f" >&2; tail -n 8 "$f" >&2; done
  else
    rm -rf "$work"
  fi
  exit "$status"
}

make_ns() {
  ip netns add "$1"
  in_ns "$1" ip link set lo up
  in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  # Keep IPv6 addresses across a link flap (the kernel's default drops them, and with them the
  # route back to the client).
  in_ns "$1" sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
}

attach() { # namespace, port name on the bridge, MAC
  ip -n "$br" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$br" link set "$2" master br0 up
  ip -n "$1" link set eth0 address "$3"
  in_ns "$1" sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.keep_addr_on_down=1
  ip -n "$1" link set eth0 up
}

build_lan() { # number of nodes
  make_ns "$br"
  in_ns "$br" ip link add br0 type bridge
  in_ns "$br" ip link set br0 up
  local i ns v
  for i in $(seq 1 "$1"); do
    ns="$(node_ns "$i")"
    make_ns "$ns"
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    attach "$ns" "p$i" "$(node_mac "$i")"
    ip -n "$ns" addr add "$(node_v4 "$i")/24" dev eth0
    ip -n "$ns" addr add "2001:db8:1::$i/64" dev eth0 nodad
    for v in "${v4_vips[@]}"; do ip -n "$ns" addr add "$v/32" dev lo; done
    for v in "${v6_vips[@]}"; do ip -n "$ns" addr add "$v/128" dev lo nodad; done
  done
  make_ns "$cl"
  attach "$cl" pc 02:00:00:00:02:64
  ip -n "$cl" addr add 192.0.2.100/24 dev eth0
  ip -n "$cl" addr add 2001:db8:1::100/64 dev eth0 nodad
}
