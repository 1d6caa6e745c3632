"""The usage report: usage rows summed into time buckets and groups, shaped like OpenAI's images usage API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select

from .db import Database
from .db.schema import UsageRecord

#: The images usage API's `source` per operation.
SOURCES = {"generations": "image.generation", "edits": "image.edit", "variations": "image.variation"}
GROUPS = {
    "model": UsageRecord.model,
    "api_key_id": UsageRecord.api_key_id,
    "project_id": UsageRecord.project,
    "size": UsageRecord.size,
    "source": UsageRecord.operation,
}
WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
#: OpenAI's default and largest bucket counts per width.
BUCKET_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}


def images_usage(
    db: Database,
    start: int,
    end: int | None = None,
    bucket_width: str = "1d",
    group_by: Sequence[str] = (),
    limit: int | None = None,
) -> dict[str, Any]:
    """OpenAI's images usage page: time buckets from `start`, each with results per group."""
    width = WIDTHS[bucket_width]
    default, most = BUCKET_LIMITS[bucket_width]
    count = min(limit or default, most)
    end = end if end is not None else int(time.time()) + 1
    stop = min(end, start + count * width)
    columns = [GROUPS[g] for g in group_by]
    bucket = ((UsageRecord.created_at - start) // width).label("bucket")
    ok = UsageRecord.status.between(200, 399)
    query = (
        select(
            bucket,
            *columns,
            func.sum(case((ok, UsageRecord.images), else_=0)),
            func.sum(case((ok, 1), else_=0)),
            func.sum(case((ok, 0), else_=1)),
            func.sum(case((ok, UsageRecord.pixels), else_=0)),
        )
        .where(UsageRecord.created_at >= start, UsageRecord.created_at < stop, UsageRecord.status > 0)
        .group_by(bucket, *columns)
    )
    with db.transaction() as conn:
        rows = conn.execute(query).all()
    results: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        index: int = row[0]
        groups: list[Any] = list(row[1 : 1 + len(columns)])
        images, requests, refused, pixels = row[1 + len(columns) :]
        result: dict[str, Any] = {
            "object": "organization.usage.images.result",
            "images": int(images or 0),
            "num_model_requests": int(requests or 0),
            "source": None, "size": None, "api_key_id": None,
            "model": None, "project_id": None, "user_id": None,
            "refused_requests": int(refused or 0),
            "megapixels": round(int(pixels or 0) / 1e6, 6),
        }  # fmt: skip
        for name, value in zip(group_by, groups, strict=True):
            result[name] = SOURCES.get(str(value), value) if name == "source" else value
        results.setdefault(int(index), []).append(result)
    buckets = []
    at = start
    while at < stop:
        buckets.append({"object": "bucket", "start_time": at, "end_time": at + width,
                        "results": results.get((at - start) // width, [])})  # fmt: skip
        at += width
    more = stop < end
    return {"object": "page", "data": buckets, "has_more": more, "next_page": str(stop) if more else None}
