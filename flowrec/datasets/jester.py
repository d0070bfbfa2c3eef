"""Jester joke-rating datasets from the Berkeley Eigentaste project.

Most Jester releases are dense users-by-jokes matrices in Excel files: the
first column counts the jokes the user rated, the next columns hold one
joke each, and ``99`` marks a joke the user did not rate. Dataset 2 is a
list of (user, joke, rating) lines instead. Ratings are real numbers on
-10..+10, but dataset 4 also contains values outside that range (see
``out_of_range`` in :func:`load_jester`).
"""

import html
import io
import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from flowrec.datasets._base import RatingDataset, check_unique_pairs, get_data_home
from flowrec.datasets._fetch import Bundle, Release, _SingleFileBundle, open_release
from flowrec.exceptions import DatasetNotFoundError

logger = logging.getLogger(__name__)

_ARCHIVE_URL = "https://eigentaste.berkeley.edu/dataset/archive/"
_DATASET_URL = "https://eigentaste.berkeley.edu/dataset/"
_SUBFOLDER = "jester"
_NOT_RATED = 99.0
_SCALE = (-10.0, 10.0)
_DATASET_4_FILE = "[final] April 2015 to Nov 30 2019 - Transformed Jester Data - .xlsx"
_DATASET_4_TEXTS = "Dataset4JokeSet.xlsx"
_DATASET_2_TEXTS = "jester_items.dat"
_DATASET_1_TEXT_ARCHIVES = ("jester_dataset_1_joke_texts.zip", "joke_texts.zip")
_DATASET_1_TEXTS_SHA256 = "874a97180ac49a1d815ab6829fd9411021cdd25a92557dc39af46a26d5d1a9da"


def _matrix_names(stem):
    """Accepted names of one ratings matrix: the Excel original, a CSV export of
    the same layout, or a zip holding that export."""
    return tuple(f"{stem}.{extension}" for extension in ("xls", "xlsx", "csv", "zip"))


