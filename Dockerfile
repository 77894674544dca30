# One image for every hcx role; the role is chosen by the command, e.g.
#   docker run hcx gateway serve ...    docker run hcx node serve ...
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY healthcode ./healthcode
COPY trust ./trust
COPY nodes ./nodes
COPY gateway ./gateway
COPY simulations ./simulations
COPY hcx ./hcx
RUN pip install --no-cache-dir "grpcio-tools>=1.85" \
 && python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
      proto/healthcode/v1/*.proto \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/hcx --create-home hcx
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER hcx
WORKDIR /var/lib/hcx
ENTRYPOINT ["hcx"]
CMD ["--help"]
