"""The MusicGen-style token LM: K codebooks in, K distributions over the next step out.

Each codebook has its own embedding (cardinality + 1 rows: the last is the pattern's special
token) and the K embeddings of a step are summed; a causal transformer runs over the steps;
each codebook has its own output head. Conditions (`{name: Conditioning}` from a
`ConditionerSet` of the model's width) are fused as AudioCraft's condition fuser names it:

    cross    cross-attention to the condition's tokens in every layer (padded tokens masked)
    prepend  the condition's tokens placed before the sequence (padded ones never attended)
    sum      the condition's masked mean over its tokens added to every step's input

Module and parameter names are AudioCraft's `LMModel` ones (emb, transformer.layers[i]...,
out_norm, linears), so an AudioCraft `state_dict.bin` loads key for key; only its
`condition_provider.conditioners.<name>.output_proj` lives elsewhere here, as the text
conditioner's `proj` (`audiotools.conditioning.text`). Where behaviour differs from AudioCraft:
cross-attention masks padded condition tokens (AudioCraft attends them as zero vectors;
`cross_mask=False` does as it does, for its checkpoints), prepended tokens are masked likewise,
and `predict` covers every code (AudioCraft's training truncates the sequence to T + 1 steps
and leaves the last frames of delayed codebooks unpredicted).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ...conditioning.base import Conditioning
from .patterns import Pattern
from .transformer import (
    Context,
    KVCache,
    MultiheadAttention,
    Transformer,
    init_weights,
    truncated_normal,
)

Conditions = Mapping[str, Conditioning]
FUSE_METHODS = ("cross", "prepend", "sum")


@dataclass
class Fused:
    """Conditions as the transformer takes them (None: no condition fused that way)."""

    summed: torch.Tensor | None = None        # (B, 1, dim), added to every step
    prefix: torch.Tensor | None = None        # (B, P, dim), before the sequence
    prefix_mask: torch.Tensor | None = None   # (B, P) bool
    cross: torch.Tensor | None = None         # (B, Tc, dim)
    cross_mask: torch.Tensor | None = None    # (B, 1, 1, Tc) bool; None: attend every token

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix is None else self.prefix.shape[1]


@dataclass
class DecodingState:
    """One generation's cache and fixed inputs; `written` positions of the cache hold keys
    and values."""

    cache: KVCache
    index: torch.Tensor                 # arange(cache length)
    written: int
    key_valid: torch.Tensor | None      # (B, length) bool, False on padded prefix tokens
    tables: Context                     # positional tables of every cache position
    fused: Fused
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None
    prefix_pending: bool


class LMModel(nn.Module):
    """Logits (B, K, S, cardinality) of the next step from an interleaved sequence (B, K, S).

    `fuse` maps each condition name to cross, prepend or sum; `pattern` is the interleaving
    the model was trained with (what generation and `predict` use)."""

    def __init__(self, num_codebooks: int, cardinality: int, dim: int, num_heads: int,
                 num_layers: int, ffn_dim: int, *, pattern: Pattern,
                 fuse: Mapping[str, str] | None = None, cross_mask: bool = True,
                 bias_attn: bool = False, bias_ff: bool = False, bias_proj: bool = False,
                 dropout: float = 0.0, positional_embedding: str = "sin",
                 max_period: float = 10000.0, positional_scale: float = 1.0,
                 heads_init: str = "random"):
        super().__init__()
        self.fuse = dict(fuse or {})
        wrong = {name: method for name, method in self.fuse.items()
                 if method not in FUSE_METHODS}
        if wrong:
            raise ValueError(f"fuse={wrong}: each condition is fused by one of "
                             f"{', '.join(FUSE_METHODS)}")
        if pattern.num_codebooks != num_codebooks:
            raise ValueError(f"the {pattern.name} pattern interleaves {pattern.num_codebooks} "
                             f"codebooks, the model has num_codebooks={num_codebooks}")
        self.num_codebooks = num_codebooks
        self.cardinality = cardinality
        self.dim = dim
        self.pattern = pattern
        self.cross_mask = cross_mask
        self.emb = nn.ModuleList(nn.Embedding(cardinality + 1, dim)
                                 for _ in range(num_codebooks))
        self.transformer = Transformer(
            dim, num_heads, num_layers, ffn_dim, cross_attention="cross" in self.fuse.values(),
            bias_attn=bias_attn, bias_ff=bias_ff, dropout=dropout,
            positional_embedding=positional_embedding, max_period=max_period,
            positional_scale=positional_scale)
        self.out_norm = nn.LayerNorm(dim, eps=1e-5)
        self.linears = nn.ModuleList(nn.Linear(dim, cardinality, bias=bias_proj)
                                     for _ in range(num_codebooks))
        # While `decoding_layout` holds: every head's weight (dim, K x cardinality) as one
        # matrix, and their biases.
        self._fused_heads: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._init_weights(heads_init)

    def _init_weights(self, heads_init: str) -> None:
        """AudioCraft's MusicGen init: embeddings and heads truncated normal of std
        1 / sqrt(dim), zero biases; the layers depth-scaled (transformer.init_weights).

        `heads_init="embeddings"` starts each head as a copy of its codebook's embedding.
        The residual stream carries the sum of the input's embeddings to the output, so a
        head that is that embedding scores the code it was fed above the others (a few
        times chance in an untrained model, the layers' outputs being noise around it). In
        the delay and parallel patterns that is each codebook's code one frame before the
        one predicted: training starts from a lean towards "the code holds", which random
        heads have to learn for every code apart (docs/solvers/musicgen.md measures both;
        in the unroll pattern the fed code is another codebook's, and the start is no
        help)."""
        if heads_init not in ("random", "embeddings"):
            raise ValueError(f"heads_init={heads_init!r}: random or embeddings")
        for embedding in self.emb:
            truncated_normal(embedding.weight, self.dim)
        for embedding, linear in zip(self.emb, self.linears, strict=True):
            if heads_init == "embeddings":
                with torch.no_grad():
                    linear.weight.copy_(embedding.weight[:self.cardinality])
            else:
                truncated_normal(linear.weight, self.dim)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        init_weights(self.transformer)

    @property
    def special_token(self) -> int:
        """The token of sequence positions that hold no code."""
        return self.cardinality

    def embed(self, sequence: torch.Tensor) -> torch.Tensor:
        """(B, K, S) tokens in [0, cardinality] -> (B, S, dim), the K embeddings summed."""
        if sequence.dim() != 3 or sequence.shape[1] != self.num_codebooks:
            raise ValueError(f"sequence of shape {tuple(sequence.shape)}: expected (B, "
                             f"{self.num_codebooks}, S)")
        out = self.emb[0](sequence[:, 0])
        for codebook in range(1, self.num_codebooks):
            out = out + self.emb[codebook](sequence[:, codebook])
        return out

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, S, cardinality) of normalised outputs x (B, S, dim)."""
        if self._fused_heads is None or torch.is_grad_enabled():  # the fused copy has no grad
            return torch.stack([linear(x) for linear in self.linears], dim=1)
        weight, bias = self._fused_heads
        logits = x @ weight.to(x.dtype) if bias is None else torch.addmm(
            bias.to(x.dtype), x.flatten(0, -2), weight.to(x.dtype)).view(*x.shape[:-1], -1)
        return logits.unflatten(-1, (self.num_codebooks, self.cardinality)).transpose(1, 2)

    @contextmanager
    def decoding_layout(self) -> Iterator[None]:
        """Weights laid out for decoding on a CPU while it holds, as they were afterwards.

        A decoding step multiplies each weight by a few vectors: it streams every weight from
        memory, which on a CPU is the bulk of a batch-1 step. Stored transposed (same shape
        and values, column-major strides), a weight with at least as many outputs as inputs
        streams about 1.4x faster through the matrix-vector kernels; one with more inputs
        than outputs (the feed-forward's second) streams faster as stored, so it stays (on a
        Zen 4, one thread: 16.4 against 10.7 GB/s for a 2048 -> 512 matrix, and a pass
        through all of a 512-wide, 8-layer model's 9.0 against 10.2 ms). The K heads become
        views of one matrix multiplied at once (without gradients; with them each head runs
        alone). Nothing changes on other devices."""
        if self.out_norm.weight.device.type != "cpu" or self._fused_heads is not None:
            yield
            return
        weights = (module.weight if isinstance(module, nn.Linear) else module.in_proj_weight
                   for module in self.transformer.modules()
                   if isinstance(module, nn.Linear | MultiheadAttention))
        # Transposed only where that streams faster: at least as many outputs as inputs.
        matrices = [weight for weight in weights if weight.shape[0] >= weight.shape[1]]
        with torch.no_grad():
            for weight in matrices:
                weight.data = weight.data.t().contiguous().t()
            heads = torch.cat([linear.weight.data for linear in self.linears]).t().contiguous()
            for linear, view in zip(self.linears, heads.split(self.cardinality, dim=1),
                                    strict=True):
                linear.weight.data = view.t()
            bias = (None if self.linears[0].bias is None
                    else torch.cat([linear.bias.data for linear in self.linears]))
        self._fused_heads = (heads, bias)
        try:
            yield
        finally:
            self._fused_heads = None
            for weight in [*matrices, *(linear.weight for linear in self.linears)]:
                weight.data = weight.data.contiguous()

    def fuse_conditions(self, conditions: Conditions | None, batch: int) -> Fused:
        """The fused inputs of `conditions`; it must hold exactly the conditions `fuse`
        names (the unconditional case gives each its null condition)."""
        conditions = dict(conditions or {})
        unknown = sorted(set(conditions) - set(self.fuse))
        missing = sorted(set(self.fuse) - set(conditions))
        if unknown or missing:
            raise ValueError(f"conditions name {sorted(conditions)}, the model fuses "
                             f"{sorted(self.fuse)}" + (f"; unknown: {unknown}" if unknown else "")
                             + (f"; missing (give its null condition): {missing}"
                                if missing else ""))
        grouped: dict[str, list[Conditioning]] = {method: [] for method in FUSE_METHODS}
        for name, method in self.fuse.items():
            condition = conditions[name]
            shape = tuple(condition.embeddings.shape)
            if shape[0] != batch or shape[2] != self.dim:
                raise ValueError(f"condition {name!r} of shape {shape}: expected ({batch}, "
                                 f"tokens, {self.dim})")
            grouped[method].append(condition)
        fused = Fused()
        if grouped["sum"]:
            fused.summed = sum(_masked_mean(condition) for condition in grouped["sum"])
        if grouped["prepend"]:
            fused.prefix = torch.cat([c.embeddings for c in grouped["prepend"]], dim=1)
            fused.prefix_mask = torch.cat([c.mask for c in grouped["prepend"]], dim=1)
        if grouped["cross"]:
            fused.cross = torch.cat([c.embeddings for c in grouped["cross"]], dim=1)
            if self.cross_mask:
                mask = torch.cat([c.mask for c in grouped["cross"]], dim=1)
                # An item without any token (the null condition) attends to its zero tokens,
                # so its cross-attention adds nothing (without biases) instead of NaN.
                mask = mask | ~mask.any(dim=1, keepdim=True)
                fused.cross_mask = mask[:, None, None, :]
        return fused

    def _inputs(self, sequence: torch.Tensor, fused: Fused, with_prefix: bool) -> torch.Tensor:
        x = self.embed(sequence)
        if fused.summed is not None:
            x = x + fused.summed.to(x.dtype)
        if with_prefix and fused.prefix is not None:
            x = torch.cat([fused.prefix.to(x.dtype), x], dim=1)
        return x

    def _outputs(self, sequence: torch.Tensor, conditions: Conditions | None) -> torch.Tensor:
        """The normalised transformer outputs (B, S, dim) of every step of the sequence."""
        fused = self.fuse_conditions(conditions, sequence.shape[0])
        x = self._inputs(sequence, fused, with_prefix=True)
        length = x.shape[1]
        positions = torch.arange(length, device=x.device)
        context = self.transformer.positional(positions)
        if fused.prefix_mask is not None:
            context.self_mask = _self_mask(positions, positions, _key_valid(
                fused.prefix_mask, length))
        context.cross_source = fused.cross
        context.cross_mask = fused.cross_mask
        out = self.transformer(x, context)
        return self.out_norm(out[:, fused.prefix_length:])

    def forward(self, sequence: torch.Tensor, conditions: Conditions | None = None,
                ) -> torch.Tensor:
        """Logits (B, K, S, cardinality): position s predicts step s + 1 of the sequence."""
        return self._heads(self._outputs(sequence, conditions))

    def predict(self, codes: torch.Tensor, conditions: Conditions | None = None,
                ) -> torch.Tensor:
        """Logits (B, K, T, cardinality) of every code (B, K, T) from the codes before it in
        the pattern: what the cross-entropy of training compares with `codes`.

        The output at step s predicts step s + 1, so code (q, t) is predicted at step
        positions[q, t] - 1: each head runs on its own codebook's steps only, which spares
        computing and then discarding the logits of every other step (as `revert_logits`
        would after `forward`)."""
        sequence, _ = self.pattern.build(codes, self.special_token)
        outputs = self._outputs(sequence[..., :-1], conditions)
        source = self.pattern.positions(codes.shape[-1], codes.device) - 1
        return torch.stack([linear(outputs[:, steps])
                            for linear, steps in zip(self.linears, source, strict=True)], dim=1)

    def start_decoding(self, batch_size: int, max_steps: int,
                       conditions: Conditions | None = None) -> DecodingState:
        """A cache for `max_steps` sequence steps (and the prepended conditions), with the
        cross-attention keys and values of `conditions` computed once."""
        parameter = self.out_norm.weight
        device = parameter.device
        dtype = (torch.get_autocast_dtype(device.type)
                 if torch.is_autocast_enabled(device.type) else parameter.dtype)
        fused = self.fuse_conditions(conditions, batch_size)
        length = fused.prefix_length + max_steps
        transformer = self.transformer
        cache = KVCache.allocate(len(transformer.layers), batch_size, transformer.num_heads,
                                 length, transformer.head_dim, device, dtype)
        index = torch.arange(length, device=device)
        key_valid = (None if fused.prefix_mask is None
                     else _key_valid(fused.prefix_mask, length))
        cross_kv = None if fused.cross is None else transformer.cross_key_values(fused.cross)
        return DecodingState(cache, index, 0, key_valid, transformer.positional(index), fused,
                             cross_kv, prefix_pending=fused.prefix is not None)

    def decode(self, tokens: torch.Tensor, state: DecodingState) -> torch.Tensor:
        """Logits (B, K, n, cardinality) of the next n steps (B, K, n) given the cached ones;
        the first call also runs the prepended conditions."""
        x = self._inputs(tokens, state.fused, with_prefix=state.prefix_pending)
        prefix = state.fused.prefix_length if state.prefix_pending else 0
        count = x.shape[1]
        if state.written + count > state.cache.length:
            raise ValueError(f"decoding {count} more positions overflows the cache of "
                             f"{state.cache.length} ({state.written} written); start_decoding "
                             "with a larger max_steps")
        start, end = state.written, state.written + count
        tables = state.tables
        context = Context(
            position_embedding=(None if tables.position_embedding is None
                                else tables.position_embedding[start:end]),
            rotary=(None if tables.rotary is None
                    else (tables.rotary[0][start:end], tables.rotary[1][start:end])),
            cache=state.cache, start=start, cross_kv=state.cross_kv,
            cross_mask=state.fused.cross_mask)
        if state.key_valid is not None or (count > 1 and start > 0):
            context.self_mask = _self_mask(state.index[start:end], state.index[:end],
                                           None if state.key_valid is None
                                           else state.key_valid[:, :end])
        else:  # one step sees every key before it; the first call's steps, causally
            context.causal = count > 1
        out = self.transformer(x, context)
        state.written = end
        state.prefix_pending = False
        return self._heads(self.out_norm(out[:, prefix:]))


def _masked_mean(condition: Conditioning) -> torch.Tensor:
    """(B, 1, dim): the mean of a condition's real tokens (zero for the null condition)."""
    weights = condition.mask.unsqueeze(-1).to(condition.embeddings.dtype)
    total = (condition.embeddings * weights).sum(dim=1, keepdim=True)
    return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


def _key_valid(prefix_mask: torch.Tensor, length: int) -> torch.Tensor:
    """(B, length) bool: the prefix's mask, then True for every sequence position."""
    rest = prefix_mask.new_ones(prefix_mask.shape[0], length - prefix_mask.shape[1])
    return torch.cat([prefix_mask, rest], dim=1)


def _self_mask(queries: torch.Tensor, keys: torch.Tensor,
               key_valid: torch.Tensor | None) -> torch.Tensor:
    """Bool attention mask, (n, L) or (B, 1, n, L): a query attends to the keys at or before
    it that are valid, and always to itself (a padded prefix token has nothing else)."""
    causal = keys.unsqueeze(0) <= queries.unsqueeze(1)
    if key_valid is None:
        return causal
    itself = keys.unsqueeze(0) == queries.unsqueeze(1)
    return (causal & (key_valid.unsqueeze(1) | itself)).unsqueeze(1)
