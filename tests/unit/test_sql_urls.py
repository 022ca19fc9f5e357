import pytest

from pyao._sql import is_postgres, sqlite_path


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:///abs/db.sqlite", "/abs/db.sqlite"),
        ("sqlite:////abs/db.sqlite", "/abs/db.sqlite"),
        ("sqlite://relative.db", "relative.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
        ("postgresql://u@h/db", None),
        ("file.db", None),
    ],
)
def test_sqlite_urls(url, path):
    assert sqlite_path(url) == path


def test_postgres_urls():
    assert is_postgres("postgresql://u@127.0.0.1/db") and is_postgres("postgres://x")
    assert not is_postgres("sqlite:///x")
