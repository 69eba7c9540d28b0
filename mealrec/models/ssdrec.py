"""SSDRec: self-augmented sequence denoising for sequential recommendation.

Paper: C. Zhang, Q. Han, R. Chen, X. Zhao, P. Tang, H. Song, *SSDRec: Self-Augmented
Sequence Denoising for Sequential Recommendation*, ICDE 2024, pp. 803-815
(arXiv:2403.04278).
Reference code: zc-97/SSDRec (GitHub), read for this file: ``model/hsd.py`` (``HSD``: the
hierarchical denoiser and training loss; ``DNA``: global relation encoder and
self-augmentation; ``SeqOperation``: insertion; ``Denoising``: position scoring;
``AttnReadout``), ``model/sasrec.py`` (``forward_denoising``), ``graph_data/data_process0706.py``
(graph construction), ``Triainer/HsdTrainer.py`` (curriculum and Gumbel temperature
schedules), ``run_SSDRec.py`` and ``config/text.yml`` (hyperparameters). Written anew here,
not copied. SSDRec is ID-only: no text or visual features are used.

Architecture (``d`` = hidden size, ``L`` = ``max_len``, ``E`` the ID embedding table shared
with the SASRec encoder, ``P`` a user embedding table):

1. **Global relation encoder** (stage 1). From each user's training items
   (``dataset.seqs[u][:-2]``, the most recent ``graph_window`` of them, as the reference
   builds its graphs from length-``max_len`` windows) a transition graph
   ``T[i, j] = sum over ordered pairs (i before j at distance k in a window of n) of (n - k)/n``,
   kept only where the pair occurs more than ``min_cooccurrence`` times, with in/out degree
   normalisations ``A_in``, ``A_out``, and a user-item count matrix ``R``. Per step::

       n_in = A_in E,  n_out = A_out E
       a = softmax_over{in,out}( sum_d LeakyReLU((E * n_*) W_*) / sqrt(d) )
       g = dropout(c_1 E + c_2 (a_in n_in + a_out n_out) + c_0)        (reference: Conv2d(1,1,(1,2)))
       C_item = sigmoid([R^T P, g] W_ii W_i) W_ci                         (n_items, d)
       C_user = sigmoid([R E, dropout(P)] W_uu W_u) W_cu                  (batch users, d)

2. **Self-augmentation** (stage 2, training only, as in the reference). Input
   ``x_t = C_item[s_t] + C_user[u] / n``. Two inconsistency scores per position:
   sequence level ``softmax_t <x_t, f_{t-1} * b_{t+1}>`` (``f``/``b`` the forward / backward
   states of a Bi-LSTM over ``[start, x_1..x_L, end]``) and item level
   ``softmax_t sum_{j != t} <clip(x_t), clip(x_j)>`` (masked softmaxes over real positions).
   A position ``p`` is drawn with a hard Gumbel-softmax over ``1 - p_item * p_seq`` (all
   ``L`` positions; drawing a padding position means "no augmentation", as in the reference).
   Two items are chosen from all items by hard Gumbel-softmaxes over ``q_fw C_item^T`` and
   ``q_bw C_item^T`` (``q_fw`` the Bi-LSTM forward state just before ``p``, ``q_bw`` the backward
   state just after ``p``) and inserted before and after ``s_p``:
   ``[.., s_{p-1}, i_fw, s_p, i_bw, s_{p+1}, ..]``. A second draw on the augmented sequence
   removes one of the three items ``i_fw, s_p, i_bw`` if it lands on one of them.

3. **Hierarchical denoising** (stage 3, HSD, the reference's two levels). On the
   (augmented) sequence:
   * sequence level: a Bi-LSTM auto-encoder on ``dropout(E[s])`` (encoder and decoder are
     the same Bi-LSTM, directions summed) gives a per-sequence reconstruction loss
     ``sum_t ||dec_t - E[s_t]||^2 / n`` and, through a position-mixing ``Conv2d(L, L, (1, 2))``
     over ``[dec, E[s]]``, ReLU and ``sigmoid(Linear(d, 2))``, two class scores per position;
   * item level: ``sigmoid(W_e tanh(W_u BN(x_t) + W_v q))`` (two classes per position) on the
     stage-2 embeddings in training and on ``C_item[s_t]`` at evaluation, with the query
     ``q = E[target]`` (the instance's own label) in training and ``q = P[u]`` at evaluation
     (both as the reference).
   An item is noise if both levels put it in class 1 (hard Gumbel-softmax in training,
   ``argmax`` at evaluation); noise is removed and the kept items are moved to the front.

4. **Encoder and score.** SASRec (:class:`~mealrec.models.sasrec.SASRec`, the paper's backbone
   size) over ``E[kept] * keep`` (the straight-through keep flags carry the gradient back to the
   denoisers) -> state at the last kept position ``h``; ``score = h E^T``.

Loss (reference ``calculate_loss_curriculum``; its recommendation term is the same softmax
cross-entropy over all items as the library's): ``CE(score, target) + L_rec + L_user`` where
the CE and ``L_rec`` are averaged over the ``1 - r_e`` fraction of the batch with the smallest
reconstruction loss (curriculum ``r_e = linspace(0.2, 0, 10)[epoch]``, 0 afterwards) and
``L_user = mean_b sum_t -log sigmoid(<E[s_t], P[u]> - <E[neg], P[u]>)`` (one uniform negative
item per instance) with the largest ``floor((0.2 - r_e) n)`` terms of each row dropped. The
Gumbel temperature starts at 0.5 and every 40 training batches is multiplied by
``exp(-1e-3 * batches_so_far)`` (floor 1e-3), as the reference's trainer does. The model counts
the training batches and instances it has seen to follow both schedules (the epoch is
``instances_seen // len(dataset.train)``).

Departures from the reference:

* Graphs. Only the item transition graph and the user-item graph are kept. The reference's
  user-user similarity graphs (``O(n_users^2)``: infeasible for MicroLens-big) and the item
  "incompatibility" graph (dense two-hop products over all items) are dropped, so the user
  branch uses the user's own embedding where the reference propagates over users, and the
  item branch has one relation instead of the mean of two. The graphs come from the training
  part of each sequence only (the reference builds them from the test inputs, which contain
  the validation item).
* Sequence length and insertion. The library's sequences hold ``max_len`` = 10 items (the
  reference: 50). The reference only inserts into sequences with at least two free slots,
  which would leave most instances here (and all of ShortVideo's) un-augmented; by default
  (``insert_policy: truncate``) a full sequence is augmented too and its oldest items are
  dropped to keep ``max_len`` (a row whose drawn position is among those oldest items is left
  un-augmented, so the inserted items are never the ones dropped); ``insert_policy: skip``
  restores the reference's rule.
* The insertion queries are read from the Bi-LSTM pass that scores sequence-level consistency
  (over ``[start, x, end]``, padding positions included), so the query before position 0 is the
  start token's state and the one after the last position the end token's for a full sequence
  (for a shorter one it is the state of the padding position after the last real item, as in
  the reference's ``Denoising._seq_consistency``); the reference runs the same Bi-LSTM a second
  time without the boundary tokens and wraps around at the ends (one Bi-LSTM pass less here,
  for CPU cost). The padding item cannot be drawn for insertion.
* The augmented and de-noised sequences are compacted (items moved to the front, holes
  removed) for every later step; the reference keeps holes and computes the stage-3 mask from
  the un-augmented sequence, which silently drops the last two items of augmented sequences.
* Evaluation is deterministic: the noise decisions use ``argmax`` (the mode of the
  reference's Gumbel draws) and the augmentation, which the reference computes and then
  discards at evaluation, is skipped. A sequence whose items are all judged noise keeps its
  last item (the reference feeds an empty sequence to SASRec).
* The position draw passes its straight-through gradient through the chosen entry only
  (the reference also differentiates through the zero entries of the one-hot vector). The
  second-level draw only picks ids and runs without gradient (as in effect in the reference).
  Gumbel noise comes from ``torch.rand`` (same distribution as ``F.gumbel_softmax``'s).
* The user-BPR filter drops the ``floor(rate * n)`` largest terms; the reference zeroes the
  whole row when that number is 0 and the rate is positive (a slicing slip). Its negative is
  one uniform item per instance (the reference takes RecBole's sampled negatives).
* The sequence-level denoiser masks the padding embeddings before its position-mixing
  convolution (the reference feeds the padding row's embedding to it).
* The unused parts of the reference (the long-term read-out of ``AttnReadout``, the
  "embedding-level" representation, the sequence-level hidden state) are not computed.
* Note on the graph threshold: with 10-item windows few pairs occur more than 10 times
  (``synthetic-small``: about 250 of 27,000 ordered pairs), so the transition graph is sparse
  at the reference's ``min_cooccurrence``; lower it to use more pairs.
* Sizes and training: hidden 64, inner 256, 2 layers, 2 heads, dropout 0.5 (the paper's
  backbone setting; the reference runs SASRec with hidden 100, inner 100); the library's
  trainer (Adam, lr 1e-3, batch 2048, no gradient clipping; the reference: batch 256,
  gradient-norm clipping at 5); the library's SASRec layers (``scaled_dot_product_attention``,
  ``torch.rand`` dropout masks). SSDRec-specific settings keep the reference's values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils import MealRecError
from .base import Output
from .layers import Dropout
from .losses import full_softmax_ce
from .sasrec import SASRec, SASRecConfig

INSERT_POLICIES = ("truncate", "skip")
_NEG = -1e9  # additive mask for softmaxes over positions / items


@dataclass
class SSDRecConfig(SASRecConfig):
    """SASRec's encoder settings plus SSDRec's own (reference values)."""

    graph_dropout: float = 0.3  # ``dropout_prob`` of the global relation encoder (config/text.yml)
    seq_dropout: float = 0.3  # ``our_ae_drop_out``: sequence-level denoiser input dropout
    item_dropout: float = 0.2  # ``our_att_drop_out``: item-level denoiser dropout
    min_cooccurrence: int = 10  # ``less_freq``: transition edges need more co-occurrences than this
    graph_window: int = 0  # most recent training items per user used for the graphs; 0 = max_len
    gumbel_tau: float = 0.5  # initial Gumbel-softmax temperature
    tau_anneal: bool = True  # anneal the temperature as the reference's trainer
    tau_min: float = 1e-3
    anneal_every: int = 40  # batches between annealing steps
    anneal_rate: float = 1e-3
    curriculum_drop: float = 0.2  # initial share of instances dropped by reconstruction loss
    curriculum_epochs: int = 10  # epochs over which it falls linearly to 0
    insert_policy: str = "truncate"  # truncate | skip (the reference's rule: only sequences with 2 free slots)


# ---------------------------------------------------------------------------------- graphs
def training_windows(seqs, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent ``window`` *training* items of every user (``seq[:-2]``: the last two
    are the validation and test targets), left-aligned: ``(n_users, window)`` int64 padded with
    0, and their lengths ``(n_users,)``."""
    items = np.zeros((len(seqs), window), dtype=np.int64)
    lens = np.zeros(len(seqs), dtype=np.int64)
    for u, s in enumerate(seqs):
        w = np.asarray(s[:-2], dtype=np.int64)[-window:]
        items[u, : len(w)] = w
        lens[u] = len(w)
    return items, lens


