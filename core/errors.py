"""The one error type for invalid configuration.

`SpecError` is what every loader in `core` raises for a model spec that cannot be used:
a missing file, broken YAML, or a value that breaks a rule. Its message is a single line that names
the file and, where there is one, the dotted path of the offending field:

    pipelines/models/conversion-xgboost.yaml: serving.triton_backend: ... (got 'tensorrt')

It subclasses `ValueError`, so a service maps it to HTTP 400 (invalid input) without special cases.
"""

from __future__ import annotations

from os import PathLike


class SpecError(ValueError):
    """An invalid or unreadable model spec; `str()` is `<source>: [<field>: ]<problem>` on one line."""

    def __init__(self, source: str | PathLike[str], problem: str, field: str | None = None) -> None:
        self.source = str(source)
        self.field = field or None
        self.problem = " ".join(str(problem).split())  # one line, whatever the cause said
        super().__init__(self.source, self.problem, self.field)

    def __str__(self) -> str:
        parts = [self.source, self.field, self.problem] if self.field else [self.source, self.problem]
        return ": ".join(parts)

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, str | None]]:
        return (type(self), (self.source, self.problem, self.field))
