"""The install Job: install a Tracardi version on its (empty) database and prove it worked.

Steps (docs/tracardi.md §4, §8): make sure Elasticsearch knows the `flattened` field type Tracardi's
templates use (an OSS build does not; docs/tracardi.md §9), wait for the API (`/healthcheck`, then
`/info/version/details`), `POST /install` unless `GET /install` already reports schema and admin, then
poll `GET /install` until `schema_ok` and `admin_ok`: a 200 from `POST /install` proves nothing. A
still-incomplete schema gets one more (idempotent) `POST /install` before the Job gives up with
`SchemaIncomplete`.

Reasons: ElasticsearchLacksFlattened, ApiUnreachable, InstallTokenRejected, AdminRejected, SchemaIncomplete,
Timeout, ApiError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracardi_operator.jobresults import InstallResult
from tracardi_operator.jobs.common import Deadline, JobError, Log
from tracardi_operator.jobs.es import EsClient, EsError
from tracardi_operator.reasons import Reason
from tracardi_operator.tracardi_api import (
    ApiUnreachableError,
    InstallStatus,
    TracardiApi,
    TracardiApiError,
    VersionDetails,
)

INSTALL_ATTEMPTS = 2

# A template that is only simulated, never stored: Elasticsearch parses its mapping and says whether
# it knows every field type in it.
FLATTENED_PROBE = {
    "index_patterns": ["tracardi-operator-flattened-probe-*"],
    "template": {"mappings": {"properties": {"probe": {"type": "flattened"}}}},
}
LACKS_FLATTENED = (
    "Elasticsearch does not know the field type `flattened`, which Tracardi's index templates use: it is "
    "part of the default distribution (free Basic licence), not of OSS builds. Run Tracardi on the "
    "default distribution of Elasticsearch 7.8 to 7.17."
)


def flattened_verdict(status: int, body: object) -> str | None:
    """Why the cluster cannot hold Tracardi's templates, or None when it can or the answer says nothing
    about field types (a check that cannot run must not block an install that may well work)."""
    if status == 200:
        return None
    text = str(body)
    if "flattened" in text and ("No handler for type" in text or "mapper_parsing_exception" in text):
        return LACKS_FLATTENED
    return None


def check_flattened(es: EsClient, log: Log) -> None:
    try:
        answer = es.request(
            "POST", "/_index_template/_simulate", FLATTENED_PROBE, ok_statuses=frozenset({400})
        )
    except EsError as error:
        log("elasticsearch.flattened-unknown", level="warning", status=error.status)
        return
    problem = flattened_verdict(400 if _is_error(answer) else 200, answer)
    if problem is not None:
        raise JobError(Reason.ELASTICSEARCH_LACKS_FLATTENED, problem)
    log("elasticsearch.flattened", known=True)


def _is_error(answer: object) -> bool:
    return isinstance(answer, dict) and "error" in answer


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str
    installation_token: str


def wait_for_api(api: TracardiApi, deadline: Deadline, log: Log) -> VersionDetails:
    """The version details once the API answers them; ApiUnreachable when it never does."""
    last = "no answer"
    for attempt in deadline.pauses(first=1.0, cap=10.0):
        try:
            api.healthcheck()
            return api.version_details()
        except TracardiApiError as error:
            last = str(error)
            log("api.waiting", attempt=attempt, status=error.status)
    raise JobError(Reason.API_UNREACHABLE, f"Tracardi API at {api.base_url} did not answer in time: {last}")


def install_result(details: VersionDetails, status: InstallStatus) -> dict[str, Any]:
    """The Job's result as the operator records it in status.versions (jobresults.InstallResult)."""
    return InstallResult(
        version=details.version, db_version=details.db_version, tenant=details.tenant,
        schema_ok=status.schema_ok, admin_ok=status.admin_ok, form_ok=status.form_ok,
    ).dump()


