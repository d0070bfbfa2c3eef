"""Jester loaders on the real files and on generated files of each layout."""

import logging
import sys
import zipfile

import numpy as np
import openpyxl
import pytest
import xlwt

from flowrec.datasets import load_jester
from flowrec.datasets.jester import _parse_numbered_texts, _parse_text_sheet
from flowrec.exceptions import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    DuplicateRatingsError,
)

DATASET_4_FILE = "[final] April 2015 to Nov 30 2019 - Transformed Jester Data - .xlsx"

# ---------------------------------------------------------------------------
# real files


@pytest.fixture(scope="module")
def jester_1_1(data_home):
    return load_jester("1-1", data_home=data_home)


def test_1_1_counts(jester_1_1):
    ratings = jester_1_1.ratings
    assert len(ratings) == 1810455
    assert ratings["user_id"].nunique() == 24983
    assert ratings["user_id"].min() == 1
    assert ratings["item_id"].nunique() == 100
    assert not (ratings["rating"] == 99).any()
    assert ratings["rating"].min() == -9.95
    assert ratings["rating"].max() == 10.0
    assert list(ratings.columns) == ["user_id", "item_id", "rating"]


def test_1_1_first_user_matches_published_row(jester_1_1):
    first = jester_1_1.ratings[jester_1_1.ratings["user_id"] == 1]
    assert len(first) == 74
    assert first["rating"].tolist()[:5] == [-7.82, 8.79, -9.66, -8.16, -7.52]


def test_1_1_joke_texts_skip_macosx(jester_1_1):
    items = jester_1_1.items
    assert items["item_id"].tolist() == list(range(1, 101))
    assert items.loc[0, "text"].startswith("A man visits the doctor.")
    assert "<" not in "".join(items["text"])
    assert jester_1_1.rating_scale == (-10.0, 10.0)


def test_1_1_from_path_to_csv_zip(data_home):
    data = load_jester("1-1", path=data_home / "jester" / "jester-data-1.zip")
    assert len(data.ratings) == 1810455
    assert data.items is not None


def test_dataset_4_real(data_home, caplog):
    with caplog.at_level(logging.WARNING, logger="flowrec.datasets.jester"):
        data = load_jester("4", data_home=data_home)
    ratings = data.ratings
    assert len(ratings) == 106489
    assert ratings["user_id"].nunique() == 7699
    assert ratings["item_id"].nunique() == 158 - 22
    retired = {1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 14, 20, 27, 31, 43, 51, 52, 61, 73, 80, 100, 116}
    assert retired.isdisjoint(ratings["item_id"])
    # out-of-scale values are kept by default, and reported
    outside = (ratings["rating"] < -10) | (ratings["rating"] > 10)
    assert outside.sum() == 541
    assert ratings["rating"].min() == -42.28
    assert ratings["rating"].max() == 28.58
    assert "541 ratings lie outside" in caplog.text
    # float noise is rounded away
    assert np.allclose(ratings["rating"], ratings["rating"].round(2), rtol=0, atol=0)
    assert len(data.items) == 158
    assert data.items["item_id"].tolist() == list(range(1, 159))


def test_dataset_2_items_real(data_home, tmp_path):
    # ratings of dataset 2 are not in the shared data, so pair the real
    # jester_items.dat with a generated ratings file
    (tmp_path / "jester_ratings.dat").write_text("1\t\t5\t\t0.219\n")
    (tmp_path / "jester_items.dat").write_bytes(
        (data_home / "jester" / "jester_items.dat").read_bytes()
    )
    items = load_jester("2", path=tmp_path).items
    assert len(items) == 150
    assert items["item_id"].tolist() == list(range(1, 151))
    first = items.loc[0, "text"]
    assert first.startswith('A man visits the doctor. The doctor says, "I have bad news')
    assert "&quot;" not in "".join(items["text"])
    assert "\r" not in "".join(items["text"])


def test_missing_names_url_and_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_jester("1-2", data_home=tmp_path)
    message = str(caught.value)
    assert "jester_dataset_1_2.zip" in message
    assert str(tmp_path / "jester") in message


