"""Synthetic test images made with Pillow, carrying the metadata fadelink must strip.

Every image shows the same four flat quadrants as a viewer displays it (QUADRANT_COLORS:
red top-left, green top-right, blue bottom-left, yellow bottom-right), so `is_upright`
can tell any of the 8 EXIF orientations apart. By default the files carry an EXIF block
with a GPS position and a camera name, an XMP packet and a comment (or PNG text), all
containing SECRET, so a test can look for leaks in the raw bytes too.

    make_jpeg(path, (640, 480))                  # GPS EXIF + XMP + comment
    make_jpeg(path, (640, 480), orientation=6)   # stored turned, tagged 6: displays upright
    make_png(path, (640, 480), alpha=True)
    assert metadata_leaks(prepared_path) == []
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image, PngImagePlugin

SECRET = "fadelink-secret-7f3a"  # in the comment, XMP, PNG text and camera model
TEST_MAKE = "FadelinkTestCam"
TEST_OWNER = f"Owner {SECRET}"
TEST_SERIAL = "SN-4242-1337"
GPS_LATITUDE = (48.0, 51.0, 30.24)  # N, degrees / minutes / seconds
GPS_LONGITUDE = (2.0, 17.0, 40.2)  # E
QUADRANT_COLORS = ((220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 30))

# EXIF orientation -> how to store the upright picture so that a viewer applying the tag
# shows it upright again (the inverse of what the viewer does).
STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

XMP = f"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"
      xmlns:dc="http://purl.org/dc/elements/1.1/"
      exif:GPSLatitude="48,51.504N" exif:GPSLongitude="2,17.67E">
   <dc:description>{SECRET}</dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def pattern(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """The four quadrants, upright, `size` = (width, height) as displayed."""
    w, h = size
    im = Image.new("RGB", size)
    for (x, y), color in zip([(0, 0), (1, 0), (0, 1), (1, 1)], QUADRANT_COLORS, strict=True):
        box = (x * (w // 2), y * (h // 2), w if x else w // 2, h if y else h // 2)
        im.paste(color, box)
    return im.convert(mode)


def gps_exif(orientation: int | None = None) -> Image.Exif:
    """An EXIF block with camera make/model, owner, serial number, a date and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = TEST_MAKE
    exif[ExifTags.Base.Model] = SECRET
    exif[ExifTags.Base.DateTime] = "2024:05:01 12:34:56"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.CameraOwnerName] = TEST_OWNER
    details[ExifTags.Base.BodySerialNumber] = TEST_SERIAL
    details[ExifTags.Base.DateTimeOriginal] = "2024:05:01 12:34:56"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = GPS_LONGITUDE
    return exif


def make_jpeg(
    path: Path,
    size: tuple[int, int] = (640, 480),
    *,
    gps: bool = True,
    orientation: int | None = None,
    quality: int = 95,
    subsampling: str = "4:2:0",
    icc_profile: bytes | None = None,
    image: Image.Image | None = None,
) -> Path:
    """Write a JPEG that displays as `image` (default: the quadrant pattern at `size`).

    gps: add the EXIF block (GPS, camera), an XMP packet and a comment.
    orientation: tag it with this EXIF orientation and store the pixels turned so that
    applying the tag shows the picture upright (an orientation tag is written even when
    gps is False).
    """
    upright = image if image is not None else pattern(size)
    method = STORE_FOR_ORIENTATION[orientation or 1]
    stored = upright.transpose(method) if method is not None else upright
    params: dict = {"quality": quality, "subsampling": subsampling}
    if gps:
        params.update(exif=gps_exif(orientation), xmp=XMP.encode(), comment=SECRET)
    elif orientation is not None:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        params["exif"] = exif
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    stored.save(path, "JPEG", **params)
    return path


