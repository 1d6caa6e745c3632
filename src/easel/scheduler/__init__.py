"""The scheduler: a bounded fair queue per model, batched runs, and the ticket protocol between a
request and the runs that make its images."""

from .queue import FairQueue
from .runs import runner_for
from .tickets import Event, Finished, ModelQueue, Partial, Runner, Slice, Ticket, receive, timed_out
from .workers import Scheduler

__all__ = [
    "Event",
    "FairQueue",
    "Finished",
    "ModelQueue",
    "Partial",
    "Runner",
    "Scheduler",
    "Slice",
    "Ticket",
    "receive",
    "runner_for",
    "timed_out",
]
