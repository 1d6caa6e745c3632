"""Prompt moderation before any work: a term and pattern policy, and optionally an upstream /moderations."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from .. import errors
from .policy import ModerationSettings

log = logging.getLogger("easel.moderation")
Level = Literal["auto", "low"]


class Moderator:
    """Checks prompts against the policy (stricter on `auto`) and, if configured, an upstream."""

    def __init__(self, settings: ModerationSettings) -> None:
        self.settings = settings
        self._rules: dict[Level, list[tuple[str, re.Pattern[str]]]] = {"low": [], "auto": []}
        for name, category in settings.categories.items():
            always = _compile(category.terms, category.patterns)
            stricter = _compile(category.auto_terms, category.auto_patterns)
            if always:
                self._rules["low"].append((name, always))
                self._rules["auto"].append((name, always))
            if stricter:
                self._rules["auto"].append((name, stricter))
        self._client: httpx.AsyncClient | None = None

    async def check(self, prompt: str | None, level: Level) -> list[str]:
        """The categories that block this prompt at this level (empty: allowed)."""
        if not self.settings.enabled or not prompt:
            return []
        found = self.policy(prompt, level)
        if not found and self.settings.upstream_url:
            found = await self.upstream(prompt, level)
        return found

    def policy(self, prompt: str, level: Level) -> list[str]:
        found: list[str] = []
        for name, rule in self._rules[level]:
            if name not in found and rule.search(prompt):
                found.append(name)
        return found

    async def upstream(self, prompt: str, level: Level) -> list[str]:
        """Ask an OpenAI-compatible /moderations: `auto` blocks what it flags, `low` only high scores."""
        s = self.settings
        if self._client is None:
            headers = {"authorization": f"Bearer {s.upstream_api_key}"} if s.upstream_api_key else {}
            self._client = httpx.AsyncClient(timeout=s.upstream_timeout, headers=headers)
        url = f"{str(s.upstream_url).rstrip('/')}/moderations"
        try:
            response = await self._client.post(url, json={"model": s.upstream_model, "input": prompt})
            response.raise_for_status()
            result: dict[str, Any] = response.json()["results"][0]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("upstream moderation at %s failed: %s", url, exc)
            raise errors.unavailable("The moderation service did not answer") from None
        if level == "auto":
            found = [c for c, hit in (result.get("categories") or {}).items() if hit]
            return found or (["flagged"] if result.get("flagged") else [])
        scores = result.get("category_scores") or {}
        return [c for c, score in scores.items() if float(score) >= s.low_threshold]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _compile(terms: Sequence[str], patterns: Sequence[str]) -> re.Pattern[str] | None:
    words = [
        r"\b" + r"\s+".join(re.escape(w) for w in term.split()) + r"\b" for term in terms if term.strip()
    ]
    parts = words + [f"(?:{p})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None
