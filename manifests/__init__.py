"""Kustomize bases for the cluster, and the checks that every rendered overlay must pass."""
