"""The business license check (billing-rules §7), without HTTP: a corpus of
bad files, each refused with a clear message, and good JPEG/PNG files
re-encoded without metadata. The HTTP tests (nothing stored, 404s, roles)
are in test_billing_info.py and reuse the builders here."""
from __future__ import annotations

import functools
import io
import struct
import zlib

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from accounts.uploads import LICENSE_MAX_BYTES, license_image_clean

# --- builders ---------------------------------------------------------------


def png_bytes(size=(320, 200), color=(30, 90, 200), mode="RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color if mode != "1" else 0).save(out, format="PNG", **save)
    return out.getvalue()


def jpeg_bytes(size=(320, 200), color=(200, 60, 30), exif: Image.Exif | None = None, **save) -> bytes:
    out = io.BytesIO()
    kwargs = dict(save)
    if exif is not None:
        kwargs["exif"] = exif
    Image.new("RGB", size, color).save(out, format="JPEG", quality=85, **kwargs)
    return out.getvalue()


def other_image(fmt: str, size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (0, 128, 0)).save(out, format=fmt)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_padded_to(total: int) -> bytes:
    """A valid PNG of exactly ``total`` bytes: a private ancillary chunk
    before IDAT pads it (and is stripped by re-encoding)."""
    base = png_bytes((40, 30))
    ihdr_end = 8 + 25
    pad = total - len(base) - 12
    assert pad >= 0
    return base[:ihdr_end] + png_chunk(b"prVt", b"\0" * pad) + base[ihdr_end:]


def png_header_only(width: int, height: int, bit_depth=8, color_type=2) -> bytes:
    """Signature, IHDR claiming ``width``×``height``, a tiny IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def png_flat(width: int, height: int, color_type: int = 6, bit_depth: int = 8) -> bytes:
    """A PNG of ``width``×``height`` zero pixels built with zlib, without
    ever holding the decoded image: 6,324 × 6,324 RGBA is 155,503 bytes on
    disk and 160 MB decoded (issue #15)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * min(64, height - y)) for y in range(0, height, 64)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts))
            + png_chunk(b"IEND", b""))


@functools.cache
def memory_bomb() -> bytes:
    """The file of issue #15: 155 KB, 6,324 × 6,324 RGBA (just under the
    40 M pixel limit), 160 MB decoded."""
    return png_flat(6324, 6324)


@functools.cache
def decompression_bomb() -> bytes:
    """7,000 × 7,000 = 49 M pixels of one colour: 2,410 bytes compressed."""
    return png_bytes((7000, 7000), mode="1", optimize=True)


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

# (case id, file name as uploaded, content, message fragment)
BAD_UPLOADS = [
    ("empty", "license.png", lambda: b"", "The file is empty"),
    ("over-2mb", "license.png", lambda: png_padded_to(LICENSE_MAX_BYTES + 1), "at most 2 MB"),
    ("truncated-png", "license.png", lambda: png_bytes((400, 300), (1, 2, 3))[:-200], "damaged or truncated"),
    ("truncated-jpeg", "license.jpg", lambda: jpeg_bytes((400, 300))[:1500], "damaged or truncated"),
    ("gif-as-png", "license.png", lambda: other_image("GIF"), "is a GIF image, not a JPEG or PNG"),
    ("gif-as-jpg", "license.jpg", lambda: other_image("GIF"), "is a GIF image, not a JPEG or PNG"),
    ("bmp-as-png", "license.png", lambda: other_image("BMP"), "is a BMP image, not a JPEG or PNG"),
    ("bmp-as-jpg", "license.jpg", lambda: other_image("BMP"), "is a BMP image, not a JPEG or PNG"),
    ("webp-as-png", "license.png", lambda: other_image("WEBP"), "is a WebP image, not a JPEG or PNG"),
    ("webp-as-jpg", "license.jpg", lambda: other_image("WEBP"), "is a WebP image, not a JPEG or PNG"),
    ("svg-as-png", "license.png", lambda: SVG, "is an SVG drawing, not a JPEG or PNG"),
    ("svg-as-jpg", "license.jpg", lambda: SVG, "is an SVG drawing, not a JPEG or PNG"),
    ("pdf-as-png", "license.png", lambda: PDF, "is a PDF document, not a JPEG or PNG"),
    ("pdf-as-jpg", "license.jpg", lambda: PDF, "is a PDF document, not a JPEG or PNG"),
    ("html-as-png", "license.png", lambda: HTML, "is an HTML page, not a JPEG or PNG"),
    ("html-as-jpg", "license.jpg", lambda: HTML, "is an HTML page, not a JPEG or PNG"),
    ("html-after-png-signature", "license.png", lambda: b"\x89PNG\r\n\x1a\n" + HTML, "damaged or truncated"),
    ("html-after-png-header", "license.png", lambda: png_bytes()[:33] + HTML, "damaged or truncated"),
    ("html-appended-to-png", "license.png", lambda: png_bytes() + HTML, "damaged or truncated"),
    ("html-after-jpeg-header", "license.jpg", lambda: jpeg_bytes()[:20] + HTML, "damaged or truncated"),
    ("decompression-bomb", "license.png", decompression_bomb, "too many pixels (7000×7000 pixels)"),
    ("pillow-bomb", "license.png", lambda: png_header_only(20_000, 10_000), "too many pixels"),
    ("absurd-width", "license.png", lambda: png_bytes((100_000, 1), mode="1"), "100000×1 pixels"),
    ("absurd-height", "license.png", lambda: png_header_only(1, 50_000), "1×50000 pixels"),
    ("huge-claimed-size", "license.png", lambda: png_header_only(65_535, 65_535), "too many pixels"),
]


# --- the corpus ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "message"), [(n, c, m) for _, n, c, m in BAD_UPLOADS],
                         ids=[case[0] for case in BAD_UPLOADS])
