"""Plausible prose for the simulated model, built from templates and a seeded RNG."""

from __future__ import annotations

import random

from simulator.context import count_tokens

OPENERS = [
    "Here is a short answer about {topic}.",
    "Good question about {topic}.",
    "Let me walk through {topic} step by step.",
    "There are a few things worth knowing about {topic}.",
]
BODY = [
    "The most useful starting point is to separate what is known from what is assumed.",
    "In practice, the details depend on the constraints you are working under.",
    "A common mistake is to optimise the first step before measuring the whole loop.",
    "It helps to write down the expected result before checking the actual one.",
    "Most of the cost usually sits in one or two places, not spread evenly.",
    "If the inputs change often, prefer the approach that is cheap to redo.",
    "Small, repeatable experiments tell you more than one large attempt.",
    "The simplest version that works is usually the right one to keep.",
    "When two options look equal, pick the one that is easier to undo.",
    "Keep an eye on the edge cases, since that is where surprises live.",
    "A quick sanity check against a known value catches most errors early.",
    "Documenting the decision takes a minute and saves an hour later.",
]
CLOSERS = [
    "In short, {topic} rewards a careful, measured approach.",
    "I hope that gives you a clear picture of {topic}.",
    "Let me know if you want me to go deeper into any part of {topic}.",
]


def answer(rng: random.Random, topic: str, tokens: int) -> str:
    """A multi-sentence answer of about ``tokens`` tokens (at least three sentences)."""
    sentences = [rng.choice(OPENERS).format(topic=topic)]
    body = BODY[:]
    rng.shuffle(body)
    total = count_tokens(sentences[0])
    closer = rng.choice(CLOSERS).format(topic=topic)
    target = max(tokens - count_tokens(closer), 1)
    index = 0
    while total < target or len(sentences) < 2:
        sentence = body[index % len(body)]
        sentences.append(sentence)
        total += count_tokens(sentence)
        index += 1
    sentences.append(closer)
    return " ".join(sentences)


def summary(rng: random.Random, topic: str, findings: list[tuple[str, str]]) -> str:
    """A final answer that reads and cites the tool outputs it was given."""
    calls = len(findings)
    plural = "call" if calls == 1 else "calls"
    lines = [f"I looked into {topic} with {calls} tool {plural}."]
    for index, (name, output) in enumerate(findings[:8], start=1):
        snippet = " ".join(output.split())[:80]
        lines.append(f"Result {index} from {name}: {snippet}.")
    if calls > 8:
        lines.append(f"The remaining {calls - 8} results point the same way.")
    lines.append(rng.choice(BODY))
    lines.append(rng.choice(CLOSERS).format(topic=topic))
    return " ".join(lines)
