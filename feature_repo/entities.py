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
