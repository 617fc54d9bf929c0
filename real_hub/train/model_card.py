"""A DPO-trained model's card and the push of its folder to the Hub (used by :func:`real_hub.train_dpo`).

The card's metadata lists ``base_model`` and ``datasets`` only when they are Hub repo ids (a local path
stays in the text); its body records the training arguments, the final metrics and the library versions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, hub_errors
from ..reporting import format_number

logger = logging.getLogger(__name__)

MODEL_TAGS = ["dpo", "trl", "real-hub"]


def _hub_id(name: str | None) -> str | None:
    """``name`` when it reads as a Hub repo id (and is no local path), else ``None``."""
    if not name or Path(name).expanduser().exists():
        return None
    parts = name.split("/")
    return name if len(parts) == 2 and all(parts) and not name.startswith((".", "~")) else None


def _cell(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else format_number(value, none="None")


def build_model_card(
    *,
    base_model: str,
    dataset: str,
    training_args: Mapping[str, Any],
    metrics: Mapping[str, float],
    dataset_config: str | None = None,
    split: str | None = None,
    lora: bool = False,
    repo_id: str | None = None,
) -> Any:
    """The model card: ``base_model``/``datasets`` metadata (Hub ids only), DPO tags, arguments, metrics."""
    from huggingface_hub import ModelCard, ModelCardData

    from ..reporting import library_versions

    data = ModelCardData(
        base_model=_hub_id(base_model),
        datasets=[d] if (d := _hub_id(dataset)) else None,
        library_name="peft" if lora else "transformers",
        tags=[*MODEL_TAGS, *(["lora"] if lora else [])],
        pipeline_tag="text-generation",
    )
    where = ", ".join(f"{k} `{v}`" for k, v in (("config", dataset_config), ("split", split)) if v)
    load = "PeftModel / AutoPeftModelForCausalLM" if lora else "AutoModelForCausalLM"
    return ModelCard.from_template(
        data,
        template_path=str(Path(__file__).parent / "templates" / "model_card.md"),
        title=repo_id.split("/")[-1] if repo_id else "DPO model",
        name=f"`{repo_id}`" if repo_id else "This model",
        base_model=base_model,
        dataset=dataset,
        where=where,
        lora=lora,
        load=f"{load}.from_pretrained({(repo_id or 'path')!r})",
        training_args=[(k, _cell(v)) for k, v in sorted(training_args.items())],
        metrics=[(k, _cell(v)) for k, v in sorted(metrics.items())],
        versions=sorted(library_versions().items()),
    )


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create (if needed) the model repo ``repo_id`` and upload ``folder`` to it; returns the repo id.

    Raises:
        HubError: The Hub (or ``HF_ENDPOINT``) refused or could not be reached.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_token, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ConfigError(f"repo_id {repo_id!r} is not a Hub repo id ('namespace/name'): {err}") from None
    api = HfApi(token=token)
    with hub_errors(f"cannot push the model to {repo_id!r}", repo_id=repo_id, secret=token or get_token()):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message="DPO model trained with real-hub",
            ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**"],
        )
    logger.info("Pushed %s to %s", folder, repo_id)
    return repo_id
