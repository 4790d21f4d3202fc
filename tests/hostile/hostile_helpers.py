"""Helpers of the hostile-input tests: run the CLI in-process, count every row of a store."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from edgediff.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `edgediff ARGS` run in this process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str, needle: str, *, status: int = 2) -> None:
    """The promise: exit `status`, exactly one line on stderr, naming `needle`, no traceback."""
    assert code == status, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert needle in err, err
    assert "Traceback" not in err


def row_counts(url: str) -> dict[str, int]:
    """Rows of every table in the database at `url` (edgediff's and Optuna's); {} if none."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            return {t: connection.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}
    finally:
        engine.dispose()
