"""Our own small Elasticsearch mappings per resource and database version (not Tracardi's files).

They keep what the operator and the migration transforms depend on: ids, timestamps, the contact/pii
fields that change shape between versions (docs/tracardi-migration-transforms.md §1-2), and `_meta {version,
name}` in every mapping. The resources Tracardi maps `dynamic: strict` (docs/tracardi.md §9) are strict
here too, in every version, with the top-level fields Tracardi defines for them: profile, event, session,
entity, item, log, user-logs and console-log. A document of a shape Tracardi never stores is rejected, as
real Tracardi's Elasticsearch rejects it: a 0.8.0 profile's `traits` hold only `private` and `public`;
log, user-log and console-log documents have no `id`; items have no `name`. Tracardi's `flattened` fields
are `enabled: false` objects here (devenv's Elasticsearch has no X-Pack). Other resources stay dynamic.
"""

from __future__ import annotations

from typing import Any

from devenv.simulator.naming import Namespace
from devenv.simulator.versions import Resource

Json = dict[str, Any]

K: Json = {"type": "keyword"}
D: Json = {"type": "date"}
T: Json = {"type": "text"}
B: Json = {"type": "boolean"}
L: Json = {"type": "long"}
F: Json = {"type": "float"}
OBJ: Json = {"type": "object", "dynamic": True}
OPAQUE: Json = {"type": "object", "enabled": False}


def obj(**properties: Json) -> Json:
    return {"properties": properties}


def strict(**properties: Json) -> Json:
    return {"dynamic": "strict", "properties": properties}


_TIME = obj(insert=D, create=D, update=D, visit=OBJ, timestamp=D)

_PROFILE_080 = {
    "id": K, "metadata": obj(time=_TIME), "active": B, "traits": obj(private=OBJ, public=OBJ), "stats": OBJ,
    "segments": K, "consents": OBJ, "interests": OBJ, "aux": OBJ,
    "pii": obj(name=K, surname=K, birthDate=D, email=K, telephone=K, twitter=K, facebook=K, whatsapp=K,
               other=OBJ),
}
_PROFILE_08X = {
    "id": K, "ids": K, "metadata": obj(time=_TIME), "active": B, "traits": OBJ, "stats": OBJ, "segments": K,
    "consents": OBJ, "interests": OBJ, "aux": OBJ,
    "data": obj(
        pii=obj(firstname=K, lastname=K, name=K, birthday=D),
        contact=obj(email=K, phone=K, address=OBJ, app=OBJ),
        media=OBJ, devices=obj(names=K), identifier=OBJ, loyalty=OBJ,
    ),
}
_PROFILE_0820 = {
    "id": K, "ids": K, "metadata": OBJ, "active": B, "traits": OBJ, "stats": OBJ, "segments": K,
    "consents": OBJ, "interests": OBJ, "aux": OBJ,
    "data": obj(
        anonymous=B,
        pii=obj(firstname=K, lastname=K, display_name=K, birthday=D),
        contact=obj(email=obj(main=K, private=K, business=K),
                    phone=obj(main=K, business=K, mobile=K, whatsapp=K), address=OBJ, app=OBJ),
        media=OBJ, devices=obj(push=K, other=K, last=OBJ), identifier=OBJ, loyalty=OBJ, metrics=OBJ,
    ),
}

_EVENT_COMMON = {
    "id": K, "type": K, "name": K, "metadata": OBJ, "session": OBJ, "profile": OBJ, "source": OBJ,
    "properties": OBJ, "context": OBJ, "traits": OBJ, "tags": OBJ, "os": OBJ, "device": OBJ, "utm": OBJ,
    "request": OPAQUE, "config": OPAQUE, "aux": OBJ, "update": B,
}
_EVENT_08X = {**_EVENT_COMMON, "data": OBJ}
_EVENT_0820 = {
    **_EVENT_COMMON,
    "data": obj(
        pii=obj(display_name=K, firstname=K, lastname=K),
        contact=obj(email=obj(main=K, private=K, business=K),
                    phone=obj(main=K, business=K, mobile=K, whatsapp=K)),
        ec=obj(order=obj(id=K, cost=obj(value=F), receivable=obj(value=F), payable=obj(value=F))),
    ),
}

_SESSION_080 = {"id": K, "metadata": OBJ, "profile": OBJ, "context": OBJ, "properties": OBJ, "aux": OBJ}
_SESSION_08X = {**_SESSION_080, "device": OBJ, "os": OBJ, "app": OBJ, "utm": OBJ}

# No `id` in log, user-log and console-log documents; no `name` in items (docs/tracardi.md §9).
_LOG = {"date": D, "message": T, "logger": K, "level": K, "file": K, "line": L, "stack_info": OPAQUE,
        "exc_info": OPAQUE}
_USER_LOG = {"email": K, "timestamp": D, "successful": B}
_CONSOLE_LOG = {"origin": K, "event_id": K, "profile_id": K, "flow_id": K,
                "metadata": obj(timestamp=D), "module": T, "class_name": K, "type": K, "message": T,
                "traceback": OPAQUE}
_ITEM = {"id": K, "profile": obj(id=K), "timestamp": D, "type": K, "properties": OPAQUE, "traits": OBJ,
         "data": obj(product=obj(id=K, name=K, sku=K, category=K, brand=K, price=F, rate=L,
                                 variant=obj(name=K, color=K, size=K)))}
