# syntax=docker/dockerfile:1.7
# The ALM image: every service is `alm <subcommand>` (deploy/helm/alm runs them on Kubernetes).
#   docker build -t alm:0.1.0 .
#   docker run --rm -p 8080:8080 alm:0.1.0 run --offline --host 0.0.0.0   # embedded demo
#
# Two stages: `build` turns the runtime dependencies of pyproject.toml into wheels (pip's cache
# on a BuildKit cache mount, so a rebuild downloads nothing it already has); the final stage
# installs only those wheels into a slim Python, with no compiler, no pip cache and no wheel
# files left in a layer, and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
# The runtime dependencies, as pyproject.toml pins them (one list, no requirements file to
# keep in step).
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels -r requirements.txt

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/requirements.txt,target=/tmp/requirements.txt \
    pip install --no-index --find-links /wheels -r /tmp/requirements.txt

# The code runs from its source tree (PYTHONPATH), as in a checkout: `services` finds schemas/
# beside it, and data/ (sample works) and the recorded upstream responses (`alm run --offline`,
# `alm stub-upstream`) where settings.py looks. `alm` calls the entry point that
# pyproject.toml's [project.scripts] names; the bytecode is compiled here, as the pods' root
# file system is read-only.
WORKDIR /app
COPY services ./services
COPY schemas ./schemas
COPY data ./data
COPY tests/fixtures/upstream ./tests/fixtures/upstream
ENV PYTHONPATH=/app
RUN printf '#!/usr/local/bin/python\nimport sys\nfrom services.cli.main import main\nsys.exit(main())\n' \
      > /usr/local/bin/alm \
    && chmod 0755 /usr/local/bin/alm \
    && python -m compileall -q services \
    && groupadd --system --gid 10001 alm \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent alm \
    && install -d -o 10001 -g 10001 /var/lib/alm

USER 10001:10001
# Only the embedded mode (ALM_STORE=sqlite) and the aggregator's faust datadir write here; on
# Kubernetes the chart mounts an emptyDir and the root file system is read-only.
ENV ALM_DATA_DIR=/var/lib/alm
EXPOSE 8080 9100
ENTRYPOINT ["alm"]
CMD ["--help"]
