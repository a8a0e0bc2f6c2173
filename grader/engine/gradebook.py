"""Helpers over nbgrader's course directory, configuration and gradebook.

Everything nbgrader-specific that the command line needs lives here: finding the course root,
loading ``nbgrader_config.py`` the way nbgrader does, registering an assignment in the
gradebook (nbgrader's own ``GenerateAssignment``, with the release written to a scratch
folder so the committed ``release/`` is never touched), importing a roster and exporting
grades like ``nbgrader export``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "find_course_root",
    "load_config",
    "venv_on_path",
    "db_url_for",
    "prepare_gradebook",
    "unsynced_sqlite",
    "shared_engines",
    "SharedEngines",
    "register_assignment",
    "ensure_students",
    "import_roster",
    "export_grades",
]

ROSTER_COLUMNS = ("id", "first_name", "last_name", "email")


def find_course_root(course: str | os.PathLike[str] | None = None) -> Path:
    """The course root: ``course`` if given, else the current directory when it holds
    ``nbgrader_config.py``, else the repository root found from this package's location."""
    if course is not None:
        root = Path(course).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"course directory {root} does not exist")
        return root
    cwd = Path.cwd()
    if (cwd / "nbgrader_config.py").exists():
        return cwd.resolve()
    return Path(__file__).resolve().parents[2]


def load_config(course_root: str | os.PathLike[str]) -> Any:
    """Load ``<course_root>/nbgrader_config.py`` as nbgrader would; returns a traitlets Config.

    ``CourseDirectory.root`` is always set to ``course_root``.
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(course_root).resolve()
    config = Config()
    path = root / "nbgrader_config.py"
    if path.exists():
        loader = PyFileConfigLoader(path.name, path=str(root))
        config = loader.load_config()
    config.CourseDirectory.root = str(root)
    return config


@contextlib.contextmanager
def venv_on_path() -> Iterator[None]:
    """Put this interpreter's bin folder first on PATH (nbgrader runs ``alembic`` from PATH)."""
    bindir = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    if old.split(os.pathsep)[:1] == [bindir]:
        yield
        return
    os.environ["PATH"] = bindir + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def db_url_for(config: Any) -> str:
    """The gradebook URL the course uses (``CourseDirectory.db_url`` or the default sqlite)."""
    cd = config.get("CourseDirectory", {})
    if "db_url" in cd and cd["db_url"]:
        return str(cd["db_url"])
    return "sqlite:///" + str(Path(cd["root"]) / "gradebook.db")


_ALEMBIC_HEAD: str | None = None


def _alembic_head() -> str:
    """nbgrader's current gradebook schema revision, read in process (no ``alembic`` run)."""
    global _ALEMBIC_HEAD
    if _ALEMBIC_HEAD is None:
        import nbgrader
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        heads = ScriptDirectory.from_config(cfg).get_heads()
        if len(heads) != 1:
            raise RuntimeError(f"nbgrader's gradebook schema has {len(heads)} heads")
        _ALEMBIC_HEAD = heads[0]
    return _ALEMBIC_HEAD


def prepare_gradebook(db_url: str) -> None:
    """Create an empty sqlite gradebook the way nbgrader does, without its ``alembic`` run.

    nbgrader stamps a new gradebook by running ``alembic heads`` in a subprocess (about 2 s);
    this does the same in process. Other database URLs and existing files are left alone.
    """
    if not db_url.startswith("sqlite:///"):
        return
    path = Path(db_url[len("sqlite:///"):])
    if path.exists() and path.stat().st_size > 0:
        return
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    head = _alembic_head()
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(db_url, future=True)
    try:
        Base.metadata.create_all(bind=engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                         {"v": head})
    finally:
        engine.dispose()


@contextlib.contextmanager
def unsynced_sqlite(db_url: str) -> Iterator[None]:
    """While active, connections to this sqlite gradebook skip fsync (``synchronous=OFF``).

    nbgrader commits once per graded cell; on a disk each commit waits for fsync (about 10 ms),
    which dominates recording a class. Use this only for a throw-away gradebook (the
    temporary course of a CI run), never for an instructor's real one.
    """
    if not db_url.startswith("sqlite:///"):
        yield
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    target = os.path.realpath(db_url[len("sqlite:///"):])

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        try:
            rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
            if any(row[2] and os.path.realpath(row[2]) == target for row in rows):
                dbapi_connection.execute("PRAGMA synchronous=OFF")
        except Exception:  # not sqlite, or no such pragma: leave the connection as it is
            pass

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)


