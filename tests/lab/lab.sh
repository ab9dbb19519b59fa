#!/usr/bin/env bash
# swimlb speaker lab: real speakers in network namespaces, checked from a client namespace
# with the kernel's own ARP/NDP and Debian's arping, ndisc6 and ping.
#
# Topology (all namespaces created here, named with a per-run prefix, removed on exit):
#   <p>-br: bridge br0 with one port per node and one for the client
#   <p>-n1 … <p>-nK: eth0 192.0.2.<i>/24, 2001:db8:1::<i>/64, MAC 02:00:00:00:01:<i>;
#                    every VIP on lo (so whichever node owns a VIP answers pings for it);
#                    arp_ignore=1 so the kernel itself never answers ARP for the VIPs
#   <p>-cl:          the client, eth0 192.0.2.100/24, 2001:db8:1::100/64
# Documentation addresses only, no default route, nothing outside the lab namespaces touched.
#
# A crashed node is simulated by pulling its cable (its port on the bridge goes down) and
# kill -9 of its speaker at the same moment: without the first, its kernel would keep answering
# pings for the VIPs. A drained node gets SIGTERM; its cable is pulled the moment the speaker
# has exited, so a client still sending to it loses pings.
#
# A cut is the cable pulled while the speaker keeps running (3 s and 8 s), then put back: the
# healthy members must not be declared down or renew their identities, no VIP whose owner still
# had its cable may move, and after the heal every speaker must agree on every VIP's owner and
# the client's neighbour entries must point at the owners within 1 s.
#
# Beside the speakers, every node runs two hashicorp/memberlist members (our probe in
# tests/lab/memberlist-probe, on Debian's memberlist 0.2.2): one with DefaultLANConfig (what
# MetalLB runs), one with swimlb's `fast` timings. They are crashed and cut with the node, and
# their down-detection is reported next to swimlb's for the same trials.
#
# Usage: tests/lab/lab.sh [--full] [--nodes K] [--trials N] [--cut-trials N] [--loss-seconds S]
#                         [--bin PATH] [--enforce-targets]
#   default (CI): 5 nodes, 6 kill trials per address family, 4 drain trials, 2 cut trials of
#   each length, 60 s loss check.
#   --full: 20 trials of each kind (the figures quoted in the README).
# Fails on broken behaviour: a VIP resolving to a MAC other than its owner's, a VIP with no or
# two owners, no failover within the bound, a false failover under loss, a config reload that
# breaks the speaker, VIPs not back with their owners after a heal, no agreement or a client
# entry still wrong 4 s after a heal. Timing targets and the cut targets (nothing healthy
# declared down, renewed or taken over; agreement and client entries right within 1 s of a heal)
# are reported; --enforce-targets makes misses fail too.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

nodes=5
trials=6
drain_trials=4
cut_trials=2
cut_lengths=(3 8)
pause_lengths=(0.5)
# The gossip partition: this many nodes (a minority) for this long.
partition_size=2
partition_seconds=6
# Seconds watched after a heal: long enough to see a wrong neighbour entry outlive the 1 s target.
heal_watch=4
# Which cut targets fail the lab without --enforce-targets (1) or are reported only (0).
# - trust (no healthy member Down or Renewed, no spurious takeover): enforced;
# - after the heal (agreement and the client's entries within 1 s): reported only, because the
#   cut node renews its identity up to about 1 s after the heal (agreement took 1,053 ms in 1 of
#   20 cuts of a --full run); turn it to 1 once that is reliably faster.
# Whatever these say, the lab fails when the VIPs are not back with their owners, agreement is
# not reached or a client entry is still wrong at the end of the watch after a heal.
cut_heal_enforced=0
cut_trust_enforced=1
loss_seconds=60
bin=""
enforce=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) trials=20; drain_trials=20; cut_trials=10; shift ;;
    --nodes) nodes="$2"; shift 2 ;;
    --trials) trials="$2"; drain_trials="$2"; shift 2 ;;
    --cut-trials) cut_trials="$2"; shift 2 ;;
    --loss-seconds) loss_seconds="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --enforce-targets) enforce=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "the lab needs root (network namespaces, raw sockets)" >&2; exit 2; }
for tool in ip arping ndisc6 ping nft curl awk tcpdump go; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 2; }
done
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release -q -p swimlb-speaker)
  bin="$repo/target/release/swimlb-speaker"
fi
# The memberlist probe, built in GOPATH mode against Debian's packages (no module proxy) and
# cached outside the repository by the hash of its source and the Go version.
probe_src="$here/memberlist-probe"
probe_key="$(cat "$probe_src"/*.go <(go version) | sha256sum | cut -c1-16)"
probe_dir="${SWIMLB_PROBE_CACHE:-/var/cache/swimlb/memberlist-probe-$probe_key}"
probe_bin="$probe_dir/memberlist-probe"
if [ ! -x "$probe_bin" ]; then
  mkdir -p "$probe_dir"
  (cd "$probe_src" && GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= \
    GOCACHE="$probe_dir/gocache" go build -o "$probe_bin.tmp" .) ||
    { echo "cannot build the memberlist probe (run scripts/setup.sh)" >&2; exit 2; }
  mv "$probe_bin.tmp" "$probe_bin"
  rm -rf "$probe_dir/gocache"
fi

prefix="swlab$$"
work="$(mktemp -d /tmp/swimlb-lab.XXXXXX)"
br="$prefix-br"
cl="$prefix-cl"
declare -A pid=()
declare -A probe_pid=()   # "<timings> <node>" → pid of that node's memberlist probe
declare -A probe_name=()  # "<timings> <node>" → the probe's member name (new at every start)
probe_starts=0
ping_pid=""
grace_ms=1500