_ENTITY_08X = {"id": K, "type": K, "timestamp": D, "profile": obj(id=K), "properties": OPAQUE, "traits": OBJ}
_ENTITY_0820 = {"id": K, "type": K, "metadata": obj(time=obj(insert=D, create=D, update=D, due=D, expire=D)),
                "profile": obj(id=K), "properties": OPAQUE, "traits": OBJ}
_GENERIC_LOG = {"id": K, "timestamp": D, "profile_id": K, "event_id": K, "message": T, "field": K,
                "value": OPAQUE}

_TASK = {
    "id": K, "task_id": K, "name": K, "timestamp": D, "status": K, "type": K, "progress": F,
    "event_type": K, "params": OPAQUE,
    # Simulator only: the Celery state that real Tracardi keeps in Redis (see tasks.py).
    "celery": obj(id=K, kind=K, state=K, worker=K, claimed=D, finished=D, current=L, total=L,
                  error=T, context=K, queue=K, result=OPAQUE),
}

_SPECIFIC: dict[tuple[str, str], Json] = {
    ("080", "profile"): _PROFILE_080,
    ("08x", "profile"): _PROFILE_08X,
    ("0820", "profile"): _PROFILE_0820,
    ("080", "event"): _EVENT_08X,
    ("08x", "event"): _EVENT_08X,
    ("0820", "event"): _EVENT_0820,
    ("080", "session"): _SESSION_080,
    ("08x", "session"): _SESSION_08X,
    ("0820", "session"): _SESSION_08X,
    ("080", "entity"): _ENTITY_08X,
    ("08x", "entity"): _ENTITY_08X,
    ("0820", "entity"): _ENTITY_0820,
    ("080", "rule"): {"id": K, "name": K, "event": obj(type=K), "flow": OBJ, "source": OBJ, "enabled": B},
    ("080", "event-to-profile"): {"id": K, "name": K, "event_type": K, "config": OPAQUE, "enabled": B},
    ("080", "event-management"): {"id": K, "event_type": K, "name": K, "index_enabled": B, "tags": K},
    ("08x", "event-reshaping"): {"id": K, "name": K, "mapping": OPAQUE, "enabled": B},
}
_BY_RESOURCE: dict[str, Json] = {
    "log": _LOG,
    "user-logs": _USER_LOG,
    "console-log": _CONSOLE_LOG,
    "item": _ITEM,
    "dispatch-log": _GENERIC_LOG,
    "field-update-log": _GENERIC_LOG,
    "task": _TASK,
    "rule": {"id": K, "name": K, "event_type": obj(id=K, name=K), "flow": OBJ, "source": OBJ, "enabled": B},
    "event-to-profile": {"id": K, "name": K, "event_type": obj(id=K, name=K), "config": OPAQUE,
                         "enabled": B},
    "event-management": {"id": K, "event_type": K, "name": K, "enabled": B, "tags": K},
    "user": {"id": K, "password": K, "full_name": T, "email": K, "roles": K, "disabled": B,
             "preference": OPAQUE, "expiration_timestamp": L},
    "event-source": {"id": K, "type": K, "name": K, "description": T, "enabled": B, "transitional": B,
                     "timestamp": D, "tags": K, "config": OPAQUE},
}
_DEFAULT: Json = {"id": K, "name": K, "timestamp": D}


def properties_for(db: str, resource: Resource) -> Json:
    return _SPECIFIC.get((db, resource.key)) or _BY_RESOURCE.get(resource.key) or _DEFAULT


STRICT_RESOURCES = frozenset({"profile", "event", "session", "entity", "item", "log", "user-logs", "console-log"})
"""Resources whose Tracardi mapping is `dynamic: strict`, in every version the simulator knows."""


def mapping_for(ns: Namespace, resource: Resource) -> Json:
    """The mapping of one resource's indices: `_meta` always, `dynamic: strict` where Tracardi has it."""
    mapping: Json = {
        "_meta": {"version": ns.db, "name": ns.tenant},
        "dynamic": "strict" if resource.key in STRICT_RESOURCES else True,
        "properties": properties_for(ns.db, resource),
    }
    return mapping


INDEX_SETTINGS: Json = {"number_of_shards": 1, "number_of_replicas": 0}


def rejected_fields(mapping: Json, doc: Json) -> list[str]:
    """Paths of the fields that Elasticsearch would refuse in `doc` under `mapping` because a strict
    object does not define them (pure; the same `dynamic` inheritance as Elasticsearch's)."""
    return _rejected(mapping.get("properties", {}), mapping.get("dynamic", True), doc, "")


def _rejected(properties: Json, dynamic: Any, doc: Json, prefix: str) -> list[str]:
    found: list[str] = []
    for name, value in doc.items():
        path = f"{prefix}{name}"
        field = properties.get(name)
        if field is None:
            if dynamic == "strict":  # null too: Elasticsearch refuses an unmapped null under strict
                found.append(path)
            continue
        leaf = "properties" not in field and field.get("type") not in (None, "object")
        if leaf or field.get("enabled") is False:
            continue
        inner = field.get("dynamic", dynamic)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                found += _rejected(field.get("properties", {}), inner, item, f"{path}.")
    return found
