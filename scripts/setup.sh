#!/usr/bin/env bash
# Set up a fresh Debian machine (run as root) for dadi: system packages, then npm ci (which builds
# dist/ through the `prepare` script). Idempotent: skips apt when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need node nodejs
need npm npm
need g++ build-essential
need make build-essential
need python3 python3
need e2fsck e2fsprogs
need debugfs e2fsprogs
need docker-registry docker-registry
need htpasswd apache2-utils
need skopeo skopeo
need openssl openssl
need curl curl
need nbdinfo libnbd-bin
need nbdcopy libnbd-bin
need qemu-img qemu-utils
need qemu-io qemu-utils
need fusermount3 fuse3
need runc runc
need losetup mount
need setfattr attr
need getfattr attr
need setfacl acl
need getfacl acl
need debootstrap debootstrap
need umoci umoci
# bench/coldstart holds its registry's storage in memory across the page-cache drops.
need vmtouch vmtouch
# Network namespaces, tbf shaping and the DNAT of the P2P cluster (bench/p2p, its test).
need ip iproute2
need tc iproute2
need iptables iptables
need qemu-system-x86_64 qemu-system-x86
# systemd-analyze checks the service units in contrib/systemd (test/integration/systemd-units.test.ts).
need systemd-analyze systemd
# containerd (and its shim) for the proxy snapshotter tests; the snapshotter loads containerd's
# gRPC definitions from the Go sources package.
need containerd containerd
need containerd-shim-runc-v2 containerd
need ctr containerd
[ -f /usr/share/gocode/src/github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto ] ||
  need_pkgs+=(golang-github-containerd-containerd-dev)
# A Debian kernel for the VM boot test (QEMU over NBD).
ls /boot/vmlinuz-* >/dev/null 2>&1 || need_pkgs+=(linux-image-amd64)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Native addons (lz4, zstd-napi) compile with node-gyp; point it at the installed Node headers
# instead of downloading them (the machines have no route to nodejs.org).
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run --silent build
fi
