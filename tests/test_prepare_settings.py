"""FADELINK_KEEP_METADATA, KEEP_LOCATION, KEEP_NAMES and SHARE_ANY: what the receiver gets.

Metadata is read back with exiftool (an independent reader). The end-to-end tests run the
daemon as a subprocess and fetch what the link serves.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageChops, ImageOps, PngImagePlugin

from daemon.errors import BadImage, IncompleteImage, NotAnImage
from daemon.prepare import Keep, copy_as_is, prepare, shareable_stem
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import (
    SECRET,
    STORE_FOR_ORIENTATION,
    TEST_MAKE,
    TEST_OWNER,
    TEST_SERIAL,
    XMP,
    decoded,
    exiftool,
    gps_exif,
    is_upright,
    make_jpeg,
    make_png,
    orientation_tags,
    pattern,
)
from tests.photos import shared_photo

KEEP = Keep(metadata=True)
KEEP_ALL = Keep(metadata=True, location=True)


def gps_keys(tags: dict) -> list[str]:
    return [k for k in tags if "GPS" in k]


def make_source(kind: str, directory: Path) -> Path:
    """A photo of `kind` carrying camera, owner, serial and GPS in EXIF (and XMP where the
    format has it: GPS there too, and SECRET as its description)."""
    im = pattern((640, 480))
    path = directory / f"source.{kind}"
    if kind == "jpg":
        make_jpeg(path, (640, 480))
    elif kind == "png":
        make_png(path, (640, 480))
    elif kind == "webp":
        im.save(path, "WEBP", exif=gps_exif(), xmp=XMP.encode(), quality=90)
    elif kind == "heic":
        im.save(path, "HEIF", exif=gps_exif().tobytes(), xmp=XMP.encode(), quality=90)
    elif kind == "tiff":
        im.save(path, "TIFF", exif=gps_exif())
    return path


# --- FADELINK_KEEP_METADATA / KEEP_LOCATION --------------------------------------------------


@pytest.mark.parametrize("max_dimension", [0, 300])
@pytest.mark.parametrize("kind", ["jpg", "png", "webp", "heic", "tiff"])
def test_kept_metadata_has_the_camera_but_not_the_location(kind, max_dimension, tmp_path, out):
    source = make_source(kind, tmp_path)
    result = prepare(source, out, "p", max_dimension=max_dimension, keep=KEEP)
    source_tags, tags = exiftool(source, result.path)
    assert gps_keys(source_tags) or kind == "tiff"  # (Pillow writes no GPS into a TIFF)
    assert tags["EXIF:IFD0:Make"] == TEST_MAKE and tags["EXIF:IFD0:Model"] == SECRET
    if kind != "tiff":  # Pillow writes neither an Exif sub-IFD nor XMP into a TIFF
        assert tags["EXIF:ExifIFD:OwnerName"] == TEST_OWNER
        assert tags["EXIF:ExifIFD:SerialNumber"] == TEST_SERIAL
        assert tags["EXIF:ExifIFD:DateTimeOriginal"] == "2024:05:01 12:34:56"
        assert tags["XMP:XMP-dc:Description"] == SECRET  # the rest of the XMP stays
    assert gps_keys(tags) == []  # neither the EXIF GPS block nor XMP's exif:GPS…
    assert orientation_tags(tags) == []


def test_kept_metadata_of_a_real_camera_photo(out):
    source = shared_photo("jpg_gps_DSCN0010.jpg")
    source_tags, *copies = exiftool(
        source,
        prepare(source, out, "a", max_dimension=0, keep=KEEP).path,
        prepare(source, out, "b", max_dimension=320, keep=KEEP).path,
    )
    assert gps_keys(source_tags) and any(k.startswith("MakerNotes:") for k in source_tags)
    for tags in copies:
        for key in ("EXIF:IFD0:Make", "EXIF:IFD0:Model", "EXIF:ExifIFD:ExposureTime"):
            assert tags[key] == source_tags[key]
        assert gps_keys(tags) == []
        assert not [k for k in tags if k.startswith("MakerNotes:") or "Thumbnail" in k]


@pytest.mark.parametrize("max_dimension", [0, 300])
@pytest.mark.parametrize("kind", ["jpg", "png", "webp", "heic"])
def test_keep_location_keeps_the_gps_position(kind, max_dimension, tmp_path, out):
    source = make_source(kind, tmp_path)
    result = prepare(source, out, "p", max_dimension=max_dimension, keep=KEEP_ALL)
    (tags,) = exiftool(result.path)
    assert tags["EXIF:GPS:GPSLatitude"] == "48 deg 51' 30.24\""
    assert tags["EXIF:GPS:GPSLongitude"] == "2 deg 17' 40.20\""
    assert tags["EXIF:IFD0:Model"] == SECRET


def test_real_gps_photo_keeps_its_position_with_keep_location(out):
    source = shared_photo("jpg_gps_DSCN0012.jpg")
    source_tags, tags = exiftool(
        source, prepare(source, out, "p", max_dimension=0, keep=KEEP_ALL).path
    )
    position = {k: v for k, v in source_tags.items() if k.startswith("EXIF:GPS:")}
    assert "EXIF:GPS:GPSLatitude" in position and "EXIF:GPS:GPSTimeStamp" in position
    assert {k: v for k, v in tags.items() if k.startswith("EXIF:GPS:")} == position


def test_keep_location_alone_keeps_nothing(tmp_path, out):
    # Location is metadata: without KEEP_METADATA everything goes, GPS included.
    result = prepare(
        make_source("jpg", tmp_path), out, "p", max_dimension=0, keep=Keep(location=True)
    )
    (tags,) = exiftool(result.path)
    assert not [k for k in tags if k.split(":")[0] in ("EXIF", "XMP", "IPTC", "MakerNotes")]


def xmp_with_orientation(orientation: int) -> bytes:
    return XMP.replace(
        'xmlns:dc="http://purl.org/dc/elements/1.1/"',
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{orientation}"',
    ).encode()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("max_dimension", [0, 300])
def test_kept_metadata_never_turns_the_photo_again(orientation, max_dimension, tmp_path, out):
    # Tagged in EXIF and in XMP: after the pixels are turned, neither tag may remain, or a
    # viewer would turn the photo a second time.
    source = tmp_path / "o.jpg"
    stored = pattern((800, 600))
    if STORE_FOR_ORIENTATION[orientation] is not None:
        stored = stored.transpose(STORE_FOR_ORIENTATION[orientation])
    stored.save(source, exif=gps_exif(orientation), xmp=xmp_with_orientation(orientation))
    result = prepare(source, out, "p", max_dimension=max_dimension, keep=KEEP)
    got = decoded(result.path)
    assert is_upright(got)
    assert is_upright(ImageOps.exif_transpose(got))  # as a viewer applying the tags shows it
    (tags,) = exiftool(result.path)
    assert orientation_tags(tags) == []
    assert tags["EXIF:IFD0:Model"] == SECRET


def test_kept_metadata_on_the_lossless_path_keeps_every_pixel(tmp_path, out):
    source = make_jpeg(tmp_path / "s.jpg", (500, 400))
    result = prepare(source, out, "p", max_dimension=0, keep=KEEP)
    assert ImageChops.difference(decoded(source), decoded(result.path)).getbbox() is None
    (tags,) = exiftool(result.path)
    assert tags["EXIF:IFD0:Model"] == SECRET and tags["File:Comment"] == SECRET
    assert gps_keys(tags) == []


def test_xmp_spelling_the_patterns_miss_is_dropped_whole(tmp_path, out):
    # GPS in XMP written with a default namespace instead of a prefix: rather than risk it,
    # the whole packet goes (EXIF is kept).
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="">'
        '<GPSLatitude xmlns="http://ns.adobe.com/exif/1.0/">48,51.504N</GPSLatitude>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    source = tmp_path / "s.jpg"
    pattern((300, 200)).save(source, exif=gps_exif(), xmp=xmp.encode())
    result = prepare(source, out, "p", max_dimension=0, keep=KEEP)
    (tags,) = exiftool(result.path)
    assert not [k for k in tags if k.startswith("XMP:")]
    assert tags["EXIF:IFD0:Model"] == SECRET and gps_keys(tags) == []


@pytest.mark.parametrize("max_dimension", [0, 300])
def test_kept_png_text_stays_but_raw_exif_profiles_go(max_dimension, tmp_path, out):
    source = tmp_path / "s.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET)
    # ImageMagick keeps whole EXIF blocks, GPS and all, as hex in such a chunk.
    info.add_text("Raw profile type exif", "exif\n 20\nGPS 48 51 30 N", zip=True)
    pattern((640, 480)).save(source, pnginfo=info, exif=gps_exif())
    result = prepare(source, out, "p", max_dimension=max_dimension, keep=KEEP)
    with Image.open(result.path) as im:
        assert im.text.get("Comment") == SECRET
        assert not [k for k in im.text if k.lower().startswith("raw profile")]
    (tags,) = exiftool(result.path)
    assert tags["EXIF:IFD0:Model"] == SECRET and gps_keys(tags) == []


def test_icc_profile_survives_with_kept_metadata(tmp_path, out):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = make_jpeg(tmp_path / "s.jpg", (640, 480), icc_profile=icc)
    for bound in (0, 300):
        result = prepare(source, out, f"p{bound}", max_dimension=bound, keep=KEEP)
        assert decoded(result.path).info.get("icc_profile") == icc


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "stem"),
    [
        ("Beach day (1).jpg", "Beach_day_1"),
        ("IMG_0001.HEIC", "IMG_0001"),
        ("Été à Paris.jpeg", "Été_à_Paris"),
        (".hidden.png", "hidden"),
        ("...jpg", "photo"),
        ("a\nb\x00c.jpg", "a_b_c"),
        ('quote"s & <tags>.png', "quote_s_tags"),
        ("x" * 300 + ".jpg", "x" * 100),
    ],
)
def test_kept_names_are_sanitised(filename, stem):
    assert shareable_stem(filename) == stem


def test_unique_names_never_replace_a_namesake(tmp_path, out):
    first = prepare(
        make_jpeg(tmp_path / "a.jpg", (64, 48)), out, "IMG", max_dimension=0, unique=True
    )
    second = prepare(
        make_png(tmp_path / "b.png", (64, 48)), out, "IMG", max_dimension=0, unique=True
    )
    third = prepare(
        make_jpeg(tmp_path / "c.jpg", (32, 24)), out, "IMG", max_dimension=0, unique=True
    )
    assert [first.path.name, second.path.name, third.path.name] == [
        "IMG.jpg",
        "IMG.png",
        "IMG-2.jpg",
    ]
    assert decoded(first.path).size == (64, 48) and decoded(third.path).size == (32, 24)
    assert sorted(p.name for p in out.iterdir()) == ["IMG-2.jpg", "IMG.jpg", "IMG.png"]


# --- copies of non-images (FADELINK_SHARE_ANY) -------------------------------------------------


def fake_video(path: Path) -> Path:
    """An MP4-like file whose bytes carry a position, as phone videos do (©xyz atom)."""
    path.write_bytes(
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
        + b"\x00\x00\x00\x2cmoov\x00\x00\x00\x24udta\x00\x00\x00\x1c\xa9xyz+48.8583+002.2945/"
        + os.urandom(4096)
    )
    return path


@pytest.mark.parametrize(
    ("name", "ext", "mime"),
    [("notes.txt", ".txt", "text/plain"), ("clip.MP4", ".mp4", "video/mp4"), ("raw", "", None)],
)
def test_copy_as_is_keeps_every_byte(name, ext, mime, tmp_path, out):
    source = fake_video(tmp_path / name)
    result = copy_as_is(source, out, "p")
    assert result.path == out / f"p{ext}" and result.ext == ext
    assert result.mime == (mime or "application/octet-stream")
    assert result.path.read_bytes() == source.read_bytes()
    assert result.content_hash == hashlib.sha256(source.read_bytes()).hexdigest()
    assert [p.name for p in out.iterdir()] == [f"p{ext}"]  # no temporary file left


def test_copy_as_is_refuses_what_prepare_refuses(tmp_path, out):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    link = tmp_path / "link.txt"
    link.symlink_to(secret)
    with pytest.raises(BadImage, match="symbolic link"):
        copy_as_is(link, out, "p")
    empty = tmp_path / "empty.txt"
    empty.touch()
    with pytest.raises(IncompleteImage, match="empty.txt"):
        copy_as_is(empty, out, "p")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(NotAnImage, match="pipe.txt"):
        copy_as_is(fifo, out, "p")
    with pytest.raises(NotAnImage, match="gone"):
        copy_as_is(tmp_path / "gone.txt", out, "p")
    assert list(out.iterdir()) == []


# --- through the daemon ----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def served_file(url: str) -> tuple[bytes, dict[str, str]]:
    """What a receiver gets: the link's page, then the file its <img> points at."""
    status, page, _ = fetch(url)
    assert status == 200, page
    src = re.search(rb'<img[^>]+src="([^"]+)"', page)
    assert src, page
    status, body, headers = fetch(urllib.parse.urljoin(url, src.group(1).decode()))
    assert status == 200
    return body, headers


