"""Generated protobuf/gRPC code for package healthcode (made by `make proto`, not committed)."""
