"""The 08x→0820 document transforms (docs/tracardi-migration-transforms.md §2.1, §2.3, §2.4), twice:
as pure Python functions over `_source` documents, and as painless scripts Elasticsearch runs in the
repair's `_reindex`. Both implement the same rules; an integration test runs both on the same documents.

Rules, where they deviate from Tracardi's scripts (which throw on unexpected shapes):
- Any input shape is accepted: absent, null, non-object or already-migrated values never fail.
- Contact values become `{"main": <text>}`: a string is kept; null or absent gives `""` (Tracardi's
  default, kept for parity); a boolean gives "true"/"false", a 64-bit integer its digits; any other
  value (float, list) gives `""`. An object is already migrated and is left as it is. Without a
  `data.contact` object, email and phone become `{}`.
- profile: `data.anonymous` is set to null unless it already is a boolean (the model recomputes it);
  `data.pii.name` (when non-null) is copied to `data.pii.display_name`, then deleted even when null;
  `data.devices.names` moves to `data.devices.other` when present (no `devices` object: untouched).
- event: the same contact and `pii.name` → `display_name` rules (0.8.2.1's strict event mapping has no
  `pii.name`), and the five retired `data.ec.order` amounts are deleted; a `cost` or `income` object
  left empty by that deletion goes too (0.8.2.1 maps no `income`, and strict mapping rejects it).
- entity: the top-level `timestamp` is deleted.
Every transform is idempotent: applying it to its own output changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_RETIRED_ORDER_FIELDS = (
    ("cost", "other"),
    ("cost", "discount"),
    ("cost", "tax"),
    ("cost", "shipping"),
    ("income", "revenue"),
)


def main_text(value: object) -> str:
    """The text a 0.8.1 contact value contributes as `main`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and _LONG_MIN <= value <= _LONG_MAX:
        return str(value)
    return ""


def _contact_value(value: object) -> Any:
    if isinstance(value, dict):
        return value
    return {"main": main_text(value)}


def _data(document: Document) -> Document:
    data = document.get("data")
    if not isinstance(data, dict):
        data = {}
        document["data"] = data
    return data


def _reshape_contact(data: Document) -> None:
    contact = data.get("contact")
    if isinstance(contact, dict):
        contact["email"] = _contact_value(contact.get("email"))
        contact["phone"] = _contact_value(contact.get("phone"))
    else:
        data["contact"] = {"email": {}, "phone": {}}


def _rename_pii_name(data: Document) -> None:
    pii = data.get("pii")
    if isinstance(pii, dict) and "name" in pii:
        name = pii.pop("name")
        if name is not None:
            pii["display_name"] = name


def transform_profile(source: Document) -> Document:
    document = copy.deepcopy(source)
    data = _data(document)
    _reshape_contact(data)
    if not isinstance(data.get("anonymous"), bool):
        data["anonymous"] = None
    _rename_pii_name(data)
    devices = data.get("devices")
    if isinstance(devices, dict) and "names" in devices:
        devices["other"] = devices.pop("names")
    return document


def transform_event(source: Document) -> Document:
    document = copy.deepcopy(source)
    data = _data(document)
    _reshape_contact(data)
    _rename_pii_name(data)
    ec = data.get("ec")
    order = ec.get("order") if isinstance(ec, dict) else None
    if isinstance(order, dict):
        for parent, key in _RETIRED_ORDER_FIELDS:
            holder = order.get(parent)
            if isinstance(holder, dict) and key in holder:
                del holder[key]
                if not holder:
                    # 0.8.2.1's strict mapping has no `income`: an emptied object would be rejected.
                    del order[parent]
    return document


def transform_entity(source: Document) -> Document:
    document = copy.deepcopy(source)
    document.pop("timestamp", None)
    return document


TRANSFORMS: dict[str, Callable[[Document], Document]] = {
    "profile": transform_profile,
    "event": transform_event,
    "entity": transform_entity,
}

# Painless: the same rules. Functions must come first in a painless script; `ctx` is only visible in
# the statements after them, so each function takes the map it works on.
_PAINLESS_HELPERS = """
String mainText(def v) {
  if (v instanceof String) { return v; }
  if (v instanceof Boolean) { return v ? 'true' : 'false'; }
  if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
    return String.valueOf(v);
  }
  return '';
}
def contactValue(def v) {
  if (v instanceof Map) { return v; }
  Map m = new HashMap();
  m.put('main', mainText(v));
  return m;
}
Map dataOf(Map doc) {
  def data = doc.get('data');
  if (!(data instanceof Map)) { data = new HashMap(); doc.put('data', data); }
  return data;
}
void reshapeContact(Map data) {
  def contact = data.get('contact');
  if (contact instanceof Map) {
    contact.put('email', contactValue(contact.get('email')));
    contact.put('phone', contactValue(contact.get('phone')));
  } else {
    Map c = new HashMap();
    c.put('email', new HashMap());
    c.put('phone', new HashMap());
    data.put('contact', c);
  }
}
void renamePiiName(Map data) {
  def pii = data.get('pii');
  if (pii instanceof Map && pii.containsKey('name')) {
    def name = pii.remove('name');
    if (name != null) { pii.put('display_name', name); }
  }
}
"""

PAINLESS: dict[str, str] = {
    "profile": _PAINLESS_HELPERS
    + """
Map data = dataOf(ctx._source);
reshapeContact(data);
if (!(data.get('anonymous') instanceof Boolean)) { data.put('anonymous', null); }
renamePiiName(data);
def devices = data.get('devices');
if (devices instanceof Map && devices.containsKey('names')) { devices.put('other', devices.remove('names')); }
""",
    "event": _PAINLESS_HELPERS
    + """
Map data = dataOf(ctx._source);
reshapeContact(data);
renamePiiName(data);
def ec = data.get('ec');
def order = ec instanceof Map ? ec.get('order') : null;
if (order instanceof Map) {
  def cost = order.get('cost');
  if (cost instanceof Map) {
    boolean had = cost.containsKey('other') || cost.containsKey('discount') || cost.containsKey('tax')
      || cost.containsKey('shipping');
    cost.remove('other'); cost.remove('discount'); cost.remove('tax'); cost.remove('shipping');
    if (had && cost.isEmpty()) { order.remove('cost'); }
  }
  def income = order.get('income');
  if (income instanceof Map && income.containsKey('revenue')) {
    income.remove('revenue');
    if (income.isEmpty()) { order.remove('income'); }
  }
}
""",
    "entity": "ctx._source.remove('timestamp');",
}
