"""The business license upload (billing-rules §7): limits, the upload
handler that refuses oversized files while they stream in, and the check
that decodes the content and re-encodes it without metadata.

Nothing here writes to storage: ``license_image_clean`` returns the
re-encoded bytes, and ``accounts.services`` stores them under a random name
only once every check has passed.
"""
from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from dataclasses import dataclass
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps, UnidentifiedImageError

# Upload limit in bytes (2 MB as the spec counts it: 2,097,152 bytes).
LICENSE_MAX_BYTES: int = getattr(settings, "BILLING_LICENSE_MAX_BYTES", 2_097_152)
# Decoded size limits: a scan of an A4 page at 600 dpi is about 35 MP; a
# 2 MB file that claims more is a decompression bomb or a mistake.
LICENSE_MAX_PIXELS: int = getattr(settings, "BILLING_LICENSE_MAX_PIXELS", 40_000_000)
LICENSE_MAX_SIDE: int = getattr(settings, "BILLING_LICENSE_MAX_SIDE", 12_000)
# Whole request limit for the billing information form, checked on
# Content-Length before the body is read. Below it an oversized file is
# read and discarded while it streams in (constant memory) so that the text
# fields survive; above it nothing is read and the form cannot be kept.
LICENSE_REQUEST_MAX_BYTES: int = getattr(settings, "BILLING_INFO_REQUEST_MAX_BYTES", 32 * 1024 * 1024)
# Decoding, checked from the header before any pixel is decoded (see
# decode_cost): peak bytes of Pillow image memory one check may need;
# the decoded-to-file size ratio above which a large image is refused, and
# the decoded size from which that ratio applies; how many checks decode at
# once in one process and how long (seconds) a check waits for its turn.
LICENSE_DECODE_MAX_BYTES = 128 * 1024 * 1024
LICENSE_MAX_RATIO = 200
LICENSE_RATIO_MIN_BYTES = 8 * 1024 * 1024
LICENSE_DECODE_CONCURRENCY: int = getattr(settings, "BILLING_LICENSE_DECODE_CONCURRENCY", 2)
LICENSE_DECODE_WAIT_SECONDS = 2.0
_DECODE_SLOTS = threading.BoundedSemaphore(LICENSE_DECODE_CONCURRENCY)

LICENSE_FIELD = "license"
ACCEPTED_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
REQUIREMENTS = gettext_lazy("JPG, JPEG or PNG, at most 2 MB; clearly readable, matching the billing information "
                            "above.")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Recognised only to say what a refused file is.
_OTHER_SIGNATURES = (
    (b"GIF87a", gettext_lazy("a GIF image")),
    (b"GIF89a", gettext_lazy("a GIF image")),
    (b"BM", gettext_lazy("a BMP image")),
    (b"%PDF", gettext_lazy("a PDF document")),
    (b"II*\x00", gettext_lazy("a TIFF image")),
    (b"MM\x00*", gettext_lazy("a TIFF image")),
    (b"PK\x03\x04", gettext_lazy("a ZIP archive or office document")),
    (b"\x00\x00\x01\x00", gettext_lazy("an icon file")),
)