def test_bad_upload_is_refused_with_a_clear_message(name, content, message):
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=content())
    assert message in info.value.messages[0]


def test_decompression_bomb_is_small_on_disk():
    # The point of a bomb: a tiny file that would decode to 49 M pixels.
    assert len(decompression_bomb()) < 20_000


def test_exactly_2_mb_is_accepted_and_one_byte_more_is_not():
    exact = png_padded_to(LICENSE_MAX_BYTES)
    assert len(exact) == 2_097_152
    clean = license_image_clean(data=exact)
    assert clean.content_type == "image/png"
    assert (clean.width, clean.height) == (40, 30)
    assert b"prVt" not in clean.content  # the padding chunk is gone
    with pytest.raises(ValidationError, match="at most 2 MB"):
        license_image_clean(data=png_padded_to(LICENSE_MAX_BYTES + 1))


# --- good files ----------------------------------------------------------------


def test_valid_png_is_accepted_whatever_its_name():
    clean = license_image_clean(data=png_bytes((320, 200)))
    assert clean.content_type == "image/png"
    assert (clean.width, clean.height) == (320, 200)
    assert clean.content.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(clean.content)) as image:
        image.load()
        assert image.getpixel((10, 10)) == (30, 90, 200)


def test_valid_jpeg_is_accepted():
    clean = license_image_clean(data=jpeg_bytes((320, 200)))
    assert clean.content_type == "image/jpeg"
    assert (clean.width, clean.height) == (320, 200)
    assert clean.content.startswith(b"\xff\xd8\xff")
    assert len(clean.sha256) == 64


def test_jpeg_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Industries"  # Make
    exif[0x0131] = "LeakyEditor 1.0"  # Software
    data = jpeg_bytes(exif=exif, comment=b"secret internal note", icc_profile=b"\0" * 128)
    assert b"SpyCam Industries" in data and b"secret internal note" in data
    clean = license_image_clean(data=data)
    assert b"SpyCam" not in clean.content
    assert b"LeakyEditor" not in clean.content
    assert b"secret internal note" not in clean.content
    with Image.open(io.BytesIO(clean.content)) as image:
        assert dict(image.getexif()) == {}
        assert "icc_profile" not in image.info
        assert "comment" not in image.info


def test_png_metadata_is_stripped():
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("Author", "Jane Secret")
    meta.add_itxt("Comment", "内部资料", lang="zh")
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Industries"
    data = png_bytes(pnginfo=meta, exif=exif)
    assert b"Jane Secret" in data and b"SpyCam" in data
    clean = license_image_clean(data=data)
    for leaked in (b"Jane Secret", b"SpyCam", "内部资料".encode(), b"tEXt", b"iTXt", b"eXIf"):
        assert leaked not in clean.content
    with Image.open(io.BytesIO(clean.content)) as image:
        assert dict(image.getexif()) == {}
        assert image.text == {}


def test_exif_orientation_is_applied_before_it_is_dropped():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    clean = license_image_clean(data=jpeg_bytes((300, 100), exif=exif))
    assert (clean.width, clean.height) == (100, 300)
    with Image.open(io.BytesIO(clean.content)) as image:
        assert image.size == (100, 300)
        assert 0x0112 not in image.getexif()


def test_palette_png_with_transparency_keeps_it():
    image = Image.new("P", (50, 50), 0)
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=0)
    clean = license_image_clean(data=out.getvalue())
    with Image.open(io.BytesIO(clean.content)) as result:
        assert result.mode == "P"
        assert result.info.get("transparency") == 0


