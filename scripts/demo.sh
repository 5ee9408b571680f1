#!/usr/bin/env bash
# The demo (run as root on a fresh Debian machine): set up, then build a small ext4 disk, turn it
# into a DADI layer (writable layer → commit → ZFile → one-file tar), inspect it, and read the whole
# disk back through the layer stack, checking it with e2fsck and comparing it byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2

dadi() { node bin/dadi.js "$@"; }
work=$(mktemp -d /tmp/dadi-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== 1. a small root filesystem as a raw ext4 disk (64 MiB)"
mkdir -p "$work/rootfs/etc" "$work/rootfs/bin"
cp /etc/os-release "$work/rootfs/etc/os-release"
echo "hello from a DADI layer" > "$work/rootfs/hello.txt"
head -c $((3 << 20)) /dev/urandom > "$work/rootfs/bin/blob"
mkfs.ext4 -q -F -b 4096 -I 256 -O ^has_journal -d "$work/rootfs" "$work/disk.img" 64M

echo "== 2. into a writable layer, then committed as a ZFile (LZ4) inside the one-file tar"
dadi layer create "$work/rw.data" "$work/rw.index" --size 64M
dadi layer import "$work/rw.data" "$work/rw.index" "$work/disk.img"
t0=$(date +%s.%N)
dadi layer commit -z -t "$work/rw.data" "$work/rw.index" "$work/layer.tar" -m "dadi demo"
t1=$(date +%s.%N)
printf 'committed in %.2f s: %s bytes (disk data %s bytes)\n' "$(awk "BEGIN{print $t1 - $t0}")" \
  "$(stat -c %s "$work/layer.tar")" "$(($(stat -c %b "$work/disk.img") * 512))"

echo "== 3. inspect"
dadi layer inspect "$work/layer.tar"

echo "== 4. read the disk back through tar → ZFile → LSMT and check it"
dadi layer export "$work/back.img" "$work/layer.tar"
cmp "$work/disk.img" "$work/back.img" && echo "exported disk is byte-identical to the original"
e2fsck -fn "$work/back.img" >/dev/null && echo "e2fsck -fn: clean"
printf 'hello.txt in the exported disk: '
debugfs -R 'cat /hello.txt' "$work/back.img" 2>/dev/null
echo "demo: ok"
