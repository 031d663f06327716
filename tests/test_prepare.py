"""daemon.prepare: what a person receiving the link sees, and what they must never see."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import (
    ExifTags,
    Image,
    ImageChops,
    ImageCms,
    ImageFile,
    ImageSequence,
    ImageStat,
    JpegImagePlugin,
)

from daemon.errors import BadImage, IncompleteImage, NotAnImage
from daemon.prepare import Keep, Prepared, prepare, sniff, thumbnail
from tests.images import (
    SECRET,
    STORE_FOR_ORIENTATION,
    decoded,
    exiftool,
    exiftool_leaks,
    gps_exif,
    is_upright,
    make_jpeg,
    make_png,
    metadata_leaks,
    orientation_tags,
    pattern,
    private_tags,
)
from tests.photos import PHOTOS, shared_photo

GPS_PHOTOS = ["jpg_gps_DSCN0010.jpg", "jpg_gps_DSCN0012.jpg", "jpg_Canon_40D.jpg"]
# Every real file (a placeholder when the folder is missing: shared_photo skips or fails).
ALL_PHOTOS = (
    sorted(p.name for p in PHOTOS.iterdir() if p.suffix != ".md")
    if PHOTOS.is_dir()
    else ["../shared/testdata/photos"]
)
# exiftool groups (family 0) a stripped copy may have: none of them is metadata about the photo.
CLEAN_GROUPS = {"SourceFile", "ExifTool", "File", "JFIF", "Composite", "ICC_Profile", "APP14"}
BROKEN_EXIF = ["jpg_corrupted.jpg", "jpg_invalid_image00971.jpg", "jpg_invalid_image01551.jpg"]


def as_srgb(im: Image.Image) -> Image.Image:
    """Pixels as a colour-managed viewer shows them (the ICC profile applied)."""
    icc = im.info.get("icc_profile")
    rgb = im.convert("RGB")
    if not icc:
        return rgb
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(rgb, profile, ImageCms.createProfile("sRGB"))


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def assert_clean(path: Path) -> None:
    assert metadata_leaks(path) == []
    leaks = exiftool_leaks(path)  # an independent reader, when installed
    assert leaks in (None, [])


def assert_nothing_written(out: Path) -> None:
    assert list(out.iterdir()) == []  # no output, no temporary file left behind


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 60-byte PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def make_animation(path: Path, fmt: str, colors: list[tuple[int, int, int]]) -> Path:
    frames = [Image.new("RGB", (160, 120), c) for c in colors]
    params: dict = {"duration": [100 + 10 * i for i in range(len(frames))], "loop": 0}
    if fmt == "GIF":
        params["comment"] = SECRET
    else:
        params["exif"] = gps_exif()
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], **params)
    return path


# --- metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PHOTOS)
def test_every_real_photo_comes_out_with_nothing_private(name, out):
    """Each file, kept and shrunk, stripped and with KEEP_METADATA, read back by exiftool."""
    source = shared_photo(name)
    results = [
        (prepare(source, out, f"p{bound}_{keep.metadata}", max_dimension=bound, keep=keep), keep)
        for bound in (0, 300)
        for keep in (Keep(), Keep(metadata=True))
    ]
    source_tags, *copies = exiftool(source, *(r.path for r, _ in results))
    for (result, keep), tags in zip(results, copies, strict=True):
        where = f"{name} -> {result.path.name}"
        assert orientation_tags(tags) == [], where
        if not keep.metadata:
            assert private_tags(tags) == [], where
            assert {k.split(":")[0] for k in tags} <= CLEAN_GROUPS, where
            continue
        # Kept metadata still never carries location, maker notes or thumbnails...
        leaks = [t for t in private_tags(tags) if not re.search("Serial|Owner", t)]
        assert leaks == [], where
        # ...but does carry the camera.
        model = source_tags.get("EXIF:IFD0:Model")
        assert tags.get("EXIF:IFD0:Model") == model, where


def test_the_real_photos_do_carry_what_must_be_stripped():
    # Otherwise the test above could not fail.
    names = [n for n in ALL_PHOTOS if not n.startswith("..")]
    found = " ".join(t for tags in exiftool(*map(shared_photo, names)) for t in private_tags(tags))
    for private in ("GPS:GPSLatitude", "SerialNumber", "MakerNotes:", "ThumbnailImage"):
        assert private in found


@pytest.mark.parametrize("name", GPS_PHOTOS)
@pytest.mark.parametrize("max_dimension", [0, 320])
def test_real_gps_photos_come_out_without_any_metadata(name, max_dimension, out):
    source = shared_photo(name)
    with Image.open(source) as im:
        assert im.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the source has a GPS block
    result = prepare(source, out, "p", max_dimension=max_dimension)
    assert result.path == out / "p.jpg" and result.mime == "image/jpeg"
    assert_clean(result.path)


@pytest.mark.parametrize("max_dimension", [0, 300])
def test_synthetic_gps_jpeg_comes_out_without_any_metadata(tmp_path, out, max_dimension):
    source = make_jpeg(tmp_path / "gps.jpg", (640, 480))
    assert metadata_leaks(source)  # the test image really carries GPS, XMP and a comment
    result = prepare(source, out, "p", max_dimension=max_dimension)
    assert_clean(result.path)
    assert is_upright(decoded(result.path))


def test_xmp_photo_loses_its_xmp(out):
    result = prepare(shared_photo("jpg_xmp_BlueSquare.jpg"), out, "p", max_dimension=0)
    assert_clean(result.path)


def test_data_after_the_end_of_a_jpeg_is_not_shared(tmp_path, out):
    # Motion photos and multi-picture files append a video or more pictures after EOI.
    source = make_jpeg(tmp_path / "motion.jpg", (320, 240), gps=False)
    source.write_bytes(source.read_bytes() + b"ftypmp42 video of " + SECRET.encode())
    result = prepare(source, out, "p", max_dimension=0)
    assert SECRET.encode() not in result.path.read_bytes()
    assert is_upright(decoded(result.path))


def test_data_after_the_end_of_a_png_is_not_shared(tmp_path, out):
    # "aCropalypse": some screenshot tools left the uncropped original after IEND.
    source = make_png(tmp_path / "crop.png", (320, 240), gps=False)
    source.write_bytes(source.read_bytes() + b"IDAT of the uncropped " + SECRET.encode())
    result = prepare(source, out, "p", max_dimension=0)
    assert SECRET.encode() not in result.path.read_bytes()
    assert is_upright(decoded(result.path))


def test_png_text_and_exif_are_dropped(tmp_path, out):
    result = prepare(make_png(tmp_path / "s.png", (200, 100)), out, "p", max_dimension=0)
    assert_clean(result.path)


# --- orientation ------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("max_dimension", [0, 400])
def test_real_orientation_files_come_out_like_landscape_1(orientation, max_dimension, out):
    reference = as_srgb(decoded(shared_photo("jpg_orientation_landscape_1.jpg")))
    source = shared_photo(f"jpg_orientation_landscape_{orientation}.jpg")
    result = prepare(source, out, "p", max_dimension=max_dimension)
    got = decoded(result.path)
    assert (
        got.size == (result.width, result.height) == ((400, 300) if max_dimension else (600, 450))
    )
    assert got.getexif().get(ExifTags.Base.Orientation) is None
    reference = reference.resize(got.size, Image.Resampling.BICUBIC)
    # The files were encoded apart and with different profiles: compare as displayed.
    # Any wrong orientation differs by ~40-70; the digit printed on each and JPEG noise ~5.
    assert mean_abs_diff(as_srgb(got), reference) < 8


@pytest.mark.parametrize("orientation", [2, 4, 5, 7])
@pytest.mark.parametrize("max_dimension", [0, 400])
def test_mirrored_orientations_come_out_like_landscape_1(orientation, max_dimension, tmp_path, out):
    reference = decoded(shared_photo("jpg_orientation_landscape_1.jpg"))
    source = make_jpeg(tmp_path / f"o{orientation}.jpg", image=reference, orientation=orientation)
    result = prepare(source, out, "p", max_dimension=max_dimension)
    got = decoded(result.path)
    assert got.getexif().get(ExifTags.Base.Orientation) is None
    assert mean_abs_diff(got, reference.resize(got.size, Image.Resampling.BICUBIC)) < 6


def test_real_portrait_5_comes_out_portrait(out):
    result = prepare(shared_photo("jpg_orientation_portrait_5.jpg"), out, "p", max_dimension=0)
    assert (result.width, result.height) == (450, 600) == decoded(result.path).size


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("max_dimension", [0, 300])
def test_every_orientation_comes_out_upright(orientation, max_dimension, tmp_path, out):
    # 1600x1200 shrunk to 300 goes through libjpeg's reduced-scale decode (draft).
    source = make_jpeg(tmp_path / "o.jpg", (1600, 1200), orientation=orientation)
    result = prepare(source, out, "p", max_dimension=max_dimension)
    got = decoded(result.path)
    assert (
        got.size == (result.width, result.height) == ((300, 225) if max_dimension else (1600, 1200))
    )
    assert is_upright(got)
    assert_clean(result.path)


def test_orientation_in_a_tiff_is_applied(tmp_path, out):
    source = tmp_path / "o.tiff"
    pattern((300, 200)).transpose(STORE_FOR_ORIENTATION[6]).save(source, exif=gps_exif(6))
    result = prepare(source, out, "p", max_dimension=0)
    assert result.ext == ".jpg" and (result.width, result.height) == (300, 200)
    assert is_upright(decoded(result.path))
    assert_clean(result.path)


# --- size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "orientation", "max_dimension", "expected"),
    [
        ((1000, 600), None, 500, (500, 300)),
        ((600, 1000), None, 500, (300, 500)),
        ((1000, 600), 6, 500, (500, 300)),  # stored 600x1000, shown 1000x600
        ((1000, 600), 8, 999, (999, 599)),
        ((400, 300), None, 500, (400, 300)),
        ((500, 300), None, 500, (500, 300)),
        ((4000, 3000), None, 0, (4000, 3000)),
        ((3000, 7), None, 1000, (1000, 2)),
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_longest_side_is_bounded_exactly(size, orientation, max_dimension, expected, fmt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    make = make_jpeg if fmt == "JPEG" else make_png
    source = make(tmp_path / f"s.{fmt.lower()}", size, orientation=orientation)
    result = prepare(source, out, "p", max_dimension=max_dimension)
    got = decoded(result.path)
    assert (result.width, result.height) == expected == got.size
    if min(expected) > 10:
        assert is_upright(got)


def test_a_12_megapixel_phone_photo_is_shrunk_to_the_bound(out):
    result = prepare(shared_photo("jpg_mobile_jolla.jpg"), out, "p", max_dimension=2560)
    assert (result.width, result.height) == (2560, 1920) == decoded(result.path).size
    assert_clean(result.path)


# --- lossless paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["jpg_mobile_jolla.jpg", "jpg_gps_DSCN0010.jpg", "jpg_xmp_BlueSquare.jpg"]
)
def test_a_photo_within_the_bound_keeps_every_pixel(name, out):
    source = shared_photo(name)
    result = prepare(source, out, "p", max_dimension=10_000)
    assert result.path.stat().st_size < source.stat().st_size  # metadata gone
    assert ImageChops.difference(decoded(source), decoded(result.path)).getbbox() is None


def test_synthetic_jpeg_within_the_bound_keeps_every_pixel(tmp_path, out):
    source = make_jpeg(tmp_path / "s.jpg", (500, 400))
    result = prepare(source, out, "p", max_dimension=500)
    assert ImageChops.difference(decoded(source), decoded(result.path)).getbbox() is None
    assert_clean(result.path)


@pytest.mark.parametrize("alpha", [False, True])
def test_png_stays_png_with_identical_pixels(alpha, tmp_path, out):
    source = make_png(tmp_path / "s.png", (300, 200), alpha=alpha)
    result = prepare(source, out, "p", max_dimension=0)
    assert (result.ext, result.mime) == (".png", "image/png")
    original, got = decoded(source), decoded(result.path)
    assert got.mode == original.mode
    assert ImageChops.difference(original, got).getbbox() is None
    assert_clean(result.path)


def test_shrunk_png_stays_png_and_keeps_transparency(tmp_path, out):
    source = make_png(tmp_path / "s.png", (800, 600), alpha=True)
    result = prepare(source, out, "p", max_dimension=400)
    got = decoded(result.path)
    assert result.ext == ".png" and got.size == (400, 300) and got.mode == "RGBA"
    assert got.getpixel((200, 5))[3] == 0 and got.getpixel((200, 200))[3] == 255
    assert_clean(result.path)


@pytest.mark.parametrize("max_dimension", [0, 200])
def test_icc_profile_survives(max_dimension, tmp_path, out):
    icc = srgb_icc()
    for source in (
        make_jpeg(tmp_path / "s.jpg", (400, 300), icc_profile=icc),
        make_png(tmp_path / "s.png", (400, 300), icc_profile=icc),
    ):
        result = prepare(source, out, source.stem, max_dimension=max_dimension)
        assert decoded(result.path).info.get("icc_profile") == icc


@pytest.mark.parametrize("subsampling", [("4:4:4", 0), ("4:2:2", 1), ("4:2:0", 2)])
def test_shrunk_jpeg_keeps_its_chroma_subsampling(subsampling, tmp_path, out):
    source = make_jpeg(tmp_path / "s.jpg", (800, 600), subsampling=subsampling[0])
    result = prepare(source, out, "p", max_dimension=400)
    with Image.open(result.path) as im:
        assert JpegImagePlugin.get_sampling(im) == subsampling[1]


# --- other formats ------------------------------------------------------------------------


def test_real_heif_becomes_jpeg(out):
    result = prepare(shared_photo("heic_samplefilehub.heif"), out, "p", max_dimension=0)
    assert (result.ext, result.mime, result.width, result.height) == (
        ".jpg",
        "image/jpeg",
        640,
        426,
    )
    assert decoded(result.path).size == (640, 426)
    assert_clean(result.path)


def test_synthetic_heif_with_gps_becomes_clean_jpeg(tmp_path, out):
    source = tmp_path / "s.heic"
    pattern((320, 240)).save(source, "HEIF", exif=gps_exif().tobytes(), quality=90)
    assert sniff(source) == "HEIF"
    result = prepare(source, out, "p", max_dimension=0)
    assert result.ext == ".jpg" and is_upright(decoded(result.path))
    assert_clean(result.path)


def test_real_tiff_becomes_jpeg(out):
    result = prepare(shared_photo("tiff_BSG1.tiff"), out, "p", max_dimension=0)
    assert (result.ext, result.mime) == (".jpg", "image/jpeg")
    assert decoded(result.path).size == (635, 348) == (result.width, result.height)
    assert_clean(result.path)


def test_transparent_tiff_becomes_png(tmp_path, out):
    source = tmp_path / "a.tiff"
    im = pattern((200, 100), "RGBA")
    im.paste((0, 0, 0, 0), (0, 0, 200, 10))
    im.save(source)
    result = prepare(source, out, "p", max_dimension=0)
    assert result.ext == ".png" and decoded(result.path).getpixel((5, 5))[3] == 0


@pytest.mark.parametrize("max_dimension", [0, 100])
def test_webp_stays_webp_without_exif(max_dimension, tmp_path, out):
    source = tmp_path / "s.webp"
    pattern((320, 240)).save(source, "WEBP", exif=gps_exif(), quality=90)
    result = prepare(source, out, "p", max_dimension=max_dimension)
    assert (result.ext, result.mime) == (".webp", "image/webp")
    assert is_upright(decoded(result.path))
    assert_clean(result.path)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
@pytest.mark.parametrize("max_dimension", [0, 80])
def test_animations_keep_every_frame(fmt, max_dimension, tmp_path, out):
    colors = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
    source = make_animation(tmp_path / f"a.{fmt.lower()}", fmt, colors)
    result = prepare(source, out, "p", max_dimension=max_dimension)
    assert result.ext == f".{fmt.lower()}"
    with Image.open(result.path) as im:
        assert im.n_frames == len(colors)
        assert im.size == ((80, 60) if max_dimension else (160, 120))
        for frame, color in zip(ImageSequence.Iterator(im), colors, strict=True):
            got = frame.convert("RGB").getpixel((40, 30))
            assert max(abs(a - b) for a, b in zip(got, color, strict=True)) < 20
            assert frame.info.get("duration")
    assert_clean(result.path)


# --- refusals -----------------------------------------------------------------------------


def test_truncated_real_jpeg_is_incomplete(tmp_path, out):
    data = shared_photo("jpg_mobile_jolla.jpg").read_bytes()
    source = tmp_path / "half.jpg"
    source.write_bytes(data[: len(data) // 2])
    for max_dimension in (0, 2560):
        with pytest.raises(IncompleteImage, match=r"half\.jpg \(JPEG\) is cut short or damaged"):
            prepare(source, out, "p", max_dimension=max_dimension)
    assert_nothing_written(out)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("max_dimension", [0, 100])
@pytest.mark.parametrize("fraction", [0.003, 0.5, 0.999])
@pytest.mark.parametrize("kind", ["jpeg", "png", "gif", "webp", "heif", "tiff"])
def test_half_written_files_are_incomplete(kind, fraction, max_dimension, tmp_path, out):
    full = tmp_path / f"full.{kind}"
    if kind == "jpeg":
        make_jpeg(full, (400, 300))
    elif kind == "png":
        make_png(full, (400, 300))
    elif kind in ("heif", "tiff"):
        pattern((400, 300)).save(full, kind.upper())
    else:
        make_animation(full, kind.upper(), [(200, 0, 0), (0, 200, 0), (0, 0, 200)])
    data = full.read_bytes()
    source = tmp_path / f"partial.{kind}"
    source.write_bytes(data[: max(12, int(len(data) * fraction))])
    assert sniff(source) is not None  # the watcher must not drop it as a non-image
    with pytest.raises(IncompleteImage, match="partial"):
        prepare(source, out, "p", max_dimension=max_dimension)
    assert_nothing_written(out)


def test_empty_file_is_incomplete(tmp_path, out):
    source = tmp_path / "empty.jpg"
    source.touch()
    with pytest.raises(IncompleteImage, match="empty.jpg"):
        prepare(source, out, "p", max_dimension=0)


@pytest.mark.parametrize(
    ("width", "height", "pixels"),
    [(20_000, 20_000, "400,000,000"), (10_000, 10_000, "100,000,000")],  # above 2x / 1x limit
)
def test_decompression_bomb_is_refused(width, height, pixels, tmp_path, out):
    source = png_claiming(tmp_path / "bomb.png", width, height)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(BadImage) as err:
            prepare(source, out, "p", max_dimension=2560)
    assert "bomb.png" in str(err.value) and pixels in str(err.value)
    assert "decompression bomb" in str(err.value)
    assert not [w for w in escaped if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters_before  # no filter leaked to the rest of the process
    assert_nothing_written(out)


def test_text_file_is_not_an_image(tmp_path, out):
    source = tmp_path / "notes.jpg"
    source.write_text("shopping list\n")
    assert sniff(source) is None
    with pytest.raises(NotAnImage, match="notes.jpg"):
        prepare(source, out, "p", max_dimension=0)
    assert_nothing_written(out)


def test_symlink_is_never_followed(tmp_path, out):
    target = make_jpeg(tmp_path / "private.jpg", (200, 100))
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    assert sniff(link) is None
    with pytest.raises(BadImage, match="symbolic link"):
        prepare(link, out, "p", max_dimension=0)
    assert_nothing_written(out)


def test_fifo_is_refused_without_blocking(tmp_path, out):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert sniff(fifo) is None
    with pytest.raises(NotAnImage, match="pipe.jpg"):
        prepare(fifo, out, "p", max_dimension=0)


def test_vanished_file_is_not_an_image(tmp_path, out):
    with pytest.raises(NotAnImage, match="gone"):
        prepare(tmp_path / "gone.jpg", out, "p", max_dimension=0)


def test_broken_exif_files_never_crash_or_hang(tmp_path, out):
    sources = [str(shared_photo(name)) for name in BROKEN_EXIF]
    # A subprocess, so that a hang fails the test instead of stalling the suite.
    script = """
