"""A cheap deterministic prompt encoder, planted duplicate data, and an independent dedup reference."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np


class BowEncoder:
    """Bag of words: each word a fixed random vector (from its hash), a text the sum of its words' vectors.

    Prompts that share most words are close (a light paraphrase), prompts on other topics are not.
    """

    dim = 64

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                out[i] += np.random.default_rng(seed).normal(size=self.dim)
        return out


SUBJECTS = [
    "bake sourdough bread", "change a flat bicycle tyre", "learn the violin", "train a puppy to sit",
    "grow tomatoes on a balcony", "file my income taxes", "write a cover letter", "fix a leaking faucet",
    "improve my chess openings", "brew cold coffee", "knit a wool scarf", "paint a watercolour sunset",
    "prepare for a marathon", "clean cast iron pans", "start investing in index funds",
    "learn python decorators",
    "plan a trip to Kyoto", "meditate before sleeping", "negotiate a higher salary", "repair drywall cracks",
    "photograph the night sky", "compost kitchen scraps", "speak basic Portuguese", "tune a guitar by ear",
    "make fresh pasta dough", "choose hiking boots", "stop procrastinating at work", "care for a cactus",
    "build a birdhouse from pine", "replace car wiper blades",
]  # fmt: skip
TEMPLATES = ["How do I {s}?", "What is the best way to {s}?", "Give me tips to {s}."]


def distinct_prompts(n: int) -> list[str]:
    """``n`` prompts on different subjects (one template each): no two are duplicates."""
    return [TEMPLATES[i % len(TEMPLATES)].format(s=SUBJECTS[i]) for i in range(n)]


def paraphrase(prompt: str) -> str:
    """A light paraphrase: one filler word added, the question reworded slightly."""
    reworded = prompt.replace("How do I", "How do I actually").replace("What is the best", "What's the best")
    return reworded + " Thanks"


def vary_case_and_space(prompt: str) -> str:
    """The same prompt with other case and whitespace."""
    return "  " + "   ".join(prompt.upper().split()) + "\n"


def normalise(text: str) -> str:
    """The normalised key, written independently of real_hub.dedup.text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def reference_kept(prompts: list[str], encoder, threshold: float, keep: str = "first") -> list[int]:
    """Kept row ids by the definition, all pairs by brute force: visit rows in keep order and keep a row
    unless its normalised prompt equals a kept one's, or its cosine with a kept one is >= threshold."""
    order = list(range(len(prompts)))
    if keep == "last":
        order.reverse()
    vectors = encoder.encode([normalise(p) for p in prompts]).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    kept: list[int] = []
    for row in order:
        if any(normalise(prompts[k]) == normalise(prompts[row]) for k in kept):
            continue
        if kept and max(float(vectors[k] @ vectors[row]) for k in kept) >= threshold:
            continue
        kept.append(row)
    return sorted(kept)
