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
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from PIL import Image, ImageOps, UnidentifiedImageError

# Upload limit in bytes (2 MB as the spec counts it: 2,097,152 bytes).
LICENSE_MAX_BYTES: int = getattr(settings, "BILLING_LICENSE_MAX_BYTES", 2_097_152)
# Decoded size limits: a scan of an A4 page at 600 dpi is about 35 MP; a
# 2 MB file that claims more is a decompression bomb or a mistake.
LICENSE_MAX_PIXELS: int = getattr(settings, "BILLING_LICENSE_MAX_PIXELS", 40_000_000)
LICENSE_MAX_SIDE: int = getattr(settings, "BILLING_LICENSE_MAX_SIDE", 12_000)
# Whole request limit for the billing information form: the file plus the
# text fields and the multipart envelope. Checked on Content-Length before
# the body is read.
LICENSE_REQUEST_MAX_BYTES: int = getattr(settings, "BILLING_INFO_REQUEST_MAX_BYTES", LICENSE_MAX_BYTES + 65_536)

LICENSE_FIELD = "license"
ACCEPTED_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
REQUIREMENTS = "JPG, JPEG or PNG, at most 2 MB; clearly readable, matching the billing information above."

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Recognised only to say what a refused file is.
_OTHER_SIGNATURES = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive or office document"),
    (b"\x00\x00\x01\x00", "an icon file"),
)


def format_bytes(size: int) -> str:
    """1,572,864 → "1.5 MB" (binary megabytes, as the 2 MB limit is)."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def too_large_message(size: int | None = None) -> str:
    shown = f" ({format_bytes(size)})" if size else ""
    return f"The file is too large{shown}: the business license may be at most 2 MB (2,097,152 bytes)."


def describe_content(head: bytes) -> str:
    """What a file that is not JPEG or PNG appears to be, for the message."""
    for signature, what in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "an HEIC or AVIF image"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "an SVG drawing"
    if text.startswith((b"<!doctype", b"<html", b"<script", b"<head", b"<body")) or b"<html" in text[:512]:
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML or HTML document"
    return "not an image"


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


def license_image_clean(*, data: bytes) -> CleanLicense:
    """Decode ``data`` completely as JPEG or PNG and re-encode it without
    metadata. The file name and the declared content type play no part.
    Raises ValidationError with a message for the customer."""
    size = len(data)
    if size == 0:
        raise ValidationError("The file is empty. Choose a JPG, JPEG or PNG image of the license.", code="empty")
    if size > LICENSE_MAX_BYTES:
        raise ValidationError(too_large_message(size), code="too_large")
    if data.startswith(PNG_SIGNATURE):
        expected = "PNG"
    elif data.startswith(JPEG_SIGNATURE):
        expected = "JPEG"
    else:
        raise ValidationError(
            f"The file is {describe_content(data[:1024])}, not a JPEG or PNG image, whatever its name says. "
            "Upload a JPG, JPEG or PNG image.",
            code="wrong_type",
        )
    damaged = ValidationError(
        f"The file starts like a {expected} image but could not be read completely: it is damaged or "
        "truncated, or carries other content. Export the image again and upload it.",
        code="damaged",
    )
    # Pillow itself refuses above 2 × Image.MAX_IMAGE_PIXELS at open (and
    # only warns between); the explicit limits below are lower.
    try:
        image = Image.open(io.BytesIO(data), formats=[expected])
    except Image.DecompressionBombError:
        raise _bomb() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, zlib.error):
        raise damaged from None
    with image:
        width, height = image.size
        if width < 1 or height < 1 or width > LICENSE_MAX_SIDE or height > LICENSE_MAX_SIDE:
            raise ValidationError(
                f"The image claims to be {width}×{height} pixels; a license image may be at most "
                f"{LICENSE_MAX_SIDE:,}×{LICENSE_MAX_SIDE:,} pixels. Scan or photograph it at a normal size.",
                code="dimensions",
            )
        if width * height > LICENSE_MAX_PIXELS:
            raise _bomb(width, height)
        if not (_png_complete(data) if expected == "PNG" else _jpeg_complete(data)):
            raise damaged
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            content = _reencode(upright, expected)
        except Image.DecompressionBombError:
            raise _bomb(width, height) from None
        except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError):
            raise damaged from None
        width, height = upright.size
    return CleanLicense(content=content, content_type=ACCEPTED_TYPES[expected], width=width, height=height,
                        sha256=hashlib.sha256(content).hexdigest())


def _bomb(width: int | None = None, height: int | None = None) -> ValidationError:
    dims = f" ({width}×{height} pixels)" if width else ""
    return ValidationError(
        f"The image would decode to too many pixels{dims}: at most {LICENSE_MAX_PIXELS:,} are accepted. "
        "Upload an ordinary scan or photo of the license.",
        code="decompression_bomb",
    )


def _reencode(image: Image.Image, fmt: str) -> bytes:
    """Write the pixels only: no EXIF, XMP, ICC profile, text chunks or
    comments (Pillow would carry some of them over from ``image.info``)."""
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.info = {}
        image.save(out, format="JPEG", quality=90, optimize=True)
    else:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
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
