#!/usr/bin/env bash
# swimlb installed as users install it, on a real 3-node Kubernetes v1.20.2 cluster built from
# Debian packages inside network namespaces, driven only with kubectl and curl (README, "Install in
# a cluster"). Needs root.
#
# Topology (all created here with a per-run prefix, removed on exit):
#   <p>-br  the LAN: bridge br0, one port per namespace below
#   <p>-cp  control plane, eth0 192.0.2.10/24: etcd (loopback), kube-apiserver on 192.0.2.10,
#           kube-controller-manager, kube-scheduler
#   <p>-nI  node-I (I = 1..3), eth0 192.0.2.1I/24: containerd, kubelet, kube-proxy (iptables);
#           pods on a cni0 bridge in 203.0.113.(64·(I-1))/26, routed between the nodes
#   <p>-cl  the client, eth0 192.0.2.100/24: curl
# Services get cluster IPs from 198.51.100.0/24, LoadBalancer IPs from the legacy ConfigMap's pool
# 192.0.2.30-192.0.2.49. No default route anywhere (pods route the three documentation ranges via
# their node). Every node also has its own mount namespace (private /run, /var/log, an overlay on
# /var/lib, and files bound over the /proc/sys entries the kubelet would otherwise set on the host,
# with --protect-kernel-defaults) and its own cgroup root. The host's sysctls, links, addresses,
# routes and iptables rules are compared before and after: any change fails the test.
#
# Steps: install (Secret, kubectl apply -k deploy/ as 1.20 takes it, tests/cluster/kubernetes-1.20/,
# with the images scripts/image.sh builds), the
# DaemonSet Ready on 3 nodes and the controller's 2 replicas Ready with one Lease holder; a pool
# from the legacy ConfigMap, two nginx-like Deployments exposed as LoadBalancer Services, curl -I
# from the client for both VIPs, owners = rendezvous owners; failover (the owner's cable pulled and
# its kubelet stopped) as the client's curl loop sees it; externalTrafficPolicy Local following the
# ready pod; a rollout restart of the speakers with no failed request; the control plane killed
# for 60 s with a node failing in it (no VIP withdrawn, the failover still made, no address
# changed, a new Service served after the return); with CLUSTER_SOAK_SECONDS, a soak of node cuts
# and backend rollouts with every swimlb process's RSS and fds watched; delete -k leaves nothing.
#
# CLUSTER_HOLD=SECONDS keeps the cluster up after the install for a look around.
# CLUSTER_SOAK_SECONDS=SECONDS runs the soak (step 7) for that long (0, the default: no soak).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

[ "$(id -u)" = 0 ] || { echo "the cluster test needs root" >&2; exit 2; }
for tool in ip nsenter unshare containerd containerd-shim-runc-v2 runc ctr umoci iptables curl \
  busybox openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 2; }
done
[ -x /usr/lib/cni/bridge ] || { echo "missing CNI plugins (run scripts/setup.sh)" >&2; exit 2; }

t0=$EPOCHREALTIME
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
note() { echo "== [$(elapsed_since "$t0") s] $*"; }
fail() {
  echo "FAIL: $*" >&2
  if [ "${cluster_up:-0}" = 1 ]; then
    kubectl get nodes,pods,svc,endpointslices -A -o wide >&2 || true
    for pod in $(kubectl -n swimlb-system get pods -o name 2>/dev/null); do
      echo "--- $pod" >&2
      kubectl -n swimlb-system logs --tail 12 "$pod" >&2 || true
    done
  fi
  exit 1
}

kube=$(scripts/kubernetes.sh)
note "Kubernetes v1.20.2 components in $kube"
image_dir=$repo/target/images
scripts/image.sh "$image_dir" >/dev/null
note "swimlb images in $image_dir"

prefix="swcl$$"
br=$prefix-br cp=$prefix-cp cl=$prefix-cl
node_count=3
cluster=$(mktemp -d /var/tmp/swimlb-cluster.XXXXXX)
declare -A holder=()
node_procs=()
cgroup_root=/swimlb-$prefix

# ---------------------------------------------------------------- host state, checked on exit
host_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.forwarding net.ipv6.conf.all.forwarding net.ipv4.conf.all.route_localnet
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.bridge.bridge-nf-call-iptables)
host_state() {
  local key
  for key in "${host_sysctls[@]}"; do
    # A key that appears later (a module loaded) is not a change of the host's settings.
    [ -n "$(grep -x "$key=.*" "$cluster/host-before" 2>/dev/null)" ] || [ ! -s "$cluster/host-before" ] || continue
    if sysctl -n "$key" >/dev/null 2>&1; then echo "$key=$(sysctl -n "$key")"; fi
  done
  ip -o link show | awk '{print $2}'
  ip -o addr show | awk '{print $2, $3, $4}'
  ip route show table all
  iptables-save 2>/dev/null | grep -v '^#' || true
}
host_state >"$cluster/host-before"

