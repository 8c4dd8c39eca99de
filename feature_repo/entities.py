"""Entities: who and what the features describe."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A company using the sales/support assistant.",
)

session = Entity(
    name="session",
    join_keys=["session_id"],
    value_type=ValueType.INT64,
    description="One chat session between a customer and the assistant; predictions are made at its end.",
)

offer = Entity(
    name="offer",
    join_keys=["offer_id"],
    value_type=ValueType.INT64,
    description="An offer the assistant can show in a session's ranked slate (the ranking models' items).",
)