def transition_graph(items: np.ndarray, lens: np.ndarray, n_items: int, min_count: int):
    """The reference's item transition graph from windows ``items (U, W)`` / ``lens (U,)``.

    Every ordered pair (``i`` at position ``a``, ``j`` at ``b > a``) of a window of length ``n``
    adds 1 to a count and ``(n - (b - a)) / n`` to a weight; weights of pairs counted at most
    ``min_count`` times are dropped. Returns the weight matrix ``(n_items, n_items)`` (scipy CSR)."""
    import scipy.sparse as sp

    W = items.shape[1]
    rows, cols, wts = [], [], []
    n = lens.astype(np.float64)
    for k in range(1, W):
        a, b = items[:, : W - k], items[:, k:]
        valid = (np.arange(W - k)[None, :] + k) < lens[:, None]
        w = np.broadcast_to(((n - k) / np.maximum(n, 1))[:, None], valid.shape)
        rows.append(a[valid])
        cols.append(b[valid])
        wts.append(w[valid])
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    wts = np.concatenate(wts) if wts else np.zeros(0)
    count = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, n_items)).tocsr()
    weight = sp.coo_matrix((wts, (rows, cols)), shape=(n_items, n_items)).tocsr()
    return weight.multiply(count > min_count).tocsr()


def degree_normalise(adj) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A_in, A_out)`` as torch sparse tensors: ``A_out = A / rowsum`` and
    ``A_in = (A / colsum)^T`` (zero sums left as 1), as the reference's ``_get_degree_matrix``."""
    import scipy.sparse as sp

    adj = sp.csr_matrix(adj, dtype=np.float64)
    row = np.asarray(adj.sum(axis=1)).ravel()
    col = np.asarray(adj.sum(axis=0)).ravel()
    row[row == 0] = 1.0
    col[col == 0] = 1.0
    a_out = sp.diags(1.0 / row) @ adj
    a_in = (adj @ sp.diags(1.0 / col)).T
    return _to_torch(a_in), _to_torch(a_out)


