"""python-caldav's functional suite against stock Radicale and calbridge.

Runs tests/conformance/run_caldav_suite.py (see docs/conformance.md) in a
subprocess and requires exit status 0: no calbridge server fails or errors a
test that stock Radicale passes, and every selected server starts.  The
servers under test can be narrowed with CALBRIDGE_CONFORMANCE_SERVERS
(comma-separated, as for --servers).  Needs PyPI access on the first run (the
caldav sdist and a few test-only packages are cached afterwards).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_caldav_suite.py")
SUITE_TIMEOUT = 1800  # per server, enforced by the script
OVERALL_TIMEOUT = 3 * SUITE_TIMEOUT + 1200


@pytest.mark.slow
@pytest.mark.timeout(OVERALL_TIMEOUT + 60)
def test_caldav_suite_against_radicale_and_calbridge(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--junit-dir", str(tmp_path / "junit"), "--suite-timeout", str(SUITE_TIMEOUT)]
    servers = os.environ.get("CALBRIDGE_CONFORMANCE_SERVERS")
    if servers:
        cmd += ["--servers", servers]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=OVERALL_TIMEOUT)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    assert proc.returncode == 0, f"conformance harness exited with {proc.returncode}; report:\n{proc.stdout[-20000:]}"