# ---------------------------------------------------------------- cleanup
cluster_cleanup() {
  set +e
  local i pid round
  # Killed on purpose below: no "Killed" job reports for them.
  for pid in ${node_procs[@]+"${node_procs[@]}"}; do disown "$pid" 2>/dev/null; done
  for pid in "${loop_pid:-}" "${sampler_pid:-}"; do [ -z "$pid" ] || kill "$pid" 2>/dev/null; done
  # Node processes first (kubelets would restart containers), then everything still in a node's
  # network namespace or cgroups (shims, pod processes), then the mount-namespace holders.
  for i in "${!holder[@]}"; do
    for pid in $(ip netns pids "$prefix-n$i" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for round in 1 2 3 4 5; do
    local left=0
    for pid in $(find /sys/fs/cgroup/ -path "*$cgroup_root*" -name tasks -exec cat {} + 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null && left=1
    done
    for i in "${!holder[@]}"; do
      for pid in $(ip netns pids "$prefix-n$i" 2>/dev/null); do kill -9 "$pid" 2>/dev/null && left=1; done
    done
    [ "$left" = 0 ] && break
    sleep 0.5
  done
  for i in "${!holder[@]}"; do kill -9 "${holder[$i]}" 2>/dev/null; done
  # The control plane goes with the library's cleanup; anything else left in a namespace goes now.
  for ns in "$cl" "$br"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  find /sys/fs/cgroup/ -depth -type d -path "*$cgroup_root*" -exec rmdir {} + 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-"); do ip netns del "$ns"; done
  host_state >"$cluster/host-after"
  if ! diff -u "$cluster/host-before" "$cluster/host-after" >&2; then
    echo "FAIL: the host's sysctls, links, addresses, routes or iptables rules changed" >&2
    cluster_status=1
  else
    echo "== host unchanged: ${#host_sysctls[@]} sysctls, links, addresses, routes, iptables rules"
  fi
  if [ "${cluster_status:-0}" != 0 ] || [ "${keep_logs:-0}" = 1 ]; then
    for f in "$cluster"/n*/*.log "$cluster"/cp/*.log; do
      [ -f "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  rm -rf "$cluster"
}
cluster_status=0
on_exit() {
  local status=$?
  [ "$status" = 0 ] || keep_logs=1
  cluster_cleanup
  [ "$cluster_status" = 0 ] || exit 1
  exit "$status"
}
trap on_exit EXIT
# A signal ends the script through exit, so the EXIT trap cleans up.
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the network
node_ip() { echo "192.0.2.1$1"; }
pod_subnet() { echo "203.0.113.$((64 * ($1 - 1)))/26"; }
make_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}
make_ns "$br"
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up
attach() { # namespace, port, address
  ip -n "$br" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$br" link set "$2" master br0 up
  ip -n "$1" link set eth0 up
  ip -n "$1" addr add "$3/24" dev eth0
}
cable() { ip -n "$br" link set "p$1" "$2"; }
make_ns "$cp"
attach "$cp" pcp 192.0.2.10
make_ns "$cl"
attach "$cl" pcl 192.0.2.100
for i in $(seq 1 $node_count); do
  make_ns "$prefix-n$i"
  attach "$prefix-n$i" "p$i" "$(node_ip "$i")"
  # Forwarding for kube-proxy and the pods, in the node's namespace only.
  ip netns exec "$prefix-n$i" sysctl -qw net.ipv4.ip_forward=1
  # Cluster IPs need a route for the first lookup; kube-proxy's DNAT then picks the endpoint.
  ip -n "$prefix-n$i" route add 198.51.100.0/24 dev eth0
done
for i in $(seq 1 $node_count); do
  for ns in "$cp" $(for j in $(seq 1 $node_count); do [ "$j" = "$i" ] || echo "$prefix-n$j"; done); do
    ip -n "$ns" route add "$(pod_subnet "$i")" via "$(node_ip "$i")"
  done
done
in_cp() { nsenter --net="/run/netns/$cp" "$@"; }
in_client() { nsenter --net="/run/netns/$cl" "$@"; }
kubectl() { nsenter --net="/run/netns/$cp" kubectl "$@"; }

# ---------------------------------------------------------------- control plane
pki=$cluster/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=swimlb-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$pki/apiserver.key" \
  -out "$pki/apiserver.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:192.0.2.10,IP:198.51.100.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
  "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
  >"$pki/apiserver.ext"
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 1 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null

cluster_start=$EPOCHREALTIME
apiserver_netns=$cp
apiserver_address=192.0.2.10
apiserver_args=(--service-cluster-ip-range 198.51.100.0/24 --endpoint-reconciler-type lease
  --kubelet-preferred-address-types InternalIP --allow-privileged=true
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key")
extra_cleanup=cluster_cleanup
# shellcheck source=scripts/lib/apiserver.sh
source scripts/lib/apiserver.sh
# The library's exit trap runs cluster_cleanup first; keep this script's verdict on the host.
trap 'status=$?; [ "$status" = 0 ] || keep_logs=1; cleanup; [ "$cluster_status" = 0 ] || exit 1; exit $status' EXIT
mkdir -p "$cluster/cp"
# The controller manager and the scheduler; their pids are in cp_controllers (and pids).
start_cp_controllers() {
  nsenter --net="/run/netns/$cp" "$kube/kube-controller-manager" --kubeconfig "$KUBECONFIG" --leader-elect=false \
    --port 0 --secure-port 0 \
    --service-account-private-key-file "$work/service-account.key" --root-ca-file "$pki/ca.crt" \
    --node-monitor-period 2s --node-monitor-grace-period 20s \
    >>"$cluster/cp/controller-manager.log" 2>&1 &
  cp_controllers=($!)
  nsenter --net="/run/netns/$cp" "$kube/kube-scheduler" --kubeconfig "$KUBECONFIG" --leader-elect=false --port 0 \
    --secure-port 0 >>"$cluster/cp/scheduler.log" 2>&1 &
  cp_controllers+=($!)
  pids+=("${cp_controllers[@]}")
}
start_cp_controllers

# ---------------------------------------------------------------- nodes
# Values the kubelet requires of these tunables (--protect-kernel-defaults makes it check, not
# write); bound over /proc/sys inside the node's mount namespace only.
kubelet_tunables=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)
pause_image=swimlb.invalid/pause:v1.20.2
http_image=swimlb.invalid/http:1

# Images every node imports: the sandbox (pause) and the test's HTTP backend.
mkdir -p "$cluster/images"
# shellcheck source=scripts/lib/oci.sh
source scripts/lib/oci.sh
oci_rootfs "$cluster/images/pause-root" "$kube/pause"
oci_image "$cluster/images/pause.tar" v1.20.2 "$cluster/images/pause-root" 65535:65535 /usr/local/bin/pause
oci_rootfs "$cluster/images/http-root" "$(command -v busybox)"
mkdir -p "$cluster/images/http-root/www"
echo "swimlb test backend" >"$cluster/images/http-root/www/index.html"
oci_image "$cluster/images/http.tar" 1 "$cluster/images/http-root" 0:0 /usr/local/bin/busybox \
  httpd -f -p 80 -h /www

# in_node I CMD...: runs CMD in node I's network and mount namespaces. Processes started in the
# background use nsenter directly (node_enter), so $! is the process itself: nsenter execs it.
in_node() { local i=$1; shift; nsenter --net="/run/netns/$prefix-n$i" --mount="/proc/${holder[$i]}/ns/mnt" "$@"; }

start_node() {
  local i=$1 d=$cluster/n$1 name=node-$1 ctrl t
  mkdir -p "$d/varlib-up" "$d/varlib-work" "$d/tunables" "$d/cni" "$d/containerd" "$d/opt"
  for t in "${kubelet_tunables[@]}"; do
    mkdir -p "$d/tunables/$(dirname "${t%%=*}")"
    echo "${t#*=}" >"$d/tunables/${t%%=*}"
  done
  # The mount namespace, held by a sleeping process until the test ends.
  unshare --mount --propagation private bash -c '
    set -e
    d=$1; shift
    mount -t tmpfs tmpfs /run
    mount -t tmpfs tmpfs /var/log
    mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$d/varlib-up,workdir=$d/varlib-work" /var/lib
    for t in "$@"; do mount --bind "$d/tunables/${t%%=*}" "/proc/sys/${t%%=*}"; done
    exec sleep infinity' bash "$d" "${kubelet_tunables[@]}" &
  holder[$i]=$!
  node_procs+=($!)
  for _ in $(seq 1 50); do
    [ "$(readlink "/proc/${holder[$i]}/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] &&
      grep -q " /var/lib overlay" "/proc/${holder[$i]}/mounts" && break
    sleep 0.1
  done
  # This node's cgroup root in every v1 hierarchy (the kubelet insists it exists).
  for ctrl in /sys/fs/cgroup/*/; do
    [ "$ctrl" = /sys/fs/cgroup/unified/ ] && continue
    mkdir -p "$ctrl$cgroup_root-n$i"
    if [ -f "$ctrl/cpuset.cpus" ]; then
      cat "$ctrl/cpuset.cpus" >"$ctrl$cgroup_root-n$i/cpuset.cpus"
      cat "$ctrl/cpuset.mems" >"$ctrl$cgroup_root-n$i/cpuset.mems"
    fi
  done
  node_enter=(nsenter --net="/run/netns/$prefix-n$i" --mount="/proc/${holder[$i]}/ns/mnt")
  cat >"$d/cni/10-swimlb-test.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "swimlb-test", "plugins": [{
  "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$(pod_subnet "$i")"}]],
           "routes": [{"dst": "192.0.2.0/24"}, {"dst": "203.0.113.0/24"}, {"dst": "198.51.100.0/24"}]}}]}
EOF
  cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # No CAP_SYS_RESOURCE here: never lower a container's oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
