# tracardi-operator: one image for the operator (`tracardi-operator run`) and for the install and
# migration Jobs it starts (`tracardi-operator job install ...`), so that a Job always runs the code
# of the operator that created it.
#
# The base is pinned to an exact version tag. For reproducible builds pin its digest as well
# (recommended), e.g. python:3.11.13-slim-bookworm@sha256:<digest>; `docker buildx imagetools
# inspect python:3.11.13-slim-bookworm` prints it.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: a virtualenv with the pinned dependencies and the package -------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The venv is built at the path it has in the final image: its scripts name their interpreter by path.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, exactly as pinned in pyproject.toml, so that a code change reuses this layer.
# Every one of them ships wheels for CPython 3.11 on linux (amd64, arm64): nothing is compiled.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install pip==25.3 \
    && pip install --no-compile --only-binary=:all: -r requirements.txt
COPY operator/ operator/
RUN pip install --no-compile --no-deps . \
    && python -m compileall -q -o 2 /opt/venv

# ---- final: the slim base and the venv; no compilers, no pip cache, no sources -------------------
FROM ${PYTHON_IMAGE}
# The base's standard library comes with no bytecode at the level the image runs (the official images
# delete all of it): compiled here, a start does not compile each module it imports from source on the
# read-only root filesystem.
RUN python -m compileall -q -o 2 "$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled in the builder: the root filesystem is read-only at run time. HOME points at
# the writable /tmp (an emptyDir in manifests/) for any library that caches there.
# PYTHONOPTIMIZE=2 (python -OO) leaves out docstrings and assert statements: the libraries' docstrings
# are memory the operator never reads (the README's performance section). Bytecode is compiled at that
# level above, the only one the image runs.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONOPTIMIZE=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric, non-root UID/GID (no passwd entry needed), so that `runAsNonRoot` can verify it.
USER 65532:65532
# /metrics, /healthz and /readyz (TRACARDI_OPERATOR_HEALTH_PORT). No HEALTHCHECK: Kubernetes probes.
EXPOSE 8080
ENTRYPOINT ["tracardi-operator"]
CMD ["run"]
