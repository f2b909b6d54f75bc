"""The bodies of 422 answers, per version (pure): pydantic v1 wording in 0.8.0 and 0.8.1, pydantic v2 in
0.8.2.x (`type`, `loc`, `msg`, `input`, `url`; docs/tracardi.md §9 "Login errors")."""

from __future__ import annotations

from typing import Any

PYDANTIC_V2_URL = "https://errors.pydantic.dev/2.5/v/"

Item = dict[str, Any]


def pydantic_v2(db_version: str) -> bool:
    return db_version in ("0820", "082x")


def missing(db_version: str, loc: list[str], given: Any) -> Item:
    """A required field that is absent; `given` is the body it was looked for in (v2 shows it)."""
    if pydantic_v2(db_version):
        return {"type": "missing", "loc": loc, "msg": "Field required", "input": given,
                "url": PYDANTIC_V2_URL + "missing"}
    return {"loc": loc, "msg": "field required", "type": "value_error.missing"}


def not_a_dict(db_version: str, loc: list[str], given: Any) -> Item:
    if pydantic_v2(db_version):
        return {"type": "dict_type", "loc": loc, "msg": "Input should be a valid dictionary", "input": given,
                "url": PYDANTIC_V2_URL + "dict_type"}
    return {"loc": loc, "msg": "value is not a valid dict", "type": "type_error.dict"}


def not_a_list(db_version: str, loc: list[str], given: Any) -> Item:
    if pydantic_v2(db_version):
        return {"type": "list_type", "loc": loc, "msg": "Input should be a valid list", "input": given,
                "url": PYDANTIC_V2_URL + "list_type"}
    return {"loc": loc, "msg": "value is not a valid list", "type": "type_error.list"}


def not_an_int(db_version: str, loc: list[str], given: Any) -> Item:
    if pydantic_v2(db_version):
        return {"type": "int_parsing", "loc": loc,
                "msg": "Input should be a valid integer, unable to parse string as an integer", "input": given,
                "url": PYDANTIC_V2_URL + "int_parsing"}
    return {"loc": loc, "msg": "value is not a valid integer", "type": "type_error.integer"}