EOF
  "${node_enter[@]}" containerd --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 &
  node_procs+=($!)
  for _ in $(seq 1 100); do
    in_node "$i" ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && break
    sleep 0.1
  done
  local image
  for image in "pause:swimlb.invalid/pause" "http:swimlb.invalid/http" \
    "speaker:docker.io/swimlb/speaker" "controller:docker.io/swimlb/controller"; do
    local file=${image%%:*} base=${image#*:} tarball
    case $file in speaker | controller) tarball=$image_dir/$file.tar ;; *) tarball=$cluster/images/$file.tar ;; esac
    in_node "$i" ctr --address /run/containerd/containerd.sock -n k8s.io images import \
      --base-name "$base" "$tarball" >/dev/null
  done
  write_kubeconfig "$d/kubeconfig" "$token"
  start_kubelet "$i"
  "${node_enter[@]}" "$kube/kube-proxy" --kubeconfig "$d/kubeconfig" --hostname-override "$name" \
    --bind-address "$(node_ip "$i")" --proxy-mode iptables --cluster-cidr 203.0.113.0/24 \
    --oom-score-adj 0 --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 \
    --conntrack-tcp-timeout-close-wait 0 --metrics-bind-address 127.0.0.1:10249 \
    --iptables-min-sync-period 0s \
    >"$d/kube-proxy.log" 2>&1 &
  node_procs+=($!)
}

declare -A kubelet_pid=()
start_kubelet() {
  local i=$1 d=$cluster/n$1
  node_enter=(nsenter --net="/run/netns/$prefix-n$i" --mount="/proc/${holder[$i]}/ns/mnt")
  "${node_enter[@]}" "$kube/kubelet" --kubeconfig "$d/kubeconfig" --hostname-override "node-$i" \
    --node-ip "$(node_ip "$i")" --address "$(node_ip "$i")" --read-only-port 0 \
    --container-runtime remote --container-runtime-endpoint unix:///run/containerd/containerd.sock \
    --root-dir /var/lib/kubelet --volume-plugin-dir /var/lib/kubelet/volume-plugins \
    --cgroup-driver cgroupfs --cgroup-root "$cgroup_root-n$i" \
    --fail-swap-on=false --protect-kernel-defaults=true --oom-score-adj 0 \
    --anonymous-auth=true --authorization-mode AlwaysAllow --resolv-conf "" \
    --pod-infra-container-image "$pause_image" --serialize-image-pulls=false \
    --node-status-update-frequency 2s --eviction-hard "memory.available<100Mi" \
    >>"$d/kubelet.log" 2>&1 &
  kubelet_pid[$i]=$!
  node_procs+=($!)
}

for i in $(seq 1 $node_count); do start_node "$i"; done
note "nodes started; waiting for them to be Ready"
for _ in $(seq 1 120); do
  [ "$(kubectl get nodes -o name 2>/dev/null | wc -l)" = 3 ] && break
  sleep 0.5
done
kubectl wait --for condition=Ready --timeout 120s node/node-1 node/node-2 node/node-3 >/dev/null ||
  { kubectl get nodes -o wide >&2 || true; fail "nodes not Ready"; }
cluster_seconds=$(elapsed_since "$cluster_start")
note "3 nodes Ready: cluster started in $cluster_seconds s"
kubectl get nodes -o wide
cluster_up=1

if [ "${CLUSTER_HOLD:-0}" != 0 ]; then
  note "holding for $CLUSTER_HOLD s (KUBECONFIG=$KUBECONFIG; nsenter --net=/run/netns/$cp kubectl ...)"
  sleep "$CLUSTER_HOLD"
fi

# ---------------------------------------------------------------- 1. install, as the README says
install_start=$EPOCHREALTIME
kubectl create namespace swimlb-system >/dev/null
kubectl create secret generic swimlb-gossip-key -n swimlb-system \
  --from-literal=key="0 $(openssl rand -hex 32)" >/dev/null
kubectl apply -k tests/cluster/kubernetes-1.20/ >/dev/null
kubectl -n swimlb-system rollout status daemonset/swimlb-speaker --timeout 300s >/dev/null ||
  { kubectl -n swimlb-system get pods -o wide >&2; fail "speaker DaemonSet not Ready"; }
ds_seconds=$(elapsed_since "$install_start")
ready=$(kubectl -n swimlb-system get daemonset swimlb-speaker -o jsonpath='{.status.numberReady}')
[ "$ready" = 3 ] || fail "speaker DaemonSet has $ready Ready pods, want 3"
note "speaker DaemonSet Ready on 3 nodes $ds_seconds s after apply -k"
kubectl -n swimlb-system rollout status deployment/swimlb-controller --timeout 120s >/dev/null ||
  { kubectl -n swimlb-system get pods -o wide >&2; fail "controller Deployment not Ready"; }
