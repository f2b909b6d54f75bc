"""Manifests of the objects an installation owns: Deployments, Services, install and migration Jobs (pure).

Each builder takes the parsed TracardiInstallation and a few plain values and returns a dict ready to
apply. Names are deterministic, so applying twice is harmless and a crashed operator finds its own
objects again:

    <cr>-api, <cr>-api-production, <cr>-gui, <cr>-worker   serving (slot primary), and their Services
    <cr>-api-<db>, <cr>-worker-<db>                        a new db version started beside the old one
                                                           during a major upgrade (slot candidate)
    <cr>-install-<db>                                      install Job
    <cr>-migrate-<from db>-to-<to db>                      migration Job, exactly once per pair

Secrets only ever appear as secretKeyRef: no manifest holds a secret value.

The Jobs run this operator's own image, `tracardi-operator job install|migrate` with the arguments
and TRACARDI_* environment variables below (the contract of `tracardi_operator.jobs.cli`).

Where it lives: `names` (components, names, URLs, metadata), `environment` (containers' and Jobs'
variables, the CA volume), `workloads` (Deployments and Services), `jobs` (install and migration Jobs).
"""

from __future__ import annotations

from tracardi_operator.builders.environment import (
    CA_FILE_NAME,
    CA_MOUNT_DIR,
    CA_VOLUME,
    ENV_ADMIN_PASSWORD,
    ENV_ADMIN_USERNAME,
    ENV_ES_API_KEY,
    ENV_ES_API_KEY_ID,
    ENV_ES_CA_FILE,
    ENV_ES_HOSTS,
    ENV_ES_PASSWORD,
    ENV_ES_USERNAME,
    ENV_ES_VERIFY_CERTS,
    ENV_INSTALLATION_TOKEN,
    ENV_JOB_INSTALLATION_TOKEN,
    TELEMETRY_VARIABLE,
    component_env,
    elasticsearch_env,
    job_elasticsearch_env,
    redis_env,
    telemetry_env,
)
from tracardi_operator.builders.jobs import (
    ARG_API_URL,
    ARG_FROM_DB,
    ARG_FROM_TENANT,
    ARG_MERGED_SUFFIX,
    ARG_NO_FLATTENED_CHECK,
    ARG_REPAIR,
    ARG_TO_DB,
    ARG_TO_TENANT,
    JOB_PROGRAM,
    JOB_UID,
    TMP_VOLUME,
    BuilderSettings,
    InstallRequest,
    MigrationRequest,
    install_job,
    migration_job,
)
from tracardi_operator.builders.names import (
    CANDIDATE_COMPONENTS,
    HTTP_PORT,
    SERVICE_COMPONENTS,
    SERVING_COMPONENTS,
    Component,
    ServingComponent,
    Slot,
    api_service_url,
    install_job_name,
    migration_job_name,
    owner_reference,
    workload_name,
)
from tracardi_operator.builders.workloads import (
    container_security,
    deployment,
    pod_security,
    scheduling,
    service,
)

__all__ = [
    "ARG_API_URL",
    "ARG_FROM_DB",
    "ARG_FROM_TENANT",
    "ARG_MERGED_SUFFIX",
    "ARG_NO_FLATTENED_CHECK",
    "ARG_REPAIR",
    "ARG_TO_DB",
    "ARG_TO_TENANT",
    "CANDIDATE_COMPONENTS",
    "CA_FILE_NAME",
    "CA_MOUNT_DIR",
    "CA_VOLUME",
    "ENV_ADMIN_PASSWORD",
    "ENV_ADMIN_USERNAME",
    "ENV_ES_API_KEY",
    "ENV_ES_API_KEY_ID",
    "ENV_ES_CA_FILE",
    "ENV_ES_HOSTS",
    "ENV_ES_PASSWORD",
    "ENV_ES_USERNAME",
    "ENV_ES_VERIFY_CERTS",
    "ENV_INSTALLATION_TOKEN",
    "ENV_JOB_INSTALLATION_TOKEN",
    "HTTP_PORT",
    "JOB_PROGRAM",
    "JOB_UID",
    "SERVICE_COMPONENTS",
    "SERVING_COMPONENTS",
    "TELEMETRY_VARIABLE",
    "TMP_VOLUME",
    "BuilderSettings",
    "Component",
    "InstallRequest",
    "MigrationRequest",
    "ServingComponent",
    "Slot",
    "api_service_url",
    "component_env",
    "container_security",
    "deployment",
    "elasticsearch_env",
    "install_job",
    "install_job_name",
    "job_elasticsearch_env",
    "migration_job",
    "migration_job_name",
    "owner_reference",
    "pod_security",
    "redis_env",
    "scheduling",
    "service",
    "telemetry_env",
    "workload_name",
]
