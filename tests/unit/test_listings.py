"""The cluster-wide listings the watches keep current: read whole once per ttl, events applied in between,
and a whole read merged with the events that arrived while it was in flight."""

from __future__ import annotations

import threading
import time
from typing import Any

from tracardi_operator.listings import Kind, Listings, merge


def obj(name: str, rv: int | str, namespace: str = "shop", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": str(rv)}, **extra}


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


class Cluster:
    """What a whole read answers, with a hook that runs while the read is in flight."""

    def __init__(self, rv: int, items: list[dict[str, Any]]) -> None:
        self.rv, self.items = rv, items
        self.reads = 0
        self.during: Any = None

    def read(self, kind: Kind) -> tuple[str, list[dict[str, Any]]]:
        self.reads += 1
        answer = (str(self.rv), list(self.items))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_read_whole_once_then_kept_current_by_events_until_the_ttl() -> None:
    cluster, clock = Cluster(10, [obj("a", 5), obj("b", 6)]), Clock()
    listings = Listings(cluster.read, ttl=300, clock=clock)
    listings.observe("installations", "ADDED", obj("early", 9))
    assert cluster.reads == 0, "an event before the first read reads nothing"
    assert names(listings.get("installations")) == ["a", "b"]
    listings.observe("installations", "ADDED", obj("c", 11))
    listings.observe("installations", "DELETED", obj("a", 12))
    listings.observe("installations", "MODIFIED", obj("b", 13, spec={"version": "0.8.1"}))
    clock.now += 299
    kept = listings.get("installations")
    assert cluster.reads == 1, "within the ttl no whole read"
    assert names(kept) == ["b", "c"]
    assert next(i for i in kept if i["metadata"]["name"] == "b")["spec"] == {"version": "0.8.1"}
    clock.now += 2
    cluster.rv, cluster.items = 20, [obj("x", 19)]
    assert names(listings.get("installations")) == ["x"], "after the ttl the whole read decides"
    assert cluster.reads == 2
    assert names(listings.get("installations", fresh=True)) == ["x"]
    assert cluster.reads == 3, "fresh reads whole at once"


def test_a_late_event_does_not_undo_a_newer_state() -> None:
    cluster = Cluster(10, [obj("a", 8, spec={"version": "new"})])
    listings = Listings(cluster.read)
    listings.get("installations")
    listings.observe("installations", "MODIFIED", obj("a", 7, spec={"version": "old"}))
    (a,) = listings.get("installations")
    assert a["spec"] == {"version": "new"}


def test_events_during_a_whole_read_win_over_its_older_snapshot() -> None:
    cluster = Cluster(10, [obj("a", 5), obj("b", 6)])
    listings = Listings(cluster.read, ttl=0)
    listings.get("installations")

    def meanwhile() -> None:  # delivered while the next read is in flight, after its snapshot at 10
        listings.observe("installations", "ADDED", obj("new", 11))
        listings.observe("installations", "DELETED", obj("b", 12))
        listings.observe("installations", "MODIFIED", obj("a", 13, spec={"edited": True}))

    cluster.during = meanwhile
    merged = listings.get("installations")
    assert names(merged) == ["a", "new"], "the read's snapshot neither loses an addition nor revives a deletion"
    assert next(i for i in merged if i["metadata"]["name"] == "a")["spec"] == {"edited": True}
    cluster.rv, cluster.items = 14, [obj("a", 13, spec={"edited": True}), obj("new", 11)]
    assert names(listings.get("installations")) == ["a", "new"]


def test_merge_by_resource_version() -> None:
    listed = [obj("a", 5), obj("b", 6), obj("recreated", 9)]
    current = {("shop", "a"): obj("a", 4), ("shop", "c"): obj("c", 11), ("shop", "old"): obj("old", 3)}
    deleted = {("shop", "b"): 12, ("shop", "recreated"): 8}
    out = merge("10", listed, current, deleted)
    assert sorted(n for _, n in out) == ["a", "c", "recreated"]
    assert out[("shop", "a")]["metadata"]["resourceVersion"] == "5", "the read is newer than the event"
    # Without numeric resourceVersions, the read alone.
    assert sorted(n for _, n in merge("opaque", listed, current, deleted)) == ["a", "b", "recreated"]


def test_same_name_in_two_namespaces_are_two_objects() -> None:
    cluster = Cluster(10, [obj("acme", 5, namespace="one"), obj("acme", 6, namespace="two")])
    listings = Listings(cluster.read)
    assert len(listings.get("installations")) == 2
    listings.observe("installations", "DELETED", obj("acme", 11, namespace="one"))
    (left,) = listings.get("installations")
    assert left["metadata"]["namespace"] == "two"


def test_kinds_are_kept_apart_and_fresh_reads_again() -> None:
    cluster = Cluster(10, [obj("a", 5)])
    listings = Listings(cluster.read)
    listings.get("installations")
    listings.get("policies")
    assert cluster.reads == 2
    listings.observe("policies", "DELETED", obj("a", 11))
    assert names(listings.get("installations")) == ["a"]
    assert listings.get("policies") == []
    assert listings.get("policies", fresh=True) == [], "a read older than the deletion does not bring it back"
    cluster.rv, cluster.items = 12, [obj("a", 12)]
    assert names(listings.get("policies", fresh=True)) == ["a"], "made again after it was deleted"
    assert cluster.reads == 4


class SlowCluster(Cluster):
    """A whole read that holds until the test lets it finish, counting reads in flight at once."""

    def __init__(self, rv: int, items: list[dict[str, Any]]) -> None:
        super().__init__(rv, items)
        self.entered, self.finish = threading.Event(), threading.Event()
        self.in_flight = self.most_in_flight = 0
        self._count = threading.Lock()

    def read(self, kind: Kind) -> tuple[str, list[dict[str, Any]]]:
        with self._count:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.set()
        self.finish.wait(10)
        try:
            return super().read(kind)
        finally:
            with self._count:
                self.in_flight -= 1


def _ask_concurrently(listings: Listings, n: int, fresh: bool = False) -> tuple[list[threading.Thread],
                                                                                 list[list[str]]]:
    answers: list[list[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(names(listings.get("installations", fresh))))
               for _ in range(n)]
    for t in threads:
        t.start()
    return threads, answers


def test_a_due_listing_is_read_whole_once_and_the_kept_one_served_meanwhile() -> None:
    cluster, clock = SlowCluster(10, [obj("a", 5)]), Clock()
    listings = Listings(cluster.read, ttl=300, clock=clock)
    cluster.finish.set()
    listings.get("installations")
    cluster.finish.clear()
    cluster.entered.clear()
    clock.now += 301
    cluster.rv, cluster.items = 20, [obj("a", 5), obj("b", 19)]
    threads, answers = _ask_concurrently(listings, 8)
    assert cluster.entered.wait(5)
    deadline = time.monotonic() + 5
    while len(answers) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answers == [["a"]] * 7, "the seven others are served the kept listing without waiting"
    cluster.finish.set()
    for t in threads:
        t.join(5)
    assert cluster.reads == 2, "one whole read for eight passes"
    assert cluster.most_in_flight == 1
    assert names(listings.get("installations")) == ["a", "b"]


def test_never_read_waits_for_the_one_read_and_fresh_reads_its_own() -> None:
    cluster = SlowCluster(10, [obj("a", 5)])
    listings = Listings(cluster.read)
    threads, answers = _ask_concurrently(listings, 4)
    assert cluster.entered.wait(5)
    time.sleep(0.1)
    assert answers == [], "nothing kept yet: they wait for the read"
    cluster.finish.set()
    for t in threads:
        t.join(5)
    assert answers == [["a"]] * 4
    assert cluster.reads == 1, "the waiters take the read they waited for"
    threads, answers = _ask_concurrently(listings, 3, fresh=True)
    for t in threads:
        t.join(5)
    assert cluster.reads == 4, "a fresh read never takes one begun before it was asked for"


def test_a_derived_value_is_kept_until_a_listing_changes_by_more_than_a_resource_version() -> None:
    cluster, clock = Cluster(10, [obj("a", 5, spec={"v": 1})]), Clock()
    listings = Listings(cluster.read, ttl=300, clock=clock)
    derived: list[int] = []

    def count(listed: list[list[dict[str, Any]]]) -> int:
        derived.append(len(listed[0]))
        return len(listed[0])

    assert listings.derived("n", ("installations",), count) == 1
    assert listings.derived("n", ("installations",), count) == 1
    assert derived == [1], "kept while nothing changed"
    assert not listings.observe("installations", "MODIFIED", obj("a", 6, spec={"v": 1})), "only its resourceVersion"
    assert listings.derived("n", ("installations",), count) == 1
    assert derived == [1]
    assert listings.observe("installations", "ADDED", obj("b", 7))
    assert listings.derived("n", ("installations",), count) == 2
    assert derived == [1, 2], "derived again after a change"
    assert listings.observe("installations", "DELETED", obj("b", 8))
    assert not listings.observe("installations", "DELETED", obj("b", 9)), "already gone"
    assert listings.derived("n", ("installations",), count) == 1
    assert derived == [1, 2, 1]
    assert listings.derived("other", ("installations",), count) == 1, "a value per name"
    assert derived == [1, 2, 1, 1]


def test_a_derived_value_follows_the_ttl_and_a_fresh_read() -> None:
    cluster, clock = Cluster(10, [obj("a", 5)]), Clock()
    listings = Listings(cluster.read, ttl=300, clock=clock)

    def count(listed: list[list[dict[str, Any]]]) -> int:
        return len(listed[0])

    assert listings.derived("n", ("installations",), count) == 1
    cluster.rv, cluster.items = 20, [obj("a", 5), obj("b", 19)]
    assert listings.derived("n", ("installations",), count) == 1, "within the ttl, as the watch keeps it"
    clock.now += 301
    assert listings.derived("n", ("installations",), count) == 2, "the whole read after the ttl decides"
    assert cluster.reads == 2
    cluster.rv, cluster.items = 30, [obj("c", 29)]
    listings.get("installations", fresh=True)
    assert listings.derived("n", ("installations",), count) == 1, "a fresh read changed the listing too"


def test_a_value_derived_while_its_listing_changed_is_not_kept() -> None:
    cluster = Cluster(10, [obj("a", 5)])
    listings = Listings(cluster.read)
    listings.get("installations")
    calls: list[int] = []

    def racing(listed: list[list[dict[str, Any]]]) -> int:
        calls.append(len(listed[0]))
        if len(calls) == 1:  # an event lands while the value is derived from what was read before it
            listings.observe("installations", "ADDED", obj("b", 11))
        return len(listed[0])

    assert listings.derived("n", ("installations",), racing) == 1
    assert listings.derived("n", ("installations",), racing) == 2, "derived again: the first was not kept"
    assert listings.derived("n", ("installations",), racing) == 2
    assert calls == [1, 2]


def test_a_derived_value_of_two_listings_follows_either() -> None:
    cluster = Cluster(10, [obj("a", 5)])
    listings = Listings(cluster.read)
    calls: list[tuple[int, int]] = []

    def both(listed: list[list[dict[str, Any]]]) -> tuple[int, int]:
        calls.append((len(listed[0]), len(listed[1])))
        return calls[-1]

    kinds: tuple[Kind, ...] = ("installations", "deployments")
    assert listings.derived("n", kinds, both) == (1, 1)
    listings.observe("deployments", "ADDED", obj("d", 12))
    assert listings.derived("n", kinds, both) == (1, 2)
    listings.observe("policies", "ADDED", obj("p", 13))
    assert listings.derived("n", kinds, both) == (1, 2)
    assert len(calls) == 2, "a listing it does not read changes nothing"
