"""Prometheus metrics: one registry per app, served at GET /metrics in the text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
IMAGES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class Metrics:
    """The counters, histograms and gauges easel keeps; each app has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "easel_requests", "Image API requests by model, operation and status.",
            ["model", "operation", "status"], registry=r,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            "easel_stage_seconds", "Seconds per stage of a request: queue, generate, encode, store.",
            ["model", "stage"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.images = Counter(
            "easel_images_generated",
            "Images rendered, by model and operation.",
            ["model", "operation"],
            registry=r,
        )
        self.batch_images = Histogram(
            "easel_batch_images", "Images per backend run.", ["model"], buckets=IMAGES, registry=r
        )
        self.queue_depth = Gauge("easel_queue_depth", "Requests waiting, per model.", ["model"], registry=r)
        self.running = Gauge(
            "easel_runs_in_progress", "Backend runs in progress, per model.", ["model"], registry=r
        )
        self.at_replicas = Gauge(
            "easel_at_replicas", "Ray mode: requests this ingress has at a model's replicas, waiting or "
            "running there (or in Ray's queue for them).", ["model"], registry=r,
        )  # fmt: skip
        self.buffered = Gauge(
            "easel_buffered_bytes", "Bytes requests in progress hold: bodies as read, images as decoded.",
            registry=r,
        )  # fmt: skip
        self.refusals = Counter(
            "easel_refusals",
            "Requests refused before any work, by model and reason.",
            ["model", "reason"],
            registry=r,
        )

        self.upstream_seconds = Histogram(
            "easel_upstream_seconds", "Seconds an upstream took to answer (to its headers, for a stream).",
            ["model"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "easel_upstream_errors", "Failed upstream calls, by model and the status the client got.",
            ["model", "status"], registry=r,
        )  # fmt: skip
        self.rerouted = Counter(
            "easel_rerouted", "Requests another served model answered, by model, target and why "
            "(overflow, fallback).", ["model", "target", "reason"], registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