def format_bytes(size: int) -> str:
    """1,572,864 → "1.5 MB" (binary megabytes, as the 2 MB limit is)."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def too_large_message(size: int | None = None) -> str:
    if size:
        return _("The file is too large (%(size)s): the business license may be at most 2 MB (2,097,152 bytes).") % {
            "size": format_bytes(size)}
    return _("The file is too large: the business license may be at most 2 MB (2,097,152 bytes).")


def describe_content(head: bytes) -> str:
    """What a file that is not JPEG or PNG appears to be, for the message."""
    for signature, what in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return str(what)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _("a WebP image")
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return _("an HEIC or AVIF image")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return _("an SVG drawing")
    if text.startswith((b"<!doctype", b"<html", b"<script", b"<head", b"<body")) or b"<html" in text[:512]:
        return _("an HTML page")
    if text.startswith(b"<"):
        return _("an XML or HTML document")
    return _("not an image")


@dataclass(frozen=True)
class CleanLicense:
    """A decoded, re-encoded license image, ready to store."""

    content: bytes
    content_type: str
    width: int
    height: int
    sha256: str

    @property
    def size(self) -> int:
        return len(self.content)

    def describe(self) -> str:
        """One line for the change history."""
        return f"{self.content_type}, {self.width}×{self.height}, {self.size} bytes, sha256 {self.sha256}"


# Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_complete(data: bytes) -> bool:
    """The PNG is whole: every chunk within the file with a correct CRC,
    IEND last with nothing after it (no polyglot such as HTML appended),
    and the IDAT stream a complete zlib stream of exactly the size the
    header implies. Checked here, not left to Pillow, because
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is process-wide and WeasyPrint
    turns it on when imported. Call only after the dimensions are checked:
    the stream is inflated piecewise and discarded, so memory stays small."""
    pos = len(PNG_SIGNATURE)
    header = None
    inflater = zlib.decompressobj()
    inflated = 0
    expected = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            return False
        body = data[pos + 8:body_end]
        (crc,) = struct.unpack(">I", data[body_end:body_end + 4])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return False
        pos = body_end + 4
        if kind == b"IHDR":
            if len(body) != 13:
                return False
            width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if color_type not in _PNG_CHANNELS:
                return False
            bits = _PNG_CHANNELS[color_type] * depth
            passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
            for x0, y0, dx, dy in passes:
                pass_width = (width - x0 + dx - 1) // dx if width > x0 else 0
                pass_height = (height - y0 + dy - 1) // dy if height > y0 else 0
                if pass_width and pass_height:
                    expected += pass_height * (1 + (pass_width * bits + 7) // 8)
            header = True
        elif kind == b"IDAT":
            if header is None or inflater.eof:
                return False
            try:
                chunk = inflater.decompress(body, 1 << 20)
                inflated += len(chunk)
                while inflater.unconsumed_tail and inflated <= expected:
                    chunk = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
                    inflated += len(chunk)
            except zlib.error:
                return False
            if inflated > expected:
                return False
        elif kind == b"IEND":
            return pos == len(data) and inflater.eof and inflated == expected
    return False


def _jpeg_complete(data: bytes) -> bool:
    """The JPEG's segments and entropy-coded scans run to an EOI marker.
    Bytes after EOI (some cameras append a trailer) are dropped by the
    re-encoding. See _png_complete for why this is not left to Pillow."""
    pos = 2
    size = len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > size:
            return False
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > size:
            return False
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while True:
                found = data.find(b"\xff", pos)
                if found < 0 or found + 1 >= size:
                    return False
                following = data[found + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos = found + 2
                elif following == 0xFF:
                    pos = found + 1
                else:
                    pos = found
                    break
    return False


def _limit(name: str, default):
    """A decode limit from settings, read on each call (tests and operators
    change them without a restart of the module)."""
    return getattr(settings, f"BILLING_{name}", default)


def decode_slots() -> threading.BoundedSemaphore:
    """The per-process slots for decoding (LICENSE_DECODE_CONCURRENCY)."""
    return _DECODE_SLOTS


# Bytes per pixel of a Pillow image in memory, by mode (RGB is stored as
# 4 bytes, like RGBA); anything not listed counts as 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_PNG_COLOR_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ORIENTATION = 0x0112


def _mb(size: int) -> str:
    return f"{round(size / 1_048_576):,} MB"


def _output_mode(mode: str, fmt: str) -> str:
    """The mode _reencode writes for a decoded ``mode``."""
    if fmt == "JPEG":
        return mode if mode in ("RGB", "L") else "RGB"
    if mode in ("1", "L", "LA", "P", "RGB", "RGBA"):
        return mode
    if mode.startswith("I;16"):
        return "L"
    return "RGBA" if mode in ("PA", "La", "RGBa") else "RGB"


def _may_rotate(image: Image.Image, data: bytes, fmt: str) -> bool:
    """Whether exif_transpose may transpose (a second full copy), judged
    from the header. A PNG may carry its eXIf chunk after the image data,
    which only a decode reaches, so any eXIf chunk counts."""
    raw = image.info.get("exif")
    if raw:
        exif = Image.Exif()
        try:
            exif.load(raw)
        except Exception:  # noqa: BLE001 - unreadable EXIF: assume the worst
            return True
        if exif.get(_ORIENTATION, 1) in range(2, 9):
            return True
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    if b"Orientation" in (xmp.encode() if isinstance(xmp, str) else xmp):
        return True
    return fmt == "PNG" and b"eXIf" in data


def decode_cost(*, width: int, height: int, mode: str, fmt: str, rotates: bool,
                coefficient_samples: Fraction = Fraction(0)) -> int:
    """Peak bytes of image memory that decoding and re-encoding need, in
    full copies of the image at Pillow's bytes per pixel, summed:

    - the decoded image;
    - a progressive JPEG's coefficient buffer while it decodes, 2 bytes
      per sample (``coefficient_samples`` per pixel; 0 for baseline);
    - the transposed copy when EXIF orientation is 2–8;
    - the converted copy when the stored mode differs (a 16-bit grey PNG
      also passes through a 2-byte-per-pixel byte string).

    Summed, not the largest phase: the allocator keeps a freed copy's
    memory (measured: resident memory stays at two copies after an
    in-place transpose). The encoders work strip by strip (_reencode does
    not ask libjpeg to optimise, which would buffer the whole image)."""
    pixels = width * height
    source = _MODE_BYTES.get(mode, 4)
    cost = pixels * source + int(pixels * coefficient_samples * 2)
    if rotates:
        cost += pixels * source
    out = _output_mode(mode, fmt)
    if out != mode:
        cost += pixels * (_MODE_BYTES.get(out, 4) + (2 if mode.startswith("I;16") else 0))
    return cost


def _coefficient_samples(image: Image.Image) -> Fraction:
    """Samples per pixel a progressive JPEG keeps as coefficients while it
    decodes (1.5 for colour at 4:2:0); 0 for a baseline JPEG or a PNG."""
    if not image.info.get("progressive"):
        return Fraction(0)
    layers = getattr(image, "layer", None) or []
    try:
        h_max = max(h for _, h, _, _ in layers)
        v_max = max(v for _, _, v, _ in layers)
        return Fraction(sum(h * v for _, h, v, _ in layers), h_max * v_max)
    except (ValueError, TypeError, ZeroDivisionError):
        return Fraction(len(image.getbands()))


def license_decode_estimate(image: Image.Image, data: bytes, fmt: str) -> int:
    """decode_cost for an opened, not yet decoded image (the benchmark
    prints it next to the measured memory)."""
    width, height = image.size
    return decode_cost(width=width, height=height, mode=image.mode, fmt=fmt,
                       rotates=_may_rotate(image, data, fmt), coefficient_samples=_coefficient_samples(image))


def _raw_size(image: Image.Image, data: bytes, fmt: str) -> int:
    """Bytes of the decoded samples at the file's own bit depth."""
    width, height = image.size
    if fmt == "PNG" and data[12:16] == b"IHDR":
        depth, color_type = data[24], data[25]
        return height * ((width * _PNG_COLOR_CHANNELS.get(color_type, 4) * depth + 7) // 8)
    return width * height * len(image.getbands())


def _open_checked(data: bytes) -> tuple[Image.Image, str]:
    """Everything decided from the size, the signature and the header:
    type, dimensions, memory budget, compression ratio. Decodes no pixel.
    Returns the opened image (the caller closes it) and its format."""
    size = len(data)
    if size == 0:
        raise ValidationError(_("The file is empty. Choose a JPG, JPEG or PNG image of the license."), code="empty")
    if size > LICENSE_MAX_BYTES:
        raise ValidationError(too_large_message(size), code="too_large")
    if data.startswith(PNG_SIGNATURE):
        expected = "PNG"
    elif data.startswith(JPEG_SIGNATURE):
        expected = "JPEG"
    else:
        raise ValidationError(
            _("The file is %(content)s, not a JPEG or PNG image, whatever its name says. "
              "Upload a JPG, JPEG or PNG image.") % {"content": describe_content(data[:1024])},
            code="wrong_type",
        )
    # Pillow itself refuses above 2 × Image.MAX_IMAGE_PIXELS at open (and
    # only warns between); the explicit limits below are lower.
    try:
        image = Image.open(io.BytesIO(data), formats=[expected])
    except Image.DecompressionBombError:
        raise _bomb() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, zlib.error):
        raise _damaged(expected) from None
    try:
        width, height = image.size
        if width < 1 or height < 1 or width > LICENSE_MAX_SIDE or height > LICENSE_MAX_SIDE:
            raise ValidationError(
                _("The image claims to be %(width)s×%(height)s pixels; a license image may be at most "
                  "%(side)s×%(side)s pixels. Scan or photograph it at a normal size.")
                % {"width": width, "height": height, "side": f"{LICENSE_MAX_SIDE:,}"},
                code="dimensions",
            )
        if width * height > LICENSE_MAX_PIXELS:
            raise _bomb(width, height)
        if image.mode.startswith("I;16") and "transparency" in image.info:
            raise ValidationError(
                _("The image is a 16-bit greyscale PNG with a transparent colour, which cannot be kept "
                  "faithfully in 8 bits. Save it as an 8-bit PNG or as a JPEG and upload it again."),
                code="unsupported",
            )
        budget = _limit("LICENSE_DECODE_MAX_BYTES", LICENSE_DECODE_MAX_BYTES)
        cost = license_decode_estimate(image, data, expected)
        if cost > budget:
            raise ValidationError(
                _("The image is too large to check: %(width)s×%(height)s pixels would need about %(cost)s of "
                  "memory, and at most %(budget)s is allowed. Scan or photograph the license at a lower "
                  "resolution (300 dpi is plenty) and upload it again.")
                % {"width": width, "height": height, "cost": _mb(cost), "budget": _mb(budget)},
                code="memory",
            )
        raw = _raw_size(image, data, expected)
        ratio = raw / size
        if raw >= _limit("LICENSE_RATIO_MIN_BYTES", LICENSE_RATIO_MIN_BYTES) and ratio > _limit(
                "LICENSE_MAX_RATIO", LICENSE_MAX_RATIO):
            raise ValidationError(
                _("The image is compressed unusually far (%(ratio)s:1: %(width)s×%(height)s pixels in "
                  "%(size)s); scans and photos of a license compress far less, and files like "
                  "this are made to exhaust servers. Upload an ordinary scan or photo of the license.")
                % {"ratio": f"{ratio:,.0f}", "width": width, "height": height, "size": format_bytes(size)},
                code="compression_ratio",
            )
    except BaseException:
        image.close()
        raise
    return image, expected


