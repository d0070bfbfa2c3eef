"""Find a release on disk or download it, and verify SHA-256 digests.

A release is read from, in order: the ``path`` the caller gives, an extracted
folder in the cache, the official archive in the cache, and finally a fresh
download when the caller allows one. Every file whose SHA-256 is recorded is
checked before it is used. Downloads go to a temporary file in the target
folder and are renamed into place only after the digest matches, so an
interrupted or corrupt download never sits at the final path.
"""

import hashlib
import http.client
import io
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from flowrec.datasets._base import get_data_home
from flowrec.exceptions import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    DownloadError,
)

logger = logging.getLogger(__name__)

# Tests replace this to serve files from a local server or to fail mid-stream.
_urlopen = urllib.request.urlopen

DOWNLOAD_TIMEOUT_S = 60
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Release:
    """Online and on-disk locations of one dataset release.

    Attributes
    ----------
    archive : str
        File name of the official archive, e.g. ``"ml-100k.zip"``.
    url : str
        Publisher URL of that archive.
    sha256 : str or None
        SHA-256 of the official archive, or None when no digest is known.
    subfolder : str
        Folder under the data home that contains the archive and its extracted
        copy (``""`` for the data home itself).
    folders : tuple of str
        Names of extracted folders to look for inside ``subfolder``; ``"."``
        means ``subfolder`` itself.
    required : tuple of tuple of str
        Files that must be present; each inner tuple lists accepted names.
    file_sha256 : dict
        SHA-256 of extracted files, by file name, checked when present.
    """

    archive: str
    url: str
    sha256: str | None
    subfolder: str = ""
    folders: tuple = ()
    required: tuple = ()
    file_sha256: dict = field(default_factory=dict)


def sha256_of(path):
    """Return the hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Bundle:
    """Files of a release in a folder or a zip archive, looked up by base name.

    Folders are searched two levels deep, so an archive extracted with or
    without its top folder is found either way. Zip members under
    ``__MACOSX/`` and macOS ``._`` resource files are skipped.
    """

    def __init__(self, location, *, zip_file=None, file_sha256=None):
        self.location = Path(location)
        self._zip = zip_file
        self._file_sha256 = file_sha256 or {}
        self._verified = set()
        if zip_file is not None:
            self._names = [
                name
                for name in zip_file.namelist()
                if not name.endswith("/")
                and not name.startswith("__MACOSX/")
                and not name.rsplit("/", 1)[-1].startswith("._")
            ]
        else:
            self._names = _list_folder(self.location)

    @classmethod
    def open(cls, location, *, file_sha256=None):
        """Open a folder, a zip archive or a single file as a bundle."""
        location = Path(location)
        if location.is_dir():
            return cls(location, file_sha256=file_sha256)
        # .xlsx files are zip archives too, so only a .zip name marks an archive
        if location.suffix.lower() == ".zip":
            if not zipfile.is_zipfile(location):
                raise zipfile.BadZipFile(
                    f"{location} is not a valid zip archive; it may be truncated, so "
                    "replace it with a complete copy"
                )
            return cls(location, zip_file=zipfile.ZipFile(location), file_sha256=file_sha256)
        return _SingleFileBundle(location, file_sha256=file_sha256)

    def find(self, *names):
        """Return the key of the first file whose base name is in ``names``, or None."""
        for name in names:
            for key in self._names:
                if key.rsplit("/", 1)[-1] == name:
                    return key
        return None

    def find_all(self, predicate):
        """Return the keys of the files whose base name satisfies ``predicate``."""
        return [key for key in self._names if predicate(key.rsplit("/", 1)[-1])]

    def read_bytes(self, key):
        """Return a file's bytes, checking its SHA-256 when one is recorded."""
        if self._zip is not None:
            data = self._zip.read(key)
        else:
            data = (self.location / key).read_bytes()
        base_name = key.rsplit("/", 1)[-1]
        expected = self._file_sha256.get(base_name)
        if expected is not None and key not in self._verified:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ChecksumMismatchError(
                    f"{self.describe(key)} has SHA-256 {actual}, expected {expected}; "
                    "the file is corrupt or from another release, so replace it "
                    "with the file from the official archive"
                )
            self._verified.add(key)
        return data

    def open_nested(self, key):
        """Open a zip archive stored inside this bundle as a bundle of its own."""
        archive = zipfile.ZipFile(io.BytesIO(self.read_bytes(key)))
        return Bundle(self.location / key, zip_file=archive, file_sha256=self._file_sha256)

    def describe(self, key):
        """Return a readable location of ``key`` for messages."""
        if self._zip is not None:
            return f"{key} in {self.location}"
        return str(self.location / key)

    def __str__(self):
        return str(self.location)


class _SingleFileBundle(Bundle):
    """A bundle made of one file given directly, plus its sibling files."""

    def __init__(self, location, *, file_sha256=None):
        self.location = Path(location).parent
        self._zip = None
        self._file_sha256 = file_sha256 or {}
        self._verified = set()
        self._file_name = Path(location).name
        self._names = [self._file_name] + [
            name for name in _list_folder(self.location, depth=1) if name != self._file_name
        ]

    def main_key(self):
        """Return the key of the file that was given."""
        return self._file_name


def _list_folder(folder, depth=3):
    keys = []
    for root, dirs, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        level = len(relative.parts)
        dirs[:] = sorted(d for d in dirs if d != "__MACOSX") if level + 1 < depth else []
        for name in sorted(files):
            if not name.startswith("._"):
                keys.append((relative / name).as_posix())
    return keys


