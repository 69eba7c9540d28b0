"""MMGCN: multi-modal graph convolution on the user-item graph (a non-sequential baseline).

Paper: Y. Wei, X. Wang, L. Nie, X. He, R. Hong, T.-S. Chua, *MMGCN: Multi-modal Graph
Convolution Network for Personalized Recommendation of Micro-video*, ACM MM 2019.
Reference code: weiyinwei/MMGCN (GitHub), read for this file: ``Model_MMGCN.py``
(``GCN``, ``Net``: per-modality GCN, BPR + L2 loss), ``BaseModel.py`` (the message-passing
layer), ``Dataset.py`` (negative sampling), ``main.py`` (defaults), and the per-dataset
versions ``Tiktok_Kwai/Model.py``, ``Tiktok_Kwai/train.py`` and ``Movielens/Model.py``
(``num_layer`` 2, ``aggr_mode`` mean, ``concat`` False, ``has_id`` True, ``dim_latent``
64, feature MLPs of width 128). Written anew here, not copied.

Graph: the bipartite user-item graph of the **training** interactions only, i.e. for
user ``u`` the items ``dataset.seqs[u][:-2]`` (the validation and test targets are left
out); nodes ``0..n_users-1`` are users, node ``n_users + i`` is item ``i`` (item 0, the
padding item, is an isolated node); each distinct (user, item) pair is an undirected
edge (repeats count once); no self-loops.

Per modality ``m`` (text, visual; ``modality`` = ``"text" | "visual" | "both"``):

1. Node input: ``x^0 = normalize([P_m ; MLP_m(F_m)])`` (row-wise L2), with a learnable user
   preference table ``P_m (n_users, d_lat)`` and a linear map ``MLP_m: d_m -> d_lat`` of the
   frozen item features ``F_m`` (``features().text`` / ``features().visual``).
2. Layer ``l`` (``n_layers`` of them; ``d_in = d_lat`` for the first, ``d`` after):
   aggregation ``h = LeakyReLU(mean_{j in N(v)} W_1 x_j)`` (Eq. 1-2; ``aggr: add`` sums),
   combination ``x_hat = LeakyReLU(W_3 x_v) + e_v`` with the shared ID embedding
   ``e (n_users + n_items, d)`` (Eq. 5, ``has_id``), then
   ``x_v <- LeakyReLU(W_2 h + x_hat)`` (``concat: false``) or
   ``LeakyReLU(W_2 [h ; x_hat])`` (``concat: true``).
3. Prediction: ``u* = sum_m x_u^{L,m}``, ``i* = sum_m x_i^{L,m}``; score ``<u*, i*>``.

The ID "modality" of the brief is the shared ID embedding ``e`` that enters every
modality's combination layer, as in the paper and the reference (there is no separate ID
graph). Propagation is a ``torch.sparse`` product with the (row-normalised) adjacency,
run once per training step over the whole graph (as the reference's ``forward``) and
cached in evaluation (keyed on the parameters' versions, so any update invalidates it).

Loss (``loss``): ``"ce"`` (default) -- softmax cross-entropy of ``u*`` against all
``n_items`` items for each training instance's target (the library's usual loss;
the padding column takes part as for SASRec), or ``"bpr"`` -- the reference's
``-mean log sigmoid(<u*, i+> - <u*, i->)`` with one negative per instance drawn uniformly
among the items the user has no training interaction with. Both add the reference's L2
term ``reg_weight * (mean(e_u^2 + e_{i+}^2 [+ e_{i-}^2]) + sum_m mean(P_m^2))``.
CE is the default because it is what every other Table 2 model here is trained with, and it
trained better here (the book's implementation notes give the comparison).
Training instances are the library's prefix instances ``(user, target)``; the sequence
itself is not used by MMGCN.

Contract: the per-step item state is one propagation, ``(users, items)``; ``forward`` returns the
user's node representation ``u*`` (``batch["user"]``), so training, ranking and Figure 7 read the
graph, never the sequence.

Departures from the reference:

* Modalities: text (all-MiniLM-L6-v2 titles, 384-d, or the hashed fallback) and the
  dataset's 768-d global visual feature; there is no acoustic modality. Both modalities go
  through a ``d_lat = 128`` linear map (the reference maps visual/textual features to 128
  or 256 in ``Movielens``/``Tiktok_Kwai``, and feeds low-dimensional features raw).
* ``e`` and ``P_m`` are trainable ``nn.Parameter`` s. In the reference they are created
  with ``requires_grad=True`` and then moved with ``.cuda()``, which yields non-leaf
  tensors that are not registered with the module, so the optimizer never updates them
  (they stay at their random initialisation); the paper describes them as learned.
* Modality representations are summed (paper, Eq. 9 prediction layer); the reference
  averages them (a constant factor ``1/M``).
* Default loss CE over all items (see above); BPR is available as ``loss: bpr``. The L2
  term follows ``Model_MMGCN.py`` (``reg_weight`` 1e-5 = its ``weight_decay`` argument),
  but regularises every modality's preference table (the reference: only the visual one).
  Optimiser: the library's Adam at lr 1e-3 without weight decay (the reference's
  ``Tiktok_Kwai`` uses lr 1e-3 with Adam weight decay 1e-3; ``main.py`` lr 1e-4).
* Negatives (BPR) are drawn with torch's RNG, rejection-sampled in a few vectorised
  rounds (an item still colliding after 10 rounds is kept), instead of a Python loop.
* Initialisation as the reference: Xavier-normal ``e``, ``P_m``, ``W_1``, ``W_3`` and the
  first layer's ``W_2``; PyTorch defaults for the later ``W_2`` and all biases.
* Evaluation ranks all items for the user of each valid/test instance (the library's full
  ranking, history not masked); the reference masks training items and ranks by top-k
  recall/precision over all remaining targets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Output, SequentialRecommender

MODALITIES = ("text", "visual", "both")
#: rejection-sampling rounds for BPR negatives
NEG_ROUNDS = 10


@dataclass
class MMGCNConfig:
    hidden_size: int = 64  # dim_x / dim_E of the reference
    feature_latent: int = 128  # width of each modality's feature map and user preference (dim_latent)
    n_layers: int = 2  # graph convolution layers per modality (num_layer)
    aggr: str = "mean"  # mean | add (aggr_mode)
    concat: bool = False  # combination by concatenation (True) or element-wise sum (False)
    has_id: bool = True  # add the shared ID embedding in every combination layer
    modality: str = "both"  # text | visual | both
    loss: str = "ce"  # ce (softmax over all items) | bpr (one sampled negative)
    reg_weight: float = 1e-5  # L2 on the batch's ID embeddings and the preference tables


def training_graph(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Distinct training (user, item) pairs: items ``seqs[u][:-2]`` of every user ``u``."""
    users, items = [], []
    for u, s in enumerate(dataset.seqs):
        tr = np.unique(np.asarray(s[:-2], dtype=np.int64))
        users.append(np.full(len(tr), u, dtype=np.int64))
        items.append(tr)
    return np.concatenate(users), np.concatenate(items)


