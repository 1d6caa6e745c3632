"""The `[ray]` table (the cluster, the ingress) and a model's `[models.ray]` table (its replicas)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelRaySettings(BaseModel):
    """How Ray Serve runs one model (`[models.ray]`): its replicas, their resources, its queue."""

    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(1, ge=1, description="Replicas of this model, when it does not autoscale.")
    min_replicas: int | None = Field(
        None, ge=0, description="Autoscaling: the fewest replicas (needs max_replicas)."
    )
    max_replicas: int | None = Field(
        None, ge=1, description="Autoscaling: the most replicas; set it to autoscale between the two."
    )
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Autoscaling: requests in progress per replica that Serve aims for."
    )
    num_cpus: float = Field(1.0, ge=0, description="CPUs each replica reserves.")
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs each replica reserves (1 for a real model: fractions share memory)."
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each replica reserves, e.g. `{a100 = 1}`."
    )
    max_queued: int = Field(
        64, ge=1, description="Requests that may wait for a replica once every replica is full "
        "(each holds the model's own `max_queue` and its runs); past it, 503 server_overloaded."
    )  # fmt: skip

    @model_validator(mode="after")
    def _bounds(self) -> ModelRaySettings:
        if self.min_replicas is not None and self.max_replicas is None:
            raise ValueError("min_replicas needs max_replicas (autoscaling is between the two)")
        if self.max_replicas is not None and (self.min_replicas or 0) > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self

    @property
    def workers(self) -> int:
        """Renders one replica runs at once: as many as the CPUs it reserved (more only thrash)."""
        return max(1, math.ceil(self.num_cpus))

    @property
    def most(self) -> int:
        """The most replicas it may have at once."""
        return self.max_replicas if self.max_replicas is not None else self.replicas

    def scaling(self) -> dict[str, Any]:
        """The deployment's replica count: fixed, or Serve's autoscaling config."""
        if self.max_replicas is None:
            return {"num_replicas": self.replicas}
        low = self.min_replicas if self.min_replicas is not None else 1
        return {
            "autoscaling_config": {
                "min_replicas": low,
                "initial_replicas": max(low, 1),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        }

    def actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


class RaySettings(BaseModel):
    """The Ray Serve mode's cluster-wide settings (`[ray]`); read only by `easel serve --ray`."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="The Ray cluster to join (`auto`, or `ray://host:10001`; --ray-address); "
        "none: start a local one."
    )  # fmt: skip
    ingress_replicas: int = Field(
        1, ge=1, description="Replicas of the ingress (easel's own app: auth, validation, limits, "
        "storage); more than one needs S3, Redis and PostgreSQL."
    )  # fmt: skip
    ingress_num_cpus: float = Field(1.0, ge=0, description="CPUs each ingress replica reserves.")
    app_name: str = Field("easel", min_length=1, description="The Serve application's name.")
