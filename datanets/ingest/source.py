"""What every reader shares: the errors a file can cause, a parsed row, and the expanded bytes of an upload counted
against the expanded-size limit as they are read (gzip included). Django-free."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

_SKIP_CHUNK = 64 * 1024
_BOM = b"\xef\xbb\xbf"


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


def _map_keys(data: dict[str, Any], column_map: dict[str, str] | None) -> dict[str, Any]:
    if not column_map:
        return data
    return {column_map[key]: value for key, value in data.items() if key in column_map}
