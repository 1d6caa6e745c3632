"""The scheduler: a bounded fair queue per model, batched runs, and the ticket protocol between a
request and the runs that make its images."""

from .queue import FairQueue
from .runs import runner_for
from .tickets import Event, Finished, Partial, Runner, Slice, Ticket, timed_out
from .workers import Scheduler

__all__ = [
    "Event",
    "FairQueue",
    "Finished",
    "Partial",
    "Runner",
    "Scheduler",
    "Slice",
    "Ticket",
    "runner_for",
    "timed_out",
]
