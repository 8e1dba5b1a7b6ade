"""Streaming parsers for uploaded files: JSON Lines, CSV, plain text and Parquet, each optionally gzipped.

Nothing here holds a whole file in memory: text formats are read line by line with a bounded line length, gzip is
expanded as it is read and stopped as soon as it passes `max_expanded_bytes`, and Parquet is read in small batches
with each row's decoded size counted against the per-row limit and the running total against the whole-file one.

Two kinds of problem are told apart. A whole-file problem (empty file, wrong format, gzip bomb, corrupt archive,
CSV without a header) raises `FileError`; the checks that need only the start of the file run when `iter_rows` is
called, the rest (a gzip that turns out to be truncated or too large) while iterating. A problem with one row is
yielded as `Row(error=...)` and the rows after it are still read. Messages are for the person who uploaded the file:
they name the line as an editor numbers it (1-based; a CSV header is line 1; Parquet rows count from 1).

Rows carry the raw dict; checking it against the Datanet's schema is the caller's job (`schema.validate_record`).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

from datanets.ingest.schema import get_kind

SUPPORTED = ".jsonl, .csv, .txt, .parquet, optionally gzipped (.gz)"
SNIFF_BYTES = 8192
_SKIP_CHUNK = 64 * 1024
_PARQUET_BATCH_ROWS = 1024
_PARQUET_BATCH_BYTES = 4 * 1024 * 1024  # decoded bytes turned into Python values at once
_BOM = b"\xef\xbb\xbf"

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json-lines": "jsonl",
    ".csv": "csv",
    ".txt": "txt",
    ".parquet": "parquet",
}
_FORMAT_NAMES = {
    "jsonl": "JSON Lines",
    "csv": "CSV",
    "txt": "plain text",
    "parquet": "Parquet",
}
_MAGIC = [
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Excel/Word file, which are ZIP inside)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF binary)"),
]


class FileError(ValueError):
    """The file as a whole cannot be read; the message says what is wrong and what to do."""


class Row(NamedTuple):
    line_no: int
    data: dict[str, Any] | None
    error: str | None
    # Decoded bytes this row accounts for, for progress and quotas: the text lines it spans (blank lines before it
    # included) or, for Parquet, the size of its values.
    nbytes: int


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def detect_format(filename: str) -> tuple[str, bool]:
    """(format, gzipped) from the file name's extension; FileError for anything else."""
    name = os.path.basename(filename).strip().lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt, gzipped
    extension = os.path.splitext(name)[1] or "no extension"
    hint = ""
    if extension == ".json":
        hint = "; a .json file with a list of records should be saved as JSON Lines (.jsonl), one object per line"
    elif extension in (".xlsx", ".xls", ".ods"):
        hint = "; export the spreadsheet as CSV"
    elif extension in (".zip", ".tar", ".tgz", ".bz2", ".xz", ".7z", ".rar"):
        hint = "; archives are not unpacked, upload the files inside them"
    raise FileError(f'cannot read "{filename}" ({extension}); supported: {SUPPORTED}{hint}')


class _Source:
    """The expanded bytes of an upload, counted against the expanded-size limit as they are read."""

    def __init__(self, path: str | os.PathLike[str], *, gzipped: bool, limit: int, filename: str) -> None:
        self._raw: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._stream: BinaryIO = gzip.GzipFile(fileobj=self._raw, mode="rb") if gzipped else self._raw
        self._gzipped = gzipped
        self._limit = limit
        self._filename = filename
        self.total = 0
        self.lines_read = 0  # complete lines handed out, kept by the reader, so an error can say where it broke

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self._limit:
            what = "expands to more than" if self._gzipped else "is larger than"
            raise FileError(
                f'"{self._filename}" {what} {human_size(self._limit)}, the most one upload may hold; '
                "split it into smaller files"
            )
        return data

    def _guard(self, exc: Exception) -> FileError:
        where = f": the file is truncated after line {self.lines_read}" if self.lines_read else ""
        return FileError(
            f'"{self._filename}" is a damaged or truncated gzip file ({exc}){where}; compress it again and re-upload'
        )

    def readline(self, size: int) -> bytes:
        try:
            return self._count(self._stream.readline(size))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._guard(exc) from None

    def read(self, size: int) -> bytes:
        try:
            return self._count(self._stream.read(size))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._guard(exc) from None

    def close(self) -> None:
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()


def _too_long(line_no: int, nbytes: int, max_line_bytes: int) -> str:
    return (
        f"line {line_no}: {human_size(nbytes)} long, over the limit of {human_size(max_line_bytes)} per line; "
        "shorten or split this record"
    )


