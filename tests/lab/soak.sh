#!/usr/bin/env bash
# swimlb soak lab: speakers under churn for minutes, watched from a client. Same LAN as
# tests/lab/lab.sh (tests/lab/topology.sh): <p>-br the bridge, <p>-n1 … <p>-nN the speakers,
# <p>-cl the client on 192.0.2.100 and 2001:db8:1::100. Documentation addresses only, no default
# route, nothing outside the lab namespaces touched; every namespace is removed on exit.
#
# For the whole run, at once:
#   - 1 % of the packets every node receives are dropped (nftables in its namespace);
#   - churn: every --churn-every seconds 25 of the 1,000 VIPs are removed and 25 others added,
#     by rewriting every speaker's file and SIGHUP;
#   - restarts: every --restart-every seconds (each at a random phase of 0–5 s, so the client's
#     checks meet restarts at every point of a failover) one of the last --restarted
#     speakers is restarted, alternately by kill -9 (started again at once) and by SIGTERM (a
#     drain, started again when it has exited);
#   - every --check-every seconds the client asks ARP or NDP for every VIP in force
#     (tests/lab/neighbor-scan, up to 5 rounds 250 ms apart) and the RSS, open file descriptors
#     and CPU time of every speaker are sampled from /proc.
# Fails when, at any check: a VIP in force is answered by no MAC or by two (two are allowed only
# while one of them is a draining speaker's, which answers by design until it exits; counted
# apart), or a removed VIP is still answered; when a long-lived speaker's RSS grows by more than
# max(2 MiB, 10 %) or its descriptors by more than 2 from the first sample after the warm-up
# (a minute, or a third of a shorter run) to the last; on a panic, on a drained speaker exiting
# with an error, or on a long-lived speaker exiting at all. Reports per-speaker RSS and fds at
# start and end, CPU per speaker (% of one core), and the counts of everything above.
#
# Usage: tests/lab/soak.sh [--seconds S (600)] [--nodes N (5)] [--restarted K (2)]
#          [--restart-every S (30)] [--churn-every S (15)] [--check-every S (5)]
#          [--seed N] [--bin SPEAKER] [--scan NEIGHBOR_SCAN] [--log SPEAKER_LOG_FILTER]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

seconds=600 nodes=5 restarted=2 restart_every=30 churn_every=15 check_every=5
seed=$$ bin="" scan="" log=info
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --restarted) restarted="$2"; shift 2 ;;
    --restart-every) restart_every="$2"; shift 2 ;;
    --churn-every) churn_every="$2"; shift 2 ;;
    --check-every) check_every="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --scan) scan="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "the lab needs root (network namespaces, raw sockets)" >&2; exit 2; }
for tool in ip nft curl awk; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 2; }
done
[ "$restarted" -lt "$nodes" ] || { echo "--restarted must leave a long-lived speaker" >&2; exit 2; }
if [ -z "$bin" ] || [ -z "$scan" ]; then
  (cd "$repo" && cargo build --release -q -p swimlb-speaker -p swimlb-neighbor-scan)
  out="${CARGO_TARGET_DIR:-$repo/target}/release"
  bin="${bin:-$out/swimlb-speaker}"
  scan="${scan:-$out/neighbor-scan}"
fi

prefix="swsoak$$"
work="$(mktemp -d /tmp/swimlb-soak.XXXXXX)"
# shellcheck disable=SC2034 # the bridge namespace, for topology.sh
br="$prefix-br"
cl="$prefix-cl"
loops=""

cleanup() {
  local rc=$?
  set +e
  for p in $loops; do kill "$p" 2>/dev/null; done
  for f in "$work"/pid-n*; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  lab_teardown "$rc" "soak"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/lab/topology.sh disable=SC1091
source "$here/topology.sh"
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- topology
# The VIPs are not on the nodes' lo: the check is who answers ARP and NDP, not ping.
note "topology: $nodes nodes, prefix $prefix, seed $seed"
build_lan "$nodes"
for i in $(seq 1 "$nodes"); do
  in_ns "$(node_ns "$i")" nft -f - <<'EOF'
table inet swimlb_soak_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    numgen random mod 100 == 0 drop
  }
}
EOF
done

