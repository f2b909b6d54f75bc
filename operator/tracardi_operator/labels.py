"""Label and annotation keys the operator puts on, and reads from, Kubernetes objects.

Every child object carries Kubernetes' recommended `app.kubernetes.io/*` labels; the `tracardi.com/*`
keys are the operator's own. Only the operator writes them, never the user's spec.
"""

from __future__ import annotations

import hashlib
import re

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

APP_NAME = "tracardi"
MANAGED_BY = "tracardi-operator"

# Which of two coexisting Deployments of one component a pod belongs to: `primary` serves users,
# `candidate` is the new version started beside it during a major upgrade. Part of the selectors so
# that the two never select each other's pods.
LABEL_SLOT = "tracardi.com/slot"
LABEL_DB_VERSION = "tracardi.com/db-version"
LABEL_FROM_DB_VERSION = "tracardi.com/from-db-version"
LABEL_TO_DB_VERSION = "tracardi.com/to-db-version"

# A person asks for a failed install or migration to be tried again by setting this annotation on the
# TracardiInstallation to a new value (an RFC 3339 timestamp by convention, e.g. `date -u +%FT%TZ`).
# The operator acts once per distinct value and never after the switch to the new version.
ANNOTATION_RETRY = "tracardi.com/retry"
ANNOTATION_MANIFEST_DIGEST = "tracardi.com/manifest-digest"
"""On every child the operator applies: the digest of the manifest it applied (`applied.stamped`)."""

# Kubernetes limits names that become DNS labels (Services, Jobs) and label values to 63 characters.
MAX_LABEL_LENGTH = 63
# A label key is [prefix/]name: a DNS subdomain prefix (253 characters), "/" and a name of at most 63.
MAX_LABEL_KEY_LENGTH = 317

# Kubernetes label keys ([prefix/]name) and values; written without backslashes (kept out of CEL rules).
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_LABEL_VALUE_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def bounded(value: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """`value` itself when it fits in `limit` characters, else a truncation ending in a short hash.

    Deterministic, so names derived from long resource names stay stable across reconciles, and
    distinct, so two long names sharing a prefix do not collide.
    """
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    head = value[: limit - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}"


def label_value(value: str) -> str:
    """A valid label value for `value`: at most 63 characters, alphanumeric at both ends."""
    return _LABEL_VALUE_EDGE.sub("", bounded(value))


def selector_labels(instance: str, component: str) -> dict[str, str]:
    """The labels that identify one component of one installation, whatever its version."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: label_value(instance),
        LABEL_COMPONENT: component,
    }


def common_labels(instance: str, component: str, version: str) -> dict[str, str]:
    """Every recommended app.kubernetes.io/* label a child object carries."""
    return {
        **selector_labels(instance, component),
        LABEL_VERSION: label_value(version),
        LABEL_MANAGED_BY: MANAGED_BY,
    }
