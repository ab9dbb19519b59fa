#!/usr/bin/env bash
# Builds a real kube-apiserver v1.20.2 for the end-to-end tests from Debian's `kubernetes` source
# package with Debian bullseye's Go 1.15, and caches it outside the repository. Prints the binary's
# path. A cached binary skips the build (about 5 minutes and 1.4 GB of memory on 2 cores).
#
# apt runs with a throw-away configuration (own sources file, lists and cache) so the machine's
# own apt sources and state stay untouched.
set -euo pipefail

version=v1.20.2
debian_version=1.20.5+really1.20.2-1.1+deb12u1
cache_dir=${SWIMLB_APISERVER_CACHE:-/var/cache/swimlb/kube-apiserver-$version}
binary=$cache_dir/kube-apiserver

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

# The mirror the machine's own apt sources name (deb822 or one-line format).
mirror=$(grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE 'https?://[^[:space:]]+' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "== building kube-apiserver $version (Debian mirror $mirror)" >&2

command -v rsync >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null
}

work=$(mktemp -d /var/tmp/swimlb-apiserver-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
cat >"$work/apt/sources.list" <<EOF
deb-src [signed-by=$keyring] $mirror bookworm main
deb [signed-by=$keyring] $mirror bullseye main
EOF
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

(cd "$work/go" && apt-get "${apt_opts[@]}" download golang-1.15-go golang-1.15-src >&2)
for deb in "$work"/go/*.deb; do dpkg-deb -x "$deb" "$work/go/root"; done
goroot=$work/go/root/usr/lib/go-1.15
[ -x "$goroot/bin/go" ] || { echo "no Go 1.15 toolchain in the unpacked .debs" >&2; exit 1; }

start=$(date +%s)
(
  cd "$tree"
  export GOROOT=$goroot PATH=$goroot/bin:$PATH GOPROXY=off GOCACHE=$work/gocache
  export KUBE_GIT_VERSION=$version KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
  make WHAT=cmd/kube-apiserver KUBE_BUILD_PLATFORMS=linux/amd64 >&2
)
echo "== kube-apiserver built in $(($(date +%s) - start)) s" >&2

mkdir -p "$cache_dir"
install -m 0755 "$tree/_output/bin/kube-apiserver" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
