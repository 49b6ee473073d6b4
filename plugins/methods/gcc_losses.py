"""The building blocks of GCC (Generator-discriminator Cooperative Compression, Li et al.,
NeurIPS 2021), as plain functions and modules, following the public SJLeo/GCC code
(``models/Pix2Pix.py``, ``models/CycleGAN.py``, ``models/SAGAN.py``,
``models/DifferentiableOp.py``, ``train.py``).

**Sparsity** (pre-training before pruning). After the generator's backward pass GCC adds
``λ·sign(p)`` to the gradient of every norm scale (``lambda_scale`` 1e-2: U-Net and SAGAN) or of
every conv / transposed-conv weight (``lambda_weight`` 1e-3: the CycleGAN Mobile ResNet, with
some layers weighted ×2 and one ×1000, :data:`GCC_CYCLEGAN_SPARSITY_MULTIPLIERS`). That is the
subgradient of λ·Σ|p| (torch's ``abs`` also has gradient 0 at 0), so the *update* equals that of
an L1 loss term; it is kept as a gradient operation (:func:`add_sparsity_grad`) rather than a
loss term because (1) it acts on parameters, not on tensors of the forward pass: no autograd
graph over the scales, nothing to detach; (2) it must bypass whatever the engine does to the
loss — AMP loss scaling (call it on *unscaled* gradients, after ``GradScaler.unscale_``),
accumulation averaging, per-term weights — and land with exactly λ on every step, as in GCC;
(3) it is not part of the logged objective in GCC either.

**Distillation**: content (feature) and style (Gram) distances between the student's taps and
the online teacher's, each student generator tap passed through a 1×1 adapter without bias to
the teacher's width (PyTorch's default init: GCC does not re-initialise them), plus two features
of the *teacher's* discriminator evaluated on the student's image vs the teacher's (no
adapter). Grams are F·Fᵀ/(C·H·W) (the same as OMGD's). pix2pix and SAGAN sum the **square
roots** of the MSEs; CycleGAN sums the plain MSEs. Teacher features are detached.

**Discriminator selection**: the student's discriminator gets a learnable gate per channel
(``alpha``, initialised to 1) after chosen layers; the forward multiplies by the hard step
``(sign(alpha − threshold) + 1) / 2`` (0 or 1; exactly 0.5 when alpha equals the threshold, as
GCC computes it) and the backward passes the gradient to alpha unchanged (straight-through).
The gates are updated on a held-out batch each iteration with their own Adam (lr 1e-4) while the
D weights are frozen, alphas clipped to [0, 1] before each step, minimising
:func:`gate_objective`: ``| gap_S − EMA(gap_T) | + w_D · (L_D_real + L_D_fake)`` where
``gap = | L_G(fake) − L_D_fake(fake) |`` (the generator's adversarial loss and the
discriminator's fake loss on the same fakes) and w_D = 0.5 (pix2pix, CycleGAN) or 1 (SAGAN).
The GAN criteria are reused from :mod:`vemkit_plugins.methods.omgd_losses` (hinge, LSGAN,
vanilla; GCC's hinge is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from vemkit_plugins.methods.omgd_losses import GANMode, gan_loss, gram

__all__ = [
    "GCC_CYCLEGAN_SPARSITY_MULTIPLIERS",
    "ChannelGate",
    "GapEMA",
    "GatedDiscriminator",
    "add_sparsity_grad",
    "gan_gap",
    "gate_objective",
    "gcc_distill_losses",
    "gcc_ema_beta",
    "gcc_gate_layers",
    "make_gcc_adapter",
    "sparsity_targets",
    "straight_through_step",
]

# -- sparsity -----------------------------------------------------------------------------------

GCC_CYCLEGAN_SPARSITY_MULTIPLIERS: Mapping[str, float] = {
    "model.1": 2.0,
    "model.4": 2.0,
    "model.19": 1000.0,
    "model.22": 2.0,
}
"""GCC's CycleGAN ``heavy_sparsity``: the weight-L1 coefficient is multiplied by 2 on the stem
conv (``model.1``), the first down conv (``model.4``) and the second transposed conv
(``model.22``), and by 1000 on the first transposed conv (``model.19``) of the Mobile ResNet
(same indices in ``mobile_resnet``)."""

SparsityOn = Literal["scale", "weight"]


def _weight_of(module: nn.Module) -> Tensor:
    # A spectral-normalised (parametrised) conv computes ``weight``; its trainable tensor is the
    # original, whose sign equals the normalised weight's (σ > 0).
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def sparsity_targets(net: nn.Module, on: SparsityOn) -> dict[str, Tensor]:
    """The parameters GCC's sparsity term acts on, keyed by module name.

    ``scale``: the weight (γ) of every affine BatchNorm / InstanceNorm (GCC's nets only have
    BatchNorm2d there). ``weight``: the weight of every Conv2d / ConvTranspose2d, depthwise and
    output convs included (GCC's CycleGAN).
    """
    out: dict[str, Tensor] = {}
    for name, module in net.named_modules():
        if on == "scale":
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.affine:
                out[name] = module.weight
        elif on == "weight":
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                out[name] = _weight_of(module)
        else:
            raise ValueError(f"sparsity acts on 'scale' or 'weight', got {on!r}")
    return out


@torch.no_grad()
def add_sparsity_grad(
    net: nn.Module,
    weight: float,
    *,
    on: SparsityOn = "scale",
    multipliers: Mapping[str, float] | None = None,
) -> int:
    """Add ``weight · multipliers.get(name, 1) · sign(p)`` to ``p.grad`` for GCC's targets.

    Call it after ``backward()`` and before the optimizer step (after unscaling under AMP).
    Parameters that do not require grad are skipped; a parameter that got no gradient this step
    gets the sign term alone (what an L1 loss would give it). Returns the number of tensors
    updated. ``multipliers`` names modules as :func:`sparsity_targets` does; an unknown name is
    an error (a typo would silently drop the heavy sparsity).
    """
    targets = sparsity_targets(net, on)
    unknown = sorted(set(multipliers or {}) - set(targets))
    if unknown:
        raise ValueError(
            f"sparsity multipliers name modules that are not {on} targets: {unknown} "
            f"(targets: {sorted(targets)[:8]}{'...' if len(targets) > 8 else ''})"
        )
    count = 0
    for name, p in targets.items():
        if not p.requires_grad:
            continue
        term = (weight * (multipliers or {}).get(name, 1.0)) * torch.sign(p)
        if p.grad is None:
            p.grad = term
        else:
            p.grad.add_(term)
        count += 1
    return count


# -- content and style distillation -------------------------------------------------------------


def make_gcc_adapter(c_in: int, c_out: int) -> nn.Conv2d:
    """GCC's ``transform_convs`` entry: 1×1 conv c_in → c_out without bias, PyTorch's init."""
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False)


def gcc_distill_losses(
    s_feats: Sequence[Tensor],
    t_feats: Sequence[Tensor],
    adapters: Sequence[Callable[[Tensor], Tensor] | None],
    *,
    root: bool = True,
) -> dict[str, Tensor]:
    """``{"content": Σ_i d(A_i(S_i), T_i), "gram": Σ_i d(Gram(A_i(S_i)), Gram(T_i))}``.

    d = √MSE (``root=True``: pix2pix, SAGAN) or MSE (``root=False``: CycleGAN), each MSE the mean
    over the whole tensor. ``adapters[i]`` is None for the teacher-discriminator features (GCC
    adapts only the generator taps). Multiply by λ_content / λ_gram (GCC: Cityscapes 50 / 1e4,
    horse→zebra 0.01 / 10, SAGAN 1 / 1). Teacher features are detached.
    """
    if not (len(s_feats) == len(t_feats) == len(adapters)) or not s_feats:
        raise ValueError(
            "gcc_distill_losses needs one adapter (or None) per (student, teacher) feature "
            f"pair, got {len(s_feats)} student, {len(t_feats)} teacher features and "
            f"{len(adapters)} adapters"
        )

    def distance(a: Tensor, b: Tensor) -> Tensor:
        mse = F.mse_loss(a, b)
        return mse.sqrt() if root else mse

    content = s_feats[0].new_zeros(())
    style = s_feats[0].new_zeros(())
    for i, (s, t, adapter) in enumerate(zip(s_feats, t_feats, adapters, strict=True)):
        source = s if adapter is None else adapter(s)
        target = t.detach()
        if source.shape != target.shape:
            raise ValueError(
                f"GCC distillation feature {i}: student {tuple(source.shape)}"
                f"{' after its adapter' if adapter is not None else ''} vs teacher "
                f"{tuple(target.shape)}"
            )
        content = content + distance(source, target)
        style = style + distance(gram(source), gram(target))
    return {"content": content, "gram": style}


# -- discriminator channel gates ----------------------------------------------------------------


class _StraightThroughStep(torch.autograd.Function):
    """Forward ``(sign(alpha − threshold) + 1) / 2``; backward the identity to ``alpha``."""

    @staticmethod
    def forward(ctx: Any, alpha: Tensor, threshold: float) -> Tensor:
        return (torch.sign(alpha - threshold) + 1) / 2

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def straight_through_step(alpha: Tensor, threshold: float = 0.5) -> Tensor:
    """GCC's ``Mask``: 1 where alpha > threshold, 0 where below, 0.5 on equality; the gradient
    passes to ``alpha`` unchanged."""
    return _StraightThroughStep.apply(alpha, threshold)


class ChannelGate(nn.Module):
    """GCC's ``DifferentiableOP``: multiplies channel c of an (N, C, ...) tensor by the hard
    gate of ``alpha[c]`` (initialised to 1, so every channel starts open)."""

    def __init__(self, channels: int, threshold: float = 0.5) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.threshold = float(threshold)

    def forward(self, x: Tensor) -> Tensor:
        mask = straight_through_step(self.alpha, self.threshold)
        return x * mask.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def mask(self) -> Tensor:
        """The current hard gate per channel (GCC's ``get_current_mask``)."""
        return (torch.sign(self.alpha - self.threshold) + 1) / 2

    @torch.no_grad()
    def clip_(self) -> None:
        """Clamp alpha to [0, 1] (GCC's ``clip_alpha``, called before every gate step)."""
        self.alpha.clamp_(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"{self.alpha.numel()}, threshold={self.threshold}"


class _GateHook:
    # A callable object (not a closure), so that copy.deepcopy of the wrapper re-binds the hook
    # to the copied gate.
    def __init__(self, gate: ChannelGate) -> None:
        self.gate = gate

    def __call__(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        return self.gate(output)


def _channels_at(net: nn.Module, name: str) -> int:
    """Channels of the tensor a gate at module ``name`` multiplies: a conv's outputs, a norm's
    features, or (activation, dropout, ...) those of the nearest conv / norm before it in the
    same ``nn.Sequential``."""
    modules = dict(net.named_modules())
    if name not in modules:
        raise ValueError(f"cannot gate {name!r}: no such module in {type(net).__name__}")

    def width(module: nn.Module) -> int | None:
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            return module.out_channels
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return module.num_features
        return None

    found = width(modules[name])
    if found is not None:
        return found
    parent_name, _, child = name.rpartition(".")
    parent = modules[parent_name] if parent_name else net
    if isinstance(parent, nn.Sequential):
        children = list(parent.named_children())
        index = [n for n, _ in children].index(child)
        for _, sibling in reversed(children[:index]):
            found = width(sibling)
            if found is not None:
                return found
    raise ValueError(
        f"cannot gate {name!r} ({type(modules[name]).__name__}): no conv or norm before it in "
        "its nn.Sequential to give the channel count"
    )


def gcc_gate_layers(net: nn.Module) -> list[str]:
    """Where GCC puts the gates in a discriminator: one per conv of the main path except the
    last (the logit conv), after that conv's norm when one follows it.

    "Main path" = convs that are direct children of an ``nn.Sequential`` (attention 1×1 convs
    are not). PatchGAN (GCC's ``MaskNLayerDiscriminator``): after the first conv's LeakyReLU
    (``model.1``), then after each norm (``model.3, model.6, model.9`` for n_layers 3); SAGAN
    (``MaskDiscriminator``): between each spectral-normalised conv and its LeakyReLU
    (``l1.0 … l4.0``). Before or after a LeakyReLU gives the same forward (it commutes with a
    0, 0.5 or 1 channel factor) and the same gradient to an *open* gate, but not to a closed
    one (Σ g·LeakyReLU(x) after the activation, 0.2·Σ g·x before it), so GCC's placement is
    kept exactly.
    """
    from vemkit_plugins.archs.patchgan import PatchGAN

    points: list[str] = []
    for parent_name, parent in net.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        prefix = f"{parent_name}." if parent_name else ""
        children = list(parent.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, nn.Conv2d | nn.ConvTranspose2d):
                continue
            name = f"{prefix}{child_name}"
            nxt = children[i + 1] if i + 1 < len(children) else None
            if nxt is not None and isinstance(nxt[1], nn.modules.batchnorm._NormBase):
                name = f"{prefix}{nxt[0]}"
            elif nxt is not None and isinstance(net, PatchGAN) and not points:
                name = f"{prefix}{nxt[0]}"  # GCC: [conv, LeakyReLU, gate] for the first layer
            points.append(name)
    if not points:
        raise ValueError(f"no conv to gate in {type(net).__name__}")
    return points[:-1]


class GatedDiscriminator(nn.Module):
    """A discriminator with GCC's channel gates on the outputs of ``layers``.

    ``net`` keeps its own module names and state-dict keys under ``net.``; the gates live in
    ``gates`` (``gates.0.alpha``, ... in the order of ``layers``) and act through forward hooks,
    so a feature tap on a gated layer sees the gated tensor. ``layers`` None = GCC's placement
    (:func:`gcc_gate_layers`). ``threshold``: GCC's default 0.5 (its pix2pix and CycleGAN
    scripts); its SAGAN script passes ``--threshold 0.1``. GCC trains the D weights with the
    D's optimizer while the gates are frozen, and the gates with their own optimizer while the
    weights are frozen: :meth:`weight_parameters` / :meth:`gate_parameters` split them.
    """

    def __init__(
        self, net: nn.Module, layers: Sequence[str] | None = None, threshold: float = 0.5
    ) -> None:
        super().__init__()
        self.net = net
        self.layers = tuple(gcc_gate_layers(net) if layers is None else layers)
        modules = dict(net.named_modules())
        self.gates = nn.ModuleList()
        for name in self.layers:
            gate = ChannelGate(_channels_at(net, name), threshold)
            self.gates.append(gate)
            modules[name].register_forward_hook(_GateHook(gate))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, **kwargs)

    def gate_parameters(self) -> list[nn.Parameter]:
        """The alphas (GCC's ``arch_params``, Adam lr 1e-4)."""
        return [g.alpha for g in self.gates]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the wrapped discriminator (the D optimizer's)."""
        return list(self.net.parameters())

    @torch.no_grad()
    def clip_gates_(self) -> None:
        """Clamp every alpha to [0, 1] (GCC: before each gate update)."""
        for gate in self.gates:
            gate.clip_()

    def masks(self) -> dict[str, Tensor]:
        """The hard gates per gated layer."""
        return {name: gate.mask() for name, gate in zip(self.layers, self.gates, strict=True)}

    def sparsity(self) -> dict[str, float]:
        """Fraction of closed channels per gated layer (GCC's ``print_sparse_info``)."""
        return {name: float((m == 0).float().mean()) for name, m in self.masks().items()}


# -- the gate objective -------------------------------------------------------------------------


def gan_gap(fake_logits: Any, mode: GANMode) -> Tensor:
    """GCC's ``get_D_arch_diff``: ``| L_G(fake) − L_D_fake(fake) |`` on one batch of fakes —
    the generator's adversarial loss against the discriminator's loss on the same fakes."""
    g = gan_loss(fake_logits, True, mode, for_discriminator=False)
    d_fake = gan_loss(fake_logits, False, mode, for_discriminator=True)
    return (g - d_fake).abs()


def gate_objective(
    fake_logits: Any,
    real_logits: Any,
    teacher_gap: Tensor | float,
    mode: GANMode,
    *,
    d_weight: float = 0.5,
) -> dict[str, Tensor]:
    """GCC's gate loss (``backward_D_arch``) for the *student's* gated discriminator.

    ``fake_logits`` = D_S(student image, detached), ``real_logits`` = D_S(real); ``teacher_gap``
    = the EMA of the teacher's :func:`gan_gap` on the same held-out batch (no gradient).
    Returns ``{"gap": |gap_S − teacher_gap|, "d": d_weight·(L_D_real + L_D_fake), "total",
    "student_gap"}``; minimise ``total`` over the gates only. ``d_weight``: 0.5 pix2pix and
    CycleGAN, 1.0 SAGAN (its D loss has no ½).
    """
    student_gap = gan_gap(fake_logits, mode)
    target = torch.as_tensor(teacher_gap, dtype=student_gap.dtype, device=student_gap.device)
    gap = (student_gap - target.detach()).abs()
    d_real = gan_loss(real_logits, True, mode, for_discriminator=True)
    d_fake = gan_loss(fake_logits, False, mode, for_discriminator=True)
    d = d_weight * (d_real + d_fake)
    return {"gap": gap, "d": d, "total": gap + d, "student_gap": student_gap.detach()}


class GapEMA:
    """GCC's running teacher gap: the first value is taken as is (GCC: while the stored value is
    0), then ``beta · gap + (1 − beta) · previous``. GCC's beta is 1 for the first epoch and
    :func:`gcc_ema_beta` after each epoch, so early on the EMA is the current gap and it
    averages more and more as training ends."""

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, gap: Tensor | float, beta: float) -> float:
        """Fold in this iteration's teacher gap; returns the new average."""
        gap = float(gap)
        if self.value is None or self.value == 0.0:
            self.value = gap
        else:
            self.value = beta * gap + (1.0 - beta) * self.value
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """``{"value": float | None}`` (JSON-safe)."""
        return {"value": self.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        value = state["value"]
        self.value = None if value is None else float(value)


def gcc_ema_beta(epoch: int, total_epochs: int) -> float:
    """GCC's ``adaptive_ema_beta``: after epoch ``epoch`` (1-based) of ``total_epochs``
    (n_epochs + n_epochs_decay), beta = 1 − epoch / total_epochs."""
    if total_epochs <= 0 or not 0 <= epoch <= total_epochs:
        raise ValueError(f"epoch {epoch} of {total_epochs}: need 0 <= epoch <= total_epochs > 0")
    return 1.0 - epoch / total_epochs
