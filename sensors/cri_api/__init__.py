"""Python bindings of a subset of the Kubernetes CRI ``runtime.v1`` API (generated from api.proto)."""
