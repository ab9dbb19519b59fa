#!/usr/bin/env bash
# swimlb key rotation lab: a live gossip key rotation under client traffic, then a speaker
# with a wrong key. Same topology as tests/lab/lab.sh (its addresses, MACs and namespace
# layout), on a smaller scale:
#   <p>-br: bridge; <p>-n1 … <p>-nK: the speakers (every VIP on lo, arp_ignore=1);
#   <p>-n(K+1): the outsider with a wrong key, started last; <p>-cl: the client.
# Documentation addresses only, no default route, nothing outside the lab namespaces touched;
# every namespace is removed on exit.
#
# The client pings every VIP every 10 ms throughout. Each speaker has its own key file:
#   step 1: the new key second in every file (the speakers notice within their 5 s poll);
#   step 2: the new key first, one speaker at a time (SIGHUP), so for a while some seal with
#           the new key and some with the old, which every ring opens;
#   step 3: the old key removed from every file (poll again).
# A key file emptied by mistake (SIGHUP) must be refused with the ring in force kept.
# Fails on any lost ping, any ownership change, any gratuitous frame (no VIP re-announced),
# a reload not taken, or a wrong-key speaker that joins, is not counted as unauthentic by the
# others, or claims a VIP.
#
# Usage: tests/lab/key-rotation.sh [--nodes K] [--settle S] [--bin PATH]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

nodes=5
# Seconds every step is left to run before the next one.
settle=2
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --settle) settle="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "the lab needs root (network namespaces, raw sockets)" >&2; exit 2; }
for tool in ip ping curl awk od; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 2; }
done
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release -q -p swimlb-speaker)
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/swimlb-speaker"
fi

prefix="swkey$$"
work="$(mktemp -d /tmp/swimlb-keys.XXXXXX)"
br="$prefix-br"
cl="$prefix-cl"
outsider=$((nodes + 1))
declare -A pid=()
ping_pids=""

