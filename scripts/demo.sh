#!/usr/bin/env bash
# The demo (as root on a fresh Debian machine): set up, start a local registry (or use
# DADI_DEMO_REGISTRY=host:port), build a small real Debian image (debootstrap + umoci), convert it
# to a DADI image in the registry, then cold-start a container from it lazily and print the time to
# first output and the bytes fetched — next to the image size and a warm start.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2

dadi() { node bin/dadi.js "$@"; }
work=${DADI_DEMO_DIR:-/var/tmp/dadi-demo}
run_dir=$(mktemp -d "$work.run.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$work")"; mktemp -d "$work.run.XXXXXX"; })
export DADI_STATE="$run_dir/state" DADI_CACHE_DIR="$run_dir/cache"
registry_pid=""

cleanup() {
  node --input-type=module -e "
    const m = await import('./dist/runtime/index.js');
    const c = await m.DaemonClient.connect({ autoStart: false }).catch(() => undefined);
    await c?.shutdown();" 2>/dev/null || true
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

registry=${DADI_DEMO_REGISTRY:-}
if [ -z "$registry" ]; then
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  mkdir -p "$run_dir/registry"
  cat > "$run_dir/registry/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $run_dir/registry/storage
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$run_dir/registry/config.yml" >"$run_dir/registry/log" 2>&1 &
  registry_pid=$!
  registry=127.0.0.1:$port
  for _ in $(seq 50); do curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== a local registry on $registry (pid $registry_pid)"
fi

echo "== 1. a small real image: Debian bookworm minbase (debootstrap + umoci; cached in $work)"
if [ ! -f "$work/oci/.complete" ]; then
  rm -rf "$work/rootfs" "$work/oci" "$work/bundle"
  mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  debootstrap --variant=minbase bookworm "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  umoci init --layout "$work/oci" && umoci new --image "$work/oci:app"
  umoci unpack --image "$work/oci:app" "$work/bundle" >/dev/null
  cp -a "$work/rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/oci:app" "$work/bundle"
  umoci config --image "$work/oci:app" --config.cmd /bin/sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
  rm -rf "$work/bundle" "$work/rootfs"
  touch "$work/oci/.complete"
fi

echo "== 2. convert it to a DADI image in the registry (ext4 layers, LSMT + ZFile, one-file tar)"
dadi convert --json "oci:$work/oci:app" "$registry/demo/debian:dadi" >"$run_dir/convert.json"
image_bytes=$(node -e "const r=require('$run_dir/convert.json');console.log(r.layers.reduce((a,l)=>a+l.size,0))")
echo "converted: $image_bytes bytes in the registry"

cmd=(sh -c 'echo "hello from a lazily started Debian container: $(cat /etc/debian_version)"; ls /usr/bin | wc -l')
start_and_time() {
  local t0 first
  t0=$(date +%s.%N)
  dadi run --rm "$registry/demo/debian:dadi" -- "${cmd[@]}" | {
    IFS= read -r first
    awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN{printf "  [%.2f s to first output] ", t1 - t0}'
    echo "$first"
    cat >/dev/null
  }
}

echo "== 3. cold start: empty block cache, nothing pulled beforehand"
start_and_time
fetched=$(dadi cache ls --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).entries.reduce((a,e)=>a+e.cachedBytes,0)))")
awk -v f="$fetched" -v i="$image_bytes" 'BEGIN{printf "fetched %d bytes from the registry: %.1f%% of the %d-byte image\n", f, 100*f/i, i}'

echo "== 4. warm start: the same image again, blocks now cached"
start_and_time
echo "demo: ok"