# Archive digests: the Jester site publishes none. These SHA-256 values are
# the ones that other projects pinning the same archives record. Two
# independent projects record the same values for the three dataset-1 parts.
# The other archives' values come from one project each.
# NOTE: a digest known from a single source may be wrong; a mismatch on a
# genuine archive shows up as ChecksumMismatchError naming both digests.
RELEASES = {
    "1-1": Release(
        archive="jester_dataset_1_1.zip",
        url=_ARCHIVE_URL + "jester_dataset_1_1.zip",
        sha256="cb7841756ded125b15f3d95c9f8241224065e96354c132a46ae4214deeab7615",
        subfolder=_SUBFOLDER,
        folders=(".", "jester_dataset_1_1"),
        required=(_matrix_names("jester-data-1"),),
        file_sha256={"jester_dataset_1_joke_texts.zip": _DATASET_1_TEXTS_SHA256},
    ),
    "1-2": Release(
        archive="jester_dataset_1_2.zip",
        url=_ARCHIVE_URL + "jester_dataset_1_2.zip",
        sha256="4d312fd824d8c8cb2c9c952a7b1fb7c00d1f5fd3ece370f7285aa701d371748b",
        subfolder=_SUBFOLDER,
        folders=(".", "jester_dataset_1_2"),
        required=(_matrix_names("jester-data-2"),),
        file_sha256={"jester_dataset_1_joke_texts.zip": _DATASET_1_TEXTS_SHA256},
    ),
    "1-3": Release(
        archive="jester_dataset_1_3.zip",
        url=_ARCHIVE_URL + "jester_dataset_1_3.zip",
        sha256="7f548d3762d3506cf7cd37d8cb9e3adb67984a7da7aa2d2096d5e0b1b884758d",
        subfolder=_SUBFOLDER,
        folders=(".", "jester_dataset_1_3"),
        required=(_matrix_names("jester-data-3"),),
        file_sha256={"jester_dataset_1_joke_texts.zip": _DATASET_1_TEXTS_SHA256},
    ),
    "2": Release(
        archive="jester_dataset_2.zip",
        url=_ARCHIVE_URL + "jester_dataset_2.zip",
        sha256="5c2b9fb8346fc132ac1be6a9264fef9a6d153da68f3201839ac25c19f9a59a09",
        subfolder=_SUBFOLDER,
        folders=(".", "jester_dataset_2"),
        required=(("jester_ratings.dat",),),
        file_sha256={
            _DATASET_2_TEXTS: "bf3e15171fb7ec0a380d8feaec511527f91cb017de0684655835cf5c05731100"
        },
    ),
    "2+": Release(
        archive="jester_dataset_3.zip",
        url=_ARCHIVE_URL + "jester_dataset_3.zip",
        sha256="de360773d91253200a203afa99c38d3368bfcfcc02d28088f11d5ec1dacc9f6f",
        subfolder=_SUBFOLDER,
        folders=(".", "jester_dataset_3"),
        required=(_matrix_names("jesterfinal151cols"),),
    ),
    "3": Release(
        archive="JesterDataset3.zip",
        url=_DATASET_URL + "JesterDataset3.zip",
        sha256="0987d0d892f833ce9f889addb18c1960cb086658362a77a27216327ffb91614f",
        subfolder=_SUBFOLDER,
        folders=(".", "JesterDataset3"),
        required=(_matrix_names("FINAL jester 2006-15"),),
    ),
    "4": Release(
        archive="JesterDataset4.zip",
        url=_DATASET_URL + "JesterDataset4.zip",
        sha256="98382f7f652daf67d7c6963afd7e007cea180b20af290c115fcb587387ea831b",
        subfolder=_SUBFOLDER,
        folders=(".", "JesterDataset4"),
        required=((_DATASET_4_FILE, _DATASET_4_FILE[: -len(".xlsx")] + ".csv"),),
        file_sha256={
            _DATASET_4_FILE: "e7160c967ebdd1b78c8a53fdadb33cac91de8ba162310ddbba6bc31046184cf0",
            _DATASET_4_TEXTS: "92a0f587820c83f1e1ab8f4e6489d8b144927cc6f76a0f6896e7843e32dd95c7",
        },
    ),
}

JOKE_TEXTS_1 = Release(
    archive="jester_dataset_1_joke_texts.zip",
    url=_ARCHIVE_URL + "jester_dataset_1_joke_texts.zip",
    sha256=_DATASET_1_TEXTS_SHA256,
    subfolder=_SUBFOLDER,
    folders=(".",),
    required=(("init1.html",),),
)

_DESCRIPTIONS = {
    "1-1": "Jester dataset 1, part 1: 24,983 users who rated 36 or more of 100 jokes, "
    "Apr 1999 to May 2003; ratings -10..+10.",
    "1-2": "Jester dataset 1, part 2: 23,500 users who rated 36 or more of 100 jokes, "
    "Apr 1999 to May 2003; ratings -10..+10.",
    "1-3": "Jester dataset 1, part 3: 24,938 users who rated between 15 and 35 of 100 "
    "jokes, Apr 1999 to May 2003; ratings -10..+10.",
    "1": "Jester dataset 1, parts 1 to 3 concatenated: 73,421 users and 100 jokes; "
    "user ids number the rows of part 1, then part 2, then part 3.",
    "2": "Jester dataset 2: about 1.7 million ratings of 150 jokes from 59,132 users, "
    "Nov 2006 to May 2009; ratings -10..+10.",
    "2+": "Jester dataset 2+: dataset 2 extended to Nov 2012 (79,681 users in all), "
    "as a users-by-150-jokes matrix of the users who rated the gauge jokes; "
    "ratings -10..+10.",
    "3": "Jester dataset 3: 54,905 users and 150 jokes, Nov 2006 to Mar 2015; "
    "ratings -10..+10.",
    "4": "Jester dataset 4: 106,489 ratings of 158 jokes (22 retired jokes have none) "
    "from 7,699 users, Apr 2015 to Nov 2019; documented scale -10..+10 but 541 "
    "ratings lie outside it (-42.28..+28.58 observed).",
}

