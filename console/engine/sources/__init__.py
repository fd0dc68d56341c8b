"""Source adapters: fetch an agent service's queue and translate it to records; send decisions back."""

from __future__ import annotations

from console.engine.config import SourceConfig
from console.engine.secrets import Token
from console.engine.sources.base import Source


def build_source(config: SourceConfig, token: Token | None) -> Source:
    """The adapter for a configured source kind (one module per protocol)."""
    if config.kind == "native":
        from console.engine.sources.native import NativeSource

        return NativeSource(config, token)
    if config.kind == "langgraph":
        from console.engine.sources.langgraph import LangGraphSource

        return LangGraphSource(config, token)
    if config.kind == "temporal":
        from console.engine.sources.temporal import TemporalSource

        return TemporalSource(config, token)
    if config.kind == "prefect":
        from console.engine.sources.prefect import PrefectSource

        return PrefectSource(config, token)
    if config.kind == "airflow":
        from console.engine.sources.airflow import AirflowSource

        return AirflowSource(config, token)
    raise ValueError(f"unknown source kind {config.kind!r}")
