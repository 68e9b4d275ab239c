"""Run Radicale's ``radicale/tests/test_base.py`` (from a scratch checkout) against calbridge's storage.

    .venv/bin/python tests/conformance/radicale_base/run.py --radicale-src /tmp/radicale-src \
        [--calbridge-mode mount|raw|baseline] [extra pytest arguments]

See README.md next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parents[2]  # the calbridge checkout
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import plugin  # noqa: E402


def _source(argv: list[str]) -> Path:
    for index, arg in enumerate(argv):
        if arg == "--radicale-src" and index + 1 < len(argv):
            return Path(argv[index + 1]).resolve()
        if arg.startswith("--radicale-src="):
            return Path(arg.split("=", 1)[1]).resolve()
    return Path("/tmp/radicale-src")


def main(argv: list[str]) -> int:
    src = _source(argv)
    target = src / "radicale" / "tests" / "test_base.py"
    if not target.is_file():
        print(f"{target} not found: check Radicale out first (see README.md)", file=sys.stderr)
        return 4
    args = [
        str(target),
        f"--rootdir={src}",
        "-c", str(src / "pyproject.toml"),  # Radicale's own pytest settings, not calbridge's
        "-p", "no:cacheprovider",
        "-q", "-rfEs",
        *argv,
    ]
    return int(pytest.main(args, plugins=[plugin]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
