import gzip
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datanets.ingest.parsers import FileError, Row, detect_format, iter_rows
from datanets.ingest.schema import RecordError, validate_record

MB = 1 << 20


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def read(path: Path, kind: str = "text", **options: Any) -> list[Row]:
    options.setdefault("max_expanded_bytes", 50 * MB)
    options.setdefault("max_line_bytes", MB)
    return list(iter_rows(path, filename=options.pop("filename", path.name), kind=kind, **options))


def file_error(path: Path, kind: str = "text", **options: Any) -> str:
    with pytest.raises(FileError) as caught:
        read(path, kind, **options)
    return str(caught.value)


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


# Format detection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", ("jsonl", False)),
        ("A.NDJSON", ("jsonl", False)),
        ("x.json-lines.gz", ("jsonl", True)),
        ("data.csv.gz", ("csv", True)),
        ("notes.txt", ("txt", False)),
        ("t.parquet", ("parquet", False)),
    ],
)
def test_detect_format(name: str, expected: tuple[str, bool]) -> None:
    assert detect_format(name) == expected


def test_unknown_extension_lists_what_is_supported() -> None:
    with pytest.raises(FileError) as caught:
        detect_format("data.xlsx")
    assert "supported: .jsonl, .csv, .txt, .parquet, optionally gzipped (.gz)" in str(caught.value)
    assert "export the spreadsheet as CSV" in str(caught.value)
    with pytest.raises(FileError, match=r"JSON Lines \(\.jsonl\), one object per line"):
        detect_format("records.json")


# Good paths


def test_jsonl_good_path_with_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", b'{"text": "one"}\r\n\n{"text": "two"}')
    rows = read(path)
    assert [(row.line_no, row.data, row.error) for row in rows] == [
        (1, {"text": "one"}, None),
        (3, {"text": "two"}, None),
    ]
    assert sum(row.nbytes for row in rows) == path.stat().st_size


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl.gz", jsonl([{"text": f"r{i}"} for i in range(100)]))
    rows = read(path)
    assert [row.data for row in rows] == [{"text": f"r{i}"} for i in range(100)]
    assert sum(row.nbytes for row in rows) == len(gzip.decompress(path.read_bytes()))


def test_csv_good_path_with_quoted_multiline_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.csv",
        b'text,label\n"line one\nline two",positive\n"a, b",negative\n',
    )
    rows = read(path, "labeled_text")
    assert [(row.line_no, row.data) for row in rows] == [
        (2, {"text": "line one\nline two", "label": "positive"}),
        (4, {"text": "a, b", "label": "negative"}),
    ]
    assert sum(row.nbytes for row in rows) == path.stat().st_size


def test_gzipped_csv_with_semicolons(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv.gz", b"text;label\nhello;positive\n")
    assert [row.data for row in read(path, "labeled_text")] == [{"text": "hello", "label": "positive"}]


def test_txt_one_record_per_non_blank_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", b"first\n\n  \nsecond\n")
    assert [(row.line_no, row.data) for row in read(path)] == [
        (1, {"text": "first"}),
        (4, {"text": "second"}),
    ]


def test_gzipped_txt(tmp_path: Path) -> None:
    assert [row.data for row in read(write(tmp_path, "d.txt.gz", b"a\nb\n"))] == [
        {"text": "a"},
        {"text": "b"},
    ]


def write_parquet_file(path: Path, columns: dict[str, list[Any]], row_group_size: int = 1000) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def test_parquet_good_path_counts_rows_from_one(tmp_path: Path) -> None:
    path = write_parquet_file(tmp_path / "d.parquet", {"text": ["a", "b", "c"], "label": ["x", "y", "x"]}, 2)
    rows = read(path, "labeled_text")
    assert [(row.line_no, row.data) for row in rows] == [
        (1, {"text": "a", "label": "x"}),
        (2, {"text": "b", "label": "y"}),
        (3, {"text": "c", "label": "x"}),
    ]
    assert [row.nbytes for row in rows] == [2, 2, 2]  # decoded size: the bytes of its values


def test_gzipped_parquet(tmp_path: Path) -> None:
    plain = write_parquet_file(tmp_path / "p.parquet", {"text": ["a", "b"]})
    path = write(tmp_path, "d.parquet.gz", plain.read_bytes())
    assert [row.data for row in read(path)] == [{"text": "a"}, {"text": "b"}]


# Column mapping


def test_csv_column_map_renames_and_ignores_unmapped_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"review,sentiment,source\nnice,positive,web\n")
    rows = read(path, "labeled_text", column_map={"review": "text", "sentiment": "label"})
    assert rows[0].data == {"text": "nice", "label": "positive"}


