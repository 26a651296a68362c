"""The ``minicnn`` command line."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minicnn", description="minicnn command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the version, NumPy version, OpenMP status and threads")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import show_config

        show_config()
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
