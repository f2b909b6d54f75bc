"""The 08x→0820 document transforms as pure functions: examples and properties over any input shape."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracardi_operator.jobs.transforms import (
    PAINLESS,
    TRANSFORMS,
    main_text,
    transform_entity,
    transform_event,
    transform_profile,
)


def test_profile_string_contact_becomes_main_objects() -> None:
    source: dict[str, Any] = {
        "id": "p1",
        "data": {
            "contact": {"email": "a@b.c", "phone": None},
            "pii": {"name": "Ann", "firstname": "A"},
            "devices": {"names": ["ipad"], "other": ["old"]},
            "anonymous": True,
        },
    }
    result = transform_profile(source)
    assert result["data"]["contact"]["email"] == {"main": "a@b.c"}
    assert result["data"]["contact"]["phone"] == {"main": ""}
    assert result["data"]["pii"] == {"display_name": "Ann", "firstname": "A"}
    assert result["data"]["devices"] == {"other": ["ipad"]}
    assert result["data"]["anonymous"] is True
    assert source["data"]["contact"]["email"] == "a@b.c"  # the input is not touched


def test_profile_without_data_is_null_safe() -> None:
    assert transform_profile({"id": "p"}) == {
        "id": "p",
        "data": {"contact": {"email": {}, "phone": {}}, "anonymous": None},
    }
    assert transform_profile({"data": None})["data"]["contact"] == {"email": {}, "phone": {}}
    assert transform_profile({"data": "odd"})["data"]["anonymous"] is None


def test_profile_null_pii_name_is_deleted_without_display_name() -> None:
    result = transform_profile({"data": {"pii": {"name": None, "display_name": "kept"}}})
    assert result["data"]["pii"] == {"display_name": "kept"}


def test_profile_already_migrated_is_unchanged() -> None:
    migrated = {
        "data": {
            "contact": {"email": {"main": "x@y.z", "business": "b"}, "phone": {"main": ""}},
            "pii": {"display_name": "Ann"},
            "devices": {"other": ["a"]},
            "anonymous": False,
        }
    }
    assert transform_profile(migrated) == migrated


def test_event_drops_retired_amounts_and_renames_pii_name() -> None:
    source = {
        "data": {
            "contact": {"email": "e@x.y"},
            "pii": {"name": "Bob"},
            "ec": {"order": {"id": "o", "cost": {"value": 3, "tax": 1, "shipping": 2}, "income": {"revenue": 9}}},
        }
    }
    result = transform_event(source)
    assert result["data"]["contact"] == {"email": {"main": "e@x.y"}, "phone": {"main": ""}}
    assert result["data"]["pii"] == {"display_name": "Bob"}
    assert result["data"]["ec"]["order"] == {"id": "o", "cost": {"value": 3}}
    assert "anonymous" not in result["data"]


def test_event_keeps_order_objects_that_still_hold_values() -> None:
    source = {"data": {"ec": {"order": {"income": {"revenue": 1, "value": 2}, "cost": {}}}}}
    assert transform_event(source)["data"]["ec"]["order"] == {"income": {"value": 2}, "cost": {}}


def test_entity_drops_timestamp_only() -> None:
    assert transform_entity({"id": "e", "timestamp": "2023", "x": 1}) == {"id": "e", "x": 1}
    assert transform_entity({"id": "e"}) == {"id": "e"}


def test_main_text_of_scalars() -> None:
    assert main_text("s") == "s"
    assert main_text(None) == ""
    assert main_text(True) == "true"
    assert main_text(12) == "12"
    assert main_text(2**70) == ""
    assert main_text(1.5) == ""
    assert main_text(["a"]) == ""


def test_every_transform_has_a_painless_twin() -> None:
    assert set(TRANSFORMS) == set(PAINLESS)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
contact_values = st.one_of(st.just("absent"), json_values, st.fixed_dictionaries({"main": st.text(max_size=5)}))


def _maybe(value: Any) -> dict[str, Any]:
    return {} if value == "absent" else {"v": value}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents in any shape: parts absent, null, scalars, strings, lists, old or new objects."""
    doc: dict[str, Any] = draw(st.dictionaries(st.sampled_from(["id", "timestamp", "x"]), json_values, max_size=3))
    shape = draw(st.sampled_from(["absent", "null", "scalar", "object"]))
    if shape == "null":
        doc["data"] = None
    elif shape == "scalar":
        doc["data"] = draw(json_scalars)
    elif shape == "object":
        data: dict[str, Any] = {}
        contact = draw(st.sampled_from(["absent", "null", "object", "scalar"]))
        if contact == "null":
            data["contact"] = None
        elif contact == "scalar":
            data["contact"] = draw(json_scalars)
        elif contact == "object":
            data["contact"] = {}
            for key in ("email", "phone"):
                value = draw(contact_values)
                if value != "absent":
                    data["contact"][key] = value
        for key, inner in (("pii", "name"), ("devices", "names"), ("ec", "order")):
            if draw(st.booleans()):
                data[key] = draw(
                    st.none() | st.dictionaries(st.sampled_from([inner, "other"]), json_values, max_size=2)
                )
        if draw(st.booleans()):
            data["anonymous"] = draw(json_scalars)
        doc["data"] = data
    return doc


@settings(max_examples=300, deadline=None)  # a loaded machine must not turn slowness into failure
@given(documents())
def test_transforms_never_fail_never_mutate_and_are_idempotent(document: dict[str, Any]) -> None:
    for name, transform in TRANSFORMS.items():
        original = copy.deepcopy(document)
        once = transform(document)
        assert document == original, name
        assert transform(once) == once, name


@settings(max_examples=300, deadline=None)  # a loaded machine must not turn slowness into failure
@given(documents())
def test_contact_shape_and_no_pii_name_after_profile_and_event(document: dict[str, Any]) -> None:
    for transform in (transform_profile, transform_event):
        data = transform(document)["data"]
        contact = data["contact"]
        assert isinstance(contact["email"], dict)
        assert isinstance(contact["phone"], dict)
        pii = data.get("pii")
        assert not (isinstance(pii, dict) and "name" in pii)
    profile = transform_profile(document)["data"]
    assert profile["anonymous"] is None or isinstance(profile["anonymous"], bool)
    devices = profile.get("devices")
    assert not (isinstance(devices, dict) and "names" in devices)
