"""Business license check: time and peak Python memory of
``license_image_clean`` on the largest accepted files and on refused ones.

Run: ``.venv/bin/python -m benchmarks license`` (no database needed).
"""
from __future__ import annotations

import io
import os
import time
import tracemalloc


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
