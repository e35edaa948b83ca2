"""Which training backend runs here: PEFT, Unsloth (CUDA only) or Together's managed fine-tuning.

Public entry point: `resolve_backend(config)`.
"""

from __future__ import annotations

from foundry.config import FoundryConfig
from foundry.logs import get_logger
from foundry.training.artifacts import Backend, TrainingError
from foundry.training.together import check_together_setup

logger = get_logger(__name__)


def resolve_backend(config: FoundryConfig) -> Backend:
    """The training backend to use on this machine for `training.backend`.

    `auto` picks Unsloth when CUDA is present, the base is a real model and `unsloth` imports;
    otherwise PEFT, logging why. `together` is managed fine-tuning (`foundry.training.together`).

    Raises:
        TrainingError: `unsloth` without CUDA or with the `tiny` base; `together` with the `tiny`
            base or without TOGETHER_API_KEY.
    """
    choice = config.training.backend
    if choice == "together":
        check_together_setup(config)
        return "together"
    if choice == "peft":
        return "peft"
    import torch

    has_cuda = torch.cuda.is_available()
    if choice == "unsloth":
        if not has_cuda:
            raise TrainingError(
                "`training.backend: unsloth` needs a CUDA GPU and none is available here; set "
                "`training.backend` to `peft`, or to `auto` (Unsloth on CUDA, else PEFT)"
            )
        if config.base_model.is_tiny:
            raise TrainingError(
                "`training.backend: unsloth` needs a real base model; the `tiny` base trains "
                "with `peft` (or `auto`). Set `base_model.name` to a hub id to use Unsloth"
            )
        return "unsloth"
    if not has_cuda:
        logger.info("training backend auto: PEFT (no CUDA GPU; Unsloth needs one)")
        return "peft"
    if config.base_model.is_tiny:
        logger.info("training backend auto: PEFT (the tiny base; Unsloth is for real models)")
        return "peft"
    try:
        import unsloth  # noqa: F401
    except Exception as exc:  # unsloth raises more than ImportError on unsupported setups
        logger.info("training backend auto: PEFT (unsloth does not import: %s)", exc)
        return "peft"
    return "unsloth"
