"""TensorBoard scalars written with the `tensorboard` package's own event-file writer.

The files are those torch's `SummaryWriter` writes (`events.out.tfevents.*`, read by `tensorboard --logdir`),
but without importing torch into the driver: the driver trains nothing itself, and the torch import is a second
or more of start-up on every `nas search` and `nas resume`, most of a short search's time.
"""

import time
from pathlib import Path


class ScalarWriter:
    """`add_scalar(tag, value, step)`, `flush()`, `close()`: the part of `SummaryWriter` the search uses."""

    def __init__(self, log_dir: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(str(log_dir))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._writer.add_event(Event(summary=summary, step=step, wall_time=time.time()))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
