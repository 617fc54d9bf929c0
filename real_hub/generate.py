"""Candidate generation: ``GenerateResponses`` samples ``n`` responses per prompt, as a ``map`` processor.

Rows with a ``prompt`` (text, or a list of ``{"role", "content"}`` messages) get the candidates shape that
:class:`~real_hub.EmbedResponses`, :class:`~real_hub.SelectPairs` and :class:`~real_hub.DensityRatioReward`
take: ``responses`` (``n`` strings), plus per sample ``generated_tokens`` and ``finish_reasons`` (``"stop"``
at the end-of-turn token, ``"length"`` at ``max_new_tokens``), and provenance: ``generator`` (the model
id), ``generator_revision`` and ``generation_params`` (a JSON object of the sampling parameters).

How a row is generated (the ``transformers`` backend):

- **Rendering**: with ``chat_template=True`` and a tokenizer that has one, a text prompt becomes one
  ``user`` message, and the messages are rendered with ``add_generation_prompt=True``, then tokenized
  without adding special tokens (as ``apply_chat_template(tokenize=True)`` does). Otherwise a text prompt
  is tokenized as given (the tokenizer's own special tokens added), and a message prompt is rendered as an
  HH-style transcript (:func:`real_hub.rendering.render_plain`). This is the same rendering
  :class:`~real_hub.DensityRatioReward` scores with, so generated rows can be rewarded by the generator.
- **Reproducible per row**: each row has its own ``torch.Generator``, seeded from a hash of ``seed`` and
  the row's prompt; at every decoding step it draws ``n`` uniforms, one per sample, and a sample's token is
  the inverse CDF of its (temperature-scaled, top-p-cut) distribution at its uniform. A row's responses
  therefore depend on ``seed`` and its prompt only, never on ``batch_size``, ``num_proc`` or the rows it
  is batched with (two rows with the same prompt get the same responses).
- **Efficient**: prompts are sorted by length into batches of ``batch_size`` prompts (left padding, so
  rows of one batch differ in length as little as possible); each prompt is run through the model once,
  and its key/value cache is then repeated ``n`` times for the ``n`` samples. Finished samples leave the
  batch, so a long sample does not keep short ones computing.
- **Stopping**: a sample stops at the chat template's end-of-turn token (found by rendering a
  conversation, e.g. ``<|im_end|>``) or at an end-of-sequence token of the tokenizer or the model's
  generation config. The response is the decoded new tokens without the stop token and without special
  tokens, stripped of surrounding whitespace: never the prompt.
- **Context**: a row whose prompt tokens plus ``max_new_tokens`` exceed the model's context
  (``max_position_embeddings``) is a :class:`~real_hub.errors.RowError` naming the row and both lengths.

Samples that come out empty, and rows whose samples are all identical, are kept; :class:`GenerationReport`
counts them (from the dataset with :func:`generation_report`, or per process in ``GenerateResponses.stats``).

``backend="vllm"`` gives each row to vLLM's offline ``LLM.generate`` with ``SamplingParams(n=n,
seed=<the row's seed>)`` and the same prompt token ids and stop tokens; the output columns are the same
(the sampled texts are vLLM's, not bit-identical to the ``transformers`` backend's). It needs
``pip install 'real-hub[vllm]'`` on a GPU machine.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from .errors import ColumnError, ConfigError, RowError, option
from .models import load_causal_lm, pick_device, resolve_model
from .processor import Processor, split_extra_args
from .schema import (
    FINISH_REASONS,
    GENERATED_TOKENS,
    GENERATION_PARAMS,
    GENERATOR,
    GENERATOR_REVISION,
    PROMPT,
    RESPONSES,
    generated_features,
)
from .seeding import row_key
from .validate import check_prompt, row_label

logger = logging.getLogger(__name__)

Backend = Literal["transformers", "vllm"]
BACKENDS = ("transformers", "vllm")
OUTPUT_COLUMNS = tuple(generated_features())
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
VLLM_INSTALL = "pip install 'real-hub[vllm]'"


# ----------------------------------------------------------------------------------------------- reports


@dataclass
class GenerationReport:
    """What was generated: rows, samples, tokens, and the rows worth a look (kept, never dropped).

    Attributes:
        rows: Prompts generated for.
        samples: Responses generated (``rows * n``).
        new_tokens: Tokens generated, stop tokens included.
        stopped: Samples that ended at an end-of-turn / end-of-sequence token.
        truncated: Samples cut at ``max_new_tokens``.
        empty_samples: Samples whose text is empty (after stripping whitespace).
        rows_all_empty: Rows whose samples are all empty.
        rows_all_identical: Rows (with more than one sample) whose samples are all the same text.
    """

    rows: int = 0
    samples: int = 0
    new_tokens: int = 0
    stopped: int = 0
    truncated: int = 0
    empty_samples: int = 0
    rows_all_empty: int = 0
    rows_all_identical: int = 0

    def add_row(self, texts: Sequence[str], tokens: Sequence[int], finish: Sequence[str]) -> None:
        """Count one row's samples."""
        self.rows += 1
        self.samples += len(texts)
        self.new_tokens += int(sum(tokens))
        self.stopped += sum(f == FINISH_STOP for f in finish)
        self.truncated += sum(f == FINISH_LENGTH for f in finish)
        empty = sum(not t for t in texts)
        self.empty_samples += empty
        if texts and empty == len(texts):
            self.rows_all_empty += 1
        elif len(texts) > 1 and len(set(texts)) == 1:
            self.rows_all_identical += 1

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dictionary."""
        return asdict(self)


def generation_report(dataset: Any) -> GenerationReport:
    """Count a generated dataset's rows, tokens, stops, truncations, empty and all-identical rows."""
    names = list(dataset.column_names)
    missing = [c for c in (RESPONSES, GENERATED_TOKENS, FINISH_REASONS) if c not in names]
    if missing:
        raise ColumnError.missing(missing, names, hint="generate the responses with GenerateResponses")
    report = GenerationReport()
    columns = dataset.select_columns([RESPONSES, GENERATED_TOKENS, FINISH_REASONS])
    for batch in columns.iter(batch_size=1000):
        for texts, tokens, finish in zip(
            batch[RESPONSES], batch[GENERATED_TOKENS], batch[FINISH_REASONS], strict=True
        ):
            report.add_row(texts, tokens, finish)
    return report


