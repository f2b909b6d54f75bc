"""Shared building blocks of the API models: the camelCase base model, helpers for CEL rules and
defaulted sub-objects, Kubernetes scalar types (object names, quantities, Go durations), Secret and
object references, metav1.Condition and the part of metav1.ObjectMeta the operator reads.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """Base of every API model: camelCase on the wire, tolerant of fields it does not know.

    Unknown fields are ignored rather than refused so that a newer CRD (or kopf's own bookkeeping in
    status) never makes an older operator fail to parse an object.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        # Reconcilers work on a deep copy of the status and assign to it; assignments are validated so
        # that a wrong value fails where it is made, not when the API server rejects the patch.
        validate_assignment=True,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, JSON types, unset optionals omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def cel_rule(rule: str, message: str, field_path: str | None = None) -> JsonValue:
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


def object_default(description: str, factory: type[CamelModel]) -> Any:
    """A field holding a sub-object whose own defaults apply when the user omits it.

    pydantic does not put `default_factory` values into the JSON schema; `default: {}` tells the API
    server to create the object, and with it the nested defaults, so `kubectl get -o yaml` shows them.
    """
    return Field(default_factory=factory, description=description, json_schema_extra={"default": {}})


INT32: dict[str, Any] = {"format": "int32"}
INT64: dict[str, Any] = {"format": "int64"}
# Conditions are a map keyed by type, as in every built-in kind (lets server-side apply merge them).
CONDITIONS_LIST: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}

# Kubernetes object names as referenced by other objects (DNS subdomain names).
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]

# A resource quantity ("500m", "1Gi", 2), as in core/v1 ResourceRequirements.
Quantity = Annotated[
    int | str,
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}),
]

# Go duration syntax as Kubernetes uses it ("168h", "30m", "1h30m", "0"). Days are not a Go unit.
DURATION_REGEX = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}
Duration = Annotated[str, StringConstraints(pattern=DURATION_REGEX, max_length=64)]


def parse_duration(text: str) -> timedelta:
    """The timedelta of a Go duration string such as "168h" or "1h30m"; ValueError when malformed."""
    if not re.fullmatch(DURATION_REGEX, text):
        raise ValueError(f"not a duration like 168h, 30m or 1h30m: {text!r}")
    total = timedelta()
    for number, unit in _DURATION_PART.findall(text):
        total += float(number) * _DURATION_UNITS[unit]
    return total


class SecretRef(CamelModel):
    """A Secret in the installation's namespace whose keys are fixed by the field that refers to it."""

    name: ObjectName = Field(description="Name of the Secret, in the namespace of the installation.")


class SecretKeyRef(CamelModel):
    """One key of a Secret in the installation's namespace."""

    name: ObjectName = Field(description="Name of the Secret, in the namespace of the installation.")
    key: SecretKey = Field(description="Key within the Secret whose value is used.")


class LocalObjectReference(CamelModel):
    """A reference to an object in the same namespace, by name."""

    name: ObjectName = Field(description="Name of the referenced object.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(CamelModel):
    """One aspect of the current state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1, max_length=316, description="Kind of condition, e.g. Ready, Progressing, Degraded, Paused."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition, for machines and for searching.",
    )
    message: str = Field(max_length=32768, description="What happened and what a person can do; may be empty.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for.", json_schema_extra=INT64
    )


class ObjectMeta(CamelModel):
    """The part of metav1.ObjectMeta the operator reads."""

    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace; none for cluster-scoped objects.")
    uid: str = Field(default="", description="Unique id, for owner references.")
    generation: int = Field(default=0, description="Generation of the spec.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
