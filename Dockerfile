# GitHub Runners Snapshotter container image: non-root, config from a mounted file or
# SNAPSHOTTER_* environment variables (e.g. SNAPSHOTTER_DATABASE__URL from a Secret).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY snapshotter ./snapshotter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/snapshotter --create-home snapshotter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/snapshotter
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["snapshotter"]
