#!/usr/bin/env bash
# Builds Kubernetes v1.20.2 components for the tests from Debian's `kubernetes` source package with
# Debian bullseye's Go 1.15, plus a static `pause` (the pod sandbox program) from the same tree, and
# caches them outside the repository keyed by version and component set. Prints the directory
# holding the binaries. A cached set skips the build.
#
#   scripts/kubernetes.sh                 # the whole set: API server, kubelet, controller manager,
#                                         # scheduler, kube-proxy and pause (about 7-10 min cold)
#   scripts/kubernetes.sh kube-apiserver  # one component (about 5 min cold)
#
# A request is served by any cached set that contains every requested component, so the end-to-end
# scripts that need only the API server reuse the cluster test's build.
#
# apt runs with a throw-away configuration (own sources file, lists and cache) so the machine's own
# apt sources and state stay untouched.
set -euo pipefail

version=v1.20.2
debian_version=1.20.5+really1.20.2-1.1+deb12u1
all_components=(kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubelet pause)
cache_root=${SWIMLB_KUBERNETES_CACHE:-/var/cache/swimlb}

if [ $# -gt 0 ]; then components=("$@"); else components=("${all_components[@]}"); fi
for c in "${components[@]}"; do
  case " ${all_components[*]} " in *" $c "*) ;; *) echo "unknown component $c" >&2; exit 2 ;; esac
done
mapfile -t components < <(printf '%s\n' "${components[@]}" | sort -u)

# A cached set containing everything requested.
for dir in "$cache_root/kubernetes-$version"/*/; do
  # A set still being written (or left by an interrupted build) ends in .tmp.
  case $dir in *.tmp/) continue ;; esac
  [ -d "$dir" ] || continue
  ok=yes
  for c in "${components[@]}"; do [ -x "$dir$c" ] || ok=; done
  if [ -n "$ok" ]; then
    echo "${dir%/}"
    exit 0
  fi
done

set_dir=$cache_root/kubernetes-$version/$(IFS=+; echo "${components[*]}")

# The mirror the machine's own apt sources name (deb822 or one-line format).
mirror=$(grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE 'https?://[^[:space:]]+' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "== building Kubernetes $version: ${components[*]} (Debian mirror $mirror)" >&2

command -v rsync >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null
}

work=$(mktemp -d /var/tmp/swimlb-kubernetes-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
cat >"$work/apt/sources.list" <<SOURCES
deb-src [signed-by=$keyring] $mirror bookworm main
deb [signed-by=$keyring] $mirror bullseye main
SOURCES
apt_opts=(
  -o "Dir::Etc::SourceList=$work/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update -qq >&2

mkdir -p "$work/src" "$work/go"
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only "kubernetes=$debian_version" >&2)
tar -xzf "$work"/src/kubernetes_*.orig.tar.gz -C "$work/src"
tree=$(find "$work/src" -mindepth 2 -maxdepth 2 -name Makefile -printf '%h\n' | head -n1)
[ -n "$tree" ] || { echo "no kubernetes source tree in the orig tarball" >&2; exit 1; }

what=()
for c in "${components[@]}"; do [ "$c" = pause ] || what+=("cmd/$c"); done

start=$(date +%s)
if [ ${#what[@]} -gt 0 ]; then
  (cd "$work/go" && apt-get "${apt_opts[@]}" download golang-1.15-go golang-1.15-src >&2)
  for deb in "$work"/go/*.deb; do dpkg-deb -x "$deb" "$work/go/root"; done
  goroot=$work/go/root/usr/lib/go-1.15
  [ -x "$goroot/bin/go" ] || { echo "no Go 1.15 toolchain in the unpacked .debs" >&2; exit 1; }
  (
    cd "$tree"
    export GOROOT=$goroot PATH=$goroot/bin:$PATH GOPROXY=off GOCACHE=$work/gocache
    export KUBE_GIT_VERSION=$version KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
    make WHAT="${what[*]}" KUBE_BUILD_PLATFORMS=linux/amd64 >&2
  )
fi
rm -rf "$set_dir.tmp"
mkdir -p "$set_dir.tmp"
for c in "${components[@]}"; do
  if [ "$c" = pause ]; then
    # The sandbox process only waits for signals; static, so its image needs nothing else.
    gcc -Os -static -DVERSION="$version" -o "$set_dir.tmp/pause" "$tree/build/pause/linux/pause.c"
    strip "$set_dir.tmp/pause"
  else
    install -m 0755 "$tree/_output/bin/$c" "$set_dir.tmp/$c"
  fi
done
echo "== Kubernetes ${components[*]} built in $(($(date +%s) - start)) s" >&2

rm -rf "$set_dir"
mv "$set_dir.tmp" "$set_dir"
echo "$set_dir"
