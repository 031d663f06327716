"""Turn a saved photo into the copy that gets shared: oriented, shrunk, with no metadata.

Pillow (and pillow-heif) live behind this module only. The source is read once, without
following symlinks; its bytes are hashed and decoded from memory. The copy keeps only the
pixels and the ICC profile: EXIF (GPS, camera, dates), XMP, IPTC, comments and PNG text
are dropped. When nothing has to change but the metadata (no resize, no rotation), JPEG,
PNG, GIF and WebP files are stripped losslessly: the container is rewritten and the
compressed image data is copied byte for byte. Everything else is decoded and re-encoded.

With keep_metadata (FADELINK_KEEP_METADATA) the descriptive metadata stays: EXIF camera,
exposure and date tags, XMP, comments and PNG text. What describes the stored pixels rather
than the photo is still dropped or rewritten (orientation, embedded thumbnails, maker notes,
sizes), and so are GPS and place names unless keep_location is also set.

Files that are not images can be copied unmodified (copy_as_is, for FADELINK_SHARE_ANY).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import mimetypes
import os
import re
import stat
import struct
import tempfile
import unicodedata
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pillow_heif
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from daemon.errors import BadImage, IncompleteImage, NotAnImage, TransientError

log = logging.getLogger(__name__)

# Depth maps, auxiliary images and embedded thumbnails are never shared: don't read them.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

JPEG_QUALITY = 92
WEBP_QUALITY = 90
AVIF_QUALITY = 80
# zlib level 1 (zlib-ng's fast path) is 3-6x faster than the default 6 on photo-like PNGs
# for ~15% more bytes; a resized PNG must not blow the save-to-clipboard latency budget.
PNG_COMPRESS_LEVEL = 1
THUMBNAIL_COMPRESS_LEVEL = 6
# Everything is read into memory; no photo a person shares comes near this.
MAX_SOURCE_BYTES = 512 * 1024 * 1024

_OUTPUTS = {
    "JPEG": (".jpg", "image/jpeg"),
    "PNG": (".png", "image/png"),
    "GIF": (".gif", "image/gif"),
    "WEBP": (".webp", "image/webp"),
    "AVIF": (".avif", "image/avif"),
}
_ANIMATABLE = frozenset({"GIF", "WEBP", "PNG", "AVIF"})
# EXIF orientation -> the transform that makes the stored pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Hamming costs what bilinear costs, about half of bicubic. Measured on the 8 MP phone photo
# shrunk to 2560 and 1600 px: 54 and 53 dB PSNR against a Lanczos reference, where the
# JPEG q92 re-encode that follows is 42 and 40 dB: its difference is lost in that noise.
_RESAMPLE = Image.Resampling.HAMMING
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # so opening a FIFO cannot block
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)


@dataclass(frozen=True)
class Prepared:
    path: Path  # the written file: dest_dir / f"{name}{ext}" (or name-2... when unique)
    ext: str  # ".jpg", ".png", ".gif", ".webp", ".avif" (copy_as_is: the source's, or "")
    mime: str  # "image/jpeg" ...
    width: int  # 0 for a file copied as is
    height: int
    content_hash: str  # sha256 hex of the SOURCE file's bytes as read


@dataclass(frozen=True)
class Keep:
    """What the copy keeps besides pixels and ICC profile (FADELINK_KEEP_METADATA/LOCATION)."""

    metadata: bool = False
    location: bool = False  # GPS and place names; only together with metadata


def shareable_stem(filename: str) -> str:
    """A file name's stem made safe to use as a remote name (FADELINK_KEEP_NAMES).

    Letters (any script), digits, "-", "_" and "." stay; everything else (spaces, slashes,
    quotes, control characters) becomes "_". Never empty, never hidden, at most 100 chars.
    """
    stem = unicodedata.normalize("NFC", Path(filename).stem)
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._-")[:100].rstrip("._-")
    return stem or "photo"


def sniff(source: Path) -> str | None:
    """Cheap check (header only, never a full decode): Pillow format name or None.

    "JPEG", "PNG", "GIF", "WEBP", "HEIF", "AVIF", "TIFF"... (a multi-picture JPEG, which
    Pillow calls "MPO", is reported as "JPEG"). A file whose first bytes are those of a
    known image format but whose header is cut short is reported as that format: it is
    probably still being written. None for anything else, including symlinks (never
    followed), non-regular files, empty and unreadable files.
    """
    try:
        fd = _open_no_follow(source)
    except OSError:
        return None
    head = b""
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            head = f.read(32)
            if not head:
                return None
            f.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sniffing must not print bomb warnings
                with Image.open(f) as im:
                    return _format_of(im)
        except Exception:  # any unreadable header: fall back to magic bytes
            return _magic_format(head)


def prepare(
    source: Path,
    dest_dir: Path,
    name: str,
    *,
    max_dimension: int,
    keep: Keep = Keep(),
    unique: bool = False,
) -> Prepared:
    """Write the shareable copy of `source` to dest_dir / (name + ext) and describe it.

    Orientation is applied to the pixels; the longest side is shrunk to max_dimension
    (0 keeps the size); only the ICC profile survives of the metadata unless `keep` says
    otherwise. Formats: PNG, JPEG, GIF and WebP stay what they are, AVIF too when Pillow
    can write it; animations keep all their frames; HEIF, TIFF and everything else become
    JPEG, or PNG when they have transparency. The write is atomic (temporary file in
    dest_dir, then a rename). With unique, an existing file is never replaced: the name
    becomes name-2, name-3...

    Raises NotAnImage (not an image Pillow reads, gone, not a regular file), IncompleteImage
    (cut short or does not decode: maybe still being written), BadImage (decompression
    bomb, symlink, unreadable, cannot be encoded) and TransientError (dest_dir not
    writable, disk full).
    """
    if max_dimension < 0:
        raise ValueError(f"max_dimension must be >= 0, not {max_dimension}")
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"name must be a plain file name, not {name!r}")
    data = _read_source(source)
    content_hash = hashlib.sha256(data).hexdigest()
    with _decoding(source), _open_image(data, source) as im:
        body, out_format, size = _prepare_image(im, data, source, max_dimension, keep)
    ext, mime = _OUTPUTS[out_format]
    path = _write_atomic(dest_dir / f"{name}{ext}", body, source, unique=unique)
    return Prepared(path, ext, mime, size[0], size[1], content_hash)


def copy_as_is(source: Path, dest_dir: Path, name: str, *, unique: bool = False) -> Prepared:
    """Copy a file that is not an image unmodified (FADELINK_SHARE_ANY): nothing is stripped.

    The same care as for photos: a symlink is never followed, only regular files, written
    atomically. The extension is the source's (lower case), the type guessed from it.
    """
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"name must be a plain file name, not {name!r}")
    suffix = source.suffix.lower()
    ext = suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""
    mime = (mimetypes.guess_type(f"x{ext}")[0] if ext else None) or "application/octet-stream"
    dest = dest_dir / f"{name}{ext}"
    digest = hashlib.sha256()
    with os.fdopen(_open_source(source), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise NotAnImage(f"{source.name} is not a regular file; only files are shared.")
        try:
            fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{dest.name}.", suffix=".part")
        except OSError as err:
            raise _write_error(source, dest, err) from err
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := _read_chunk(f, source):
                    digest.update(chunk)
                    out.write(chunk)
                if out.tell() == 0:
                    raise IncompleteImage(
                        f"{source.name} is empty: it is probably still being written."
                    )
                out.flush()
                os.fsync(out.fileno())
            path = _place(Path(tmp), dest, unique)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(err, OSError):
                raise _write_error(source, dest, err) from err
            raise
    return Prepared(path, ext, mime, 0, 0, digest.hexdigest())


def thumbnail(prepared: Path, dest: Path, size: int = 256) -> Path:
    """Write a PNG of at most size x size pixels (first frame, upright) to dest, atomically.

    Meant for notification icons; raises the same errors as prepare().
    """
    if size <= 0:
        raise ValueError(f"size must be > 0, not {size}")
    data = _read_source(prepared)
    with _decoding(prepared), _open_image(data, prepared) as im:
        is_jpeg = _format_of(im) == "JPEG"
        orientation = _orientation(im) if is_jpeg else 1
        target = _target_size(im.size, size)
        box = _draft(im, target) if is_jpeg and target else None
        _load(im, prepared)
        if not is_jpeg:
            orientation = _orientation(im)
        icc = im.info.get("icc_profile")
        frame = _resizable(im)
        if target:
            frame = _resize(frame, target, box)
        if orientation != 1:
            frame = frame.transpose(_UPRIGHT[orientation])
        frame = frame.convert("RGBA" if _has_alpha(frame) else "RGB")
        body = _encode(
            frame, "PNG", prepared, icc=icc, params={"compress_level": THUMBNAIL_COMPRESS_LEVEL}
        )
    _write_atomic(dest, body, prepared)
    return dest


# --- the decision: strip losslessly or re-encode ---------------------------------------


def _prepare_image(
    im: ImageFile.ImageFile, data: bytes, source: Path, max_dimension: int, keep: Keep
) -> tuple[bytes, str, tuple[int, int]]:
    fmt = _format_of(im)
    size = im.size
    if fmt == "JPEG":
        orientation = _orientation(im)  # read from the header: draft() still possible
    else:
        _load(im, source)
        orientation = _orientation(im)
    target = _target_size(size, max_dimension)
    animated = fmt in _ANIMATABLE and _frame_count(im, source) > 1
    carry = (
        _Carry.read(im, keep, _shown_size(target or size, orientation)) if keep.metadata else None
    )
    stripper = _STRIPPERS.get(fmt)
    lossless_strip = stripper is not None and target is None and orientation == 1
    # Walk the container to its end even when re-encoding: a GIF cut between two frames
    # or a PNG without IEND still decodes. (Pillow notices a JPEG without EOI itself.)
    walk = stripper is not None and (lossless_strip or fmt != "JPEG")
    stripped = stripper(data, source, carry) if stripper and walk else None

    if lossless_strip and stripped is not None:
        # Prove the file is complete: libjpeg still decodes every scan at 1/8 scale.
        if fmt == "JPEG":
            _draft(im, (max(1, size[0] // 8), max(1, size[1] // 8)))
            _load(im, source)
        if animated:
            for _ in _frames(im, source):
                pass
        return stripped, fmt, size

    out_format = _output_format(fmt, im)
    lossless = fmt == "WEBP" and _webp_is_lossless(data)
    if animated and out_format == fmt:
        return _encode_animation(im, fmt, source, target, orientation, lossless, carry)
    body, out_size = _encode_still(
        im, fmt, out_format, source, target, orientation, lossless, carry
    )
    return body, out_format, out_size


def _shown_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _output_format(fmt: str, im: Image.Image) -> str:
    if fmt in ("JPEG", "PNG", "GIF", "WEBP"):
        return fmt
    if fmt == "AVIF" and "AVIF" in Image.SAVE:
        return fmt
    return "PNG" if _uses_alpha(im) else "JPEG"


def _encode_still(
    im: ImageFile.ImageFile,
    fmt: str,
    out_format: str,
    source: Path,
    target: tuple[int, int] | None,
    orientation: int,
    lossless: bool,
    carry: _Carry | None,
) -> tuple[bytes, tuple[int, int]]:
    params: dict[str, Any] = {"lossless": lossless}
    box = None
    if fmt == "JPEG":
        # Keep the source's chroma subsampling ("keep" itself only works on the unmodified
        # source image); the numbers are Pillow's: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0.
        sampling = JpegImagePlugin.get_sampling(im)
        params["subsampling"] = 2 if sampling == -1 else sampling
        if target:
            box = _draft(im, target)
        _load(im, source)
    elif fmt in ("HEIF", "AVIF"):
        params["subsampling"] = 2  # already 4:2:0 at the source
    else:
        params["subsampling"] = 0  # lossless sources: don't blur coloured edges and text
    icc = im.info.get("icc_profile")
    frame = _resizable(im) if target else im
    if target:
        frame = _resize(frame, target, box)
    if orientation != 1:
        frame = frame.transpose(_UPRIGHT[orientation])
    frame = _output_mode(frame, out_format)
    return _encode(frame, out_format, source, icc=icc, params=params, carry=carry), frame.size


def _encode_animation(
    im: ImageFile.ImageFile,
    fmt: str,
    source: Path,
    target: tuple[int, int] | None,
    orientation: int,
    lossless: bool,
    carry: _Carry | None,
) -> tuple[bytes, str, tuple[int, int]]:
    icc = im.info.get("icc_profile")
    loop = im.info.get("loop")
    out_size = _shown_size(target or im.size, orientation)
    limit = Image.MAX_IMAGE_PIXELS
    count = _frame_count(im, source)
    if limit is not None and count * out_size[0] * out_size[1] > 2 * limit:
        raise BadImage(
            f"{source.name} is an animation of {count} frames of {out_size[0]}x"
            f"{out_size[1]} pixels: too big for fadelink to re-encode in memory. Shorten or "
            "shrink it in an image editor, or share it with a smaller maximum size."
        )
    frames: list[Image.Image] = []
    durations: list[float] = []
    for frame in _frames(im, source):
        durations.append(frame.info.get("duration", 0))
        frame = frame.convert("RGBA" if _has_alpha(frame) else "RGB")
        if target:
            frame = _resize(frame, target)
        if orientation != 1:
            frame = frame.transpose(_UPRIGHT[orientation])
        frames.append(frame)
    if any(f.mode == "RGBA" for f in frames):
        frames = [f.convert("RGBA") for f in frames]
    params: dict[str, Any] = {
        "save_all": True,
        "append_images": frames[1:],
        "duration": durations,
        "lossless": lossless,
    }
    if loop is not None:
        params["loop"] = loop
    if fmt == "GIF" and frames[0].mode == "RGBA":
        # Frames are whole composited canvases: clear each before drawing the next, or
        # pixels turning transparent would keep showing the previous frame.
        params["disposal"] = 2
    body = _encode(frames[0], fmt, source, icc=icc, params=params, carry=carry)
    return body, fmt, frames[0].size


def _encode(
    frame: Image.Image,
    fmt: str,
    source: Path,
    *,
    icc: bytes | None,
    params: dict[str, Any],
    carry: _Carry | None = None,
) -> bytes:
    """Encode with only what we pass: Pillow would copy comments and more from frame.info."""
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        options = {
            "quality": JPEG_QUALITY,
            "optimize": False,  # Huffman optimisation costs ~30% more time for ~5% bytes
            "subsampling": params.get("subsampling", 2),
        }
    elif fmt == "PNG":
        options = {"compress_level": params.get("compress_level", PNG_COMPRESS_LEVEL)}
    elif fmt == "WEBP":
        if params.get("lossless"):
            options = {"lossless": True, "method": 0}
        else:
            options = {"quality": WEBP_QUALITY, "method": 2}
    elif fmt == "AVIF":
        options = {"quality": AVIF_QUALITY, "speed": 8}
    for key in ("save_all", "append_images", "duration", "loop", "disposal"):
        if key in params:
            options[key] = params[key]
    if fmt in ("PNG", "GIF") and "transparency" in frame.info and frame.mode in ("P", "L", "RGB"):
        options["transparency"] = frame.info["transparency"]
    if icc and _icc_matches(icc, frame.mode):
        options["icc_profile"] = icc
    if carry is not None:
        options.update(carry.save_options(fmt))
    for f in [frame, *options.get("append_images", ())]:
        f.info = {}
    buf = io.BytesIO()
    try:
        frame.save(buf, fmt, **options)
    except (OSError, ValueError) as err:
        raise BadImage(
            f"{source.name} could not be encoded as {fmt} ({err}). Convert it to JPEG or "
            "PNG in an image editor and share that instead."
        ) from err
    return buf.getvalue()


# --- metadata kept with FADELINK_KEEP_METADATA -----------------------------------------

# IFD0 tags that describe the photo; the rest of IFD0 describes how the source stored its
# pixels (strips, compression, orientation, thumbnail pointers) and must not be carried.
_EXIF_IFD0_KEPT = frozenset(
    {
        0x010E, 0x010F, 0x0110, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x013C,
        0x0213, 0x4746, 0x4749, 0x8298, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F,
    }
)  # fmt: skip
# From the Exif IFD: the maker note (a vendor blob with offsets into the original file,
# which a rewrite breaks) and the interoperability pointer go; the pixel size is rewritten.
_EXIF_MAKER_NOTE, _EXIF_INTEROP, _EXIF_WIDTH, _EXIF_HEIGHT = 0x927C, 0xA005, 0xA002, 0xA003
# XMP properties that describe the stored pixels, not the photo: after a rotation or a
# crop they are wrong (a stale tiff:Orientation turns the photo in some viewers) and a
# thumbnail shows the uncropped original.
_XMP_PIXELS = (
    "Orientation", "ImageWidth", "ImageLength", "PixelXDimension", "PixelYDimension",
    "Thumbnails", "NativeDigest",
)  # fmt: skip
# Location: GPS properties and place names (XMP copies of the IPTC location fields).
_XMP_LOCATION = (
    "GPS[A-Za-z]*", "City", "State", "Country", "CountryCode", "CountryName",
    "ProvinceState", "Sublocation", "WorldRegion", "Location", "LocationCreated",
    "LocationShown",
)  # fmt: skip
_MAX_SEGMENT = 65_000  # an EXIF or XMP block must fit one JPEG APP1 segment (64 KiB)
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_PNG_KEY = "XML:com.adobe.xmp"


@dataclass(frozen=True)
class _Carry:
    """The metadata a copy keeps with Keep(metadata=True), already cleaned for the copy."""

    exif: bytes | None = None  # b"Exif\0\0" + a TIFF structure, as Pillow writes it
    xmp: bytes | None = None
    comment: bytes | None = None  # a JPEG or GIF comment
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks

    @classmethod
    def read(cls, im: Image.Image, keep: Keep, size: tuple[int, int]) -> _Carry:
        """From the opened source; size is the copy's (for the EXIF pixel size)."""
        xmp = im.info.get("xmp") or im.info.get(_XMP_PNG_KEY)
        comment = im.info.get("comment")
        text = getattr(im, "text", None) or {}
        return cls(
            exif=_clean_exif(im, keep.location, size),
            xmp=_clean_xmp(xmp, keep.location) if xmp else None,
            comment=comment if isinstance(comment, bytes) and comment else None,
            text={k: v for k, v in text.items() if isinstance(v, str) and _png_text_kept(k)},
        )

    def save_options(self, fmt: str) -> dict[str, Any]:
        """Pillow save() options writing this metadata in fmt."""
        options: dict[str, Any] = {}
        if fmt in ("JPEG", "WEBP", "AVIF", "PNG") and self.exif:
            options["exif"] = self.exif
        if fmt in ("JPEG", "WEBP", "AVIF") and self.xmp:
            options["xmp"] = self.xmp
        if fmt in ("JPEG", "GIF") and self.comment:
            options["comment"] = self.comment
        if fmt == "PNG" and (self.text or self.xmp):
            info = PngImagePlugin.PngInfo()
            for key, value in self.text.items():
                info.add_itxt(key, value)
            if self.xmp:
                info.add_itxt(_XMP_PNG_KEY, self.xmp.decode())
            options["pnginfo"] = info
        return options