# ---------------------------------------------------------------------------
# generated files

MATRIX = [
    # count, joke 1, joke 2, joke 3, joke 4
    [3, -7.82, 8.79, 99, 0.5],
    [2, 99, 10, 99, -9.95],
    [4, 1.5, 2, 3.25, -0.1],
]


def write_xls(path, rows):
    book = xlwt.Workbook()
    sheet = book.add_sheet("jester")
    for row_index, row in enumerate(rows):
        for column_index, value in enumerate(row):
            sheet.write(row_index, column_index, value)
    book.save(str(path))
    return path


def write_xlsx(path, rows):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def write_csv(path, rows):
    path.write_text("".join(",".join(f"{value:g}" for value in row) + "\n" for row in rows))
    return path


EXPECTED = {
    "user_id": [1, 1, 1, 2, 2, 3, 3, 3, 3],
    "item_id": [1, 2, 4, 2, 4, 1, 2, 3, 4],
    "rating": [-7.82, 8.79, 0.5, 10.0, -9.95, 1.5, 2.0, 3.25, -0.1],
}


@pytest.mark.parametrize("writer", [write_xls, write_xlsx, write_csv])
def test_matrix_layouts(tmp_path, writer):
    suffix = {write_xls: "xls", write_xlsx: "xlsx", write_csv: "csv"}[writer]
    path = writer(tmp_path / f"jester-data-2.{suffix}", MATRIX)
    data = load_jester("1-2", path=path)
    assert data.ratings.to_dict("list") == EXPECTED
    assert data.items is None


def test_matrix_in_renamed_zip(tmp_path):
    xls = write_xls(tmp_path / "jester-data-3.xls", MATRIX)
    with zipfile.ZipFile(tmp_path / "part3.zip", "w") as archive:
        archive.write(xls, "jester-data-3.xls")
        archive.writestr("__MACOSX/._jester-data-3.xls", b"resource fork")
    data = load_jester("1-3", path=tmp_path / "part3.zip")
    assert data.ratings.to_dict("list") == EXPECTED


def test_dataset_1_concatenates_parts(tmp_path):
    folder = tmp_path / "jester"
    folder.mkdir()
    write_csv(folder / "jester-data-1.csv", MATRIX)
    write_xls(folder / "jester-data-2.xls", MATRIX[:2])
    write_xlsx(folder / "jester-data-3.xlsx", MATRIX[2:])
    data = load_jester("1", data_home=tmp_path)
    ratings = data.ratings
    assert ratings["user_id"].unique().tolist() == [1, 2, 3, 4, 5, 6]
    assert len(ratings) == 9 + 5 + 4
    part_3 = ratings[ratings["user_id"] == 6]
    assert part_3["rating"].tolist() == [1.5, 2.0, 3.25, -0.1]
    assert data.name == "jester-1"


def test_dataset_1_rejects_path(tmp_path):
    with pytest.raises(ValueError, match="path cannot be used with variant='1'"):
        load_jester("1", path=tmp_path)


def test_xls_without_xlrd(tmp_path, monkeypatch):
    path = write_xls(tmp_path / "jester-data-1.xls", MATRIX)
    monkeypatch.setitem(sys.modules, "xlrd", None)
    with pytest.raises(ImportError, match=r"flowrec\[xls\]"):
        load_jester("1-1", path=path)


def test_count_column_mismatch_is_logged(tmp_path, caplog):
    rows = [[5, 1.0, 2.0, 99, 99], [2, 1.0, 2.0, 99, 99]]
    path = write_csv(tmp_path / "jester-data-1.csv", rows)
    with caplog.at_level(logging.WARNING, logger="flowrec.datasets.jester"):
        data = load_jester("1-1", path=path)
    assert len(data.ratings) == 4
    assert "in 1 rows the count column differs" in caplog.text


