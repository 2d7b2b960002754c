"""Shared state of one CLI invocation: lazily loaded settings and log."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from streamml.log import Log, open_log
from streamml.settings import Settings, load_settings


@dataclass
class CliState:
    broker: str | None = None
    config_file: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _log: Log | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            source = self.config_file if self.config_file else "auto"
            self._settings = load_settings(config_file=source, broker=self.broker)
        return self._settings

    def log(self) -> Log:
        """Open (once) the log the settings name; closed when the command ends."""
        if self._log is None:
            self._log = open_log(settings=self.settings)
            click.get_current_context().call_on_close(self._log.close)
        return self._log


pass_state = click.make_pass_decorator(CliState)
