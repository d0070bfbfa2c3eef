"""MovieLens rating datasets published by GroupLens Research.

Every release is read in its own format. 100K has tab-separated ``u.data``
and ``|``-separated latin-1 ``u.item`` and ``u.user``. 1M (latin-1) and 10M
have ``::``-separated ``.dat`` files. 20M, 25M, 32M and latest-small have CSV
files with a header and quoted titles, with CRLF line ends in latest-small.
Ratings keep the release's own user and movie ids.
"""

import csv
import io
import logging

import pandas as pd

from flowrec.datasets._base import RatingDataset, check_unique_pairs
from flowrec.datasets._fetch import Release, _SingleFileBundle, open_release
from flowrec.exceptions import DatasetNotFoundError

logger = logging.getLogger(__name__)

_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

# SHA-256 of the files inside the 100K and latest-small archives, so that an
# extracted copy is verified as well as the archive.
_ML_100K_FILES = {
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}
_ML_LATEST_SMALL_FILES = {
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
}
_ML_1M_FILES = {
    "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
    "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
}

# Archive digests: GroupLens publishes only an MD5 file next to each archive.
# The SHA-256 values below are the ones that several independent projects
# pinning these archives record. For 100K, 10M, 20M and 25M a project also
# records the matching GroupLens MD5. docs/datasets.md lists both digests.
RELEASES = {
    "100k": Release(
        archive="ml-100k.zip",
        url=_BASE_URL + "ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        folders=("ml-100k",),
        required=(("u.data",),),
        file_sha256=_ML_100K_FILES,
    ),
    "1m": Release(
        archive="ml-1m.zip",
        url=_BASE_URL + "ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        folders=("ml-1m",),
        required=(("ratings.dat",),),
        file_sha256=_ML_1M_FILES,
    ),
    "10m": Release(
        archive="ml-10m.zip",
        url=_BASE_URL + "ml-10m.zip",
        sha256="813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
        folders=("ml-10M100K", "ml-10m"),
        required=(("ratings.dat",),),
    ),
    "20m": Release(
        archive="ml-20m.zip",
        url=_BASE_URL + "ml-20m.zip",
        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        folders=("ml-20m",),
        required=(("ratings.csv",),),
    ),
    "25m": Release(
        archive="ml-25m.zip",
        url=_BASE_URL + "ml-25m.zip",
        sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        folders=("ml-25m",),
        required=(("ratings.csv",),),
    ),
    "32m": Release(
        archive="ml-32m.zip",
        url=_BASE_URL + "ml-32m.zip",
        sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
        folders=("ml-32m",),
        required=(("ratings.csv",),),
    ),
    "latest-small": Release(
        archive="ml-latest-small.zip",
        url=_BASE_URL + "ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        folders=("ml-latest-small",),
        required=(("ratings.csv",),),
        file_sha256=_ML_LATEST_SMALL_FILES,
    ),
}

_DESCRIPTIONS = {
    "100k": "MovieLens 100K: 100,000 ratings (1-5 stars) from 943 users on 1,682 "
    "movies, collected Sep 1997 to Apr 1998; every user rated at least 20 movies.",
    "1m": "MovieLens 1M: 1,000,209 ratings (1-5 stars) of about 3,900 movies from "
    "6,040 users who joined MovieLens in 2000; with user demographics.",
    "10m": "MovieLens 10M: 10,000,054 ratings (0.5-5 stars in half steps) from "
    "69,878 users on 10,677 movies.",
    "20m": "MovieLens 20M: 20,000,263 ratings (0.5-5 stars) from 138,493 users, "
    "27,278 movies in the catalogue, Jan 1995 to Mar 2015.",
    "25m": "MovieLens 25M: 25,000,095 ratings (0.5-5 stars) from 162,541 users, "
    "62,423 movies in the catalogue, Jan 1995 to Nov 2019.",
    "32m": "MovieLens 32M: 32,000,204 ratings (0.5-5 stars) from 200,948 users, "
    "87,585 movies in the catalogue, Jan 1995 to Oct 2023.",
    "latest-small": "MovieLens latest-small (2018-09 build): 100,836 ratings "
    "(0.5-5 stars) from 610 users on 9,724 movies; GroupLens rebuilds it from time "
    "to time.",
}

