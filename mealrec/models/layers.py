"""Building blocks shared by the sequential models (RecBole's Transformer, re-written).

Post-LayerNorm Transformer layers as in RecBole's ``recbole/model/layers.py``
(``MultiHeadAttention``, ``FeedForward``, ``TransformerLayer``): residual + dropout +
LayerNorm after attention and after the feed-forward block, GELU, eps 1e-12.
Attention uses ``torch.nn.functional.scaled_dot_product_attention`` with RecBole's
additive mask (-10000 on masked keys), which computes the same function. Dropout masks come from ``torch.rand``
(:class:`Dropout`) because the CPU Bernoulli kernel dominated training time.

Where only one position's state is read (the user state at the last real position), the last
layer computes only that row (``rows``): its query projection, attention row, output projection,
LayerNorms and feed-forward block. Every dropout mask is still drawn at the full ``(B, L, ...)``
shape and its rows picked, so the random streams, and hence the function, are those of the full
computation; only the float summation order may differ.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-12


class Dropout(nn.Module):
    """Inverted dropout drawn with ``torch.rand`` (about 3x faster on CPU than
    ``nn.Dropout``'s Bernoulli kernel); the same distribution, another random stream."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor, full: torch.Size | None = None, rows: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``x`` itself, or (with ``full`` and ``rows``) the rows ``x (B, d)`` of a ``full (B, L, d)``
        input at positions ``rows (B,)``: the mask is drawn at the full shape and its rows kept."""
        if not self.training or self.p == 0.0:
            return x
        # the uniform draws become the scaled mask in place: x * (keep / (1 - p)) equals x * keep / (1 - p) bit
        # for bit (keep is 0 or 1), in one pass instead of three
        if full is None:
            mask = torch.rand_like(x).ge_(self.p)
        else:
            mask = pick(torch.rand(full, dtype=x.dtype, device=x.device).ge_(self.p), rows)
        return x * mask.mul_(1.0 / (1.0 - self.p))


def pick(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x (B, L, ...)`` -> ``x[b, rows[b]]`` ``(B, ...)``."""
    return x[torch.arange(x.shape[0], device=x.device), rows]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, mask: torch.Tensor | None,
           dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention over ``n_heads`` heads of projected queries ``(B, L, d)`` and keys and
    values ``(B, Lk, d)``; ``mask`` additive, broadcastable to ``(B, h, L, Lk)``. Returns ``(B, L, d)``."""
    B, L, d = q.shape
    Lk = k.shape[1]
    q = q.view(B, L, n_heads, d // n_heads).transpose(1, 2)  # (B, h, L, dh)
    k = k.view(B, Lk, n_heads, d // n_heads).transpose(1, 2)
    v = v.view(B, Lk, n_heads, d // n_heads).transpose(1, 2)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, h, L, dh)
    return ctx.transpose(1, 2).reshape(B, L, d)


def attend_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, mask: torch.Tensor | None,
                rows: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """:func:`attend` for one query per sequence: ``q (B, d)`` at positions ``rows (B,)`` of a
    length-``Lk`` self-attention; returns ``(B, d)``. With dropout, the mask is drawn as
    ``scaled_dot_product_attention`` draws it on CPU (``bernoulli_(1 - p)`` over ``(B, h, Lk, Lk)``)
    and the rows' part kept."""
    B, d = q.shape
    Lk, dh = k.shape[1], d // n_heads
    q = q.view(B, n_heads, 1, dh)
    k = k.view(B, Lk, n_heads, dh).transpose(1, 2)  # (B, h, Lk, dh)
    v = v.view(B, Lk, n_heads, dh).transpose(1, 2)
    m = None if mask is None else pick(mask.expand(B, mask.shape[1], Lk, Lk).transpose(1, 2), rows)[:, :, None]
    if dropout_p == 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m).reshape(B, d)
    if q.device.type != "cpu":
        raise NotImplementedError("attention dropout on one query row is only written for the CPU")
    scale = dh ** -0.5
    attn = (q * scale) @ k.transpose(-2, -1)  # (B, h, 1, Lk)
    if m is not None:
        attn = attn + m
    attn = attn.softmax(dim=-1)
    noise = torch.empty(B, n_heads, Lk, Lk, dtype=q.dtype).bernoulli_(1.0 - dropout_p).div_(1.0 - dropout_p)
    attn = attn * pick(noise.transpose(1, 2), rows)[:, :, None]  # (B, h, 1, Lk)
    return (attn @ v).reshape(B, d)


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden: int, n_heads: int, attn_dropout: float, hidden_dropout: float):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.attn_dropout = attn_dropout
        self.out_dropout = Dropout(hidden_dropout)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, context: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        # x (B, L, d); mask additive, broadcastable to (B, h, L, Lk); context (B, Lk, d) or None (self-attention);
        # rows (B,): compute only the state at these positions of a self-attention, (B, d)
        kv = x if context is None else context
        p = self.attn_dropout if self.training else 0.0
        if rows is None:
            ctx = attend(self.query(x), self.key(kv), self.value(kv), self.n_heads, mask, p)  # (B, L, d)
            return self.norm(self.out_dropout(self.dense(ctx)) + x)
        x_r = pick(x, rows)  # (B, d)
        ctx = attend_rows(self.query(x_r), self.key(x), self.value(x), self.n_heads, mask, rows, p)
        return self.norm(self.out_dropout(self.dense(ctx), x.shape, rows) + x_r)


