"""Painless scripts for the document transforms of migrations, our own implementation from the
description in docs/tracardi-migration-transforms.md (none of Tracardi's code is reproduced).

080→08x (§1) behave like Tracardi's, including where its scripts throw (missing `pii` on a profile,
missing `event` on a rule, a present-but-null `context`/`browser`/`local` on a staging session).
08x→0820 (§2): entity and event-reshaping as Tracardi; profile and event only run in the simulator's
fixed mode (faithful 0.8.2.1 never lists them), so they are the intended, null-safe versions of §2.3
and §2.4, with the repair of §5: an event's `data.pii.name` becomes `data.pii.display_name`.
"""

from __future__ import annotations

from devenv.simulator.naming import Context

RULE_080 = """
def s = ctx._source;
def t = s.event.type;
s.event_type = ['id': t, 'name': t];
s.remove('event');
"""

EVENT_TO_PROFILE_080 = """
def t = ctx._source.event_type;
ctx._source.event_type = ['name': t, 'id': t];
"""

PROFILE_080 = """
def s = ctx._source;
def pii = s.pii;
def d = new HashMap();
d.pii = ['firstname': pii.name, 'lastname': pii.surname, 'name': pii.surname];
d.contact = ['email': pii.email, 'app': ['twitter': pii.twitter, 'whatsapp': pii.whatsapp], 'address': [:]];
d.media = ['social': ['facebook': pii.facebook, 'twitter': pii.twitter]];
d.devices = [:];
d.identifier = [:];
d.loyalty = [:];
s.data = d;
s.remove('pii');
"""

_SESSION_080_COMMON = """
def s = ctx._source;
s.device = [:];
s.os = [:];
s.app = [:];
s.utm = [:];
"""

SESSION_080_STAGING = _SESSION_080_COMMON + """
if (s.containsKey('context') && s.context.containsKey('browser')) {
  def b = s.context.browser;
  if (b.containsKey('local')) {
    def local = b.local;
    if (local.containsKey('browser') && local.browser.containsKey('name')) { s.app.name = local.browser.name; }
    if (local.containsKey('device') && local.device.containsKey('platform')) { s.os.name = local.device.platform; }
  }
}
"""

SESSION_080_PRODUCTION = _SESSION_080_COMMON

EVENT_MANAGEMENT_080 = """
def s = ctx._source;
s.enabled = s.index_enabled;
s.remove('index_enabled');
"""

ENTITY_08X = "ctx._source.remove('timestamp');"

EVENT_RESHAPING_08X = "ctx._source.remove('mapping');"

# §2.3/§2.4 steps 1-3, null-safe and idempotent: a string becomes {main: s}; contact present but the
# value null/absent gives {main: ''}; contact absent gives {}; an already-migrated object keeps `main`.
_CONTACT_0820 = """
def s = ctx._source;
String e = null;
String ph = null;
boolean captured = false;
if (s.data instanceof Map && s.data.contact instanceof Map) {
  captured = true;
  def ev = s.data.contact.email;
  def pv = s.data.contact.phone;
  if (ev instanceof Map) { ev = ev.main; }
  if (pv instanceof Map) { pv = pv.main; }
  e = ev == null ? '' : ev.toString();
  ph = pv == null ? '' : pv.toString();
}
if (!(s.data instanceof Map)) { s.data = new HashMap(); }
if (!(s.data.contact instanceof Map)) { s.data.contact = new HashMap(); }
s.data.contact.email = new HashMap();
s.data.contact.phone = new HashMap();
if (captured) { s.data.contact.email.main = e; s.data.contact.phone.main = ph; }
"""

PROFILE_08X = _CONTACT_0820 + """
s.data.anonymous = null;
if (s.data.pii instanceof Map) {
  if (s.data.pii.name != null) { s.data.pii.display_name = s.data.pii.name; }
  s.data.pii.remove('name');
}
if (!(s.data.devices instanceof Map)) { s.data.devices = new HashMap(); }
s.data.devices.other = s.data.devices.names;
s.data.devices.remove('names');
"""

EVENT_08X = _CONTACT_0820 + """
if (s.data.ec instanceof Map && s.data.ec.order instanceof Map) {
  def o = s.data.ec.order;
  if (o.cost instanceof Map) {
    o.cost.remove('other'); o.cost.remove('discount'); o.cost.remove('tax'); o.cost.remove('shipping');
  }
  if (o.income instanceof Map) {
    o.income.remove('revenue');
    if (o.income.isEmpty()) { o.remove('income'); }
  }
}
if (s.data.pii instanceof Map) {
  if (s.data.pii.name != null) { s.data.pii.display_name = s.data.pii.name; }
  s.data.pii.remove('name');
}
"""


def script_for(from_db: str, resource: str, context: Context) -> str | None:
    """The painless source a migration entry carries (None: a plain copy)."""
    if from_db == "080":
        if resource == "session":
            return SESSION_080_STAGING if context == "staging" else SESSION_080_PRODUCTION
        return {
            "rule": RULE_080,
            "event-to-profile": EVENT_TO_PROFILE_080,
            "profile": PROFILE_080,
            "event-management": EVENT_MANAGEMENT_080,
        }.get(resource)
    if from_db == "08x":
        return {
            "entity": ENTITY_08X,
            "event-reshaping": EVENT_RESHAPING_08X,
            "profile": PROFILE_08X,
            "event": EVENT_08X,
        }.get(resource)
    return None