def _to_torch(m) -> torch.Tensor:
    m = m.tocoo()
    idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    values = torch.from_numpy(m.data.astype(np.float32))
    return torch.sparse_coo_tensor(idx, values, m.shape, check_invariants=False).coalesce()


def user_item_matrix(items: np.ndarray, lens: np.ndarray, n_items: int) -> torch.Tensor:
    """``R (n_users, n_items)``: how often each user's window holds each item (torch sparse)."""
    import scipy.sparse as sp

    valid = np.arange(items.shape[1])[None, :] < lens[:, None]
    users = np.broadcast_to(np.arange(items.shape[0])[:, None], items.shape)[valid]
    r = sp.coo_matrix((np.ones(len(users)), (users, items[valid])), shape=(items.shape[0], n_items))
    return _to_torch(r.tocsr())


# ---------------------------------------------------------------------------------- helpers
def gumbel_one_hot(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Hard Gumbel-softmax over the last axis (``F.gumbel_softmax(hard=True)``): the forward value
    is the one-hot of ``argmax(logits + g)``, the gradient that of ``softmax((logits + g) / tau)``.
    The noise ``g = -log(-log U)`` comes from ``torch.rand`` (faster on CPU than the exponential
    sampler; the same distribution)."""
    u = torch.rand_like(logits).clamp_(min=1e-20, max=1.0 - 1e-7)
    y = ((logits - torch.log(-torch.log(u))) / tau).softmax(dim=-1)
    hard = F.one_hot(y.argmax(dim=-1), logits.shape[-1]).to(y.dtype)
    return hard - y.detach() + y


def masked_softmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of ``x (B, L)`` restricted to ``mask (B, L)`` (bool)."""
    return x.masked_fill(~mask, _NEG).softmax(dim=-1)


def compact(ids: torch.Tensor, emb: torch.Tensor, keep: torch.Tensor):
    """Move the kept positions of every row to the front, in order.

    ``ids (B, L)``, ``emb (B, L, d)``, ``keep (B, L)`` bool -> ``ids (B, L)`` right-padded with 0,
    ``emb (B, L, d)`` zero where padded, ``lens (B,)``."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept first, in order
    kept = keep.gather(1, order)
    ids = ids.gather(1, order) * kept
    emb = emb.gather(1, order[..., None].expand_as(emb)) * kept[..., None]
    return ids, emb, keep.sum(dim=1)


def insertion_index(lens: torch.Tensor, p: torch.Tensor, L: int, truncate: bool):
    """Where each position of an augmented sequence comes from.

    For rows with a real position ``p < len`` the augmented sequence is
    ``[s_0 .. s_{p-1}, FW, s_p, BW, s_{p+1} ..]``; with ``truncate`` a sequence that would
    exceed ``L`` loses its oldest items, otherwise (the reference's rule) rows without two free
    slots are left as they are. Sources index a bank ``[s_0 .. s_{L-1}, FW, BW]`` of ``L + 2``.

    Returns ``src (B, L)`` into the bank, ``new_len (B,)``, ``augmented (B,)`` bool and the
    position ``q (B,)`` of ``FW`` in the output (``s_p`` at ``q + 1``, ``BW`` at ``q + 2``)."""
    B = lens.shape[0]
    overflow = (lens + 2 - L).clamp(min=0)  # oldest items a full row must drop
    # a row whose drawn position would be dropped itself (p < overflow) is left as it is, so
    # the inserted items always survive the truncation
    fits = torch.ones_like(lens, dtype=torch.bool) if truncate else (lens + 2 <= L)
    augmented = (p < lens) & (p >= overflow) & fits
    shift = overflow * augmented
    j = torch.arange(L, device=lens.device)[None, :] + shift[:, None]  # position in the extended sequence
    pp = p[:, None]
    src = torch.where(j < pp, j, j - 2)
    src = torch.where(j == pp, torch.full_like(j, L), src)
    src = torch.where(j == pp + 1, pp.expand(B, L), src)
    src = torch.where(j == pp + 2, torch.full_like(j, L + 1), src)
    ident = torch.arange(L, device=lens.device)[None, :].expand(B, L)
    src = torch.where(augmented[:, None], src, ident)
    new_len = torch.where(augmented, (lens + 2).clamp(max=L), lens)
    q = torch.where(augmented, p - shift, p)
    return src, new_len, augmented, q


# ---------------------------------------------------------------------------------- modules
class GlobalRelationEncoder(nn.Module):
    """Stage 1: items in the context of the transition and user-item graphs (one layer)."""

    def __init__(self, d: int, dropout: float, a_in: torch.Tensor, a_out: torch.Tensor, r: torch.Tensor,
                 windows: torch.Tensor, window_lens: torch.Tensor):
        super().__init__()
        self.register_buffer("a_in", a_in, persistent=False)  # (N, N) sparse
        self.register_buffer("a_out", a_out, persistent=False)
        self.register_buffer("r_t", r.t().coalesce(), persistent=False)  # (N, U) sparse
        self.register_buffer("windows", windows, persistent=False)  # (U, W) training items per user
        window_mask = torch.arange(windows.shape[1])[None, :] < window_lens[:, None]
        self.register_buffer("window_mask", window_mask, persistent=False)
        self.w_in = nn.Parameter(torch.empty(d, d))
        self.w_out = nn.Parameter(torch.empty(d, d))
        self.mix = nn.Linear(2, 1)  # c_1 E + c_2 neighbours + c_0 (the reference's Conv2d(1, 1, (1, 2)))
        self.w_ii = nn.Parameter(torch.empty(2 * d, d))
        self.w_i = nn.Parameter(torch.empty(d, d))
        self.w_ci = nn.Parameter(torch.empty(d, d))
        self.w_uu = nn.Parameter(torch.empty(2 * d, d))
        self.w_u = nn.Parameter(torch.empty(d, d))
        self.w_cu = nn.Parameter(torch.empty(d, d))
        self.dropout = Dropout(dropout)
        for w in (self.w_in, self.w_out, self.w_ii, self.w_i, self.w_ci, self.w_uu, self.w_u, self.w_cu,
                  self.mix.weight):
            nn.init.xavier_uniform_(w)

    def items(self, item_emb: torch.Tensor, user_emb: torch.Tensor) -> torch.Tensor:
        """``C_item (n_items, d)`` from the ID tables ``E (n_items, d)`` and ``P (n_users, d)``."""
        d = item_emb.shape[1]
        n_in = torch.sparse.mm(self.a_in, item_emb)  # (N, d)
        n_out = torch.sparse.mm(self.a_out, item_emb)  # (N, d)
        s_in = F.leaky_relu((item_emb * n_in) @ self.w_in, 0.2).sum(-1) / math.sqrt(d)  # (N,)
        s_out = F.leaky_relu((item_emb * n_out) @ self.w_out, 0.2).sum(-1) / math.sqrt(d)
        a = torch.stack([s_in, s_out], dim=-1).softmax(dim=-1)  # (N, 2)
        neigh = a[:, :1] * n_in + a[:, 1:] * n_out  # (N, d)
        g = self.dropout(self.mix(torch.stack([item_emb, neigh], dim=-1)).squeeze(-1))  # (N, d)
        from_users = torch.sparse.mm(self.r_t, user_emb)  # (N, d)
        return torch.sigmoid(torch.cat([from_users, g], dim=-1) @ self.w_ii @ self.w_i) @ self.w_ci

    def users(self, user: torch.Tensor, item_emb: torch.Tensor, user_emb: torch.Tensor) -> torch.Tensor:
        """``C_user (B, d)`` for the users of a batch."""
        win = self.windows[user]  # (B, W)
        from_items = (item_emb[win] * self.window_mask[user][..., None]).sum(dim=1)  # (B, d) = (R E)[user]
        own = self.dropout(user_emb[user])  # (B, d)
        return torch.sigmoid(torch.cat([from_items, own], dim=-1) @ self.w_uu @ self.w_u) @ self.w_cu


class InconsistencyScorer(nn.Module):
    """The reference's ``Denoising``: sequence- and item-level consistency of each position,
    and the Bi-LSTM whose states query the items to insert."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.boundary = nn.Parameter(torch.randn(2, d))  # start / end tokens
        self.lstm = nn.LSTM(d, d, num_layers=1, bias=False, batch_first=True, bidirectional=True)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.xavier_uniform_(self.lstm.weight_hh_l0)

    def sequence_level(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``softmax_t <x_t, f_{t-1} * b_{t+1}>`` over real positions ``(B, L)``, and the Bi-LSTM
        states over ``[start, x, end]`` ``(B, L + 2, 2d)``."""
        B, L, d = x.shape
        start = self.boundary[0].expand(B, 1, d)
        end = self.boundary[1].expand(B, 1, d)
        h, _ = self.lstm(torch.cat([start, x, end], dim=1))  # (B, L + 2, 2d)
        fw, bw = h[:, :-2, :d], h[:, 2:, d:]  # state before t / after t
        return masked_softmax((x * fw * bw).sum(-1), mask), h

    @staticmethod
    def item_level(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``softmax_t sum_{j != t} <clip(x_t), clip(x_j)>`` over real positions, ``(B, L)``."""
        c = x.clamp(-1.0, 1.0)
        m = mask.to(x.dtype)
        sim = (c @ c.transpose(1, 2)) * m[:, :, None] * m[:, None, :]  # (B, L, L)
        sim = sim - torch.diag_embed(torch.diagonal(sim, dim1=1, dim2=2))
        return masked_softmax(sim.sum(dim=1), mask)

    def noise_logits(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``1 - p_item * p_seq`` per position (1 on padding) ``(B, L)``, and the Bi-LSTM states."""
        p_seq, h = self.sequence_level(x, mask)
        return 1.0 - self.item_level(x, mask) * p_seq, h

    @staticmethod
    def queries(h: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """From the states ``h (B, L + 2, 2d)`` of :meth:`sequence_level`: the forward state just
        before position ``p`` and the backward state just after it, ``(B, d)`` each."""
        d = h.shape[-1] // 2
        rows = torch.arange(h.shape[0], device=h.device)
        return h[rows, p, :d], h[rows, p + 2, d:]  # index t + 1 holds position t


class SequenceLevelDenoiser(nn.Module):
    """HSD's sequence level: Bi-LSTM auto-encoder, position-mixing convolution, two classes."""

    def __init__(self, d: int, L: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(d, d, batch_first=True, bidirectional=True)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.xavier_uniform_(self.lstm.weight_hh_l0)
        self.conv = nn.Conv2d(L, L, (1, 2))  # mixes positions: channels are the L positions
        self.out = nn.Linear(d, 2, bias=False)
        nn.init.xavier_normal_(self.out.weight)
        self.dropout = Dropout(dropout)

    def _bi(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        d = x.shape[-1]
        return h[..., :d] + h[..., d:]

    def forward(self, emb: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``emb (B, L, d)`` ID embeddings, ``mask (B, L)`` -> class scores ``(B, L, 2)`` and the
        per-sequence reconstruction loss ``(B,)``."""
        m = mask[..., None].to(emb.dtype)
        emb = emb * m
        enc = self._bi(self.dropout(emb) * m) * m  # (B, L, d)
        dec = self._bi(enc)  # (B, L, d)
        recon = ((dec * m - emb) ** 2).sum(dim=(1, 2)) / lens.clamp(min=1).to(emb.dtype)  # (B,)
        z = self.conv(torch.stack([dec, emb], dim=-1)).squeeze(-1)  # (B, L, d)
        z = F.relu(self.dropout(z))
        return torch.sigmoid(self.out(z)) * m, recon


class ItemLevelDenoiser(nn.Module):
    """HSD's item level (``AttnReadout``'s scores): each item against a query vector."""

    def __init__(self, d: int, L: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(L)  # over (B, L, d): one statistic per position
        self.dropout = Dropout(dropout)
        self.fc_u = nn.Linear(d, d, bias=False)
        self.fc_v = nn.Linear(d, d)
        self.fc_e = nn.Linear(d, 2, bias=False)
        for lin in (self.fc_u, self.fc_v, self.fc_e):
            nn.init.xavier_normal_(lin.weight)
        nn.init.zeros_(self.fc_v.bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d)``, ``query (B, d)``, ``mask (B, L)`` -> class scores ``(B, L, 2)``."""
        m = mask[..., None].to(x.dtype)
        f = self.dropout(self.norm(x) * m) * m
        e = self.fc_e(torch.tanh(self.fc_u(f) * m + self.fc_v(query)[:, None, :])) * m
        return torch.sigmoid(e)


# ---------------------------------------------------------------------------------- model
class SSDRec(SASRec):
    Config = SSDRecConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Zhang et al., ICDE 2024"
    training_attributes = ("tau", "train_batches", "train_instances")

    def __init__(self, config: SSDRecConfig, dataset):
        super().__init__(config, dataset)  # ID embedding, positions, Transformer (RecBole init)
        c = config
        if c.insert_policy not in INSERT_POLICIES:
            raise MealRecError(
                f"ssdrec: insert_policy must be one of {', '.join(INSERT_POLICIES)}; got {c.insert_policy!r}")
        if not c.gumbel_tau > 0 or not c.tau_min > 0:
            raise MealRecError(f"ssdrec: gumbel_tau and tau_min must be > 0, got {c.gumbel_tau}, {c.tau_min}")
        if not 0.0 <= c.curriculum_drop < 1.0:
            raise MealRecError(f"ssdrec: curriculum_drop must be in [0, 1), got {c.curriculum_drop}")
        if c.graph_window < 0 or c.min_cooccurrence < 0 or c.anneal_every < 1 or c.curriculum_epochs < 1:
            raise MealRecError("ssdrec: graph_window and min_cooccurrence must be >= 0, "
                               "anneal_every and curriculum_epochs >= 1")
        d, L = c.hidden_size, self.max_len
        self.n_users = dataset.n_users
        self.n_train = len(dataset.train)

        windows, lens = training_windows(dataset.seqs, c.graph_window or L)
        a_in, a_out = degree_normalise(transition_graph(windows, lens, self.n_items, c.min_cooccurrence))
        r = user_item_matrix(windows, lens, self.n_items)
        self.user_embedding = nn.Embedding(self.n_users, d)
        nn.init.xavier_normal_(self.user_embedding.weight)
        self.relations = GlobalRelationEncoder(d, c.graph_dropout, a_in, a_out, r, torch.from_numpy(windows),
                                               torch.from_numpy(lens))
        self.scorer = InconsistencyScorer(d)
        self.seq_denoiser = SequenceLevelDenoiser(d, L, c.seq_dropout)
        self.item_denoiser = ItemLevelDenoiser(d, L, c.item_dropout)
        # schedules of the reference's trainer, followed by counting what training has seen
        self.tau = c.gumbel_tau
        self.train_batches = 0
        self.train_instances = 0

    # ------------------------------------------------------------------ schedules
    def curriculum_rate(self) -> float:
        """Share of the batch left out of the loss this epoch: ``linspace(r0, 0, n)[epoch]``."""
        c = self.config
        epoch = self.train_instances // max(self.n_train, 1)
        if epoch >= c.curriculum_epochs:
            return 0.0
        return float(np.linspace(c.curriculum_drop, 0.0, c.curriculum_epochs)[epoch])

    def _advance_schedules(self, batch_size: int) -> None:
        c = self.config
        self.train_batches += 1
        self.train_instances += batch_size
        if c.tau_anneal and self.train_batches % c.anneal_every == 0:
            self.tau = max(c.tau_min, self.tau * math.exp(-c.anneal_rate * self.train_batches))

    # ------------------------------------------------------------------ stages
    def _inputs(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """``item_seq`` padded to ``max_len`` columns, with everything at or after ``item_seq_len``
        set to padding (the masks of every stage come from the ids)."""
        L = item_seq.shape[1]
        if L > self.max_len:
            raise MealRecError(f"item_seq has {L} columns, more than max_len={self.max_len}")
        if L < self.max_len:
            item_seq = F.pad(item_seq, (0, self.max_len - L))
        real = torch.arange(self.max_len, device=item_seq.device)[None, :] < item_seq_len[:, None]
        return item_seq * real  # (B, max_len)

    def augment(self, item_seq, item_seq_len, user, item_ctx, user_ctx):
        """Stage 2: draw a position, insert two drawn items around it, then let a second draw
        remove one of the three. Returns compacted ``ids (B, L)``, context embeddings
        ``(B, L, d)``, lengths ``(B,)`` and the augmented-row flags ``(B,)``."""
        B, L = item_seq.shape
        tau = self.tau
        mask = item_seq > 0
        x = item_ctx[item_seq] + (user_ctx / item_seq_len[:, None].to(user_ctx.dtype))[:, None, :]  # (B, L, d)
        logits, h = self.scorer.noise_logits(x, mask)  # (B, L), (B, L + 2, 2d)
        y = gumbel_one_hot(logits, tau)  # (B, L) one-hot
        p = y.argmax(dim=-1)  # (B,)
        g = y.gather(1, p[:, None])  # (B, 1): 1 forward, straight-through gradient

        q_fw, q_bw = self.scorer.queries(h, p)  # (B, d) each
        ctx_t = item_ctx.T
        is_pad = torch.zeros(self.n_items, dtype=torch.bool, device=item_seq.device)
        is_pad[0] = True
        picks = []
        for q in (q_fw, q_bw):
            z = gumbel_one_hot((q @ ctx_t).masked_fill(is_pad, _NEG), tau)  # (B, N) one-hot
            picks.append((z.argmax(dim=-1), z @ item_ctx))  # id (B,), embedding (B, d)
        (fw_id, fw_emb), (bw_id, bw_emb) = picks

        truncate = self.config.insert_policy == "truncate"
        src, aug_len, augmented, qpos = insertion_index(item_seq_len, p, L, truncate)
        bank_ids = torch.cat([item_seq, fw_id[:, None], bw_id[:, None]], dim=1)  # (B, L + 2)
        bank_emb = torch.cat([x, fw_emb[:, None], bw_emb[:, None]], dim=1)  # (B, L + 2, d)
        aug_ids = bank_ids.gather(1, src)
        aug_emb = bank_emb.gather(1, src[..., None].expand(B, L, x.shape[-1]))
        aug_emb = torch.where(augmented[:, None, None], aug_emb * g[..., None], aug_emb)
        aug_mask = torch.arange(L, device=item_seq.device)[None, :] < aug_len[:, None]
        aug_ids = aug_ids * aug_mask

        # second level: remove one of (FW, s_p, BW) if the draw on the augmented sequence hits it
        # (it only chooses ids, so no gradient flows through it, as in the reference)
        with torch.no_grad():
            r = gumbel_one_hot(self.scorer.noise_logits(aug_emb, aug_mask)[0], tau).argmax(dim=-1)  # (B,)
        # (under `skip` also on real positions left un-augmented, as the reference; under
        # `truncate` a row left as it is stays as it is)
        eligible = augmented if truncate else (p < item_seq_len)
        hit = eligible & (r >= qpos) & (r <= qpos + 2) & (r < aug_len)
        remove = F.one_hot(r, L).bool() & hit[:, None]
        ids, emb, lens = compact(aug_ids, aug_emb, aug_mask & ~remove)
        return ids, emb, lens, augmented

    def denoise(self, ids, ctx_emb, lens, query, hard_sample: bool):
        """Stage 3: keep flags ``(B, L)`` (straight-through in training) and the sequence-level
        reconstruction loss ``(B,)``."""
        mask = ids > 0
        raw = self.item_embedding(ids)  # (B, L, d)
        s_seq, recon = self.seq_denoiser(raw, mask, lens)  # (B, L, 2), (B,)
        s_item = self.item_denoiser(ctx_emb, query, mask)  # (B, L, 2)
        m = mask.to(raw.dtype)
        if hard_sample:
            noisy = gumbel_one_hot(s_item, self.tau)[..., 1] * gumbel_one_hot(s_seq, self.tau)[..., 1]
        else:
            noisy = ((s_item[..., 1] > s_item[..., 0]) & (s_seq[..., 1] > s_seq[..., 0])).to(raw.dtype)
        keep = (1.0 - noisy * m) * m  # (B, L)
        # a sequence judged all noise keeps its last item
        empty = (keep.detach() < 0.5).all(dim=1) | (lens == 0)
        last = F.one_hot((lens - 1).clamp(min=0), ids.shape[1]).to(raw.dtype) * m
        keep = torch.where(empty[:, None], last, keep)
        return keep, raw, recon

    def encode_kept(self, ids, raw, keep):
        """SASRec over the kept items: ``(B, d)``."""
        kept_ids, kept_emb, kept_len = compact(ids, raw * keep[..., None], keep > 0.5)
        return self.seq(kept_emb, kept_ids, kept_len.clamp(min=1))  # (B, d)

    # ------------------------------------------------------------------ contract
    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor | Output:
        """Training: augment, de-noise with Gumbel decisions, encode the kept items (parts: what the
        curriculum and the reconstruction loss read). Evaluation (no augmentation, as the reference):
        ``argmax`` decisions, the item-level query being the user's embedding (without ``user``: the
        last item's embedding)."""
        lens, user = batch["item_seq_len"], batch.get("user")
        item_seq = self._inputs(batch["item_seq"], lens)
        E, P = self.item_embedding.weight, self.user_embedding.weight
        if not self.training:
            item_ctx = self.relations.items(E, P)  # (N, d)
            if user is not None:
                query = self.user_embedding(user)
            else:
                query = self.item_embedding(item_seq.gather(1, (lens - 1).clamp(min=0)[:, None]).squeeze(1))
            keep, raw, _ = self.denoise(item_seq, item_ctx[item_seq], lens, query, hard_sample=False)
            return self.encode_kept(item_seq, raw, keep)
        B = item_seq.shape[0]
        drop = self.curriculum_rate()
        self._advance_schedules(B)
        item_ctx = self.relations.items(E, P)  # (N, d)
        user_ctx = self.relations.users(user, E, P)  # (B, d)
        ids, ctx_emb, aug_len, augmented = self.augment(item_seq, lens, user, item_ctx, user_ctx)
        keep, raw, recon = self.denoise(ids, ctx_emb, aug_len, self.item_embedding(batch["target"]), hard_sample=True)
        logs = {"augmented": augmented.float().mean(), "kept": keep.detach().sum() / ids.gt(0).sum().clamp(min=1)}
        return Output(self.encode_kept(ids, raw, keep), {"recon": recon, "drop": drop, "ids": ids}, logs)

    def rec_loss(self, out: Output, items: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over the instances easiest to reconstruct (the curriculum keeps ``1 - drop`` of them)."""
        if "recon" not in out.parts:
            return super().rec_loss(out, items, batch)
        ce = full_softmax_ce(*self.score_operands(out.h, items), batch["target"], reduction="none")  # (B,)
        n_keep = max(1, int((1.0 - out.parts["drop"]) * ce.shape[0]))
        out.parts["chosen"] = out.parts["recon"].detach().argsort()[:n_keep]
        return ce[out.parts["chosen"]].mean()

    def auxiliary_losses(self, out: Output, items: torch.Tensor, batch: dict[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
        if "chosen" not in out.parts:
            return {}
        p = out.parts
        user_term = self.user_bpr_filter(p["ids"], batch["user"], self.config.curriculum_drop - p["drop"])
        return {"recon": p["recon"][p["chosen"]].mean(), "user_bpr": user_term}

    def user_bpr_filter(self, ids, user, drop_rate: float) -> torch.Tensor:
        """The reference's ``loss_filter``: BPR of the user embedding for each sequence item against
        one uniform negative, the ``floor(drop_rate * n)`` largest terms of each row dropped."""
        mask = ids > 0
        u = self.user_embedding(user)  # (B, d)
        pos = (self.item_embedding(ids) * u[:, None, :]).sum(-1)  # (B, L)
        neg_item = torch.randint(1, self.n_items, (ids.shape[0],), device=ids.device)
        neg = (self.item_embedding(neg_item) * u).sum(-1, keepdim=True)  # (B, 1)
        loss = -torch.log(1e-10 + torch.sigmoid(pos - neg)) * mask
        n_drop = torch.floor(drop_rate * mask.sum(1).double() + 1e-9).long()  # (B,)
        if drop_rate > 0:
            rank = loss.detach().masked_fill(~mask, -1.0).argsort(dim=1, descending=True).argsort(dim=1)
            loss = loss * (rank >= n_drop[:, None])
        return loss.sum(dim=-1).mean()
