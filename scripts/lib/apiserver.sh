# Shared by the end-to-end scripts (source it): a real kube-apiserver (v1.20.2, built once by
# scripts/kube-apiserver.sh) and etcd, both on 127.0.0.1 only, on random free ports, with their
# data in a temporary directory ($work) removed on exit. Afterwards: $token (admin), $KUBECONFIG
# (admin), write_kubeconfig FILE TOKEN, free_port, start_apiserver (to start it again after a
# test stopped it; its pid is $apiserver_pid) and the pids array killed on exit.
# Set e2e_users=(name ...) before sourcing for extra users without any RBAC binding.
# A cluster test sets, before sourcing: apiserver_netns (a network namespace to run etcd and the
# API server in, instead of the current one), apiserver_address (the address to bind and
# advertise, default 127.0.0.1) and apiserver_args (extra flags; a flag given again wins).

for tool in etcd kubectl openssl curl ss; do
  command -v "$tool" >/dev/null || { echo "$(basename "$0"): $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

apiserver_address=${apiserver_address:-127.0.0.1}
in_apiserver_netns=()
if [ -n "${apiserver_netns:-}" ]; then in_apiserver_netns=(nsenter "--net=/run/netns/$apiserver_netns"); fi

build_start=$(date +%s)
apiserver=$(scripts/kube-apiserver.sh)
echo "== kube-apiserver ready at $apiserver ($(($(date +%s) - build_start)) s)"

work=$(mktemp -d /tmp/swimlb-e2e.XXXXXX)
pids=()
# Scripts may set extra_cleanup (before sourcing or after) to a function run first on exit.
extra_cleanup=${extra_cleanup:-}
cleanup() {
  local status=$?
  if [ -n "$extra_cleanup" ]; then "$extra_cleanup" || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "== e2e failed; last lines of the API server and etcd logs:" >&2
    tail -n 20 "$work/apiserver.log" "$work/etcd.log" 2>/dev/null >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A random unused TCP port on loopback.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if [ -z "$(${in_apiserver_netns[@]+"${in_apiserver_netns[@]}"} ss -Htln "sport = :$port")" ]; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

etcd_client=$(free_port)
etcd_peer=$(free_port)
apiserver_port=$(free_port)

${in_apiserver_netns[@]+"${in_apiserver_netns[@]}"} etcd --name e2e --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "e2e=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
pids+=($!)

openssl genrsa -out "$work/service-account.key" 2048 2>/dev/null
token=$(openssl rand -hex 24)
# One token per extra user: e2e_users holds user names; e2e_token_<user> gets the token.
{
  echo "$token,admin,admin-uid,system:masters"
  for user in ${e2e_users[@]+"${e2e_users[@]}"}; do
    user_token=$(openssl rand -hex 24)
    printf -v "e2e_token_${user//-/_}" '%s' "$user_token"
    echo "$user_token,$user,$user-uid"
  done
} >"$work/tokens.csv"

# Starts the API server (again, after a test stopped it: same flags, same etcd) and waits until
# it is ready; its pid is $apiserver_pid, and in pids.
start_apiserver() {
  local start ready=""
  ${in_apiserver_netns[@]+"${in_apiserver_netns[@]}"} "$apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address "$apiserver_address" --advertise-address "$apiserver_address" --secure-port "$apiserver_port" --insecure-port 0 \
    --cert-dir "$work/certs" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$work/service-account.key" \
    --service-account-signing-key-file "$work/service-account.key" \
    --token-auth-file "$work/tokens.csv" --authorization-mode RBAC \
    --service-cluster-ip-range 10.96.0.0/16,2001:db8:96::/112 --feature-gates IPv6DualStack=true \
    --endpoint-reconciler-type none \
    ${apiserver_args[@]+"${apiserver_args[@]}"} \
    >>"$work/apiserver.log" 2>&1 &
  apiserver_pid=$!
  pids+=("$apiserver_pid")
  start=$(date +%s)
  for _ in $(seq 1 120); do
    if [ "$(${in_apiserver_netns[@]+"${in_apiserver_netns[@]}"} curl -sk -m 2 -H "Authorization: Bearer $token" "https://$apiserver_address:$apiserver_port/readyz" || true)" = ok ]; then
      ready=yes
      break
    fi
    kill -0 "$apiserver_pid" 2>/dev/null || break
    sleep 0.5
  done
  [ -n "$ready" ] || { echo "kube-apiserver did not become ready" >&2; exit 1; }
  echo "== kube-apiserver ready in $(($(date +%s) - start)) s on $apiserver_address:$apiserver_port"
}
start_apiserver

write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://$apiserver_address:$apiserver_port
    insecure-skip-tls-verify: true
users:
- name: user
  user:
    token: $2
contexts:
- name: e2e
  context: {cluster: e2e, user: user}
current-context: e2e
EOF
}
export KUBECONFIG="$work/kubeconfig"
write_kubeconfig "$KUBECONFIG" "$token"