_OUT_OF_RANGE_POLICIES = ("keep", "clip", "drop", "raise")


def load_jester(
    variant="1-1", *, data_home=None, path=None, download=False, out_of_range="keep"
):
    """Load a Jester joke-rating dataset with its joke texts where found.

    Files are looked for, in order: at ``path``, then in the ``jester/``
    folder of the data home (the official archive or its extracted files),
    then online when ``download=True``. A ratings matrix is accepted
    as the official ``.xls``/``.xlsx`` file, as a CSV export with the same
    layout (count column first, no header) or as a zip holding that export.
    Reading ``.xls`` files needs the optional ``xlrd`` package.

    Every rating is rounded to 2 decimals, which removes binary float noise
    such as ``19.490000000000002``; the releases record at most 2 decimals.

    Parameters
    ----------
    variant : {"1-1", "1-2", "1-3", "1", "2", "2+", "3", "4"}, default="1-1"
        Dataset 1 parts 1 to 3, all of dataset 1 (``"1"``), dataset 2,
        dataset 2+, dataset 3 or dataset 4.
    data_home : str or os.PathLike, default=None
        Cache folder; see :func:`get_data_home`. Jester files live in its
        ``jester/`` subfolder.
    path : str or os.PathLike, default=None
        The official archive, a folder holding the release's files, or the
        ratings file itself. Not allowed with ``variant="1"``, whose three
        parts are separate archives.
    download : bool, default=False
        Download missing official archives (and, for dataset 1, the joke
        texts) into ``<data home>/jester/``.
    out_of_range : {"keep", "clip", "drop", "raise"}, default="keep"
        What to do with ratings outside -10..+10, which only dataset 4 is
        known to contain. ``"keep"`` leaves them as published, ``"clip"``
        moves them to the nearest bound, ``"drop"`` removes those rows and
        ``"raise"`` raises ValueError. Every policy except ``"raise"`` logs
        a warning with the number of affected ratings.

    Returns
    -------
    RatingDataset
        ``ratings`` has ``user_id`` (int64, the 1-based row of the matrix),
        ``item_id`` (int64, the joke number) and ``rating`` (float64); no
        timestamps. ``items`` has ``item_id`` and ``text`` when the joke
        texts were found, else None. ``users`` is None.

    Raises
    ------
    DatasetNotFoundError, ChecksumMismatchError
        As in :func:`load_movielens`.
    DuplicateRatingsError
        Dataset 2 lists a (user, joke) pair twice.
    ImportError
        An ``.xls`` file must be read and xlrd is not installed.

    Examples
    --------
    >>> from flowrec.datasets import load_jester
    >>> data = load_jester("1-1")  # doctest: +SKIP
    >>> data.rating_scale  # doctest: +SKIP
    (-10.0, 10.0)
    """
    if variant != "1" and variant not in RELEASES:
        allowed = ", ".join(repr(name) for name in ("1", *RELEASES))
        raise ValueError(f"variant must be one of {allowed}, got {variant!r}")
    if out_of_range not in _OUT_OF_RANGE_POLICIES:
        raise ValueError(
            f"out_of_range must be one of {', '.join(_OUT_OF_RANGE_POLICIES)}, "
            f"got {out_of_range!r}"
        )
    if variant == "1" and path is not None:
        raise ValueError(
            "path cannot be used with variant='1', which reads three archives; put "
            "them in <data_home>/jester/ or load '1-1', '1-2' and '1-3' one by one"
        )

    options = {"data_home": data_home, "download": download}
    if variant == "1":
        parts = []
        n_users_before = 0
        for part in ("1-1", "1-2", "1-3"):
            try:
                ratings, n_rows, bundle = _load_ratings(part, path=None, **options)
            except DatasetNotFoundError as error:
                raise DatasetNotFoundError(
                    f"load_jester('1') needs all three parts of dataset 1, and part "
                    f"{part!r} is missing: {error} To load only the parts you have, call "
                    "load_jester('1-1'), load_jester('1-2') or load_jester('1-3')."
                ) from error
            ratings["user_id"] += n_users_before
            n_users_before += n_rows
            parts.append(ratings)
        ratings = pd.concat(parts, ignore_index=True)
    else:
        ratings, _, bundle = _load_ratings(variant, path=path, **options)

    ratings = _apply_out_of_range(ratings, out_of_range, variant)
    return RatingDataset(
        name=f"jester-{variant}",
        ratings=ratings,
        items=_load_texts(variant, bundle, path=path, **options),
        users=None,
        rating_scale=_SCALE,
        description=_DESCRIPTIONS[variant],
        source=bundle.location,
    )