def test_cmyk_jpeg_is_stored_as_rgb():
    out = io.BytesIO()
    Image.new("CMYK", (60, 40), (0, 255, 255, 0)).save(out, format="JPEG")
    clean = license_image_clean(data=out.getvalue())
    with Image.open(io.BytesIO(clean.content)) as image:
        assert image.mode == "RGB"


# --- completeness does not depend on Pillow's process-wide setting -----------------


def png_with_short_idat() -> bytes:
    """Chunk structure and CRCs intact, but the image data stops half-way."""
    from PIL import Image as PILImage

    raw = b"".join(b"\0" + bytes([i % 251]) * 300 for i in range(100))  # 100 rows of 100 RGB pixels
    compressed = zlib.compress(raw)[: len(zlib.compress(raw)) // 2]
    ihdr = struct.pack(">IIBBBBB", 100, 100, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", compressed)
            + png_chunk(b"IEND", b""))
    assert PILImage.open(io.BytesIO(data)).size == (100, 100)
    return data


def png_with_bad_crc() -> bytes:
    data = bytearray(png_bytes())
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # a byte inside the IDAT body
    return bytes(data)


@pytest.mark.parametrize("load_truncated", [False, True], ids=["pillow-default", "weasyprint-imported"])
@pytest.mark.parametrize("content", [
    lambda: png_bytes((400, 300), (1, 2, 3))[:-200],
    lambda: jpeg_bytes((400, 300))[:1500],
    lambda: jpeg_bytes((400, 300))[:-2],  # everything but the EOI marker
    png_with_short_idat,
    png_with_bad_crc,
    lambda: png_bytes() + HTML,
], ids=["truncated-png", "truncated-jpeg", "jpeg-without-eoi", "png-short-idat", "png-bad-crc", "png-polyglot"])
def test_incomplete_images_are_refused_whatever_pillow_is_told(monkeypatch, load_truncated, content):
    """WeasyPrint sets ImageFile.LOAD_TRUNCATED_IMAGES = True for the whole
    process when imported (PDF statements); the check must not rely on it."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    with pytest.raises(ValidationError, match="damaged or truncated"):
        license_image_clean(data=content())


def adam7_png(width: int, height: int) -> bytes:
    """An interlaced RGB PNG (Pillow does not write interlaced files)."""
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        pass_width = len(range(x0, width, dx))
        pass_height = len(range(y0, height, dy))
        if pass_width and pass_height:
            raw += (b"\0" + b"\x80\x20\x10" * pass_width) * pass_height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def test_interlaced_png_and_progressive_jpeg_are_accepted():
    for width, height in ((333, 101), (1, 1), (5, 3), (9, 17)):
        clean = license_image_clean(data=adam7_png(width, height))
        assert (clean.width, clean.height) == (width, height)
        with Image.open(io.BytesIO(clean.content)) as image:
            assert image.getpixel((0, 0)) == (0x80, 0x20, 0x10)
    with pytest.raises(ValidationError, match="damaged or truncated"):
        license_image_clean(data=adam7_png(333, 101)[:-40])
    assert license_image_clean(data=jpeg_bytes((333, 101), progressive=True)).height == 101
    for mode in ("1", "L", "LA", "P", "RGBA", "I;16"):
        out = io.BytesIO()
        Image.new(mode, (37, 11)).save(out, format="PNG")
        assert license_image_clean(data=out.getvalue()).width == 37


def test_jpeg_with_a_camera_trailer_after_eoi_is_accepted_without_it():
    clean = license_image_clean(data=jpeg_bytes() + b"SEFH trailer written by a phone camera")
    assert b"SEFH" not in clean.content


# --- 16-bit PNGs (issue #13 item 8) -----------------------------------------------------


def png_16(width: int, height: int, color_type: int, pixel: tuple[int, ...], trns: bytes | None = None) -> bytes:
    """A 16-bit PNG of one pixel value repeated (Pillow writes 16-bit grey only)."""
    row = b"\0" + b"".join(struct.pack(">H", v) for v in pixel) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    extra = png_chunk(b"tRNS", trns) if trns is not None else b""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", zlib.compress(row * height))
            + png_chunk(b"IEND", b""))


def test_16_bit_greyscale_png_keeps_its_tones():
    """It was stored as a blank white image: Pillow clips I;16 to 255 when
    converting to 8 bits."""
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 100 * 256 + 255, 65535)):
        image.putpixel((x, 0), value)
    out = io.BytesIO()
    image.save(out, format="PNG")
    clean = license_image_clean(data=out.getvalue())
    with Image.open(io.BytesIO(clean.content)) as stored:
        assert stored.mode == "L"
        assert [stored.getpixel((x, 0)) for x in range(3)] == [0, 100, 255]


@pytest.mark.parametrize(("color_type", "pixel", "expected"), [
    (2, (40000, 20000, 1000), (156, 78, 3)),
    (6, (40000, 20000, 1000, 50000), (156, 78, 3, 195)),
    (4, (40000, 30000), (156, 156, 156, 117)),
], ids=["rgb48", "rgba64", "grey-alpha32"])
def test_16_bit_colour_pngs_keep_their_colours(color_type, pixel, expected):
    clean = license_image_clean(data=png_16(4, 3, color_type, pixel))
    with Image.open(io.BytesIO(clean.content)) as stored:
        assert stored.getpixel((1, 1))[:len(expected)] == expected


def test_16_bit_greyscale_with_a_transparent_colour_is_refused_not_mangled():
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=png_16(4, 3, 0, (40000,), trns=struct.pack(">H", 40000)))
    assert info.value.code == "unsupported"
    assert "16-bit" in info.value.messages[0] and "8-bit" in info.value.messages[0]


# --- memory budget, compression ratio, concurrent decodes (issue #15 item 4) ---------------


def test_the_issue_15_file_is_refused_from_its_header():
    data = memory_bomb()
    assert len(data) < 160_000
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=data)
    assert info.value.code == "memory"
    message = info.value.messages[0]
    assert "6324×6324" in message and "153 MB" in message and "at most 128 MB" in message


def test_refusal_for_memory_comes_from_the_header_alone():
    """The same header with a 60-byte IDAT that cannot be the whole image: a
    decode (or the completeness check) would call it damaged; the budget
    refuses it before either runs. The same damage within budget is found."""
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=png_header_only(6324, 6324, bit_depth=8, color_type=6))
    assert info.value.code == "memory"
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=png_header_only(600, 600, bit_depth=8, color_type=6))
    assert info.value.code == "damaged"


@pytest.mark.parametrize(("width", "height", "color_type"), [(4000, 3000, 2), (6000, 6000, 0)],
                         ids=["rgb-12mp-flat", "grey-36mp-flat"])
def test_extreme_compression_ratio_is_refused(width, height, color_type):
    data = png_flat(width, height, color_type=color_type)
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=data)
    assert info.value.code == "compression_ratio"
    assert ":1" in info.value.messages[0]


def test_small_flat_images_are_not_held_to_the_ratio():
    # 320×200 of one colour compresses about 300:1, but decodes to 256 KB.
    data = png_bytes((320, 200))
    assert 320 * 200 * 3 / len(data) > 200
    assert license_image_clean(data=data).width == 320


def test_rotation_counts_as_a_second_copy(settings):
    """A JPEG with EXIF orientation 6 is transposed: two full copies at once."""
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = jpeg_bytes((1000, 500))
    rotated = jpeg_bytes((1000, 500), exif=exif)
    settings.BILLING_LICENSE_DECODE_MAX_BYTES = 1000 * 500 * 4 * 2 - 1
    assert license_image_clean(data=upright).width == 1000
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=rotated)
    assert info.value.code == "memory"


def test_a_progressive_jpeg_counts_its_coefficient_buffer(settings):
    """libjpeg keeps 2 bytes per sample while it decodes a progressive JPEG
    (1.5 samples per pixel at 4:2:0): 7 bytes per pixel in all, not 4."""
    baseline = jpeg_bytes((1000, 500))
    progressive = jpeg_bytes((1000, 500), progressive=True)
    settings.BILLING_LICENSE_DECODE_MAX_BYTES = 1000 * 500 * 5
    assert license_image_clean(data=baseline).width == 1000
    with pytest.raises(ValidationError) as info:
        license_image_clean(data=progressive)
    assert info.value.code == "memory"
    settings.BILLING_LICENSE_DECODE_MAX_BYTES = 1000 * 500 * 7
    assert license_image_clean(data=progressive).width == 1000


def test_decodes_beyond_the_concurrency_cap_are_told_to_try_again(settings):
    from accounts.uploads import decode_slots

    settings.BILLING_LICENSE_DECODE_WAIT_SECONDS = 0.05
    slots = decode_slots()
    held = 0
    while slots.acquire(blocking=False):
        held += 1
    assert held >= 1
    try:
        with pytest.raises(ValidationError) as info:
            license_image_clean(data=png_bytes())
        assert info.value.code == "busy"
        assert "try again" in info.value.messages[0]
        # Refusals from the header need no slot.
        with pytest.raises(ValidationError) as info:
            license_image_clean(data=memory_bomb())
        assert info.value.code == "memory"
    finally:
        for _ in range(held):
            slots.release()
    assert license_image_clean(data=png_bytes()).width == 320
