"""Where a photo lands decides how long its link lives."""

from pathlib import PurePath

from daemon.folders import placement

ROOT = PurePath("/home/u/Pictures/Fadelink")


def test_top_level_uses_the_default():
    p = placement(ROOT, ROOT / "a.jpg", 3600)
    assert (p.folder, p.lifetime_s, p.once) == ("", 3600, False)


def test_duration_folders_set_the_lifetime():
    assert placement(ROOT, ROOT / "10m" / "a.jpg", 3600).lifetime_s == 600
    assert placement(ROOT, ROOT / "2d" / "a.jpg", 3600).lifetime_s == 172800
    assert placement(ROOT, ROOT / "1H" / "a.jpg", 3600).lifetime_s == 3600
    p = placement(ROOT, ROOT / "10m" / "trip" / "a.jpg", 3600)
    assert (p.folder, p.lifetime_s) == ("10m", 600)


def test_nearest_duration_folder_wins_and_other_folders_keep_the_default():
    assert placement(ROOT, ROOT / "1d" / "10m" / "a.jpg", 3600).lifetime_s == 600
    p = placement(ROOT, ROOT / "holiday" / "a.jpg", 3600)
    assert (p.folder, p.lifetime_s) == ("", 3600)


def test_once_folder_makes_view_once_links_bounded_by_a_lifetime():
    p = placement(ROOT, ROOT / "once" / "a.jpg", 3600)
    assert (p.folder, p.lifetime_s, p.once) == ("once", 3600, True)
    p = placement(ROOT, ROOT / "1d" / "once" / "a.jpg", 3600)
    assert (p.folder, p.lifetime_s, p.once) == ("1d/once", 86400, True)
