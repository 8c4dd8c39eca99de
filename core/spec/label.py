"""Model-spec section `label`: what a model predicts (a class, or the relevance of a ranked item)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from core.spec.base import RANKING_CUTOFFS, ColumnName, FieldProblem, NonEmptyStr, SpecModel, UniqueList


class Label(SpecModel):
    """What the model predicts: a binary or multiclass label, or the graded relevance of a ranked item."""

    dataset: ColumnName
    """Name of the label table joined to the features (e.g. `conversions`, `messages`)."""
    column: ColumnName
    task: Literal["binary", "multiclass", "ranking"]
    classes: UniqueList[NonEmptyStr] | None = None
    """Multiclass only: class names in output-index order (index i of the model's output = classes[i])."""
    group_column: ColumnName | None = None
    """Ranking only: the query a row belongs to (one ranked list, e.g. `session_id`); metrics are per
    query, and a query's rows never straddle a split."""
    item_column: ColumnName | None = None
    """Ranking only: the ranked item's key (one of the entity keys, e.g. `offer_id`), for the popularity
    baseline and the candidate lists."""
    position_column: ColumnName | None = None
    """Ranking, optional: the position the item was shown at in the logged list (1 = top), for
    position-bias-aware metrics; never a model input (a served list has no positions yet)."""
    k: UniqueList[Annotated[int, Field(gt=0)]] = ()
    """Ranking only: the cut-offs evaluated (`ndcg_at_<k>`, ...), each one of RANKING_CUTOFFS."""

    @model_validator(mode="after")
    def _classes_match_task(self) -> Self:
        ranking_only = ("group_column", "item_column", "position_column", "k")
        if self.task == "ranking":
            if self.classes is not None:
                raise FieldProblem("classes", "a ranking label is a graded relevance (0, 1, 2, ...)")
            for name in ("group_column", "item_column", "k"):
                if not getattr(self, name):
                    raise FieldProblem(name, "required for a ranking task")
            unknown = [k for k in self.k if k not in RANKING_CUTOFFS]
            if unknown:
                raise FieldProblem(
                    "k", f"cut-offs {unknown} not supported; use {', '.join(map(str, RANKING_CUTOFFS))}"
                )
            named = [self.column, self.group_column, self.item_column, self.position_column]
            named = [n for n in named if n is not None]
            if len(set(named)) != len(named):
                raise FieldProblem("group_column", f"column, group, item and position must differ: {named}")
            return self
        for name in ranking_only:
            if getattr(self, name):
                raise FieldProblem(name, f"only a ranking task has a {name}")
        if self.task == "multiclass":
            if self.classes is None:
                raise FieldProblem("classes", "required for a multiclass task (list the class names)")
            if len(self.classes) < 2:
                raise FieldProblem(
                    "classes", f"a multiclass task needs at least 2 classes, got {len(self.classes)}"
                )
        elif self.classes is not None:
            raise FieldProblem("classes", "only a multiclass task lists classes (a binary label is 0/1)")
        return self

    @property
    def n_classes(self) -> int:
        return 2 if self.classes is None else len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's output columns in order, and the outcomes as an application posts them: "0" and "1"
        for a binary label, else `classes`; a ranker outputs one column, its `score`."""
        if self.task == "ranking":
            return (RANKING_OUTPUT,)
        return ("0", "1") if self.classes is None else self.classes

    @property
    def passenger_columns(self) -> tuple[str, ...]:
        """Label-table columns the training set carries beside keys, time and label, never as inputs: a
        ranker's group and logged position."""
        return tuple(c for c in (self.group_column, self.position_column) if c is not None)


RANKING_OUTPUT = "score"
"""A ranker's one output column: higher ranks first (its scale means nothing across queries)."""


def require_classifier(label: Label, framework: str) -> None:
    """A framework plug-in's `check_spec` rule when it trains classifiers only."""
    if label.task == "ranking":
        raise FieldProblem(("label", "task"), f"{framework} models cannot rank yet; use xgboost or pytorch")
