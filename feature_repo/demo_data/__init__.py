"""Deterministic demo data: customers of a sales/support assistant, their chats and conversions.

`generate(GeneratorConfig(...))` builds the tables in memory; `write_tables` writes them as
Parquet with a manifest; `python -m feature_repo.demo_data` does both from the command line.
"""