def _png_text_kept(key: str) -> bool:
    # XMP is cleaned separately; ImageMagick's "Raw profile type exif/xmp/iptc" are hex
    # copies of whole EXIF or XMP blocks, GPS included.
    return key != _XMP_PNG_KEY and not key.lower().startswith("raw profile type")


def _clean_exif(im: Image.Image, keep_location: bool, size: tuple[int, int]) -> bytes | None:
    """A new EXIF block with only the descriptive tags of the source's (GPS if asked)."""
    try:
        source = im.getexif()
        if not len(source):
            return None
        kept = Image.Exif()
        for tag, value in source.items():
            if tag in _EXIF_IFD0_KEPT:
                kept[tag] = value
        details = source.get_ifd(ExifTags.IFD.Exif)
        details = {t: v for t, v in details.items() if t not in (_EXIF_MAKER_NOTE, _EXIF_INTEROP)}
        if details:
            details[_EXIF_WIDTH], details[_EXIF_HEIGHT] = size
            kept[ExifTags.IFD.Exif] = details
        gps = source.get_ifd(ExifTags.IFD.GPSInfo) if keep_location else None
        if gps:
            kept[ExifTags.IFD.GPSInfo] = dict(gps)
        body = kept.tobytes() if len(kept) else None
    except Exception as err:  # broken EXIF is dropped, never a reason to fail the share
        log.debug("EXIF not kept, it does not parse: %s", err)
        return None
    return body if body and len(body) <= _MAX_SEGMENT else None


