"""IISAN and IISAN-Versa: decoupled side adapter networks over cached layer-wise states.

Paper (IISAN): J. Fu, X. Ge, X. Xin, A. Karatzoglou, I. Arapakis, J. Wang, J. M. Jose,
*IISAN: Efficiently Adapting Multimodal Representation for Sequential Recommendation with
Decoupled PEFT*, SIGIR 2024, pp. 687-697 (arXiv:2404.02059).
Paper (IISAN-Versa): J. Fu, X. Ge, X. Xin, A. Karatzoglou, I. Arapakis, K. Zheng, Y. Ni,
J. M. Jose, *Efficient and Effective Adaptation of Multimodal Foundation Models in Sequential
Recommendation*, IEEE TKDE 2025 (arXiv:2411.02992).
Reference code: GAIR-Lab/IISAN (GitHub), read for this file:
``Code_Cached/model/model.py`` (``IISANAdaptedMModel``, ``ModelMM``), ``Code_Cached/model/
modules.py`` (``AdapterBlock``, the SASRec-style ``TransformerEncoder``),
``Code_Cached/model/encoders.py`` (``User_Encoder``), ``Code_Cached/parameters.py``,
``Code_Cached/scripts/run_IISAN.py`` and ``Code_Cached/preprocess_vectors.py`` (the cached
per-layer ``[CLS]`` states) for IISAN; ``Code_Cached_Asym/model/model.py``,
``Code_Cached_Asym/parameters.py``, ``Code_Cached_Asym/script/run_IISAN_micro.py`` and
``Code_Cached_Asym/data_utils/dataset.py`` for the asymmetric (IISAN-Versa) variant. The
TKDE abstract (later arXiv versions) points to the same repository; its
``Code_Cached_Asym`` folder is the asymmetric code. Written anew here, not copied.

Inputs (:mod:`mealrec.data.layerwise`, the paper's caching strategy): frozen layer-wise
states ``H^t (n_items, S_t, d_t)`` of the text encoder and ``H^v (n_items, S_v, d_v)`` of the
visual encoder; by default MiniLM's 7 mean-pooled title states (``d_t`` 384) and the
global visual vector as one final layer (``d_v`` 768). Only the adapters, the fusion and
the user encoder are trained; nothing back-propagates into a foundation model.

Architecture (per item; all items are encoded at once, so the full softmax sees every item):

1. **Layer selection.** Hidden-state indices ``l^t_1..l^t_{N_t}`` and ``l^v_1..l^v_{N_v}``
   (index 0 = embedding output; the reference keeps it as the first block's input,
   ``remove_first=None``). IISAN: every ``layer_stride``-th layer ending at the last
   (the reference's ``1,3,5,7,9,11`` of 12 layers, i.e. ``[0,2,...,12]``; MiniLM:
   ``[0,2,4,6]``). IISAN-Versa: **group layer-dropping**, per modality: the ``L`` layers are
   cut into ``G`` consecutive groups and the last layer of each group is kept.
2. **Intra-modal SANs** (one per modality), block ``k`` with a scalar gate
   ``g = sigmoid(w_k / 0.1)`` (``w_k`` starts at 0):
   ``u_k = g * H[l_k] + (1 - g) * s_{k-1}``, ``s_k = A_k(u_k)``, ``s_0 = 0``,
   where ``A(x) = x + W_up ReLU(W_down x + b_down) + b_up`` (``AdapterBlock``; weights
   N(0, 0.01), zero biases, bottleneck ``*_adapter_down``).
3. **Inter-modal SAN** over paired blocks: ``m_k = A^m_k(m_{k-1} + g * P^v_k H^v[l^v_k] +
   (1 - g) * P^t_k H^t[l^t_k])``, ``m_0 = 0``. **Dimension alignment** (IISAN-Versa):
   ``P_k`` is a learnable ``Linear(d, d_m)`` on the modality whose width is not ``d_m``
   (the other is the identity); ``d_m`` is the narrower width by default, as the reference.
4. **Pairing.** IISAN is symmetric: both modalities run the same number of blocks ``N``, all
   paired; a modality with fewer selected states has its list stretched by repetition
   (here: the single visual state is re-fed at every block). IISAN-Versa (reference
   ``Code_Cached_Asym``): the deeper modality first runs ``|N_t - N_v|`` intra-only blocks,
   then ``min(N_t, N_v)`` paired blocks run both intra-modal SANs and the inter-modal SAN.
5. **Item representation** ``e = W_c [e^v; e^t; e^m]`` with ``e^t = W'_t (W_t s^t_N)``,
   ``e^v = W'_v (W_v s^v_N)``, ``e^m = W'_m (W_mm m)`` (``fc_*`` then ``*_pre_fc`` /
   ``fc_mm_down``; ``com_dense`` over the concatenation, ``modality=intra_inter``).
   The padding item's row is zero.
6. **User encoder**: SASRec (the library's Transformer: item representations along the
   sequence + learned positions -> LayerNorm -> dropout -> causal Transformer), state at
   the last real position ``h``. Score ``<h, e_j>``; loss = softmax cross-entropy over all
   ``n_items`` (padding column included in training, excluded in evaluation, as SASRec).

Defaults: SASRec encoder at the MealRec paper's backbone size (hidden 64, 2 layers, 2 heads,
inner 256, dropout 0.5 as ``sasrec.yaml``); adapters: bottleneck 64 (``run_IISAN.py``:
``cv/bert_adapter_down_size = em_dim = 64``); IISAN-Versa: visual bottleneck 512, text 64
(``run_IISAN_micro.py``, the MicroLens script); gate temperature 0.1.

Departures from the reference:

* **Cached states**: text states are MiniLM-L6 (6 layers, 384-d) mean-pooled over tokens,
  not BERT-base/large ``[CLS]`` per layer; the visual "encoder" exposes one final layer
  (the library's global visual vector: placeholders for MicroLens, generated vectors for
  the synthetic sets) instead of ViT's 13 ``[CLS]`` states. Real per-layer features can be
  supplied with ``visual_layers_path`` / ``text_layers_path`` (``.npy``,
  ``(n_items, n_layers, d)``). When the dataset's text features are the ``hashed`` fallback
  (or there are no titles) the final text feature is used as a single layer.
* **IISAN on asymmetric inputs**: the SIGIR'24 model assumes two encoders of equal width and
  depth. Here the widths differ (384 vs 768), so IISAN uses the same per-block alignment
  projection as IISAN-Versa (otherwise its inter-modal SAN cannot add the two states), and
  the shorter layer list is stretched by repetition. With equal widths and depths (user
  files) IISAN is the reference's symmetric model (no projection, no repetition).
* **Group layer-dropping** keeps the *last* layer of each group (the reference passes
  hand-written lists, e.g. ``1,3,...,11`` of 12 (the last of each pair) or ``1,7,...,31`` of
  32); explicit ``text_layers`` / ``visual_layers`` lists override the derived ones.
* **Loss**: full softmax cross-entropy over all items (the library's loss for every
  model). The reference trains with in-batch cross-entropy over the batch's items with a
  log-popularity correction (``logits - log pop``) and masks the user's own history items;
  that correction exists for sampled negatives and is not needed when every item is scored.
  Evaluation is the library's full ranking.
* **User encoder**: the library's SASRec (post-LN, GELU, LayerNorm eps 1e-12, N(0, 0.02)
  init, biased projections, dropout 0.5) instead of the reference's own (ReLU feed-forward,
  eps 1e-6, xavier init, bias-free attention projections, dropout 0.1); max length 10 is
  the same. One learning rate (``train.lr``) for all parameters instead of the reference's
  groups (lr 2e-4 for the recommender, 1e-4 for the adapters).
* Output heads follow ``Code_Cached_Asym`` (``fc_*: d -> hidden`` then ``*_pre_fc: hidden ->
  hidden``) rather than ``Code_Cached`` (``fc_*: 768 -> 768`` then the ViT classifier /
  BERT ``fc`` ``768 -> hidden``); both are two linear maps without a non-linearity.
* ``AdapterBlock``'s dropout is created but never applied in the reference; it is omitted.
  Linear layers other than the adapters keep PyTorch's default initialisation, as there.
* The cached states are non-persistent float32 buffers (rebuilt from the dataset and the
  disk cache, not stored in checkpoints); only the selected layers are kept in memory.
* Cost: the item tower runs over all items at every training step (the full softmax needs
  them); the paper's IISAN/IISAN-Versa cost (Table 3 of MealRec) includes foundation
  models, which here are replaced by the cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.layerwise import text_layers as load_text_layers
from ..data.layerwise import visual_layers as load_visual_layers
from ..utils import MealRecError
from .base import SequentialRecommender
from .sasrec import SASRecConfig
from .layers import SequenceEncoder, init_weights

ALIGN_CHOICES = ("narrower", "text", "visual")


@dataclass
class SideAdapterConfig(SASRecConfig):
    """Settings shared by IISAN and IISAN-Versa: the SASRec user encoder's (MealRec paper's backbone
    size, sasrec.yaml), then the side adapter networks'."""

    # side adapter networks
    text_adapter_down: int = 64  # bottleneck of the text SAN's adapters (bert_adapter_down_size)
    visual_adapter_down: int = 64  # bottleneck of the visual SAN's adapters (cv_adapter_down_size)
    gate_temperature: float = 0.1  # gate = sigmoid(w / temperature)
    keep_embedding: bool = True  # hidden state 0 (embedding output) is the first block's input
    text_layers: list[int] = field(default_factory=list)  # explicit hidden-state indices; [] = derived
    visual_layers: list[int] = field(default_factory=list)
    align_to: str = "narrower"  # width of the inter-modal SAN: narrower | text | visual
    # cached layer-wise states supplied by the user (.npy, (n_items, n_layers, d)); "" = library's
    text_layers_path: str = ""
    visual_layers_path: str = ""