def _bad_utf8(line_no: int, content: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"line {line_no}: not valid UTF-8 (byte 0x{content[exc.start]:02x} at position {exc.start + 1}); "
        "save the file as UTF-8"
    )


def _lines(src: _Source, max_line_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, content without line ending or None when over the limit, bytes consumed)."""
    line_no = 0
    while True:
        line = src.readline(max_line_bytes + 1)
        if not line:
            return
        line_no += 1
        nbytes = len(line)
        if line_no == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if line.endswith(b"\n"):
            content: bytes | None = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        elif len(line) > max_line_bytes:
            # Skip the rest of an over-long line in bounded pieces rather than reading it whole.
            del line
            while True:
                piece = src.readline(_SKIP_CHUNK)
                nbytes += len(piece)
                if not piece or piece.endswith(b"\n"):
                    break
            content = None
        else:
            content = line[:-1] if line.endswith(b"\r") else line
        src.lines_read = line_no
        yield line_no, content, nbytes


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _map_keys(data: dict[str, Any], column_map: dict[str, str] | None) -> dict[str, Any]:
    if not column_map:
        return data
    return {column_map[key]: value for key, value in data.items() if key in column_map}


def _iter_jsonl(
    lines: Iterator[tuple[int, bytes | None, int]],
    *,
    column_map: dict[str, str] | None,
    start_line: int,
    max_line_bytes: int,
) -> Iterator[Row]:
    pending = 0
    for line_no, content, nbytes in lines:
        pending += nbytes
        if line_no <= start_line:
            pending = 0
            continue
        if content is None:
            yield Row(line_no, None, _too_long(line_no, nbytes, max_line_bytes), pending)
            pending = 0
            continue
        if not content.strip():
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Row(line_no, None, _bad_utf8(line_no, content, exc), pending)
            pending = 0
            continue
        error = None
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            error = f"line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})"
        except ValueError as exc:
            error = f"line {line_no}: not valid JSON ({exc})"
        except RecursionError:
            error = f"line {line_no}: not valid JSON (nested too deeply)"
        if error is None and not isinstance(obj, dict):
            error = f'line {line_no}: expected a JSON object such as {{"text": "..."}}, not {_type_name(obj)}'
        if error is not None:
            yield Row(line_no, None, error, pending)
        else:
            yield Row(line_no, _map_keys(obj, column_map), None, pending)
        pending = 0


def _iter_txt(
    lines: Iterator[tuple[int, bytes | None, int]],
    *,
    start_line: int,
    max_line_bytes: int,
) -> Iterator[Row]:
    pending = 0
    for line_no, content, nbytes in lines:
        pending += nbytes
        if line_no <= start_line:
            pending = 0
            continue
        if content is None:
            yield Row(line_no, None, _too_long(line_no, nbytes, max_line_bytes), pending)
        elif not content.strip():
            continue
        else:
            try:
                yield Row(line_no, {"text": content.decode("utf-8")}, None, pending)
            except UnicodeDecodeError as exc:
                yield Row(line_no, None, _bad_utf8(line_no, content, exc), pending)
        pending = 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _iter_csv(
    lines: Iterator[tuple[int, bytes | None, int]],
    *,
    filename: str,
    fields: list[str],
    column_map: dict[str, str] | None,
    start_line: int,
    max_line_bytes: int,
) -> Iterator[Row]:
    consumed = 0
    current_line = 0
    header_text = None
    for current_line, content, nbytes in lines:
        consumed += nbytes
        if content is None:
            raise FileError(f'the header (line {current_line}) of "{filename}" is over {human_size(max_line_bytes)}')
        if content.strip():
            try:
                header_text = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileError(f"{_bad_utf8(current_line, content, exc)} (in the CSV header)") from None
            break
    if header_text is None:
        raise FileError(f'"{filename}" has no CSV header and no rows; the first line must name the columns')
    header_line = current_line

    # A header without commas but with tabs or semicolons names the delimiter (Excel in many locales uses ";").
    delimiter = ","
    if "," not in header_text:
        delimiter = "\t" if "\t" in header_text else ";" if ";" in header_text else ","
    header = [cell.strip() for cell in next(csv.reader([header_text], delimiter=delimiter))]
    _check_header(
        header,
        filename=filename,
        fields=fields,
        column_map=column_map,
        header_text=header_text,
    )

    # Lines the reader cannot be given (not UTF-8, over-long) become blank lines, and their error is reported
    # on the record that spans them.
    bad: dict[int, str] = {}

    def text_lines() -> Iterator[str]:
        nonlocal consumed, current_line
        for current_line, content, nbytes in lines:
            consumed += nbytes
            if content is None:
                bad[current_line] = _too_long(current_line, nbytes, max_line_bytes)
                yield "\n"
                continue
            try:
                yield content.decode("utf-8") + "\n"
            except UnicodeDecodeError as exc:
                bad[current_line] = _bad_utf8(current_line, content, exc)
                yield "\n"

    if csv.field_size_limit() < max_line_bytes:
        # Process-wide setting, only ever raised: the default 128 KiB would refuse long but legal fields.
        csv.field_size_limit(max_line_bytes)
    reader = csv.reader(text_lines(), delimiter=delimiter)
    columns = ",".join(header)
    previous_end = header_line
    reported = 0
    while True:
        error = None
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            cells, error = [], f"line {previous_end + 1}: not valid CSV ({exc})"
        start, end = previous_end + 1, current_line
        previous_end = end
        if bad:
            hits = sorted(n for n in bad if n <= end)
            if hits and error is None:
                error = bad[hits[0]]
            for n in hits:
                del bad[n]
        if end <= start_line:
            reported = consumed
            continue
        if error is None and not any(cell.strip() for cell in cells):
            continue
        if error is None and end > start and consumed - reported > max_line_bytes:
            error = (
                f"line {start}: this record spans lines {start}-{end} and is {human_size(consumed - reported)} long, "
                f"over the limit of {human_size(max_line_bytes)} per record; shorten or split it"
            )
        if error is None and len(cells) != len(header):
            error = (
                f"line {start}: {_plural(len(cells), 'value')} but the header has "
                f"{_plural(len(header), 'column')} ({columns})"
            )
        if error is not None:
            yield Row(start, None, error, consumed - reported)
        else:
            yield Row(
                start,
                _map_keys(dict(zip(header, cells, strict=True)), column_map),
                None,
                consumed - reported,
            )
        reported = consumed


def _check_header(
    header: list[str],
    *,
    filename: str,
    fields: list[str],
    column_map: dict[str, str] | None,
    header_text: str,
) -> None:
    for position, name in enumerate(header, start=1):
        if not name:
            raise FileError(f'the CSV header of "{filename}" has an empty name for column {position}; name it')
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise FileError(f'the CSV header of "{filename}" names column "{duplicates[0]}" twice; rename one')
    expected = list(column_map) if column_map else fields
    if not set(header) & set(expected):
        found = ", ".join(f'"{name}"' for name in header[:5])
        hint = "; it looks like JSON Lines, so name the file .jsonl" if header_text.lstrip().startswith("{") else ""
        raise FileError(
            f'the first line of "{filename}" must be a CSV header naming the columns ({", ".join(expected)}), '
            f"found {found}{hint}"
        )
    if column_map:
        missing = [name for name in column_map if name not in header]
        if missing:
            raise FileError(
                f'column "{missing[0]}" of the column mapping is not in the CSV header (found: {", ".join(header)})'
            )


def _check_column_map(column_map: dict[str, str] | None, fields: list[str]) -> None:
    if not column_map:
        return
    targets = list(column_map.values())
    for source, target in column_map.items():
        if target not in fields:
            raise FileError(
                f'the column mapping sends "{source}" to "{target}", which this Datanet does not take '
                f"(it takes: {', '.join(fields)})"
            )
        if targets.count(target) > 1:
            raise FileError(f'the column mapping sends more than one column to "{target}"; keep one')


def _sniff(path: str | os.PathLike[str], *, filename: str, fmt: str, gzipped: bool, limit: int) -> None:
    with open(path, "rb") as raw:
        raw_head = raw.read(SNIFF_BYTES)
    if not raw_head:
        raise FileError(f'"{filename}" is empty; upload a file with at least one record')
    if gzipped and not raw_head.startswith(b"\x1f\x8b"):
        raise FileError(
            f'"{filename}" is named .gz but is not gzip-compressed; remove ".gz" from the name or compress it'
        )
    if not gzipped and raw_head.startswith(b"\x1f\x8b"):
        raise FileError(f'"{filename}" is gzip-compressed but its name does not end in .gz; rename it "{filename}.gz"')
    head = raw_head
    if gzipped:
        src = _Source(path, gzipped=True, limit=limit, filename=filename)
        try:
            head = src.read(SNIFF_BYTES)
        finally:
            src.close()
        if not head:
            raise FileError(f'"{filename}" is empty once decompressed; upload a file with at least one record')
    wanted = _FORMAT_NAMES[fmt]
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            what = next(
                (name for magic, name in _MAGIC if head.startswith(magic)),
                "something else",
            )
            raise FileError(f'"{filename}" is named .parquet but is {what}, not a Parquet file')
        return
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileError(f'"{filename}" is saved as UTF-16; save it as UTF-8 and upload it again')
    for magic, name in _MAGIC:
        if head.startswith(magic):
            raise FileError(f'"{filename}" looks like {name}, not {wanted}; upload a {wanted} file')
    if b"\x00" in head:
        raise FileError(f'"{filename}" contains binary data (NUL bytes), not {wanted} text; upload a UTF-8 text file')
    text_head = head.removeprefix(_BOM)
    if not text_head.strip() and len(head) < SNIFF_BYTES:
        raise FileError(f'"{filename}" has no records: it holds only blank lines')
    if fmt == "jsonl":
        first = text_head.lstrip()[:1]
        if first and first != b"{":
            hint = (
                "it looks like one JSON array; write one object per line instead"
                if first == b"["
                else f'found "{first.decode("utf-8", "replace")}" first'
            )
            raise FileError(
                f'"{filename}" is not JSON Lines: each line must be one JSON object starting with "{{"; {hint}'
            )


def iter_rows(
    path: str | os.PathLike[str],
    *,
    filename: str,
    kind: str,
    column_map: dict[str, str] | None = None,
    max_expanded_bytes: int,
    max_line_bytes: int,
    start_line: int = 0,
) -> Iterator[Row]:
    """Rows of the upload at `path`, named `filename` by the user, for a Datanet of record kind `kind`.

    Whole-file problems visible from the start of the file raise FileError here; the returned iterator may raise
    FileError later (gzip truncated or too large). Rows with line_no <= start_line are skipped without parsing.
    `column_map` renames source columns (CSV and Parquet columns, JSON Lines keys) to record fields and drops the
    unmapped ones; without it, names pass through and unknown ones are left for validation to report.
    """
    fmt, gzipped = detect_format(filename)
    fields = get_kind(kind).field_names
    if fmt == "txt" and kind != "text":
        raise FileError(
            f".txt files hold one plain-text record per line, so they only suit plain-text Datanets; this one "
            f"takes {', '.join(fields)}: upload JSON Lines, CSV or Parquet"
        )
    _check_column_map(column_map, fields)
    _sniff(path, filename=filename, fmt=fmt, gzipped=gzipped, limit=max_expanded_bytes)
    if fmt == "parquet":
        return _iter_parquet(
            path,
            filename=filename,
            gzipped=gzipped,
            column_map=column_map,
            start_line=start_line,
            max_expanded_bytes=max_expanded_bytes,
            max_line_bytes=max_line_bytes,
        )
    return _iter_text(
        path,
        filename=filename,
        fmt=fmt,
        gzipped=gzipped,
        fields=fields,
        column_map=column_map,
        start_line=start_line,
        max_expanded_bytes=max_expanded_bytes,
        max_line_bytes=max_line_bytes,
    )


def _iter_text(
    path: str | os.PathLike[str],
    *,
    filename: str,
    fmt: str,
    gzipped: bool,
    fields: list[str],
    column_map: dict[str, str] | None,
    start_line: int,
    max_expanded_bytes: int,
    max_line_bytes: int,
) -> Iterator[Row]:
    src = _Source(path, gzipped=gzipped, limit=max_expanded_bytes, filename=filename)
    try:
        lines = _lines(src, max_line_bytes)
        if fmt == "jsonl":
            rows = _iter_jsonl(
                lines,
                column_map=column_map,
                start_line=start_line,
                max_line_bytes=max_line_bytes,
            )
        elif fmt == "txt":
            rows = _iter_txt(lines, start_line=start_line, max_line_bytes=max_line_bytes)
        else:
            rows = _iter_csv(
                lines,
                filename=filename,
                fields=fields,
                column_map=column_map,
                start_line=start_line,
                max_line_bytes=max_line_bytes,
            )
        seen = False
        for row in rows:
            seen = True
            yield row
        if not seen and start_line == 0:
            raise FileError(f'"{filename}" has no records')
    finally:
        src.close()


def _parquet_row_sizes(batch: Any) -> list[int]:
    """Each row's decoded size: UTF-8/binary length of its strings, the width of fixed-size values, computed from
    the column buffers without building a single Python value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = pa.array([0] * batch.num_rows, type=pa.int64())
    for column in batch.columns:
        kind = column.type
        if pa.types.is_dictionary(kind) and _is_bytes_type(kind.value_type):
            lengths = pc.take(pc.binary_length(column.dictionary).cast(pa.int64()), column.indices)
        elif _is_bytes_type(kind):
            lengths = pc.binary_length(column).cast(pa.int64())
        elif pa.types.is_boolean(kind) or pa.types.is_null(kind):
            lengths = pa.array([1] * len(column), type=pa.int64())
        else:
            try:
                width = max(1, kind.bit_width // 8)
            except ValueError:  # nested: its buffers are already decoded, spread evenly over its rows
                width = max(1, column.nbytes // max(1, len(column)))
            lengths = pa.array([width] * len(column), type=pa.int64())
        total = pc.add(total, pc.fill_null(lengths, 0))
    return total.to_pylist()


def _is_bytes_type(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _iter_parquet(
    path: str | os.PathLike[str],
    *,
    filename: str,
    gzipped: bool,
    column_map: dict[str, str] | None,
    start_line: int,
    max_expanded_bytes: int,
    max_line_bytes: int,
) -> Iterator[Row]:
    """Rows of a Parquet file, each counted by its decoded size against the per-row and whole-file limits.

    A few hundred bytes of Parquet can decode to gigabytes (one long string in a dictionary page, repeated by
    run-length-encoded indices), so string columns are read as dictionary arrays, rows are sized from the arrays'
    buffers, and Python values are built only for rows within the limits, a few MB at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    temp_path = None
    try:
        if gzipped:
            # Parquet needs random access, so a gzipped one is expanded to a temporary file (bounded by the limit).
            src = _Source(path, gzipped=True, limit=max_expanded_bytes, filename=filename)
            try:
                with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as temp:
                    temp_path = temp.name
                    while chunk := src.read(_SKIP_CHUNK):
                        temp.write(chunk)
            finally:
                src.close()
            path = temp_path
        too_large = FileError(
            f'"{filename}" decodes to more than {human_size(max_expanded_bytes)}, the most one upload may hold; '
            "split it into smaller files"
        )
        if os.path.getsize(path) > max_expanded_bytes:
            raise too_large
        try:
            schema = pq.ParquetFile(path).schema_arrow
            as_dictionary = [field.name for field in schema if _is_bytes_type(field.type)]
            parquet = pq.ParquetFile(path, read_dictionary=as_dictionary)
        except (pa.ArrowException, OSError) as exc:
            raise FileError(f'"{filename}" is not a readable Parquet file ({exc}); export it again') from None
        names = parquet.schema_arrow.names
        columns = None
        if column_map:
            missing = [name for name in column_map if name not in names]
            if missing:
                raise FileError(
                    f'column "{missing[0]}" of the column mapping is not in "{filename}" (found: {", ".join(names)})'
                )
            columns = list(column_map)
        metadata = parquet.metadata
        if metadata.num_rows == 0:
            raise FileError(f'"{filename}" has no records')
        # Pages that are not dictionary-encoded decode to their uncompressed size, known before reading any.
        if sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups)) > max_expanded_bytes:
            raise too_large
        row_no = 0
        decoded = 0
        try:
            for group in range(parquet.num_row_groups):
                meta = metadata.row_group(group)
                encoded_per_row = meta.total_byte_size // max(1, meta.num_rows)
                batch_rows = max(1, min(_PARQUET_BATCH_ROWS, _PARQUET_BATCH_BYTES // max(1, encoded_per_row)))
                batches = parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)
                for batch in batches:
                    sizes = _parquet_row_sizes(batch)
                    first = 0
                    while first < len(sizes):
                        # A run of rows worth at most _PARQUET_BATCH_BYTES once decoded (one row at least).
                        last, run = first, 0
                        while last < len(sizes) and (last == first or run + sizes[last] <= _PARQUET_BATCH_BYTES):
                            run += sizes[last]
                            last += 1
                        keep = [i for i in range(first, last) if sizes[i] <= max_line_bytes]
                        values = iter(batch.take(keep).to_pylist()) if keep else iter(())
                        for i in range(first, last):
                            row_no += 1
                            decoded += sizes[i]
                            if decoded > max_expanded_bytes:
                                raise too_large
                            data = next(values) if sizes[i] <= max_line_bytes else None
                            if row_no <= start_line:
                                continue
                            if data is None:
                                yield Row(row_no, None, _too_long(row_no, sizes[i], max_line_bytes), sizes[i])
                            else:
                                yield Row(row_no, _map_keys(data, column_map), None, sizes[i])
                        first = last
        except (pa.ArrowException, OSError) as exc:
            raise FileError(f'"{filename}" is a damaged Parquet file ({exc}); export it again') from None
    finally:
        if temp_path is not None:
            os.unlink(temp_path)


__all__ = ["SUPPORTED", "FileError", "Row", "detect_format", "human_size", "iter_rows"]