def _clean_xmp(xmp: bytes | str, keep_location: bool) -> bytes | None:
    """The XMP packet without pixel-describing properties (and location, unless kept).

    Properties are removed in both XMP spellings (attribute and element); the result is
    then parsed, and if any unwanted property is still there in some other spelling, or
    the packet does not parse, it is dropped whole: this fails closed.
    """
    names = "(?:" + "|".join(_XMP_PIXELS + (() if keep_location else _XMP_LOCATION)) + ")"
    try:
        text = xmp.decode("utf-8") if isinstance(xmp, bytes) else xmp
    except UnicodeDecodeError:
        return None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None  # XMP never needs them; entity expansion is a known XML attack
    prefixed = rf"[A-Za-z_][\w.-]*:{names}"
    text = re.sub(rf"\s{prefixed}\s*=\s*(?:\"[^\"]*\"|'[^']*')", "", text)
    text = re.sub(rf"<({prefixed})(?:\s[^<>]*?)?(?:/>|>.*?</\1\s*>)", "", text, flags=re.S)
    try:
        root = ElementTree.fromstring(text.strip("\x00 \t\r\n"))
    except ElementTree.ParseError:
        return None
    unwanted = re.compile(names)

    def local(name: str) -> str:
        return name.rpartition("}")[2]

    for element in root.iter():
        if unwanted.fullmatch(local(str(element.tag))) or any(
            unwanted.fullmatch(local(a)) for a in element.attrib
        ):
            return None
    body = text.encode("utf-8")
    return body if len(body) <= _MAX_SEGMENT else None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- pixels ------------------------------------------------------------------------------


