import codecs
import csv
import io
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fewshot import FewshotError
from fewshot.ingest import (
    MAX_BYTES,
    MAX_DOC_CHARS,
    SUPPORTED,
    guess_text_column,
    read_path,
    read_upload,
    read_uploads,
    table_columns,
)


def texts(frame: pd.DataFrame) -> list[str]:
    return frame["text"].tolist()


# Formats


def test_txt_lines_one_document_per_non_empty_line():
    frame = read_upload("notes.txt", b"first line\n\n  \r\nsecond line\r\nthird\rfourth\n")
    assert texts(frame) == ["first line", "second line", "third", "fourth"]
    assert list(frame.columns) == ["text", "source"]
    assert set(frame["source"]) == {"notes.txt"}


def test_txt_file_mode_is_one_document():
    frame = read_upload("essay.txt", b"Para one.\n\nPara two.\n", txt_mode="file")
    assert texts(frame) == ["Para one.\n\nPara two.\n"]


def test_unknown_txt_mode():
    with pytest.raises(FewshotError, match="txt_mode"):
        read_upload("a.txt", b"x", txt_mode="paragraphs")


def test_csv_text_column_by_name_and_metadata_kept():
    data = b'title,text,label\nHi,"Hello, world",greeting\nBye,"Line one\nline two",farewell\n'
    frame = read_upload("data.csv", data)
    assert list(frame.columns) == ["text", "source", "title", "label"]
    assert texts(frame) == ["Hello, world", "Line one\nline two"]
    assert frame["label"].tolist() == ["greeting", "farewell"]


def test_csv_explicit_text_column_and_case_insensitive_match():
    data = b"title,text\nShort title,the body text\n"
    assert texts(read_upload("a.csv", data, text_column="title")) == ["Short title"]
    assert texts(read_upload("a.csv", data, text_column="TITLE")) == ["Short title"]
    frame = read_upload("a.csv", data, text_column="title")
    assert frame["original_text"].tolist() == ["the body text"]  # reserved name renamed


def test_missing_text_column_names_it_and_lists_columns():
    with pytest.raises(FewshotError, match=r"no column 'body'.*available columns: title, text"):
        read_upload("a.csv", b"title,text\nx,y\n", text_column="body")


def test_guess_text_column_prefers_names_then_longest_words():
    named = pd.DataFrame({"id": ["1"], "Sentence": ["short"], "notes": ["a much longer note"]})
    assert guess_text_column(named) == "Sentence"
    unnamed = pd.DataFrame(
        {
            "id": ["12345678901234567890", "12345678901234567891"],
            "tag": ["news", "sport"],
            "blurb": ["A long piece of writing", "Another long piece"],
            "n": [1, 2],
        }
    )
    assert guess_text_column(unnamed) == "blurb"
    with pytest.raises(FewshotError):
        guess_text_column(pd.DataFrame())


def test_tsv_and_semicolon_csv():
    tsv = read_upload("a.tsv", b"label\tsentence\npos\tgood, really good\n")
    assert texts(tsv) == ["good, really good"]
    semi = read_upload("b.csv", b"label;content\npos;fine, thanks\n")
    assert texts(semi) == ["fine, thanks"] and semi["label"].tolist() == ["pos"]


def test_jsonl_with_nested_values_and_bad_lines():
    lines = [
        json.dumps({"text": "first", "meta": {"a": [1, 2]}, "n": 3}),
        "not json at all",
        "",
        json.dumps({"text": "second", "extra": None}),
    ]
    result = read_uploads([("a.jsonl", "\n".join(lines).encode())])
    frame = result.frame
    assert texts(frame) == ["first", "second"]
    assert frame.loc[0, "meta"] == '{"a": [1, 2]}'
    assert frame.loc[0, "n"] == "3"
    assert any("1 lines that are not JSON: 2" in note for note in result.report.notes)


def test_json_list_of_objects_and_strings():
    data = json.dumps([{"body": "one", "y": 1}, {"body": "two"}]).encode()
    assert texts(read_upload("a.json", data)) == ["one", "two"]
    assert texts(read_upload("b.json", b'["just a text", "another"]')) == ["just a text", "another"]