class FeedForward(nn.Module):
    def __init__(self, hidden: int, inner: int, hidden_dropout: float):
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.dropout = Dropout(hidden_dropout)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, full: torch.Size | None = None, rows: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``x (B, L, d)``, or its rows ``(B, d)`` at ``rows`` of a ``full`` input (see :class:`Dropout`)."""
        return self.norm(self.dropout(self.dense_2(F.gelu(self.dense_1(x))), full, rows) + x)


class TransformerLayer(nn.Module):
    def __init__(self, hidden: int, n_heads: int, inner: int, hidden_dropout: float, attn_dropout: float):
        super().__init__()
        self.attention = MultiHeadAttention(hidden, n_heads, attn_dropout, hidden_dropout)
        self.ffn = FeedForward(hidden, inner, hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, d)``, or with ``rows (B,)`` only the states at those positions ``(B, d)``."""
        if rows is None:
            return self.ffn(self.attention(x, mask))
        return self.ffn(self.attention(x, mask, rows=rows), x.shape, rows)


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, hidden: int, n_heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, n_heads, inner, hidden_dropout, attn_dropout) for _ in range(n_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """All states ``(B, L, d)``, or with ``rows (B,)`` only the last layer's states at those
        positions ``(B, d)`` (the earlier layers still compute every position: the last one attends to them)."""
        if rows is not None and not self.layers:
            return pick(x, rows)
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, rows if i == len(self.layers) - 1 else None)
        return x


class SequenceEncoder(nn.Module):
    """SASRec's user encoder over item representations: ``+ learned position -> LayerNorm -> dropout ->
    n_layers causal post-LN Transformer layers -> the state at the last real position``."""

    def __init__(self, max_len: int, hidden: int, n_layers: int, n_heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float):
        super().__init__()
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.encoder = TransformerEncoder(n_layers, hidden, n_heads, inner, hidden_dropout, attn_dropout)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(hidden_dropout)

    @classmethod
    def of(cls, c, max_len: int) -> "SequenceEncoder":
        """From a configuration with SASRec's encoder fields (``hidden_size``, ``n_layers``, ...)."""
        return cls(max_len, c.hidden_size, c.n_layers, c.n_heads, c.inner_size, c.hidden_dropout, c.attn_dropout)

    def inputs(self, emb: torch.Tensor) -> torch.Tensor:
        """``emb (B, L, d)`` item representations -> positioned, normalised inputs ``(B, L, d)``."""
        pos = torch.arange(emb.shape[1], device=emb.device)
        return self.dropout(self.norm(emb + self.position_embedding(pos)[None]))

    def states(self, x: torch.Tensor, item_seq: torch.Tensor) -> torch.Tensor:
        """The Transformer over inputs ``x (B, L, d)`` (causal, padding of ``item_seq`` masked) ``(B, L, d)``."""
        return self.encoder(x, causal_padding_mask(item_seq, x.dtype))

    def last_state(self, x: torch.Tensor, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The state at position ``item_seq_len - 1`` ``(B, d)`` of the Transformer over inputs ``x``;
        the same function as ``gather_last(states(x, item_seq), item_seq_len)``, computing the last layer
        for that position only."""
        return self.encoder(x, causal_padding_mask(item_seq, x.dtype), item_seq_len - 1)

    def forward(self, emb: torch.Tensor, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        return self.last_state(self.inputs(emb), item_seq, item_seq_len)  # (B, d)


def causal_padding_mask(item_seq: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RecBole's unidirectional mask: query i sees keys j <= i that are not padding.
    ``item_seq (B, L)`` -> additive mask ``(B, 1, L, L)`` with 0 (allowed) or -10000."""
    L = item_seq.shape[1]
    keys = (item_seq != 0)[:, None, None, :]  # (B, 1, 1, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=item_seq.device).tril()[None, None]
    allowed = keys & causal
    return torch.zeros(allowed.shape, dtype=dtype, device=item_seq.device).masked_fill(~allowed, -10000.0)


def bidirectional_padding_mask(item_seq: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Every query sees every non-padding key. ``(B, L)`` -> ``(B, 1, 1, L)`` additive."""
    keys = (item_seq != 0)[:, None, None, :]
    return torch.zeros(keys.shape, dtype=dtype, device=item_seq.device).masked_fill(~keys, -10000.0)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """RecBole's initialisation: N(0, std) for Linear and Embedding weights, zero biases,
    LayerNorm weight 1 and bias 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


def gather_last(output: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
    """``output (B, L, d)`` -> the state at position ``item_seq_len - 1`` ``(B, d)``."""
    idx = (item_seq_len - 1).view(-1, 1, 1).expand(-1, 1, output.shape[-1])
    return output.gather(1, idx).squeeze(1)


__all__ = [
    "attend",
    "attend_rows",
    "pick",
    "Dropout",
    "MultiHeadAttention",
    "FeedForward",
    "TransformerLayer",
    "TransformerEncoder",
    "SequenceEncoder",
    "causal_padding_mask",
    "bidirectional_padding_mask",
    "init_weights",
    "gather_last",
]
