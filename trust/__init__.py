"""Pure trust core of hcx: PKI, the code format (COSE/CWT), the registry model and verification.

Nothing here imports grpc; only the store adapters under ``trust.stores`` talk to databases.
"""