def test_json_that_is_not_json_or_objects():
    with pytest.raises(FewshotError, match="could not be parsed as JSON"):
        read_upload("a.json", b"{not: json}")
    with pytest.raises(FewshotError, match="JSON objects"):
        read_upload("a.jsonl", b"1\n2\n")
    with pytest.raises(FewshotError, match="could not be parsed"):
        read_upload("deep.json", b"[" * 100_000)


def test_a_column_without_letters_is_noted():
    result = read_uploads([("n.csv", b"id,score\n1,2\n3,4\n")])
    assert result.report.notes == [
        "n.csv: column 'id' has no text in it (no letters); pick another"
    ]


def test_table_columns():
    assert table_columns("a.txt", b"hello") == []
    assert table_columns("a.csv", b"x,,x\n1,2,3\n") == ["x", "column_2", "x.1"]
    assert table_columns("a.jsonl", b'{"a": 1, "b": 2}\n{"c": 3}\n') == ["a", "b", "c"]


def test_unsupported_extension_lists_supported():
    with pytest.raises(FewshotError, match=r"\.xlsx.*\.txt, \.csv, \.tsv, \.jsonl, \.json"):
        read_upload("sheet.xlsx", b"PK\x03\x04")


# Decoding


@pytest.mark.parametrize(
    "data",
    [
        "café ☕\nnaïve\n".encode(),
        codecs.BOM_UTF8 + "café ☕\nnaïve\n".encode(),
        codecs.BOM_UTF16_LE + "café ☕\nnaïve\n".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "café ☕\nnaïve\n".encode("utf-16-be"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le", "utf16-be"],
)
def test_unicode_encodings(data):
    result = read_uploads([("a.txt", data)])
    assert texts(result.frame) == ["café ☕", "naïve"]
    assert result.report.notes == []


def test_utf16_csv_with_bom():
    data = "text,label\nüber,x\n".encode("utf-16")  # Python writes the BOM
    assert texts(read_upload("a.csv", data)) == ["über"]


def test_windows_1252_and_latin1_fallbacks_are_noted():
    cp = read_uploads([("a.txt", "“smart quotes” café\n".encode("cp1252"))])
    assert texts(cp.frame) == ["“smart quotes” café"]
    assert cp.report.notes == ["a.txt: not valid UTF-8, read as Windows-1252"]
    data = b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e \x81\n"  # 0x81 is not a cp1252 character
    latin = read_uploads([("b.txt", data)])
    assert texts(latin.frame) == ["café au lait, crème brûlée \x81"]
    assert latin.report.notes == ["b.txt: not valid UTF-8, read as Latin-1"]


def test_empty_file():
    with pytest.raises(FewshotError, match="^a.csv is empty$"):
        read_upload("a.csv", b"")
    with pytest.raises(FewshotError, match="is empty"):
        read_upload("a.txt", codecs.BOM_UTF8)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        bytes(range(1, 32)) * 20,  # no NUL, but mostly control characters
        codecs.BOM_UTF16_LE + b"\x00\xd8",  # a lone surrogate is not UTF-16
    ],
)
def test_binary_files(data):
    with pytest.raises(FewshotError, match="^x.txt looks like a binary file, not text$"):
        read_upload("x.txt", data)


def test_size_cap():
    with pytest.raises(FewshotError, match="limit is 200 MB"):
        read_upload("big.txt", bytes(MAX_BYTES + 1))


# Cleaning and reporting


def test_empty_rows_and_duplicates_across_files_are_reported():
    files = [
        ("a.csv", b"text,label\n  hello  ,x\n,y\n   ,z\nworld,w\n"),
        ("b.txt", b"hello\nnew one\nworld\nnew one\n"),
    ]
    result = read_uploads(files)
    assert texts(result.frame) == ["hello", "world", "new one"]
    assert result.frame["source"].tolist() == ["a.csv", "a.csv", "b.txt"]
    assert result.frame["label"].tolist()[:2] == ["x", "w"]
    assert pd.isna(result.frame["label"].tolist()[2])
    report = result.report
    assert (report.rows_read, report.empty_dropped, report.duplicates_dropped) == (8, 2, 3)
    assert report.documents == 3
    assert "b.txt: 3 duplicate texts dropped" in report.notes
    assert "3 documents from 8 rows" in report.summary()


