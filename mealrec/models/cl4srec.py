"""CL4SRec: contrastive learning for sequential recommendation.

Paper: X. Xie, F. Sun, Z. Liu, S. Wu, J. Gao, J. Zhang, B. Ding, B. Cui,
*Contrastive Learning for Sequential Recommendation*, ICDE 2022.
Reference code (read, not copied):

* RUCAIBox/RecBole, ``recbole/model/sequential_recommender/cl4srec.py`` (commit
  1ee81087, "cl4srec": SASRec encoder, embedding table of ``n_items + 1`` rows whose
  last row is the mask token, ``info_nce`` over a ``2B x 2B`` similarity matrix) and
  ``recbole/data/transform.py`` (``RandomAugmentationSequence``: ``item_crop``,
  ``item_mask``, ``item_reorder``, two distinct augmentations per sequence);
  ``recbole/properties/model/CL4SRec.yaml``;
* RuihongQiu/DuoRec (RecBole-based), ``recbole/model/sequential_recommender/cl4srec.py``,
  ``recbole/data/dataloader/sequential_dataloader.py`` (``cl4srec_aug``),
  ``recbole/properties/model/CL4SRec.yaml`` and ``seq.yaml`` (``lmd: 0.1``, ``tau: 1``,
  ``sim: 'dot'``); RUCAIBox/RecBole-DA ``recbole/model/sequential_recommender/cl4srec.py``.

Model: SASRec (:mod:`mealrec.models.sasrec`) trained with
``L = CE(next item) + cl_weight * InfoNCE(view_1, view_2)``. For every training
sequence of length ``n > 1`` two *different* operators are drawn uniformly from
{crop, mask, reorder} (RecBole's ``random.sample(range(3), k=2)``), one per view;
sequences of length 1 are used unchanged for both views.

* crop (eta): keep ``floor(n * eta)`` consecutive items starting at a uniform offset in
  ``[0, n - floor(n * eta)]``, moved to the front; the view's length shrinks.
* mask (gamma): ``floor(n * gamma)`` distinct positions among the first ``n``, chosen
  uniformly, are replaced by the mask token ``n_items`` (an extra embedding row).
* reorder (beta): a window of ``floor(n * beta)`` consecutive items at a uniform offset is
  shuffled by a uniform permutation.

InfoNCE (RecBole's ``info_nce``): ``z = [z_1; z_2]`` (2B x d), ``S = z z^T / tau`` (or cosine
/ tau); row ``i``'s positive is the other view of the same sequence, its negatives the
other ``2B - 2`` views of the batch; cross-entropy over ``[positive, negatives]``.
Scoring uses the first ``n_items`` rows only, so scores are ``(B, n_items)``.

Defaults: the SASRec backbone of :class:`~mealrec.models.sasrec.SASRecConfig`;
``cl_weight`` 0.1 and ``temperature`` 1.0 (RecBole-based DuoRec's CL4SRec settings
``lmd``/``tau``; RecBole's own ``CL4SRec.yaml`` ships ``lmd: 0.01, tau: 5`` with a BPR loss);
``crop_eta`` 0.6, ``mask_gamma`` 0.3, ``reorder_beta`` 0.6 (RecBole's hard-coded
augmentation rates); ``similarity`` 'dot' (RecBole passes ``sim='dot'``).

Departures from RecBole:

1. Mask token: RecBole's ``RandomAugmentationSequence.item_mask`` writes ``n_items - 1``,
   which is a real item id (RecBole's ``n_items`` counts padding) although the model
   allocates row ``n_items`` for the mask; we write ``n_items`` (the dedicated row), as
   the DuoRec / RecBole-DA CL4SRec code does.
2. Augmentations are vectorised torch ops on the batch inside the model, drawn from torch's
   global RNG (the trainer seeds it), instead of a per-sequence Python loop with Python's
   ``random`` in the data pipeline. The distributions are the same (uniform offsets,
   uniform subset without replacement, uniform permutation, uniform ordered pair of
   distinct operators); the random streams are not.
3. Crop keeps at least one item. RecBole would produce an empty view when
   ``floor(n * eta) == 0``, which can only happen for ``eta < 0.5`` (never at the default 0.6).
4. Both views are encoded in one forward pass of ``2B`` rows (RecBole: two passes of ``B``);
   same computation, other dropout draws.
5. InfoNCE is computed as a cross-entropy over the full ``2B x 2B`` matrix with the
   diagonal (self-similarity) set to ``-inf`` and the positive's column as target, which
   equals RecBole's ``[positive, negatives]`` logits with label 0; no Python loop to build
   the mask. Cosine similarity is normalise-then-matmul (eps 1e-12 per norm) rather than
   ``F.cosine_similarity`` on a ``(2B, 2B, d)`` broadcast (eps 1e-8 on the norm product).
6. The main loss is the SASRec softmax CE over all items (RecBole's ``loss_type: 'CE'``;
   RecBole's CL4SRec.yaml defaults to BPR). With ``cl_weight == 0`` or in eval mode no CL
   term is computed or reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import MealRecError
from .layers import init_weights
from .losses import full_softmax_ce
from .sasrec import SASRec, SASRecConfig

CROP, MASK, REORDER = 0, 1, 2
SIMILARITIES = ("dot", "cos")


@dataclass
class CL4SRecConfig(SASRecConfig):
    cl_weight: float = 0.1  # lambda (RecBole/DuoRec ``lmd``)
    temperature: float = 1.0  # tau
    crop_eta: float = 0.6  # fraction of items a crop keeps
    mask_gamma: float = 0.3  # fraction of items masked
    reorder_beta: float = 0.6  # fraction of items in the shuffled window
    similarity: str = "dot"  # dot | cos


def _count(item_seq_len: torch.Tensor, rate: float) -> torch.Tensor:
    """``floor(n * rate)`` per row (float64 with a guard against 0.29 * 100 = 28.999...)."""
    return torch.floor(item_seq_len.to(torch.float64) * rate + 1e-9).long()


def _uniform_offset(high: torch.Tensor) -> torch.Tensor:
    """A uniform integer in ``[0, high]`` per row (``high >= 0``)."""
    u = torch.rand(high.shape, device=high.device, dtype=torch.float64)
    return torch.minimum((u * (high + 1)).floor().long(), high)


def item_crop(item_seq: torch.Tensor, item_seq_len: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``max(1, floor(n * eta))`` consecutive items at a uniform offset, left-aligned.

    ``item_seq (B, L)`` right-padded with 0, ``item_seq_len (B,)`` -> ``(B, L)``, ``(B,)``."""
    L = item_seq.shape[1]
    keep = torch.minimum(_count(item_seq_len, eta).clamp(min=1), item_seq_len)  # (B,)
    begin = _uniform_offset(item_seq_len - keep)  # (B,)
    ar = torch.arange(L, device=item_seq.device)[None]  # (1, L)
    idx = (begin[:, None] + ar).clamp(max=L - 1)
    out = item_seq.gather(1, idx).masked_fill(ar >= keep[:, None], 0)
    return out, keep


