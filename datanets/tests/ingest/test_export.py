import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datanets.ingest.export import write_jsonl, write_parquet

ROWS = [{"text": f"record {i} é", "label": "positive" if i % 2 else "negative", "n": i} for i in range(25)]


def test_write_jsonl_is_canonical_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert write_jsonl(iter(ROWS), path) == 25
    lines = path.read_bytes().splitlines()
    assert lines[0] == '{"label":"negative","n":0,"text":"record 0 é"}'.encode()
    assert [json.loads(line) for line in lines] == ROWS


def test_write_jsonl_gzipped_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_jsonl(ROWS, first)
    write_jsonl(ROWS, second)
    assert first.read_bytes() == second.read_bytes()
    assert len(gzip.decompress(first.read_bytes()).splitlines()) == 25


def test_write_parquet_reads_back_with_flat_columns_and_no_pandas_metadata(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.parquet"
    assert write_parquet(iter(ROWS), path, batch_size=10) == 25
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    table = parquet.read()
    assert table.schema == pa.schema([("text", pa.string()), ("label", pa.string()), ("n", pa.int64())])
    assert not table.schema.metadata or b"pandas" not in table.schema.metadata
    assert table.to_pylist() == ROWS


def test_write_parquet_fills_missing_optional_columns_with_null(tmp_path: Path) -> None:
    path = tmp_path / "qa.parquet"
    rows = [
        {"question": "q1", "context": "c", "answer": "a"},
        {"question": "q2", "answer": "b"},
    ]
    write_parquet(rows, path)
    assert pq.read_table(path).to_pylist()[1] == {
        "question": "q2",
        "context": None,
        "answer": "b",
    }


def test_write_parquet_refuses_new_or_nested_columns_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.parquet"
    with pytest.raises(ValueError, match="columns not in the schema: extra"):
        write_parquet([{"text": "a"}, {"text": "b", "extra": "x"}], path, batch_size=1)
    with pytest.raises(ValueError, match="only flat columns export"):
        write_parquet([{"text": ["a"]}], path)
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    schema = pa.schema([("text", pa.string())])
    assert write_parquet([], path, schema=schema) == 0
    assert pq.read_table(path).schema.names == ["text"]