def classify_install_error(error: TracardiApiError) -> JobError:
    """A rejected or failed `POST /install` as a reason a person can act on."""
    if isinstance(error, ApiUnreachableError):
        return JobError(Reason.API_UNREACHABLE, f"POST /install got no answer: {error.detail}")
    if error.status == 403 and "token" in error.detail.lower():
        return JobError(
            Reason.INSTALL_TOKEN_REJECTED,
            "Tracardi refused the installation token: the token Secret must equal the API's INSTALLATION_TOKEN",
        )
    if error.status in (403, 422):
        return JobError(
            Reason.ADMIN_REJECTED,
            f"Tracardi refused the admin credentials ({error.status}: {error.detail}); the admin "
            "Secret needs an e-mail username and a non-empty password",
        )
    return JobError(Reason.API_ERROR, f"POST /install failed with {error.status}: {error.detail}")


def run_install(
    api: TracardiApi,
    credentials: AdminCredentials,
    deadline: Deadline,
    log: Log,
    settle: float = 20.0,
    es: EsClient | None = None,
) -> dict[str, Any]:
    """Install and verify; returns the result payload or raises JobError. With `es`, first check that
    Elasticsearch can hold Tracardi's templates."""
    api.add_secrets([credentials.password, credentials.installation_token])
    if es is not None:
        check_flattened(es, log)
    details = wait_for_api(api, deadline, log)
    log("api.ready", version=details.version, db=details.db_version, tenant=details.tenant)
    status = _status(api)
    for attempt in range(INSTALL_ATTEMPTS):
        if status.schema_ok and status.admin_ok:
            break
        if deadline.expired:
            raise JobError(Reason.TIMEOUT, "the install did not finish within the Job's timeout")
        log("install.post", attempt=attempt)
        try:
            api.install(
                credentials.username,
                credentials.password,
                credentials.installation_token,
                timeout=max(deadline.remaining, 1.0),
            )
        except ApiUnreachableError as error:
            if deadline.expired:
                raise JobError(Reason.TIMEOUT, "POST /install did not answer within the Job's timeout") from None
            raise classify_install_error(error) from None
        except TracardiApiError as error:
            raise classify_install_error(error) from None
        status = _poll_status(api, deadline, min(settle, deadline.remaining), log)
    if not status.schema_ok:
        raise JobError(
            Reason.SCHEMA_INCOMPLETE,
            "GET /install still reports schema_ok=false after POST /install"
            + (f" (warning: {api.scrub(status.warning)})" if status.warning else "")
            + "; see the API's log for the index that failed",
        )
    if not status.admin_ok:
        raise JobError(Reason.ADMIN_REJECTED, "GET /install reports admin_ok=false: no admin user was created")
    # 0.8.2.1 reports `installed` in the version details: read them again after the install.
    details = _details_or(api, details)
    result = install_result(details, status)
    log("install.done", **{k: v for k, v in result.items() if k != "version"})
    return result


def _status(api: TracardiApi) -> InstallStatus:
    try:
        return api.install_status()
    except ApiUnreachableError as error:
        raise JobError(Reason.API_UNREACHABLE, f"GET /install got no answer: {error.detail}") from None
    except TracardiApiError as error:
        raise JobError(Reason.API_ERROR, f"GET /install failed with {error.status}: {error.detail}") from None


def _poll_status(api: TracardiApi, deadline: Deadline, settle: float, log: Log) -> InstallStatus:
    window = Deadline(settle, clock=deadline.clock, sleep=deadline.sleep)
    for attempt in window.pauses(first=0.5, cap=5.0):
        status = _status(api)
        log("install.status", attempt=attempt, schema=status.schema_ok, admin=status.admin_ok)
        if status.schema_ok and status.admin_ok:
            return status
    return _status(api)


def _details_or(api: TracardiApi, fallback: VersionDetails) -> VersionDetails:
    try:
        return api.version_details()
    except TracardiApiError:
        return fallback
