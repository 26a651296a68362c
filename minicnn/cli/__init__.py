"""The ``minicnn`` command line: train, evaluate, summary, predict, export, info.

A user's mistake (a bad option, a missing or wrong file, a run that cannot resume) is one
line on stderr and exit code 2, never a traceback; Ctrl-C exits with 130, and a closed pipe
(``minicnn predict ... | head -1``) quietly.
"""
import os
import sys

from .args import Parser, UsageError, one_line, say
from .export import add_export_command
from .train import add_train_arguments, run_train
from .use import add_use_commands

__all__ = ["Parser", "add_train_arguments", "build_parser", "main", "run", "run_train"]


def build_parser():
    parser = Parser(prog="minicnn", description="minicnn: train and use small CNNs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    train = sub.add_parser("train", help="train a network on MNIST and save it")
    add_train_arguments(train).set_defaults(run=run_train)
    add_use_commands(sub)
    add_export_command(sub)
    parser.commands = sub.choices
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand, whose options they were meant to be
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return run(args)


def run(args):
    """``args.run(args)`` with the command line's handling of mistakes, Ctrl-C and closed pipes;
    returns the exit code. ``args.command`` names the command in messages."""
    from ..checkpoint import CheckpointError
    from ..data import ChecksumError, IDXError
    from ..distributed.comm import StoppedByMain

    try:
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except BrokenPipeError:
        # the reader left (e.g. | head -1): drop what is still buffered, and say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"minicnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except StoppedByMain:  # another rank of an mpiexec run; rank 0 said why
        return 2
    except (UsageError, CheckpointError, ChecksumError, IDXError) as e:
        say(args.command, e)
        return 2
    except OSError as e:  # a file that cannot be read or written: the user's to fix
        say(args.command, f"{e.filename + ': ' if e.filename else ''}{e.strerror or one_line(e)}")
        return 2
