"""Parquet rows, read in runs of bounded decoded size: a tiny, highly compressed file cannot expand into gigabytes
of Python values, and each row's decoded size is held to the per-record limit before it is built. Django-free."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

from datanets.ingest.source import _SKIP_CHUNK, FileError, Row, _map_keys, _Source, _too_long, human_size

_PARQUET_BATCH_ROWS = 1024
_PARQUET_BATCH_BYTES = 4 * 1024 * 1024  # decoded bytes turned into Python values at once


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