cleanup() {
  local rc=$?
  set +e
  [ -n "$ping_pid" ] && kill "$ping_pid" 2>/dev/null
  for i in "${!pid[@]}"; do kill -9 "${pid[$i]}" 2>/dev/null; done
  for k in "${!probe_pid[@]}"; do kill -9 "${probe_pid[$k]}" 2>/dev/null; done
  for p in ${client_pings:-}; do kill "$p" 2>/dev/null; done
  lab_teardown "$rc" "lab"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/lab/topology.sh disable=SC1091
source "$here/topology.sh"
now() { echo "$EPOCHREALTIME"; }

# ---------------------------------------------------------------- topology
v4_vips=(); for i in $(seq 200 219); do v4_vips+=("192.0.2.$i"); done
v6_vips=(); for i in $(seq 200 209); do v6_vips+=("2001:db8:1::$(printf '%x' "$i")"); done

note "topology: $nodes nodes, prefix $prefix"
build_lan "$nodes"

# ---------------------------------------------------------------- speakers
printf '0 %s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$work/key"

write_config() { # node index, file with VIP lines
  local i="$1" vips="$2" peers=""
  for j in $(seq 1 "$nodes"); do
    [ "$j" = "$i" ] || peers="$peers$(node_v4 "$j"):7946, "
  done
  cat >"$work/n$i.yaml" <<EOF
node_name: n$i
gossip:
  bind: $(node_v4 "$i"):7946
  peers: [${peers%, }]
  key_file: $work/key
  preset: fast
interfaces: [eth0]
metrics_address: $(node_v4 "$i"):7472
drain_grace_ms: $grace_ms
vips:
EOF
  sed 's/^/  - address: /' "$vips" >>"$work/n$i.yaml"
}
printf '%s\n' "${v4_vips[@]}" "${v6_vips[@]}" >"$work/vips-lab"

http() { # node index, path
  in_ns "$(node_ns "$1")" curl -fsS --max-time 2 "http://$(node_v4 "$1"):7472$2"
}

start_speaker() {
  local i="$1"
  ip netns exec "$(node_ns "$i")" "$bin" --config "$work/n$i.yaml" --log info >>"$work/n$i.log" 2>&1 &
  pid[$i]=$!
}

wait_ready() { # node index; bounded
  for _ in $(seq 1 100); do
    http "$1" /readyz >/dev/null 2>&1 && return 0
    kill -0 "${pid[$1]}" 2>/dev/null || fail "speaker n$1 exited: $(tail -n 5 "$work/n$1.log")"
    sleep 0.1
  done
  fail "speaker n$1 not ready within 10 s"
}

for i in $(seq 1 "$nodes"); do write_config "$i" "$work/vips-lab"; start_speaker "$i"; done
for i in $(seq 1 "$nodes"); do wait_ready "$i"; done
# ---------------------------------------------------------------- memberlist probes
# Two memberlist members per node beside the speaker, on their own ports, keyless. Every start
# gets a new member name, so a restarted probe is a new member and its predecessor is still
# detected dead by the others (memberlist would otherwise let it refute the suspicion).
probe_timings=(lan fast)
probe_port() { case "$1" in lan) echo 7950 ;; fast) echo 7951 ;; esac; }
start_probes() { # node index
  local i="$1" t j peers
  for t in "${probe_timings[@]}"; do
    peers=""
    for j in $(seq 1 "$nodes"); do
      [ "$j" = "$i" ] || peers="$peers,$(node_v4 "$j"):$(probe_port "$t")"
    done
    probe_starts=$((probe_starts + 1))
    probe_name["$t $i"]="n$i.$probe_starts"
    # Not through in_ns: a backgrounded function would leave $! the pid of a subshell.
    ip netns exec "$(node_ns "$i")" "$probe_bin" -name "n$i.$probe_starts" -bind "$(node_v4 "$i")" \
      -port "$(probe_port "$t")" -join "${peers#,}" -timings "$t" -lifetime 3600s \
      >>"$work/probe-$t-n$i.log" 2>&1 &
    probe_pid["$t $i"]=$!
  done
}
kill_probes() { # node index; kill -9, as its speaker
  local t
  for t in "${probe_timings[@]}"; do
    kill -9 "${probe_pid[$t $1]}" 2>/dev/null || true
    wait "${probe_pid[$t $1]}" 2>/dev/null || true
    unset "probe_pid[$t $1]"
  done
}
# Waits until every probe of node $1 knows every other node's current probe; bounded.
wait_probes_joined() {
  local t j missing=""
  for _ in $(seq 1 100); do
    missing=""
    for t in "${probe_timings[@]}"; do
      for j in $(seq 1 "$nodes"); do
        grep -q " join ${probe_name[$t $j]}\$" "$work/probe-$t-n$1.log" 2>/dev/null ||
          missing="$missing $t:${probe_name[$t $j]}"
      done
    done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  fail "memberlist probes of n$1 do not know$missing within 10 s"
}
# Waits until, in every probe's view, every node's current probe is live again (after a cut
# memberlist needs its rejoin); bounded, and only noted when it times out: it is the anchor, not
# the system under test.
wait_probes_whole() {
  local t j k split=""
  for _ in $(seq 1 50); do
    split=""
    for t in "${probe_timings[@]}"; do
      for j in $(seq 1 "$nodes"); do
        for k in $(seq 1 "$nodes"); do
          [ "$j" = "$k" ] && continue
          [ "$(awk -v n="${probe_name[$t $k]}" '$3 == n { last = $2 } END { print last }' "$work/probe-$t-n$j.log")" != dead ] ||
            split="$split $t:n$j-sees-${probe_name[$t $k]}-dead"
        done
      done
    done
    [ -z "$split" ] && return 0
    sleep 0.1
  done
  echo "   note: memberlist not whole again within 5 s:$split"
}
# probe_detection TIMINGS VICTIM NAME T0 T_END: ms from T0 to the first "dead NAME" logged by
# another node's probe within [T0, T_END], or "none".
probe_detection() {
  local j files=()
  for j in $(seq 1 "$nodes"); do [ "$j" = "$2" ] || files+=("$work/probe-$1-n$j.log"); done
  cat "${files[@]}" | awk -v n="$3" -v t0="$4" -v te="$5" '
    $2 == "dead" && $3 == n && $1 >= t0 && $1 <= te { if (!m || $1 < m) m = $1 }
    END { if (m) printf "%.0f\n", (m - t0) * 1000; else print "none" }'
}

# Speaker log lines written since log_marks was taken: attribution of gossip events per trial.
log_marks() { for i in $(seq 1 "$nodes"); do printf '%s ' "$(wc -l <"$work/n$i.log")"; done; }
log_since() { # marks, node index
  local marks=($1)
  tail -n +"$(( ${marks[$(( $2 - 1 ))]} + 1 ))" "$work/n$2.log"
}
# swimlb_detection MARKS VICTIM T0: ms from T0 to the first "member down" of nVICTIM logged by
# another speaker since MARKS, or "none". Log times are RFC 3339 UTC.
swimlb_detection() {
  local j
  for j in $(seq 1 "$nodes"); do
    [ "$j" = "$2" ] || log_since "$1" "$j" | grep -F "member down member=n$2@" || true
  done | TZ=UTC awk -v t0="$3" '
    { split($1, a, /[-T:Z]/); ts = mktime(a[1] " " a[2] " " a[3] " " a[4] " " a[5] " " int(a[6])) + a[6] - int(a[6])
      if (ts >= t0 && (!m || ts < m)) m = ts }
    END { if (m) printf "%.0f\n", (m - t0) * 1000; else print "none" }'
}

if [ -n "${LAB_HOLD:-}" ]; then # debugging: keep the lab up for a look from another shell
  echo "lab up: namespaces $prefix-*, work dir $work; holding for $LAB_HOLD s"
  sleep "$LAB_HOLD"
fi

# owners_of VIP → node indexes claiming it (from each speaker's /vips)
owners_of() {
  local vip="$1" out=""
  for i in $(seq 1 "$nodes"); do
    [ -n "${pid[$i]:-}" ] || continue
    if http "$i" /vips 2>/dev/null | awk -v v="$vip" '$1 == v { found = 1 } END { exit !found }'; then
      out="$out $i"
    fi
  done
  echo "$out"
}

# claims → "VIP node" lines from every running speaker's /vips.
claims() {
  for i in $(seq 1 "$nodes"); do
    [ -n "${pid[$i]:-}" ] || continue
    # A paused speaker may not answer in time: it claims nothing then (it answers no ARP either).
    { http "$i" /vips 2>/dev/null || true; } | awk -v n="$i" '{ print $1, n }'
  done
}

# Waits until every lab VIP is claimed by exactly one running speaker; bounded.
wait_single_owners() {
  local bad=""
  for _ in $(seq 1 50); do
    bad="$(claims | awk -v want="${v4_vips[*]} ${v6_vips[*]}" '
      { count[$1]++; who[$1] = who[$1] " n" $2 }
      END { n = split(want, w, " "); for (i = 1; i <= n; i++) if (count[w[i]] != 1) { print w[i] " [" who[w[i]] " ]"; exit } }')"
    [ -z "$bad" ] && return 0
    sleep 0.1
  done
  fail "not exactly one owner after 5 s: $bad"
}

