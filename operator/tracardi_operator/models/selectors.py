"""Label selectors (metav1.LabelSelector) and the label key and value types they are made of: what
retention policies use to pick namespaces and installations, evaluated here as the API server would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from tracardi_operator.labels import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, MAX_LABEL_KEY_LENGTH, MAX_LABEL_LENGTH
from tracardi_operator.models.common import CamelModel, cel_rule

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_KEY_LENGTH, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH, pattern=LABEL_VALUE_PATTERN)]


class LabelSelectorRequirement(CamelModel):
    """One expression of a label selector, as in metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)",
                    "In and NotIn need values; Exists and DoesNotExist take none",
                )
            ]
        }
    )

    key: LabelKey = Field(description="Label key the expression applies to, e.g. tracardi.com/retention.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How the key relates to values.")
    values: list[LabelValue] | None = Field(
        default=None, max_length=64, description="Values for In and NotIn; empty otherwise."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this expression."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        inside = present and labels[self.key] in (self.values or [])
        return inside if self.operator == "In" else not inside


class LabelSelector(CamelModel):
    """A label query, as in metav1.LabelSelector: all of its terms must hold; an empty one matches all."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels that must have these values.",
        json_schema_extra={
            "maxProperties": 64,
            "x-kubernetes-validations": [
                cel_rule(f"self.all(k, k.matches('{LABEL_KEY_PATTERN}'))",
                     "every key must be a label key: [prefix/]name, e.g. tracardi.com/retention")
            ],
        },
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [key for key in labels if len(key) > MAX_LABEL_KEY_LENGTH or not re.match(LABEL_KEY_PATTERN, key)]
        if bad:
            raise ValueError(f"not a label key: {bad[0]!r} (expected [prefix/]name, e.g. tracardi.com/retention)")
        return labels
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Expressions that must all hold."
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with `labels` is selected."""
        return all(labels.get(key) == value for key, value in self.match_labels.items()) and all(
            expression.matches(labels) for expression in self.match_expressions
        )
