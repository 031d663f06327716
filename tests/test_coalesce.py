"""Grouping announcements in a burst, with the clock as a parameter."""

from daemon.coalesce import Coalescer


def test_a_single_photo_is_announced_at_once():
    c: Coalescer[str] = Coalescer()
    release = c.add("a", now=0.0)
    assert release is not None and release.items == ["a"] and not release.grouped
    assert c.due(10.0) is None and c.next_due(10.0) is None


def test_up_to_three_in_two_seconds_are_announced_one_by_one():
    c: Coalescer[str] = Coalescer()
    assert c.add("a", 0.0).items == ["a"]
    assert c.add("b", 0.5) is None and c.add("c", 0.9) is None
    assert c.due(1.0) is None  # still coming
    assert abs(c.next_due(1.0) - 0.4) < 1e-9
    release = c.due(1.41)
    assert release.items == ["b", "c"] and not release.grouped


def test_more_than_three_become_one_group():
    c: Coalescer[int] = Coalescer()
    c.add(0, 0.0)
    for i in range(1, 12):
        assert c.add(i, i * 0.1) is None
    release = c.due(1.1 + 0.5)
    assert release.items == list(range(1, 12)) and release.grouped
    assert c.due(5.0) is None


def test_a_long_burst_is_released_every_few_seconds_not_only_at_its_end():
    c: Coalescer[int] = Coalescer()
    c.add(0, 0.0)
    released = []
    t = 0.0
    for i in range(1, 100):
        t = i * 0.1
        c.add(i, t)
        r = c.due(t)
        if r:
            released.append(r)
    assert len(released) >= 2 and all(r.grouped for r in released)


def test_after_a_pause_the_next_photo_is_instant_again():
    c: Coalescer[str] = Coalescer()
    c.add("a", 0.0)
    c.add("b", 0.1)
    c.due(1.0)
    release = c.add("c", 10.0)
    assert release is not None and release.items == ["c"]
