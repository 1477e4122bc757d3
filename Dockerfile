# The ALM image: every service is `alm <subcommand>` (see deploy/k8s/ for how they are run).
#   docker build -t alm:0.1.0 .
#   docker run --rm -p 8080:8080 alm:0.1.0 run --offline --host 0.0.0.0   # embedded demo
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY services ./services
COPY schemas ./schemas
# Read at run time relative to the source tree, not shipped in the wheel: the sample works and
# the recorded upstream responses (`alm run --offline`, `alm stub-upstream`). The schemas ship in
# the wheel (setup.py) and are also read from the tree.
COPY data ./data
COPY tests/fixtures/upstream ./tests/fixtures/upstream
RUN pip install .
# `services` resolves `schemas/` (and data/, tests/fixtures/) from its own location, and the
# wheel carries only the package, so the code runs from /app; the install above provides the
# dependencies and the `alm` entry point.
ENV PYTHONPATH=/app

RUN useradd --system --uid 10001 --create-home --home-dir /home/alm alm
USER 10001
WORKDIR /home/alm
# Only the embedded mode (ALM_STORE=sqlite) writes here; the distributed mode keeps state in
# Cassandra and Kafka.
ENV ALM_DATA_DIR=/home/alm/.alm-data

EXPOSE 8080
ENTRYPOINT ["alm"]
CMD ["--help"]
