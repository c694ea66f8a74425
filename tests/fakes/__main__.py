"""python -m tests.fakes NAME [--port N]: run one fake provider server on 127.0.0.1."""
import argparse

from . import FAKES, fake_class
from .toolkit import run_standalone


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    ap.add_argument("name", choices=sorted(FAKES))
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    args = ap.parse_args()
    run_standalone(fake_class(args.name), args.port)


if __name__ == "__main__":
    main()