@dataclass
class IISANConfig(SideAdapterConfig):
    layer_stride: int = 2  # keep every stride-th layer, ending at the last (reference 1,3,5,7,9,11)


@dataclass
class IISANVersaConfig(SideAdapterConfig):
    visual_adapter_down: int = 512  # run_IISAN_micro.py: cv_adapter_down_size = 512
    text_groups: int = 3  # group layer-dropping: MiniLM's 6 layers in 3 groups -> layers 2, 4, 6
    visual_groups: int = 6  # a 12-layer ViT in 6 groups -> 2, 4, ..., 12 (reference); 1 state -> [0]


# --------------------------------------------------------------------------- layer selection
def stride_layers(n_states: int, stride: int, keep_embedding: bool = True) -> list[int]:
    """Every ``stride``-th layer ending at the last, of ``n_states`` hidden states (0 = embedding
    output). One state only -> ``[0]``. ``n_states=13, stride=2`` -> ``[0, 2, 4, ..., 12]``."""
    if stride < 1:
        raise MealRecError(f"layer_stride must be >= 1, got {stride}")
    if n_states <= 1:
        return [0]
    kept = sorted(range(n_states - 1, 0, -stride))
    return ([0] if keep_embedding else []) + kept


def group_layers(n_states: int, groups: int, keep_embedding: bool = True) -> list[int]:
    """Group layer-dropping: layers ``1..L`` (``L = n_states - 1``) cut into ``groups`` consecutive,
    near-equal groups; the last layer of each is kept. ``groups <= 0`` or ``>= L`` keeps every
    layer. One state only -> ``[0]``."""
    if n_states <= 1:
        return [0]
    L = n_states - 1
    G = L if groups <= 0 else min(groups, L)
    kept = [(2 * (g + 1) * L + G) // (2 * G) for g in range(G)]  # round((g+1) L / G), half up
    return ([0] if keep_embedding else []) + kept


def stretch(indices: list[int], n: int) -> list[int]:
    """Evenly spaced picks (with repetition) from ``indices`` to length ``n`` (first and last kept)."""
    m = len(indices)
    if n == m:
        return list(indices)
    if n == 1:
        return [indices[-1]]
    return [indices[(2 * i * (m - 1) + (n - 1)) // (2 * (n - 1))] for i in range(n)]


def _check_indices(indices: list[int], n_states: int, what: str) -> list[int]:
    if not indices:
        raise MealRecError(f"{what}: no hidden-state index selected")
    bad = [i for i in indices if not 0 <= i < n_states]
    if bad:
        raise MealRecError(f"{what}: indices {bad} outside 0..{n_states - 1} (the cached states have {n_states})")
    return list(indices)


# --------------------------------------------------------------------------- modules
class AdapterBlock(nn.Module):
    """Bottleneck adapter with a residual: ``x + W_up ReLU(W_down x)`` (weights N(0, 0.01), zero biases)."""

    def __init__(self, width: int, down: int):
        super().__init__()
        if down < 1:
            raise MealRecError(f"adapter bottleneck must be >= 1, got {down}")
        self.down = nn.Linear(width, down)
        self.up = nn.Linear(down, width)
        for lin in (self.down, self.up):
            nn.init.normal_(lin.weight, std=1e-2)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(x))) + x  # (N, width)


class SideAdapterRecommender(SequentialRecommender):
    """Shared machinery of IISAN and IISAN-Versa; subclasses choose the layers and the pairing."""

    one_off_inputs = True  # built once and cached (see SequentialRecommender.one_off_inputs)

    Config = SideAdapterConfig
    #: whether the deeper modality's extra blocks run intra-only (Versa) or the lists are stretched (IISAN)
    asymmetric: bool = False

    def __init__(self, config: SideAdapterConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.align_to not in ALIGN_CHOICES:
            raise MealRecError(f"align_to must be one of {ALIGN_CHOICES}, got {c.align_to!r}")
        if c.gate_temperature <= 0:
            raise MealRecError(f"gate_temperature must be > 0, got {c.gate_temperature}")
        text, t_info = load_text_layers(dataset, c.text_layers_path or None)  # (n_items, S_t, d_t)
        vis, v_info = load_visual_layers(dataset, c.visual_layers_path or None)  # (n_items, S_v, d_v)
        for name, x in (("text", text), ("visual", vis)):
            if x.dim() != 3 or x.shape[0] != self.n_items:
                raise MealRecError(
                    f"{name} layer-wise states must be (n_items={self.n_items}, S, d), got {tuple(x.shape)}"
                )
        t_idx, v_idx = self.select_layers(text.shape[1], vis.shape[1])
        t_idx = _check_indices(t_idx, text.shape[1], "text layers")
        v_idx = _check_indices(v_idx, vis.shape[1], "visual layers")
        if not self.asymmetric:  # IISAN: both SANs run the same number of (paired) blocks
            n = max(len(t_idx), len(v_idx))
            t_idx, v_idx = stretch(t_idx, n), stretch(v_idx, n)
        self.text_idx, self.visual_idx = t_idx, v_idx
        n_t, n_v = len(t_idx), len(v_idx)
        self.lead_text, self.lead_visual = max(0, n_t - n_v), max(0, n_v - n_t)
        self.n_pairs = min(n_t, n_v)
        self.layerwise_info: dict[str, Any] = {
            **t_info, **v_info, "text_layer_indices": t_idx, "visual_layer_indices": v_idx,
            "intra_only_blocks": {"text": self.lead_text, "visual": self.lead_visual}, "paired_blocks": self.n_pairs,
        }

        # keep only the selected states (float32, frozen, not in the state dict)
        t_keep, v_keep = sorted(set(t_idx)), sorted(set(v_idx))
        self._t_pos = [t_keep.index(i) for i in t_idx]
        self._v_pos = [v_keep.index(i) for i in v_idx]
        self.register_buffer("text_states", text[:, t_keep].contiguous(), persistent=False)  # (n_items, |t_keep|, d_t)
        self.register_buffer("visual_states", vis[:, v_keep].contiguous(), persistent=False)  # (n_items, |v_keep|, d_v)
        d_t, d_v, h = text.shape[-1], vis.shape[-1], c.hidden_size
        d_m = {"narrower": min(d_t, d_v), "text": d_t, "visual": d_v}[c.align_to]
        m_down = c.text_adapter_down if d_m == d_t else c.visual_adapter_down  # reference: the narrower side's size
        self.d_text, self.d_visual, self.d_mm = d_t, d_v, d_m

        # --- user encoder (SASRec), initialised as the library's SASRec
        self.seq = SequenceEncoder.of(c, self.max_len)
        self.apply(lambda m: init_weights(m, c.initializer_range))

        # --- side adapter networks (created after init_weights: reference initialisation)
        self.text_adapters = nn.ModuleList(AdapterBlock(d_t, c.text_adapter_down) for _ in range(n_t))
        self.visual_adapters = nn.ModuleList(AdapterBlock(d_v, c.visual_adapter_down) for _ in range(n_v))
        self.mm_adapters = nn.ModuleList(AdapterBlock(d_m, m_down) for _ in range(self.n_pairs))
        self.text_gates = nn.Parameter(torch.zeros(n_t))
        self.visual_gates = nn.Parameter(torch.zeros(n_v))
        self.mm_gates = nn.Parameter(torch.zeros(self.n_pairs))
        # dimension alignment for the inter-modal SAN (identity where the width is already d_m)
        self.align_text = nn.ModuleList(nn.Linear(d_t, d_m) for _ in range(self.n_pairs)) if d_t != d_m else None
        self.align_visual = nn.ModuleList(nn.Linear(d_v, d_m) for _ in range(self.n_pairs)) if d_v != d_m else None
        # output heads and fusion
        self.fc_text, self.pre_fc_text = nn.Linear(d_t, h), nn.Linear(h, h)
        self.fc_visual, self.pre_fc_visual = nn.Linear(d_v, h), nn.Linear(h, h)
        self.fc_mm, self.fc_mm_down = nn.Linear(d_m, d_m), nn.Linear(d_m, h)
        self.com_dense = nn.Linear(3 * h, h)
        item_mask = torch.ones(self.n_items, 1)
        item_mask[0] = 0.0
        self.register_buffer("item_mask", item_mask, persistent=False)  # zero row for the padding item

    # ------------------------------------------------------------------ layer selection hook
    def select_layers(self, n_text: int, n_visual: int) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    # ------------------------------------------------------------------ item tower
    def _gate(self, w: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(w / self.config.gate_temperature)

    def side_networks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the three SANs over all items: final states ``s^t (n, d_t)``, ``s^v (n, d_v)``, ``m (n, d_m)``."""
        T, V = self.text_states, self.visual_states  # (n, *, d_t), (n, *, d_v)
        n = T.shape[0]
        s_t = T.new_zeros(n, self.d_text)
        s_v = V.new_zeros(n, self.d_visual)
        m = T.new_zeros(n, self.d_mm)

        def text_block(k: int, s: torch.Tensor) -> torch.Tensor:
            g = self._gate(self.text_gates[k])
            return self.text_adapters[k](g * T[:, self._t_pos[k]] + (1 - g) * s)

        def visual_block(k: int, s: torch.Tensor) -> torch.Tensor:
            g = self._gate(self.visual_gates[k])
            return self.visual_adapters[k](g * V[:, self._v_pos[k]] + (1 - g) * s)

        for k in range(self.lead_text):  # intra-only blocks of the deeper modality (Versa)
            s_t = text_block(k, s_t)
        for k in range(self.lead_visual):
            s_v = visual_block(k, s_v)
        for p in range(self.n_pairs):
            kt, kv = self.lead_text + p, self.lead_visual + p
            s_t = text_block(kt, s_t)
            s_v = visual_block(kv, s_v)
            x_t = T[:, self._t_pos[kt]]  # (n, d_t)
            x_v = V[:, self._v_pos[kv]]  # (n, d_v)
            if self.align_text is not None:
                x_t = self.align_text[p](x_t)  # (n, d_m)
            if self.align_visual is not None:
                x_v = self.align_visual[p](x_v)  # (n, d_m)
            g = self._gate(self.mm_gates[p])
            m = self.mm_adapters[p](m + g * x_v + (1 - g) * x_t)  # (n, d_m)
        return s_t, s_v, m

    def item_representations(self) -> torch.Tensor:
        s_t, s_v, m = self.side_networks()
        e_t = self.pre_fc_text(self.fc_text(s_t))  # (n, h)
        e_v = self.pre_fc_visual(self.fc_visual(s_v))  # (n, h)
        e_m = self.fc_mm_down(self.fc_mm(m))  # (n, h)
        return self.com_dense(torch.cat([e_v, e_t, e_m], dim=-1)) * self.item_mask  # (n_items, h)

    # ------------------------------------------------------------------ user encoder
    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """User representation ``(B, h)`` over this step's item table ``items (n_items, h)``."""
        return self.seq(F.embedding(batch["item_seq"], items), batch["item_seq"], batch["item_seq_len"])  # (B, h)


class IISAN(SideAdapterRecommender):
    Config = IISANConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Fu et al., SIGIR 2024"
    asymmetric = False

    def select_layers(self, n_text: int, n_visual: int) -> tuple[list[int], list[int]]:
        c = self.config
        t = c.text_layers or stride_layers(n_text, c.layer_stride, c.keep_embedding)
        v = c.visual_layers or stride_layers(n_visual, c.layer_stride, c.keep_embedding)
        return list(t), list(v)


class IISANVersa(SideAdapterRecommender):
    Config = IISANVersaConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Fu et al., TKDE 2025"
    asymmetric = True

    def select_layers(self, n_text: int, n_visual: int) -> tuple[list[int], list[int]]:
        c = self.config
        t = c.text_layers or group_layers(n_text, c.text_groups, c.keep_embedding)
        v = c.visual_layers or group_layers(n_visual, c.visual_groups, c.keep_embedding)
        return list(t), list(v)


__all__ = [
    "IISAN", "IISANConfig", "IISANVersa", "IISANVersaConfig", "AdapterBlock",
    "group_layers", "stride_layers", "stretch",
]
