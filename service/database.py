"""Where PostgreSQL comes from: DATABASE_URL, or a private embedded server (pgserver)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Database:
    """Connection parameters for one PostgreSQL database."""

    url: str
    embedded: Any = None  # the pgserver handle when we started one

    @property
    def params(self) -> dict[str, Any]:
        return conninfo_to_dict(self.url)

    @property
    def conninfo(self) -> str:
        return make_conninfo(self.url)

    def library_kwargs(self) -> dict[str, Any]:
        """Arguments for eventsourcing's PostgresDatastore."""
        p = self.params
        return {
            "dbname": p.get("dbname", "postgres"),
            "host": p.get("host", "127.0.0.1"),
            "port": p.get("port", "5432"),
            "user": p.get("user", "postgres"),
            "password": p.get("password", ""),
        }


def start_embedded(data_dir: Path, *, persistent: bool = True) -> Database:
    """Starts (or reuses) a private PostgreSQL in ``data_dir`` from the pgserver wheel."""
    import pgserver  # imported lazily: not needed when DATABASE_URL is set

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir.resolve()),
                                 cleanup_mode="stop" if persistent else "delete")
    log.info("embedded PostgreSQL running in %s", data_dir)
    return Database(url=server.get_uri(), embedded=server)


def resolve(database_url: str | None, data_dir: Path) -> Database:
    if database_url:
        return Database(url=database_url)
    return start_embedded(data_dir / "pgdata")