# ----------------------------------------------------------------------------------------------- helpers


def row_seed(seed: int, prompt: str | Sequence[Mapping[str, Any]]) -> int:
    """The row's 63-bit generator seed: a hash of ``seed`` and the prompt's content (not its position)."""
    return row_key(seed, prompt, ()) & (2**63 - 1)


def end_of_turn_ids(tokenizer: Any, model: Any = None, *, chat_template: bool = True) -> list[int]:
    """Token ids that end a response: the template's end-of-turn token, EOS, the generation config's EOS."""
    ids: set[int] = set()

    def add(value: Any) -> None:
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))

    add(getattr(tokenizer, "eos_token_id", None))
    generation_config = getattr(model, "generation_config", None) if model is not None else None
    add(getattr(generation_config, "eos_token_id", None))
    if chat_template and getattr(tokenizer, "chat_template", None):
        marker = "\u2063real-hub\u2063"
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}], tokenize=False
        )
        if marker in text:
            suffix = text.split(marker)[-1]
            suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
            special = set(getattr(tokenizer, "all_special_ids", []) or [])
            special.update(i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special)
            if suffix_ids and suffix_ids[0] in special:
                ids.add(suffix_ids[0])
    return sorted(ids)


def encode_prompt(tokenizer: Any, prompt: str | list[dict[str, str]], *, chat_template: bool) -> list[int]:
    """Token ids of a prompt as the model will continue it (rules in the module docstring)."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not isinstance(prompt, str):
        from .rendering import render_plain

        prompt = render_plain(prompt, "").prompt
    return list(tokenizer(prompt)["input_ids"])


def model_context(model: Any) -> int | None:
    """The model's context length (``max_position_embeddings``), if it declares one."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