def item_mask(
    item_seq: torch.Tensor, item_seq_len: torch.Tensor, gamma: float, mask_token: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``floor(n * gamma)`` distinct uniformly chosen real positions by ``mask_token``."""
    B, L = item_seq.shape
    n_mask = _count(item_seq_len, gamma)  # (B,)
    ar = torch.arange(L, device=item_seq.device)[None]
    keys = torch.rand(B, L, device=item_seq.device).masked_fill(ar >= item_seq_len[:, None], 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)  # rank of each position's key in its row
    chosen = ranks < n_mask[:, None]  # the n_mask real positions with the smallest keys
    return item_seq.masked_fill(chosen, mask_token), item_seq_len


def item_reorder(item_seq: torch.Tensor, item_seq_len: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle a window of ``floor(n * beta)`` consecutive items at a uniform offset."""
    B, L = item_seq.shape
    width = _count(item_seq_len, beta)  # (B,)
    begin = _uniform_offset(item_seq_len - width)  # (B,)
    pos = torch.arange(L, device=item_seq.device, dtype=torch.float64)[None].expand(B, L)
    b = begin[:, None].to(torch.float64)
    in_window = (pos >= b) & (pos < b + width[:, None])
    # sort keys: positions outside the window keep their index; window positions get
    # begin + U[0, 0.5), so they stay between position begin-1 and begin+width in random order
    keys = torch.where(in_window, b + 0.5 * torch.rand(B, L, device=item_seq.device, dtype=torch.float64), pos)
    perm = keys.argsort(dim=1, stable=True)
    return item_seq.gather(1, perm), item_seq_len


def apply_augmentations(
    item_seq: torch.Tensor,
    item_seq_len: torch.Tensor,
    ops: torch.Tensor,
    mask_token: int,
    eta: float,
    gamma: float,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply operator ``ops[b]`` (CROP / MASK / REORDER) to row ``b``; rows of length <= 1
    stay unchanged (RecBole). All three operators run on the whole batch (cheap for short
    sequences), then each row takes its own."""
    crop_s, crop_n = item_crop(item_seq, item_seq_len, eta)
    mask_s, _ = item_mask(item_seq, item_seq_len, gamma, mask_token)
    reo_s, _ = item_reorder(item_seq, item_seq_len, beta)
    op = ops[:, None]
    out = torch.where(op == CROP, crop_s, torch.where(op == MASK, mask_s, reo_s))
    out_len = torch.where(ops == CROP, crop_n, item_seq_len)
    short = item_seq_len <= 1
    out = torch.where(short[:, None], item_seq, out)
    out_len = torch.where(short, item_seq_len, out_len)
    return out, out_len


def random_operator_pairs(batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, 2)`` ordered pairs of distinct operators, uniform over the 6 pairs."""
    first = torch.randint(0, 3, (batch_size,), device=device)
    second = (first + 1 + torch.randint(0, 2, (batch_size,), device=device)) % 3
    return torch.stack([first, second], dim=1)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0, similarity: str = "dot") -> torch.Tensor:
    """InfoNCE with in-batch negatives (SimCLR's NT-Xent, RecBole's ``info_nce``).

    ``z1, z2 (B, d)`` are the two views; row ``i`` of ``[z1; z2]`` has its other view as the
    positive and the remaining ``2B - 2`` rows as negatives. Returns the mean over ``2B`` rows."""
    B = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)  # (2B, d)
    if similarity == "cos":
        z = F.normalize(z, dim=-1)
    elif similarity != "dot":
        raise MealRecError(f"similarity must be one of {', '.join(SIMILARITIES)}; got {similarity!r}")
    target = (torch.arange(2 * B, device=z.device) + B) % (2 * B)  # the other view
    # cross-entropy of (z / tau) z^T with its diagonal at -inf, in blocks of rows (no (2B, 2B) matrix)
    return full_softmax_ce(z / temperature, z, target, exclude_self=True)