def live_shares(home: Home, *names: str) -> dict[str, dict]:
    """Wait until files of these names have live shares; the live shares by file name (the
    latest one for a name shared twice)."""

    def ready() -> dict[str, dict] | None:
        run = home.cli("list", "--json")
        assert run.returncode == 0, run.stderr
        live = {Path(s["source"]).name: s for s in json.loads(run.stdout) if s["state"] == "live"}
        return live if set(names) <= set(live) else None

    return wait_for(ready, 30, f"live shares of {names}")


def save(data: bytes, dest: Path) -> Path:
    """As a photo app saves: a temporary name, then a rename into place."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


def test_share_any_serves_other_files_unmodified(home, desktop, tmp_path):
    notes = b"shopping list: milk, bread\n" * 10
    video = fake_video(tmp_path / "clip.mp4").read_bytes()
    photo = make_jpeg(tmp_path / "photo.jpg", (640, 480)).read_bytes()
    daemon = DaemonProcess(home, FADELINK_SHARE_ANY="true", FADELINK_KEEP_METADATA="true")
    try:
        daemon.wait_ready()
        save(notes, home.share_dir / "notes.txt")
        save(video, home.share_dir / "clip.mp4")
        save(photo, home.share_dir / "photo.jpg")
        live = live_shares(home, "notes.txt", "clip.mp4", "photo.jpg")

        body, headers = served_file(live["notes.txt"]["url"])
        assert body == notes
        body, headers = served_file(live["clip.mp4"]["url"])
        assert body == video and headers["Content-Type"] == "video/mp4"
        assert b"+48.8583+002.2945" in body  # as the README warns: nothing stripped

        # Photos are still prepared: KEEP_METADATA reached the daemon, GPS did not.
        body, headers = served_file(live["photo.jpg"]["url"])
        assert headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(body)) as served:
            exif = served.getexif()
            assert exif.get(ExifTags.Base.Model) == SECRET
            assert not exif.get_ifd(ExifTags.IFD.GPSInfo)

        # Served under random names, the sources' names appear nowhere.
        served = [p.name for p in (home.state_dir / "served").iterdir()]
        assert len(served) == 3
        assert not [n for n in served if re.search("notes|clip|photo", n)]
    finally:
        daemon.stop()


def test_share_any_off_leaves_other_files_alone(home, desktop, tmp_path):
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        save(fake_video(tmp_path / "v.mp4").read_bytes(), home.share_dir / "clip.mp4")
        # Barrier: a photo saved afterwards is shared; by then the video was looked at.
        save(make_jpeg(tmp_path / "p.jpg", (200, 100)).read_bytes(), home.share_dir / "p.jpg")
        assert list(live_shares(home, "p.jpg")) == ["p.jpg"]
        daemon.wait_line("clip.mp4 is not a photo")
    finally:
        daemon.stop()


def test_keep_names_serves_the_original_name_behind_a_random_link(home, desktop, tmp_path):
    daemon = DaemonProcess(home, FADELINK_KEEP_NAMES="true")
    try:
        daemon.wait_ready()
        first = make_jpeg(tmp_path / "a.jpg", (640, 480)).read_bytes()
        save(first, home.share_dir / "Beach day (1).jpg")
        url = live_shares(home, "Beach day (1).jpg")["Beach day (1).jpg"]["url"]
        assert {p.name for p in (home.state_dir / "served").iterdir()} == {"Beach_day_1.jpg"}
        token = url.rsplit("/", 1)[1]
        assert len(token) >= 22 and "Beach" not in url  # the link stays unguessable

        # The same name again, another photo, while the first link lives: a name of its own.
        save(
            make_jpeg(tmp_path / "b.jpg", (320, 240)).read_bytes(),
            home.share_dir / "Beach day (1).jpg",
        )
        wait_for(lambda: len(list((home.state_dir / "served").iterdir())) == 2, 30, "second share")
        names = {p.name for p in (home.state_dir / "served").iterdir()}
        assert names == {"Beach_day_1.jpg", "Beach_day_1-2.jpg"}
        body, headers = served_file(url)
        assert Image.open(io.BytesIO(body)).size == (640, 480)
        assert "Beach_day_1" in headers["Content-Disposition"]  # the kept name, as asked

        # A HEIC is served as a JPEG: the name gets the extension of what is served.
        heic = tmp_path / "IMG_0001.HEIC"
        pattern((320, 240)).save(heic, "HEIF", exif=gps_exif().tobytes(), quality=90)
        save(heic.read_bytes(), home.share_dir / "IMG_0001.HEIC")
        body, headers = served_file(live_shares(home, "IMG_0001.HEIC")["IMG_0001.HEIC"]["url"])
        assert headers["Content-Type"] == "image/jpeg" and body.startswith(b"\xff\xd8")
        assert "IMG_0001.jpg" in {p.name for p in (home.state_dir / "served").iterdir()}

        # `fadelink share` (the CLI's own pipeline) honours it too.
        photo = make_jpeg(tmp_path / "Été à Paris.jpg", (300, 200))
        run = home.cli("share", str(photo), FADELINK_KEEP_NAMES="true")
        assert run.returncode == 0, run.stderr
        assert "Été_à_Paris.jpg" in {p.name for p in (home.state_dir / "served").iterdir()}
    finally:
        daemon.stop()
