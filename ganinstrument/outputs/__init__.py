"""Outputs: where frames go. See `base` for the sink protocol and `spec` for `--output`.

Importing this package loads no heavy module (no PyAV, glfw, moderngl or SpoutGL): each sink
imports its library when it opens.
"""

from .base import Sink, SinkError, Sinks, SinkSpecError, SinkStats, SinkUnavailableError, ThreadedSink
from .spec import (
    SinkSpec,
    available_outputs,
    default_output_spec,
    make_sink,
    open_sinks,
    parse_output_spec,
    unavailable_reason,
)

__all__ = [
    "Sink", "SinkError", "SinkSpec", "SinkSpecError", "SinkStats", "SinkUnavailableError",
    "Sinks", "ThreadedSink", "available_outputs", "default_output_spec", "make_sink",
    "open_sinks", "parse_output_spec", "unavailable_reason",
]