client_mac_v4() { # VIP → the MACs that answer two broadcast ARP requests, one per line
  in_ns "$cl" arping -b -c 2 -w 2 -I eth0 "$1" 2>/dev/null |
    sed -n 's/.*\[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u || true
}
client_mac_v6() {
  in_ns "$cl" ndisc6 -m -n -r 2 -w 500 "$1" eth0 2>/dev/null |
    sed -n 's/.*Target link-layer address: *\([0-9A-Fa-f:]*\).*/\1/p' | tr 'A-F' 'a-f' | sort -u || true
}
client_neigh() { ip -n "$cl" neigh show "$1" dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'; }

# ---------------------------------------------------------------- placement
note "placement: every VIP resolves to the MAC of exactly its owner"
wait_single_owners
declare -A per_node=()
# Resolve every VIP at once (arping waits a second between its two requests).
mkdir -p "$work/macs"
lookups=()
for vip in "${v4_vips[@]}" "${v6_vips[@]}"; do
  if [[ "$vip" == *:* ]]; then client_mac_v6 "$vip" >"$work/macs/$vip" &
  else client_mac_v4 "$vip" >"$work/macs/$vip" & fi
  lookups+=($!)
done
wait "${lookups[@]}"
for vip in "${v4_vips[@]}" "${v6_vips[@]}"; do
  owner="$(owners_of "$vip" | tr -d ' ')"
  per_node[$owner]=$(( ${per_node[$owner]:-0} + 1 ))
  macs="$(cat "$work/macs/$vip")"
  if [ -z "$macs" ]; then # a lost request on a busy machine: ask once more before judging
    if [[ "$vip" == *:* ]]; then macs="$(client_mac_v6 "$vip")"; else macs="$(client_mac_v4 "$vip")"; fi
  fi
  [ "$(wc -w <<<"$macs")" = 1 ] || fail "$vip answered by [$(tr '\n' ' ' <<<"$macs")], owner n$owner"
  [ "$macs" = "$(node_mac "$owner")" ] || fail "$vip resolves to $macs, owner n$owner is $(node_mac "$owner")"
done
spread="$(for n in $(seq 1 "$nodes"); do printf 'n%s=%s ' "$n" "${per_node[$n]:-0}"; done)"
echo "   VIPs per node: $spread"
[ "${#per_node[@]}" -ge $(( nodes - 1 )) ] || fail "VIPs not spread: $spread"
# The kernel's own resolution through a ping.
in_ns "$cl" ping -c 1 -W 1 "${v4_vips[0]}" >/dev/null || fail "ping ${v4_vips[0]}"
in_ns "$cl" ping -c 1 -W 1 "${v6_vips[0]}" >/dev/null || fail "ping ${v6_vips[0]}"
o="$(owners_of "${v4_vips[0]}" | tr -d ' ')"
[ "$(client_neigh "${v4_vips[0]}")" = "$(node_mac "$o")" ] || fail "kernel neighbor entry for ${v4_vips[0]} is not n$o's MAC"
o="$(owners_of "${v6_vips[0]}" | tr -d ' ')"
[ "$(client_neigh "${v6_vips[0]}")" = "$(node_mac "$o")" ] || fail "kernel neighbor entry for ${v6_vips[0]} is not n$o's MAC"

note "a foreign host announcing an owned VIP is detected (gratuitous ARP from the client)"
vip="${v4_vips[19]}"
o="$(owners_of "$vip" | tr -d ' ')"
conflicts_at() { http "$1" /metrics | awk '/^swimlb_speaker_conflicts_total/ { s += $2 } END { print s + 0 }'; }
before="$(conflicts_at "$o")"
ip -n "$cl" addr add "$vip/32" dev eth0
in_ns "$cl" arping -U -c 1 -I eth0 -s "$vip" "$vip" >/dev/null 2>&1 || true
ip -n "$cl" addr del "$vip/32" dev eth0
sleep 0.3
[ "$(conflicts_at "$o")" -gt "$before" ] || fail "n$o did not report the foreign announcement of $vip"
grep -q "another host claims a VIP" "$work/n$o.log" || fail "n$o did not log the conflict"
warnings_before_trials="$(cat "$work"/n*.log | grep -c "another host claims a VIP" || true)"

# ---------------------------------------------------------------- statistics
# stats NAME UNIT FILE: prints n, p50, p90, p99, max (nearest rank) of the numbers in FILE.
stats() {
  sort -g "$3" | awk -v name="$1" -v unit="$2" '
    { v[NR] = $1 }
    function rank(p,   r) { r = int(p * NR / 100); if (r < p * NR / 100) r++; if (r < 1) r = 1; return v[r] }
    END {
      if (NR == 0) { printf "   %-34s no samples\n", name; exit }
      printf "   %-34s n=%-4d p50=%-9s p90=%-9s p99=%-9s max=%s %s\n", name, NR, rank(50), rank(90), rank(99), v[NR], unit
    }'
}
percentile() { sort -g "$2" | awk -v p="$1" '{ v[NR] = $1 } END { r = int(p * NR / 100); if (r < p * NR / 100) r++; if (r < 1) r = 1; print (NR ? v[r] : "nan") }'; }
misses=0
target() { # description, value, limit
  if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then
    echo "   target met:    $1 = $2 (≤ $3)"
  else
    echo "   target MISSED: $1 = $2 (> $3)"
    misses=$((misses + 1))
  fi
}

# ---------------------------------------------------------------- ARP reply latency
note "ARP reply latency: 300 broadcast requests over 10 VIPs, timed on the client's wire (tcpdump)"
# The wire time (request seen leaving the client → reply seen arriving) is the speaker's
# latency; arping's own RTT adds the tool's overhead, shown next to the kernel answering for
# a node's own address as a baseline.
ip netns exec "$cl" tcpdump -i eth0 -n -e -tt -l arp >"$work/arp-capture" 2>/dev/null &
capture_pid=$!
sleep 1
: >"$work/arp-tool-ms"
: >"$work/arp-kernel-ms"
for r in $(seq 0 299); do
  in_ns "$cl" arping -b -c 1 -w 1 -I eth0 "${v4_vips[$(( r % 10 ))]}" 2>/dev/null |
    sed -n 's/.*\]  *\([0-9.]*\)ms.*/\1/p' >>"$work/arp-tool-ms" || true
done
for r in $(seq 0 99); do
  in_ns "$cl" arping -b -c 1 -w 1 -I eth0 "$(node_v4 $(( r % nodes + 1 )))" 2>/dev/null |
    sed -n 's/.*\]  *\([0-9.]*\)ms.*/\1/p' >>"$work/arp-kernel-ms" || true
done
sleep 0.5
kill "$capture_pid" 2>/dev/null; wait "$capture_pid" 2>/dev/null || true
# Pair each request from the client with the next unicast reply to it for the same address.
awk -v client=02:00:00:00:02:64 -v vips="${v4_vips[*]}" '
  BEGIN { n = split(vips, v, " "); for (i = 1; i <= n; i++) want[v[i]] = 1 }
  / Request who-has / && $2 == client {
    for (i = 1; i <= NF; i++) if ($i == "who-has") ip = $(i + 1)
    if (ip in want) asked[ip] = $1
  }
  / Reply / && $4 == client "," {
    for (i = 1; i <= NF; i++) if ($i == "Reply") ip = $(i + 1)
    if (ip in asked) { printf "%.3f\n", ($1 - asked[ip]) * 1000; delete asked[ip] }
  }' "$work/arp-capture" >"$work/arp-ms"
stats "ARP reply, on the wire" ms "$work/arp-ms"
stats "ARP reply, arping RTT" ms "$work/arp-tool-ms"
stats "kernel's own ARP reply, arping RTT" ms "$work/arp-kernel-ms"
[ -s "$work/arp-ms" ] || fail "no ARP replies measured"

# ---------------------------------------------------------------- reload
note "reload: a broken file keeps the last good configuration"
cp "$work/n1.yaml" "$work/n1.good"
printf '  - address: 192.0.2.300\n' >>"$work/n1.yaml"
kill -HUP "${pid[1]}"
sleep 0.5
kill -0 "${pid[1]}" || fail "n1 died on a bad configuration"
http 1 /metrics | grep -q '^swimlb_speaker_config_last_reload_successful 0' || fail "bad reload not reported"
grep -q 'line' "$work/n1.log" || fail "reload error does not name a line"
cp "$work/n1.good" "$work/n1.yaml"
kill -HUP "${pid[1]}"
sleep 0.5
http 1 /metrics | grep -q '^swimlb_speaker_config_last_reload_successful 1' || fail "good reload not reported"
wait_single_owners

note "link flap: a node whose link bounced answers again (its packet socket is reopened)"
ip -n "$(node_ns 1)" link set eth0 down
ip -n "$(node_ns 1)" link set eth0 up
sleep 0.5
answered=""
for _ in $(seq 1 40); do
  vip="$(http 1 /vips | awk '$1 !~ /:/ { print $1; exit }')"
  if [ -n "$vip" ] && [ "$(in_ns "$cl" arping -b -c 1 -w 1 -I eth0 "$vip" 2>/dev/null |
      sed -n 's/.*\[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f')" = "$(node_mac 1)" ]; then
    answered="$vip"; break
  fi
  sleep 0.25
done
[ -n "$answered" ] || fail "n1 does not answer ARP within 10 s of a link flap"
echo "   n1 answers for $answered again"
wait_single_owners

# ---------------------------------------------------------------- failover helpers
cable() { ip -n "$br" link set "p$1" "$2"; }

# Brings node $1 back (cable in, fresh speaker) and waits until VIP $2 is back on it and the
# client's entry shows it (gratuitous announcements from the returning node).
restore() {
  local i="$1" vip="$2"
  cable "$i" up
  start_speaker "$i"
  [ -n "${probe_pid[lan $i]:-}" ] || { start_probes "$i"; wait_probes_joined "$i"; }
  wait_ready "$i"
  for _ in $(seq 1 100); do
    [ "$(owners_of "$vip" | tr -d ' ')" = "$i" ] && [ "$(client_neigh "$vip")" = "$(node_mac "$i")" ] && break
    sleep 0.05
  done
  [ "$(owners_of "$vip" | tr -d ' ')" = "$i" ] || fail "$vip did not return to n$i"
  # Let the gratuitous bursts of this handover finish before the next trial.
  sleep 1
}

# The time from $t0 (just before the cable is pulled) to the first reply to a ping sent after
# $t_cut (the cable is out: nothing the old owner sends can arrive), from `ping -D` output.
first_reply_after() { # file t0 t_cut
  awk -v t0="$2" -v cut="$3" '
    /bytes from/ {
      ts = substr($1, 2, length($1) - 2) + 0
      rtt = 0; for (i = 1; i <= NF; i++) if ($i ~ /^time=/) { sub("time=", "", $i); rtt = $i / 1000 }
      if (ts - rtt > cut) { printf "%.0f\n", (ts - t0) * 1000; found = 1; exit }
    }
    END { if (!found) print "none" }' "$1"
}

kill_trial() { # VIP, output file for the failover time in ms
  local vip="$1" out="$2" family=""
  [[ "$vip" == *:* ]] && family="-6"
  local owner; owner="$(owners_of "$vip" | tr -d ' ')"
  [ -n "$owner" ] || fail "$vip has no owner before the trial"
  # Neighbor discovery seen by the client during the trial, for the failure report.
  ip netns exec "$cl" tcpdump -i eth0 -n -e -tt -l 'arp or (icmp6 and ip6[40] >= 133 and ip6[40] <= 136)' \
    >"$work/trial-capture" 2>/dev/null &
  capture_pid=$!
  ip netns exec "$cl" ping $family -D -n -i 0.01 -w 8 "$vip" >"$work/ping" 2>&1 &
  ping_pid=$!
  sleep 0.5
  local marks; marks="$(log_marks)"
  local t0; t0="$(now)"
  cable "$owner" down
  kill -9 "${pid[$owner]}"
  kill_probes "$owner"
  local t_cut; t_cut="$(now)"
  wait "${pid[$owner]}" 2>/dev/null || true
  unset "pid[$owner]"
  local ms="none"
  for _ in $(seq 1 60); do
    ms="$(first_reply_after "$work/ping" "$t0" "$t_cut")"
    [ "$ms" != none ] && break
    sleep 0.1
  done
  kill "$ping_pid" 2>/dev/null; wait "$ping_pid" 2>/dev/null || true; ping_pid=""
  kill "$capture_pid" 2>/dev/null; wait "$capture_pid" 2>/dev/null || true
  if [ "$ms" = none ]; then
    echo "client neighbor entry: $(ip -n "$cl" neigh show "$vip")" >&2
    echo "neighbor discovery seen by the client (t0 = $t0):" >&2
    tail -n 40 "$work/trial-capture" >&2
    for i in $(seq 1 "$nodes"); do
      [ -n "${pid[$i]:-}" ] || continue
      echo "n$i: $(http "$i" /vips | awk -v v="$vip" '$1 == v' ) $(http "$i" /metrics | grep -E '^swimlb_speaker_(gratuitous_sent|send_errors|requests_received|responses_sent)' | tr '\n' ' ')" >&2
    done
    fail "no failover for $vip within 6 s after n$owner died"
  fi
  local now_owner; now_owner="$(owners_of "$vip" | tr -d ' ')"
  [ -n "$now_owner" ] && [ "$now_owner" != "$owner" ] || fail "$vip owners after failover: [$now_owner]"
  [ "$(client_neigh "$vip")" = "$(node_mac "$now_owner")" ] ||
    fail "client reaches $vip but its entry is $(client_neigh "$vip"), new owner n$now_owner"
  echo "$ms" >>"$out"
  local detected; detected="$(swimlb_detection "$marks" "$owner" "$t0")"
  echo "$t0 $owner ${probe_name[lan $owner]} ${probe_name[fast $owner]} $detected" >>"$work/kill-probes"
  printf '   %-16s n%s -> n%s  %s ms (detection %s ms)\n' "$vip" "$owner" "$now_owner" "$ms" "$detected"
  restore "$owner" "$vip"
}

drain_trial() { # VIP, output file for lost pings
  local vip="$1" out="$2" family=""
  [[ "$vip" == *:* ]] && family="-6"
  local owner; owner="$(owners_of "$vip" | tr -d ' ')"
  ip netns exec "$cl" ping $family -n -i 0.01 -w 10 "$vip" >"$work/ping" 2>&1 &
  ping_pid=$!
  sleep 0.5
  kill -TERM "${pid[$owner]}"
  local gone=0
  for _ in $(seq 1 80); do
    kill -0 "${pid[$owner]}" 2>/dev/null || { gone=1; break; }
    sleep 0.05
  done
  [ $gone = 1 ] || fail "n$owner did not exit within 4 s of SIGTERM"
  cable "$owner" down
  wait "${pid[$owner]}" 2>/dev/null || true
  unset "pid[$owner]"
  sleep 1
  kill -INT "$ping_pid" 2>/dev/null; wait "$ping_pid" 2>/dev/null || true; ping_pid=""
  local sent received
  sent="$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$work/ping")"
  received="$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$work/ping")"
  [ -n "$sent" ] && [ -n "$received" ] || fail "cannot read the ping summary: $(tail -n 3 "$work/ping")"
  local now_owner; now_owner="$(owners_of "$vip" | tr -d ' ')"
  [ -n "$now_owner" ] || fail "$vip has no owner after n$owner drained"
  echo $(( sent - received )) >>"$out"
  printf '   %-16s n%s -> n%s  lost %s of %s\n' "$vip" "$owner" "$now_owner" $(( sent - received )) "$sent"
  restore "$owner" "$vip"
}

