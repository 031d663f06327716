"""Grouping announcements in a burst, with the clock as a parameter."""

from daemon.coalesce import Coalescer


def test_a_single_photo_is_announced_at_once():
    c: Coalescer[str] = Coalescer()
    release = c.add("a", now=0.0)
    assert release is not None and release.items == ["a"] and not release.grouped
    assert c.due(10.0) is None and c.next_due(10.0) is None


def test_up_to_three_in_two_seconds_are_each_announced_at_once():
    c: Coalescer[str] = Coalescer()
    assert c.add("a", 0.0).items == ["a"]
    assert c.add("b", 0.5).items == ["b"]
    assert c.add("c", 0.9).items == ["c"]
    assert c.due(5.0) is None


def test_more_than_three_in_two_seconds_become_one_group():
    c: Coalescer[int] = Coalescer()
    released = [c.add(i, i * 0.1) for i in range(12)]
    assert [r.items for r in released[:3]] == [[0], [1], [2]]
    assert released[3:] == [None] * 9
    assert c.due(1.2) is None  # still coming
    assert abs(c.next_due(1.2) - 0.4) < 1e-9
    release = c.due(1.61)
    assert release.items == list(range(3, 12)) and release.grouped
    assert c.due(5.0) is None


def test_a_long_burst_is_released_every_few_seconds_not_only_at_its_end():
    c: Coalescer[int] = Coalescer()
    released = []
    for i in range(100):
        c.add(i, i * 0.1)
        r = c.due(i * 0.1)
        if r:
            released.append(r)
    assert len(released) >= 2 and all(r.grouped for r in released)


def test_photos_two_seconds_apart_are_never_held():
    c: Coalescer[int] = Coalescer()
    assert all(c.add(i, i * 2.1) is not None for i in range(20))