_SCALES = {"100k": (1.0, 5.0), "1m": (1.0, 5.0)}
_HALF_STAR_SCALE = (0.5, 5.0)
_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def load_movielens(variant="100k", *, data_home=None, path=None, download=False):
    """Load a MovieLens release with its movie and user tables.

    Files are looked for, in order: at ``path``; as an extracted folder
    (e.g. ``ml-100k/``) or the official archive (``ml-100k.zip``) in the
    data home; and online when ``download=True``. The archive is checked
    against the SHA-256 recorded in flowrec, and so are the extracted 100K,
    1M metadata and latest-small files.

    Parameters
    ----------
    variant : {"100k", "1m", "10m", "20m", "25m", "32m", "latest-small"}, default="100k"
        Which release to load.
    data_home : str or os.PathLike, default=None
        Cache folder; see :func:`get_data_home`.
    path : str or os.PathLike, default=None
        The official archive, its extracted folder, or the ratings file
        itself (``u.data``, ``ratings.dat`` or ``ratings.csv``, with the
        movie and user files read from the same folder). Overrides the cache.
    download : bool, default=False
        Download the official archive into the data home when it is missing,
        and replace a cached archive whose SHA-256 does not match.

    Returns
    -------
    RatingDataset
        ``ratings`` has columns ``user_id``, ``item_id`` (int64),
        ``rating`` (float64) and ``timestamp`` (int64, Unix seconds).
        ``items`` has ``item_id``, ``title`` and ``genres`` (``|``-joined);
        100K adds its release date, IMDb URL and one 0/1 column per genre.
        ``users`` contains demographics for 100K and 1M and is None otherwise.

    Raises
    ------
    DatasetNotFoundError
        The files are missing and ``download`` is False. The message names
        the URL, the archive name and the folder to put it in.
    ChecksumMismatchError
        A file's SHA-256 differs from the recorded one and it cannot be
        replaced (``download`` is False, or the file was given as ``path``).
    DuplicateRatingsError
        A (user, movie) pair occurs twice in the ratings file.

    Examples
    --------
    >>> from flowrec.datasets import load_movielens
    >>> data = load_movielens("100k")  # doctest: +SKIP
    >>> data.ratings.shape  # doctest: +SKIP
    (100000, 4)
    """
    release = _check_variant(variant)
    label = f"load_movielens({variant!r})"
    bundle = open_release(
        release, data_home=data_home, path=path, download_if_missing=download, label=label
    )

    if isinstance(bundle, _SingleFileBundle):
        ratings_key = bundle.main_key()
    else:
        ratings_key = bundle.find(*release.required[0])
    ratings = _read_ratings(bundle, ratings_key, variant)
    check_unique_pairs(ratings, bundle.describe(ratings_key))

    return RatingDataset(
        name=f"movielens-{variant}",
        ratings=ratings,
        items=_read_items(bundle, variant),
        users=_read_users(bundle, variant),
        rating_scale=_SCALES.get(variant, _HALF_STAR_SCALE),
        description=_DESCRIPTIONS[variant],
        source=bundle.location,
    )