# ---------------------------------------------------------------- VIPs
# 1,208 addresses; 1,000 in force at a time. Generation files gen-K hold the VIPs in force from
# the time logged for K in churn.log on.
{
  for i in $(seq 1 254); do echo "198.51.100.$i"; done
  for i in $(seq 1 254); do echo "203.0.113.$i"; done
  for i in $(seq 1 700); do printf '2001:db8:2::%x\n' "$i"; done
} >"$work/universe"
head -n 1000 "$work/universe" >"$work/gen-0"
printf '0 %s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$work/key"

write_config() { # node index, VIP file
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
  key_file: $work/key
  preset: fast
interfaces: [eth0]
metrics_address: $(node_v4 "$i"):7472
vips:
EOF
    sed 's/^/  - address: /' "$2"
  } >"$work/n$i.yaml.tmp"
  mv "$work/n$i.yaml.tmp" "$work/n$i.yaml"
}
http() { in_ns "$(node_ns "$1")" curl -fsS --retry 3 --retry-delay 0 --max-time 2 "http://$(node_v4 "$1"):7472$2"; }

# Starts node I's speaker in the background; its pid goes to pid-nI while it runs, and its exit
# status to exits-nI when it ends.
start_speaker() {
  local i="$1"
  (
    ip netns exec "$(node_ns "$i")" "$bin" --config "$work/n$i.yaml" --log "$log" >>"$work/n$i.log" 2>&1 &
    p=$!
    echo "$p" >"$work/pid-n$i"
    rc=0; wait "$p" || rc=$?
    echo "$EPOCHREALTIME $p $rc" >>"$work/exits-n$i"
  ) 2>/dev/null &
  for _ in $(seq 1 50); do [ -s "$work/pid-n$i" ] && return 0; sleep 0.02; done
  fail "speaker n$i did not start"
}
speaker_pid() { cat "$work/pid-n$1" 2>/dev/null || true; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
wait_ready() { # node index; bounded
  for _ in $(seq 1 100); do
    http "$1" /readyz >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "speaker n$1 not ready within 10 s: $(tail -n 5 "$work/n$1.log")"
}

for i in $(seq 1 "$nodes"); do write_config "$i" "$work/gen-0"; start_speaker "$i"; done
for i in $(seq 1 "$nodes"); do wait_ready "$i"; done
for _ in $(seq 1 100); do
  total=0
  for i in $(seq 1 "$nodes"); do total=$((total + $(http "$i" /vips | wc -l))); done
  [ "$total" = 1000 ] && break
  sleep 0.1
done
[ "$total" = 1000 ] || fail "1,000 VIPs: $total claims over all nodes at the start"
sleep 5 # the start-up announcement rounds

# ---------------------------------------------------------------- churn and restarts
start=$(now)
end=$(awk -v s="$start" -v d="$seconds" 'BEGIN { printf "%.6f", s + d }')
before_end() { awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; }
sleep_until() { # epoch seconds
  local d
  d=$(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN { d = t - n; printf "%.3f", (d > 0) ? d : 0 }')
  sleep "$d"
}
echo "$start 0" >"$work/churn.log"

churner() {
  local k=0 next
  while :; do
    k=$((k + 1))
    next=$(awk -v s="$start" -v k="$k" -v e="$churn_every" 'BEGIN { printf "%.6f", s + k * e }')
    awk -v n="$next" -v e="$end" 'BEGIN { exit !(n < e) }' || return 0
    sleep_until "$next"
    # 25 of those in force out, 25 of the rest in (seeded, so a run can be repeated).
    awk -v seed="$((seed + k))" 'NR == FNR { on[$1] = 1; next } { all[++n] = $1 }
      END {
        srand(seed)
        for (i = 1; i <= n; i++) if (all[i] in on) ins[++a] = all[i]; else outs[++b] = all[i]
        for (i = 1; i <= 25; i++) { j = i + int(rand() * (a - i + 1)); t = ins[i]; ins[i] = ins[j]; ins[j] = t }
        for (i = 1; i <= 25; i++) { j = i + int(rand() * (b - i + 1)); t = outs[i]; outs[i] = outs[j]; outs[j] = t }
        for (i = 26; i <= a; i++) print ins[i]
        for (i = 1; i <= 25; i++) print outs[i]
      }' "$work/gen-$((k - 1))" "$work/universe" | sort >"$work/gen-$k"
    for i in $(seq 1 "$nodes"); do write_config "$i" "$work/gen-$k"; done
    echo "$(now) $k" >>"$work/churn.log"
    # A speaker younger than 2 s may not handle SIGHUP yet (it would end it); it read the
    # file after the write, or its 5 s poll of the file catches up.
    for i in $(seq 1 "$nodes"); do
      p=$(speaker_pid "$i")
      if [ -n "$p" ] && [ "$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ')" -ge 2 ] 2>/dev/null; then
        kill -HUP "$p" 2>/dev/null || true
      fi
    done
  done
}

restarter() {
  local k=0 next i p kind
  RANDOM=$seed
  while :; do
    k=$((k + 1))
    next=$(awk -v s="$start" -v k="$k" -v e="$restart_every" -v r="$RANDOM" \
      'BEGIN { printf "%.6f", s + k * e - e + (r % 5000) / 1000 + e / 2 }')
    awk -v n="$next" -v e="$end" 'BEGIN { exit !(n < e - 3) }' || return 0
    sleep_until "$next"
    i=$((nodes - restarted + 1 + (k - 1) % restarted))
    p=$(speaker_pid "$i")
    [ -n "$p" ] || continue
    if [ $((k % 2)) = 1 ]; then kind=crash; else kind=drain; fi
    echo "$(now) $i $p $kind $(cpu_ticks "$p")" >>"$work/restarts.log"
    rm -f "$work/pid-n$i"
    if [ "$kind" = crash ]; then
      kill -9 "$p"
      for _ in $(seq 1 100); do [ -d "/proc/$p" ] || break; sleep 0.02; done
    else
      kill -TERM "$p"
      # The drain (2 s of grace) ends with the exit; bounded.
      for _ in $(seq 1 500); do [ -d "/proc/$p" ] || break; sleep 0.02; done
    fi
    echo "$(now) $i $p exited" >>"$work/restarts.log"
    start_speaker "$i"
  done
}

note "soak: ${seconds} s; churn every ${churn_every} s, a restart every ${restart_every} s (n$((nodes - restarted + 1))..n$nodes), a check every ${check_every} s"
churner &
loops="$loops $!"
restarter &
loops="$loops $!"

# ---------------------------------------------------------------- checks
# check K: scans every address of the universe; judges those in force (or out of force) in every
# generation from 2 s before the scan to its end. Appends to checks.log:
#   K T_START T_END judged_in judged_out unanswered doubled drain_overlap still_answered retried
: >"$work/checks.log"
: >"$work/samples.log"
: >"$work/bad.log"
drain_windows() { # "pid start end" of every drain so far (an unfinished one ends now)
  awk -v n="$(now)" '$4 == "drain" { s[$3] = $1; node[$3] = $2 } $4 == "exited" && ($3 in s) { e[$3] = $1 }
    END { for (p in s) print node[p], s[p], (p in e) ? e[p] : n }' "$work/restarts.log" 2>/dev/null || true
}
check=0
while before_end; do
  check=$((check + 1))
  tick=$(awk -v s="$start" -v k="$check" -v e="$check_every" 'BEGIN { printf "%.6f", s + k * e }')
  awk -v n="$tick" -v e="$end" 'BEGIN { exit !(n <= e) }' || break
  sleep_until "$tick"
  t_start=$(now)
  in_ns "$cl" "$scan" --interface eth0 --ipv4 192.0.2.100 --ipv6 2001:db8:1::100 --rounds 5 \
    <"$work/universe" >"$work/scan" 2>>"$work/scan.err" || fail "neighbor-scan failed: $(tail -n 3 "$work/scan.err")"
  t_end=$(now)
  # The generations in force at some moment of [t_start - 2, t_end].
  gens=$(awk -v a="$t_start" -v b="$t_end" '{ t[NR] = $1; g[NR] = $2 }
    END { for (i = 1; i <= NR; i++) { until = (i < NR) ? t[i + 1] : b + 1; if (until > a - 2 && t[i] <= b) print g[i] } }' \
    "$work/churn.log")
  files=()
  for g in $gens; do files+=("$work/gen-$g"); done
  for i in $(seq 1 "$nodes"); do
    p=$(speaker_pid "$i")
    if [ -z "$p" ] || [ ! -d "/proc/$p" ]; then continue; fi
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    fds=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "$(since "$start") $i $p ${rss:-0} $fds $(cpu_ticks "$p")" >>"$work/samples.log"
  done
  macs=""; for i in $(seq 1 "$nodes"); do macs="$macs $(node_mac "$i")=$i"; done
  # Judge. Inputs: the generation files in force, then the scan. A drain window counts when it
  # overlaps the scan (a request answered by the draining speaker before it exited).
  awk -v k="$check" -v a="$t_start" -v b="$t_end" -v ngen="${#files[@]}" -v macs="$macs" \
      -v drains="$(drain_windows | tr '\n' ';')" -v bad="$work/bad.log" -v scan="$work/scan" '
    BEGIN {
      n = split(macs, m, " "); for (i = 1; i <= n; i++) { split(m[i], kv, "="); node_of[kv[1]] = kv[2] }
      n = split(drains, d, ";"); for (i = 1; i <= n; i++) { split(d[i], f, " "); if (f[3] >= a && f[2] <= b) draining[f[1]] = 1 }
    }
    FILENAME != scan { seen[$1]++; next }
    {
      ip = $1; in_none = !(ip in seen); in_all = !in_none && seen[ip] == ngen
      if (in_all) {
        judged_in++
        if ($2 == "-") { unanswered++; print k, "unanswered", ip >> bad; next }
        if ($3 > 1) retried++
        c = split($2, who, ",")
        if (c == 1) next
        drainers = 0; for (j = 1; j <= c; j++) if (draining[node_of[who[j]]]) drainers++
        if (c == 2 && drainers >= 1) overlap++
        else { doubled++; print k, "doubled", ip, $2 >> bad }
      } else if (in_none) {
        judged_out++
        if ($2 != "-") { still++; print k, "still-answered", ip, $2 >> bad }
      }
    }
    END { printf "%d %s %s %d %d %d %d %d %d %d\n", k, a, b, judged_in, judged_out, unanswered + 0, doubled + 0, overlap + 0, still + 0, retried + 0 }
  ' "${files[@]}" "$work/scan" >>"$work/checks.log"
  read -r _ _ _ jin jout una dbl ovl still retried < <(tail -n 1 "$work/checks.log")
  if [ $((check % 12)) = 0 ] || [ $((una + dbl + still)) -gt 0 ]; then
    echo "   [$(since "$start") s] check $check: $jin VIPs in force judged, $jout out of force; unanswered $una, two MACs $dbl, drain overlap $ovl, removed but answered $still, answered only on a retry $retried"
  fi
done
for p in $loops; do wait "$p" 2>/dev/null || true; done
loops=""
elapsed=$(since "$start")

# ---------------------------------------------------------------- verdict
note "after ${elapsed} s"
read -r checks judged una dbl ovl still retried retried_max < <(awk '{ n++; j += $4; u += $6; d += $7; o += $8; s += $9; r += $10; if ($10 > m) m = $10 }
  END { print n + 0, j + 0, u + 0, d + 0, o + 0, s + 0, r + 0, m + 0 }' "$work/checks.log")
restarts_crash=$(awk '$4 == "crash"' "$work/restarts.log" 2>/dev/null | wc -l)
restarts_drain=$(awk '$4 == "drain"' "$work/restarts.log" 2>/dev/null | wc -l)
churns=$(( $(wc -l <"$work/churn.log") - 1 ))
scan_s=$(awk '{ d = $3 - $2; s += d; if (d > m) m = d } END { printf "%.2f %.2f", NR ? s / NR : 0, m }' "$work/checks.log")
echo "   checks: $checks (every ${check_every} s; scan mean/max ${scan_s% *}/${scan_s#* } s), $judged VIP answers judged"
echo "   churn: $churns reloads of 25 out and 25 in; restarts: $restarts_crash kill -9, $restarts_drain drains"
echo "   VIPs in force with no answer: $una; with two MACs: $dbl; removed VIPs still answered: $still"
echo "   two MACs where one is a draining speaker's (by design, until it exits): $ovl"
echo "   answered only on a retry (250 ms or more late: a takeover under way): $retried in all, at most $retried_max in one check"

warmup=$(( seconds / 3 < 60 ? seconds / 3 : 60 ))
hz=$(getconf CLK_TCK)
long_lived=$((nodes - restarted))
problems=()
echo "   per speaker: RSS and fds at ${warmup} s (after the warm-up) → at the end; CPU (% of one core)"
for i in $(seq 1 "$nodes"); do
  if [ "$i" -le "$long_lived" ]; then
    read -r p0 rss0 fd0 tick0 t0 p1 rss1 fd1 tick1 t1 < <(awk -v n="$i" -v w="$warmup" '
      $2 == n && $1 >= w && !first { first = $0 }
      $2 == n { last = $0 }
      END { split(first, f, " "); split(last, l, " "); print f[3], f[4], f[5], f[6], f[1], l[3], l[4], l[5], l[6], l[1] }' \
      "$work/samples.log")
    [ "$p0" = "$p1" ] || problems+=("n$i is long-lived but its pid changed ($p0 → $p1)")
    cpu=$(awk -v a="$tick0" -v b="$tick1" -v s="$t0" -v e="$t1" -v hz="$hz" \
      'BEGIN { printf "%.1f", (e > s) ? (b - a) / hz / (e - s) * 100 : 0 }')
    printf '   n%s (long-lived): RSS %.1f → %.1f MiB, fds %s → %s, CPU %s %%\n' "$i" \
      "$(awk -v k="$rss0" 'BEGIN { print k / 1024 }')" "$(awk -v k="$rss1" 'BEGIN { print k / 1024 }')" \
      "$fd0" "$fd1" "$cpu"
    awk -v a="$rss0" -v b="$rss1" 'BEGIN { g = b - a; exit !(g <= 2048 || g <= a * 0.10) }' ||
      problems+=("n$i RSS grew from $rss0 to $rss1 kB")
    [ $((fd1 - fd0)) -le 2 ] || problems+=("n$i open descriptors grew from $fd0 to $fd1")
  else
    # CPU over every instance: the ticks each instance had used when it was stopped, plus the
    # running one's; over the whole soak.
    ticks=$(awk -v n="$i" '$2 == n && ($4 == "crash" || $4 == "drain") { s += $5 } END { print s + 0 }' "$work/restarts.log" 2>/dev/null || echo 0)
    p=$(speaker_pid "$i")
    [ -n "$p" ] && ticks=$((ticks + $(cpu_ticks "$p")))
    instances=$(( $(awk -v n="$i" '$2 == n && $4 != "exited"' "$work/restarts.log" 2>/dev/null | wc -l) + 1 ))
    rss_list=$(awk -v n="$i" '$2 == n { r[$3] = $4 } END { for (p in r) printf "%.1f ", r[p] / 1024 }' "$work/samples.log")
    printf '   n%s (restarted): %s instances, last RSS of each (MiB): %s; CPU %s %% (all instances, whole run)\n' \
      "$i" "$instances" "$rss_list" \
      "$(awk -v t="$ticks" -v hz="$hz" -v s="$elapsed" 'BEGIN { printf "%.1f", t / hz / s * 100 }')"
  fi
done

# Exits: a long-lived speaker must still run; a drained one must have exited 0.
for i in $(seq 1 "$long_lived"); do
  [ ! -s "$work/exits-n$i" ] || problems+=("long-lived n$i exited: $(cat "$work/exits-n$i")")
done
while read -r _ i p kind _; do
  [ "$kind" = drain ] || continue
  rc=$(awk -v p="$p" '$2 == p { print $3 }' "$work/exits-n$i" 2>/dev/null)
  [ "$rc" = 0 ] || problems+=("n$i (pid $p) exited with ${rc:-no status} after its drain")
done < <(awk '$4 == "crash" || $4 == "drain"' "$work/restarts.log" 2>/dev/null)
if grep -l "panicked" "$work"/n*.log >/dev/null 2>&1; then
  problems+=("a speaker panicked: $(grep -h -m1 panicked "$work"/n*.log)")
fi
# Every speaker still sees every member (bounded: the latest restart may still be joining).
for i in $(seq 1 "$nodes"); do
  alive=0
  for _ in $(seq 1 100); do
    alive=$({ http "$i" /metrics 2>/dev/null || true; } |
      awk '$1 == "swimlb_speaker_gossip_members{state=\"alive\"}" { print $2 + 0 }')
    [ "${alive:-0}" = "$nodes" ] && break
    sleep 0.1
  done
  [ "${alive:-0}" = "$nodes" ] || problems+=("n$i sees ${alive:-0} alive members at the end, not $nodes")
done
[ "$checks" -gt 0 ] || problems+=("no check ran")
[ $((una + dbl + still)) = 0 ] || problems+=("$una unanswered, $dbl doubled, $still removed-but-answered (first: $(head -n 3 "$work/bad.log" | tr '\n' ';'))")

if [ ${#problems[@]} -gt 0 ]; then
  printf '   problem: %s\n' "${problems[@]}" >&2
  fail "soak: ${#problems[@]} problems"
fi
note "soak passed"
