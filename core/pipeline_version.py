"""The name of a compiled pipeline's KFP `PipelineVersion`: the pipeline's name and a hash of its compiled
IR, so that a changed pipeline is a new, differently named version.

KFP's PipelineVersion is immutable (the API server refuses an update of its spec), so a GitOps sync that
changed the spec under the same name would be rejected. `make compile` names the version it writes with
this function, and the run submitters (the retrain trigger, the weekly schedule, `pipelines.submit`) ask
the KFP API for the version of that name, computed from the compiled package their image ships: what Argo
CD deployed is what runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHARS = 10


def pipeline_version_name(pipeline_name: str, package: Path) -> str:
    """`<pipeline_name>-<first 10 hex of sha256(compiled IR)>`, a DNS-1123 name for the version."""
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:HASH_CHARS]
    return f"{pipeline_name}-{digest}"