def _target_size(size: tuple[int, int], max_dimension: int) -> tuple[int, int] | None:
    """Size with the longest side exactly max_dimension, or None when no shrink is needed.

    The longest side is the same before and after a 90-degree turn, so this can be applied
    to the stored (not yet rotated) image.
    """
    w, h = size
    if max_dimension <= 0 or max(w, h) <= max_dimension:
        return None
    if w >= h:
        return max_dimension, max(1, round(h * max_dimension / w))
    return max(1, round(w * max_dimension / h)), max_dimension


def _draft(im: ImageFile.ImageFile, size: tuple[int, int]) -> tuple[float, ...] | None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that is still >= size.

    Returns the source box to resize from (the reduced image rounds its size up).
    """
    result = im.draft(None, size)
    return tuple(result[1]) if result else None


def _resizable(im: Image.Image) -> Image.Image:
    """Palette and 1-bit images only resize with NEAREST in Pillow: widen them first."""
    if im.mode in ("P", "PA") or (_has_alpha(im) and im.mode not in _ALPHA_MODES):
        return im.convert("RGBA" if _has_alpha(im) else "RGB")
    if im.mode == "1":
        return im.convert("L")
    return im


def _resize(
    im: Image.Image, size: tuple[int, int], box: tuple[float, ...] | None = None
) -> Image.Image:
    """Shrink (Hamming filter), split into horizontal bands resized in parallel.

    Pillow releases the GIL while resampling and a band resized with a source `box` reads
    the rows around it, so the bands join without seams (differences <= 2/255 from
    rounding); on 2 cores a 12 MP -> 5 MP shrink drops from ~105 to ~65 ms.
    """
    mode = im.mode
    # Resample colour weighted by alpha, or transparent pixels bleed their colour.
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(mode)
    if premultiplied:
        im = im.convert(premultiplied)
    x0, y0, x1, y1 = box or (0, 0, *im.size)
    factor = int(min((x1 - x0) / size[0], (y1 - y0) / size[1]) / 2)
    if factor > 1 and not im.mode.startswith("I;16"):
        # A cheap box-filter reduction first, leaving bicubic at most ~2x to go.
        im = im.reduce(factor)
        x0, y0, x1, y1 = x0 / factor, y0 / factor, x1 / factor, y1 / factor
    bands = min(os.cpu_count() or 1, 4) if im.width * im.height >= 2_000_000 else 1
    if bands == 1:
        out = im.resize(size, _RESAMPLE, (x0, y0, x1, y1))
    else:
        scale = (y1 - y0) / size[1]
        cuts = [size[1] * i // bands for i in range(bands + 1)]

        def band(i: int) -> Image.Image:
            top, bottom = cuts[i], cuts[i + 1]
            band_box = (x0, y0 + top * scale, x1, y0 + bottom * scale)
            return im.resize((size[0], bottom - top), _RESAMPLE, band_box)

        with ThreadPoolExecutor(bands) as pool:
            parts = list(pool.map(band, range(bands)))
        out = Image.new(im.mode, size, None)  # None: every pixel is pasted over
        for top, part in zip(cuts, parts, strict=False):
            out.paste(part, (0, top))
    return out.convert(mode) if premultiplied else out


def _output_mode(im: Image.Image, fmt: str) -> Image.Image:
    if im.mode.startswith("I;16") and fmt != "PNG":
        # Pillow clips 16-bit values when converting to 8 bits: scale them down instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if fmt == "JPEG":
        if im.mode in ("L", "RGB", "CMYK"):
            return im
        return im.convert("L" if im.mode in ("1", "I", "F") else "RGB")
    if fmt == "PNG":
        if im.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "I;16B"):
            return im
        return im.convert("RGBA" if _has_alpha(im) else "RGB")
    if fmt in ("WEBP", "AVIF"):
        if im.mode in ("RGB", "RGBA"):
            return im
        return im.convert("RGBA" if _has_alpha(im) else "RGB")
    return im


def _has_alpha(im: Image.Image) -> bool:
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return True
    return im.mode == "P" and im.palette is not None and im.palette.mode == "RGBA"


def _uses_alpha(im: Image.Image) -> bool:
    """Transparency that shows: an all-opaque alpha channel (TIFF exports) does not count."""
    if im.mode in ("RGBA", "LA", "PA"):
        return im.getchannel("A").getextrema()[0] < 255
    return _has_alpha(im)


def _icc_matches(icc: bytes, mode: str) -> bool:
    """An ICC profile describes one colour space: don't attach a CMYK profile to RGB."""
    space = icc[16:20]
    if mode in ("1", "L", "LA", "La", "F") or mode.startswith("I"):
        return space == b"GRAY"
    if mode == "CMYK":
        return space == b"CMYK"
    return space == b"RGB "