class SharedEngines:
    """What :func:`shared_engines` yields: the run's engines, and :meth:`transaction`."""

    def __init__(self, create_engine: Callable[..., Any], sessionmaker: Callable[..., Any]
                 ) -> None:
        self._real_create_engine = create_engine
        self._real_sessionmaker = sessionmaker
        self.engines: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._schema_checked: set[int] = set()
        self._real_inspect: Callable[..., Any] | None = None
        self._real_create_all: Callable[..., Any] | None = None

    def inspect(self, subject: Any) -> Any:
        """nbgrader's ``inspect`` while the context lasts: for an engine whose schema this run
        has checked, the answer to the one question nbgrader asks (are there tables?)."""
        if id(subject) in self._schema_checked:
            return _HasTables()
        assert self._real_inspect is not None
        return self._real_inspect(subject)

    def create_all(self, bind: Any = None, **kwargs: Any) -> None:
        """``Base.metadata.create_all`` while the context lasts: once per shared engine (the
        first open creates any missing table; the run's later opens would find them all)."""
        if id(bind) in self._schema_checked:
            return
        assert self._real_create_all is not None
        self._real_create_all(bind=bind, **kwargs)
        if any(engine is bind for engine in self.engines.values()):
            self._schema_checked.add(id(bind))

    def create_engine(self, url: Any, **kwargs: Any) -> Any:
        """nbgrader's ``create_engine`` while the context lasts: one engine per URL and
        arguments."""
        key = (str(url), tuple(sorted(kwargs.items())))
        with self._lock:
            engine = self.engines.get(key)
            if engine is None:
                engine = self._real_create_engine(url, **kwargs)
                # Gradebook.close() disposes of its engine: keep this one's pool for the run
                engine.dispose = _keep_pool
                self.engines[key] = engine
        return engine

    def sessionmaker(self, **kwargs: Any) -> Any:
        """nbgrader's ``sessionmaker`` while the context lasts: inside :meth:`transaction` (in
        the thread that opened it) a session on that transaction's connection, each of its
        commits a savepoint released, each rollback a rollback to its savepoint."""
        batches = getattr(self._local, "batches", {})
        connection = batches.get(id(kwargs.get("bind")))
        if connection is not None:
            kwargs = {**kwargs, "bind": connection, "join_transaction_mode": "create_savepoint"}
        return self._real_sessionmaker(**kwargs)

    @contextlib.contextmanager
    def transaction(self, db_url: str) -> Iterator[None]:
        """Every nbgrader ``Gradebook`` opened in this thread while active writes to the
        database ``db_url`` in one transaction, committed when the context ends.

        nbgrader commits after each change (about 35 times per student, each an fsync of a
        sqlite file); here each of those commits releases a savepoint of the one
        transaction, and each of nbgrader's rollbacks rolls back to its own savepoint, so
        what is written, and what a failure leaves, are what nbgrader's own commits would
        leave; the data reach the disk once, when the context ends (also when it ends with an
        exception: what nbgrader had committed until then stays, as it would). Other threads'
        gradebooks are not part of the transaction.
        """
        engine = self.create_engine(db_url, echo=False, future=True)
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            raw = connection.connection.dbapi_connection
            old_level = raw.isolation_level if sqlite else None
            if sqlite:
                # pysqlite begins transactions itself, lazily, and would make the first
                # SAVEPOINT the transaction (its RELEASE a commit): begin explicitly instead
                raw.isolation_level = None
            outer = connection.begin()
            if sqlite:
                connection.exec_driver_sql("BEGIN")
            batches = self._local.__dict__.setdefault("batches", {})
            batches[id(engine)] = connection
            try:
                yield
            finally:
                del batches[id(engine)]
                try:
                    if outer.is_active:
                        outer.commit()
                except BaseException:
                    if outer.is_active:
                        outer.rollback()
                    raise
                finally:
                    if sqlite:
                        raw.isolation_level = old_level


