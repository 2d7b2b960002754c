"""Process-wide signal set-up for streamml's entry points (the CLI, spawned children).

Programs that drive a :class:`~streamml.pipeline.PipelineRun` themselves and
stop it on SIGTERM should call :func:`keep_signals_from_pyarrow` too.

>>> keep_signals_from_pyarrow()  # idempotent
"""

from __future__ import annotations


def keep_signals_from_pyarrow() -> None:
    """Let SIGINT/SIGTERM reach our handlers even during a long pyarrow call.

    pyarrow otherwise cancels its running operation (a CSV read, say) and raises
    ``ArrowCancelled``: a SIGTERM that should stop a run with a final checkpoint
    would crash it instead. Our handlers only set flags, checked between batches.
    """
    import pyarrow as pa

    pa.enable_signal_handlers(False)
