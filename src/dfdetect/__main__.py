"""`python -m dfdetect` (and `torchrun -m dfdetect`) runs the command line."""

from dfdetect.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
