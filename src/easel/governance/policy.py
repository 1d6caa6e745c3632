"""The moderation policy's configuration (`[moderation]`) and the modest built-in term and pattern lists."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The built-in prompt policy: modest on purpose (operators replace it with their own lists).
#: Terms match whole words, case-insensitively; patterns are regular expressions.
_MINORS = r"\b(child|children|kids?|minors?|underage|preteens?|toddlers?|schoolgirls?|schoolboys?)\b"
_SEXUAL = r"\b(nude|naked|nudity|sex|sexual|porn\w*|erotic|explicit|nsfw|lingerie)\b"


class ModerationCategory(BaseModel):
    """One category of a moderation policy: what is blocked at both levels, and only on `auto`."""

    model_config = ConfigDict(extra="forbid")

    terms: list[str] = Field(default_factory=list, description="Words or phrases blocked at every level.")
    patterns: list[str] = Field(
        default_factory=list, description="Regular expressions blocked at every level."
    )
    auto_terms: list[str] = Field(
        default_factory=list, description="Words or phrases blocked only at `moderation=auto`."
    )
    auto_patterns: list[str] = Field(
        default_factory=list, description="Regular expressions blocked only at `moderation=auto`."
    )

    @field_validator("patterns", "auto_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
        return patterns


def _default_policy() -> dict[str, ModerationCategory]:
    return {
        "sexual/minors": ModerationCategory(
            # Bounded gaps keep a 32,000-character prompt linear to scan.
            patterns=[_MINORS + r"[\s\S]{0,200}?" + _SEXUAL, _SEXUAL + r"[\s\S]{0,200}?" + _MINORS],
        ),
        "sexual": ModerationCategory(
            auto_terms=[
                "nude",
                "naked",
                "nudity",
                "porn",
                "pornographic",
                "pornography",
                "hentai",
                "nsfw",
                "explicit sex",
                "sex act",
                "genitals",
            ],
        ),
        "violence/graphic": ModerationCategory(
            auto_terms=[
                "gore",
                "gory",
                "dismembered",
                "dismemberment",
                "decapitated",
                "decapitation",
                "beheading",
                "disemboweled",
                "mutilated",
                "mutilation",
            ],
        ),
        "self-harm": ModerationCategory(
            auto_terms=["self-harm", "self harm", "suicide", "slit wrists", "cutting myself"],
        ),
    }


class ModerationSettings(BaseModel):
    """How prompts are moderated before any work (`[moderation]`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Moderate prompts at all.")
    categories: dict[str, ModerationCategory] = Field(
        default_factory=_default_policy,
        description="The term and pattern policy, by category (replaces the built-in one when set).",
    )
    upstream_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible server whose /moderations also checks prompts."
    )
    upstream_api_key: str | None = Field(None, description="Bearer key for the upstream moderation server.")
    upstream_model: str = Field("omni-moderation-latest", description="The upstream moderation model.")
    upstream_timeout: float = Field(10.0, gt=0, description="Seconds to wait for the upstream verdict.")
    low_threshold: float = Field(
        0.9,
        ge=0,
        le=1,
        description="At `moderation=low`, an upstream category blocks from this score up.",
    )
