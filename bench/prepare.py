"""Per-photo preparation time, next to a naive Pillow baseline measured in the same run.

    /tmp/v/bin/python bench/prepare.py [--repeat 9]

Ours is daemon.prepare.prepare (metadata stripped, upright, bounded, written atomically).
The naive baseline is what the obvious code does: Image.open → ImageOps.exif_transpose →
thumbnail (when the photo exceeds the bound) → save (JPEG at our quality, PNG at Pillow's
defaults), written to a file and fsynced like ours. Each case runs both, interleaved, and
reports medians. Uses ../shared/testdata/photos when present, synthetic stand-ins otherwise.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from bench.saving import screenshot  # noqa: E402
from daemon import prepare  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
PHONE = PHOTOS / "jpg_mobile_jolla.jpg"  # 3264x2448, 8 MP
HEIF = PHOTOS / "heic_samplefilehub.heif"  # 640x426


@dataclass
class Case:
    label: str
    source: Path
    max_dimension: int


def phone_photo(path: Path) -> Path:
    """The real 8 MP phone photo, or a synthetic one of the same size (smooth + grain)."""
    if PHONE.is_file():
        path.write_bytes(PHONE.read_bytes())
        return path
    base = Image.linear_gradient("L").resize((3264, 2448)).convert("RGB")
    grain = Image.effect_noise((3264, 2448), 24).convert("RGB")
    Image.blend(base, grain, 0.3).save(path, quality=92)
    return path


def portrait(source: Path, path: Path) -> Path:
    """The same photo stored sideways and tagged orientation 6, as phones save portraits."""
    with Image.open(source) as im:
        exif = Image.Exif()
        exif[0x0112] = 6
        im.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif)
    return path


def heif_12mp(source: Path, path: Path) -> Path:
    """A 12 MP HEIC, as an iPhone writes (made from the phone photo)."""
    with Image.open(source) as im:
        im.resize((4032, 3024), Image.Resampling.BICUBIC).save(path, "HEIF", quality=85)
    return path


def shared_heif(path: Path) -> Path:
    if HEIF.is_file():
        path.write_bytes(HEIF.read_bytes())
    else:
        Image.effect_noise((640, 426), 40).convert("RGB").save(path, "HEIF", quality=85)
    return path


def ours(case: Case, out: Path) -> Path:
    return prepare.prepare(case.source, out, "ours", max_dimension=case.max_dimension).path


def naive(case: Case, out: Path) -> Path:
    with Image.open(case.source) as opened:
        im = ImageOps.exif_transpose(opened)
        bound = case.max_dimension
        if bound and max(im.size) > bound:
            im.thumbnail((bound, bound))
        fmt = "PNG" if opened.format == "PNG" else "JPEG"
        buf = io.BytesIO()
        if fmt == "JPEG":
            im.convert("RGB").save(buf, "JPEG", quality=prepare.JPEG_QUALITY)
        else:
            im.save(buf, "PNG")
    path = out / ("naive.png" if fmt == "PNG" else "naive.jpg")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    return path


def timed(fn: Callable[[Case, Path], Path], case: Case, out: Path) -> float:
    t0 = time.perf_counter()
    fn(case, out)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9, help="runs of each case (median reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fl-bench-prepare-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        phone = phone_photo(work / "phone.jpg")
        shot = screenshot(work / "shot.png", (3840, 2160), seed=4)
        cases = [
            Case("phone JPEG 8 MP -> 2560 (resize)", phone, 2560),
            Case("phone JPEG 8 MP -> 1600 (draft 1/2)", phone, 1600),
            Case("phone JPEG 8 MP, orientation 6 -> 2560", portrait(phone, work / "p6.jpg"), 2560),
            Case("phone JPEG 8 MP, strip only (4000)", phone, 4000),
            Case("4K PNG screenshot -> 2560 (resize)", shot, 2560),
            Case("4K PNG screenshot, strip only (0)", shot, 0),
            Case("HEIF 640x426 -> JPEG", shared_heif(work / "small.heif"), 2560),
            Case("HEIC 12 MP -> JPEG 2560", heif_12mp(phone, work / "big.heic"), 2560),
        ]
        source = "../shared/testdata/photos" if PHONE.is_file() else "synthetic stand-ins"
        print(f"per-photo preparation, median of {args.repeat} interleaved runs (ms); {source}")
        print(f"{'case':<42}{'ours':>8}{'naive':>8}{'naive/ours':>12}{'ours KiB':>10}")
        for case in cases:
            timed(ours, case, out), timed(naive, case, out)  # warm caches and imports
            mine, theirs = [], []
            for _ in range(args.repeat):
                mine.append(timed(ours, case, out))
                theirs.append(timed(naive, case, out))
            a, b = statistics.median(mine), statistics.median(theirs)
            size = next(out.glob("ours.*")).stat().st_size / 1024
            print(f"{case.label:<42}{a:>8.1f}{b:>8.1f}{b / a:>11.1f}x{size:>10.0f}")
            for leftover in out.iterdir():
                leftover.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
