"""Where records come from: CSV and JSON Lines files, and lists of decoded
JSON records (the HTTP API, seed_demo). Each gives ``Lines``: one line of
six comma-separated fields per record, and where a record came from."""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core.money import json_integer, json_number

from .records import ERROR_LIST_CAP, FIELDS, SEPARATOR, ImportRejected, RowProblem, record_fields

if TYPE_CHECKING:
    from ..models import IngestToken

FORMATS = ("csv", "jsonl")
# The deepest JSON read: a JSON Lines line, or an API body. A record needs
# 1 level (3 in a body); the limit bounds the work and the recursion.
MAX_JSON_DEPTH = 32
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
READ_CHUNK = 1 << 20
HEADER = ",".join(FIELDS)


class Lines:
    """Records as lines ``occurred_at,account,region,service,result,quantity``
    (the last field may keep the line end; a blank line is skipped), or
    RowProblem for a record that cannot be one; and ``position(n)``: where
    the n-th (from 1) came from, reported as ``label`` ``position``
    ("line 12", "record 3")."""

    def __init__(self, lines: Iterable, position: Callable[[int], int], *, label: str = "line",
                 error_cap: int | None = ERROR_LIST_CAP, bytes_read: Callable[[], int] = lambda: 0) -> None:
        self.lines = lines
        self.position = position
        self.label = label
        self.error_cap = error_cap  # None: report every bad record
        self.bytes_read = bytes_read

    def __iter__(self) -> Iterator:
        return iter(self.lines)


def as_lines(rows: Iterable) -> Iterator:
    """Field lists (or RowProblems) as lines; fields that would not survive
    the joining (a separator inside, a wrong count) give a RowProblem."""
    for row in rows:
        if row == []:
            yield "\n"  # a blank line
        elif isinstance(row, RowProblem) or len(row) != len(FIELDS) or SEPARATOR.search("".join(row)):
            yield row if isinstance(row, RowProblem) else RowProblem(row=row)
        else:
            yield ",".join(row)


@dataclass
class FileScan:
    sha256: str
    size: int
    # No quote and no carriage return: every line is one record whose fields
    # are split by commas, and the file can be cut at any line end.
    plain: bool


@dataclass
class FileSource:
    """A CSV or JSON Lines file. It is read once to hash its bytes (a
    re-import of the same content is a no-op), then to import it."""

    path: Path
    format: str
    origin: str = "file"
    idempotency_key: str = ""
    token: IngestToken | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def size(self) -> int:
        return self.scan.size

    @property
    def sha256(self) -> str:
        return self.scan.sha256

    @cached_property
    def scan(self) -> FileScan:
        digest = hashlib.sha256()
        size, plain = 0, True
        with self.path.open("rb") as f:
            while chunk := f.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                plain = plain and b'"' not in chunk and b"\r" not in chunk
        return FileScan(digest.hexdigest(), size, plain)

    @contextmanager
    def lines(self) -> Iterator[Lines]:
        with self.path.open("rb") as raw:
            if self.format == "jsonl":
                yield jsonl_lines(raw)
            else:
                header = read_header(raw)
                yield csv_lines(raw, header, plain=self.scan.plain, first_line=2)