ready=$(kubectl -n swimlb-system get deployment swimlb-controller -o jsonpath='{.status.readyReplicas}')
[ "$ready" = 2 ] || fail "controller Deployment has $ready Ready replicas, want 2"
controller_seconds=$(elapsed_since "$install_start")
holder_name=""
for _ in $(seq 1 60); do
  holder_name=$(kubectl -n swimlb-system get lease swimlb-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [ -n "$holder_name" ] && break
  sleep 1
done
kubectl -n swimlb-system get pod "$holder_name" >/dev/null 2>&1 ||
  fail "the controller Lease is held by '$holder_name', not a controller pod"
note "controller: 2 replicas Ready $controller_seconds s after apply -k; $holder_name holds the Lease"
kubectl -n swimlb-system get pods -o wide

# ---------------------------------------------------------------- helpers on the speakers
# vips_of I: the VIPs node-I's speaker announces (its /vips, from the client).
vips_of() { in_client curl -s -m 2 "http://$(node_ip "$1"):7472/vips" | awk '{print $1}'; }
# owners_of VIP [NODE...]: the nodes (indexes) whose speakers announce VIP.
owners_of() {
  local vip=$1 i out=""
  shift
  for i in ${*:-1 2 3}; do
    if vips_of "$i" | grep -qx "$vip"; then out="$out $i"; fi
  done
  echo "${out# }"
}
# rendezvous_owner VIP NODE_INDEX...: the owner the README's score gives among these nodes.
rendezvous_owner() {
  python3 - "$@" <<'PY'
import ipaddress, sys
M = 2**64 - 1
def fnv(state, data):
    for b in data:
        state = ((state ^ b) * 0x100000001b3) & M
    return state
def fmix(k):
    k ^= k >> 33; k = (k * 0xff51afd7ed558ccd) & M
    k ^= k >> 33; k = (k * 0xc4ceb9fe1a85ec53) & M
    return k ^ (k >> 33)
vip = ipaddress.ip_address(sys.argv[1]).packed
scores = [(fmix(fnv(fnv(0xcbf29ce484222325, f"node-{i}".encode()), b"\0" + vip)), f"node-{i}", i)
          for i in sys.argv[2:]]
# Highest score wins; ties go to the smaller name.
print(max(scores, key=lambda s: (s[0], [-ord(c) for c in s[1]]))[2])
PY
}
# wait_owner VIP WANT [NODE...]: until exactly node WANT announces VIP (bounded, 30 s).
wait_owner() {
  local vip=$1 want=$2 got=""
  shift 2
  for _ in $(seq 1 60); do
    got=$(owners_of "$vip" "$@")
    [ "$got" = "$want" ] && return 0
    sleep 0.5
  done
  fail "$vip announced by nodes '$got', want node $want"
}
# http_code VIP: the status code of curl -I http://VIP:8080 from the client.
http_code() { in_client curl -sI -o /dev/null -w '%{http_code}' --connect-timeout 1 -m 2 "http://$1:8080/" || true; }

# ---------------------------------------------------------------- 2. the walkthrough
kubectl apply -f deploy/examples/legacy-configmap.yaml >/dev/null
kubectl create deploy nginx --image "$http_image" --port 80 >/dev/null
kubectl create deploy nginx2 --image "$http_image" --port 80 >/dev/null
kubectl rollout status deploy/nginx --timeout 120s >/dev/null || fail "nginx not Ready"
kubectl rollout status deploy/nginx2 --timeout 120s >/dev/null || fail "nginx2 not Ready"
expose_start=$EPOCHREALTIME
kubectl expose deploy nginx --port 8080 --target-port 80 --type LoadBalancer >/dev/null
kubectl expose deploy nginx2 --port 8080 --target-port 80 --type LoadBalancer >/dev/null
vip1="" vip2=""
for _ in $(seq 1 60); do
  vip1=$(kubectl get svc nginx -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  vip2=$(kubectl get svc nginx2 -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$vip1" ] && [ -n "$vip2" ] && break
  sleep 0.5
done
kubectl get svc
[ "$(printf '%s\n' "$vip1" "$vip2" | sort | tr '\n' ' ')" = "192.0.2.30 192.0.2.31 " ] ||
  fail "the Services got '$vip1' and '$vip2', want the pool's first two addresses"
first_200=""
for vip in "$vip1" "$vip2"; do
  for _ in $(seq 1 100); do
    [ "$(http_code "$vip")" = 200 ] && break
    sleep 0.2
  done
  [ "$(http_code "$vip")" = 200 ] || fail "curl -I http://$vip:8080 did not return 200"
  [ -n "$first_200" ] || first_200=$(elapsed_since "$expose_start")
done
note "curl -I http://VIP:8080 returns 200 for $vip1 and $vip2 (first 200 $first_200 s after expose)"
declare -A owner=()
for vip in "$vip1" "$vip2"; do
  owner[$vip]=$(rendezvous_owner "$vip" 1 2 3)
  wait_owner "$vip" "${owner[$vip]}"
  note "$vip is announced by node-${owner[$vip]}, its rendezvous owner"
done

# ---------------------------------------------------------------- 3. failover
# curl_loop FILE COUNT: COUNT requests to both VIPs, 50 ms apart, one "time vip code connect"
# line each (connect: seconds to the TCP handshake's end, 0 when it never completed).
curl_loop() {
  local file=$1 count=$2 n vip
  for n in $(seq 1 "$count"); do
    for vip in "$vip1" "$vip2"; do
      echo "$EPOCHREALTIME $vip $(in_client curl -s -o /dev/null -w '%{http_code} %{time_connect}' \
        --connect-timeout 0.25 -m 1 "http://$vip:8080/" || true)"
    done
    sleep 0.05
  done >"$file"
}
# loop_outage LOG VIP FROM [TO]: "failed back" for VIP's requests in a curl_loop LOG from FROM
# (to TO): how many failed, and when (seconds after FROM) the first 200 after the last failure
# came ("-": none did).
loop_outage() {
  awk -v v="$2" -v from="$3" -v to="${4:-}" '
    $2 == v && $1 >= from && (to == "" || $1 <= to) { n++; t[n] = $1; ok[n] = ($3 == 200); if (!ok[n]) { bad++; last = n } }
    END {
      back = "-"
      for (i = last + 1; i <= n; i++) if (ok[i]) { back = sprintf("%.3f", t[i] - from); break }
      print bad + 0, back
    }' "$1"
}
# other_nodes I: the indexes of the nodes other than node-I.
other_nodes() { for i in 1 2 3; do [ "$i" = "$1" ] || echo "$i"; done | tr '\n' ' '; }
# move_backends_off I: cordons node-I and moves the Deployments' pods off it, until both VIPs
# answer again. The backends leave a node before it fails, so what is measured is swimlb's
# failover, not the minutes the node controller takes to drop a dead node's endpoints.
move_backends_off() {
  local vip
  kubectl cordon "node-$1" >/dev/null
  kubectl delete pods -l app --field-selector "spec.nodeName=node-$1" --grace-period 1 >/dev/null
  kubectl rollout status deploy/nginx --timeout 120s >/dev/null || fail "nginx not Ready off node-$1"
  kubectl rollout status deploy/nginx2 --timeout 120s >/dev/null || fail "nginx2 not Ready off node-$1"
  for vip in "$vip1" "$vip2"; do
    for _ in $(seq 1 40); do [ "$(http_code "$vip")" = 200 ] && break; sleep 0.25; done
  done
}
victim=${owner[$vip1]}
survivors=$(other_nodes "$victim")
move_backends_off "$victim"
curl_loop "$cluster/failover.log" 150 &
loop_pid=$!
sleep 2
cut_at=$EPOCHREALTIME
cable "$victim" down
kill "${kubelet_pid[$victim]}"
note "pulled node-$victim's cable and stopped its kubelet"
wait "$loop_pid"
for vip in "$vip1" "$vip2"; do
  new=$(rendezvous_owner "$vip" $survivors)
  if [ "${owner[$vip]}" != "$victim" ]; then
    [ "$new" = "${owner[$vip]}" ] || fail "rendezvous: $vip should stay on node-${owner[$vip]}"
  fi
  wait_owner "$vip" "$new" $survivors
  read -r failed back < <(loop_outage "$cluster/failover.log" "$vip" "$cut_at")
  if [ "${owner[$vip]}" = "$victim" ]; then
    [ "$back" != - ] || fail "$vip never answered again after node-$victim's cable was pulled"
    note "failover of $vip: node-$victim -> node-$new; the client's loop failed $failed requests, first 200 again ${back} s after the cut"
    awk -v b="$back" 'BEGIN { exit !(b <= 3) }' || fail "failover of $vip took $back s (> 3 s)"
    if awk -v b="$back" 'BEGIN { exit !(b <= 1) }'; then
      echo "   target met:    failover as the client saw it = $back s (≤ 1 s, the fast preset's p99)"
    else
      echo "   target MISSED: failover as the client saw it = $back s (> 1 s, the fast preset's p99)"
    fi
    failover_seconds=$back
  else
    [ "$failed" = 0 ] || fail "$vip (on node-${owner[$vip]}, not the failed node) lost $failed requests"
    note "$vip stayed on node-${owner[$vip]} with no failed request"
  fi
  owner[$vip]=$new
done
# Back in: cable plugged, kubelet started; the node's speaker rejoins the gossip cluster.
cable "$victim" up
start_kubelet "$victim"
kubectl wait --for condition=Ready --timeout 60s "node/node-$victim" >/dev/null || fail "node-$victim not Ready again"
kubectl uncordon "node-$victim" >/dev/null
for vip in "$vip1" "$vip2"; do
  owner[$vip]=$(rendezvous_owner "$vip" 1 2 3)
  wait_owner "$vip" "${owner[$vip]}"
done
note "node-$victim back: both VIPs on their rendezvous owners again"

# ---------------------------------------------------------------- 4. externalTrafficPolicy Local
pod_node() { kubectl get pods -l "app=$1" --field-selector status.phase=Running \
  -o jsonpath='{.items[0].spec.nodeName}' | sed 's/^node-//'; }
kubectl patch svc nginx -p '{"spec":{"externalTrafficPolicy":"Local"}}' >/dev/null
local_node=$(pod_node nginx)
wait_owner "$vip1" "$local_node"
[ "$(http_code "$vip1")" = 200 ] || fail "Local $vip1 does not answer 200 from node-$local_node"
note "Local: $vip1 is announced by node-$local_node, the node with nginx's ready pod"
# Move the pod: the VIP follows it.
kubectl cordon "node-$local_node" >/dev/null
kubectl delete pod -l app=nginx --wait=false --grace-period 1 >/dev/null
moved=""
for _ in $(seq 1 120); do
  moved=$(kubectl get pods -l app=nginx -o jsonpath='{range .items[?(@.status.containerStatuses[0].ready==true)]}{.spec.nodeName}{"\n"}{end}' |
    sed 's/^node-//' | grep -vx "$local_node" | head -n1 || true)
  [ -n "$moved" ] && break
  sleep 0.5
done
[ -n "$moved" ] || fail "nginx's pod did not become ready on another node"
wait_owner "$vip1" "$moved"
kubectl uncordon "node-$local_node" >/dev/null
for _ in $(seq 1 20); do [ "$(http_code "$vip1")" = 200 ] && break; sleep 0.25; done
[ "$(http_code "$vip1")" = 200 ] || fail "Local $vip1 does not answer 200 from node-$moved"
note "Local: the pod moved to node-$moved and $vip1 followed it (EndpointSlices discovery.k8s.io/v1beta1)"
kubectl patch svc nginx -p '{"spec":{"externalTrafficPolicy":"Cluster"}}' >/dev/null
wait_owner "$vip1" "$(rendezvous_owner "$vip1" 1 2 3)"

# ---------------------------------------------------------------- 5. rollout restart
curl_loop "$cluster/rollout.log" 3000 &
loop_pid=$!
sleep 1
rollout_start=$EPOCHREALTIME
kubectl -n swimlb-system rollout restart daemonset/swimlb-speaker >/dev/null
kubectl -n swimlb-system rollout status daemonset/swimlb-speaker --timeout 300s >/dev/null ||
  fail "the speaker rollout did not finish"
rollout_seconds=$(elapsed_since "$rollout_start")
sleep 2
kill "$loop_pid" 2>/dev/null || true
wait "$loop_pid" 2>/dev/null || true
read -r total failed < <(awk '{ n++ } $3 != 200 { bad++ } END { print n + 0, bad + 0 }' "$cluster/rollout.log")
note "rollout restart of the speakers: $rollout_seconds s; the client's loop sent $total requests, $failed failed"
[ "$total" -gt 0 ] || fail "the client loop sent nothing during the rollout"
kill -0 "$loop_pid" 2>/dev/null || [ "$(wc -l <"$cluster/rollout.log")" -lt 6000 ] ||
  echo "   note: the client loop ended before the rollout did; its last part was not watched"
[ "$failed" = 0 ] || fail "$failed requests failed during the rollout restart"
for vip in "$vip1" "$vip2"; do wait_owner "$vip" "$(rendezvous_owner "$vip" 1 2 3)"; done

# ---------------------------------------------------------------- 6. API server outage
# The control plane stops for 60 s: the API server is killed (connections refused, every watch
# broken), the controller manager and the scheduler with it, as when the control-plane node goes
# down (with leader election, which these single instances run without, they would exit once
# their lease lapsed and start afresh anyway). 15 s in, the node announcing $vip1 fails (cable
# and kubelet; its backends moved off it first, as in step 3). Every second each speaker's /vips
# is read from the client, and the client's curl loop runs throughout. Fails when a VIP is
# withdrawn in the outage (no speaker claims it, or a VIP of a healthy owner fails a request),
# when the failover takes over 3 s, when a Service's address changes, or when a Service created
# after the return is not allocated and answering within 180 s (claimed by a speaker within 30 s).
for vip in "$vip1" "$vip2"; do owner[$vip]=$(rendezvous_owner "$vip" 1 2 3); done
victim=${owner[$vip1]}
survivors=$(other_nodes "$victim")
move_backends_off "$victim"
note "backends moved off node-$victim, which announces $vip1"
service_addresses() { kubectl get svc nginx nginx2 -o jsonpath='{range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip} {end}'; }
# lease_holder: the controller pod holding the Lease, and its node.
lease_holder() {
  local pod
  pod=$(kubectl -n swimlb-system get lease swimlb-controller -o jsonpath='{.spec.holderIdentity}')
  echo "$pod on $(kubectl -n swimlb-system get pod "$pod" -o jsonpath='{.spec.nodeName}' 2>/dev/null)"
}
addresses_before=$(service_addresses)
holder_before=$(lease_holder)
curl_loop "$cluster/outage.log" 100000 &
loop_pid=$!
sleep 1
# kill -9: a graceful API server would first wait out its open requests and watches.
kill -9 "$apiserver_pid" "${cp_controllers[@]}"
wait "$apiserver_pid" "${cp_controllers[@]}" 2>/dev/null || true
outage_start=$EPOCHREALTIME
note "control plane stopped: kube-apiserver, controller manager and scheduler killed (-9)"
: >"$cluster/outage-claims.log"
cut_at=""
nodes_up="1 2 3"
while awk -v s="$outage_start" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - s < 60) }'; do
  if [ -z "$cut_at" ] && awk -v s="$outage_start" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - s >= 15) }'; then
    cut_at=$EPOCHREALTIME
    cable "$victim" down
    kill "${kubelet_pid[$victim]}"
    nodes_up=$survivors
    note "API server down: pulled node-$victim's cable and stopped its kubelet"
  fi
  # One line per VIP: time, VIP, the nodes claiming it (comma-separated, "-" for none).
  sample_at=$EPOCHREALTIME
  for i in $nodes_up; do vips_of "$i" | sed "s/^/$i /"; done >"$cluster/outage-sample"
  for vip in "$vip1" "$vip2"; do
    echo "$sample_at $vip $(awk -v v="$vip" '$2 == v { printf "%s%s", (n++ ? "," : ""), $1 } END { if (!n) printf "-" }' \
      "$cluster/outage-sample")"
  done >>"$cluster/outage-claims.log"
  sleep 1