def test_dataset_3_layout(tmp_path):
    rows = [[2] + [99] * 148 + [4.5, -3.0], [1, 7.25] + [99] * 149]
    write_xls(tmp_path / "FINAL jester 2006-15.xls", rows)
    data = load_jester("3", path=tmp_path)
    assert data.ratings.to_dict("list") == {
        "user_id": [1, 1, 2],
        "item_id": [149, 150, 1],
        "rating": [4.5, -3.0, 7.25],
    }


def test_dataset_2_long_layout(tmp_path):
    (tmp_path / "jester_ratings.dat").write_text(
        "1\t\t5\t\t0.219\n1\t\t7\t\t-9.281\n2\t\t5\t\t10.0\n"
    )
    data = load_jester("2", path=tmp_path)
    assert data.ratings.to_dict("list") == {
        "user_id": [1, 1, 2],
        "item_id": [5, 7, 5],
        "rating": [0.22, -9.28, 10.0],
    }
    assert data.items is None


def test_numbered_texts_mixed_line_ends():
    # the real jester_items.dat has a recorded digest, so its parser is fed
    # generated bytes directly
    data = b"1:\n<p>\r\nSay &quot;hi&quot; it&#039;s me<br />\r\n</p>\r\n\n2:\r\n<p>Two</p>\n"
    items = _parse_numbered_texts(data)
    assert items.to_dict("list") == {"item_id": [1, 2], "text": ["Say \"hi\" it's me", "Two"]}


def test_dataset_2_duplicates_raise(tmp_path):
    (tmp_path / "jester_ratings.dat").write_text("1\t\t5\t\t0.2\n1\t\t5\t\t3.0\n")
    with pytest.raises(DuplicateRatingsError, match="user 1 and item 5 occur 2 times"):
        load_jester("2", path=tmp_path)


@pytest.fixture
def dataset_4_folder(tmp_path):
    rows = [[2, 19.490000000000002, -15.94] + [99] * 156, [1, 99, 3.0] + [99] * 156]
    folder = tmp_path / "jester"
    folder.mkdir()
    write_xlsx(folder / "generated.xlsx", rows)
    write_xlsx(folder / "texts.xlsx", [["First joke"], [None], ["Third  joke"]])
    return folder


def test_dataset_4_out_of_range_policies(dataset_4_folder):
    path = dataset_4_folder / "generated.xlsx"
    kept = load_jester("4", path=path).ratings["rating"].tolist()
    assert kept == [19.49, -15.94, 3.0]
    clipped = load_jester("4", path=path, out_of_range="clip").ratings["rating"].tolist()
    assert clipped == [10.0, -10.0, 3.0]
    dropped = load_jester("4", path=path, out_of_range="drop").ratings
    assert dropped["rating"].tolist() == [3.0]
    assert dropped.index.tolist() == [0]
    with pytest.raises(ValueError, match=r"2 ratings lie outside the scale -10\.\.10"):
        load_jester("4", path=path, out_of_range="raise")
    with pytest.raises(ValueError, match="out_of_range must be one of"):
        load_jester("4", path=path, out_of_range="ignore")


def test_joke_sheet_skips_empty_rows(dataset_4_folder):
    items = _parse_text_sheet((dataset_4_folder / "texts.xlsx").read_bytes())
    assert items.to_dict("list") == {"item_id": [1, 3], "text": ["First joke", "Third joke"]}


def test_dataset_4_joke_sheet_digest_checked(dataset_4_folder):
    (dataset_4_folder / "texts.xlsx").rename(dataset_4_folder / "Dataset4JokeSet.xlsx")
    # the official sheet's SHA-256 is recorded, so a different file is rejected
    with pytest.raises(ChecksumMismatchError, match=r"Dataset4JokeSet\.xlsx has SHA-256"):
        load_jester("4", path=dataset_4_folder / "generated.xlsx")


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"variant must be one of '1', '1-1'.*got '5'"):
        load_jester("5")


def test_all_of_dataset_1_names_missing_part(data_home):
    with pytest.raises(DatasetNotFoundError, match=r"load_jester\('1'\) needs all three parts of dataset 1, and part '1-2' is missing: .*call load_jester\('1-1'\)"):
        load_jester("1", data_home=data_home)
