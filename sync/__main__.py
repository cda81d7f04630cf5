"""`python -m sync sync …` keeps lists current; `python -m sync lookup …` checks a number offline."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .client import DEFAULT_REGION, Client, SyncError, lookup, online_lookup
from .numbers import InvalidNumber


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sync", description="CallMark reference list-sync client.")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="download or update lists, verifying every byte")
    sync.add_argument("--server", required=True, help="base URL of the CallMark server")
    sync.add_argument("--dir", required=True, help="folder holding the lists and the pinned keys")
    sync.add_argument("--list", action="append", dest="lists", metavar="NAME",
                      help="a list to sync (repeatable); default: every published list")
    sync.add_argument("--key", metavar="BASE64",
                      help="the server's Ed25519 public key to pin; default: trust the first one seen")

    find = commands.add_parser("lookup", help="which stored lists hold a number (no network unless --online)")
    find.add_argument("--dir", required=True, help="folder holding the lists")
    find.add_argument("--region", help=f"region of a number in national format (default {DEFAULT_REGION}; "
                                       "the E.164 looked up is printed)")
    find.add_argument("--online", action="store_true",
                      help="also ask the server, by hash prefix only, how people marked the number")
    find.add_argument("--server", help="base URL of the CallMark server (with --online)")
    find.add_argument("--token", help="this device's bearer token (with --online)")
    find.add_argument("number")
    return parser.parse_args(argv)


def run_sync(args: argparse.Namespace) -> int:
    try:
        client = Client(args.server, args.dir, args.key)
        names = args.lists or client.list_names()
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            print(client.sync_list(name).line(), flush=True)
        except SyncError as exc:
            print(f"{name}: refused: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def run_lookup(args: argparse.Namespace) -> int:
    if args.online and not (args.server and args.token):
        print("error: --online needs --server and --token", file=sys.stderr)
        return 2
    try:
        answer = lookup(args.dir, args.number, args.region or DEFAULT_REGION)
        if args.region is None and not args.number.strip().startswith(("+", "00")):
            print(f"note: {args.number} read as a number of {DEFAULT_REGION}, {answer['number']}; "
                  "give --region for another country's", file=sys.stderr)
        if args.online:
            answer["online"] = online_lookup(args.server, args.token, answer["number"])
        print(json.dumps(answer, ensure_ascii=False))
    except InvalidNumber as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_sync(args) if args.command == "sync" else run_lookup(args)


if __name__ == "__main__":
    sys.exit(main())
