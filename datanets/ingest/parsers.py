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
import json
import os
from collections.abc import Iterator
from typing import Any

from datanets.ingest.parquet import _iter_parquet
from datanets.ingest.schema import get_kind
from datanets.ingest.source import _BOM, FileError, Row, _bad_utf8, _lines, _map_keys, _Source, _too_long, human_size

SUPPORTED = ".jsonl, .csv, .txt, .parquet, optionally gzipped (.gz)"
SNIFF_BYTES = 8192

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


__all__ = ["SUPPORTED", "FileError", "Row", "detect_format", "human_size", "iter_rows"]