def _orientation(im: Image.Image) -> int:
    """EXIF (or XMP) orientation 1-8; anything unreadable or out of range counts as 1."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as err:  # broken EXIF must not stop the share
        log.debug("unreadable EXIF, assuming upright: %s", err)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _webp_is_lossless(data: bytes) -> bool:
    """Only VP8L (lossless) bitstreams, in the file or in any animation frame."""
    kinds: set[bytes] = set()
    spans = [(12, len(data))]
    while spans:
        pos, end = spans.pop()
        while pos + 8 <= end:
            kind = data[pos : pos + 4]
            size = int.from_bytes(data[pos + 4 : pos + 8], "little")
            kinds.add(kind)
            if kind == b"ANMF":  # 16 bytes of frame header, then the frame's own chunks
                spans.append((pos + 24, min(end, pos + 8 + size)))
            pos += 8 + size + (size & 1)
    return b"VP8L" in kinds and b"VP8 " not in kinds


def _format_of(im: Image.Image) -> str:
    # Phones write multi-picture JPEGs (MPF); Pillow calls them MPO. Only the first
    # picture is shared, so to everyone else they are JPEG.
    return "JPEG" if im.format == "MPO" else (im.format or "")


# --- reading and decoding with errors a person can act on -------------------------------


def _open_no_follow(source: Path) -> int:
    return os.open(source, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)


def _open_source(source: Path) -> int:
    """Open for reading without following a symlink; errors a person can act on."""
    name = source.name
    try:
        return _open_no_follow(source)
    except FileNotFoundError as err:
        raise NotAnImage(f"{name} is gone: it was moved or deleted before it was read.") from err
    except PermissionError as err:
        raise BadImage(
            f"fadelink may not read {name} (permission denied). Make it readable by your "
            "user and save it again."
        ) from err
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK) or source.is_symlink():
            raise BadImage(
                f"{name} is a symbolic link, and fadelink never follows links. Copy or save "
                "the photo itself into the folder."
            ) from err
        raise IncompleteImage(f"{name} could not be opened ({err.strerror}).") from err


def _read_chunk(f: io.BufferedReader, source: Path) -> bytes:
    try:
        return f.read(1 << 20)
    except OSError as err:
        raise IncompleteImage(f"{source.name} could not be read ({err.strerror}).") from err


def _read_source(source: Path) -> bytes:
    name = source.name
    fd = _open_source(source)
    with os.fdopen(fd, "rb") as f:
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise NotAnImage(f"{name} is not a regular file; only photo files are shared.")
            if st.st_size > MAX_SOURCE_BYTES:
                raise _too_big(name, st.st_size)
            data = f.read(MAX_SOURCE_BYTES + 1)
        except OSError as err:
            raise IncompleteImage(f"{name} could not be read ({err.strerror}).") from err
    if len(data) > MAX_SOURCE_BYTES:  # it grew while being read
        raise _too_big(name, len(data))
    if not data:
        raise IncompleteImage(f"{name} is empty: it is probably still being written.")
    return data


def _too_big(name: str, size: int) -> BadImage:
    return BadImage(
        f"{name} is {size / 2**20:,.0f} MiB, more than the {MAX_SOURCE_BYTES / 2**20:,.0f} MiB "
        "fadelink reads. Export a smaller copy (JPEG, or fewer pixels) and share that."
    )


@contextlib.contextmanager
def _decoding(source: Path) -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning into BadImage for this call only.

    The filter is set inside catch_warnings, so it is restored on exit. Pillow's other
    warnings about the file (corrupt EXIF...) are logged, not printed.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            match = re.search(r"\((\d+) pixels\)", str(err))
            pixels = int(match[1]) if match else None
            raise BadImage(_bomb_message(source, pixels)) from err
        finally:
            for warning in caught:
                log.debug("%s: %s", source.name, warning.message)


def _bomb_message(source: Path, pixels: int | None) -> str:
    claimed = f"{pixels:,} pixels" if pixels else "too many pixels"
    return (
        f"{source.name} claims {claimed}, more than fadelink's limit of "
        f"{Image.MAX_IMAGE_PIXELS or 0:,}: it could be a decompression bomb. If it is a real "
        "photo, shrink it in an image editor before sharing it."
    )


@contextlib.contextmanager
def _open_image(data: bytes, source: Path) -> Iterator[ImageFile.ImageFile]:
    try:
        im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception as err:  # plugins raise all sorts on broken headers
        fmt = _magic_format(data)
        if fmt is None:
            raise NotAnImage(
                f"{source.name} is not an image fadelink can read; it was left alone."
            ) from err
        detail = "its header is cut short" if isinstance(err, UnidentifiedImageError) else err
        raise _incomplete(source, fmt, detail) from err
    with im:
        # Pillow only warns between 1x and 2x its pixel limit; the warning filter could be
        # lost to another thread's catch_warnings, so check the size explicitly too.
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and im.width * im.height > limit:
            raise BadImage(_bomb_message(source, im.width * im.height))
        yield im


def _load(im: Image.Image, source: Path) -> None:
    """Decode fully; any failure means the file is cut short or damaged.

    This must be the first load(): after a failed one, Pillow treats the image as loaded.
    """
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
        raise
    except Exception as err:  # decoders raise OSError, SyntaxError, ValueError...
        raise _incomplete(source, _format_of(im), err) from err


def _frame_count(im: ImageFile.ImageFile, source: Path) -> int:
    try:
        return getattr(im, "n_frames", 1)  # GIF counts by walking every frame header
    except Exception as err:  # EOFError, OSError, SyntaxError on broken frame headers
        raise _incomplete(source, _format_of(im), err) from err


def _frames(im: ImageFile.ImageFile, source: Path) -> Iterator[Image.Image]:
    """Every frame of an animation, decoded (the same object, seeked)."""
    for index in range(_frame_count(im, source)):
        try:
            im.seek(index)
        except Exception as err:  # EOFError, OSError, ValueError on bad frames
            raise _incomplete(source, _format_of(im), err) from err
        _load(im, source)
        yield im


def _incomplete(source: Path, fmt: str, detail: object) -> IncompleteImage:
    kind = f" ({fmt})" if fmt else ""
    return IncompleteImage(
        f"{source.name}{kind} is cut short or damaged: {detail}. If it is still being "
        "written it will be retried; otherwise save, export or download it again."
    )


def _magic_format(data: bytes) -> str | None:
    """The format a file's first bytes announce, even if they are all that was written."""
    magics = [
        (b"\xff\xd8\xff", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
    ]
    for magic, fmt in magics:
        if data.startswith(magic) or (len(data) >= 2 and magic.startswith(data)):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
    return None


def _write_atomic(dest: Path, body: bytes, source: Path, *, unique: bool = False) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise _write_error(source, dest, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            # Without it a crash can leave an empty file under the final name (ext4
            # may commit the rename before the data).
            os.fsync(f.fileno())
        return _place(Path(tmp), dest, unique)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _write_error(source, dest, err) from err
        raise


def _place(tmp: Path, dest: Path, unique: bool) -> Path:
    """Give the finished temporary file its name: dest, or with unique the first free one
    of dest, dest-2, dest-3... (a hard link fails on an existing name: no race, no clobber)."""
    if not unique:
        os.replace(tmp, dest)
        return dest
    stem, ext = dest.stem, dest.suffix
    for n in range(1, 10_000):
        candidate = dest if n == 1 else dest.with_name(f"{stem}-{n}{ext}")
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        os.unlink(tmp)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(dest))


def _write_error(source: Path, dest: Path, err: OSError) -> TransientError:
    return TransientError(
        f"could not write the shared copy of {source.name} to {dest.parent}: "
        f"{err.strerror or err}. Free some disk space or check that folder's permissions."
    )


# --- lossless container stripping --------------------------------------------------------
# Each stripper returns the file without metadata (with carry: with that metadata instead),
# None when the structure is unusual (the caller re-encodes instead), or raises
# IncompleteImage when the data ends too early.


class _CutShort(Exception):
    pass


def _strip_jpeg(data: bytes, source: Path, carry: _Carry | None) -> bytes | None:
    """Keep APP0 JFIF (without its thumbnail), APP2 ICC_PROFILE, APP14 Adobe and all
    non-APP segments; drop other APPn (EXIF, XMP, IPTC, MPF...), COM, and anything after
    EOI (second MPF pictures, motion-photo videos). Entropy-coded data is copied as is.
    With carry, COM stays and carry's EXIF and XMP go in as APP1 segments. (IPTC, in
    Photoshop's APP13, never stays: it mixes place names with Photoshop's own thumbnail.)
    """
    try:
        out = _walk_jpeg(data, keep_comments=carry is not None)
    except _CutShort as err:
        raise _incomplete(source, "JPEG", "it has no end-of-image marker") from err
    if out is None or carry is None:
        return out
    segments = b""
    for header, block in ((b"", carry.exif), (_XMP_JPEG_HEADER, carry.xmp)):
        if block:
            segments += b"\xff\xe1" + (2 + len(header) + len(block)).to_bytes(2, "big")
            segments += header + block
    # Right after SOI, or after the JFIF segment, which must come first when present.
    at = 2 + (int.from_bytes(out[4:6], "big") + 2 if out[2:4] == b"\xff\xe0" else 0)
    return out[:at] + segments + out[at:]


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at pos ends: the next 0xFF that is not a
    stuffed 0xFF00 or a restart marker (memchr-speed find; ~1 0xFF per 256 bytes)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise _CutShort
        following = data[pos + 1]
        if following != 0 and not 0xD0 <= following <= 0xD7:
            return pos  # a marker, maybe after 0xFF fill bytes
        pos += 2


def _walk_jpeg(data: bytes, *, keep_comments: bool = False) -> bytes | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    out = [b"\xff\xd8"]
    pos, n = 2, len(data)
    while True:
        if pos >= n:
            raise _CutShort
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise _CutShort
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            out.append(b"\xff\xd9")
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > n:
            raise _CutShort
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return None
        end = pos + length
        if end > n:
            raise _CutShort
        payload = data[pos + 2 : end]
        if marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            if len(payload) < 14:
                return None
            # JFIF may carry a thumbnail, which would show a crop's original: drop it.
            out.append(b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00")
        elif (
            (marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"))
            or (marker == 0xEE and payload.startswith(b"Adobe"))
            or (marker == 0xFE and keep_comments)
            or not (0xE0 <= marker <= 0xEF or marker == 0xFE)
        ):
            out.append(b"\xff" + bytes((marker,)) + data[pos:end])
        pos = end
        if marker == 0xDA:  # SOS: entropy-coded data runs to the next real marker
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Critical chunks, colour and transparency information, and APNG animation: the rest
# (tEXt, zTXt, iTXt, eXIf, tIME and private chunks) is metadata.
_PNG_KEEP = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
        b"sBIT", b"bKGD", b"pHYs", b"cICP", b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT",
    }
)  # fmt: skip


_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})