@contextlib.contextmanager
def shared_engines() -> Iterator[SharedEngines]:
    """While active, every nbgrader ``Gradebook`` opened in this process reuses one SQLAlchemy
    engine per database URL, and so its compiled-statement cache and pooled connections.

    ``nbgrader.api.Gradebook.__init__`` builds a new engine for each open (``create_engine``)
    and ``close`` disposes of it; nbgrader opens the gradebook about ten times per student,
    each time compiling the same SQL again. Here its ``create_engine`` hands out the run's
    engine and ``close`` leaves that engine's pool alone; the engines are disposed of when the
    context ends. The schema check of each open (``inspect``, ``Base.metadata.create_all``)
    runs once per engine: later opens of the run would find every table. Sessions,
    transactions and commits are nbgrader's own, unchanged (unless
    :meth:`SharedEngines.transaction` gathers them into one), and so is every connection
    setting (sqlite's fsync included). Not for concurrent runs that patch ``nbgrader.api``
    differently in the same process.
    """
    import nbgrader.api as nbapi

    shared = SharedEngines(nbapi.create_engine, nbapi.sessionmaker)
    shared._real_inspect = nbapi.inspect
    shared._real_create_all = nbapi.Base.metadata.create_all
    nbapi.create_engine = shared.create_engine
    nbapi.sessionmaker = shared.sessionmaker
    nbapi.inspect = shared.inspect
    nbapi.Base.metadata.create_all = shared.create_all  # an instance attribute, deleted below
    try:
        yield shared
    finally:
        nbapi.create_engine = shared._real_create_engine
        nbapi.sessionmaker = shared._real_sessionmaker
        nbapi.inspect = shared._real_inspect
        del nbapi.Base.metadata.create_all
        for engine in shared.engines.values():
            del engine.dispose  # the class's own again
            engine.dispose()


class _HasTables:
    """``inspect(engine)`` for an engine whose tables this run has checked."""

    def get_table_names(self) -> list[str]:
        """Not empty: the gradebook's tables exist (nbgrader only asks whether there are any)."""
        return ["student"]


def _keep_pool(close: bool = True) -> None:
    """``Engine.dispose`` of a shared engine while its run lasts: nothing to do."""


def _coursedir(config: Any, **traits: Any) -> Any:
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    for key, value in traits.items():
        setattr(coursedir, key, value)
    return coursedir


def register_assignment(
    config: Any, assignment: str, release_dir: str | os.PathLike[str], log: logging.Logger
) -> None:
    """Run nbgrader's GenerateAssignment so the gradebook holds ``assignment``'s cells.

    The generated student version goes to ``release_dir`` (a scratch folder), so the course's
    committed ``release/`` is left alone. Raises RuntimeError with nbgrader's message on failure.
    """
    from nbgrader.converters import GenerateAssignment, NbGraderException

    coursedir = _coursedir(config, assignment_id=assignment, release_directory=str(release_dir))
    converter = GenerateAssignment(coursedir=coursedir, config=config, log=log, force=True)
    prepare_gradebook(db_url_for(config))
    with venv_on_path():
        try:
            converter.start()
        except NbGraderException as exc:
            raise RuntimeError(
                f"nbgrader could not register assignment {assignment!r}: {exc}"
            ) from exc


def ensure_students(db_url: str, students: list[dict[str, str]], course_id: str = "") -> int:
    """Create or update students (dicts with ``id`` and optional names/email); returns count."""
    from nbgrader.api import Gradebook

    count = 0
    with venv_on_path(), Gradebook(db_url, course_id) as gb:
        for row in students:
            sid = (row.get("id") or "").strip()
            if not sid:
                continue
            extra = {k: (row.get(k) or None) for k in ROSTER_COLUMNS[1:] if k in row}
            gb.update_or_create_student(sid, **extra)
            count += 1
    return count


def import_roster(csv_path: str | os.PathLike[str], course: str | None = None) -> int:
    """Import a roster CSV (columns id,first_name,last_name,email) into the course gradebook.

    Returns the number of students created or updated. Raises ValueError for a CSV without
    an ``id`` column.
    """
    root = find_course_root(course)
    config = load_config(root)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "id" not in [f.strip() for f in reader.fieldnames]:
            raise ValueError(f"{csv_path}: the roster needs an 'id' column "
                             f"(columns: {','.join(ROSTER_COLUMNS)})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    course_id = config.get("CourseDirectory", {}).get("course_id", "")
    return ensure_students(db_url_for(config), rows, course_id)


def export_grades(csv_path: str | os.PathLike[str], course: str | None = None) -> Path:
    """Write every grade in the course gradebook to ``csv_path`` like ``nbgrader export``."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin

    root = find_course_root(course)
    config = load_config(root)
    course_id = config.get("CourseDirectory", {}).get("course_id", "")
    out = Path(csv_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    plugin = CsvExportPlugin(to=str(out))
    with venv_on_path(), Gradebook(db_url_for(config), course_id) as gb:
        plugin.export(gb)
    return out