done
outage_end=$EPOCHREALTIME
[ -n "$cut_at" ] || fail "API server down: the node failure never happened"
# Judge the samples: before the cut each VIP is claimed by its owner alone; after it, a VIP of a
# survivor stays with it, and the victim's VIP is claimed by its new owner alone from 3 s on.
declare -A outage_owner=()
for vip in "$vip1" "$vip2"; do
  if [ "${owner[$vip]}" = "$victim" ]; then
    # shellcheck disable=SC2086
    outage_owner[$vip]=$(rendezvous_owner "$vip" $survivors)
  else
    outage_owner[$vip]=${owner[$vip]}
  fi
  read -r samples withdrawn wrong < <(awk -v v="$vip" -v cut="$cut_at" -v before="${owner[$vip]}" \
    -v after="${outage_owner[$vip]}" '
    $2 != v { next }
    { n++; want = ($1 < cut) ? before : after }
    $1 >= cut && $1 < cut + 3 && before != after { next }
    $3 == "-" { gone++; next }
    $3 != want { bad++ }
    END { print n + 0, gone + 0, bad + 0 }' "$cluster/outage-claims.log")
  [ "$withdrawn" = 0 ] || fail "API server down: $vip claimed by no speaker in $withdrawn of $samples samples"
  [ "$wrong" = 0 ] || fail "API server down: $vip claimed by other than node-${outage_owner[$vip]} in $wrong of $samples samples"
  read -r failed back < <(loop_outage "$cluster/outage.log" "$vip" "$outage_start" "$outage_end")
  if [ "${owner[$vip]}" = "$victim" ]; then
    read -r failed back < <(loop_outage "$cluster/outage.log" "$vip" "$cut_at" "$outage_end")
    [ "$back" != - ] || fail "API server down: $vip never answered again after node-$victim failed"
    awk -v b="$back" 'BEGIN { exit !(b <= 3) }' || fail "API server down: failover of $vip took $back s (> 3 s)"
    note "API server down: $vip failed over node-$victim -> node-${outage_owner[$vip]}; $failed failed requests, first 200 again $back s after the cut; $samples samples, claimed in each outside the 3 s of the failover"
    outage_failover=$back
  else
    [ "$failed" = 0 ] || fail "API server down: $vip (on healthy node-${owner[$vip]}) lost $failed requests"
    note "API server down: $vip stayed on node-${owner[$vip]}, claimed in all $samples samples, no failed request"
  fi
done
start_apiserver
start_cp_controllers
return_at=$EPOCHREALTIME
note "control plane started again after $(elapsed_since "$outage_start") s"
# Resync: a Service created now is allocated by the controller and announced by its owner
# (the watchers reconnect with backoff); the existing ones keep their addresses.
kubectl expose deploy nginx --name nginx3 --port 8080 --target-port 80 --type LoadBalancer >/dev/null
vip3=""
for _ in $(seq 1 120); do
  vip3=$(kubectl get svc nginx3 -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$vip3" ] && break
  sleep 0.5
done
[ -n "$vip3" ] || fail "after the API server returned, a new Service got no address within 60 s"
allocated=$(elapsed_since "$return_at")
# Until it answers (bounded, 180 s): when a speaker first claimed it, when kube-proxy on a
# surviving node first had a rule for it. swimlb's watchers retry at most 5 s apart
# (ReconnectBackoff), and a watch resumed on the new API server is answered "too old" and
# listed again after one more delay; kube-proxy keeps client-go's own backoff.
claimed="" proxied="" served=""
while awk -v s="$return_at" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - s < 180) }'; do
  # shellcheck disable=SC2086
  [ -n "$claimed" ] || [ -z "$(owners_of "$vip3" $survivors)" ] || claimed=$(elapsed_since "$return_at")
  if [ -z "$proxied" ]; then
    for i in $survivors; do
      if nsenter --net="/run/netns/$prefix-n$i" iptables-save -t nat | grep -q -- "-d $vip3/32"; then
        proxied=$(elapsed_since "$return_at")
      fi
    done
  fi
  if [ "$(http_code "$vip3")" = 200 ]; then
    served=$(elapsed_since "$return_at")
    claimed=${claimed:-$served}
    break
  fi
  sleep 0.25
