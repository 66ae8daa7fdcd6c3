#!/usr/bin/env bash
# podman with this repository's configuration (hack/podman/containers.conf: runc,
# ulimits within these machines' limits, no systemd), for running the image built by
# `make image`, e.g.
#   hack/podman.sh run --rm --read-only --tmpfs /tmp github-runners-snapshotter:local --help
set -euo pipefail
CONTAINERS_CONF="$(cd "$(dirname "$0")" && pwd)/podman/containers.conf"
export CONTAINERS_CONF
exec podman "$@"
