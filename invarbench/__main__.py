"""``python -m invarbench``: the command line, as ``torchrun ... -m invarbench eval ...`` launches it."""

from invarbench.cli import main

if __name__ == "__main__":
    main()
