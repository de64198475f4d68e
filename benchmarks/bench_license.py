"""Business license check: time and peak Python memory of
``license_image_clean`` on the largest accepted files and on refused ones.

Run: ``.venv/bin/python -m benchmarks license`` (no database needed).

The second table is the memory one: each file is checked in a fresh
process and the process's resident memory is read before the call
(``VmRSS``) and its peak after it (``VmHWM``, which counts Pillow's pixel
buffers that tracemalloc does not see).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path


def _noise_jpeg(target: int) -> bytes:
    """A photo-like (incompressible) JPEG just under ``target`` bytes."""
    from PIL import Image

    side = 400
    best = b""
    while True:
        out = io.BytesIO()
        Image.frombytes("RGB", (side, int(side * 0.75)), os.urandom(side * int(side * 0.75) * 3)).save(
            out, format="JPEG", quality=90)
        if out.tell() > target:
            return best
        best, side = out.getvalue(), side + 100


def _noise_png(target: int) -> bytes:
    from PIL import Image

    side = 200
    best = b""
    while True:
        out = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
        if out.tell() > target:
            return best
        best, side = out.getvalue(), side + 20


def _measure(data: bytes, repeat: int = 3) -> tuple[float, float, str]:
    from django.core.exceptions import ValidationError

    from accounts.uploads import license_image_clean

    outcome = ""
    times = []
    peak = 0
    for _ in range(repeat):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            clean = license_image_clean(data=data)
            outcome = f"accepted, {clean.width}×{clean.height}"
        except ValidationError as exc:
            outcome = "refused: " + exc.messages[0][:40]
        times.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return min(times) * 1000, peak / 1_048_576, outcome


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _jpeg_rotated(size: tuple[int, int], progressive: bool = False) -> bytes:
    """A noisy-ish JPEG with EXIF orientation 6 (a portrait phone photo)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (240, 236, 228))
    draw = ImageDraw.Draw(image)
    for y in range(0, size[1], 40):
        draw.line((0, y, size[0], y), fill=(20, 20, 20), width=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70, exif=exif, progressive=progressive)
    return out.getvalue()


def _grey16(size: tuple[int, int]) -> bytes:
    """A 16-bit greyscale scan of a printed page: text lines on paper grain."""
    from PIL import Image, ImageDraw

    page = Image.effect_noise(size, 2).point(lambda v: min(255, v + 120))
    draw = ImageDraw.Draw(page)
    for y in range(150, size[1] - 150, 60):
        for x in range(150, size[0] - 400, 90):
            draw.rectangle((x, y, x + 60, y + 24), fill=30)
    out = io.BytesIO()
    page.convert("I").point(lambda v: v * 257).convert("I;16").save(out, format="PNG")
    return out.getvalue()


def _rss_cases() -> dict:
    """name → builder; built in the child process so the parent's memory
    plays no part."""
    from tests.test_license_upload import memory_bomb, png_flat

    return {
        "JPEG noise ~2 MB": lambda: _noise_jpeg(2_097_152),
        "PNG noise ~2 MB": lambda: _noise_png(2_097_152),
        "JPEG 4000×3000 rotated": lambda: _jpeg_rotated((4000, 3000)),
        "JPEG 4000×3000 progressive": lambda: _jpeg_rotated((4000, 3000), progressive=True),
        "PNG 16-bit grey scan 2000×1400": lambda: _grey16((2000, 1400)),
        "PNG 6324×6324 RGBA 155 KB": memory_bomb,
        "PNG 4000×3000 RGB flat": lambda: png_flat(4000, 3000, color_type=2),
        "PNG 6000×6000 grey flat": lambda: png_flat(6000, 6000, color_type=0),
    }


def _rss_child(name: str) -> None:
    import django

    django.setup()
    from django.core.exceptions import ValidationError
    from PIL import Image

    from accounts.uploads import license_decode_estimate, license_image_clean

    data = _rss_cases()[name]()
    with Image.open(io.BytesIO(data)) as header:
        estimate = license_decode_estimate(header, data, header.format)
    try:  # return the builder's freed memory to the system, so it is not reused unseen
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    before = _status_kb("VmRSS")
    # VmHWM is the peak since the process started; reset it (Linux ≥ 4.0).
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    try:
        clean = license_image_clean(data=data)
        outcome = f"accepted, {clean.width}×{clean.height} {clean.content_type}"
    except ValidationError as exc:
        outcome = f"refused ({exc.code}): {exc.messages[0][:60]}"
    elapsed = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    print(json.dumps({"size": len(data), "ms": elapsed * 1000, "rss_mb": (peak - before) / 1024,
                      "estimate_mb": estimate / 1_048_576, "outcome": outcome}))


def rss_table() -> None:
    print(f"\n{'file (fresh process each)':<28} {'bytes':>10} {'ms':>8} {'RSS +MB':>8} {'budget MB':>9}  outcome")
    for name in _rss_cases():
        result = subprocess.run([sys.executable, "-c", f"from benchmarks.bench_license import _rss_child; "
                                 f"_rss_child({name!r})"], capture_output=True, text=True, env=os.environ)
        if result.returncode:
            print(f"{name:<28} failed: {result.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:<28} {row['size']:>10,} {row['ms']:>8.1f} {row['rss_mb']:>8.1f} {row['estimate_mb']:>9.1f}"
              f"  {row['outcome']}")
    print("RSS +MB: peak resident memory during the check minus resident memory before it (MiB).\n"
          "budget MB: what the header-only estimate (accounts.uploads.decode_cost) charges against "
          "BILLING_LICENSE_DECODE_MAX_BYTES.")


def main() -> None:
    import django

    django.setup()
    from tests.test_license_upload import decompression_bomb, png_header_only

    jpeg = _noise_jpeg(2_097_152)
    png = _noise_png(2_097_152)
    cases = [
        (f"JPEG noise {len(jpeg):,} B", jpeg),
        (f"PNG noise {len(png):,} B", png),
        ("PNG bomb 7000×7000", decompression_bomb()),
        ("PNG header 65535×65535", png_header_only(65_535, 65_535)),
        ("truncated JPEG", jpeg[: len(jpeg) // 2]),
    ]
    print(f"{'file':<28} {'ms (best of 3)':>15} {'peak MiB':>9}  outcome")
    for label, data in cases:
        ms, mib, outcome = _measure(data)
        print(f"{label:<28} {ms:>15.1f} {mib:>9.1f}  {outcome}")
    print("peak MiB: Python allocations (tracemalloc); Pillow's pixel buffers are not counted.")
    rss_table()
