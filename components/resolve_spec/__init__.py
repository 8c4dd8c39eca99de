"""Resolve-spec step: validate the spec before any work and say how many GPUs training asks for
(`step.run`)."""
