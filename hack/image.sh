#!/usr/bin/env bash
# Builds the container image with podman and tags it github-runners-snapshotter:local
# (`make image`), on a Debian machine without a container registry:
#   1. installs podman (with runc) and mmdebstrap from Debian when missing;
#   2. makes the local base image once: Debian bookworm's python3 (CPython 3.11, the
#      interpreter the dependency lock is for), by mmdebstrap, imported into podman;
#   3. podman build --pull=never --network host, the host's CA bundle mounted read-only
#      into the pip steps as a build secret (never baked into a layer).
# Podman is configured by hack/podman/containers.conf (CONTAINERS_CONF); the machine's
# /etc/containers is left alone. Idempotent: what exists is reused (podman's layer
# cache included), so a second run takes seconds.
#
#   hack/image.sh                 install what is missing, make the base if missing, build
#   hack/image.sh --install       only install podman and mmdebstrap (hack/setup.sh)
#   hack/image.sh --refresh-base  re-make the base first (Debian's latest updates)
#   BASE_IMAGE=python:3.11-slim@sha256:... hack/image.sh
#                                 build on another base, pulled if missing (needs a registry)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-github-runners-snapshotter:local}
LOCAL_BASE=localhost/github-runners-snapshotter-base:python3.11-bookworm
HOST_CA=/etc/ssl/certs/ca-certificates.crt
CONTAINERS_CONF="$PWD/hack/podman/containers.conf"
export CONTAINERS_CONF

log() { printf '==> %s\n' "$*" >&2; }

install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} (Debian packages)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # runc named explicitly: podman accepts crun or runc, and crun fails on these machines.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc mmdebstrap >/dev/null
}

make_base() {
  if [ "${1:-}" != "--refresh" ] && podman image exists "$LOCAL_BASE"; then
    return
  fi
  log "making the base image $LOCAL_BASE (mmdebstrap, Debian bookworm's python3)"
  # On a bookworm host, its own apt sources (its mirrors, security updates included);
  # elsewhere mmdebstrap's default Debian mirror.
  local sources=()
  # Global, not local: the trap runs after this function has returned.
  BASE_TARBALL=$(mktemp --suffix=.tar)
  trap 'rm -f "$BASE_TARBALL" "$BASE_TARBALL.log"' EXIT
  if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list.d/*.sources; do
      [ -s "$f" ] && sources+=("$f")
    done
  fi
  # essential: Debian's Essential packages plus the ones included, no apt. python3-venv
  # brings ensurepip, which the build stages use for their own pip (the image's venv
  # has none). Documentation and translations are left out, as in Debian's slim images.
  # merged-usr: /bin -> usr/bin symlinks, as Debian's own images have (its usrmerge
  # package would pull in perl).
  if ! mmdebstrap --quiet --variant=essential --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,ca-certificates,netbase,tzdata \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    bookworm "$BASE_TARBALL" "${sources[@]}" >"$BASE_TARBALL.log" 2>&1; then
    cat "$BASE_TARBALL.log" >&2
    exit 1
  fi
  # Imported only once complete: a failed run leaves no half-made base behind.
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$BASE_TARBALL" "$LOCAL_BASE" >/dev/null
  rm -f "$BASE_TARBALL" "$BASE_TARBALL.log"
}

build() {
  local base=${BASE_IMAGE:-$LOCAL_BASE} pull=never
  if [ -n "${BASE_IMAGE:-}" ]; then
    pull=missing
  fi
  local args=(
    --pull="$pull" --network host --tag "$IMAGE"
    --build-arg "BASE_IMAGE=$base"
    --build-arg "VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
    --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  )
  # The host's CA bundle for pip (a TLS-inspecting proxy may sign what it fetches),
  # as a build secret: mounted read-only into the pip steps only, in no layer.
  if [ -f "$HOST_CA" ]; then
    args+=(--secret "id=ca,src=$HOST_CA")
  fi
  log "building $IMAGE on $base"
  podman build --quiet "${args[@]}" . >/dev/null
  podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE"
}

case "${1:-}" in
  --install) install_tools ;;
  --refresh-base) install_tools && make_base --refresh && build ;;
  "")
    install_tools
    [ -n "${BASE_IMAGE:-}" ] || make_base
    build
    ;;
  *)
    echo "usage: $0 [--install | --refresh-base]" >&2
    exit 2
    ;;
esac
