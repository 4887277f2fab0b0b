"""Entry-point wrapper: bad input ends the process with one clear line (file, row or key) and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable

from pipeline.io import InputError


def entry_point(main: Callable[[], None]) -> None:
    try:
        main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
