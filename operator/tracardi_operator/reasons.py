"""The reasons a person reads in an installation's conditions and Events, listed once (pure).

A reason is the CamelCase word of a condition (`kubectl describe tri`) or an Event that says why; tools
and people search for it, so each has one spelling and one meaning. The rollout (`tracardi_operator.rollout`),
retention (`tracardi_operator.retention`), the reconcile pass (`reconcile`), the version checks (`versions`)
and the Jobs (`tracardi_operator.jobs`, whose failure reason becomes the Degraded reason) take theirs from
here; README.md's "Troubleshooting by condition" table documents every reason a condition can carry
(tests/unit/test_reasons.py holds the two to each other).

`EVENT_ONLY` are reasons of Events that no condition ever carries; every other member can be read in a
condition (`CONDITION_REASONS`).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # SpecAccepted=True: the change planned for spec.version.
    INSTALL = "Install"  # nothing runs yet: spec.version is installed
    UP_TO_DATE = "UpToDate"  # spec.version runs (also Progressing=False: nothing under way)
    ROLLING_UPDATE = "RollingUpdate"  # same db version: every component rolls to the new tag, no migration
    MIGRATION = "Migration"  # a new db version: installed beside the old one, migrated, verified, switched
    ROLLBACK = "Rollback"  # back to a kept (Superseded) version on its own indices

    # SpecAccepted=False (and Progressing=False): spec.version is refused, nothing changes.
    INVALID_VERSION = "InvalidVersion"  # not a Tracardi image tag
    UNKNOWN_VERSION = "UnknownVersion"  # a tag the operator knows nothing of
    UNSUPPORTED_VERSION = "UnsupportedVersion"  # a Tracardi release older than 0.8.0
    PRERELEASE_NOT_ALLOWED = "PrereleaseNotAllowed"  # a pre-release without upgrade.allowPrerelease
    NO_MIGRATION_PATH = "NoMigrationPath"  # Tracardi has no migration chain from the running db version
    ROLLBACK_TARGET_DELETED = "RollbackTargetDeleted"  # going back to a version whose indices are gone
    INDEX_HEADROOM_INSUFFICIENT = "IndexHeadroomInsufficient"  # the new indices would exceed the shard limit
    STALE_TARGET_INDICES = "StaleTargetIndices"  # migrating into indices kept from before a rollback
    INVALID_SPEC = "InvalidSpec"  # the object does not match the schema

    # Progressing=True: the step under way.
    STARTING_API = "StartingApi"  # first install: waiting for the new API to serve
    STARTING_CANDIDATE = "StartingCandidate"  # new API and worker starting beside the old version
    INSTALLING = "Installing"  # the install Job runs
    STARTING_COMPONENTS = "StartingComponents"  # first install done: production API and GUI starting
    ROLLING = "Rolling"  # every component rolls to the new tag (same db version)
    ROLLING_BACK = "RollingBack"  # every component rolls back to a kept version
    MIGRATING = "Migrating"  # the migration Job copies and verifies the data
    SWITCHING = "Switching"  # every component moves to the migrated version
    NEXT_STEP = "NextStep"  # one step of a multi-step upgrade done, the next one starts
    RETRYING = "Retrying"  # a failed Job starts again (tracardi.com/retry); also Degraded=False

    # Degraded=False.
    AS_EXPECTED = "AsExpected"  # nothing failed
    UPGRADE_ABANDONED = "UpgradeAbandoned"  # spec.version set back before the target served; also an Event
    ROLLED_BACK = "RolledBack"  # the installation went back to a kept version; also an Event

    # Degraded=True, from the operator (also Warning Events).
    PODS_REFUSED = "PodsRefused"  # the apiserver refuses to create pods (Pod Security admission, a quota)
    ROLLOUT_STALLED = "RolloutStalled"  # a Deployment exceeded its progress deadline
    INSTALL_RESULT_MISSING = "InstallResultMissing"  # the install Job succeeded but reported no db version/tenant
    UNEXPECTED_DB_VERSION = "UnexpectedDbVersion"  # the new API reports another db version than its tag implies
    INSTALL_FAILED = "InstallFailed"  # the install Job failed without writing a reason
    MIGRATE_FAILED = "MigrateFailed"  # the migration Job failed without writing a reason
    JOB_FAILED = "JobFailed"  # a failed Job recorded no reason at all

    # Degraded=True (and Progressing=False): a Job's failure reason, as the Job wrote it.
    USAGE_ERROR = "UsageError"  # the Job was started with arguments it does not understand
    INTERNAL_ERROR = "InternalError"  # the Job crashed on an unexpected error
    CONFIGURATION_ERROR = "ConfigurationError"  # an environment variable the Job needs is not set
    API_UNREACHABLE = "ApiUnreachable"  # the new version's API did not answer
    API_ERROR = "ApiError"  # the new version's API answered with an error
    TIMEOUT = "Timeout"  # the step did not finish within the Job's time
    INSTALL_TOKEN_REJECTED = "InstallTokenRejected"  # POST /install refused the installation token
    ADMIN_REJECTED = "AdminRejected"  # the install created no admin user (credentials refused)
    SCHEMA_INCOMPLETE = "SchemaIncomplete"  # GET /install reports the schema not fully installed
    ELASTICSEARCH_LACKS_FLATTENED = "ElasticsearchLacksFlattened"  # no `flattened` field type (an OSS build)
    ELASTICSEARCH_UNAVAILABLE = "ElasticsearchUnavailable"  # Elasticsearch did not answer (Jobs, retention)
    ELASTICSEARCH_ERROR = "ElasticsearchError"  # Elasticsearch answered the migration Job with an error
    TARGET_MISMATCH = "TargetMismatch"  # the API runs another (db version, tenant) than the migration target
    LOGIN_REJECTED = "LoginRejected"  # POST /user/token refused the admin credentials
    MIGRATION_NOT_OFFERED = "MigrationNotOffered"  # the new API offers no migration from the source db version
    MIGRATION_NOT_STARTED = "MigrationNotStarted"  # POST /migration matched none of the listed copies
    TASK_LISTING_INCOMPLETE = "TaskListingIncomplete"  # Tracardi's task list could not be read completely
    MIGRATION_TASK_FAILED = "MigrationTaskFailed"  # one of Tracardi's copy tasks ended FAILURE or REVOKED
    TARGET_NOT_INSTALLED = "TargetNotInstalled"  # repair found the target's indices missing
    REPAIR_FAILED = "RepairFailed"  # a repair copy (_reindex) failed
    MIGRATION_INCOMPLETE = "MigrationIncomplete"  # verification found documents not readable in the target

    # Ready.
    SERVING = "Serving"  # Ready=True: every serving component is up
    NOT_INSTALLED = "NotInstalled"  # no version is installed yet
    PAUSED = "Paused"  # paused before anything was deployed
    OFFLINE_MIGRATION = "OfflineMigration"  # production API at zero while an Offline migration copies
    COMPONENTS_UNAVAILABLE = "ComponentsUnavailable"  # some serving component is not serving

    # Paused.
    PAUSED_BY_SPEC = "PausedBySpec"  # Paused=True: spec.paused, the operator changes nothing
    NOT_PAUSED = "NotPaused"  # Paused=False: the operator acts

    # Retention and the Elasticsearch cluster.
    GOVERNED = "Governed"  # RetentionPolicyResolved=True: one policy governs the installation
    NO_POLICY = "NoPolicy"  # RetentionPolicyResolved=True: no policy selects it; nothing is deleted
    POLICY_TIE = "PolicyTie"  # RetentionPolicyResolved=False: two policies of equal priority select it
    SHARDS_NEAR_LIMIT = "ShardsNearLimit"  # IndexHeadroomLow=True: at least 80 % of the shard limit in use
    ENOUGH_SHARDS = "EnoughShards"  # IndexHeadroomLow=False
    CLUSTER_UUID = "ClusterUUID"  # ClusterIdentified=True: Elasticsearch told its cluster_uuid
    CLUSTER_IDENTITY_UNKNOWN = "ClusterIdentityUnknown"  # ClusterIdentified=False: no cluster_uuid
    PAIR_SHARED = "PairShared"  # SharedVersionData=True: another installation uses the same indices
    NOT_SHARED = "NotShared"  # SharedVersionData=False
    PLAN_WITHDRAWN = "PlanWithdrawn"  # DeletionIncomplete=True: a version half deleted, its plan withdrawn
    NOTHING_HALF_DELETED = "NothingHalfDeleted"  # DeletionIncomplete=False
    VALID = "Valid"  # a TracardiRetentionPolicy's Valid=True

    # Events only.
    UPGRADE_STARTED = "UpgradeStarted"  # a version change was recorded and begins
    INSTALL_JOB_STARTING = "InstallJobStarting"  # the install Job is recorded and about to be created
    MIGRATE_JOB_STARTING = "MigrateJobStarting"  # the migration Job is recorded and about to be created
    INSTALLED = "Installed"  # the install Job succeeded
    MIGRATED = "Migrated"  # the migration Job copied and verified the data
    SWITCHED = "Switched"  # the migrated version serves; the old one is superseded
    UPGRADE_COMPLETED = "UpgradeCompleted"  # the last step of a version change is done
    INDICES_DELETED = "IndicesDeleted"  # retention deleted (or recorded as deleted) a version's indices
    SNAPSHOT_TAKEN = "SnapshotTaken"  # retention snapshotted the indices it is about to delete


EVENT_ONLY: frozenset[Reason] = frozenset({
    Reason.UPGRADE_STARTED,
    Reason.INSTALL_JOB_STARTING,
    Reason.MIGRATE_JOB_STARTING,
    Reason.INSTALLED,
    Reason.MIGRATED,
    Reason.SWITCHED,
    Reason.UPGRADE_COMPLETED,
    Reason.INDICES_DELETED,
    Reason.SNAPSHOT_TAKEN,
})
"""Reasons of Events that no condition carries."""

CONDITION_REASONS: frozenset[Reason] = frozenset(Reason) - EVENT_ONLY
"""Every reason a condition can carry: README.md's troubleshooting table lists exactly these."""


def job_failed(purpose: str) -> Reason:
    """The reason of a failed Job that wrote none: InstallFailed or MigrateFailed."""
    return Reason(f"{purpose}Failed")