def make_png(
    path: Path,
    size: tuple[int, int] = (640, 480),
    *,
    gps: bool = True,
    alpha: bool = False,
    orientation: int | None = None,
    icc_profile: bytes | None = None,
) -> Path:
    """Write a PNG of the quadrant pattern (RGBA with a transparent top stripe when alpha).

    gps: add an eXIf chunk (GPS, camera) and text chunks (a comment and XMP).
    orientation: as for make_jpeg (an eXIf chunk with the tag, pixels stored turned).
    """
    im = pattern(size, "RGBA" if alpha else "RGB")
    if alpha:
        im.paste((0, 0, 0, 0), (0, 0, size[0], max(1, size[1] // 10)))
    method = STORE_FOR_ORIENTATION[orientation or 1]
    if method is not None:
        im = im.transpose(method)
    params: dict = {}
    if gps:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", SECRET)
        info.add_itxt("XML:com.adobe.xmp", XMP)
        params.update(exif=gps_exif(orientation), pnginfo=info)
    elif orientation is not None:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        params["exif"] = exif
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    im.save(path, "PNG", **params)
    return path


def is_upright(im: Image.Image, tolerance: int = 40) -> bool:
    """True when `im` shows the quadrant pattern the right way up (and not mirrored)."""
    quadrants = im.convert("RGB").resize((2, 2), Image.Resampling.BOX)
    seen = [quadrants.getpixel(xy) for xy in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    return all(
        max(abs(a - b) for a, b in zip(got, want, strict=True)) <= tolerance
        for got, want in zip(seen, QUADRANT_COLORS, strict=True)
    )


def metadata_leaks(path: Path) -> list[str]:
    """What of the private metadata is still in the file, as read by Pillow and in its raw
    bytes. Empty when clean. (Orientation alone is reported too: it must be applied.)"""
    leaks = []
    raw = path.read_bytes()
    for marker in (
        SECRET.encode(),
        TEST_MAKE.encode(),
        TEST_SERIAL.encode(),
        b"Exif\x00\x00",
        b"xmpmeta",
    ):
        if marker in raw:
            leaks.append(f"bytes {marker!r}")
    with Image.open(path) as im:
        exif = im.getexif()
        if len(exif):
            leaks.append(f"EXIF tags {sorted(exif)}")
        if exif.get_ifd(ExifTags.IFD.GPSInfo):
            leaks.append("GPS IFD")
        for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment", "photoshop"):
            if im.info.get(key):
                leaks.append(f"info[{key!r}]")
        text = getattr(im, "text", None)  # PNG tEXt / iTXt / zTXt
        if text:
            leaks.append(f"PNG text {sorted(text)}")
    return leaks


def exiftool_leaks(path: Path) -> list[str] | None:
    """Metadata exiftool (an independent reader) still finds; None when it is not installed."""
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        return None
    out = subprocess.run(
        [exiftool, "-j", "-G1", "-a", "-u", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (tags,) = json.loads(out)
    leaks = []
    private_groups = ("IFD", "ExifIFD", "GPS", "XMP", "IPTC", "Photoshop", "MakerNotes")
    private_names = ("GPS", "Exif", "Comment", "Make", "Model", "DateTime", "Description")
    for key, value in tags.items():
        group, _, tag = key.rpartition(":")
        if group.startswith("ICC") or group in ("ExifTool", "System"):
            continue  # the colour profile is kept on purpose; the others describe the file
        private = group.startswith(private_groups) or any(n in tag for n in private_names)
        if private or SECRET in str(value):
            leaks.append(f"{key}={value}")
    return leaks


def exiftool(*paths: Path) -> list[dict[str, Any]]:
    """What exiftool, an independent reader, finds in each file: one dict per path, keyed
    "Family0:Family1:Tag" (e.g. "EXIF:GPS:GPSLatitude", "MakerNotes:Nikon:ISO").

    exiftool is required (.ci/run installs libimage-exiftool-perl): without it the test is
    skipped, or fails with FADELINK_REQUIRE_TESTDATA=1.
    """
    tool = shutil.which("exiftool")
    if tool is None:
        message = "exiftool is not installed (Debian: libimage-exiftool-perl)"
        if os.environ.get("FADELINK_REQUIRE_TESTDATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run(
        [tool, "-j", "-G0:1", "-a", "-u", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    by_file = {Path(entry["SourceFile"]): entry for entry in json.loads(out)}
    return [by_file[path] for path in paths]


# What must never leave the machine by default, by exiftool's tag names.
_PRIVATE = re.compile(r"GPS|Serial|Owner|Thumbnail|PreviewImage|MakerNote")


def private_tags(tags: dict[str, Any]) -> list[str]:
    """GPS, serial numbers, owner names, maker notes and embedded thumbnails in exiftool's
    output (see exiftool()), as "key=value" strings."""
    found = []
    for key, value in tags.items():
        family0, _, rest = key.partition(":")
        if family0 in ("File", "ExifTool", "SourceFile"):
            continue
        if family0 == "MakerNotes" or _PRIVATE.search(rest):
            found.append(f"{key}={value}")
    return found


def orientation_tags(tags: dict[str, Any]) -> list[str]:
    """Every orientation tag exiftool sees (EXIF, XMP or any other)."""
    return [f"{k}={v}" for k, v in tags.items() if k.endswith(":Orientation")]


def decoded(path: Path) -> Image.Image:
    """The image at `path`, fully decoded and detached from the file."""
    with Image.open(path) as im:
        im.load()
        return im.copy()
