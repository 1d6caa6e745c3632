"""The use case: `ImageService.serve` takes a request through plan, route, admit, run, deliver, settle."""

from .calls import Asked, Call, Event, Route, ServedModel, Streamed, until_gone
from .images import ImageService

__all__ = ["Asked", "Call", "Event", "ImageService", "Route", "ServedModel", "Streamed", "until_gone"]