done
[ -n "$served" ] || fail "after the API server returned, the new Service's $vip3 did not answer 200 within 180 s (claimed after ${claimed:--} s, kube-proxy rule after ${proxied:--} s)"
# Two retries at the 5 s cap, the relist and the controller's write fit well within 30 s, and
# so does a standby's takeover when the holder's node is the one cut: it takes the Lease one
# lease duration (15 s) after it first sees the holder's latest renewal.
awk -v c="$claimed" 'BEGIN { exit !(c <= 30) }' ||
  fail "after the API server returned, the speakers claimed the new Service's $vip3 only after $claimed s (> 30 s)"
# shellcheck disable=SC2086
wait_owner "$vip3" "$(rendezvous_owner "$vip3" $survivors)" $survivors
addresses_after=$(service_addresses)
[ "$addresses_after" = "$addresses_before" ] ||
  fail "the controller changed addresses over the outage: '$addresses_before' -> '$addresses_after'"
allocation_failures=$(kubectl get events --field-selector reason=AllocationFailed -o name | wc -l)
[ "$allocation_failures" = 0 ] || fail "AllocationFailed Events after the outage: $allocation_failures"
note "after the return: the Lease held by $holder_before before the outage, by $(lease_holder) now"
note "after the return: nginx3 got $vip3 after $allocated s, a speaker claimed it after $claimed s, kube-proxy had its rule after $proxied s, and it answered 200 after $served s; nginx and nginx2 kept '$addresses_before'"
back_at=$EPOCHREALTIME
cable "$victim" up
start_kubelet "$victim"
kubectl wait --for condition=Ready --timeout 60s "node/node-$victim" >/dev/null || fail "node-$victim not Ready again"
kubectl uncordon "node-$victim" >/dev/null
for vip in "$vip1" "$vip2" "$vip3"; do wait_owner "$vip" "$(rendezvous_owner "$vip" 1 2 3)"; done
kill "$loop_pid" 2>/dev/null || true
wait "$loop_pid" 2>/dev/null || true
# From the control plane's return none may fail, except in the heal as the soak judges it: at
# most 2 per VIP in the 1 s after the node's cable is back.
healed_at=$(awk -v t="$back_at" 'BEGIN { printf "%.6f", t + 1 }')
outage_failures=() heal_failures=0
for vip in "$vip1" "$vip2"; do
  read -r before_back _ < <(loop_outage "$cluster/outage.log" "$vip" "$outage_end" "$back_at")
  read -r in_heal _ < <(loop_outage "$cluster/outage.log" "$vip" "$back_at" "$healed_at")
  read -r after_heal _ < <(loop_outage "$cluster/outage.log" "$vip" "$healed_at")
  heal_failures=$((heal_failures + in_heal))
  [ "$before_back" = 0 ] || outage_failures+=("$before_back to $vip before node-$victim returned")
  [ "$in_heal" -le 2 ] || outage_failures+=("$in_heal to $vip in the heal (more than 2)")
  [ "$after_heal" = 0 ] || outage_failures+=("$after_heal to $vip after the heal")
