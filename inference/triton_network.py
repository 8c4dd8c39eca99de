"""Where a local Triton listens: the loopback `HOST` and the `Ports` triple (HTTP, gRPC, metrics), with
`free_ports` and `http_ok` from `core.ports`. Split out of `inference.triton_local` (which
re-exports every name); standard library only, so it imports in the serving environment too.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.ports import HOST, free_ports, http_ok

__all__ = ["HOST", "Ports", "free_ports", "http_ok"]


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        http, grpc, metrics = free_ports(3)
        return cls(http=http, grpc=grpc, metrics=metrics)