def license_image_inspect(*, data: bytes) -> None:
    """The checks ``license_image_clean`` makes before decoding (size, type,
    dimensions, memory budget, compression ratio), without decoding:
    cheap enough to run on every submission, whatever else failed.
    Raises ValidationError with a message for the customer."""
    image, _ = _open_checked(data)
    image.close()


def license_image_clean(*, data: bytes) -> CleanLicense:
    """Decode ``data`` completely as JPEG or PNG and re-encode it without
    metadata. The file name and the declared content type play no part.
    Everything that can be judged from the header is judged first
    (``license_image_inspect``); the decode then waits at most
    LICENSE_DECODE_WAIT_SECONDS for one of the process's
    LICENSE_DECODE_CONCURRENCY slots. Raises ValidationError with a
    message for the customer."""
    image, expected = _open_checked(data)
    with image:
        width, height = image.size
        slots = decode_slots()
        if not slots.acquire(timeout=_limit("LICENSE_DECODE_WAIT_SECONDS", LICENSE_DECODE_WAIT_SECONDS)):
            raise ValidationError(
                _("The server is busy checking other uploads: choose the file again and try again in a minute."),
                code="busy",
            )
        try:
            if not (_png_complete(data) if expected == "PNG" else _jpeg_complete(data)):
                raise _damaged(expected)
            try:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                content = _reencode(image, expected)
            except Image.DecompressionBombError:
                raise _bomb(width, height) from None
            except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError):
                raise _damaged(expected) from None
        finally:
            slots.release()
        width, height = image.size
    return CleanLicense(content=content, content_type=ACCEPTED_TYPES[expected], width=width, height=height,
                        sha256=hashlib.sha256(content).hexdigest())


