"""The dashboard's commands: `dashboard` (the live web page) and `report` (one static HTML file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgediff.errors import CliError
from storage import Store


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboards.server import bind, serve

    store = Store.open(args.db, create=False)  # an unreachable or empty store fails here, exit 2
    try:
        sock = bind(args.host, args.port, allow_remote=args.allow_remote)
    except BaseException:
        store.close()
        raise

    def ready(url: str) -> None:
        print(f"edgediff dashboard on {url} (store {store.url}); Ctrl-C stops it", flush=True)

    try:
        serve(store, sock, refresh_s=args.refresh, on_ready=ready, allow_remote=args.allow_remote)
    except KeyboardInterrupt:  # Ctrl-C is how a dashboard is meant to stop
        pass
    print("edgediff dashboard stopped")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dashboards.report import write_report

    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"folder '{out.parent}' does not exist: create it or choose another -o")
    if out.is_dir():
        raise CliError(f"'{out}' is a folder: give -o a file name such as {out / 'report.html'}")
    with Store.open(args.db, create=False) as store:
        try:
            report = write_report(store, args.study, out, max_plans=args.max_plans)
        except OSError as err:
            raise CliError(f"cannot write '{out}' ({err.strerror}): choose another -o") from None
    size = report.path.stat().st_size / 1e6
    print(f"report of study '{args.study}' written to {report.path} ({size:.1f} MB)")
    if report.embedded < report.plans:
        print(f"it embeds the views of the {report.embedded} plans on a front, of {report.plans} "
              f"(--max-plans {report.plans} embeds them all)")
    return 0
