"""`python -m dashboard [--storage URL] [--host H] [--port P]` (or `nas-dashboard`): serve the
dashboard."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys

from dashboard.app import create_app
from nas._cli import OneLineParser, add_storage_option, fail, port_number, positive_seconds
from nas.storage import INVALID, OK, check_storage, redact


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="dashboard",
        script="nas-dashboard",
        description="Browse the Pareto fronts of stored searches (reads the storage only).",
    )
    add_storage_option(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8050, help="port to serve on (default 8050)"
    )
    parser.add_argument(
        "--poll",
        type=positive_seconds,
        default=5.0,
        help="seconds between checks for new trials (default 5)",
    )
    parser.add_argument("--debug", action="store_true", help="Dash debug mode (reloader off)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = check_storage(args.storage)
    if status.kind == INVALID:
        return fail(status.message)
    try:
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return fail(
                f"cannot serve on {args.host}:{args.port}: the port is in use; "
                "pick another --port (or stop what holds it)"
            )
        return fail(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}")
    if status.kind != OK:
        print(f"note: {status.message}; the page shows how to start a search", file=sys.stderr)
    app = create_app(args.storage, poll_seconds=args.poll, preload=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(
        f"dashboard on http://{args.host}:{args.port}/ reading {redact(args.storage)}",
        file=sys.stderr,
    )
    app.run(host=args.host, port=args.port, debug=args.debug, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
