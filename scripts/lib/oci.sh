# Shared by scripts/image.sh and tests/cluster (source it): OCI images assembled offline with
# Debian's umoci, written as OCI layout tarballs for `ctr images import --base-name NAME`.

# oci_rootfs DIR BINARY...: each binary in DIR/usr/local/bin and every library ldd says it loads
# at the same path (nothing for a static binary), a world-writable /tmp and an /etc/passwd naming
# root and nobody (65534).
oci_rootfs() {
  local dir=$1 binary lib
  shift
  for binary in "$@"; do
    install -D -m 0755 "$binary" "$dir/usr/local/bin/$(basename "$binary")"
    for lib in $(ldd "$binary" 2>/dev/null | grep -oE '/[^ ]+' || true); do
      install -D -m 0755 "$(realpath "$lib")" "$dir$lib"
    done
  done
  mkdir -p "$dir/tmp" "$dir/etc"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# oci_image TARBALL TAG ROOTFS USER ENTRYPOINT [ARG...]: a one-layer image of ROOTFS, tagged TAG
# in the layout (the name comes from `--base-name` at import), as an OCI layout tarball.
oci_image() {
  local tarball=$1 tag=$2 rootfs=$3 user=$4 layout
  shift 4
  layout=$(mktemp -d /var/tmp/swimlb-oci.XXXXXX)
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci insert --image "$layout:$tag" "$rootfs" /
  local config=(--os linux --architecture amd64 --config.user "$user" --config.workingdir /
    --config.entrypoint "$1")
  shift
  local arg
  for arg in "$@"; do config+=(--config.cmd "$arg"); done
  umoci config --image "$layout:$tag" "${config[@]}"
  umoci gc --layout "$layout"
  mkdir -p "$(dirname "$tarball")"
  tar -C "$layout" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$layout"
}
