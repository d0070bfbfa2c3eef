"""MovieLens loaders on the real files and on generated files of each layout."""

import dataclasses
import zipfile

import numpy as np
import pandas as pd
import pytest

from flowrec.datasets import get_data_home, load_movielens, load_movielens_100k_split, movielens
from flowrec.exceptions import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    DuplicateRatingsError,
)

# ---------------------------------------------------------------------------
# real files


@pytest.fixture(scope="module")
def ml100k(data_home):
    return load_movielens("100k", data_home=data_home)


def test_100k_counts(ml100k):
    ratings = ml100k.ratings
    assert len(ratings) == 100000
    assert ratings["user_id"].nunique() == 943
    assert ratings["item_id"].nunique() == 1682
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    counts = ratings["rating"].value_counts().sort_index()
    assert counts.to_dict() == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    assert ratings["timestamp"].min() == 874724710
    assert ratings["timestamp"].max() == 893286638


def test_100k_dtypes_and_metadata(ml100k):
    assert ml100k.ratings["user_id"].dtype == np.int64
    assert ml100k.ratings["rating"].dtype == np.float64
    assert ml100k.rating_scale == (1.0, 5.0)
    assert ml100k.name == "movielens-100k"
    assert "943 users" in ml100k.description
    assert repr(ml100k).startswith("RatingDataset(name='movielens-100k', n_ratings=100000")


def test_100k_items_latin1_titles(ml100k):
    items = ml100k.items.set_index("item_id")
    assert len(items) == 1682
    assert items.loc[543, "title"] == "Misérables, Les (1995)"
    assert items.loc[1633, "title"].startswith("Á köldum klaka")
    assert items.loc[267, "title"] == "unknown"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert items["video_release_date"].isna().all()
    assert items.loc[1, "Comedy"] == 1


def test_100k_users(ml100k):
    users = ml100k.users
    assert len(users) == 943
    assert users["gender"].value_counts().to_dict() == {"M": 670, "F": 273}
    assert users["zip_code"].map(type).eq(str).all()
    assert (~users["zip_code"].str.isdigit()).sum() == 18


