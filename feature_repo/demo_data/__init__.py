"""Deterministic demo data: customers of a sales/support assistant, their chats and conversions.

`generate(GeneratorConfig(...))` builds the tables in memory; `write_tables` writes them as
Parquet with a manifest; `python -m feature_repo.demo_data` does both from the command line.
"""

from feature_repo.demo_data.config import INTENTS, PLAN_TIERS, REGIONS, TABLES, DriftSpec, GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import is_up_to_date, write_tables

__all__ = [
    "INTENTS",
    "PLAN_TIERS",
    "REGIONS",
    "TABLES",
    "DriftSpec",
    "GeneratorConfig",
    "generate",
    "is_up_to_date",
    "write_tables",
]