def test_parquet_and_jsonl_column_map(tmp_path: Path) -> None:
    parquet = write_parquet_file(tmp_path / "d.parquet", {"body": ["hi"], "id": [7]})
    assert read(parquet, column_map={"body": "text"})[0].data == {"text": "hi"}
    lines = write(tmp_path, "d.jsonl", b'{"body": "hi", "id": 7}\n')
    assert read(lines, column_map={"body": "text"})[0].data == {"text": "hi"}


def test_column_map_naming_a_missing_column_or_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"review,stars\nnice,5\n")
    message = file_error(path, "labeled_text", column_map={"review": "text", "sentiment": "label"})
    assert message == 'column "sentiment" of the column mapping is not in the CSV header (found: review, stars)'
    message = file_error(path, column_map={"review": "body"})
    assert message == 'the column mapping sends "review" to "body", which this Datanet does not take (it takes: text)'


def test_csv_without_map_passes_unknown_columns_to_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"text,source\nhello,web\n")
    (row,) = read(path)
    with pytest.raises(RecordError, match=r'unknown field "source" \(this Datanet takes: text\)'):
        validate_record(row.data, kind="text")


# Per-row problems


def test_malformed_jsonl_line_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        b'{"text": "a"}\n{"text": "b" "x": 1}\n[1, 2]\n{"a": NaN}\n{"text": "c"}\n',
    )
    rows = read(path)
    assert [row.error for row in rows] == [
        None,
        "line 2: not valid JSON (Expecting ',' delimiter at column 14)",
        'line 3: expected a JSON object such as {"text": "..."}, not a list',
        "line 4: not valid JSON (NaN is not allowed)",
        None,
    ]
    assert rows[-1].data == {"text": "c"}


def test_csv_rows_with_missing_or_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.csv",
        b"text,label,source\na,positive,web\nb,negative\nc,positive,web,extra\nd,x,y\n",
    )
    rows = read(path, "labeled_text", column_map={"text": "text", "label": "label"})
    assert [row.error for row in rows] == [
        None,
        "line 3: 2 values but the header has 3 columns (text,label,source)",
        "line 4: 4 values but the header has 3 columns (text,label,source)",
        None,
    ]


@pytest.mark.parametrize(
    ("name", "content", "position"),
    [
        ("d.jsonl", b'{"text": "caf\xff"}\n{"text": "ok"}\n', 14),
        ("d.txt", b"caf\xff\nok\n", 4),
        ("d.csv", b"text\ncaf\xff\nok\n", 4),
    ],
)
def test_non_utf8_bytes_on_a_line(tmp_path: Path, name: str, content: bytes, position: int) -> None:
    rows = read(write(tmp_path, name, content))
    line = 2 if name.endswith(".csv") else 1
    assert rows[0].error == f"line {line}: not valid UTF-8 (byte 0xff at position {position}); save the file as UTF-8"
    assert rows[1].data == {"text": "ok"}


@pytest.mark.parametrize(
    ("name", "body"),
    [("d.jsonl", b'{"text": "a"}\n'), ("d.csv", b"text\na\n"), ("d.txt", b"a\n")],
)
def test_utf8_bom_is_stripped(tmp_path: Path, name: str, body: bytes) -> None:
    rows = read(write(tmp_path, name, b"\xef\xbb\xbf" + body))
    assert [row.data for row in rows] == [{"text": "a"}]


def test_ten_megabyte_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        out.write(b'{"text": "before"}\n{"text": "')
        for _ in range(10):
            out.write(b"a" * MB)
        out.write(b'"}\n{"text": "after"}\n')
    tracemalloc.start()
    try:
        rows = list(
            iter_rows(
                path,
                filename="big.jsonl",
                kind="text",
                max_expanded_bytes=50 * MB,
                max_line_bytes=MB,
            )
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MB
    assert [row.data for row in rows] == [{"text": "before"}, None, {"text": "after"}]
    assert rows[1].error == "line 2: 10 MB long, over the limit of 1 MB per line; shorten or split this record"
    assert sum(row.nbytes for row in rows) == path.stat().st_size


def test_long_line_in_csv_is_a_row_error(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"text\n" + b"x" * 5000 + b"\nok\n")
    rows = read(path, max_line_bytes=1000)
    assert rows[0].error is not None
    assert rows[0].error.startswith("line 2: 4.9 KB long, over the limit of 1000 bytes")
    assert rows[1].data == {"text": "ok"}


def test_resume_skips_lines_up_to_start_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl([{"text": f"r{i}"} for i in range(1, 11)]))
    assert [row.line_no for row in read(path, start_line=7)] == [8, 9, 10]
    csv_path = write(tmp_path, "d.csv", b"text\n" + b"".join(b"r%d\n" % i for i in range(2, 12)))
    assert [row.data for row in read(csv_path, start_line=9)] == [
        {"text": "r10"},
        {"text": "r11"},
    ]
    parquet = write_parquet_file(tmp_path / "d.parquet", {"text": [f"r{i}" for i in range(1, 11)]}, 3)
    assert [row.line_no for row in read(parquet, start_line=7)] == [8, 9, 10]
    assert read(path, start_line=10) == []