def test_100k_official_splits_partition(data_home, ml100k):
    full = ml100k.ratings.sort_values(["user_id", "item_id"]).reset_index(drop=True)
    tests = []
    for split in ("u1", "u2", "u3", "u4", "u5"):
        train, test = load_movielens_100k_split(split, data_home=data_home)
        assert (len(train), len(test)) == (80000, 20000)
        both = pd.concat([train, test]).sort_values(["user_id", "item_id"])
        pd.testing.assert_frame_equal(both.reset_index(drop=True), full)
        tests.append(test)
    union = pd.concat(tests).sort_values(["user_id", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(union, full)


def test_100k_split_ua_holds_ten_per_user(data_home):
    train, test = load_movielens_100k_split("ua", data_home=data_home)
    assert (len(train), len(test)) == (90570, 9430)
    assert test.groupby("user_id").size().eq(10).all()


def test_100k_split_rejects_unknown_name(data_home):
    with pytest.raises(ValueError, match=r"split must be one of u1, .*got 'u6'"):
        load_movielens_100k_split("u6", data_home=data_home)


def test_latest_small_counts(data_home):
    data = load_movielens("latest-small", data_home=data_home)
    assert len(data.ratings) == 100836
    assert data.ratings["user_id"].nunique() == 610
    assert data.ratings["item_id"].nunique() == 9724
    assert data.rating_scale == (0.5, 5.0)
    assert sorted(data.ratings["rating"].unique()) == [x / 2 for x in range(1, 11)]
    assert len(data.items) == 9742
    assert data.users is None


def test_latest_small_quoted_titles_and_crlf(data_home):
    items = load_movielens("latest-small", data_home=data_home).items.set_index("item_id")
    # CRLF line ends must not leave a carriage return in the last column
    assert not items["genres"].str.contains("\r").any()
    assert items["title"].str.contains(",").sum() == 2079
    assert items.loc[11, "title"] == "American President, The (1995)"


def test_1m_metadata_only_reports_missing_ratings(data_home):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_movielens("1m", data_home=data_home)
    message = str(caught.value)
    assert "lacks ratings.dat" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert str(data_home / "ml-1m.zip") in message


def test_100k_path_to_extracted_folder(data_home):
    data = load_movielens("100k", path=data_home / "ml-100k")
    assert len(data.ratings) == 100000


def test_100k_path_to_ratings_file(data_home):
    data = load_movielens("100k", path=data_home / "ml-100k" / "u.data")
    assert len(data.ratings) == 100000
    assert data.items is not None


# ---------------------------------------------------------------------------
# generated files in each release layout


@pytest.fixture
def unpinned_1m(monkeypatch):
    """Forget the recorded digests of ml-1m's movies.dat and users.dat, which
    the generated files below cannot match."""
    release = dataclasses.replace(movielens.RELEASES["1m"], file_sha256={})
    monkeypatch.setitem(movielens.RELEASES, "1m", release)


def write_ml1m(folder, *, crlf=False, duplicate=False):
    """Write a tiny ml-1m release: '::' separators, latin-1 movies.dat."""
    folder.mkdir(parents=True)
    end = "\r\n" if crlf else "\n"
    ratings = ["1::1193::5::978300760", "1::661::3::978302109", "2::1193::4::978298413"]
    if duplicate:
        ratings.append("2::1193::2::978298999")
    (folder / "ratings.dat").write_text(end.join(ratings) + end, encoding="ascii")
    movies = ["661::James and the Giant Peach (1996)::Animation|Children's|Musical",
              "1193::Misérables, Les (1995)::Drama|Musical"]
    (folder / "movies.dat").write_bytes((end.join(movies) + end).encode("latin-1"))
    users = ["1::F::1::10::48067", "2::M::56::16::70072"]
    (folder / "users.dat").write_text(end.join(users) + end, encoding="ascii")
    return folder


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted(folder.iterdir()):
            zipped.write(file, f"{folder.name}/{file.name}")
    return archive


@pytest.mark.parametrize("crlf", [False, True])
def test_1m_layout(tmp_path, crlf, unpinned_1m):
    write_ml1m(tmp_path / "ml-1m", crlf=crlf)
    data = load_movielens("1m", path=tmp_path / "ml-1m")
    assert data.ratings.to_dict("list") == {
        "user_id": [1, 1, 2],
        "item_id": [1193, 661, 1193],
        "rating": [5.0, 3.0, 4.0],
        "timestamp": [978300760, 978302109, 978298413],
    }
    titles = data.items.set_index("item_id")["title"]
    assert titles[1193] == "Misérables, Les (1995)"
    assert data.items.set_index("item_id").loc[661, "genres"] == "Animation|Children's|Musical"
    assert data.users["zip_code"].tolist() == ["48067", "70072"]
    assert data.users["age"].tolist() == [1, 56]


def test_1m_archive_without_recorded_name(tmp_path, unpinned_1m):
    archive = zip_folder(write_ml1m(tmp_path / "ml-1m"), tmp_path / "my-copy.zip")
    data = load_movielens("1m", path=archive)
    assert len(data.ratings) == 3


def test_1m_duplicates_raise(tmp_path, unpinned_1m):
    write_ml1m(tmp_path / "ml-1m", duplicate=True)
    with pytest.raises(DuplicateRatingsError, match=r"user 2 and item 1193 occur 2 times"):
        load_movielens("1m", path=tmp_path / "ml-1m")


def test_cached_archive_with_wrong_digest_raises(tmp_path, unpinned_1m):
    zip_folder(write_ml1m(tmp_path / "build" / "ml-1m"), tmp_path / "ml-1m.zip")
    with pytest.raises(ChecksumMismatchError, match=r"cached archive .*ml-1m\.zip"):
        load_movielens("1m", data_home=tmp_path)


def test_10m_layout(tmp_path):
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n")
    (folder / "movies.dat").write_bytes(
        "122::Boomerang (1992)::Comedy|Romance\n"
        "200::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
        .encode("utf-8")
    )
    data = load_movielens("10m", data_home=tmp_path)
    assert data.ratings["rating"].tolist() == [5.0, 4.5]
    assert data.rating_scale == (0.5, 5.0)
    assert data.items.set_index("item_id").loc[200, "title"].startswith("Amélie")
    assert data.users is None


@pytest.mark.parametrize("variant", ["20m", "25m", "32m"])
def test_csv_layouts(tmp_path, variant):
    folder = tmp_path / f"ml-{variant}"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,2,3.5,1112486027\r\n1,29,3.5,1112484676\r\n"
    )
    (folder / "movies.csv").write_bytes(
        'movieId,title,genres\r\n2,Jumanji (1995),Adventure|Children\r\n'
        '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Drama\r\n'
        .encode("utf-8")
    )
    data = load_movielens(variant, data_home=tmp_path)
    assert data.ratings["item_id"].tolist() == [2, 29]
    assert data.ratings["timestamp"].dtype == np.int64
    title = data.items.set_index("item_id").loc[29, "title"]
    assert title == "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert data.items["genres"].tolist() == ["Adventure|Children", "Drama"]


# ---------------------------------------------------------------------------
# where files are looked for


def test_path_takes_precedence_over_cache(tmp_path, data_home, unpinned_1m):
    write_ml1m(tmp_path / "elsewhere" / "ml-1m")
    data = load_movielens("1m", data_home=data_home, path=tmp_path / "elsewhere" / "ml-1m")
    assert len(data.ratings) == 3


def test_env_variable_sets_data_home(tmp_path, monkeypatch, unpinned_1m):
    write_ml1m(tmp_path / "ml-1m")
    monkeypatch.setenv("FLOWREC_DATA", str(tmp_path))
    assert get_data_home() == tmp_path
    assert len(load_movielens("1m").ratings) == 3


def test_argument_beats_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWREC_DATA", str(tmp_path / "unused"))
    assert get_data_home(tmp_path) == tmp_path


def test_default_data_home(monkeypatch):
    monkeypatch.delenv("FLOWREC_DATA", raising=False)
    assert get_data_home().name == "flowrec_data"
    assert get_data_home().is_absolute()


def test_missing_everything_names_url_file_and_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_movielens("25m", data_home=tmp_path)
    message = str(caught.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-25m.zip" in message
    assert str(tmp_path / "ml-25m.zip") in message
    assert "download=True" in message
    assert not any(tmp_path.iterdir())


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_movielens("100k", path=tmp_path / "nowhere")


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"variant must be one of .*'latest-small'.*got '2m'"):
        load_movielens("2m")


def test_corrupt_extracted_file_raises(tmp_path, data_home):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_bytes((data_home / "ml-100k" / "u.data").read_bytes()[:-40])
    with pytest.raises(ChecksumMismatchError, match=r"u\.data has SHA-256"):
        load_movielens("100k", data_home=tmp_path)


def test_named_official_archive_is_verified(tmp_path):
    archive = zip_folder(write_ml1m(tmp_path / "ml-1m"), tmp_path / "ml-1m.zip")
    with pytest.raises(ChecksumMismatchError, match="expected a6898adb"):
        load_movielens("1m", path=archive)


def test_truncated_zip_path_is_reported(tmp_path):
    (tmp_path / "copy.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(zipfile.BadZipFile, match=r"copy\.zip is not a valid zip archive"):
        load_movielens("20m", path=tmp_path / "copy.zip")