cleanup() {
  local rc=$?
  set +e
  for p in $ping_pids; do kill "$p" 2>/dev/null; done
  for i in "${!pid[@]}"; do kill -9 "${pid[$i]}" 2>/dev/null; done
  lab_teardown "$rc" "key rotation lab"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/lab/topology.sh disable=SC1091
source "$here/topology.sh"
random_key() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# ---------------------------------------------------------------- topology
v4_vips=(192.0.2.200 192.0.2.201 192.0.2.202 192.0.2.203 192.0.2.204 192.0.2.205)
v6_vips=(2001:db8:1::c8 2001:db8:1::c9 2001:db8:1::ca)

note "topology: $nodes nodes and an outsider, prefix $prefix"
build_lan "$outsider"

# ---------------------------------------------------------------- speakers
old_key="0 $(random_key)"
new_key="1 $(random_key)"
# The outsider's key has the new key's id but other material: its datagrams are unauthentic.
wrong_key="1 $(random_key)"

write_config() { # node index
  local i="$1" peers="" j
  for j in $(seq 1 "$nodes"); do
    [ "$j" = "$i" ] || peers="$peers$(node_v4 "$j"):7946, "
  done
  {
    cat <<EOF
node_name: n$i
gossip:
  bind: $(node_v4 "$i"):7946
  peers: [${peers%, }]
  key_file: $work/key-n$i
  preset: fast
interfaces: [eth0]
metrics_address: $(node_v4 "$i"):7472
vips:
EOF
    printf '  - address: %s\n' "${v4_vips[@]}" "${v6_vips[@]}"
  } >"$work/n$i.yaml"
}
# Replaces a key file at once, as a volume update does (rename, never a half-written file).
write_keys() { # node index, key lines...
  local i="$1"; shift
  printf '%s\n' "$@" >"$work/key-n$i.tmp"
  mv "$work/key-n$i.tmp" "$work/key-n$i"
}
http() { in_ns "$(node_ns "$1")" curl -fsS --max-time 2 "http://$(node_v4 "$1"):7472$2"; }
# metric NODE NAME_WITH_LABELS → the value (0 when absent)
metric() {
  { http "$1" /metrics 2>/dev/null || true; } |
    awk -v m="$2" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}
# sum_metric NAME_WITH_LABELS → the sum over the cluster's speakers
sum_metric() {
  local i s=0
  for i in $(seq 1 "$nodes"); do s=$((s + $(metric "$i" "$1"))); done
  echo "$s"
}
ownership_changes() {
  echo $(($(sum_metric 'swimlb_speaker_ownership_changes_total{change="gained"}') +
    $(sum_metric 'swimlb_speaker_ownership_changes_total{change="lost"}')))
}
gratuitous() {
  local v s=0
  for v in "${v4_vips[@]}"; do s=$((s + $(sum_metric "swimlb_speaker_gratuitous_sent_total{ip=\"$v\",protocol=\"arp\"}"))); done
  for v in "${v6_vips[@]}"; do s=$((s + $(sum_metric "swimlb_speaker_gratuitous_sent_total{ip=\"$v\",protocol=\"ndp\"}"))); done
  echo "$s"
}
claims() { # "VIP node" lines, sorted
  local i
  for i in "$@"; do { http "$i" /vips 2>/dev/null || true; } | awk -v n="$i" '{ print $1, n }'; done | sort
}
start_speaker() {
  ip netns exec "$(node_ns "$1")" "$bin" --config "$work/n$1.yaml" --log info >>"$work/n$1.log" 2>&1 &
  pid[$1]=$!
}
wait_ready() { # node index; bounded
  for _ in $(seq 1 100); do
    http "$1" /readyz >/dev/null 2>&1 && return 0
    kill -0 "${pid[$1]}" 2>/dev/null || fail "speaker n$1 exited: $(tail -n 5 "$work/n$1.log")"
    sleep 0.1
  done
  fail "speaker n$1 not ready within 10 s"
}
reloads() { metric "$2" "swimlb_speaker_key_reloads_total{result=\"$1\"}"; } # RESULT NODE
# wait_reloads RESULT NODE BEFORE: until NODE counted more than BEFORE key reloads with RESULT;
# prints the seconds it took. Bounded (12 s: two polls).
wait_reloads() {
  local start=$EPOCHREALTIME
  for _ in $(seq 1 120); do
    if [ "$(reloads "$1" "$2")" -gt "$3" ]; then
      awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'
      return 0
    fi
    sleep 0.1
  done
  fail "n$2 did not count a key reload ($1) within 12 s: $(tail -n 3 "$work/n$2.log")"
}

for i in $(seq 1 "$nodes"); do
  write_keys "$i" "$old_key"
  write_config "$i"
  start_speaker "$i"
done
for i in $(seq 1 "$nodes"); do wait_ready "$i"; done
for _ in $(seq 1 50); do
  [ "$(claims $(seq 1 "$nodes") | wc -l)" = $(( ${#v4_vips[@]} + ${#v6_vips[@]} )) ] && break
  sleep 0.1
done
# Let every announcement burst (the last round 4.4 s after a claim) finish before counting.
sleep 5
claims_before="$(claims $(seq 1 "$nodes"))"
[ "$(echo "$claims_before" | awk '{ print $1 }' | sort -u | wc -l)" = $(( ${#v4_vips[@]} + ${#v6_vips[@]} )) ] ||
  fail "not every VIP has an owner: $claims_before"
changes_before="$(ownership_changes)"
gratuitous_before="$(gratuitous)"

# ---------------------------------------------------------------- client traffic
note "client pings every VIP every 10 ms"
for v in "${v4_vips[@]}" "${v6_vips[@]}"; do
  family=""; [[ "$v" == *:* ]] && family="-6"
  # Bounded: at most 120 s, whatever happens to this script.
  ip netns exec "$cl" ping $family -n -i 0.01 -w 120 "$v" >"$work/ping-$v" 2>&1 &
  ping_pids="$ping_pids $!"
done
sleep 1

# ---------------------------------------------------------------- the rotation
note "step 1: new key second in every key file (picked up by the 5 s poll)"
declare -A base=()
for i in $(seq 1 "$nodes"); do base[$i]="$(reloads ok "$i")"; done
for i in $(seq 1 "$nodes"); do write_keys "$i" "$old_key" "$new_key"; done
waits=""
for i in $(seq 1 "$nodes"); do waits="$waits $(wait_reloads ok "$i" "${base[$i]}")"; done
echo "   reloads taken after (s, per speaker, cumulative):$waits; running $settle s"
sleep "$settle"

note "step 2: new key first, one speaker at a time (SIGHUP)"
for i in $(seq 1 "$nodes"); do
  before="$(reloads ok "$i")"
  write_keys "$i" "$new_key" "$old_key"
  kill -HUP "${pid[$i]}"
  took="$(wait_reloads ok "$i" "$before")"
  echo "   n$i seals with the new key (reload after $took s); running 1 s"
  sleep 1
done
sleep "$settle"

note "a key file emptied by mistake on n1 (SIGHUP): refused, the ring in force stays"
before="$(reloads error 1)"
write_keys 1 ""
kill -HUP "${pid[1]}"
wait_reloads error 1 "$before" >/dev/null
grep -q "gossip key reload failed" "$work/n1.log" || fail "n1 did not log the refused key file"
before="$(reloads ok 1)"
write_keys 1 "$new_key" "$old_key"
kill -HUP "${pid[1]}"
wait_reloads ok 1 "$before" >/dev/null

note "step 3: old key removed from every key file (picked up by the 5 s poll)"
for i in $(seq 1 "$nodes"); do base[$i]="$(reloads ok "$i")"; done
for i in $(seq 1 "$nodes"); do write_keys "$i" "$new_key"; done
waits=""
for i in $(seq 1 "$nodes"); do waits="$waits $(wait_reloads ok "$i" "${base[$i]}")"; done
echo "   reloads taken after (s, per speaker, cumulative):$waits; running $settle s"
sleep "$settle"

# ---------------------------------------------------------------- the outsider
note "n$outsider starts with a wrong key"
unauthentic_before="$(sum_metric 'swimlb_speaker_gossip_dropped_total{reason="unauthentic"}')"
write_keys "$outsider" "$wrong_key"
write_config "$outsider"
start_speaker "$outsider"
sleep 6
kill -0 "${pid[$outsider]}" 2>/dev/null || fail "n$outsider exited: $(tail -n 5 "$work/n$outsider.log")"
unauthentic_after="$(sum_metric 'swimlb_speaker_gossip_dropped_total{reason="unauthentic"}')"
per_node=""
for i in $(seq 1 "$nodes"); do
  per_node="$per_node n$i=$(metric "$i" 'swimlb_speaker_gossip_dropped_total{reason="unauthentic"}')"
done
members=""
for i in $(seq 1 "$outsider"); do
  members="$members n$i=$(metric "$i" 'swimlb_speaker_gossip_members{state="alive"}')"
done
echo "   alive members as each speaker sees them:$members"
echo "   unauthentic datagrams counted: $((unauthentic_after - unauthentic_before)) ($per_node )"

# ---------------------------------------------------------------- verdict
for p in $ping_pids; do kill -INT "$p" 2>/dev/null || true; done
for p in $ping_pids; do wait "$p" 2>/dev/null || true; done
ping_pids=""
lost_total=0 sent_total=0
for v in "${v4_vips[@]}" "${v6_vips[@]}"; do
  # Lost: sequence numbers up to the last answered one that got no answer (the few in flight
  # when the client stopped are not counted).
  read -r sent lost < <(awk '
    match($0, /icmp_seq=[0-9]+/) { s = substr($0, RSTART + 9, RLENGTH - 9) + 0; got[s] = 1; if (s > max) max = s }
    END { n = 0; for (i = 1; i <= max; i++) if (!(i in got)) n++; print max, n }' "$work/ping-$v")
  [ "${sent:-0}" -gt 0 ] || fail "no answer at all from $v: $(tail -n 3 "$work/ping-$v")"
  printf '   %-16s %s pings, %s lost\n' "$v" "$sent" "$lost"
  lost_total=$((lost_total + lost)); sent_total=$((sent_total + sent))
done
changes=$(($(ownership_changes) - changes_before))
frames=$(($(gratuitous) - gratuitous_before))
claims_after="$(claims $(seq 1 "$outsider"))"
echo "key rotation: $sent_total pings, $lost_total lost; ownership changes $changes; gratuitous frames $frames"
[ "$lost_total" = 0 ] || fail "$lost_total pings lost during the rotation"
[ "$changes" = 0 ] || fail "$changes ownership changes during the rotation"
[ "$frames" = 0 ] || fail "$frames gratuitous frames sent during the rotation (a VIP was re-announced)"
[ "$claims_after" = "$claims_before" ] || fail "owners changed: before
$claims_before
after
$claims_after"
for i in $(seq 1 "$nodes"); do
  [ "$(metric "$i" 'swimlb_speaker_gossip_members{state="alive"}')" = "$nodes" ] ||
    fail "n$i does not see exactly the $nodes members:$members"
done
[ "$(metric "$outsider" 'swimlb_speaker_gossip_members{state="alive"}')" = 1 ] ||
  fail "the wrong-key speaker n$outsider knows other members:$members"
[ $((unauthentic_after - unauthentic_before)) -gt 0 ] ||
  fail "the wrong-key speaker's datagrams were not counted as unauthentic"
note "key rotation lab passed"