def test_row_errors_feed_validation_messages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        b'{"text": "good", "label": "meh"}\n{"label": "positive"}\n',
    )
    messages = []
    for row in read(path, "labeled_text"):
        with pytest.raises(RecordError) as caught:
            validate_record(row.data, kind="labeled_text", labels=["negative", "positive"])
        messages.append(str(caught.value))
    assert messages == [
        'field "label" must be one of: negative, positive (got "meh")',
        'missing required field "text"',
    ]


# Whole-file problems


@pytest.mark.parametrize("name", ["e.jsonl", "e.csv", "e.txt", "e.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert file_error(path) == f'"{name}" is empty; upload a file with at least one record'


def test_empty_gzip_and_blank_only_file(tmp_path: Path) -> None:
    assert "is empty once decompressed" in file_error(write(tmp_path, "e.jsonl.gz", b""))
    assert file_error(write(tmp_path, "b.txt", b"\n \n")) == '"b.txt" has no records: it holds only blank lines'


def test_csv_header_only_has_no_records(tmp_path: Path) -> None:
    assert file_error(write(tmp_path, "h.csv", b"text\n")) == '"h.csv" has no records'


def test_csv_without_header(tmp_path: Path) -> None:
    message = file_error(
        write(tmp_path, "n.csv", b"I loved it,positive\nawful,negative\n"),
        "labeled_text",
    )
    assert message == (
        'the first line of "n.csv" must be a CSV header naming the columns (text, label), '
        'found "I loved it", "positive"'
    )


def test_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'{"text": "x"}\n')
        zeros = b"0" * MB
        for _ in range(200):
            out.write(zeros)
    assert path.stat().st_size < 2 * MB
    started = time.monotonic()
    message = file_error(path, max_expanded_bytes=10 * MB)
    assert time.monotonic() - started < 5
    assert (
        message
        == '"bomb.jsonl.gz" expands to more than 10 MB, the most one upload may hold; split it into smaller files'
    )


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(jsonl([{"text": f"record {i}" * 20} for i in range(2000)]))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    message = file_error(path)
    assert message.startswith('"t.jsonl.gz" is a damaged or truncated gzip file (')
    assert message.endswith("compress it again and re-upload")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "img.csv",
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
            '"img.csv" looks like a PNG image, not CSV; upload a CSV file',
        ),
        (
            "a.txt",
            b"PK\x03\x04" + b"\x00" * 50,
            (
                '"a.txt" looks like a ZIP archive (or an Excel/Word file, which are ZIP inside), not plain text; '
                "upload a plain text file"
            ),
        ),
        (
            "b.csv",
            b"text\nab\x00cd\n",
            '"b.csv" contains binary data (NUL bytes), not CSV text; upload a UTF-8 text file',
        ),
        (
            "c.jsonl",
            b"text,label\na,b\n",
            '"c.jsonl" is not JSON Lines: each line must be one JSON object starting with "{"; found "t" first',
        ),
        (
            "d.jsonl",
            b'[{"text": "a"}]',
            (
                '"d.jsonl" is not JSON Lines: each line must be one JSON object starting with "{"; '
                "it looks like one JSON array; write one object per line instead"
            ),
        ),
        (
            "e.jsonl.gz",
            b'{"text": "a"}\n',
            '"e.jsonl.gz" is named .gz but is not gzip-compressed; remove ".gz" from the name or compress it',
        ),
        (
            "f.parquet",
            b"text\na\n",
            '"f.parquet" is named .parquet but is something else, not a Parquet file',
        ),
        (
            "g.csv",
            "text\nü\n".encode("utf-16"),
            '"g.csv" is saved as UTF-16; save it as UTF-8 and upload it again',
        ),
    ],
)
def test_content_that_does_not_match_the_extension(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert file_error(path) == message


def test_gzip_without_gz_name(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n'))
    assert file_error(path) == '"h.jsonl" is gzip-compressed but its name does not end in .gz; rename it "h.jsonl.gz"'


def compressible_parquet(path: Path, *, rows: int, value_bytes: int) -> Path:
    """A few hundred bytes of Parquet that decode to rows x value_bytes: one long string in a zstd dictionary page,
    repeated by run-length-encoded indices. Built as a dictionary array, so this process never holds it decoded."""
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, type=pa.int32()), pa.array(["x" * value_bytes]))
    pq.write_table(pa.table({"text": column}), path, compression="zstd", store_schema=False)
    return path


