# cbmon serve in a container: the wheel built from this tree and its dependencies, nothing
# else of the tree, run as an unprivileged user. See docs/deploy.md ("Container image").
#
#   docker build -t cbmon:0.3.0 .
#   podman build --format docker -t cbmon:0.3.0 .    (docker format keeps the HEALTHCHECK)
#   docker run --rm -p 9863:9863 -e CBMON_DSN=postgresql://cbmon@db/app cbmon:0.3.0
#
# BASE is any Debian-based image with python3 and its venv module: the official Python image
# by default, or a mirror of it; scripts/build-image --local-base makes one where no registry
# can be reached.
ARG BASE=docker.io/library/python:3.12-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cbmon ./cbmon
# The wheel first, then a virtual environment holding it and its dependencies alone; pip
# itself leaves with the build stage.
RUN python3 -m venv /opt/cbmon \
    && /opt/cbmon/bin/pip install --no-cache-dir --disable-pip-version-check --quiet --upgrade pip \
    && /opt/cbmon/bin/pip wheel --no-cache-dir --disable-pip-version-check --quiet \
        --no-deps --wheel-dir /dist . \
    && /opt/cbmon/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
        /dist/cbmon-*.whl \
    && /opt/cbmon/bin/python -m pip uninstall --yes --quiet pip \
    && /opt/cbmon/bin/cbmon --version

FROM ${BASE}
LABEL org.opencontainers.image.title="cbmon" \
      org.opencontainers.image.description="Exact callback metrics, SLO alerts and reports for callback systems in PostgreSQL and GaussDB/openGauss" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/cbmon /opt/cbmon
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it; the state directory is its own.
RUN groupadd --gid 10001 cbmon \
    && useradd --uid 10001 --gid cbmon --no-create-home \
        --home-dir /var/lib/cbmon --shell /usr/sbin/nologin cbmon \
    && install -d -o cbmon -g cbmon -m 0750 /var/lib/cbmon
ENV PATH=/opt/cbmon/bin:$PATH \
    CBMON_STATE_DIR=/var/lib/cbmon \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/cbmon
EXPOSE 9863
# Alive while /healthz answers on the default port (with basic auth on, list /healthz under
# basic_auth_excluded_paths; with another port or TLS, give docker run --health-cmd).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)", "http://127.0.0.1:9863/healthz"]
ENTRYPOINT ["cbmon", "serve"]
