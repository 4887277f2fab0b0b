"""Entry-point wrapper: bad input ends the process with one clear line (file, row or key) and exit code 2; a stage
failure outside the input (StageError, e.g. a judge endpoint down) with one line and exit code 1."""

from __future__ import annotations

import sys
from typing import Callable

from pipeline.io import InputError, StageError


def entry_point(main: Callable[[], None]) -> None:
    try:
        main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