def load_movielens_100k_split(split="u1", *, data_home=None, path=None, download=False):
    """Load one of the train/test splits shipped with MovieLens 100K.

    ``u1`` to ``u5`` are the five 80%/20% folds of a 5-fold cross-validation
    whose test sets partition ``u.data``. ``ua`` and ``ub`` hold out exactly
    10 ratings per user. Files are found as in :func:`load_movielens`.

    Parameters
    ----------
    split : {"u1", "u2", "u3", "u4", "u5", "ua", "ub"}, default="u1"
        Which split to load (files ``<split>.base`` and ``<split>.test``).
    data_home, path, download
        As in :func:`load_movielens` with ``variant="100k"``; ``path`` is the
        archive or the extracted folder.

    Returns
    -------
    train, test : pandas.DataFrame
        Columns ``user_id``, ``item_id``, ``rating``, ``timestamp``.

    Examples
    --------
    >>> from flowrec.datasets import load_movielens_100k_split
    >>> train, test = load_movielens_100k_split("u1")  # doctest: +SKIP
    >>> len(train), len(test)  # doctest: +SKIP
    (80000, 20000)
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    release = RELEASES["100k"]
    label = f"load_movielens_100k_split({split!r})"
    bundle = open_release(
        release, data_home=data_home, path=path, download_if_missing=download, label=label
    )

    parts = []
    for suffix in ("base", "test"):
        file_name = f"{split}.{suffix}"
        key = bundle.find(file_name)
        if key is None:
            raise DatasetNotFoundError(
                f"{label}: {bundle} lacks {file_name}; pass the official archive "
                f"ml-100k.zip ({release.url}) or its complete extracted folder"
            )
        part = _read_ratings(bundle, key, "100k")
        check_unique_pairs(part, bundle.describe(key))
        parts.append(part)
    return parts[0], parts[1]


def _check_variant(variant):
    if variant not in RELEASES:
        raise ValueError(
            f"variant must be one of {', '.join(map(repr, RELEASES))}, got {variant!r}"
        )
    return RELEASES[variant]


def _read_ratings(bundle, key, variant):
    data = bundle.read_bytes(key)
    if key.endswith(".csv"):
        table = pd.read_csv(io.BytesIO(data), header=0)
        table.columns = _RATING_COLUMNS
    else:
        separator = "\t" if variant == "100k" else "::"
        table = _read_delimited(data, separator, _RATING_COLUMNS, "ascii")
    return table.astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
    )


def _read_delimited(data, separator, names, encoding, dtype=None):
    """Parse a headerless text table with no quoting.

    ``::`` is rewritten to a tab first so that pandas' fast C parser can
    read it; MovieLens ``.dat`` fields never contain tabs.
    """
    if separator == "::":
        data = data.replace(b"::", b"\t")
        separator = "\t"
    return pd.read_csv(
        io.BytesIO(data),
        sep=separator,
        header=None,
        names=names,
        encoding=encoding,
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        na_values=[""],
        dtype=dtype,
    )


def _detect_encoding(data):
    """Return the encoding of a ``.dat`` movie file: UTF-8 when valid, else latin-1."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _read_items(bundle, variant):
    if variant == "100k":
        return _read_items_100k(bundle)

    csv_key = bundle.find("movies.csv")
    if variant not in ("1m", "10m") and csv_key is not None:
        table = pd.read_csv(io.BytesIO(bundle.read_bytes(csv_key)), encoding="utf-8")
        table.columns = ["item_id", "title", "genres"]
        return table

    key = bundle.find("movies.dat")
    if key is None:
        logger.info("No movie table found in %s; items is None", bundle)
        return None
    data = bundle.read_bytes(key)
    # ml-1m's movies.dat is latin-1; the 10M file is checked rather than assumed.
    encoding = "latin-1" if variant == "1m" else _detect_encoding(data)
    return _read_delimited(
        data, "::", ["item_id", "title", "genres"], encoding, dtype={"title": str, "genres": str}
    )


def _read_items_100k(bundle):
    key = bundle.find("u.item")
    if key is None:
        logger.info("No u.item found in %s; items is None", bundle)
        return None
    genre_key = bundle.find("u.genre")
    if genre_key is not None:
        genre_table = _read_delimited(
            bundle.read_bytes(genre_key).strip(), "|", ["genre", "genre_id"], "latin-1"
        )
        genres = list(genre_table.sort_values("genre_id")["genre"])
    else:
        genres = [f"genre_{index}" for index in range(19)]

    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    table = _read_delimited(
        bundle.read_bytes(key),
        "|",
        names,
        "latin-1",
        dtype={"title": str, "release_date": str, "video_release_date": str, "imdb_url": str},
    )
    flags = table[genres].astype("int8")
    table[genres] = flags
    table["genres"] = flags.apply(
        lambda row: "|".join(name for name, flag in zip(genres, row) if flag), axis=1
    )
    return table


def _read_users(bundle, variant):
    if variant == "100k":
        key = bundle.find("u.user")
        names = ["user_id", "age", "gender", "occupation", "zip_code"]
        separator = "|"
    elif variant == "1m":
        key = bundle.find("users.dat")
        names = ["user_id", "gender", "age", "occupation", "zip_code"]
        separator = "::"
    else:
        return None
    if key is None:
        logger.info("No user table found in %s; users is None", bundle)
        return None
    # Zip codes stay strings: some are Canadian postcodes or have a leading zero.
    return _read_delimited(
        bundle.read_bytes(key), separator, names, "latin-1", dtype={"zip_code": str}
    )

