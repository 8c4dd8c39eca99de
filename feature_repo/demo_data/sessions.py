"""Chat sessions, their messages' intents and times, and the per-session statistics.

Everything is drawn from per-customer traits that do not change over time, so the session
features are stationary unless drift is asked for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import INTENTS, GeneratorConfig
from feature_repo.demo_data.timeline import DAY_S, ingestion_lag, origin, sigmoid, to_timestamps

FIRST_SESSION_ID = 1
FIRST_MESSAGE_ID = 1
SECONDS_PER_MESSAGE = 30.0
PRICING, DEMO, SUPPORT, BILLING, CANCEL, GENERAL = range(len(INTENTS))


def draw_sessions(customers: pd.DataFrame, config: GeneratorConfig, rng: np.random.Generator) -> pd.DataFrame:
    """All sessions from the warm-up on, ordered by end time, in seconds after the origin.

    `in_window` marks the sessions that end in [start, end): only those are written, but the
    warm-up ones still count in the activity windows.
    """
    span_s = (config.end - origin(config.start)).total_seconds()
    warmup_s = (config.start - origin(config.start)).total_seconds()
    counts = rng.poisson(customers["session_rate"].to_numpy() * span_s / DAY_S)
    customer_index = np.repeat(np.arange(len(customers)), counts)
    size = len(customer_index)
    start_s = rng.uniform(0.0, span_s, size)
    message_count = 1 + rng.poisson(customers["message_mean"].to_numpy()[customer_index] - 1.0)
    # Each reply takes a while to read and answer: duration grows with the message count.
    duration_s = np.round(10.0 + rng.gamma(message_count, SECONDS_PER_MESSAGE), 3)
    lag = ingestion_lag(rng, size)
    end_s = start_s + duration_s
    frame = pd.DataFrame(
        {
            "customer_index": customer_index,
            "start_s": start_s,
            "end_s": end_s,
            "message_count": message_count.astype("int64"),
            "duration_s": duration_s,
            "lag": lag,
            "in_window": (end_s >= warmup_s) & (end_s < span_s),
        }
    )
    return frame.sort_values(["end_s", "customer_index"], kind="stable", ignore_index=True)


def _intent_probabilities(customers: pd.DataFrame, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-session intent mix: engaged customers ask about pricing and demos, at-risk ones cancel."""
    size = len(index)
    buying = sigmoid(-1.2 + 0.8 * customers["engagement"].to_numpy()[index] + 0.8 * rng.standard_normal(size))
    leaving = sigmoid(
        -3.2 + 1.0 * customers["churn_risk"].to_numpy()[index] + 0.8 * rng.standard_normal(size)
    )
    weights = np.column_stack(  # one column per intent, in INTENTS order
        [
            0.6 * buying,
            0.3 * buying,
            0.35 * (1.0 - buying),
            0.12 * (1.0 - buying),
            0.6 * leaving,
            0.35 * (1.0 - buying) + 0.08,
        ]
    )
    return weights / weights.sum(axis=1, keepdims=True)


def _draw_intents(
    probabilities: np.ndarray, message_session: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    cumulative = probabilities.cumsum(axis=1)[message_session]
    draws = rng.random(len(message_session))
    return np.minimum((draws[:, None] > cumulative).sum(axis=1), len(INTENTS) - 1)


def _sentiment(
    intent: np.ndarray, message_session: np.ndarray, n_sessions: int, rng: np.random.Generator
) -> np.ndarray:
    """Buying talk lifts the mood, support and cancellation talk sinks it; bounded to (-1, 1)."""
    count = np.bincount(message_session, minlength=n_sessions)

    def share(*codes: int) -> np.ndarray:
        return np.bincount(message_session, weights=np.isin(intent, codes), minlength=n_sessions) / count

    score = 0.35 + 0.5 * share(PRICING, DEMO) - 1.8 * share(CANCEL) - 0.6 * share(SUPPORT, BILLING)
    return np.round(np.tanh(score + 0.35 * rng.standard_normal(n_sessions)), 4)


def _message_seconds(sessions: pd.DataFrame, message_session: np.ndarray, rng: np.random.Generator):
    """Message times spread over their session, in order (intents are i.i.d., so order is free)."""
    offset = rng.random(len(message_session))
    offset = offset[np.lexsort((offset, message_session))]
    start = sessions["start_s"].to_numpy()[message_session]
    return start + offset * sessions["duration_s"].to_numpy()[message_session]


def draw_messages(
    sessions: pd.DataFrame, customers: pd.DataFrame, config: GeneratorConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Messages (without text) and session_stats for the written sessions.

    `sessions` must be the in-window rows of `draw_sessions`, in its order.
    """
    base = origin(config.start)
    n_sessions = len(sessions)
    index = sessions["customer_index"].to_numpy()
    count = sessions["message_count"].to_numpy()
    message_session = np.repeat(np.arange(n_sessions), count)
    intent = _draw_intents(_intent_probabilities(customers, index, rng), message_session, rng)
    message_s = _message_seconds(sessions, message_session, rng)
    sentiment = _sentiment(intent, message_session, n_sessions, rng)
    customer_id = customers["customer_id"].to_numpy()[index]
    session_id = np.arange(FIRST_SESSION_ID, FIRST_SESSION_ID + n_sessions, dtype="int64")
    messages = pd.DataFrame(
        {
            "message_id": np.arange(FIRST_MESSAGE_ID, FIRST_MESSAGE_ID + len(intent), dtype="int64"),
            "session_id": session_id[message_session],
            "customer_id": customer_id[message_session],
            "event_timestamp": to_timestamps(base, message_s),
            "intent": np.asarray(INTENTS, dtype=object)[intent],
        }
    )
    end = to_timestamps(base, sessions["end_s"].to_numpy())
    stats = pd.DataFrame(
        {
            "session_id": session_id,
            "customer_id": customer_id,
            "message_count": count.astype("int64"),
            "duration_s": sessions["duration_s"].to_numpy(),
            "sentiment_score": sentiment,
            "pricing_messages": np.bincount(
                message_session, weights=intent == PRICING, minlength=n_sessions
            ).astype("int64"),
            "event_timestamp": end,
            "created": end + pd.TimedeltaIndex(sessions["lag"]),
        }
    )
    return messages, stats
