"""The operator's API: pydantic models of TracardiInstallation and TracardiRetentionPolicy.

These models are the single source of `crds/*.yaml` (see `crdgen`): every field carries the description
that `kubectl explain` shows, and constraints admission can check are declared here, either as JSON
schema constraints or as CEL rules (`x-kubernetes-validations`). JSON names are camelCase; models accept
both camelCase and snake_case on input and emit camelCase.

Defaults live here and nowhere else, but never inside list items: a defaulted field in a list item makes
GitOps tools see a permanent diff between the manifest and the stored object.

Where each part lives (import any of them from this package):

- `common`: the base model, schema helpers, scalar types, references, Condition, ObjectMeta
- `selectors`: label selectors and label key and value types
- `backends`: the Elasticsearch and Redis connections of an installation
- `workloads`: images, replicas, resources, security contexts and scheduling of the pods
- `installation_spec`: TracardiInstallationSpec and its remaining sections
- `installation_status`: TracardiInstallationStatus (versions, upgrade, retention plan, headroom)
- `retention_policy`: TracardiRetentionPolicy's spec and status
- `kinds`: the whole objects and the identity of the two kinds (ResourceKind)
"""

from tracardi_operator.labels import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN
from tracardi_operator.models.backends import (
    DEFAULT_REDIS_PORT,
    REDIS_CREDENTIALS_MESSAGE,
    ElasticsearchHost,
    ElasticsearchSpec,
    RedisSpec,
)
from tracardi_operator.models.common import (
    CONDITIONS_LIST,
    DURATION_REGEX,
    INT32,
    INT64,
    CamelModel,
    Condition,
    ConditionStatus,
    Duration,
    LocalObjectReference,
    ObjectMeta,
    ObjectName,
    Quantity,
    SecretKey,
    SecretKeyRef,
    SecretRef,
    cel_rule,
    object_default,
    parse_duration,
)
from tracardi_operator.models.installation_spec import (
    RESERVED_ENV,
    EnvVar,
    GuiSpec,
    InstallationSpec,
    RetentionSpec,
    TracardiInstallationSpec,
    UpgradeSpec,
)
from tracardi_operator.models.installation_status import (
    HeadroomStatus,
    JobRecord,
    Phase,
    RetentionItem,
    RetentionStatus,
    TracardiContext,
    TracardiInstallationStatus,
    UpgradeStatus,
    UpgradeStep,
    VerifiedCount,
    VersionRecord,
    VersionState,
)
from tracardi_operator.models.kinds import (
    INSTALLATION,
    RESOURCE_KINDS,
    RETENTION_POLICY,
    ResourceKind,
    TracardiInstallation,
    TracardiRetentionPolicy,
)
from tracardi_operator.models.retention_policy import (
    GovernedInstallation,
    SnapshotSpec,
    TracardiRetentionPolicySpec,
    TracardiRetentionPolicyStatus,
)
from tracardi_operator.models.selectors import (
    LabelKey,
    LabelSelector,
    LabelSelectorRequirement,
    LabelValue,
)
from tracardi_operator.models.workloads import (
    Capabilities,
    ContainerSecurity,
    ImagesSpec,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodSecurity,
    PreferredSchedulingTerm,
    ReplicasSpec,
    ResourceRequirements,
    ResourcesSpec,
    SchedulingSpec,
    SeccompProfile,
    SecuritySpec,
    Toleration,
)

__all__ = [
    "CONDITIONS_LIST",
    "DEFAULT_REDIS_PORT",
    "DURATION_REGEX",
    "INSTALLATION",
    "INT32",
    "INT64",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "REDIS_CREDENTIALS_MESSAGE",
    "RESERVED_ENV",
    "RESOURCE_KINDS",
    "RETENTION_POLICY",
    "CamelModel",
    "Capabilities",
    "Condition",
    "ConditionStatus",
    "ContainerSecurity",
    "Duration",
    "ElasticsearchHost",
    "ElasticsearchSpec",
    "EnvVar",
    "GovernedInstallation",
    "GuiSpec",
    "HeadroomStatus",
    "ImagesSpec",
    "InstallationSpec",
    "JobRecord",
    "LabelKey",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LabelValue",
    "LocalObjectReference",
    "NodeAffinity",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "ObjectMeta",
    "ObjectName",
    "Phase",
    "PodSecurity",
    "PreferredSchedulingTerm",
    "Quantity",
    "RedisSpec",
    "ReplicasSpec",
    "ResourceKind",
    "ResourceRequirements",
    "ResourcesSpec",
    "RetentionItem",
    "RetentionSpec",
    "RetentionStatus",
    "SchedulingSpec",
    "SeccompProfile",
    "SecretKey",
    "SecretKeyRef",
    "SecretRef",
    "SecuritySpec",
    "SnapshotSpec",
    "Toleration",
    "TracardiContext",
    "TracardiInstallation",
    "TracardiInstallationSpec",
    "TracardiInstallationStatus",
    "TracardiRetentionPolicy",
    "TracardiRetentionPolicySpec",
    "TracardiRetentionPolicyStatus",
    "UpgradeSpec",
    "UpgradeStatus",
    "UpgradeStep",
    "VerifiedCount",
    "VersionRecord",
    "VersionState",
    "cel_rule",
    "object_default",
    "parse_duration",
]