def test_no_documents():
    with pytest.raises(FewshotError, match="No documents found in a.txt, b.csv"):
        read_uploads([("a.txt", b"\n  \n"), ("b.csv", b"text,label\n ,x\n")])
    with pytest.raises(FewshotError):
        read_uploads([])


def test_long_documents_are_truncated_with_a_note():
    long = "word " * (MAX_DOC_CHARS // 2)
    result = read_uploads([("a.txt", f"{long}\nshort\n".encode())])
    assert [len(t) for t in texts(result.frame)] == [MAX_DOC_CHARS, 5]
    assert result.report.truncated == 1
    assert any(note.endswith("cut short: 1") for note in result.report.notes)


def test_ragged_csv():
    data = (
        b"id,text,label\n"
        b"1,fine row,a\n"
        b"2,short row\n"  # too few fields: padded
        b"3,too,many,fields\n"  # too many: skipped and reported
        b"4,trailing comma,b,\n"  # empty extra field: kept
        b'5,"quoted, with ""quotes""",c\n'
    )
    result = read_uploads([("r.csv", data)])
    assert texts(result.frame) == [
        "fine row",
        "short row",
        "trailing comma",
        'quoted, with "quotes"',
    ]
    assert result.frame["label"].tolist() == ["a", "", "b", "c"]
    assert any("header (an unquoted delimiter?): 1, on lines 4" in n for n in result.report.notes)


def test_one_column_csv_with_unquoted_commas():
    frame = read_upload("s.csv", b"sentence\nGreat, would buy again\nBad, broke\n")
    assert texts(frame) == ["Great, would buy again", "Bad, broke"]


def test_stray_quotes_are_read_leniently_and_unclosed_quotes_fail():
    result = read_uploads([("q.csv", b'text,n\n"quoted" then more,1\nplain,2\n')])
    assert texts(result.frame) == ["quoted then more", "plain"]
    assert any("stray quotes" in note for note in result.report.notes)
    with pytest.raises(FewshotError, match="quote is never closed"):
        read_upload("u.csv", b'text,n\n"never closed,1\nplain,2\n')


def test_read_path(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_bytes(b"text\tlabel\n a \tx\na\ty\nb\tz\n")
    frame = read_path(path)
    assert texts(frame) == ["a", "b"]
    assert frame["source"].tolist() == ["corpus.tsv", "corpus.tsv"]
    assert texts(read_path(str(path), text_column="label")) == ["x", "y", "z"]
    with pytest.raises(FewshotError, match="not found"):
        read_path(tmp_path / "missing.csv")


# Fuzzing: whatever comes in, the answer is a table with text or a FewshotError


def check_never_crashes(name: str, data: bytes, **kwargs) -> None:
    try:
        frame = read_upload(name, data, **kwargs)
    except FewshotError:
        return
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:2]) == ["text", "source"]
    assert all(isinstance(t, str) for t in frame["text"].tolist())
    try:
        result = read_uploads([(name, data)], **kwargs)
    except FewshotError:
        return
    assert len(result.frame) > 0 and result.report.documents == len(result.frame)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), ext=st.sampled_from(SUPPORTED))
def test_fuzz_random_bytes(data, ext):
    check_never_crashes(f"random{ext}", data)


# Printable text plus the characters that trouble table parsers.
cells = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(',;\t"\n\r '), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=6),
    ext=st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    quoted=st.booleans(),
    text_column=st.sampled_from([None, "text", "missing"]),
)
def test_fuzz_small_tables(rows, ext, encoding, quoted, text_column):
    header, body = rows[0], rows[1:]
    if ext in (".json", ".jsonl"):
        records = [dict(zip(header, row, strict=False)) for row in body]
        if ext == ".json":
            text = json.dumps(records)
        else:
            text = "\n".join(json.dumps(r) for r in records)
    elif quoted:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter="\t" if ext == ".tsv" else ",").writerows(rows)
        text = buffer.getvalue()
    else:
        text = "\n".join(("\t" if ext == ".tsv" else ",").join(row) for row in rows)
    check_never_crashes(f"table{ext}", text.encode(encoding), text_column=text_column)
