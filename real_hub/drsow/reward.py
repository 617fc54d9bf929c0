r"""Dr.SoW's reward: ``r(x, y) = log p_strong(y | x) - log p_weak(y | x)``, as a ``dataset.map`` processor.

How a row becomes the two texts both models score (:func:`real_hub.rendering.render`):

- The conversation is rendered **once**, with the **strong** model's chat template, and the very same
  strings go to both models (each tokenizes them with its own tokenizer; :mod:`real_hub.logprobs` takes care
  of BOS doubling and of a token that merges across the prompt/response boundary).
- With a template: a text prompt becomes one ``user`` message; with routing on, the domain's instruction is
  the system turn (merged in front of an existing system message, see :mod:`real_hub.drsow.routing`). The
  prompt text is the rendering of the messages with ``add_generation_prompt=True``; the full text is the
  rendering of ``messages + [{"role": "assistant", "content": response}]``; the response text is
  ``full[len(prompt_text):]``, so the template's end-of-turn marker is scored as part of the response (the
  model's probability of stopping there), as in the paper's code. When the full rendering does not start
  with the prompt rendering (templates that strip or rewrite turns), the response text is the response as
  given, appended to the prompt rendering; such rows are counted in :attr:`RewardStats.template_fallbacks`
  and a warning is logged once.
- Without a template (``chat_template=False``, or a strong tokenizer that has none: a warning is logged
  once): a text prompt and its response are scored exactly as given, ``prompt + response``; with routing
  on, the prompt becomes ``instruction + "\n\n" + prompt``. A message prompt is rendered as an HH-style
  transcript (:func:`real_hub.rendering.render_plain`): ``"\n\nHuman: ..."`` / ``"\n\nAssistant: ..."`` /
  ``"\n\nSystem: ..."`` turns, then ``"\n\nAssistant:"``; the response text is ``" " + response``.

Normalisation: ``normalize="sum"`` (the paper's code: summed response log-probs) or ``"mean"`` (per-token,
the default of the authors' later ``reward_hub``): ``logp_strong / tokens - logp_weak / tokens_weak``. The
``*_logp_*`` columns always hold sums; every row records the choice in ``reward_normalize``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from ..arrays import first_non_finite
from ..errors import ColumnError, ConfigError, RowError
from ..logprobs import score_sequences
from ..models import load_causal_lm, pick_device, resolve_model
from ..processor import Processor, split_extra_args
from ..rendering import Rendered, render, render_plain
from ..validate import (
    CANDIDATE_RESPONSE_COLUMN,
    PAIR_RESPONSE_COLUMNS,
    check_list,
    check_messages,
    check_response,
    check_text,
    is_list,
    response_columns,
    row_label,
)
from .routing import (
    DOMAIN_INSTRUCTIONS,
    EmbeddingRouter,
    Router,
    check_routes,
    last_user_turn,
    with_instruction,
)

logger = logging.getLogger(__name__)

Normalize = Literal["sum", "mean"]
CANDIDATES_COLUMN = CANDIDATE_RESPONSE_COLUMN


@dataclass
class RewardStats:
    """What one process has scored so far (``DensityRatioReward.stats``; workers keep their own).

    Attributes:
        rows: Rows scored.
        responses: Responses scored.
        template_fallbacks: Responses whose full rendering did not start with the prompt rendering.
        truncated: Responses cut by ``max_length`` (for either model).
        tokens_cut: Tokens those cuts removed, both models together (the system turn is never cut).
        domains: Rows per routed domain.
    """

    rows: int = 0
    responses: int = 0
    template_fallbacks: int = 0
    truncated: int = 0
    tokens_cut: int = 0
    domains: Counter = field(default_factory=Counter)


def _check_prompt(value: Any, label: int | str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return check_text(value, row=label, column="prompt")
    if is_list(value):
        messages = check_messages(value, row=label, column="prompt")
        if not messages:
            raise RowError(
                "expected a non-empty list of chat messages, found an empty list", row=label, column="prompt"
            )
        if last_user_turn(messages) is None:
            roles = [m["role"] for m in messages]
            raise RowError(
                f"the conversation has no user turn (roles: {roles}); expected at least one 'user' message",
                row=label,
                column="prompt",
            )
        return messages
    raise RowError(
        f"expected a string or a list of chat messages, found {type(value).__name__}",
        row=label,
        column="prompt",
    )


class _Models(NamedTuple):
    strong: Any
    strong_tokenizer: Any
    weak: Any
    weak_tokenizer: Any


class DensityRatioReward(Processor):
    """Add Dr.SoW rewards, for ``dataset.map(DensityRatioReward(strong, weak), batched=True)``.

    Pairs (``prompt``, ``chosen``, ``rejected``) get ``chosen_reward``, ``rejected_reward``,
    ``chosen_logp_strong``, ``chosen_logp_weak``, ``chosen_tokens`` (strong tokenizer),
    ``chosen_tokens_weak`` and the same for ``rejected``; a side that holds a list of responses
    (RewardBench 2's ``chosen``/``rejected`` lists, best-of-4) gets lists of those values, one per
    response, so the whole benchmark is one ``map``; candidates (``prompt``, ``responses``) get the
    lists ``rewards``, ``logps_strong``, ``logps_weak``, ``tokens`` and ``tokens_weak``. Every row also
    gets ``reward_normalize`` and, with routing, ``domain``. Rendering and normalisation are described in
    the module docstring. Prompts are text or lists of ``{"role", "content"}`` messages.

    Args:
        strong: The better-aligned model (Hub id, local folder or ``.gguf`` file); its chat template renders.
        weak: The less-aligned model (e.g. the strong model's SFT parent).
        normalize: ``"sum"`` (the paper) or ``"mean"`` (per token).
        chat_template: Render with the strong model's chat template; ``False`` scores text as given.
        domain_routing: Route each prompt to a domain and prepend its instruction as a system turn; adds the
            ``domain`` column. ``False``: no instruction, no column.
        router: A callable ``router(prompts) -> domains`` over the prompts' last user turns; default an
            :class:`~real_hub.drsow.routing.EmbeddingRouter` (all-MiniLM-L6-v2).
        instructions: Instruction per domain; default :data:`~real_hub.drsow.routing.DOMAIN_INSTRUCTIONS`.
        strong_revision: Hub revision of the strong model.
        weak_revision: Hub revision of the weak model.
        strong_gguf_file: GGUF file name in the strong model's folder.
        weak_gguf_file: GGUF file name in the weak model's folder.
        model_dtype: Weights' precision (``"float32"``, ``"bfloat16"``, ``"float16"``); sums are fp64.
        device: Torch device; default a GPU when present (``cuda:<rank>`` with ``with_rank=True``).
        batch_size: Sequences per forward pass.
        max_length: Token cap per (prompt + response) and model: the system turn (a routed instruction) is
            kept and the oldest tokens after it are cut; cuts are counted in :attr:`stats`.
        trust_remote_code: Allow models that ship their own Python code.
        with_rank: Expect ``Dataset.map(..., with_rank=True)`` and put each rank on its own GPU.
    """

    def __init__(
        self,
        strong: str,
        weak: str,
        *,
        normalize: Normalize = "sum",
        chat_template: bool = True,
        domain_routing: bool = True,
        router: Router | None = None,
        instructions: Mapping[str, str] | None = None,
        strong_revision: str | None = None,
        weak_revision: str | None = None,
        strong_gguf_file: str | None = None,
        weak_gguf_file: str | None = None,
        model_dtype: str = "float32",
        device: str | None = None,
        batch_size: int = 16,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        with_rank: bool = False,
    ) -> None:
        for role, name in (("strong", strong), ("weak", weak)):
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"{role} must be a model name or path (a string), got {type(name).__name__}"
                )
        if normalize not in ("sum", "mean"):
            raise ConfigError(f"normalize must be 'sum' or 'mean', got {normalize!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if router is not None and not callable(router):
            raise ConfigError("router must be a callable router(prompts: list[str]) -> list[str]")
        if router is not None and not domain_routing:
            raise ConfigError("router was given but domain_routing=False; drop one of them")
        self.strong = strong
        self.weak = weak
        self.normalize = normalize
        self.chat_template = bool(chat_template)
        self.domain_routing = bool(domain_routing)
        self.router = (router if router is not None else EmbeddingRouter()) if domain_routing else None
        self.instructions = dict(instructions if instructions is not None else DOMAIN_INSTRUCTIONS)
        self.strong_revision = strong_revision
        self.weak_revision = weak_revision
        self.strong_gguf_file = strong_gguf_file
        self.weak_gguf_file = weak_gguf_file
        self.model_dtype = model_dtype
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.with_rank = with_rank
        self._reset()

    def _reset(self) -> None:
        self._models: dict[int | None, _Models] = {}
        self._warned: set[str] = set()
        self._stats = RewardStats()

    @property
    def stats(self) -> RewardStats:
        """Counters of this process (rows, responses, template fallbacks, truncations, domains)."""
        return self._stats

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # -- models ----------------------------------------------------------------------------------
    def models(self, rank: int | None = None) -> _Models:
        """``(strong, strong_tokenizer, weak, weak_tokenizer)``, loaded once per process and rank."""
        if rank not in self._models:
            self._models[rank] = self._load(rank)
        return self._models[rank]

    def _load(self, rank: int | None) -> _Models:
        device = pick_device(self.device, rank)
        common = {"device": device, "dtype": self.model_dtype, "trust_remote_code": self.trust_remote_code}
        # both found before either loads: a missing weak model fails in seconds, not after the strong one
        resolve_model(self.strong, self.strong_revision, gguf_file=self.strong_gguf_file)
        resolve_model(self.weak, self.weak_revision, gguf_file=self.weak_gguf_file)
        strong, stok = load_causal_lm(
            self.strong, revision=self.strong_revision, gguf_file=self.strong_gguf_file, **common
        )
        weak, wtok = load_causal_lm(
            self.weak, revision=self.weak_revision, gguf_file=self.weak_gguf_file, **common
        )
        if _tokenizers_differ(stok, wtok):
            self._warn_once(
                "tokenizers",
                "DensityRatioReward: the strong (%s) and weak (%s) models have different tokenizers; each "
                "scores the same text with its own, so token counts may differ (the paper pairs models "
                "that share one)",
                self.strong,
                self.weak,
            )
        if self.chat_template and not getattr(stok, "chat_template", None):
            self._warn_once(
                "no-template",
                "DensityRatioReward: the strong model %s has no chat template; prompts are rendered as "
                "plain text (see real_hub.rendering.render_plain)",
                self.strong,
            )
        return _Models(strong, stok, weak, wtok)

    # -- columns ---------------------------------------------------------------------------------
    def input_columns(self, present: Sequence[str]) -> tuple[str, ...]:
        """The response columns scored in data with columns ``present``."""
        if "prompt" not in present:
            raise ColumnError.missing(
                ["prompt"], present, hint="DensityRatioReward scores responses given a prompt"
            )
        return response_columns(present, action="DensityRatioReward scores")

    def output_features(self, features: Any) -> Any:
        """``features`` plus the reward columns (pass to ``map(..., features=...)`` to declare them)."""
        from datasets import Features, List, Value

        out = Features(dict(features))
        f64, i64 = Value("float64"), Value("int64")
        if self.input_columns(list(features)) == PAIR_RESPONSE_COLUMNS:
            for col in PAIR_RESPONSE_COLUMNS:
                many = _is_text_list_feature(features[col])
                for name, value in (
                    ("reward", f64),
                    ("logp_strong", f64),
                    ("logp_weak", f64),
                    ("tokens", i64),
                    ("tokens_weak", i64),
                ):
                    out[f"{col}_{name}"] = List(value) if many else value
        else:
            for name, value in (
                ("rewards", f64),
                ("logps_strong", f64),
                ("logps_weak", f64),
                ("tokens", i64),
                ("tokens_weak", i64),
            ):
                out[name] = List(value)
        out["reward_normalize"] = Value("string")
        if self.domain_routing:
            out["domain"] = Value("string")
        return out

    # -- rendering -------------------------------------------------------------------------------
    def _render(
        self, tokenizer: Any, prompt: str | list[dict[str, Any]], response: str, instruction: str | None
    ) -> tuple[Rendered, bool, str | None]:
        """The texts to score, whether the template's prefix rule held, and the system turn's text.

        The last is the start of the prompt text that truncation keeps (the system turn, with a routed
        instruction), or ``None`` when the conversation has no system turn.
        """
        use_template = self.chat_template and bool(getattr(tokenizer, "chat_template", None))
        if isinstance(prompt, str) and not use_template:
            prefix = f"{instruction}\n\n" if instruction is not None else ""
            return Rendered(prefix + prompt, response), True, prefix or None
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if instruction is not None:
            messages = with_instruction(messages, instruction)
        system = messages[0] if messages and messages[0]["role"] == "system" else None
        if not use_template:
            rendered = render_plain(messages, response)
            keep = render_plain([system], "").prompt.removesuffix("\n\nAssistant:") if system else None
            return rendered, True, keep
        rendered, ok = render(tokenizer, messages, response)
        keep = None
        if system is not None:
            keep = tokenizer.apply_chat_template([dict(system)], tokenize=False)
            if not rendered.prompt.startswith(keep):
                self._warn_once(
                    "system-prefix",
                    "DensityRatioReward: the chat template of %s renders the system turn alone differently "
                    "from the start of the conversation; truncation keeps only the leading special tokens",
                    self.strong,
                )
                keep = None
        return rendered, ok, keep

    # -- the map function ------------------------------------------------------------------------
    def process(self, batch: Mapping[str, Any], *args: Any) -> dict[str, Any]:
        """Score one batch; returns only the new columns."""
        indices, rank = split_extra_args(args, self.with_rank)
        columns = self.input_columns(list(batch.keys()))
        n = len(batch["prompt"])
        labels = [row_label(i, indices) for i in range(n)]
        prompts = [_check_prompt(batch["prompt"][i], labels[i]) for i in range(n)]
        responses: list[list[str]] = []
        response_names: list[list[str]] = []  # the column (and list item) each response came from
        shapes: list[list[int | None]] = []  # pairs: per side, None for one response or the list's length
        for i in range(n):
            if columns == PAIR_RESPONSE_COLUMNS:
                row, shape, names = [], [], []
                for c in PAIR_RESPONSE_COLUMNS:
                    texts, is_list = _pair_side(batch[c][i], labels[i], c)
                    row.extend(texts)
                    names.extend([f"{c}[{j}]" for j in range(len(texts))] if is_list else [c])
                    shape.append(len(texts) if is_list else None)
                shapes.append(shape)
            else:
                value = check_list(
                    batch[CANDIDATES_COLUMN][i],
                    row=labels[i],
                    column=CANDIDATES_COLUMN,
                    what="a list of strings",
                )
                names = [f"{CANDIDATES_COLUMN}[{j}]" for j in range(len(value))]
                row = [check_response(v, row=labels[i], column=c) for c, v in zip(names, value)]
            responses.append(row)
            response_names.append(names)

        domains: list[str] | None = None
        if self.domain_routing:
            assert self.router is not None
            texts = [last_user_turn(p) or "" for p in prompts]
            domains = check_routes(self.router(texts), n, list(self.instructions), labels) if n else []

        models = self.models(rank)
        flat_prompts: list[str] = []
        flat_responses: list[str] = []
        flat_labels: list[int | str] = []
        flat_keeps: list[str | None] = []
        flat_columns: list[str] = []
        for i in range(n):
            instruction = self.instructions[domains[i]] if domains is not None else None
            flat_columns.extend(response_names[i])
            for text in responses[i]:
                rendered, ok, keep = self._render(models.strong_tokenizer, prompts[i], text, instruction)
                if not ok:
                    self._stats.template_fallbacks += 1
                    self._warn_once(
                        "prefix",
                        "DensityRatioReward: the chat template of %s renders the conversation with the "
                        "response differently from the prompt alone (row %s); the response is appended to "
                        "the prompt rendering as given (counted in stats.template_fallbacks)",
                        self.strong,
                        labels[i],
                    )
                flat_prompts.append(rendered.prompt)
                flat_responses.append(rendered.response)
                flat_labels.append(labels[i])
                flat_keeps.append(keep)

        options = {
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "row_labels": flat_labels,
            "row_columns": flat_columns,
            "keep_prefixes": flat_keeps,
        }
        strong = score_sequences(
            models.strong, models.strong_tokenizer, flat_prompts, flat_responses, **options
        )
        weak = score_sequences(models.weak, models.weak_tokenizer, flat_prompts, flat_responses, **options)
        if self.normalize == "sum":
            rewards = strong.logp - weak.logp
        else:
            rewards = strong.mean - weak.mean
        bad = first_non_finite(rewards)
        if bad is not None:
            raise RowError(
                f"the models gave a non-finite reward ({rewards[bad]}: log p_strong {strong.logp[bad]}, "
                f"log p_weak {weak.logp[bad]}); expected finite log-probabilities (try float32 weights)",
                row=flat_labels[bad],
                column="prompt",
            )
        truncated = int((strong.truncated | weak.truncated).sum())
        if truncated:
            self._stats.truncated += truncated
            self._stats.tokens_cut += int(strong.tokens_cut.sum() + weak.tokens_cut.sum())
            self._warn_once(
                "truncated",
                "DensityRatioReward: responses were cut to max_length=%s, keeping the system turn and "
                "cutting the oldest turns after it (counted in stats.truncated and stats.tokens_cut)",
                self.max_length,
            )
        self._stats.rows += n
        self._stats.responses += len(flat_prompts)
        if domains is not None:
            self._stats.domains.update(domains)

        out = self._columns(columns, responses, rewards, strong, weak, shapes)
        out["reward_normalize"] = [self.normalize] * n
        if domains is not None:
            out["domain"] = domains
        return out

    def _columns(
        self, columns: tuple[str, ...], responses: list[list[str]], rewards, strong, weak, shapes
    ) -> dict:
        ends = np.cumsum([len(r) for r in responses])[:-1]

        def split(values: np.ndarray) -> list[np.ndarray]:
            return np.split(values, ends) if responses else []

        parts = {
            "reward": split(rewards),
            "logp_strong": split(strong.logp),
            "logp_weak": split(weak.logp),
            "tokens": split(strong.n_tokens),
            "tokens_weak": split(weak.n_tokens),
        }
        if columns == PAIR_RESPONSE_COLUMNS:
            out: dict[str, list] = {f"{col}_{name}": [] for col in PAIR_RESPONSE_COLUMNS for name in parts}
            for r, shape in enumerate(shapes):
                start = 0
                for col, size in zip(PAIR_RESPONSE_COLUMNS, shape, strict=True):
                    stop = start + (size or 1)
                    for name, values in parts.items():
                        chunk = values[r][start:stop]
                        out[f"{col}_{name}"].append(chunk.tolist() if size is not None else chunk[0].item())
                    start = stop
            return out
        names = {
            "reward": "rewards",
            "logp_strong": "logps_strong",
            "logp_weak": "logps_weak",
            "tokens": "tokens",
            "tokens_weak": "tokens_weak",
        }
        return {names[name]: [row.tolist() for row in values] for name, values in parts.items()}


def _is_text_list_feature(feature: Any) -> bool:
    """Whether a feature is a list of strings (not a list of chat messages)."""
    from datasets import LargeList, List, Sequence, Value

    inner = getattr(feature, "feature", None) if isinstance(feature, (List, LargeList, Sequence)) else None
    return isinstance(inner, Value) and inner.dtype in ("string", "large_string")


def _pair_side(value: Any, label: int | str, column: str) -> tuple[list[str], bool]:
    """A pair side's response(s): one text (or TRL completion), or a list of texts (RewardBench 2)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        if not value:
            raise RowError("expected at least one response, found an empty list", row=label, column=column)
        return [check_text(v, row=label, column=f"{column}[{j}]") for j, v in enumerate(value)], True
    return [check_response(value, row=label, column=column)], False


def _tokenizers_differ(a: Any, b: Any) -> bool:
    """Whether two tokenizers can give different ids for the same text (vocabulary or special tokens)."""
    if a is b:
        return False
    probe = "<probe> Hello, world! 123"
    return a.get_vocab() != b.get_vocab() or a(probe)["input_ids"] != b(probe)["input_ids"]


__all__ = ["DensityRatioReward", "RewardStats"]