class CL4SRec(SASRec):
    Config = CL4SRecConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Xie et al., ICDE 2022"

    def __init__(self, config: CL4SRecConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.similarity not in SIMILARITIES:
            raise MealRecError(f"cl4srec: similarity must be one of {', '.join(SIMILARITIES)}; got {c.similarity!r}")
        if not c.temperature > 0:
            raise MealRecError(f"cl4srec: temperature must be > 0, got {c.temperature}")
        if c.cl_weight < 0:
            raise MealRecError(f"cl4srec: cl_weight must be >= 0, got {c.cl_weight}")
        for name in ("crop_eta", "mask_gamma", "reorder_beta"):
            v = getattr(c, name)
            if not 0.0 <= v <= 1.0:
                raise MealRecError(f"cl4srec: {name} must be in [0, 1], got {v}")
        # one extra row, index n_items, for the mask token (excluded from scoring)
        self.mask_token = self.n_items
        self.item_embedding = nn.Embedding(self.n_items + 1, c.hidden_size, padding_idx=0)
        init_weights(self.item_embedding, c.initializer_range)

    def item_representations(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n_items + 1, d): the mask row last, never scored

    def score(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # the mask row is cut here, after the forward pass (this keeps the backward pass's order, hence its bits)
        return h @ items[: self.n_items].T  # (B, n_items)

    def score_operands(self, h: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h, items[: self.n_items]

    def augment(
        self, item_seq: torch.Tensor, item_seq_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two augmented views ``(seq1, len1, seq2, len2)`` of a batch, each row with its own
        pair of distinct operators."""
        B = item_seq.shape[0]
        ops = random_operator_pairs(B, item_seq.device)  # (B, 2)
        c = self.config
        seq, lens = apply_augmentations(
            item_seq.repeat(2, 1), item_seq_len.repeat(2), ops.T.reshape(-1),
            self.mask_token, c.crop_eta, c.mask_gamma, c.reorder_beta,
        )
        return seq[:B], lens[:B], seq[B:], lens[B:]

    def auxiliary_losses(self, out, items, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        if not self.training or c.cl_weight == 0:
            return {}
        s1, n1, s2, n2 = self.augment(batch["item_seq"], batch["item_seq_len"])
        z = self.user_state(torch.cat([s1, s2]), torch.cat([n1, n2]))  # (2B, d)
        B = s1.shape[0]
        return {"cl": c.cl_weight * info_nce(z[:B], z[B:], c.temperature, c.similarity)}
