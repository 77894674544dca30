# syntax=docker/dockerfile:1
# One image for every hcx role; the role is chosen by the command (ENTRYPOINT is `hcx`):
#   docker run hcx:local gateway serve --tls-dir ...     docker run hcx:local node serve ...
#   docker run hcx:local config-reference                (every option and its HCX_* variable)
# docker-compose.yml builds it as hcx:local; its one-shot init service runs /usr/local/bin/hcx-init.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
RUN pip wheel --wheel-dir /wheels -r /tmp/requirements.txt "grpcio-tools>=1.85"
COPY proto ./proto
COPY healthcode ./healthcode
COPY trust ./trust
COPY nodes ./nodes
COPY gateway ./gateway
COPY simulations ./simulations
COPY hcx ./hcx
COPY web ./web
# Generated protobuf code is not in git (make proto): produce it here the same way.
RUN pip install --no-index --find-links /wheels "grpcio-tools>=1.85" \
 && rm -f healthcode/v1/*_pb2*.py* \
 && python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
      proto/healthcode/v1/*.proto \
 && pip wheel --no-deps --wheel-dir /wheels . \
 && rm -f /wheels/grpcio_tools-*.whl

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
LABEL org.opencontainers.image.title="hcx" \
      org.opencontainers.image.description="Federated interprovincial health-code exchange"
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/hcx-*.whl && rm -rf /wheels
# An unprivileged user; the directories exist so that named volumes mounted there inherit
# its ownership (keys must stay readable by hcx only: key files are 0600).
RUN useradd --system --uid 10001 --home-dir /var/lib/hcx --create-home hcx \
 && install -d -o hcx -g hcx -m 0700 /var/lib/hcx/pki /var/lib/hcx/state
COPY --chmod=0755 deploy/init.sh /usr/local/bin/hcx-init
USER hcx
WORKDIR /var/lib/hcx
# gRPC (gateway 50051, node 7001) and /metrics (9100 gateway, 9101 node) in docker-compose.yml.
EXPOSE 50051 7001 9100 9101
STOPSIGNAL SIGTERM
ENTRYPOINT ["hcx"]
CMD ["--help"]