def bipartite_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, aggr: str) -> torch.Tensor:
    """Sparse ``(N, N)`` adjacency over ``N = n_users + n_items`` nodes, both directions;
    rows divided by the degree for ``aggr='mean'`` (isolated nodes get an empty row)."""
    if aggr not in ("mean", "add"):
        raise ValueError(f"aggr must be 'mean' or 'add', got {aggr!r}")
    n = n_users + n_items
    src = np.concatenate([users, n_users + items])
    dst = np.concatenate([n_users + items, users])
    idx = torch.from_numpy(np.stack([src, dst]))  # row = receiving node, col = neighbour
    val = torch.ones(idx.shape[1])
    if aggr == "mean":
        deg = torch.bincount(idx[0], minlength=n).float()
        val = val / deg[idx[0]]
    return torch.sparse_coo_tensor(idx, val, (n, n), check_invariants=True).coalesce()


class ModalityGCN(nn.Module):
    """One modality's graph: user preferences + mapped item features, ``n_layers`` of
    aggregation (Eq. 1-2) and combination (Eq. 5) with the shared ID embedding."""

    def __init__(self, n_users: int, d_feat: int, d_lat: int, d: int, n_layers: int, concat: bool, has_id: bool):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.concat, self.has_id = concat, has_id
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, d_lat)))
        self.feature_map = nn.Linear(d_feat, d_lat)
        dims = [d_lat] + [d] * (n_layers - 1)
        self.conv = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(k, k))) for k in dims)
        self.linear = nn.ModuleList(nn.Linear(k, d) for k in dims)
        self.combine = nn.ModuleList(nn.Linear(k + d if concat else k, d) for k in dims)
        for lin in self.linear:
            nn.init.xavier_normal_(lin.weight)
        nn.init.xavier_normal_(self.combine[0].weight)  # later combination layers keep PyTorch's init (reference)

    def forward(self, features: torch.Tensor, adj: torch.Tensor, id_embedding: torch.Tensor) -> torch.Tensor:
        # features (n_items, d_feat); adj sparse (N, N); id_embedding (N, d) -> (N, d)
        x = F.normalize(torch.cat([self.preference, self.feature_map(features)]), dim=-1)  # (N, d_lat)
        for w, lin, comb in zip(self.conv, self.linear, self.combine):
            h = F.leaky_relu(torch.sparse.mm(adj, x @ w))  # (N, d_in): neighbour aggregation
            x_hat = F.leaky_relu(lin(x))  # (N, d)
            if self.has_id:
                x_hat = x_hat + id_embedding
            x = F.leaky_relu(comb(torch.cat([h, x_hat], dim=-1))) if self.concat else F.leaky_relu(comb(h) + x_hat)
        return x  # (N, d)