def _load_ratings(variant, *, data_home, path, download):
    """Return the ratings of one release, its number of matrix rows and its bundle."""
    release = RELEASES[variant]
    bundle = open_release(
        release,
        data_home=data_home,
        path=path,
        download_if_missing=download,
        label=f"load_jester({variant!r})",
    )
    if isinstance(bundle, _SingleFileBundle):
        key = bundle.main_key()
    else:
        key = bundle.find(*release.required[0])

    if variant == "2":
        ratings = _read_long(bundle, key)
        return ratings, int(ratings["user_id"].max()), bundle
    matrix = _read_matrix(bundle, key)
    ratings = _matrix_to_ratings(matrix, bundle.describe(key))
    return ratings, matrix.shape[0], bundle


def _read_long(bundle, key):
    """Read dataset 2's ``jester_ratings.dat``: user, joke and rating per line."""
    table = pd.read_csv(
        io.BytesIO(bundle.read_bytes(key)),
        sep=r"\s+",
        header=None,
        names=["user_id", "item_id", "rating"],
        dtype={"user_id": "int64", "item_id": "int64", "rating": "float64"},
    )
    table["rating"] = table["rating"].round(2)
    check_unique_pairs(table, bundle.describe(key))
    return table


def _read_matrix(bundle, key):
    """Return the users-by-columns matrix of a ``.xls``, ``.xlsx``, ``.csv`` or
    zipped ``.csv`` file as a float array, with empty cells as NaN."""
    suffix = key.rsplit(".", 1)[-1].lower()
    if suffix == "zip":
        nested = bundle.open_nested(key)
        inner = nested.find_all(lambda name: name.lower().endswith((".csv", ".xls", ".xlsx")))
        if len(inner) != 1:
            raise ValueError(
                f"{bundle.describe(key)} must hold exactly one .csv, .xls or .xlsx "
                f"file, found {inner or 'none'}"
            )
        return _read_matrix(nested, inner[0])

    data = io.BytesIO(bundle.read_bytes(key))
    if suffix == "csv":
        table = pd.read_csv(data, header=None)
    elif suffix == "xls":
        return _read_xls(data.getvalue(), bundle.describe(key))
    else:
        matrix = _read_numeric_xlsx(data.getvalue())
        if matrix is not None:
            return matrix
        table = pd.read_excel(data, header=None, engine="openpyxl")
    return table.to_numpy(dtype="float64")


_XLSX_CELL = re.compile(rb"<c[ >]")
_XLSX_NUMBER_CELL = re.compile(
    rb'<c r="([A-Z]{1,3})([0-9]+)"(?: s="[0-9]+")?(?: t="n")?><v>([^<]*)</v></c>'
)


