"""Generated code of healthcode.v1 (see proto/healthcode/v1)."""
