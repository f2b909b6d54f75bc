"""The kept listing of an idle installation's watched children (Deployments, Jobs): when a pass may use
it, and when it must list them again."""

from __future__ import annotations

from typing import Any

from tests.factories import FakeClock
from tracardi_operator.children import EVERY_KIND, UNWATCHED, ChildListings
from tracardi_operator.labels import label_value


class Cluster:
    """What each listing answers, with a hook that runs while a listing is read."""

    def __init__(self) -> None:
        self.deployments = ["acme-api"]
        self.reads: list[tuple[str, ...]] = []
        self.during: Any = None

    def read(self, kinds: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
        self.reads.append(kinds)
        out = {kind: [] for kind in kinds}
        if "deployments" in kinds:
            out["deployments"] = [{"metadata": {"name": n}} for n in self.deployments]
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return out


def names(listed: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [d["metadata"]["name"] for d in listed["deployments"]]


def test_kept_while_idle_and_nothing_moved() -> None:
    cluster, children = Cluster(), ChildListings(clock=FakeClock())
    assert names(children.list("shop", "acme", True, cluster.read)) == ["acme-api"]
    cluster.deployments = ["acme-api", "acme-gui"]  # a change no event told of (it cannot happen unseen)
    assert names(children.list("shop", "acme", True, cluster.read)) == ["acme-api"]
    assert cluster.reads == [EVERY_KIND, UNWATCHED]
    assert set(children.list("shop", "acme", True, cluster.read)) == set(EVERY_KIND), "every kind is answered"


def test_an_event_a_write_or_a_busy_installation_lists_again() -> None:
    cluster, children = Cluster(), ChildListings(clock=FakeClock())
    children.list("shop", "acme", True, cluster.read)
    cluster.deployments = ["acme-api", "acme-gui"]
    children.moved("deployments", "shop", "acme-gui", "acme")
    assert names(children.list("shop", "acme", True, cluster.read)) == ["acme-api", "acme-gui"]
    children.moved("deployments", "shop", "other-api", "other")  # another installation's event
    children.list("shop", "acme", True, cluster.read)
    children.wrote("shop", "acme")
    children.list("shop", "acme", True, cluster.read)
    assert cluster.reads == [EVERY_KIND, EVERY_KIND, UNWATCHED, EVERY_KIND]
    cluster.reads.clear()
    children.list("shop", "acme", False, cluster.read)
    children.list("shop", "acme", True, cluster.read)
    assert cluster.reads == [EVERY_KIND, EVERY_KIND], "a busy pass keeps nothing for the next"


def test_an_event_while_the_listing_is_read_counts_against_it() -> None:
    cluster, children = Cluster(), ChildListings(clock=FakeClock())
    cluster.during = lambda: children.moved("jobs", "shop", "acme-install", "acme")
    children.list("shop", "acme", True, cluster.read)
    children.list("shop", "acme", True, cluster.read)
    children.list("shop", "acme", True, cluster.read)
    assert cluster.reads == [EVERY_KIND, EVERY_KIND, UNWATCHED]


def test_the_relist_backstop_and_forget() -> None:
    clock = FakeClock()
    cluster, children = Cluster(), ChildListings(relist=900, clock=clock)
    children.list("shop", "acme", True, cluster.read)
    clock.sleep(900)
    children.list("shop", "acme", True, cluster.read)
    clock.sleep(0.5)
    children.list("shop", "acme", True, cluster.read)
    assert cluster.reads == [EVERY_KIND, UNWATCHED, EVERY_KIND]
    children.forget("shop", "acme")
    assert len(children) == 0


def test_events_of_a_long_name_count_by_its_label() -> None:
    long_name = "l" * 70
    cluster, children = Cluster(), ChildListings(clock=FakeClock())
    children.list("shop", long_name, True, cluster.read)
    children.moved("deployments", "shop", "l-api", label_value(long_name))  # the label its event carries
    children.list("shop", long_name, True, cluster.read)
    assert cluster.reads == [EVERY_KIND, EVERY_KIND]


def test_a_relabelled_child_leaves_the_listing_of_the_installation_it_belonged_to() -> None:
    """A child whose instance label changes moves out of one installation's listing and into another's:
    both list again. Its former label is answered once; a deletion ends what is known of it."""
    cluster, children = Cluster(), ChildListings(clock=FakeClock())
    assert children.moved("deployments", "shop", "acme-api", "acme") is None  # its first event
    children.list("shop", "acme", True, cluster.read)
    children.list("shop", "other", True, cluster.read)
    assert children.moved("deployments", "shop", "acme-api", "other") == "acme"
    children.list("shop", "acme", True, cluster.read)
    children.list("shop", "other", True, cluster.read)
    assert cluster.reads == [EVERY_KIND] * 4, "both installations list again"
    assert children.moved("deployments", "shop", "acme-api", "other") is None, "no longer acme's"
    assert children.moved("jobs", "shop", "acme-api", "acme") is None, "a Job of the same name is another child"
    assert children.moved("deployments", "shop", "acme-api", "other", gone=True) is None
    assert children.moved("deployments", "shop", "acme-api", "acme") is None, "after its deletion: new"


def test_forget_drops_what_the_events_said_of_its_children() -> None:
    children = ChildListings(clock=FakeClock())
    children.moved("deployments", "shop", "acme-api", "acme")
    children.moved("jobs", "shop", "acme-install", "acme")
    children.moved("deployments", "shop", "other-api", "other")
    children.forget("shop", "acme")
    assert children.moved("deployments", "shop", "acme-api", "other") is None, "acme's were forgotten"
    assert children.moved("deployments", "shop", "other-api", "acme") == "other", "other's were not"