def _damaged(expected: str) -> ValidationError:
    return ValidationError(
        _("The file starts like a %(type)s image but could not be read completely: it is damaged or "
          "truncated, or carries other content. Export the image again and upload it.") % {"type": expected},
        code="damaged",
    )


def _bomb(width: int | None = None, height: int | None = None) -> ValidationError:
    limit = f"{LICENSE_MAX_PIXELS:,}"
    if width:
        message = _("The image would decode to too many pixels (%(width)s×%(height)s pixels): at most %(limit)s "
                    "are accepted. Upload an ordinary scan or photo of the license.") % {
            "width": width, "height": height, "limit": limit}
    else:
        message = _("The image would decode to too many pixels: at most %(limit)s are accepted. "
                    "Upload an ordinary scan or photo of the license.") % {"limit": limit}
    return ValidationError(
        message,
        code="decompression_bomb",
    )


def _reencode(image: Image.Image, fmt: str) -> bytes:
    """Write the pixels only: no EXIF, XMP, ICC profile, text chunks or
    comments (Pillow would carry some of them over from ``image.info``).
    A 16-bit grey PNG keeps its tones in 8 bits (the high byte of each
    sample); Pillow's own conversion would clip everything above 255 to
    white."""
    out = io.BytesIO()
    target = _output_mode(image.mode, fmt)
    if fmt == "JPEG":
        if image.mode != target:
            image = image.convert(target)
        image.info = {}
        # No optimize=True: libjpeg would then hold every coefficient of the
        # image (2 bytes per sample) and Pillow a width × height output
        # buffer, for a file a few per cent smaller.
        image.save(out, format="JPEG", quality=90)
    else:
        if image.mode.startswith("I;16"):
            rawmode = "L;16B" if image.mode == "I;16B" else "L;16"
            image = Image.frombuffer("L", image.size, image.tobytes(), "raw", rawmode, 0, 1)
        elif image.mode != target:
            image = image.convert(target)
        image.info = {k: v for k, v in image.info.items() if k == "transparency"}
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()


class LicenseUploadHandler(FileUploadHandler):
    """Keeps the license in memory and stops reading it past the limit.

    An oversized or unexpected file is skipped (its remaining bytes are
    discarded, never buffered) and the reason is kept in ``errors`` by
    field name, so the form can say why. Installed by the billing
    information view before the request body is parsed."""

    def __init__(self, request=None, *, max_bytes: int = LICENSE_MAX_BYTES):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.errors: dict[str, str] = {}
        self.buffer: io.BytesIO | None = None
        self.received = 0
        self.files_seen = 0

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.files_seen += 1
        if field_name != LICENSE_FIELD or self.files_seen > 1:
            raise SkipFile()
        self.buffer = io.BytesIO()
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.errors[self.field_name] = too_large_message()
            self.buffer = None
            raise SkipFile()
        self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size):
        if self.buffer is None:
            return None
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer, field_name=self.field_name, name=self.file_name,
            content_type=self.content_type, size=file_size, charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


def request_too_large(request) -> bool:
    """The declared body size is above the billing information form's limit."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > LICENSE_REQUEST_MAX_BYTES