class MMGCN(SequentialRecommender):
    Config = MMGCNConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Wei et al., ACM MM 2019"

    def __init__(self, config: MMGCNConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}; got {c.modality!r}")
        if c.loss not in ("ce", "bpr"):
            raise ValueError(f"loss must be 'ce' or 'bpr', got {c.loss!r}")
        self.n_users = dataset.n_users
        users, items = training_graph(dataset)
        adj = bipartite_adjacency(users, items, self.n_users, self.n_items, c.aggr)
        self.register_buffer("adj", adj, persistent=False)
        # sorted keys user * n_items + item of the training pairs (BPR negative rejection)
        self.register_buffer("train_keys", torch.from_numpy(np.unique(users * self.n_items + items)), persistent=False)

        feats = dataset.features()
        names = ["text", "visual"] if c.modality == "both" else [c.modality]
        self.modalities = names
        for name in names:
            f = getattr(feats, name).detach().float()
            if f.shape[0] != self.n_items:
                raise ValueError(f"{name} features have {f.shape[0]} rows, expected n_items={self.n_items}")
            self.register_buffer(f"{name}_features", f.clone(), persistent=False)
        self.gcn = nn.ModuleDict({
            name: ModalityGCN(self.n_users, getattr(self, f"{name}_features").shape[1], c.feature_latent,
                              c.hidden_size, c.n_layers, c.concat, c.has_id)
            for name in names
        })
        n_nodes = self.n_users + self.n_items
        self.id_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_nodes, c.hidden_size)))

    # ------------------------------------------------------------------ propagation
    def _propagate(self) -> torch.Tensor:
        """Node representations ``(n_users + n_items, d)``, summed over modalities."""
        out = 0
        for name in self.modalities:
            out = out + self.gcn[name](getattr(self, f"{name}_features"), self.adj, self.id_embedding)
        return out

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(users (n_users, d), items (n_items, d))`` of one propagation."""
        reps = self._propagate()
        return reps[: self.n_users], reps[self.n_users :]

    def sample_negatives(self, user: torch.Tensor) -> torch.Tensor:
        """One item per user, uniform over ``1..n_items-1`` minus the user's training items."""
        neg = torch.randint(1, self.n_items, user.shape, device=user.device)
        for _ in range(NEG_ROUNDS):
            hit = torch.isin(user * self.n_items + neg, self.train_keys)
            if not hit.any():
                break
            neg = torch.where(hit, torch.randint(1, self.n_items, user.shape, device=user.device), neg)
        return neg

    # ------------------------------------------------------------------ contract
    def item_representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()  # users and items of one propagation, once per step or evaluation pass

    def forward(self, batch: dict[str, torch.Tensor], nodes: tuple[torch.Tensor, torch.Tensor]) -> Output:
        """``u*`` of the batch's users ``(B, d)``; in training also the ID embeddings the L2 term reads."""
        user = batch["user"]
        u = nodes[0][user]  # (B, d)
        if not self.training:
            return Output(u)
        id_u = self.id_embedding[user]
        return Output(u, {"id_u": id_u, "id_items": [self.id_embedding[self.n_users + batch["target"]]]})

    def score(self, h: torch.Tensor, nodes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return h @ nodes[1].T  # (B, n_items)

    def score_operands(self, h: torch.Tensor, nodes: tuple[torch.Tensor, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        return h, nodes[1]

    def rec_loss(self, out: Output, nodes, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.loss == "ce":
            return super().rec_loss(out, nodes, batch)
        items, pos = nodes[1], batch["target"]
        neg = self.sample_negatives(batch["user"])
        diff = (out.h * items[pos]).sum(-1) - (out.h * items[neg]).sum(-1)  # (B,)
        if "id_items" in out.parts:
            out.parts["id_items"].append(self.id_embedding[self.n_users + neg])
        return -F.logsigmoid(diff).mean()

    def auxiliary_losses(self, out: Output, nodes, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The reference's L2 term on the batch's ID embeddings and the preference vectors."""
        if "id_u" not in out.parts:
            return {}
        reg_emb = (out.parts["id_u"].pow(2) + sum(e.pow(2) for e in out.parts["id_items"])).mean()
        reg_pref = sum(self.gcn[m].preference.pow(2).mean() for m in self.modalities)
        return {"reg": self.config.reg_weight * (reg_emb + reg_pref)}

    def export_parts(self, out: Output, nodes, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The user's node representation ``u*`` and the target item's ``i*``, both ``(B, d)``."""
        return {"user": out.h, "target_item": nodes[1][batch["target"]]}