# ---------------------------------------------------------------- memberlist beside
# Started only now, so that their traffic does not weigh on the ARP latency figures.
note "memberlist probes (${probe_timings[*]}) joining on every node"
for i in $(seq 1 "$nodes"); do start_probes "$i"; done
for i in $(seq 1 "$nodes"); do wait_probes_joined "$i"; done

# ---------------------------------------------------------------- kill -9
note "kill -9 of the owner (cable pulled at the same moment), IPv4, $trials trials"
: >"$work/kill-v4"
for t in $(seq 0 $(( trials - 1 ))); do kill_trial "${v4_vips[$(( t % ${#v4_vips[@]} ))]}" "$work/kill-v4"; done
note "kill -9 of the owner, IPv6, $trials trials"
: >"$work/kill-v6"
for t in $(seq 0 $(( trials - 1 ))); do kill_trial "${v6_vips[$(( t % ${#v6_vips[@]} ))]}" "$work/kill-v6"; done

# ---------------------------------------------------------------- drain
v4_drains=$(( (drain_trials + 1) / 2 )); v6_drains=$(( drain_trials - v4_drains ))
note "SIGTERM drain, pings every 10 ms: $v4_drains IPv4 and $v6_drains IPv6 trials"
: >"$work/drain"
for t in $(seq 1 "$v4_drains"); do drain_trial "${v4_vips[$(( (t * 3) % ${#v4_vips[@]} ))]}" "$work/drain"; done
for t in $(seq 1 "$v6_drains"); do drain_trial "${v6_vips[$(( (t * 3) % ${#v6_vips[@]} ))]}" "$work/drain"; done

