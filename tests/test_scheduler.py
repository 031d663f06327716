"""Scheduling and settling, with the clock as a parameter: no sleeping."""

import random

from daemon import scheduler
from daemon.journal import Journal
from daemon.settle import Settler


def test_sleep_is_bounded_so_a_suspend_cannot_hide_a_deadline():
    now = 1_000_000.0
    deadline = now + 3600
    assert scheduler.sleep_for(now, deadline) == scheduler.MAX_SLEEP
    assert scheduler.sleep_for(now, now + 5) == 5
    assert scheduler.sleep_for(now, now - 5) == 0
    assert scheduler.sleep_for(now, None) == scheduler.MAX_SLEEP


def test_clock_jump_after_suspend_revokes_on_next_wake(tmp_path):
    """The laptop sleeps through a deadline: the monotonic clock stood still, the wall clock
    jumped. After at most MAX_SLEEP of running time the wall clock is read again and the overdue
    link is due."""
    j = Journal(tmp_path / "j.sqlite3")
    s, _ = j.add_pending("/s/a.jpg", 1, 1, backend="local", lifetime_s=3600, now=0)
    j.to_uploading(s.id, "r", 0)
    j.to_live(s.id, "u", "k", 0, 3600)
    wall = 100.0
    wait = scheduler.sleep_for(wall, j.next_deadline())
    assert wait == scheduler.MAX_SLEEP and j.due(wall) == []
    # Suspended for two hours during that sleep: the wall clock moved 7200 s + the sleep.
    wall += wait + 7200
    assert [d.id for d in j.due(wall)] == [s.id]


def test_retry_backoff_grows_and_is_capped():
    rnd = random.Random(1)
    delays = [scheduler.retry_delay(n, rnd) for n in range(1, 12)]
    assert 1.6 <= delays[0] <= 2.4
    assert all(b > a for a, b in zip(delays[:5], delays[1:6], strict=True))
    assert max(delays) <= scheduler.RETRY_CAP * 1.2


def test_settler_waits_for_a_stable_size_and_mtime():
    s = Settler(interval=1.0)
    s.observe("/a.jpg", 100, 1, now=0.0, quick=False)
    assert s.ready(0.5) == []
    s.observe("/a.jpg", 200, 2, now=0.8, quick=False)  # still growing: the clock restarts
    assert s.ready(1.5) == []
    assert abs(s.next_check(1.5) - 0.3) < 1e-9
    assert s.ready(1.8) == ["/a.jpg"]
    assert len(s) == 0


def test_settler_renamed_or_closed_files_need_no_wait_but_empty_ones_do():
    s = Settler(interval=1.0)
    s.observe("/moved.jpg", 100, 1, now=0.0, quick=True)
    s.observe("/empty.jpg", 0, 1, now=0.0, quick=True)
    assert s.ready(0.0) == ["/moved.jpg"]
    assert s.ready(100.0) == []  # an empty file is never ready
    assert s.next_check(100.0) is None  # and it does not make the consumer spin


def test_settler_keeps_arrival_order():
    s = Settler(interval=1.0)
    for i in range(5):
        s.observe(f"/{i}.jpg", 10, 1, now=float(i) / 10, quick=False)
    assert s.ready(10.0) == [f"/{i}.jpg" for i in range(5)]
