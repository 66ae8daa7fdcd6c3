# GitHub Runners Snapshotter container image: runs as uid 10001, works with a read-only
# root filesystem (give it a writable /tmp), config from a mounted file or SNAPSHOTTER_*
# environment variables (e.g. SNAPSHOTTER_DATABASE__URL from a Secret).
# `make image` builds it with podman (hack/image.sh); see README.md, "Container image".
#
# BASE_IMAGE: any image with CPython 3.11 as `python3`, its `venv` module and ensurepip.
# The default is the official python:3.11-slim image (Debian trixie, CPython 3.11.16)
# pinned by its multi-arch index digest, as published on 2026-08-16 and pinned by
# several public projects since. Refresh it deliberately: `docker pull python:3.11-slim`
# (or `podman pull`) and copy the `Digest:` it prints. hack/image.sh builds on a local
# Debian bookworm base instead (mmdebstrap, no registry needed).
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# -- tools: pip and the wheel build backend, for the build stages only --------------
FROM ${BASE_IMAGE} AS tools
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ONLY_BINARY=:all: \
    PIP_ROOT_USER_ACTION=ignore
COPY requirements-build.lock /src/
# The host's CA bundle, when the build is given it as the secret `ca` (hack/image.sh:
# `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`), is what pip trusts, in the
# two steps that download and only there: a secret is mounted read-only into the steps
# that ask for it and never lands in a layer. Without it pip uses its own CA bundle.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -f /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install --require-hashes -r /src/requirements-build.lock

# -- deps: the locked runtime dependencies in /opt/venv, a venv without pip ----------
# The venv's interpreter is a symlink to the base's python3 (/usr/local/bin in
# python:slim, /usr/bin in Debian), so the final stage uses the same BASE_IMAGE.
# Everything is compiled to bytecode here (the image's filesystem is read-only at run
# time), except the kubernetes client's asyncio variant (kubernetes.aio, 25 MB of
# bytecode), which the snapshotter never imports.
FROM tools AS deps
COPY requirements.lock /src/
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -f /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --require-hashes \
        --no-compile -r /src/requirements.lock \
    && /opt/venv/bin/python -m compileall -q -x /kubernetes/aio/ /opt/venv/lib

# -- app: the package's wheel, installed without its dependencies under /staging -----
# Only the package's own files are staged (--root), so that a source change rebuilds a
# small layer and the dependencies' layer stays cached.
FROM deps AS app
COPY pyproject.toml README.md /src/
COPY snapshotter /src/snapshotter
RUN /opt/tools/bin/pip wheel --no-deps --no-build-isolation --no-index \
        --wheel-dir /tmp/wheel /src \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-deps --no-index \
        --no-warn-script-location --root /staging /tmp/wheel/*.whl \
    && cp -a /staging/opt/venv/. /opt/venv/ \
    && /opt/tools/bin/pip --python /opt/venv/bin/python check

# -- the image ---------------------------------------------------------------------
FROM ${BASE_IMAGE}
RUN printf 'snapshotter:x:10001:10001:GitHub Runners Snapshotter:/nonexistent:/usr/sbin/nologin\n' \
        >>/etc/passwd \
    && printf 'snapshotter:x:10001:\n' >>/etc/group
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /staging/ /
# The sources are compiled at build time; nothing is written at run time.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# The one place that must be writable (the Kubernetes client's CA file): relative
# paths land there too.
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/snapshotter"]

# Last, so that a new revision changes only the image's metadata, no layer.
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=https://github.com/primus-lens/github-runners-snapshotter
LABEL org.opencontainers.image.title="github-runners-snapshotter" \
      org.opencontainers.image.description="Keeps the history of GitHub Actions Runner Controller (ARC) runners and jobs in PostgreSQL." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