conflict_warnings=$(( $(cat "$work"/n*.log | grep -c "another host claims a VIP" || true) - warnings_before_trials ))
echo "   conflict warnings during the kill and drain trials: $conflict_warnings"

# ---------------------------------------------------------------- cut
# The cable of a node is pulled while its speaker (and its memberlist probes) keep running,
# then put back. Claims (every speaker's /vips) and the client's neighbour table are sampled
# throughout; the client pings every VIP so that its entries exist and stay in use.
all_vips=("${v4_vips[@]}" "${v6_vips[@]}")
# sample_claims FILE: appends "T -" then a "T VIP NODE" line per claim.
sample_claims() {
  local t; t="$(now)"
  { echo "$t -"; claims | sed "s/^/$t /"; } >>"$1"
}
# sample_neigh FILE: appends "T -" then "T VIP MAC" for every client neighbour entry with a MAC.
sample_neigh() {
  local t; t="$(now)"
  { echo "$t -"
    ip -n "$cl" neigh show dev eth0 | awk -v t="$t" '{ for (i = 2; i < NF; i++) if ($i == "lladdr") print t, $1, $(i + 1) }'
  } >>"$1"
}
# event_counts → "NODE down renewed rejoined" per speaker, from /metrics.
event_counts() {
  for i in $(seq 1 "$nodes"); do
    http "$i" /metrics | awk -v n="$i" '
      /^swimlb_speaker_gossip_events_total\{/ { split($1, a, "\""); c[a[2]] = $2 }
      END { print n, c["down"] + 0, c["renewed"] + 0, c["rejoined"] + 0 }'
  done
}
# Waits until every VIP is claimed by exactly its owner in FILE ("VIP NODE" lines); bounded.
wait_owners_as() {
  local want; want="$(sort "$1")"
  for _ in $(seq 1 100); do
    [ "$(claims | sort)" = "$want" ] && return 0
    sleep 0.2
  done
  fail "VIPs not back with their owners 20 s after a heal: $(diff <(echo "$want") <(claims | sort) | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
}

# The faults of the trials below: a cable cut (the speaker keeps running), a pause of the
# speaker process (SIGSTOP, then SIGCONT), and a gossip partition of a minority (UDP to the
# gossip port dropped both ways in the minority's namespaces; the link itself stays up, so the
# client and the majority still hear the minority's frames).
fault_start() { # kind, node indexes
  local kind="$1" i j others; shift
  case "$kind" in
    cut) cable "$1" down ;;
    pause) kill -STOP "${pid[$1]}" ;;
    partition)
      for i in "$@"; do
        others=""
        for j in $(seq 1 "$nodes"); do
          [[ " $* " == *" $j "* ]] || others="$others$(node_v4 "$j"), "
        done
        printf 'table ip lab_partition {\n  chain input { type filter hook input priority 0; udp dport 7946 ip saddr { %s } drop; }\n  chain output { type filter hook output priority 0; udp dport 7946 ip daddr { %s } drop; }\n}\n' \
          "${others%, }" "${others%, }" | in_ns "$(node_ns "$i")" nft -f -
      done ;;
  esac
}
fault_stop() { # kind, node indexes
  local kind="$1" i; shift
  case "$kind" in
    cut) cable "$1" up ;;
    pause) kill -CONT "${pid[$1]}" ;;
    partition) for i in "$@"; do in_ns "$(node_ns "$i")" nft delete table ip lab_partition; done ;;
  esac
}

# capture_start FILE: every gratuitous frame the client hears (ARP announcements, unsolicited
# advertisements to all nodes), as "T VIP MAC" lines, until the capture is killed.
capture_start() {
  in_ns "$cl" tcpdump -i eth0 -nn -e -l -tt 'arp or (icmp6 and ip6[40] == 136)' 2>/dev/null |
    awk '{ mac = $2
      if ($0 ~ /ARP/ && $0 ~ /Reply/) { for (i = 1; i < NF; i++) if ($i == "Reply") print $1, $(i + 1), mac }
      else if ($0 ~ /ARP/ && $0 ~ /who-has/) { for (i = 1; i < NF; i++) if ($i == "who-has" && $(i + 3) == $(i + 1)) print $1, $(i + 1), mac }
      else if ($0 ~ /neighbor advertisement/ && $0 ~ /> ff02::1:/) { for (i = 1; i < NF; i++) if ($i == "tgt" && $(i + 1) == "is") { v = $(i + 2); sub(/,$/, "", v); print $1, v, mac } }
      fflush() }' >"$1" &
  client_pings="$client_pings $!"
}
# last_gratuitous_wrong OWNERS CAPTURE → how many VIPs' last gratuitous frame names another
# MAC than their owner's.
last_gratuitous_wrong() {
  awk 'FNR == NR { owner[$1] = sprintf("02:00:00:00:01:%02x", $2); next }
    { last[$2] = $3 }
    END { for (v in last) if ((v in owner) && last[v] != owner[v]) n++; print n + 0 }' "$1" "$2"
}