def _strip_png(data: bytes, source: Path, carry: _Carry | None) -> bytes | None:
    """With carry, text chunks (but XMP and raw profiles) and tIME stay, and carry's EXIF
    and XMP go in as eXIf and iTXt chunks before the image data."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    out = [_PNG_SIGNATURE]
    extra = []
    if carry is not None and carry.exif:
        extra.append(_png_chunk(b"eXIf", carry.exif.removeprefix(b"Exif\x00\x00")))
    if carry is not None and carry.xmp:
        extra.append(
            _png_chunk(b"iTXt", _XMP_PNG_KEY.encode() + b"\x00\x00\x00\x00\x00" + carry.xmp)
        )
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 12 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            break
        if kind == b"IDAT" and extra:
            out.extend(extra)
            extra = []
        if kind in _PNG_KEEP or (carry is not None and _png_chunk_kept(kind, data, pos)):
            out.append(data[pos:end])
        elif not kind[0] & 0x20:  # an unknown critical chunk: don't guess, re-encode
            return None
        if kind == b"IEND":
            return b"".join(out)
        pos = end
    raise _incomplete(source, "PNG", "it has no end chunk (IEND)")


def _png_chunk_kept(kind: bytes, data: bytes, pos: int) -> bool:
    """With KEEP_METADATA: tIME, and text chunks but XMP and raw profiles (see _Carry)."""
    if kind == b"tIME":
        return True
    if kind not in _PNG_TEXT:
        return False
    length = int.from_bytes(data[pos : pos + 4], "big")
    key = data[pos + 8 : pos + 8 + length].split(b"\x00", 1)[0].decode("latin-1")
    return _png_text_kept(key)


def _strip_gif(data: bytes, source: Path, carry: _Carry | None) -> bytes | None:
    """Keep image data, graphic-control and plain-text extensions, the looping (NETSCAPE
    and ANIMEXTS) and ICC application extensions; drop comments (kept with carry) and
    other extensions (XMP).
    """
    try:
        return _walk_gif(data, keep_comments=carry is not None)
    except (_CutShort, IndexError) as err:
        raise _incomplete(source, "GIF", "it has no end marker") from err


_GIF_KEEP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _walk_gif(data: bytes, *, keep_comments: bool = False) -> bytes | None:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return None
    pos = 13
    if data[10] & 0x80:  # global colour table
        pos += 3 << ((data[10] & 7) + 1)
    out = [data[:pos]]

    def sub_blocks(start: int) -> int:
        while True:
            size = data[start]
            start += 1 + size
            if size == 0:
                return start

    while True:
        if pos >= len(data):
            raise _CutShort
        kind = data[pos]
        if kind == 0x3B:  # trailer
            out.append(b";")
            return b"".join(out)
        if kind == 0x2C:  # image descriptor, optional local colour table, LZW data
            start = pos
            pos += 10
            if data[pos - 1] & 0x80:
                pos += 3 << ((data[pos - 1] & 7) + 1)
            pos = sub_blocks(pos + 1)
            out.append(data[start:pos])
        elif kind == 0x21:  # extension
            label = data[pos + 1]
            end = sub_blocks(pos + 2)
            if end > len(data):
                raise _CutShort
            app = data[pos + 3 : pos + 3 + 11] if data[pos + 2] == 11 else b""
            if (
                label in (0xF9, 0x01)
                or (label == 0xFF and app in _GIF_KEEP_APPS)
                or (label == 0xFE and keep_comments)
            ):
                out.append(data[pos:end])
            pos = end
        else:
            return None
        if pos > len(data):
            raise _CutShort


_WEBP_KEEP = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})


def _strip_webp(data: bytes, source: Path, carry: _Carry | None) -> bytes | None:
    """Drop EXIF, XMP and unknown chunks, and clear their flags in the VP8X header. With
    carry, its EXIF and XMP go in at the end (where the WebP spec puts them), flagged."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data):
        raise _incomplete(source, "WebP", "shorter than its RIFF header says")
    out = []
    extra = []
    flags_kept = 0
    has_vp8x = data[12:16] == b"VP8X"
    for kind, block, flag in (
        (b"EXIF", carry and carry.exif, 0x08),
        (b"XMP ", carry and carry.xmp, 0x04),
    ):
        if block and has_vp8x:  # without VP8X (simple format) there is no place for them
            block = block.removeprefix(b"Exif\x00\x00")
            extra.append(
                kind + len(block).to_bytes(4, "little") + block + b"\x00" * (len(block) & 1)
            )
            flags_kept |= flag
    pos = 12
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > end:
            name = kind.decode("latin-1").strip()
            raise _incomplete(source, "WebP", f"its {name} chunk is cut short")
        chunk = data[pos : pos + 8 + size] + (b"\x00" if size & 1 else b"")  # RIFF pads to even
        if kind == b"VP8X":
            flags = chunk[8] & ~(0x08 | 0x04) | flags_kept  # "has EXIF", "has XMP"
            out.append(chunk[:8] + bytes((flags,)) + chunk[9:])
        elif kind in _WEBP_KEEP:
            out.append(chunk)
        pos += 8 + size + (size & 1)
    body = b"".join(out + extra)
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


_STRIPPERS = {"JPEG": _strip_jpeg, "PNG": _strip_png, "GIF": _strip_gif, "WEBP": _strip_webp}
