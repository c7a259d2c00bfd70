"""Token sampling for the LM: temperature, top-k, top-p, classifier-free guidance, and the
generation loop over an interleaving pattern with the model's KV cache.

`generate` fills a sequence built from the prompt's codes (unknown codes marked), steps
through the pattern from the first step that holds an unknown code, and writes a sampled token
only where the code is unknown: special-token positions stay special and prompt codes stay as
given, so continuing a prompt and generating from nothing are the same loop. Guidance runs the
conditional and unconditional branches as one doubled batch (one forward per step):
logits = uncond + cfg_scale (cond - uncond). A seeded `torch.Generator` (on the model's
device) gives the same tokens every time.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..conditioning.base import Conditioning
from ..models.lm.lm import Conditions, LMModel
from ..models.lm.patterns import Pattern

_UNKNOWN = -1


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """ValueError naming the argument out of range."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0: greedy)")
    if top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 0 (0: no top-k)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (1: no nucleus)")


def sample_tokens(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Tokens (...) int64 from logits (..., card): greedy at temperature 0, else drawn from
    softmax(logits / temperature) restricted to the `top_k` most likely tokens (0: all),
    then to the smallest set of them holding `top_p` of the probability."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    flat = logits.reshape(-1, logits.shape[-1]).float()
    # The most likely at 0 first: a temperature of 1e-40 divides 0 and negative numbers
    # (-inf at worst, a probability of 0) where the raw logits overflowed to inf - inf = NaN.
    flat = (flat - flat.amax(dim=-1, keepdim=True)) / temperature
    indices = None
    if 0 < top_k < flat.shape[-1]:
        flat, indices = flat.topk(top_k, dim=-1)
    elif top_p < 1:
        flat, indices = flat.sort(dim=-1, descending=True)
    probs = flat.softmax(dim=-1)
    if top_p < 1:  # candidates are sorted, most likely first
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before > top_p, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    if indices is not None:
        choice = indices.gather(-1, choice)
    return choice.view(logits.shape[:-1])


def null_conditions(conditions: Conditions) -> dict[str, Conditioning]:
    """Every condition's null (zero embeddings, mask False): the default unconditional branch
    (what `ConditionerSet.null` gives)."""
    return {name: Conditioning(torch.zeros_like(condition.embeddings),
                               torch.zeros_like(condition.mask))
            for name, condition in conditions.items()}


def doubled(conditions: Conditions, unconditional: Conditions) -> dict[str, Conditioning]:
    """Conditional then unconditional items in one batch of conditions."""
    if set(conditions) != set(unconditional):
        raise ValueError(f"unconditional names {sorted(unconditional)}, conditions "
                         f"{sorted(conditions)}: give the same names")
    out = {}
    for name, condition in conditions.items():
        other = unconditional[name]
        if other.embeddings.shape != condition.embeddings.shape:
            raise ValueError(f"unconditional[{name!r}] has shape "
                             f"{tuple(other.embeddings.shape)}, conditions[{name!r}] "
                             f"{tuple(condition.embeddings.shape)}")
        out[name] = Conditioning(torch.cat([condition.embeddings, other.embeddings]),
                                 torch.cat([condition.mask, other.mask]))
    return out


def guide(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """Logits of a doubled batch (conditional items, then unconditional) -> guided logits."""
    conditional, unconditional = logits.chunk(2)
    return unconditional + (conditional - unconditional) * cfg_scale


def _batch_size(prompt: torch.Tensor | None, conditions: Conditions | None,
                batch_size: int | None) -> int:
    sizes = {}
    if prompt is not None:
        sizes["prompt"] = prompt.shape[0]
    for name, condition in (conditions or {}).items():
        sizes[f"conditions[{name!r}]"] = condition.embeddings.shape[0]
    if batch_size is not None:
        sizes["batch_size"] = batch_size
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch sizes disagree: {', '.join(f'{k}={v}' for k, v in sizes.items())}")
    size = next(iter(sizes.values()), 1)
    if size < 1:
        raise ValueError(f"batch size {size} must be >= 1")
    return size


def _check_prompt(prompt: torch.Tensor, lm: LMModel, num_frames: int) -> None:
    if prompt.dim() != 3 or prompt.shape[1] != lm.num_codebooks:
        raise ValueError(f"prompt of shape {tuple(prompt.shape)}: expected (B, "
                         f"{lm.num_codebooks}, frames)")
    if prompt.shape[-1] > num_frames:
        raise ValueError(f"prompt has {prompt.shape[-1]} frames, more than "
                         f"num_frames={num_frames}")
    if prompt.dtype.is_floating_point or prompt.dtype == torch.bool:
        raise ValueError(f"prompt holds {prompt.dtype} values; expected integer codes")
    if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= lm.cardinality):
        raise ValueError(f"prompt holds token values in [{int(prompt.min())}, "
                         f"{int(prompt.max())}]; codes must lie in [0, {lm.cardinality})")


@torch.no_grad()
def generate(lm: LMModel, pattern: Pattern | None, prompt: torch.Tensor | None,
             num_frames: int, conditions: Conditions | None = None, *,
             unconditional: Conditions | None = None, cfg_scale: float = 1.0,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             generator: torch.Generator | None = None, batch_size: int | None = None,
             callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Codes (B, K, num_frames): the prompt's frames (B, K, T0) as given, then sampled ones.

    pattern: the model's own when None. conditions: what the model fuses (its null conditions
    for an unconditional model with conditioners). cfg_scale != 1 guides with `unconditional`
    (default: the null of every condition). callback(step, total) follows each sampled step.
    The model runs in eval mode and is put back in its mode afterwards."""
    pattern = lm.pattern if pattern is None else pattern
    check_sampling(temperature, top_k, top_p)
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames} must be >= 1")
    if pattern.num_codebooks != lm.num_codebooks:
        raise ValueError(f"pattern interleaves {pattern.num_codebooks} codebooks, the model "
                         f"has {lm.num_codebooks}")
    if prompt is not None:
        _check_prompt(prompt, lm, num_frames)
    guided = cfg_scale != 1.0
    if guided and not conditions:
        raise ValueError(f"cfg_scale={cfg_scale} guides towards conditions; none were given")
    batch = _batch_size(prompt, conditions, batch_size)
    device = lm.out_norm.weight.device
    codes = torch.full((batch, lm.num_codebooks, num_frames), _UNKNOWN, dtype=torch.long,
                       device=device)
    prompt_frames = 0 if prompt is None else prompt.shape[-1]
    if prompt_frames:
        codes[..., :prompt_frames] = prompt.to(device)
    if prompt_frames == num_frames:
        return codes
    sequence, _ = pattern.build(codes, lm.special_token)
    steps = sequence.shape[-1]
    start = pattern.first_step(prompt_frames, num_frames)
    if guided:
        conditions = doubled(conditions, unconditional if unconditional is not None
                             else null_conditions(conditions))
    was_training = lm.training
    lm.eval()
    try:
        with lm.decoding_layout():
            state = lm.start_decoding(batch * (2 if guided else 1), steps - 1, conditions)
            inputs = sequence[..., :start]
            for step in range(start, steps):
                logits = lm.decode(torch.cat([inputs, inputs]) if guided else inputs, state)
                logits = logits[:, :, -1]
                if guided:
                    logits = guide(logits, cfg_scale)
                tokens = sample_tokens(logits, temperature=temperature, top_k=top_k,
                                       top_p=top_p, generator=generator)
                current = sequence[:, :, step]
                current.copy_(torch.where(current == _UNKNOWN, tokens, current))
                inputs = sequence[:, :, step:step + 1]
                if callback is not None:
                    callback(step - start + 1, steps - start)
    finally:
        lm.train(was_training)
    return pattern.revert(sequence)
