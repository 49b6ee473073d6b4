"""Options of the built-in baseline methods (torch-free)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from vemkit.options import Options, Slot

NonNegative = Annotated[float, Field(ge=0)]


class KDOptions(Options):
    """Plain output distillation: the student mimics the teacher's output (L1 or MSE), with an
    optional reconstruction loss to the ground truth and an optional GAN loss of its own."""

    distance: Literal["l1", "mse"] = "l1"
    """Distance between student and teacher outputs."""
    weight: NonNegative = 1.0
    """Weight of the output-distillation term ``kd.output``."""
    recon_weight: NonNegative = 0.0
    """Weight of the L1 to the ground truth ``kd.recon`` (paired data only)."""
    gan_weight: NonNegative = 0.0
    """Weight of the student's own GAN loss ``kd.gan``; 0 trains no discriminator."""
    gan_mode: Literal["hinge", "lsgan", "vanilla"] = "hinge"
    """Adversarial loss of the student and its discriminator."""
    discriminator: Annotated[dict[str, Any], Slot("arch")] = {
        "type": "patchgan",
        "ndf": 64,
        "n_layers": 3,
    }
    """Discriminator of the student GAN loss (used only when ``gan_weight`` > 0)."""
    teacher_recon_weight: NonNegative = 100.0
    """Online teacher only: weight of its L1 to the ground truth (pix2pix lambda_L1)."""