done
note "node-$victim back, every VIP with its rendezvous owner; from the control plane's return to now ${#outage_failures[@]} verdicts failed, $heal_failures requests failed in the heal"
[ ${#outage_failures[@]} = 0 ] || fail "requests failed after the control plane returned: $(IFS=';'; echo "${outage_failures[*]}")"
kubectl delete svc nginx3 >/dev/null

# ---------------------------------------------------------------- 7. soak (CLUSTER_SOAK_SECONDS)
# Repeated partitions and rollouts with every swimlb process watched. The backends are kept on
# the one node that announces neither VIP (the other two cordoned), so a request fails only when
# swimlb is at fault or a backend moves. Each cycle pulls the cable of one of the other two nodes
# (alternately) and stops its kubelet for 10 s, then plugs it back, starts the kubelet and waits
# for both VIPs to be on their rendezvous owners; every second cycle also rolls out the backend
# Deployments (their EndpointSlices churn under the speakers), 15 s after the latest return. The speaker on a cut node keeps
# running alone and rejoins when the cable is back, as after a partition. Sampled from the
# client every second: each reachable speaker's /vips; every 5 s: RSS, open fds and CPU time of
# every speaker and controller process (/proc, the speakers found in the node namespaces).
# Fails when a VIP is claimed by no speaker, by two or by the wrong one (outside the 3 s after a
# cut or a return that moves it), when a request fails other than in a failover, a heal or a
# backend move (below), when a swimlb process restarts, or when a process's RSS grows by more
# than max(2 MiB, 10 %) or its fds by more than 2 from the first sample after the warm-up (a
# quarter of the soak, at most 60 s) to the last.
soak_seconds=${CLUSTER_SOAK_SECONDS:-0}
[[ $soak_seconds =~ ^[0-9]+$ ]] || fail "CLUSTER_SOAK_SECONDS must be a whole number of seconds, not '$soak_seconds'"
if [ "$soak_seconds" -gt 0 ]; then
  soak_dir=$cluster/soak
  mkdir -p "$soak_dir"
  steady=""
  for i in 1 2 3; do [ "$i" = "${owner[$vip1]}" ] || [ "$i" = "${owner[$vip2]}" ] || steady=$i; done
  restarted=$(other_nodes "$steady")
  restarted=${restarted% }
  : >"$soak_dir/events"
  curl_loop "$soak_dir/requests" $((soak_seconds * 20 + 6000)) &
  loop_pid=$!
  echo "$EPOCHREALTIME backends-start" >>"$soak_dir/events"
  for i in $restarted; do move_backends_off "$i"; done
  echo "$EPOCHREALTIME backends-end" >>"$soak_dir/events"
  note "soak: backends on node-$steady (announcing neither VIP); nodes $restarted cordoned, cut in turn"
  # swimlb_pids: "label pid" for every speaker (in its node's namespace) and controller process.
  swimlb_pids() {
    local i pid
    for i in 1 2 3; do
      for pid in $(ip netns pids "$prefix-n$i"); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = swimlb-speaker ] && echo "speaker-n$i $pid"
      done
    done
    for pid in $(find /sys/fs/cgroup/memory/ -path "*$cgroup_root*" -name tasks -exec cat {} + 2>/dev/null | sort -un); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = swimlb-controll ] && echo "controller $pid"
    done
    return 0
  }
  # The phase the sampler reads: "down NODE TIME" from a cut, "up NODE TIME" from NODE's return
  # ("up 0 TIME" at the start); renamed into place, so the sampler never reads it half written.
  set_phase() { echo "$* $EPOCHREALTIME" >"$soak_dir/phase.new" && mv "$soak_dir/phase.new" "$soak_dir/phase"; }
  set_phase up 0
  soak_end=$(awk -v s="$EPOCHREALTIME" -v d="$soak_seconds" 'BEGIN { printf "%.6f", s + d }')
  # One line per VIP and second: time, VIP, claimers ("-": none), phase. Bounded: it stops at
  # the soak's end plus 5 minutes at the latest, or when the stop file appears.
  (
    ticks=0
    while [ ! -e "$soak_dir/stop" ] && awk -v e="$soak_end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e + 300) }'; do
      read -r -a phase <"$soak_dir/phase"
      at=$EPOCHREALTIME
      for i in 1 2 3; do
        [ "${phase[0]}" = down ] && [ "${phase[1]}" = "$i" ] && continue
        vips_of "$i" | sed "s/^/$i /"
      done >"$soak_dir/sample"
      for vip in "$vip1" "$vip2"; do
        echo "$at $vip $(awk -v v="$vip" '$2 == v { printf "%s%s", (n++ ? "," : ""), $1 } END { if (!n) printf "-" }' \
          "$soak_dir/sample") ${phase[*]}"
      done >>"$soak_dir/claims"
      if [ $((ticks % 5)) = 0 ]; then
        swimlb_pids | while read -r label pid; do
          awk -v t="$at" -v l="$label" -v p="$pid" -v fds="$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)" \
            '/^VmRSS/ { rss = $2 } END { if (rss) print t, l, p, rss, fds }' "/proc/$pid/status" 2>/dev/null
        done >>"$soak_dir/procs"
        swimlb_pids | while read -r label pid; do
          read -r -a stat <"/proc/$pid/stat" 2>/dev/null && echo "$at $label $pid $((stat[13] + stat[14]))"
        done >>"$soak_dir/cpu"
      fi
      ticks=$((ticks + 1))
      sleep 1
    done
  ) &
  sampler_pid=$!
  soak_start=$EPOCHREALTIME
  restarts_before=$(kubectl -n swimlb-system get pods -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
  cycles=0 cuts=0 rollouts=0
  while awk -v e="$soak_end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
    # shellcheck disable=SC2086
    set -- $restarted
    victim=$1
    [ $((cycles % 2)) = 0 ] || victim=$2
    set_phase down "$victim"
    echo "$EPOCHREALTIME cut $victim" >>"$soak_dir/events"
    cable "$victim" down
    kill "${kubelet_pid[$victim]}"
    wait "${kubelet_pid[$victim]}" 2>/dev/null || true
    cuts=$((cuts + 1))
    sleep 10
    cable "$victim" up
    start_kubelet "$victim"
    set_phase up "$victim"
    returned_at=$EPOCHREALTIME
    echo "$returned_at return $victim" >>"$soak_dir/events"
    kubectl wait --for condition=Ready --timeout 60s "node/node-$victim" >/dev/null ||
      fail "soak: node-$victim not Ready after its return"
    for vip in "$vip1" "$vip2"; do wait_owner "$vip" "${owner[$vip]}"; done
    if [ $((cycles % 2)) = 1 ]; then
      # Not before the returned node's kube-proxy has caught up: its watch connection resumes
      # only at TCP's next retransmission, seconds after the cable is back, and until then it
      # would keep sending to a replaced pod (a failure kube-proxy's, not swimlb's).
      sleep "$(awk -v r="$returned_at" -v n="$EPOCHREALTIME" 'BEGIN { w = r + 15 - n; printf "%.2f", (w > 0 ? w : 0) }')"
      echo "$EPOCHREALTIME backends-start" >>"$soak_dir/events"
      kubectl rollout restart deploy/nginx deploy/nginx2 >/dev/null
      kubectl rollout status deploy/nginx --timeout 120s >/dev/null || fail "soak: nginx rollout did not finish"
      kubectl rollout status deploy/nginx2 --timeout 120s >/dev/null || fail "soak: nginx2 rollout did not finish"
      echo "$EPOCHREALTIME backends-end" >>"$soak_dir/events"
      rollouts=$((rollouts + 1))
    fi
    cycles=$((cycles + 1))
  done
  soak_took=$(elapsed_since "$soak_start")
  sleep 3
  touch "$soak_dir/stop"
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
  kill "$loop_pid" 2>/dev/null || true
  wait "$loop_pid" 2>/dev/null || true
  loop_pid=""
  for i in $restarted; do kubectl uncordon "node-$i" >/dev/null; done
  restarts_after=$(kubectl -n swimlb-system get pods -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
  # Every verdict is reported before the first failure ends the test.
  soak_failures=()
  [ "$restarts_after" = "$restarts_before" ] ||
    soak_failures+=("swimlb containers restarted (restart counts '$restarts_before' -> '$restarts_after')")
  note "soak: $cycles cycles in $soak_took s ($cuts cuts of nodes $restarted, $rollouts backend rollouts)"

  # Claims, against each VIP's owner among all nodes ("all:VIP") or without node-N ("N:VIP").
  # A VIP whose owner a cut or a return changes is not judged in the 3 s after it.
  want="all:$vip1=${owner[$vip1]},all:$vip2=${owner[$vip2]}"
  for i in $restarted; do
    for vip in "$vip1" "$vip2"; do
      # shellcheck disable=SC2046
      want="$want,$i:$vip=$(rendezvous_owner "$vip" $(other_nodes "$i"))"
    done
  done
  read -r samples withdrawn doubled wrong transitions < <(awk -v want="$want" '
    BEGIN { n = split(want, w, ","); for (k = 1; k <= n; k++) { split(w[k], kv, "="); owner[kv[1]] = kv[2] } }
    {
      samples++
      t = $1; vip = $2; claim = $3
      key = ($4 == "down") ? $5 ":" vip : "all:" vip
      moves = $5 != 0 && owner["all:" vip] != owner[$5 ":" vip]
      if (moves && t - $6 < 3) { transitions++; next }
      if (claim == "-") withdrawn++
      else if (index(claim, ",")) doubled++
      else if (claim != owner[key]) wrong++
    }
    END { print samples + 0, withdrawn + 0, doubled + 0, wrong + 0, transitions + 0 }' "$soak_dir/claims")
  note "soak: $samples VIP samples, $transitions in the 3 s after a cut or return that moved the VIP; outside them $withdrawn unclaimed, $doubled claimed twice, $wrong by the wrong node"
  [ "$samples" -gt 0 ] || soak_failures+=("no VIP sample taken")
  [ $((withdrawn + doubled + wrong)) = 0 ] || soak_failures+=("VIP claims wrong in $((withdrawn + doubled + wrong)) samples")

  # Requests. A failure is allowed in the 3 s after the cut of its VIP's owner (the failover),
  # while the backends move (plus 3 s for kube-proxy), and in the 1 s after a node returns, at
  # most 2 per VIP and return (the heal: the returned node takes back its own VIPs and, for
  # moments, holds clients of those it claimed while cut off; its kernel resolves the backend's
  # node again first, and a SYN that waits for that longer than the loop's 250 ms connect
  # timeout counts as failed, though it is answered). Every other failure is printed and fails
  # the soak.
  read -r requests failovers worst moving heals worst_heal other_failed < <(awk \
    -v owners="$vip1=${owner[$vip1]},$vip2=${owner[$vip2]}" '
    BEGIN { n = split(owners, o, ","); for (k = 1; k <= n; k++) { split(o[k], kv, "="); owner[kv[1]] = kv[2] } }
    FNR == NR {
      events++; event_at[events] = $1; event[events] = $2 ($3 == "" ? "" : " node-" $3)
      if ($2 == "cut") { cuts++; cut_at[cuts] = $1; cut_node[cuts] = $3 }
      if ($2 == "return") { returns++; return_at[returns] = $1; return_node[returns] = $3 }
      if ($2 == "backends-start") { moves++; move_from[moves] = $1; move_to[moves] = $1 + 3600 }
      if ($2 == "backends-end") move_to[moves] = $1 + 3
      next
    }
    function unexplained(why) {
      other++
      latest = "the start"; gap = 0
      for (k = 1; k <= events; k++) if (event_at[k] <= $1) { latest = event[k]; gap = $1 - event_at[k] }
      printf "   %s: %s from %s (connected after %s s) %.3f s after %s\n", why, $3, $2, $4, gap, latest > "/dev/stderr"
    }
    {
      requests++
      if ($3 == 200) next
      for (k = 1; k <= cuts; k++)
        if (owner[$2] == cut_node[k] && $1 >= cut_at[k] && $1 < cut_at[k] + 3) {
          failovers++; gap = $1 - cut_at[k]; if (gap > worst) worst = gap; next
        }
      for (k = 1; k <= moves; k++) if ($1 >= move_from[k] && $1 < move_to[k]) { moving++; next }
      for (k = 1; k <= returns; k++)
        if ($1 >= return_at[k] && $1 < return_at[k] + 1) {
          if (++at_return[k, $2] > 2) { unexplained("more than 2 in a heal"); next }
          heals++; gap = $1 - return_at[k]; if (gap > worst_heal) worst_heal = gap; next
        }
      unexplained("unexplained")
    }
    END { printf "%d %d %.3f %d %d %.3f %d\n", requests, failovers, worst, moving, heals, worst_heal, other }' \
    "$soak_dir/events" "$soak_dir/requests")
  note "soak: $requests requests; failed: $failovers in failovers (latest $worst s after a cut), $moving while backends moved, $heals in heals (latest $worst_heal s after a return), $other_failed otherwise"
  [ "$requests" -gt 0 ] || soak_failures+=("the client loop sent nothing")
  [ "$other_failed" = 0 ] || soak_failures+=("$other_failed requests failed outside failovers, heals and backend moves")

  # Memory, fds and CPU per process, from the first sample after the warm-up to the last.
  warmup=$(( soak_seconds / 4 < 60 ? soak_seconds / 4 : 60 ))
  flat_ok=1
  while read -r label pid rss0 rss1 fds0 fds1 span; do
    ticks=$(awk -v p="$pid" '$3 == p { if (!n++) a = $4; b = $4 } END { print b - a }' "$soak_dir/cpu")
    cpu=$(awk -v t="$ticks" -v s="$span" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (s > 0 ? 100 * t / hz / s : 0) }')
    echo "   $label (pid $pid): RSS $rss0 -> $rss1 MiB, fds $fds0 -> $fds1 over $span s; CPU $cpu % of one core"
    awk -v a="$rss0" -v b="$rss1" -v f="$fds0" -v g="$fds1" \
      'BEGIN { limit = a * 0.1; if (limit < 2) limit = 2; exit !(b - a <= limit && g - f <= 2) }' || flat_ok=0
  done < <(awk -v start="$soak_start" -v warm="$warmup" '
    $1 - start >= warm {
      key = $2 " " $3
      if (!(key in first)) { first[key] = $1; rss0[key] = $4; fds0[key] = $5; order[++n] = key }
      last[key] = $1; rss1[key] = $4; fds1[key] = $5
    }
    END {
      for (k = 1; k <= n; k++) {
        key = order[k]
        printf "%s %.1f %.1f %d %d %.0f\n", key, rss0[key] / 1024, rss1[key] / 1024, fds0[key], fds1[key], last[key] - first[key]
      }
    }' "$soak_dir/procs")
  [ "$(awk '{ print $2 }' "$soak_dir/procs" | sort -u | wc -l)" -ge 4 ] ||
    soak_failures+=("fewer than 3 speakers and a controller sampled")
  [ "$flat_ok" = 1 ] || soak_failures+=("RSS or fds of a swimlb process grew")
  [ "${#soak_failures[@]}" = 0 ] || fail "soak: $(IFS=';'; echo "${soak_failures[*]}" | sed 's/;/; /g')"
fi

# ---------------------------------------------------------------- memory
# rss_mib PID...: their summed resident memory.
rss_mib() { for pid in "$@"; do awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null; done |
  awk '{ s += $1 } END { print int(s / 1024) }'; }
cp_pids=$(ip netns pids "$cp")
node_pids=$(for i in 1 2 3; do ip netns pids "$prefix-n$i"; done)
pod_pids=$(find /sys/fs/cgroup/memory/ -path "*$cgroup_root*" -name tasks -exec cat {} + 2>/dev/null)
all_pids=$(printf '%s\n' $cp_pids $node_pids $pod_pids | sort -un)
# shellcheck disable=SC2086
note "memory (RSS): control plane $(rss_mib $cp_pids) MiB, 3 nodes' daemons and host-network pods $(rss_mib $node_pids) MiB, all pods $(rss_mib $pod_pids) MiB; everything $(rss_mib $all_pids) MiB"

# ---------------------------------------------------------------- 8. uninstall
kubectl delete svc nginx nginx2 >/dev/null
kubectl delete deploy nginx nginx2 >/dev/null
kubectl delete -f deploy/examples/legacy-configmap.yaml >/dev/null
kubectl delete -k tests/cluster/kubernetes-1.20/ --timeout 120s >/dev/null
for _ in $(seq 1 120); do
  kubectl get namespace swimlb-system >/dev/null 2>&1 || break
  sleep 0.5
done
leftovers=$( (kubectl get namespace swimlb-system -o name 2>/dev/null
  kubectl get crd,clusterrole,clusterrolebinding -o name | grep swimlb
  kubectl get pods -A -o name | grep swimlb) || true)
[ -z "$leftovers" ] || fail "delete -k left: $leftovers"
for vip in "$vip1" "$vip2"; do
  [ -z "$(owners_of "$vip" 2>/dev/null)" ] || fail "$vip still announced after delete -k"
done
note "delete -k deploy/ left nothing behind"
echo "== cluster test passed: cluster start ${cluster_seconds} s, DaemonSet Ready ${ds_seconds} s, first 200 ${first_200} s, failover ${failover_seconds} s, rollout ${rollout_seconds} s, failover with the API server down ${outage_failover} s"
