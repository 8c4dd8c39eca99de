"""Message texts: templates per intent with slot fillers, typing noise and some label noise.

About 3% of texts come from another intent's templates (mislabelled) and about 2% are
ambiguous, so an intent classifier can get high but not perfect accuracy.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import INTENTS

TEMPLATES: dict[str, tuple[str, ...]] = {
    "pricing": (
        "How much does the {plan} plan cost for {seats} seats?",
        "What's the price of {product} on {plan}?",
        "Is there a discount if we pay annually for {seats} users?",
        "Can you send me a quote for {seats} seats of {plan}?",
        "Compare {plan} and {plan2} pricing please",
        "do you have volume pricing above {seats} seats",
        "How much extra is {product} per month?",
        "Is {amount} per month the final price for {plan}?",
    ),
    "demo_request": (
        "Can I book a demo of {product} on {day}?",
        "We'd like a walkthrough of {product} for our team of {seats}",
        "Could someone from sales show us {product}?",
        "Is a live demo available this {day}?",
        "I want to see {product} in action before we decide",
        "schedule a call to demo the {plan} features",
        "Can we get a trial of {plan} and a short demo?",
    ),
    "technical_support": (
        "{product} keeps failing with {error}",
        "I can't log in since this morning, getting {error}",
        "The export from {product} is stuck at {pct}%",
        "How do I connect {product} to our data warehouse?",
        "The API returns {error} when I send more than {seats} requests",
        "sync is broken again, {product} shows {error}",
        "{product} is really slow since {day}",
    ),
    "billing": (
        "I was charged {amount} twice this month",
        "Where can I download my invoice for {month}?",
        "Please update the card on file for our {plan} account",
        "Why did my bill go up to {amount}?",
        "Can you change our billing email?",
        "need a VAT invoice for {month}",
        "The {month} invoice lists {seats} seats but we only have fewer",
    ),
    "cancellation": (
        "I want to cancel my {plan} subscription",
        "How do I close our account? We're moving to another tool",
        "Please stop the renewal in {month}",
        "We don't use {product} anymore, cancel it",
        "downgrade us from {plan} to free, we're stopping",
        "What happens to our data if we cancel?",
        "cancel everything for our {seats} users please",
    ),
    "general": (
        "Hi there!",
        "Thanks, that helps",
        "Who am I talking to?",
        "Do you have docs for {product}?",
        "What are your support hours on {day}?",
        "ok great, thanks for the help",
        "Hello, quick question",
        "Is there a newsletter I can subscribe to?",
    ),
}
# Could be any intent: they keep the row's label, so no classifier gets them all right.
AMBIGUOUS = (
    "I have a question about my {plan} plan",
    "Can you help me with {product}?",
    "Something is off with our account",
    "I need to talk to someone about {product}",
    "what are my options here?",
    "About {month}...",
)
SLOTS: dict[str, tuple[str, ...]] = {
    "product": (
        "Analytics Suite",
        "the API",
        "the SSO add-on",
        "Data Connectors",
        "the mobile app",
        "Workflow Builder",
        "the Insights dashboard",
        "the Slack integration",
    ),
    "plan": ("Starter", "Pro", "Enterprise"),
    "plan2": ("Starter", "Pro", "Enterprise"),
    "seats": ("5", "10", "20", "25", "50", "100", "250", "500"),
    "amount": ("$49", "$98", "$199", "$398", "$1,500", "$2,400", "$79.99"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "month": ("July", "August", "September", "October", "November"),
    "error": ("error 502", "a timeout", "error 401", "'sync failed'", "a blank page", "error 500"),
    "pct": ("12", "50", "87", "99"),
}
MISLABEL_RATE = 0.03
AMBIGUOUS_RATE = 0.02
LOWERCASE_RATE = 0.15
TYPO_RATE = 0.06


def _template_pool() -> tuple[list[str], np.ndarray, np.ndarray]:
    """All templates in one list, with each intent's offset and count in it (ambiguous last)."""
    groups = [TEMPLATES[intent] for intent in INTENTS] + [AMBIGUOUS]
    pool = [template for group in groups for template in group]
    sizes = np.array([len(group) for group in groups])
    return pool, np.concatenate([[0], sizes.cumsum()[:-1]]), sizes


def _render(template: str, slots: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Fill one template for many rows at once: object-array concatenation, no per-row loop."""
    out = np.full(len(rows), "", dtype=object)
    for literal, name, _, _ in string.Formatter().parse(template):
        out = out + literal
        if name:
            out = out + slots[name][rows]
    return out


def _typo(text: str, where: float) -> str:
    """Swap two neighbouring characters, as fast typists do."""
    if len(text) < 4:
        return text
    i = 1 + int(where * (len(text) - 3))
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def render_texts(intent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Texts for messages with the given intent codes (indices into INTENTS)."""
    size = len(intent)
    pool, offsets, sizes = _template_pool()
    noise_kind = rng.random(size)
    other = (intent + rng.integers(1, len(INTENTS), size)) % len(INTENTS)
    group = np.where(noise_kind < MISLABEL_RATE, other, intent)
    ambiguous = (noise_kind >= MISLABEL_RATE) & (noise_kind < MISLABEL_RATE + AMBIGUOUS_RATE)
    group = np.where(ambiguous, -1, group)  # -1: the last group in the pool, the ambiguous one
    template = offsets[group] + rng.integers(0, 1 << 30, size) % sizes[group]
    slots = {
        name: np.asarray(values, dtype=object)[rng.integers(0, len(values), size)]
        for name, values in SLOTS.items()
    }
    texts = np.empty(size, dtype=object)
    for code in np.unique(template):
        rows = np.flatnonzero(template == code)
        texts[rows] = _render(pool[code], slots, rows)
    lower = rng.random(size) < LOWERCASE_RATE
    texts[lower] = pd.Series(texts[lower], dtype=object).str.lower().to_numpy()
    typo_at = rng.random(size)
    typo = np.flatnonzero(rng.random(size) < TYPO_RATE)
    texts[typo] = [_typo(texts[i], typo_at[i]) for i in typo]
    return texts