PEAK_SCRIPT = """
import json, os, sys
from datanets.ingest.parsers import iter_rows
import pyarrow.compute, pyarrow.parquet

def status_kib(name):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(name + ":"))

# Resident now, not the peak so far: the imports' own transient peak must not hide what reading adds.
base = status_kib("VmRSS")
rows = errors = 0
for row in iter_rows(sys.argv[1], filename="bomb.parquet", kind="text", max_expanded_bytes=1 << 40,
                     max_line_bytes=1 << 20):
    rows += 1
    errors += row.error is not None
print(json.dumps({"rows": rows, "errors": errors, "peak_kib": status_kib("VmHWM") - base}))
"""


@pytest.mark.parametrize(
    ("rows", "value_bytes", "errors"),
    [(150, 2 * MB, 150), (1000, MB // 2, 0)],
    ids=["rows-over-the-row-limit", "rows-within-it"],
)
def test_parquet_bomb_is_read_in_bounded_memory(tmp_path: Path, rows: int, value_bytes: int, errors: int) -> None:
    """300-500 MB decoded from a file under 1 KB: the reader's peak resident memory, in a fresh process, stays a few
    MB above what its imports hold. VmHWM is ru_maxrss without what the process inherits across fork and exec (a
    child of pytest starts with pytest's peak in ru_maxrss)."""
    import subprocess
    import sys

    path = compressible_parquet(tmp_path / "bomb.parquet", rows=rows, value_bytes=value_bytes)
    assert path.stat().st_size < 2048
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path)], cwd=root, capture_output=True, text=True, check=True
    )
    measured = json.loads(out.stdout)
    assert (measured["rows"], measured["errors"]) == (rows, errors)
    assert measured["peak_kib"] < 48 * 1024, measured  # before: +300 MB and more (a batch decoded whole)


def test_parquet_row_over_the_limit_is_a_row_error_sized_by_its_decoded_bytes(tmp_path: Path) -> None:
    path = compressible_parquet(tmp_path / "b.parquet", rows=3, value_bytes=2 * MB)
    rows = read(path)
    assert [row.error for row in rows] == [
        f"line {n}: 2 MB long, over the limit of 1 MB per line; shorten or split this record" for n in (1, 2, 3)
    ]
    assert [row.nbytes for row in rows] == [2 * MB] * 3


def test_parquet_decoding_past_the_total_limit_is_a_file_error(tmp_path: Path) -> None:
    path = compressible_parquet(tmp_path / "b.parquet", rows=10_000, value_bytes=100_000)  # 1 GB decoded
    seen: list[Row] = []
    with pytest.raises(FileError) as caught:
        for row in iter_rows(path, filename="b.parquet", kind="text", max_expanded_bytes=10 * MB, max_line_bytes=MB):
            seen.append(row)
    assert str(caught.value) == (
        '"b.parquet" decodes to more than 10 MB, the most one upload may hold; split it into smaller files'
    )
    assert len(seen) == 10 * MB // 100_000


def test_truncated_gzip_names_the_last_complete_line(tmp_path: Path) -> None:
    data = gzip.compress(jsonl([{"text": f"record {i}" * 20} for i in range(20_000)]))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    seen: list[Row] = []
    with pytest.raises(FileError) as caught:
        for row in iter_rows(path, filename="t.jsonl.gz", kind="text", max_expanded_bytes=50 * MB, max_line_bytes=MB):
            seen.append(row)
    message = str(caught.value)
    broke_after = int(message.split("the file is truncated after line ")[1].split(";")[0])
    assert seen and seen[-1].line_no <= broke_after < 20_000
    assert message.endswith("compress it again and re-upload")


def test_csv_record_spanning_lines_is_held_to_the_row_limit(tmp_path: Path) -> None:
    cell = "\n".join(["y" * 500] * 10)
    path = write(tmp_path, "d.csv", f'text\n"{cell}"\nok\n'.encode())
    rows = read(path, max_line_bytes=1024)
    assert rows[0].error is not None and "spans lines 2-11" in rows[0].error and "per record" in rows[0].error
    assert rows[1].data == {"text": "ok"}


def test_truncated_parquet(tmp_path: Path) -> None:
    path = write_parquet_file(tmp_path / "p.parquet", {"text": ["a"] * 100})
    path.write_bytes(path.read_bytes()[:-20])
    assert file_error(path).startswith('"p.parquet" is not a readable Parquet file (')


def test_txt_only_suits_plain_text_datanets(tmp_path: Path) -> None:
    message = file_error(write(tmp_path, "d.txt", b"hello\n"), "labeled_text")
    assert message == (
        ".txt files hold one plain-text record per line, so they only suit plain-text Datanets; "
        "this one takes text, label: upload JSON Lines, CSV or Parquet"
    )


def test_plain_file_over_the_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl([{"text": "x" * 100}] * 200))
    assert "is larger than 10 KB" in file_error(path, max_expanded_bytes=10 * 1024)