@dataclass
class RecordsSource:
    """Decoded JSON records. Their hash is that of their canonical JSON, so
    a replay that differs only in key order or spacing is the same request."""

    records: list
    name: str
    origin: str = "api"
    idempotency_key: str = ""
    token: IngestToken | None = None
    format: str = "json"
    size: int = 0

    @cached_property
    def sha256(self) -> str:
        text = json.dumps(self.records, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @contextmanager
    def lines(self) -> Iterator[Lines]:
        # At most 10,000 records (the API's limit): every bad one is reported.
        yield Lines(as_lines(map(record_fields, self.records)), lambda n: n - 1, label="record", error_cap=None)


def read_header(raw: io.BufferedReader) -> list[str]:
    """The CSV header (line 1): the six column names in any order."""
    line = raw.readline()
    if line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8):]
    try:
        header = next(csv.reader([line.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportRejected.single(f"unreadable header: {exc}", 1) from None
    if not header:
        raise ImportRejected.single(f"the file is empty; expected the header {HEADER}", 1)
    if sorted(header) != sorted(FIELDS):
        raise ImportRejected.single(f"header must name the columns {HEADER}; got {','.join(header)!r}", 1)
    return header


def csv_lines(raw: io.BufferedIOBase, header: list[str], *, plain: bool, first_line: int) -> Lines:
    """The records of a CSV file after its header; ``first_line`` is the
    line number of the first. Bytes that are not UTF-8 become lone
    surrogates, which no valid field holds, so they are reported on their
    line. The lines of a plain file (see FileScan) with the columns in
    FIELDS order are its records as they are; others go through the csv
    module."""
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
    if plain and tuple(header) == FIELDS:
        return Lines(text, lambda n: first_line + n - 1, bytes_read=raw.tell)
    reader = csv.reader(text, strict=True)
    order = None if tuple(header) == FIELDS else [header.index(name) for name in FIELDS]

    start = [1]  # the line the current record starts on, counted from first_line

    def rows():
        while True:
            start[0] = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # one unreadable record; the next ones can still be read
                hint = " (a quote that is never closed?)" if "end of data" in str(exc) else ""
                yield RowProblem(f"unreadable: {exc}{hint}")
                continue
            yield [row[i] for i in order] if order and len(row) == len(order) else row

    return Lines(as_lines(rows()), lambda n: first_line - 1 + start[0], bytes_read=raw.tell)


def jsonl_lines(raw: io.BufferedReader) -> Lines:
    """The records of a JSON Lines file: one object per line with the CSV's keys."""

    def rows():
        for number, data in enumerate(raw, start=1):
            if number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            if not data.strip():
                yield []
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                yield RowProblem("not valid UTF-8")
                continue
            try:
                record = json_loads(text.rstrip("\r\n"), _LINE_DECODER)
            except JsonTooDeep as exc:
                yield RowProblem(str(exc))
                continue
            except ValueError as exc:
                yield RowProblem(f"not valid JSON: {exc}")
                continue
            yield record_fields(record)

    return Lines(as_lines(rows()), lambda n: n, bytes_read=raw.tell)


# --- JSON: exact numbers, bounded nesting, records counted while read ---------


class JsonTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


class TooManyRecords(ValueError):
    """A body's ``records`` has more than ``limit`` elements; reading
    stopped at the first one over."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"more than {limit:,} records")


def _refuse(message: str):
    def refuse(name: str):
        raise ValueError(f"{name} {message}")
    return refuse


# Numbers exact and as written (core.money.JsonNumber); NaN and
# Infinity refused.
_LINE_DECODER = json.JSONDecoder(parse_float=json_number, parse_int=json_integer,
                                 parse_constant=_refuse("is not a number"))
_BODY_DECODER = json.JSONDecoder(parse_float=json_number, parse_int=json_integer,
                                 parse_constant=_refuse("is not allowed"))
_WHITESPACE = json.decoder.WHITESPACE
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _depth(value: object, limit: int) -> int:
    """How deep ``value`` nests (a scalar 0, ``[]`` 1), counted up to just
    past ``limit``; level by level, without recursion."""
    depth = 0
    level = [value]
    while level:
        containers = [item for item in level if type(item) is dict or type(item) is list]
        if not containers:
            break
        depth += 1
        if depth > limit:
            break
        level = [child for item in containers for child in (item.values() if type(item) is dict else item)]
    return depth


def _json_value(text: str, start: int, decoder: json.JSONDecoder, room: int) -> tuple[object, int]:
    """The JSON value that starts at ``text[start]`` and the index after
    it; JsonTooDeep when it nests deeper than ``room`` levels. The C
    scanner recurses per level and raises RecursionError long before the
    stack is at risk; a value with at most ``room`` brackets cannot nest
    deeper, so only others are measured."""
    try:
        value, end = decoder.raw_decode(text, start)
    except RecursionError:
        raise JsonTooDeep from None
    if text.count("[", start, end) + text.count("{", start, end) > room and _depth(value, room) > room:
        raise JsonTooDeep
    return value, end


def json_loads(text: str, decoder: json.JSONDecoder = _LINE_DECODER) -> object:
    """``json.loads`` (the same errors, worded alike), with numbers exact
    and nesting at most MAX_JSON_DEPTH (JsonTooDeep)."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    value, end = _json_value(text, _WHITESPACE.match(text, 0).end(), decoder, MAX_JSON_DEPTH)
    end = _WHITESPACE.match(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def body_records(body: bytes, *, limit: int) -> object:
    """The value of ``records`` in a JSON body ``{"records": [ … ]}`` (None
    when the body is no object or has no such key). Raises TooManyRecords
    as soon as the array has ``limit + 1`` elements, so the work on a body
    over the limit stops there, JsonTooDeep, or ValueError (not JSON, with
    json's own words).

    The body is read member by member and the array element by element
    (each by the C scanner). Anything else than an object, or a syntax
    error, and the body is read again as a whole by ``json_loads``, which
    words the error as ``json.loads`` does."""
    text = body.decode(json.detect_encoding(body), "surrogatepass")
    try:
        return _records_streamed(text, limit)
    except (JsonTooDeep, TooManyRecords):
        raise
    except ValueError:
        pass
    payload = json_loads(text, _BODY_DECODER)
    records = payload.get("records") if isinstance(payload, dict) else None
    if isinstance(records, list) and len(records) > limit:
        raise TooManyRecords(limit)
    return records


def _records_streamed(text: str, limit: int) -> object:
    skip = _WHITESPACE.match
    decoder = _BODY_DECODER
    records = None
    i = skip(text, 0).end()
    if text[i:i + 1] != "{":
        raise ValueError("not an object")
    i = skip(text, i + 1).end()
    if text[i:i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i:i + 1] != '"':
                raise ValueError("no key")
            key, i = decoder.raw_decode(text, i)
            i = skip(text, i).end()
            if text[i:i + 1] != ":":
                raise ValueError("no colon")
            i = skip(text, i + 1).end()
            if key == "records" and text[i:i + 1] == "[":
                records, i = _array_streamed(text, i, limit)
            else:
                value, i = _json_value(text, i, decoder, MAX_JSON_DEPTH - 1)
                if key == "records":
                    records = value
            i = skip(text, i).end()
            separator = text[i:i + 1]
            i = skip(text, i + 1).end()
            if separator == "}":
                break
            if separator != ",":
                raise ValueError("no comma")
    if skip(text, i).end() != len(text):
        raise ValueError("extra data")
    return records


def _array_streamed(text: str, i: int, limit: int) -> tuple[list, int]:
    """The array at ``text[i]`` (a ``[``), element by element; the element
    over ``limit`` is not read. Elements sit at depth 3 of the body."""
    skip = _WHITESPACE.match
    next_element = _COMMA.match
    decode = _BODY_DECODER.scan_once  # the C scanner: raw_decode without its Python frame
    room = MAX_JSON_DEPTH - 2
    items: list = []
    append = items.append
    start = i
    i = skip(text, i + 1).end()
    if text[i:i + 1] == "]":
        return items, i + 1
    try:
        for _ in range(limit):
            item, i = decode(text, i)
            append(item)
            comma = next_element(text, i)
            if comma is None:
                break
            i = comma.end()
        else:  # a comma after element ``limit``: one more follows
            raise TooManyRecords(limit)
    except StopIteration:  # scan_once's "Expecting value"
        raise ValueError("no value") from None
    except RecursionError:
        raise JsonTooDeep from None
    i = skip(text, i).end()
    if text[i:i + 1] != "]":
        raise ValueError("no comma")
    # An element nests at most as deep as it has brackets, and the
    # containers among them have one each at least; so unless the array's
    # brackets exceed that by ``room``, no element can nest deeper.
    brackets = text.count("[", start + 1, i) + text.count("{", start + 1, i)
    containers = sum(type(item) is dict or type(item) is list for item in items)
    if brackets - containers >= room and any(_depth(item, room) > room for item in items):
        raise JsonTooDeep
    return items, i + 1


def format_for(path: Path, requested: str | None = None) -> str:
    """The file's format: ``requested``, else from its extension."""
    if requested:
        if requested not in FORMATS:
            raise ValueError(f"unknown format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(f"cannot tell the format of {path.name} from its extension; "
                         f"use --format {'|'.join(FORMATS)}")
    return EXTENSIONS[suffix]