fault_trial() { # kind, length in seconds, node indexes (the cut or paused node, or the minority)
  local kind="$1" length="$2" v family t; shift 2
  local targets=("$@") c="$1"
  wait_single_owners
  wait_probes_whole
  claims | sort >"$work/cut-owners"
  : >"$work/cut-claims"
  : >"$work/cut-neigh"
  event_counts >"$work/cut-events-before"
  client_pings=""
  local ping_seconds; ping_seconds="$(awk -v l="$length" -v w="$heal_watch" 'BEGIN { printf "%d", l + w + 4 }')"
  for v in "${all_vips[@]}"; do
    family=""; [[ "$v" == *:* ]] && family="-6"
    ip netns exec "$cl" ping $family -n -q -i 0.2 -w "$ping_seconds" "$v" >/dev/null 2>&1 &
    client_pings="$client_pings $!"
  done
  capture_start "$work/cut-gratuitous"
  sleep 1
  local marks; marks="$(log_marks)"
  local t0; t0="$(now)"
  fault_start "$kind" "${targets[@]}"
  local until_heal; until_heal="$(awk -v t="$t0" -v l="$length" 'BEGIN { printf "%.6f", t + l }')"
  while awk -v n="$(now)" -v u="$until_heal" 'BEGIN { exit !(n < u) }'; do
    sample_claims "$work/cut-claims"
    sleep 0.05
  done
  fault_stop "$kind" "${targets[@]}"
  local t_heal; t_heal="$(now)"
  local watch_end; watch_end="$(awk -v t="$t_heal" -v w="$heal_watch" 'BEGIN { printf "%.6f", t + w }')"
  while awk -v n="$(now)" -v u="$watch_end" 'BEGIN { exit !(n < u) }'; do
    sample_claims "$work/cut-claims"
    sample_neigh "$work/cut-neigh"
  done
  for v in $client_pings; do kill "$v" 2>/dev/null || true; wait "$v" 2>/dev/null || true; done
  client_pings=""
  event_counts >"$work/cut-events-after"
  local gratuitous_wrong; gratuitous_wrong="$(last_gratuitous_wrong "$work/cut-owners" "$work/cut-gratuitous")"

  # Claims: dual-claim and no-claim time summed over VIPs (each sample stands for the time
  # to the next), and agreement: the first sample after the heal from which every VIP is
  # claimed by exactly its owner and nobody else through the end of the watch.
  local claim_figures
  claim_figures="$(awk -v heal="$t_heal" -v vips="${all_vips[*]}" '
    FNR == NR { owner[$1] = $2; next }
    function finish(next_t,   i, dur, ok, v) {
      if (cur == "") return
      dur = next_t - cur; ok = 1
      for (i = 1; i <= nv; i++) {
        v = list[i]
        if (cnt[v] >= 2) dual += dur
        if (cnt[v] + 0 == 0) none += dur
        if (cnt[v] != 1 || who[v] != owner[v]) ok = 0
      }
      if (cur >= heal && !ok) { bad_until = next_t; last_bad = 1 } else if (cur >= heal) last_bad = 0
    }
    BEGIN { nv = split(vips, list, " ") }
    $2 == "-" { finish($1); cur = $1; split("", cnt); split("", who); next }
    { cnt[$2]++; who[$2] = $3 }
    END {
      finish(cur)
      agree = last_bad ? "none" : (bad_until ? sprintf("%.0f", (bad_until - heal) * 1000) : 0)
      printf "%.0f %.0f %s\n", dual * 1000, none * 1000, agree
    }' "$work/cut-owners" "$work/cut-claims")"
  local dual_ms none_ms agree_ms
  read -r dual_ms none_ms agree_ms <<<"$claim_figures"

  # Client: per VIP, how long after the heal its neighbour entry last named a MAC other than
  # the owner's (0: never; a wrong entry at the end of the watch counts as the whole watch).
  awk -v heal="$t_heal" -v w="$heal_watch" -v vips="${all_vips[*]}" '
    FNR == NR { owner[$1] = sprintf("02:00:00:00:01:%02x", $2); next }
    function finish(next_t,   v) {
      if (cur == "" || cur < heal) return
      for (v in mac) if ((v in owner) && mac[v] != owner[v]) wrong[v] = next_t
    }
    $2 == "-" { finish($1); cur = $1; split("", mac); next }
    { mac[$2] = $3 }
    END {
      last = cur; finish(heal + w)
      n = split(vips, list, " ")
      for (i = 1; i <= n; i++) printf "%.0f\n", (list[i] in wrong) ? (wrong[list[i]] - heal) * 1000 : 0
    }' "$work/cut-owners" "$work/cut-neigh" >"$work/cut-wrong-trial"
  cat "$work/cut-wrong-trial" >>"$work/cut-wrong"
  local wrong_max wrong_late
  wrong_max="$(percentile 100 "$work/cut-wrong-trial")"
  wrong_late="$(awk '$1 > 1000 { n++ } END { print n + 0 }' "$work/cut-wrong-trial")"


  # Gossip events: Down of a member other than the cut one, or any Down the cut node itself
  # logged (speaker logs); Renewed counted by the healthy speakers (/metrics).
  local healthy_down=0 spurious=0 j d
  for j in $(seq 1 "$nodes"); do
    d="$(log_since "$marks" "$j" | sed -n 's/.*member down member=\([^@]*\)@.*/\1/p' |
      awk -v self="$j" -v cut="n$c" '(self == substr(cut, 2)) || ($1 != cut) { n++ } END { print n + 0 }')"
    healthy_down=$(( healthy_down + d ))
    # A VIP announced by a node that was not its owner, when its owner was not the cut node.
    d="$(log_since "$marks" "$j" | sed -n 's/.*announcing VIP vip=\([^ ]*\).*/\1/p' |
      awk -v self="$j" -v cut="$c" 'FNR == NR { owner[$1] = $2; next } owner[$1] != cut && owner[$1] != self { n++ } END { print n + 0 }' \
        "$work/cut-owners" -)"
    spurious=$(( spurious + d ))
  done
  local renewed_healthy renewed_cut downs_total
  read -r renewed_healthy renewed_cut downs_total < <(awk -v cut="$c" '
    FNR == NR { down[$1] = $2; ren[$1] = $3; next }
    { dd += $2 - down[$1]; if ($1 == cut) rc += $3 - ren[$1]; else rh += $3 - ren[$1] }
    END { print rh + 0, rc + 0, dd + 0 }' "$work/cut-events-before" "$work/cut-events-after")

  if [ "$kind" = partition ]; then
    partition_figures "$t0" "$t_heal" "${targets[@]}"
    printf '   minority %s partitioned %s s: last dual claim with the majority %s ms after the start, minority claims at the heal %s, dual-claim %s ms (summed over VIPs)\n' \
      "${targets[*]}" "$length" "$fence_ms" "$minority_left" "$partition_dual_ms"
    printf '   %*s after the heal: agreed %s ms, client wrong MAC max %s ms, last gratuitous not the owner'"'"'s: %s VIPs\n' \
      ${#c} "" "$agree_ms" "$wrong_max" "$gratuitous_wrong"
    echo "$length $fence_ms $minority_left $agree_ms $wrong_max $gratuitous_wrong" >>"$work/partition-results"
    [ "$agree_ms" != none ] || fail "partition of ${targets[*]}: speakers not agreed on every owner $heal_watch s after the heal"
    wait_owners_as "$work/cut-owners"
    return
  fi
  local label="$length"; [ "$kind" = cut ] || label="$kind-$length"
  local detected ml_lan ml_fast ml_false=""
  detected="$(swimlb_detection "$marks" "$c" "$t0")"
  ml_lan="$(probe_detection lan "$c" "${probe_name[lan $c]}" "$t0" "$watch_end")"
  ml_fast="$(probe_detection fast "$c" "${probe_name[fast $c]}" "$t0" "$watch_end")"
  for t in "${probe_timings[@]}"; do
    # memberlist's own false downs: current members other than the cut one seen dead.
    ml_false="$ml_false $t=$(cat "$work"/probe-"$t"-n*.log | awk -v t0="$t0" -v te="$watch_end" -v cut="${probe_name[$t $c]}" -v live=" $(for j in $(seq 1 "$nodes"); do printf '%s ' "${probe_name[$t $j]}"; done)" '
      $2 == "dead" && $1 >= t0 && $1 <= te && $3 != cut && index(live, " " $3 " ") { n++ } END { print n + 0 }')"
  done
  [ "$kind" = cut ] && echo "$label $detected $ml_lan $ml_fast" >>"$work/cut-detect"
  echo "$label $healthy_down $renewed_healthy $spurious $dual_ms $none_ms $agree_ms $wrong_max $wrong_late $gratuitous_wrong" >>"$work/cut-results"
  printf '   n%s %s %s s: healthy down %s, healthy renewed %s (n%s renewed %s, downs seen %s), spurious takeovers %s\n' \
    "$c" "$kind" "$length" "$healthy_down" "$renewed_healthy" "$c" "$renewed_cut" "$downs_total" "$spurious"
  printf '   %*s dual-claim %s ms, no-claim %s ms, agreed %s ms after heal, client wrong MAC max %s ms (%s VIPs > 1 s), last gratuitous not the owner'"'"'s: %s VIPs\n' \
    ${#c} "" "$dual_ms" "$none_ms" "$agree_ms" "$wrong_max" "$wrong_late" "$gratuitous_wrong"
  if [ "$kind" = cut ]; then
    printf '   %*s detection: swimlb %s ms, memberlist fast %s ms, lan %s ms; memberlist false downs:%s\n' \
      ${#c} "" "$detected" "$ml_fast" "$ml_lan" "$ml_false"
  fi
  # Broken, not just slow: what the client or the speakers still get wrong at the watch's end.
  [ "$agree_ms" != none ] || fail "n$c $kind $length s: speakers not agreed on every owner $heal_watch s after the heal"
  [ "$wrong_max" -lt $(( heal_watch * 1000 )) ] ||
    fail "n$c $kind $length s: a client entry still names another MAC than its owner's $heal_watch s after the heal"
  wait_owners_as "$work/cut-owners"
}

# partition_figures T0 T_HEAL MINORITY... sets fence_ms (from T0 to the last sample in which a
# minority node claimed a VIP that a majority node claimed too; 0: never), minority_left (VIPs
# the minority claimed in the last sample before the heal) and partition_dual_ms (VIPs claimed
# on both sides, summed over VIPs, T0 to the heal).
partition_figures() {
  local t0="$1" heal="$2"; shift 2
  read -r fence_ms minority_left partition_dual_ms < <(awk -v t0="$t0" -v heal="$heal" -v minority=" $* " '
    function finish(next_t,   v) {
      if (cur == "" || cur < t0 || cur >= heal) return
      left = 0
      for (v in mine) { left++; if (v in theirs) { last = cur; dual += next_t - cur } }
    }
    $2 == "-" { finish($1); cur = $1; split("", mine); split("", theirs); next }
    { if (index(minority, " " $3 " ")) mine[$2] = 1; else theirs[$2] = 1 }
    END { finish(heal); printf "%.0f %d %.0f\n", last ? (last - t0) * 1000 : 0, left, dual * 1000 }' "$work/cut-claims")
}

[ "$cut_trials" -gt 0 ] &&
  note "cut: cable pulled while the speaker keeps running (${cut_lengths[*]} s), speaker paused (${pause_lengths[*]} s), gossip partition of $partition_size nodes ($partition_seconds s); $cut_trials trials each"
: >"$work/cut-results"; : >"$work/cut-wrong"; : >"$work/cut-detect"; : >"$work/partition-results"
cut_index=0
for t in $(seq 1 "$cut_trials"); do
  for length in "${cut_lengths[@]}"; do
    fault_trial cut "$length" $(( cut_index % nodes + 1 ))
    cut_index=$(( cut_index + 1 ))
  done
  for length in "${pause_lengths[@]}"; do
    fault_trial pause "$length" $(( cut_index % nodes + 1 ))
    cut_index=$(( cut_index + 1 ))
  done
  minority=()
  for k in $(seq 1 "$partition_size"); do minority+=($(( (cut_index + k - 1) % nodes + 1 ))); done
  fault_trial partition "$partition_seconds" "${minority[@]}"
  cut_index=$(( cut_index + 1 ))
done

# ---------------------------------------------------------------- loss
changes() { # sum of ownership changes over every node
  local total=0 n
  for i in $(seq 1 "$nodes"); do
    n="$(http "$i" /metrics | awk '/^swimlb_speaker_ownership_changes_total/ { s += $2 } END { print s + 0 }')"
    total=$(( total + n ))
  done
  echo "$total"
}
note "1 % random loss at every node (nftables numgen) for $loss_seconds s: no false failover"
for i in $(seq 1 "$nodes"); do
  in_ns "$(node_ns "$i")" nft -f - <<'EOF'
table inet swimlb_lab_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    numgen random mod 100 == 0 drop
  }
}
EOF
done
before="$(changes)"
sleep "$loss_seconds"
after="$(changes)"
for i in $(seq 1 "$nodes"); do in_ns "$(node_ns "$i")" nft delete table inet swimlb_lab_loss; done
echo "   ownership changes during loss: $(( after - before ))"
[ "$after" = "$before" ] || fail "false failover under 1 % loss: $(( after - before )) ownership changes"
wait_single_owners

# ---------------------------------------------------------------- 1,000 VIPs
note "1,000 VIPs (SIGHUP reload): single owners and speaker RSS"
{
  for i in $(seq 1 254); do echo "198.51.100.$i"; done
  for i in $(seq 1 254); do echo "203.0.113.$i"; done
  for i in $(seq 1 492); do printf '2001:db8:2::%x\n' "$i"; done
} >"$work/vips-1000"
for i in $(seq 1 "$nodes"); do write_config "$i" "$work/vips-1000"; kill -HUP "${pid[$i]}"; done
total=0
for _ in $(seq 1 50); do
  total=0
  for i in $(seq 1 "$nodes"); do
    n="$(http "$i" /vips | wc -l)"
    total=$(( total + n ))
  done
  [ "$total" = 1000 ] && break
  sleep 0.1
done
[ "$total" = 1000 ] || fail "1,000 VIPs: $total claims over all nodes"
dups="$(for i in $(seq 1 "$nodes"); do http "$i" /vips | awk '{print $1}'; done | sort | uniq -d | wc -l)"
[ "$dups" = 0 ] || fail "$dups VIPs claimed twice"
sleep 5 # let the bursts finish
rss_max=0
for i in $(seq 1 "$nodes"); do
  rss="$(awk '/^VmRSS/ {print $2}' "/proc/${pid[$i]}/status")"
  [ "$rss" -gt "$rss_max" ] && rss_max="$rss"
done
rss_mib="$(awk -v k="$rss_max" 'BEGIN { printf "%.1f", k / 1024 }')"

# ---------------------------------------------------------------- mass failure
# 60 % of the nodes crash at once (cables pulled, kill -9). The survivors see fewer live members
# than a majority of the 5 they expect: they are fenced, and must still take every VIP, because
# nobody answers their probes. Measured: from the crash to the moment every one of the 1,000
# VIPs is claimed by exactly one survivor (sampled from /vips).
dead=$(( (nodes * 6 + 9) / 10 ))
note "mass failure: $dead of $nodes nodes crash at once; the fenced survivors must take every VIP"
for _ in $(seq 1 50); do
  [ "$(claims | awk '{ print $1 }' | sort -u | wc -l)" = 1000 ] && break
  sleep 0.1
done
t0="$(now)"
for i in $(seq 1 "$dead"); do
  cable "$i" down
  kill -9 "${pid[$i]}"
  kill_probes "$i"
done
for i in $(seq 1 "$dead"); do wait "${pid[$i]}" 2>/dev/null || true; unset "pid[$i]"; done
mass_ms=none
for _ in $(seq 1 200); do
  if claims | awk '{ n[$1]++ } END { for (v in n) if (n[v] != 1) exit 1; exit !(length(n) == 1000) }'; then
    mass_ms="$(awk -v t="$t0" -v n="$(now)" 'BEGIN { printf "%.0f", (n - t) * 1000 }')"
    break
  fi
  sleep 0.05
done
[ "$mass_ms" != none ] || fail "mass failure: the survivors did not take every VIP within 10 s"
fenced="$(for i in $(seq $(( dead + 1 )) "$nodes"); do http "$i" /metrics | awk '/^swimlb_speaker_fenced / { print $2 }'; done | tr '\n' ' ')"
echo "   every VIP owned again by exactly one survivor after $mass_ms ms (survivors fenced: $fenced)"

# ---------------------------------------------------------------- report
echo
echo "== report ($nodes nodes, fast preset)"
stats "kill -9 failover, IPv4" ms "$work/kill-v4"
stats "kill -9 failover, IPv6" ms "$work/kill-v6"
cat "$work/kill-v4" "$work/kill-v6" >"$work/kill-all"
stats "kill -9 failover, both" ms "$work/kill-all"
stats "drain: lost pings at 10 ms" pings "$work/drain"
stats "ARP reply, on the wire" ms "$work/arp-ms"
stats "ARP reply, arping RTT" ms "$work/arp-tool-ms"
stats "kernel's own ARP reply, arping RTT" ms "$work/arp-kernel-ms"
echo "   speaker RSS with 1,000 VIPs: max $rss_mib MiB over $nodes speakers"
echo "   VIPs per node (30 lab VIPs): $spread"
echo "   conflict warnings (another MAC claiming an owned VIP) during trials: $conflict_warnings"
# Down-detection, first down anywhere after the crash or cut: swimlb (speaker logs) and both
# memberlist configurations (probe output), with memberlist's time as a multiple of swimlb's.
detection_report() { # label, file with "swimlb lan fast" per trial
  local col name
  for col in 1 3 2; do
    name="$(echo "swimlb memberlist-lan memberlist-fast" | cut -d' ' -f"$col")"
    awk -v c="$col" '$c != "none" { print $c }' "$2" >"$work/det-$col"
    stats "$1 detection, $name" ms "$work/det-$col"
    awk -v c="$col" '$c == "none" { n++ } END { if (n) printf "     (%d trials with no detection)\n", n }' "$2"
  done
  for col in 3 2; do
    name="$(echo "swimlb lan fast" | cut -d' ' -f"$col")"
    awk -v name="$name" -v a50="$(percentile 50 "$work/det-1")" -v a99="$(percentile 99 "$work/det-1")" \
      -v b50="$(percentile 50 "$work/det-$col")" -v b99="$(percentile 99 "$work/det-$col")" 'BEGIN {
        if (a50 + 0 > 0 && b50 != "nan") printf "   %-34s p50 %.2fx, p99 %.2fx\n", "memberlist " name " / swimlb", b50 / a50, b99 / a99
      }'
  done
}
while read -r t0 victim lan_name fast_name detected; do
  echo "$detected $(probe_detection lan "$victim" "$lan_name" "$t0" "$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 30 }')") $(probe_detection fast "$victim" "$fast_name" "$t0" "$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 30 }')")"
