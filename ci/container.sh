#!/usr/bin/env bash
# Build the block's image and test it end to end, as the platform runs it.
#   ci/container.sh build IMAGE    build (docker where an engine answers, podman otherwise)
#   ci/container.sh e2e IMAGE      build, then run on a sample product with mounted /tmp/input
# With podman and no registry in reach, the base image is bootstrapped from Debian packages once and
# kept in podman's storage (localhost/s2sr-base:bookworm), so later runs on the same machine reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?build or e2e}
image=${2:-localhost/s2sr:latest}
base_local=localhost/s2sr-base:bookworm

log() { echo "container.sh: $*" >&2; }

engine() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
    return
  fi
  if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    log "installing podman, runc and debootstrap"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
  fi
  if [ ! -f /etc/containers/containers.conf ] || ! grep -q cgroupfs /etc/containers/containers.conf; then
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n' > /etc/containers/containers.conf
  fi
  echo podman
}

ENGINE=$(engine)
run_engine() {
  if [ "$ENGINE" = podman ]; then podman --runtime runc "$@"; else docker "$@"; fi
}

base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then echo "$BASE_IMAGE"; return; fi
  if [ "$ENGINE" = docker ]; then echo "python:3.11-slim"; return; fi
  if ! run_engine image exists "$base_local" 2>/dev/null; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$(mktemp -d)
    log "bootstrapping $base_local from $mirror (once per machine)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" "$mirror" >/dev/null
    tar -C "$root" -c . | run_engine import - "$base_local" >/dev/null
    rm -rf "$root"
  fi
  echo "$base_local"
}

build() {
  local base manifest
  base=$(base_image)
  manifest=$(python3 -c 'import json,sys; print(json.dumps(json.load(open("UP42Manifest.json"))))')
  log "building $image on $base with $ENGINE"
  local extra=()
  if [ "$ENGINE" = podman ]; then extra=(--network host -v /etc/ssl/certs:/etc/ssl/certs:ro); fi
  run_engine build "${extra[@]}" --build-arg "BASE_IMAGE=$base" --build-arg "UP42_MANIFEST=$manifest" -t "$image" .
}

e2e() {
  build
  work=$(mktemp -d)
  trap 'rm -rf "${work:-}"' EXIT
  .venv/bin/python ci/e2e_check.py prepare "$work"
  chmod -R a+rwX "$work"
  local params
  params=$(cat "$work/params.json")
  run_block() {
    run_engine run --rm --network none \
      -e "UP42_TASK_PARAMETERS=$1" \
      -v "${2:-$work/input}:/tmp/input:ro" -v "$work/output:/tmp/output" -v "$work/quicklooks:/tmp/quicklooks" \
      "$image"
  }
  log "run 1: the product page's parameters $params"
  run_block "$params"
  .venv/bin/python ci/e2e_check.py check "$work"
  rm -rf "${work:?}/output/"* "${work:?}/quicklooks/"*
  log "run 2: bad parameters must exit 2 and write nothing"
  set +e
  run_block '{"clip_to_aoi": true}'
  code=$?
  set -e
  .venv/bin/python ci/e2e_check.py check-empty "$work" "$code"
  rm -rf "${work:?}/output/"* "${work:?}/quicklooks/"*
  params=$(cat "$work/params-mosaic.json")
  log "run 3: mosaic over two products of one datatake $params"
  run_block "$params" "$work/input-mosaic"
  .venv/bin/python ci/e2e_check.py check-mosaic "$work"
  run_engine image inspect --format '{{ index .Config.Labels "up42_manifest" }}' "$image" | .venv/bin/python ci/e2e_check.py check-label
  log "e2e passed"
}

case "$action" in
  build) build ;;
  e2e) e2e ;;
  *) log "unknown action $action (build or e2e)"; exit 2 ;;
esac