import json, sys
from pathlib import Path
from daemon.errors import BadImage, IncompleteImage, NotAnImage
from daemon.prepare import Keep, prepare
results = []
for i, source in enumerate(sys.argv[2:]):
    for bound in (0, 1000):
        for kept in (False, True):  # KEEP_METADATA parses the broken EXIF further
            keep = Keep(metadata=kept, location=kept)
            try:
                r = prepare(
                    Path(source), Path(sys.argv[1]), f"p{i}_{bound}_{kept}", max_dimension=bound,
                    keep=keep,
                )
                results.append([str(r.path), kept])
            except (BadImage, IncompleteImage, NotAnImage) as err:
                results.append([type(err).__name__, kept])
print(json.dumps(results))
"""
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", script, str(out), *sources],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 60
    for result, kept in json.loads(run.stdout):
        if result.startswith("/"):
            assert decoded(Path(result)).size
            if not kept:
                assert_clean(Path(result))


# --- the rest of the interface ----------------------------------------------------------


def test_result_describes_the_written_file(tmp_path, out):
    source = make_jpeg(tmp_path / "s.jpg", (640, 480))
    result = prepare(source, out, "abc", max_dimension=320)
    assert result == Prepared(
        path=out / "abc.jpg",
        ext=".jpg",
        mime="image/jpeg",
        width=320,
        height=240,
        content_hash=hashlib.sha256(source.read_bytes()).hexdigest(),
    )
    assert sorted(p.name for p in out.iterdir()) == ["abc.jpg"]  # no temporary files
    again = prepare(make_png(tmp_path / "t.png", (10, 10)), out, "abc", max_dimension=0)
    assert again.path == out / "abc.png"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: make_jpeg(p / "a.jpg"), "JPEG"),
        (lambda p: make_png(p / "a.png"), "PNG"),
        (lambda p: make_animation(p / "a.gif", "GIF", [(0, 0, 0), (9, 9, 9)]), "GIF"),
    ],
)
def test_sniff_names_the_format(make, expected, tmp_path):
    assert sniff(make(tmp_path)) == expected


def test_sniff_reads_real_formats():
    assert sniff(shared_photo("heic_samplefilehub.heif")) == "HEIF"
    assert sniff(shared_photo("tiff_BSG1.tiff")) == "TIFF"
    assert sniff(shared_photo("README.md")) is None


def test_sniff_does_not_warn_about_bombs(tmp_path):
    source = png_claiming(tmp_path / "bomb.png", 10_000, 10_000)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        assert sniff(source) == "PNG"
    assert escaped == []


@pytest.mark.parametrize("size", [(1200, 800), (100, 300)])
def test_thumbnail_is_a_small_png(size, tmp_path):
    source = make_jpeg(tmp_path / "s.jpg", size, orientation=6)
    dest = tmp_path / "thumb.png"
    assert thumbnail(source, dest) == dest
    with Image.open(dest) as im:
        assert im.format == "PNG"
        assert max(im.size) == min(256, max(size))
        assert is_upright(im)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jpg", "thumb.png"]