def _read_numeric_xlsx(data):
    """Read the first sheet of an all-numeric .xlsx file, or return None.

    A Jester ratings sheet has over a million numeric cells, and openpyxl
    took 10 to 20 s to read the dataset-4 sheet on a 2-core machine. Matching
    the sheet XML with one regular expression was about 4 times faster there.
    Any sheet with a cell this pattern
    does not match (text, formulas, empty styled cells) or with several
    worksheets returns None, and the caller falls back to openpyxl.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/sheet")]
        if sheets != ["xl/worksheets/sheet1.xml"]:
            return None
        xml = archive.read(sheets[0])

    cells = _XLSX_NUMBER_CELL.findall(xml)
    if not cells or len(cells) != len(_XLSX_CELL.findall(xml)):
        return None
    letters, row_numbers, values = zip(*cells)
    column_of = {name: _column_index(name) for name in set(letters)}
    rows = np.array(row_numbers).astype(np.int64) - 1
    columns = np.array([column_of[name] for name in letters], dtype=np.int64)
    matrix = np.full((rows.max() + 1, columns.max() + 1), np.nan)
    matrix[rows, columns] = np.array(values).astype(np.float64)
    return matrix


def _column_index(letters):
    index = 0
    for letter in letters:
        index = index * 26 + (letter - ord("A") + 1)
    return index - 1


def _read_xls(data, location):
    """Read the first sheet of an Excel 97 file with xlrd, imported only here.

    xlrd is called directly because pandas deprecates its xlrd engine.
    """
    try:
        import xlrd
    except ImportError as error:
        raise ImportError(
            f"reading the Excel 97 file {location} needs the xlrd package; install it "
            "with: pip install 'flowrec[xls]', or export the sheet to CSV"
        ) from error

    sheet = xlrd.open_workbook(file_contents=data, on_demand=True).sheet_by_index(0)
    matrix = np.full((sheet.nrows, sheet.ncols), np.nan)
    for row in range(sheet.nrows):
        for column, cell in enumerate(sheet.row(row)):
            if cell.ctype in (xlrd.XL_CELL_NUMBER, xlrd.XL_CELL_BOOLEAN):
                matrix[row, column] = cell.value
            elif cell.ctype == xlrd.XL_CELL_TEXT and cell.value.strip():
                matrix[row, column] = float(cell.value)
    return matrix


def _matrix_to_ratings(matrix, where):
    """Turn a count-column-first matrix into (user_id, item_id, rating) rows."""
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(
            f"{where} must have a count column and at least one joke column, "
            f"got shape {matrix.shape}"
        )
    counts = matrix[:, 0]
    scores = matrix[:, 1:]
    empty = np.isnan(scores)
    rated = ~empty & (scores != _NOT_RATED)

    if empty.any():
        logger.warning(
            "%s has %d empty cells; they are read as not rated", where, int(empty.sum())
        )
    mismatched = np.flatnonzero(rated.sum(axis=1) != counts)
    if mismatched.size:
        logger.warning(
            "%s: in %d rows the count column differs from the number of rated "
            "jokes (first at user %d); the ratings are kept as they are",
            where,
            mismatched.size,
            mismatched[0] + 1,
        )

    rows, columns = np.nonzero(rated)
    return pd.DataFrame(
        {
            "user_id": (rows + 1).astype("int64"),
            "item_id": (columns + 1).astype("int64"),
            "rating": np.round(scores[rows, columns], 2),
        }
    )


def _apply_out_of_range(ratings, policy, variant):
    low, high = _SCALE
    outside = (ratings["rating"] < low) | (ratings["rating"] > high)
    n_outside = int(outside.sum())
    if n_outside == 0:
        return ratings

    values = ratings.loc[outside, "rating"]
    summary = (
        f"Jester {variant}: {n_outside} ratings lie outside the scale {low:g}..{high:g} "
        f"(from {values.min():g} to {values.max():g})"
    )
    if policy == "raise":
        raise ValueError(
            f"{summary}; pass out_of_range='keep', 'clip' or 'drop' to accept them"
        )
    if policy == "clip":
        logger.warning("%s; clipped to the scale as out_of_range='clip' asks", summary)
        ratings["rating"] = ratings["rating"].clip(low, high)
    elif policy == "drop":
        logger.warning("%s; dropped as out_of_range='drop' asks", summary)
        ratings = ratings.loc[~outside].reset_index(drop=True)
    else:
        logger.warning("%s; kept as published (out_of_range='keep')", summary)
    return ratings


def _load_texts(variant, bundle, *, data_home, path, download):
    """Return the joke texts of a release, or None when they are not found."""
    places = [bundle]
    if path is not None:
        given_path = Path(path).expanduser()
        folder = given_path if given_path.is_dir() else given_path.parent
    else:
        folder = get_data_home(data_home) / _SUBFOLDER
    if folder.is_dir() and folder != bundle.location:
        release = RELEASES["1-1" if variant == "1" else variant]
        places.append(Bundle(folder, file_sha256=release.file_sha256))

    if variant.startswith("1"):
        return _load_texts_1(places, data_home=data_home, download=download and path is None)
    for place in places:
        if variant in ("2", "2+") and place.find(_DATASET_2_TEXTS):
            return _parse_numbered_texts(place.read_bytes(place.find(_DATASET_2_TEXTS)))
        if variant == "4" and place.find(_DATASET_4_TEXTS):
            return _parse_text_sheet(place.read_bytes(place.find(_DATASET_4_TEXTS)))
    logger.info("No joke texts found for Jester %s; items is None", variant)
    return None


def _load_texts_1(places, *, data_home, download):
    for place in places:
        if place.find("init1.html"):
            return _parse_html_jokes(place)
        archive_key = place.find(*_DATASET_1_TEXT_ARCHIVES)
        if archive_key:
            return _parse_html_jokes(place.open_nested(archive_key))
    if download:
        texts = open_release(
            JOKE_TEXTS_1,
            data_home=data_home,
            download_if_missing=True,
            label="Jester dataset 1 joke texts",
        )
        return _parse_html_jokes(texts)
    logger.info("No joke texts found for Jester dataset 1; items is None")
    return None


_JOKE_PAGE = re.compile(r"init(\d+)\.html?$")
_JOKE_BODY = re.compile(r"<!--begin of joke\s*-->(.*?)<!--end of joke\s*-->", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def _clean_text(fragment):
    """Strip HTML tags, decode entities and collapse white space."""
    text = html.unescape(_TAG.sub(" ", fragment))
    return " ".join(text.split())


def _decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _parse_html_jokes(bundle):
    """Read dataset 1's ``jokes/initN.html`` pages; the text sits between
    ``<!--begin of joke -->`` and ``<!--end of joke -->``."""
    rows = []
    for key in bundle.find_all(lambda name: _JOKE_PAGE.fullmatch(name) is not None):
        joke_id = int(_JOKE_PAGE.fullmatch(key.rsplit("/", 1)[-1]).group(1))
        page = _decode(bundle.read_bytes(key))
        body = _JOKE_BODY.search(page)
        rows.append((joke_id, _clean_text(body.group(1) if body else page)))
    rows.sort()
    return pd.DataFrame(rows, columns=["item_id", "text"])


def _parse_numbered_texts(data):
    """Read dataset 2's ``jester_items.dat``: a line ``N:`` opens joke N,
    whose HTML text follows until the next such line."""
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    pieces = re.split(r"^(\d+):[ \t]*$", text, flags=re.M)
    rows = [
        (int(number), _clean_text(body)) for number, body in zip(pieces[1::2], pieces[2::2])
    ]
    return pd.DataFrame(rows, columns=["item_id", "text"])


def _parse_text_sheet(data):
    """Read ``Dataset4JokeSet.xlsx``: joke N is the text in row N of column A.

    The sheet reports about 1000 rows, most of them empty; those are skipped.
    """
    sheet = pd.read_excel(io.BytesIO(data), header=None, engine="openpyxl")
    texts = sheet.iloc[:, 0]
    present = texts.notna() & (texts.astype(str).str.strip() != "")
    return pd.DataFrame(
        {
            "item_id": (np.flatnonzero(present.to_numpy()) + 1).astype("int64"),
            "text": [" ".join(str(value).split()) for value in texts[present]],
        }
    )
