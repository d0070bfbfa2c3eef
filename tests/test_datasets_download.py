"""Downloads, served by a local HTTP server that each test starts itself."""

import dataclasses
import hashlib
import http.server
import io
import threading
import urllib.error
import zipfile

import pytest

from flowrec.datasets import _fetch, jester, load_jester, load_movielens, movielens
from flowrec.exceptions import ChecksumMismatchError, DatasetNotFoundError, DownloadError


def make_ml20m_zip():
    """Return the bytes of a tiny archive in the ml-20m layout."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "ml-20m/ratings.csv",
            "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n2,2,4.0,1112484676\n",
        )
        archive.writestr("ml-20m/movies.csv", "movieId,title,genres\n2,Jumanji (1995),Adventure\n")
    return buffer.getvalue()


def make_joke_texts_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in (1, 2):
            page = f"<HTML><!--begin of joke -->Joke &amp; {number}<P><!--end of joke --></HTML>"
            archive.writestr(f"jokes/init{number}.html", page)
        archive.writestr("__MACOSX/jokes/._init1.html", b"resource fork")
    return buffer.getvalue()


ARCHIVE = make_ml20m_zip()
JOKE_TEXTS = make_joke_texts_zip()
ARCHIVE_SHA256 = hashlib.sha256(ARCHIVE).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ARCHIVE at /ml-20m.zip and a body cut short at /truncated.zip."""

    requests = []

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path == "/ml-20m.zip":
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE)
        elif self.path == "/jokes.zip":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(JOKE_TEXTS)
        elif self.path == "/truncated.zip":
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE[: len(ARCHIVE) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def serve_20m_from(monkeypatch, url, sha256=ARCHIVE_SHA256):
    release = dataclasses.replace(movielens.RELEASES["20m"], url=url, sha256=sha256)
    monkeypatch.setitem(movielens.RELEASES, "20m", release)


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_download_then_reuse_cache(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/ml-20m.zip")
    Handler.requests.clear()
    data = load_movielens("20m", data_home=tmp_path / "home", download=True)
    assert data.ratings["user_id"].tolist() == [1, 2]
    assert (tmp_path / "home" / "ml-20m.zip").read_bytes() == ARCHIVE
    assert leftovers(tmp_path / "home") == ["ml-20m.zip"]

    # the second call reads the verified cache and does not download again
    load_movielens("20m", data_home=tmp_path / "home", download=True)
    assert Handler.requests == ["/ml-20m.zip"]


def test_download_off_does_not_fetch(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/ml-20m.zip")
    Handler.requests.clear()
    with pytest.raises(DatasetNotFoundError, match=r"download=True to fetch http://127\.0\.0\.1"):
        load_movielens("20m", data_home=tmp_path)
    assert Handler.requests == []
    assert leftovers(tmp_path) == []


def test_truncated_download_leaves_no_file(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/truncated.zip")
    with pytest.raises(DownloadError, match=r"truncated\.zip") as caught:
        load_movielens("20m", data_home=tmp_path, download=True)
    assert str(tmp_path / "ml-20m.zip") in str(caught.value)
    assert leftovers(tmp_path) == []


def test_wrong_digest_download_leaves_no_file(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/ml-20m.zip", sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match=f"has SHA-256 {ARCHIVE_SHA256}"):
        load_movielens("20m", data_home=tmp_path, download=True)
    assert leftovers(tmp_path) == []


def test_http_error_is_download_error(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/missing.zip")
    with pytest.raises(DownloadError, match="404"):
        load_movielens("20m", data_home=tmp_path, download=True)
    assert leftovers(tmp_path) == []


def test_corrupt_cache_replaced_on_download(tmp_path, server, monkeypatch, caplog):
    serve_20m_from(monkeypatch, f"{server}/ml-20m.zip")
    (tmp_path / "ml-20m.zip").write_bytes(ARCHIVE[:100])
    data = load_movielens("20m", data_home=tmp_path, download=True)
    assert len(data.ratings) == 2
    assert (tmp_path / "ml-20m.zip").read_bytes() == ARCHIVE
    assert "cached archive" in caplog.text
    assert leftovers(tmp_path) == ["ml-20m.zip"]


def test_corrupt_cache_raises_without_download(tmp_path, server, monkeypatch):
    serve_20m_from(monkeypatch, f"{server}/ml-20m.zip")
    (tmp_path / "ml-20m.zip").write_bytes(ARCHIVE[:100])
    with pytest.raises(ChecksumMismatchError, match="delete it and call again with download=True"):
        load_movielens("20m", data_home=tmp_path)
    assert (tmp_path / "ml-20m.zip").read_bytes() == ARCHIVE[:100]


class FailingResponse(io.BytesIO):
    """A response that delivers some bytes and then loses the connection."""

    headers = {"Content-Length": str(len(ARCHIVE))}

    cut_at = len(ARCHIVE) // 2

    def read(self, size=-1):
        if self.tell() >= self.cut_at:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(size, self.cut_at - self.tell()))


def test_failure_mid_stream_keeps_old_file(tmp_path, monkeypatch):
    serve_20m_from(monkeypatch, "https://example.invalid/ml-20m.zip")
    monkeypatch.setattr(_fetch, "_urlopen", lambda url, timeout: FailingResponse(ARCHIVE))
    (tmp_path / "ml-20m.zip").write_bytes(b"old and corrupt")
    with pytest.raises(DownloadError, match="connection reset"):
        load_movielens("20m", data_home=tmp_path, download=True)
    assert (tmp_path / "ml-20m.zip").read_bytes() == b"old and corrupt"
    assert leftovers(tmp_path) == ["ml-20m.zip"]


def test_offline_message_names_url_and_destination(tmp_path, monkeypatch):
    def fail_name_lookup(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(_fetch, "_urlopen", fail_name_lookup)
    with pytest.raises(DownloadError) as caught:
        load_movielens("100k", data_home=tmp_path, download=True)
    message = str(caught.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in message
    assert str(tmp_path / "ml-100k.zip") in message
    assert "by hand" in message
    assert leftovers(tmp_path) == []


def test_jester_joke_texts_downloaded(tmp_path, server, monkeypatch):
    texts = dataclasses.replace(
        jester.JOKE_TEXTS_1,
        url=f"{server}/jokes.zip",
        sha256=hashlib.sha256(JOKE_TEXTS).hexdigest(),
    )
    monkeypatch.setattr(jester, "JOKE_TEXTS_1", texts)
    part = dataclasses.replace(
        jester.RELEASES["1-1"], file_sha256={texts.archive: texts.sha256}
    )
    monkeypatch.setitem(jester.RELEASES, "1-1", part)
    folder = tmp_path / "jester"
    folder.mkdir()
    (folder / "jester-data-1.csv").write_text("1,5.5,99\n2,-1,2\n")

    data = load_jester("1-1", data_home=tmp_path, download=True)
    assert data.items.to_dict("list") == {"item_id": [1, 2], "text": ["Joke & 1", "Joke & 2"]}
    assert (folder / "jester_dataset_1_joke_texts.zip").read_bytes() == JOKE_TEXTS
    assert load_jester("1-1", data_home=tmp_path).items is not None


def test_corrupt_extracted_folder_replaced_by_archive(tmp_path, server, monkeypatch, caplog):
    good_ratings = zipfile.ZipFile(io.BytesIO(ARCHIVE)).read("ml-20m/ratings.csv")
    release = dataclasses.replace(
        movielens.RELEASES["20m"],
        url=f"{server}/ml-20m.zip",
        sha256=ARCHIVE_SHA256,
        file_sha256={"ratings.csv": hashlib.sha256(good_ratings).hexdigest()},
    )
    monkeypatch.setitem(movielens.RELEASES, "20m", release)
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(good_ratings[:-5])

    with pytest.raises(ChecksumMismatchError, match=r"ratings\.csv has SHA-256"):
        load_movielens("20m", data_home=tmp_path)

    data = load_movielens("20m", data_home=tmp_path, download=True)
    assert data.ratings["user_id"].tolist() == [1, 2]
    assert "using the official archive instead" in caplog.text
    assert (tmp_path / "ml-20m.zip").read_bytes() == ARCHIVE
