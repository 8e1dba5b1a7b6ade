"""Streaming snapshot exports that Hugging Face `datasets` loads as is (JSON Lines and Parquet).

Both writers go through a temporary file next to the target and rename it at the end, so a crash never leaves a
half-written export under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.canonical import canonical_json


def _temporary(path: str | os.PathLike[str]) -> str:
    return f"{os.fspath(path)}.{os.getpid()}.tmp"


def _maybe_gzip(raw: IO[bytes], path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    if not path.endswith(".gz"):
        return contextlib.nullcontext(raw)
    # No file name and mtime 0 in the gzip header, so the same rows always give the same bytes.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """One canonical JSON object per line (gzipped when the path ends in .gz); returns the number of rows."""
    temporary = _temporary(path)
    count = 0
    try:
        with open(temporary, "wb") as raw, _maybe_gzip(raw, os.fspath(path)) as out:
            for row in rows:
                out.write(canonical_json(row) + b"\n")
                count += 1
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return count


def _arrow_type(name: str, values: list[Any]) -> pa.DataType:
    present = [value for value in values if value is not None]
    if all(isinstance(value, str) for value in present):
        return pa.string()
    if all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        return pa.int64()
    if all(isinstance(value, bool) for value in present):
        return pa.bool_()
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in present):
        return pa.float64()
    kinds = sorted({type(value).__name__ for value in present})
    raise ValueError(f"column {name!r} mixes or nests values ({', '.join(kinds)}); only flat columns export")


def infer_schema(rows: list[dict[str, Any]]) -> pa.Schema:
    """Flat schema from sample rows: columns in order of first appearance; strings, integers, floats, booleans."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.schema([pa.field(name, _arrow_type(name, [row.get(name) for row in rows])) for name in names])


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def write_parquet(
    rows: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    batch_size: int = 10_000,
    schema: pa.Schema | None = None,
) -> int:
    """Write rows in row groups of `batch_size`; the schema is `schema` or inferred from the first batch.

    Later rows may leave columns out (written as null) but may not bring new ones. Returns the number of rows.
    """
    temporary = _temporary(path)
    count = 0
    writer: pq.ParquetWriter | None = None
    try:
        for batch in _batches(rows, batch_size):
            if schema is None:
                schema = infer_schema(batch)
            if writer is None:
                writer = pq.ParquetWriter(temporary, schema, compression="snappy")
            extra = {name for row in batch for name in row} - set(schema.names)
            if extra:
                raise ValueError(
                    f"rows {count + 1}-{count + len(batch)} have columns not in the schema: {', '.join(sorted(extra))}"
                )
            writer.write_table(pa.Table.from_pylist(batch, schema=schema), row_group_size=batch_size)
            count += len(batch)
        if writer is None:
            writer = pq.ParquetWriter(temporary, schema or pa.schema([]), compression="snappy")
        writer.close()
        writer = None
        os.replace(temporary, path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(temporary):
            os.unlink(temporary)
    return count