class Sample(NamedTuple):
    """One generated response: its new token ids (stop token excluded) and why it ended."""

    token_ids: list[int]
    finish_reason: str
    n_tokens: int
    """Tokens generated, the stop token included."""


def sample_tokens(logits: Any, uniforms: Any, temperature: float, top_p: float) -> Any:
    """One token per row of ``logits``: the inverse CDF at ``uniforms`` (argmax when temperature is 0).

    Top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p`` (as
    ``transformers``' ``TopPLogitsWarper`` does).
    """
    import torch

    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_p < 1.0:
        logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before >= top_p, 0.0)
    else:
        order = None
        probs = torch.softmax(logits, dim=-1)
    cdf = probs.cumsum(dim=-1)
    target = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    pos = torch.searchsorted(cdf, target).clamp_(max=cdf.shape[-1] - 1).squeeze(-1)
    return pos if order is None else order.gather(1, pos.unsqueeze(-1)).squeeze(-1)


def _cache_kwarg(model: Any) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def generate_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stop_ids: Sequence[int],
    pad_id: int,
) -> list[list[Sample]]:
    """Sample ``n`` continuations of each prompt (token ids) with per-prompt generators; see module doc."""
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    b = len(prompts)
    width = max(len(p) for p in prompts)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    position = (mask.cumsum(-1) - 1).clamp_(min=0)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    cache = DynamicCache(config=model.config)
    kwarg = _cache_kwarg(model)
    keep_last = "logits_to_keep" in inspect.signature(model.forward).parameters

    def forward(step_ids: Any, step_mask: Any, step_pos: Any) -> Any:
        extra = {"logits_to_keep": 1} if keep_last else {}
        out = model(
            input_ids=step_ids.to(device),
            attention_mask=step_mask.to(device),
            position_ids=step_pos.to(device),
            use_cache=True,
            **{kwarg: cache},
            **extra,
        )
        return out.logits[:, -1, :].float().cpu()

    tokens: list[list[int]] = [[] for _ in range(b * n)]
    finish: list[str | None] = [None] * (b * n)
    with torch.inference_mode():
        logits = forward(ids, mask, position).repeat_interleave(n, dim=0)
        cache.batch_repeat_interleave(n)
        mask = mask.repeat_interleave(n, dim=0)
        next_pos = position[:, -1:].repeat_interleave(n, dim=0) + 1
        active = torch.arange(b * n)  # sample index (row * n + j) of each line of the batch
        for step in range(max_new_tokens):
            rows = sorted({int(s) // n for s in active})
            draws = {r: torch.rand(n, generator=generators[r]) for r in rows}
            uniforms = torch.stack([draws[int(s) // n][int(s) % n] for s in active])
            chosen = sample_tokens(logits, uniforms, temperature, top_p)
            stopped = torch.isin(chosen, stop)
            for s, t, done in zip(active.tolist(), chosen.tolist(), stopped.tolist(), strict=True):
                if done:
                    finish[s] = FINISH_STOP
                else:
                    tokens[s].append(t)
            if step == max_new_tokens - 1:
                break
            keep = (~stopped).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            if keep.numel() < active.numel():
                active, chosen, mask, next_pos = active[keep], chosen[keep], mask[keep], next_pos[keep]
                cache.batch_select_indices(keep.to(device))
            mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype)], dim=1)
            logits = forward(chosen.unsqueeze(-1), mask, next_pos)
            next_pos = next_pos + 1
    out = []
    for r in range(b):
        samples = []
        for s in range(r * n, (r + 1) * n):
            reason = finish[s] or FINISH_LENGTH
            samples.append(Sample(tokens[s], reason, len(tokens[s]) + int(reason == FINISH_STOP)))
        out.append(samples)
    return out


# ----------------------------------------------------------------------------------------------- processor


class GenerateResponses(Processor):
    """Sample ``n`` responses per prompt, for ``dataset.map(GenerateResponses(model), batched=True)``.

    Adds ``responses``, ``generated_tokens``, ``finish_reasons``, ``generator``, ``generator_revision`` and
    ``generation_params`` (see the module docstring for rendering, reproducibility and stopping). Pass
    ``with_indices=True`` to ``map`` for error messages that name dataset rows.

    Args:
        model: Hub id, local folder or ``.gguf`` file of a causal LM.
        n: Responses per prompt.
        max_new_tokens: Most tokens per response (the stop token included).
        temperature: Softmax temperature; ``0`` is greedy decoding (then the ``n`` samples are identical).
        top_p: Nucleus sampling: sample among the most likely tokens holding this much probability.
        seed: With each row's prompt, seeds the row's generator.
        backend: ``"transformers"`` (CPU or GPU) or ``"vllm"`` (GPU, ``pip install 'real-hub[vllm]'``).
        chat_template: Render prompts with the model's chat template (when it has one).
        batch_size: Prompts per forward pass (each expands to ``n`` sequences).
        prompt_column: The column holding the prompts.
        revision: Hub revision of the model.
        gguf_file: GGUF file name inside the model folder.
        model_dtype: Weights' precision (``"float32"``, ``"bfloat16"``, ``"float16"``).
        device: Torch device; by default a GPU when present (``cuda:<rank>`` with ``with_rank=True``).
        trust_remote_code: Allow models that ship their own Python code.
        with_rank: Expect ``Dataset.map(..., with_rank=True)`` and put each rank on its own GPU.
    """

    def __init__(
        self,
        model: str,
        *,
        n: int = 4,
        max_new_tokens: int = 256,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int = 0,
        backend: Backend = "transformers",
        chat_template: bool = True,
        batch_size: int = 8,
        prompt_column: str = PROMPT,
        revision: str | None = None,
        gguf_file: str | None = None,
        model_dtype: str = "float32",
        device: str | None = None,
        trust_remote_code: bool = False,
        with_rank: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a model name or path (a string), got {type(model).__name__}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be 'transformers' or 'vllm', got {backend!r}")
        for name, value in (("n", n), ("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"temperature must be a number >= 0 (0 is greedy), got {temperature!r}")
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.model = model
        self.n = n
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = seed
        self.backend = backend
        self.chat_template = bool(chat_template)
        self.batch_size = batch_size
        self.prompt_column = prompt_column
        self.revision = revision
        self.gguf_file = gguf_file
        self.model_dtype = model_dtype
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.with_rank = with_rank
        self._reset()
        if backend == "vllm":
            vllm_modules()  # fail now, with the install line, rather than inside map

    def _reset(self) -> None:
        self._loaded: dict[int | None, tuple[Any, Any]] = {}
        self._stats = GenerationReport()

    @property
    def stats(self) -> GenerationReport:
        """Counts of this process (``num_proc`` workers keep their own; see :func:`generation_report`)."""
        return self._stats

    def params(self) -> dict[str, Any]:
        """The sampling parameters recorded in ``generation_params`` and in curated cards."""
        return {
            "backend": self.backend,
            "chat_template": self.chat_template,
            "max_new_tokens": self.max_new_tokens,
            "n": self.n,
            "seed": self.seed,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }

    def output_features(self, features: Any = None) -> Any:
        """``features`` plus the generated columns (pass to ``map(..., features=...)``)."""
        from datasets import Features

        return Features({**(features or {}), **generated_features()})

    # -- models ----------------------------------------------------------------------------------
    def loaded(self, rank: int | None = None) -> tuple[Any, Any]:
        """``(model, tokenizer)`` (for vLLM: ``(LLM, tokenizer)``), loaded once per process and rank."""
        if rank not in self._loaded:
            self._loaded[rank] = self._load(rank)
        return self._loaded[rank]

    def _load(self, rank: int | None) -> tuple[Any, Any]:
        if self.backend == "vllm":
            return self._load_vllm()
        model, tokenizer = load_causal_lm(
            self.model,
            revision=self.revision,
            device=pick_device(self.device, rank),
            dtype=self.model_dtype,
            gguf_file=self.gguf_file,
            trust_remote_code=self.trust_remote_code,
        )
        if self.chat_template and not getattr(tokenizer, "chat_template", None):
            logger.warning(
                "GenerateResponses: %s has no chat template; prompts are continued as plain text", self.model
            )
        return model, tokenizer

    def _load_vllm(self) -> tuple[Any, Any]:
        from .models import check_remote_code

        llm_cls, _ = vllm_modules()
        resolved = resolve_model(self.model, self.revision, gguf_file=self.gguf_file)
        check_remote_code(resolved, self.trust_remote_code)
        path = f"{resolved.path}/{resolved.gguf_file}" if resolved.gguf_file else resolved.path
        kwargs: dict[str, Any] = {
            "model": path,
            "seed": self.seed,
            "trust_remote_code": self.trust_remote_code,
            "dtype": "auto" if self.model_dtype in (None, "auto") else self.model_dtype,
        }
        if resolved.gguf_file:
            kwargs["tokenizer"] = resolved.path
        if resolved.revision:
            kwargs["revision"] = resolved.revision
        logger.info("Loading %s in vLLM from %s (%s)", self.model, path, resolved.source)
        llm = llm_cls(**kwargs)
        return llm, llm.get_tokenizer()

    # -- the map function ------------------------------------------------------------------------
    def process(self, batch: Mapping[str, Any], *args: Any) -> dict[str, Any]:
        """Generate for one batch; returns only the new columns."""
        indices, rank = split_extra_args(args, self.with_rank)
        if self.prompt_column not in batch:
            raise ColumnError.missing(
                [self.prompt_column], list(batch.keys()), hint="GenerateResponses continues each row's prompt"
            )
        prompts = [
            check_prompt(_plain(p), row=row_label(i, indices), column=self.prompt_column)
            for i, p in enumerate(batch[self.prompt_column])
        ]
        engine, tokenizer = self.loaded(rank)
        model = engine if self.backend == "transformers" else None
        encoded = [encode_prompt(tokenizer, p, chat_template=self.chat_template) for p in prompts]
        context = model_context(model) if model is not None else _vllm_context(engine)
        for i, ids in enumerate(encoded):
            if not ids:
                raise RowError("the prompt encodes to no token", row=row_label(i, indices), column="prompt")
            if context is not None and len(ids) + self.max_new_tokens > context:
                raise RowError(
                    f"the prompt has {len(ids)} tokens; with max_new_tokens={self.max_new_tokens} that "
                    f"exceeds the model's context of {context} tokens. Shorten the prompt or lower "
                    "max_new_tokens",
                    row=row_label(i, indices),
                    column=self.prompt_column,
                )
        seeds = [row_seed(self.seed, p) for p in prompts]
        stop_ids = end_of_turn_ids(tokenizer, model, chat_template=self.chat_template)
        if self.backend == "vllm":
            samples = self._run_vllm(engine, encoded, seeds, stop_ids)
        else:
            samples = self._run_transformers(model, tokenizer, encoded, seeds, stop_ids)
        out: dict[str, list[Any]] = {c: [] for c in OUTPUT_COLUMNS}
        params = json.dumps(self.params(), sort_keys=True)
        for row in samples:
            texts = [
                tokenizer.decode(s.token_ids, skip_special_tokens=True).strip() if s.token_ids else ""
                for s in row
            ]
            tokens = [s.n_tokens for s in row]
            reasons = [s.finish_reason for s in row]
            self._stats.add_row(texts, tokens, reasons)
            out[RESPONSES].append(texts)
            out[GENERATED_TOKENS].append(tokens)
            out[FINISH_REASONS].append(reasons)
            out[GENERATOR].append(self.model)
            out[GENERATOR_REVISION].append(self.revision)
            out[GENERATION_PARAMS].append(params)
        return out

    def _run_transformers(
        self, model: Any, tokenizer: Any, encoded: list[list[int]], seeds: list[int], stop_ids: list[int]
    ) -> list[list[Sample]]:
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = stop_ids[0] if stop_ids else 0
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
        results: list[list[Sample]] = [[] for _ in encoded]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            done = generate_batch(
                model,
                [encoded[i] for i in chunk],
                [seeds[i] for i in chunk],
                n=self.n,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                stop_ids=stop_ids,
                pad_id=pad,
            )
            for i, samples in zip(chunk, done, strict=True):
                results[i] = samples
        return results

    def _run_vllm(
        self, llm: Any, encoded: list[list[int]], seeds: list[int], stop_ids: list[int]
    ) -> list[list[Sample]]:
        _, sampling_params_cls = vllm_modules()
        params = [
            sampling_params_cls(
                n=self.n,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_new_tokens,
                seed=s % 2**31,
                stop_token_ids=stop_ids,
                skip_special_tokens=True,
            )
            for s in seeds
        ]
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        stop = set(stop_ids)
        results = []
        for request in outputs:
            row = []
            for c in request.outputs:
                ids = list(c.token_ids)
                reason = FINISH_STOP if c.finish_reason == "stop" else FINISH_LENGTH
                n_tokens = len(ids)
                if ids and ids[-1] in stop:
                    ids = ids[:-1]
                row.append(Sample(ids, reason, n_tokens))
            results.append(row)
        return results


def generate_candidates(
    rows: Any, generator: GenerateResponses, *, batch_size: int = 256, num_proc: int | None = None
) -> tuple[Any, GenerationReport, int]:
    """Candidates for the prompts of ``rows``: ``prompt`` and ``responses`` sampled by ``generator``.

    Empty samples are dropped from a row and rows left without a response are dropped. Returns the
    candidates, the :class:`GenerationReport` of all samples, and how many rows had no non-empty sample.
    """
    if PROMPT not in rows.column_names:
        hint = f"{option('generate', 'MODEL', placeholder=True)} continues each row's prompt"
        raise ColumnError.missing([PROMPT], rows.column_names, hint=hint)
    prompts = rows.select_columns([PROMPT])
    generated = prompts.map(
        generator,
        batched=True,
        with_indices=True,
        batch_size=batch_size,
        num_proc=num_proc,
        features=generator.output_features(prompts.features),
        desc="Generating responses",
    )
    report = generation_report(generated)
    logger.info("Generated %d responses for %d prompts: %s", report.samples, report.rows, report.to_dict())
    kept = generated.map(
        _non_empty, batched=True, input_columns=[RESPONSES], desc="Dropping empty samples"
    ).filter(lambda r: [bool(x) for x in r], batched=True, input_columns=[RESPONSES])
    return kept.select_columns([PROMPT, RESPONSES]), report, len(generated) - len(kept)


def _non_empty(responses: list[list[str]]) -> dict[str, list[list[str]]]:
    return {RESPONSES: [[r for r in row if r] for row in responses]}


def _plain(value: Any) -> Any:
    """Numpy containers (Ray, numpy-formatted batches) as Python lists and dicts."""
    from .arrays import to_python

    return to_python(value)


def _vllm_context(llm: Any) -> int | None:
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except AttributeError:
        return None


def vllm_modules() -> tuple[Any, Any]:
    """``(vllm.LLM, vllm.SamplingParams)``, or a ConfigError saying how to install vLLM."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise ConfigError(
            f"backend='vllm' needs vLLM, which is not installed ({err}); install it with `{VLLM_INSTALL}` "
            "(Linux with a CUDA GPU), or use backend='transformers'"
        ) from None
    return LLM, SamplingParams


__all__ = [
    "GenerateResponses",
    "GenerationReport",
    "Sample",
    "end_of_turn_ids",
    "generate_batch",
    "generation_report",
    "row_seed",
    "sample_tokens",
]
