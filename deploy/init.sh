#!/bin/sh
# One-shot initialisation of the compose federation (the `init` service of docker-compose.yml).
#
# Writes into the shared volume mounted at $PKI:
#   national/            root CA + trust-list signer (hcx registry init)
#   gateway-1/, gateway-2/, onboarding/   gateway TLS identities (hcx registry issue-cert)
#   coordinator/         the coordinators' TLS client identity
#   <province>/          the province's CA key, CSR, CA certificate, DSC, holder-hash key
#   <province>/tls/      operator, node-1, node-2, checkpoint TLS identities (hcx node keys issue-cert)
# and onboards the three provinces into the etcd registry through an "onboarding gateway":
# a gateway holding the root key, bound to loopback inside this container, stopped at the end.
# No long-running service ever holds root-key.pem (docs/operations.md, "Trust anchors").
#
# Idempotent: every step is skipped when its output exists, so `docker compose up` can rerun it.
# Every hcx command below is parsed by tests/unit/deploy/test_init_script.py.
set -eu

PKI=/var/lib/hcx/pki
REGISTRY=etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379
ONBOARDING=localhost:50050
PORT_FILE=/tmp/onboarding-gateway.port
GATEWAYS="gateway-1 gateway-2"
REPLICAS="node-1 node-2"

national() {
    [ -f "$PKI/national/root.pem" ] || hcx registry init --dir "$PKI/national"
    for gateway in $GATEWAYS onboarding; do
        # Host names: the container name and the shared network alias gateway.
        [ -f "$PKI/$gateway/cert.pem" ] || hcx registry issue-cert --kind gateway \
            --name "$gateway" --root-dir "$PKI/national" --out "$PKI/$gateway" \
            --dns "$gateway" --dns gateway
    done
    [ -f "$PKI/coordinator/cert.pem" ] || hcx registry issue-cert --kind coordinator \
        --name init --root-dir "$PKI/national" --out "$PKI/coordinator"
}

start_onboarding_gateway() {
    rm -f "$PORT_FILE"
    hcx gateway serve --registry "$REGISTRY" --root-cert "$PKI/national/root.pem" \
        --root-key "$PKI/national/root-key.pem" --tls-dir "$PKI/onboarding" \
        --listen 127.0.0.1:50050 --port-file "$PORT_FILE" &
    GATEWAY_PID=$!
    trap 'kill "$GATEWAY_PID" 2>/dev/null || true' EXIT
    waited=0
    until [ -s "$PORT_FILE" ]; do
        kill -0 "$GATEWAY_PID" 2>/dev/null || { echo "init: onboarding gateway died" >&2; exit 1; }
        waited=$((waited + 1))
        [ "$waited" -lt 600 ] || { echo "init: onboarding gateway not up in 60 s" >&2; exit 1; }
        sleep 0.1
    done
}

# province CODE NAME: keys made by the province, CA signed by the national root, DSC uploaded.
province() {
    code=$1
    dir="$PKI/$1"
    [ -f "$dir/ca.csr" ] || hcx node keys init --province "$code" --dir "$dir"
    [ -f "$dir/ca.pem" ] || hcx registry onboard-province --gateway "$ONBOARDING" \
        --tls-dir "$PKI/coordinator" --province "$code" --name "$2" \
        --csr "$dir/ca.csr" --out "$dir/ca.pem"
    [ -f "$dir/tls/operator/cert.pem" ] || hcx node keys issue-cert --kind operator \
        --name operator-1 --dir "$dir" --out "$dir/tls/operator"
    [ -f "$dir/dsc.pem" ] || hcx node keys new-dsc --province "$code" --dir "$dir" --name dsc-1
    if [ ! -f "$dir/dsc.uploaded" ]; then
        hcx node keys upload --dir "$dir" --gateway "$ONBOARDING" --tls-dir "$dir/tls/operator"
        touch "$dir/dsc.uploaded"
    fi
    for replica in $REPLICAS; do
        host="node-$code-${replica##*-}"  # the compose service name, e.g. node-330000-1
        [ -f "$dir/tls/$replica/cert.pem" ] || hcx node keys issue-cert --kind node \
            --name "$replica" --dir "$dir" --out "$dir/tls/$replica" --dns "$host"
    done
    [ -f "$dir/tls/checkpoint/cert.pem" ] || hcx node keys issue-cert --kind checkpoint \
        --name checkpoint-1 --dir "$dir" --out "$dir/tls/checkpoint"
}

national
start_onboarding_gateway
province 330000 "浙江省"
province 510000 "四川省"
province 460000 "海南省"
echo "init: national root, 2 gateways, 3 provinces ready in $PKI"
