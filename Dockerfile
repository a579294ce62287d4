# s2sr as an UP42 processing block. GPU by default; CPU from the same file with a slim Python base:
#   docker build --build-arg BASE_IMAGE=python:3.11-slim ...
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

ARG UP42_MANIFEST="{}"
LABEL "up42_manifest"="${UP42_MANIFEST}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/s2sr/bin:$PATH

# Dependencies first: this layer is rebuilt only when requirements.txt changes. A base image that
# already has TensorFlow (the GPU one) keeps it, through --system-site-packages.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv --system-site-packages /opt/s2sr \
    && if python3 -c "import tensorflow" 2>/dev/null; then sed -i '/^tensorflow/d' /tmp/requirements.txt; fi \
    && /opt/s2sr/bin/python -m pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

WORKDIR /build
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY blocks ./blocks
COPY src ./src
RUN /opt/s2sr/bin/python -m pip install --no-cache-dir --no-deps . \
    && rm -rf /build \
    && useradd --create-home --uid 1000 up42 \
    && mkdir -p /tmp/input /tmp/output /tmp/quicklooks \
    && chown up42 /tmp/output /tmp/quicklooks

WORKDIR /home/up42
USER 1000
ENTRYPOINT ["s2sr", "block"]