done <"$work/kill-probes" >"$work/kill-detect"
detection_report "kill -9" "$work/kill-detect"
labels=()
if [ "$cut_trials" -gt 0 ]; then
  labels=("${cut_lengths[@]}")
  for length in "${pause_lengths[@]}"; do labels+=("pause-$length"); done
fi
for label in "${labels[@]}"; do
  if [[ "$label" != pause-* ]]; then
    awk -v l="$label" '$1 == l { print $2, $3, $4 }' "$work/cut-detect" >"$work/cut-detect-$label"
    detection_report "cut $label s" "$work/cut-detect-$label"
  fi
  # "label healthy_down renewed spurious dual none agree wrong_max wrong_late gratuitous_wrong"
  awk -v l="$label" -v w="$heal_watch" '$1 == l {
      n++; down += $2; ren += $3; spur += $4; late += $9; gw += $10
      if ($5 > dual) dual = $5; if ($6 > none) none = $6
      a = ($7 == "none") ? w * 1000 : $7; if (a > agree) agree = a; if ($8 > wrong) wrong = $8
    }
    END { name = l; if (sub(/^pause-/, "", name)) name = "pause " name; else name = "cut " name
      printf "   %s s, %d trials: healthy down %d, healthy renewed %d, spurious takeovers %d, max dual-claim %d ms, max no-claim %d ms (summed over VIPs), agreement after heal max %d ms, client wrong MAC after heal max %d ms (%d VIP-trials > 1 s), last gratuitous not the owner'"'"'s %d\n", name, n, down, ren, spur, dual, none, agree, wrong, late, gw }' "$work/cut-results"
done
if [ "$cut_trials" -gt 0 ]; then
  # "length fence_ms minority_left agree wrong_max gratuitous_wrong" per partition trial
  awk -v w="$heal_watch" '{ n++; if ($2 > fence) fence = $2; left += $3; gw += $6
      a = ($4 == "none") ? w * 1000 : $4; if (a > agree) agree = a; if ($5 > wrong) wrong = $5 }
    END { printf "   gossip partition, %d trials: last dual claim with the majority max %d ms after the start, minority claims at the heal %d, agreement after heal max %d ms, client wrong MAC after heal max %d ms, last gratuitous not the owner'"'"'s %d\n", n, fence, left, agree, wrong, gw }' "$work/partition-results"
  awk '{ print $10 }' "$work/cut-results" >"$work/gratuitous-wrong"
  awk '{ print $6 }' "$work/partition-results" >>"$work/gratuitous-wrong"
  stats "cut: client wrong MAC after heal, per VIP" ms "$work/cut-wrong"
  awk -v w="$heal_watch" '{ print ($7 == "none") ? w * 1000 : $7 }' "$work/cut-results" >"$work/cut-agree"
  stats "cut: agreement after heal" ms "$work/cut-agree"
  echo "   (a value of $(( heal_watch * 1000 )) ms means: not within the $heal_watch s watched after the heal)"
fi
target "kill -9 failover p50 (ms)" "$(percentile 50 "$work/kill-all")" 500
target "kill -9 failover p99 (ms)" "$(percentile 99 "$work/kill-all")" 1000
target "drain lost pings (max)" "$(percentile 100 "$work/drain")" 1
target "ARP reply on the wire p99 (ms)" "$(percentile 99 "$work/arp-ms")" 1
target "speaker RSS, 1,000 VIPs (MiB)" "$rss_mib" 30
target "mass failure: every VIP owned again (ms)" "$mass_ms" 2000
timing_misses=$misses
heal_misses=0
trust_misses=0
sum_column() { awk -v c="$1" '{ s += $c } END { print s + 0 }' "$work/cut-results"; }
if [ "$cut_trials" -gt 0 ]; then
  before_cut=$misses
  target "cut: agreement on every owner after heal, max (ms)" "$(percentile 100 "$work/cut-agree")" 1000
  target "cut: client wrong MAC after heal, max (ms)" "$(percentile 100 "$work/cut-wrong")" 1000
  target "cut: VIPs whose last gratuitous frame is not the owner's" "$(awk '{ s += $1 } END { print s + 0 }' "$work/gratuitous-wrong")" 0
  heal_misses=$(( misses - before_cut ))
  before_cut=$misses
  target "cut: Down events of healthy members" "$(sum_column 2)" 0
  target "cut: Renewed events of healthy members" "$(sum_column 3)" 0
  target "cut: VIPs taken over that their owner never lost" "$(sum_column 4)" 0
  target "partition: VIPs the minority still claims at the heal" "$(awk '{ s += $3 } END { print s + 0 }' "$work/partition-results")" 0
  trust_misses=$(( misses - before_cut ))
fi
if [ "$heal_misses" -gt 0 ]; then
  if [ "$enforce" = 1 ] || [ "$cut_heal_enforced" = 1 ]; then fail "$heal_misses cut targets after the heal missed"; fi
  echo "   $heal_misses cut targets after the heal missed: reported only (cut_heal_enforced=0; --enforce-targets fails on them)"
fi
if [ "$trust_misses" -gt 0 ]; then
  if [ "$enforce" = 1 ] || [ "$cut_trust_enforced" = 1 ]; then fail "$trust_misses cut trust targets missed"; fi
  echo "   $trust_misses cut trust targets missed: reported only (cut_trust_enforced=0; --enforce-targets fails on them)"
fi
if [ "$timing_misses" -gt 0 ] && [ "$enforce" = 1 ]; then fail "$timing_misses timing targets missed"; fi
echo "lab passed"