def verify_file(path, expected, *, description):
    """Raise ChecksumMismatchError unless the file's SHA-256 equals ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{description} {path} has SHA-256 {actual}, expected {expected}; delete it and "
            "call again with download=True, or replace it with the official archive"
        )


def download(url, destination, sha256):
    """Download ``url`` to ``destination`` atomically and verify its SHA-256.

    Bytes are streamed into a temporary file in the destination folder, which
    is renamed to ``destination`` only after the whole body arrived and its
    digest matched. On any failure the temporary file is removed and an
    existing ``destination`` is left untouched.

    Raises
    ------
    DownloadError
        The connection failed, timed out or ended before the announced size.
    ChecksumMismatchError
        The downloaded bytes do not have the expected SHA-256.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    manual_hint = f"download {url} by hand and save it as {destination}"
    logger.info("Downloading %s to %s", url, destination)

    handle, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    temporary = Path(temporary_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as output:
            n_bytes, expected_bytes = _stream(url, output, digest, destination)
        if expected_bytes is not None and n_bytes != expected_bytes:
            raise DownloadError(
                f"download of {url} stopped after {n_bytes} of {expected_bytes} "
                f"bytes; try again later or {manual_hint}"
            )
        actual = digest.hexdigest()
        if sha256 is None:
            logger.warning(
                "No SHA-256 is recorded for %s, so the download was not verified "
                "(its SHA-256 is %s)", url, actual
            )
        elif actual != sha256:
            raise ChecksumMismatchError(
                f"download of {url} has SHA-256 {actual}, expected {sha256}; the "
                f"server sent a different file, so try again later or {manual_hint}"
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("Saved %s (%d bytes)", destination, n_bytes)
    return destination


def _stream(url, output, digest, destination):
    manual_hint = f"download {url} by hand and save it as {destination}"
    try:
        with _urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected_bytes = int(length) if length else None
            n_bytes = 0
            with tqdm(
                total=expected_bytes, unit="B", unit_scale=True, desc=destination.name, disable=None
            ) as bar:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    output.write(chunk)
                    digest.update(chunk)
                    n_bytes += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
        raise DownloadError(f"download of {url} failed ({error}); {manual_hint}") from error
    return n_bytes, expected_bytes


def open_release(release, *, data_home=None, path=None, download_if_missing=False, label):
    """Find or download a release and return a Bundle of its files.

    ``label`` names the dataset in messages, e.g. ``load_movielens("1m")``.
    """
    if path is not None:
        return _open_given_path(release, Path(path).expanduser(), label)

    home = get_data_home(data_home)
    folder = home / release.subfolder if release.subfolder else home
    archive_path = folder / release.archive

    # an extracted folder in the cache
    incomplete = []
    for name in release.folders:
        candidate = folder if name == "." else folder / name
        if not candidate.is_dir():
            continue
        bundle = Bundle(candidate, file_sha256=release.file_sha256)
        missing = _missing_files(bundle, release)
        if missing:
            incomplete.append((candidate, missing))
            continue
        try:
            _verify_bundle(bundle, release)
        except ChecksumMismatchError as error:
            if not download_if_missing:
                raise
            logger.warning("%s; using the official archive instead", error)
            break
        logger.debug("Reading %s from %s", label, candidate)
        return bundle

    # the official archive in the cache
    if archive_path.is_file():
        try:
            if release.sha256 is not None:
                verify_file(archive_path, release.sha256, description="cached archive")
            return Bundle.open(archive_path, file_sha256=release.file_sha256)
        except ChecksumMismatchError as error:
            logger.warning("%s", error)
            if not download_if_missing:
                raise
            logger.warning("Replacing the corrupt archive %s by a fresh download", archive_path)

    if download_if_missing:
        download(release.url, archive_path, release.sha256)
        bundle = Bundle.open(archive_path, file_sha256=release.file_sha256)
        missing = _missing_files(bundle, release)
        if missing:
            raise DatasetNotFoundError(
                f"the archive downloaded from {release.url} lacks "
                f"{' or '.join(missing[0])}; "
                "report this, since the release layout may have changed"
            )
        return bundle

    if incomplete:
        candidate, missing = incomplete[0]
        problem = f"the folder {candidate} lacks {' or '.join(missing[0])}"
    else:
        problem = f"no {release.archive} or extracted copy found in {folder}"
    raise DatasetNotFoundError(
        f"{label}: {problem}. Call it with download=True to fetch {release.url}, "
        f"or save that file as {archive_path} (or its extracted folder next to "
        "it), or pass path= to a copy you have."
    )


def _open_given_path(release, path, label):
    if not path.exists():
        raise DatasetNotFoundError(
            f"{label}: path {path} does not exist; pass the official archive "
            f"{release.archive}, its extracted folder or the ratings file"
        )
    if path.is_file() and path.name == release.archive and release.sha256 is not None:
        verify_file(path, release.sha256, description="archive")
    bundle = Bundle.open(path, file_sha256=release.file_sha256)
    if isinstance(bundle, _SingleFileBundle):
        return bundle
    missing = _missing_files(bundle, release)
    if missing:
        raise DatasetNotFoundError(
            f"{label}: {path} lacks {' or '.join(missing[0])}; pass the official "
            f"archive {release.archive} ({release.url}) or its extracted folder"
        )
    _verify_bundle(bundle, release)
    return bundle


def _missing_files(bundle, release):
    return [names for names in release.required if bundle.find(*names) is None]


def _verify_bundle(bundle, release):
    for name in release.file_sha256:
        key = bundle.find(name)
        if key is not None:
            bundle.read_bytes(key)
