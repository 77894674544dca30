#!/bin/sh
# One-shot initialisation of the compose federation (the `init` service of docker-compose.yml).
#
# Writes into the shared volume mounted at $PKI:
#   national/            root CA, trust-list and log signers, genesis (hcx registry init)
#   national/coordinators/{alice,bob,carol}/   the three coordinators (2 of 3 must agree)
#   gateway-1/, gateway-2/, init-gateway/      gateway TLS identities (hcx registry issue-cert)
#   <province>/          the province's CA key, CSR, CA certificate, DSC, holder-hash key
#   <province>/tls/      operator, node-1, node-2, checkpoint TLS identities (hcx node keys issue-cert)
# and builds the registry log in etcd through an *init gateway*: a gateway bound to loopback
# inside this container, holding only the log and trust-list keys, stopped at the end. The root
# key signs certificates here (sign-ca, issue-cert) in commands that exit; no server ever holds
# it. Each province is onboarded as coordinators do: alice proposes, bob approves.
#
# Idempotent: every step is skipped when its output exists, so `docker compose up` can rerun it.
# Every hcx command below is parsed by tests/unit/deploy/test_init_script.py.
set -eu

PKI=/var/lib/hcx/pki
NATIONAL=$PKI/national
REGISTRY=etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379
INIT_GATEWAY=localhost:50050
PORT_FILE=/tmp/init-gateway.port
GATEWAYS="gateway-1 gateway-2"
REPLICAS="node-1 node-2"
ALICE=$NATIONAL/coordinators/alice
BOB=$NATIONAL/coordinators/bob

national() {
    [ -f "$NATIONAL/root.pem" ] || hcx registry init --dir "$NATIONAL" \
        --coordinators alice,bob,carol --threshold 2
    for gateway in $GATEWAYS init-gateway; do
        # Host names: the container name and the shared network alias gateway.
        [ -f "$PKI/$gateway/cert.pem" ] || hcx registry issue-cert --kind gateway \
            --name "$gateway" --root-dir "$NATIONAL" --out "$PKI/$gateway" \
            --dns "$gateway" --dns gateway
    done
}

start_init_gateway() {
    rm -f "$PORT_FILE"
    hcx gateway serve --registry "$REGISTRY" --root-cert "$NATIONAL/root.pem" \
        --log-cert "$NATIONAL/log/cert.pem" --log-key "$NATIONAL/log/key.pem" \
        --tls-dir "$PKI/init-gateway" --listen 127.0.0.1:50050 --port-file "$PORT_FILE" \
        --workers 1 &  # one process: each step reads what the previous one wrote
    GATEWAY_PID=$!
    trap 'kill "$GATEWAY_PID" 2>/dev/null || true' EXIT
    waited=0
    until [ -s "$PORT_FILE" ]; do
        kill -0 "$GATEWAY_PID" 2>/dev/null || { echo "init: init gateway died" >&2; exit 1; }
        waited=$((waited + 1))
        [ "$waited" -lt 600 ] || { echo "init: init gateway not up in 60 s" >&2; exit 1; }
        sleep 0.1
    done
    if [ ! -f "$NATIONAL/genesis.submitted" ]; then
        hcx registry submit --file "$NATIONAL/genesis.cbor" --gateway "$INIT_GATEWAY" \
            --tls-dir "$ALICE"
        touch "$NATIONAL/genesis.submitted"
    fi
}

# province CODE NAME: keys made by the province, CA signed by the root, onboarded 2 of 3,
# DSC signed by the province's CA and submitted by its operator.
province() {
    code=$1
    dir="$PKI/$1"
    # holder-key.bin is written last: a run stopped before it is completed by init itself
    [ -f "$dir/holder-key.bin" ] || hcx node keys init --province "$code" --dir "$dir"
    [ -f "$dir/ca.pem" ] || hcx registry sign-ca --root-dir "$NATIONAL" --province "$code" \
        --name "$2" --csr "$dir/ca.csr" --out "$dir/ca.pem"
    if [ ! -f "$dir/onboarded" ]; then
        hcx registry onboard-province --province "$code" --name "$2" --ca "$dir/ca.pem" \
            --gateway "$INIT_GATEWAY" --tls-dir "$ALICE"
        hcx registry approve --province "$code" --gateway "$INIT_GATEWAY" --tls-dir "$BOB"
        touch "$dir/onboarded"
    fi
    [ -f "$dir/tls/operator/cert.pem" ] || hcx node keys issue-cert --kind operator \
        --name operator-1 --dir "$dir" --out "$dir/tls/operator"
    [ -f "$dir/dsc.pem" ] || hcx node keys new-dsc --province "$code" --dir "$dir" --name dsc-1
    if [ ! -f "$dir/dsc.uploaded" ]; then
        hcx node keys upload --dir "$dir" --gateway "$INIT_GATEWAY" --tls-dir "$dir/tls/operator"
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
start_init_gateway
province 330000 "浙江省"
province 510000 "四川省"
province 460000 "海南省"
echo "init: national root, 3 coordinators (2 of 3), 2 gateways, 3 provinces ready in $PKI"
