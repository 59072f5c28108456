"""One training step: a discriminator step and a generator step on the same fakes, with the gradient penalties,
LeCam, the class term, augmentation for D and the moving average of G."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan import device as devices
from gan.config import RunConfig
from gan.diffaugment import diff_augment
from gan.losses import LOSSES, PAIRED, gradient_penalty, penalty_weight
from gan.models import class_strength_at, ema_decay_at, set_class_strength, update_ema
from gan.state import TrainingState


def train_step(state: TrainingState, cfg: RunConfig, amp: torch.dtype | None, step: int) -> dict[str, torch.Tensor]:
    """One discriminator step and one generator step on the same fakes, on the state's device; returns its
    statistics by name, as device tensors (read on the host only every --log-every steps)."""
    nets, G, D, t, device = state.nets, state.G, state.D, cfg.train, state.device
    if devices.replays_cuda_graphs(device, t.compile, t.compile_mode):
        torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are no longer read
    d_loss, g_loss = LOSSES[t.loss]
    real, labels = next(state.batches)
    labels = labels if nets.G.num_classes else None  # fakes are drawn for the same classes as the reals
    real = devices.as_layout(real, nets.channels_last)
    all_z = torch.randn(t.batch_size, cfg.model.z_dim, generator=state.noise)  # the whole batch's, as for the reals
    z = devices.upload(all_z[state.batches.rows], device)

    def seen_by_D(images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, state.policy, state.augment_p.p, state.augment_generator, state.ranks.share)

    class_weight = t.class_weight
    if t.class_blend_steps and labels is not None:  # the moving-average G too: grids and evaluations use it
        strength = class_strength_at(step, t.class_blend_steps)
        set_class_strength((nets.G, nets.D, nets.G_ema), strength)
        class_weight *= strength  # a G that cannot see the class yet cannot be asked to show it
    penalty_step = step % t.r1_every == 0
    r1_step, r2_step = t.r1_gamma > 0 and penalty_step, t.r2_gamma > 0 and penalty_step
    class_term = t.class_weight > 0 and cfg.model.conditional == "on"  # per-class networks have no class scores
    real = real.detach().requires_grad_(r1_step)  # gradient penalties need gradients at the images
    with devices.autocast(device, amp):
        fake = G(z, labels)  # (B, C, R, R)
        fake_for_D = fake.detach().requires_grad_(r2_step)
        real_out = (state.D_penalised if r1_step else D)(seen_by_D(real), labels, classes=class_term)
        real_logits = (real_out[0] if class_term else real_out).float()
        fake_logits = (state.D_penalised if r2_step else D)(seen_by_D(fake_for_D), labels).float()
        loss_D = d_loss(real_logits, fake_logits)
    regularised = loss_D
    class_loss = torch.zeros((), device=device)
    if class_term:  # D learns to tell the classes of real images apart ...
        class_loss = F.cross_entropy(real_out[1].float(), labels)
        regularised = regularised + class_weight * class_loss
    for on, gamma, images, logits, latest in ((r1_step, t.r1_gamma, real, real_logits, "r1"),
                                              (r2_step, t.r2_gamma, fake_for_D, fake_logits, "r2")):
        if on:
            penalty = gradient_penalty(logits, images)
            weight = penalty_weight(gamma, step, t.gamma_decay_steps, t.gamma_final)
            regularised = regularised + penalty * (weight / 2 * t.r1_every)
            setattr(state, latest, penalty.detach())
    lecam = torch.zeros((), device=device)
    if t.lecam_weight:
        lecam = state.lecam.penalty(real_logits, fake_logits)
        regularised = regularised + t.lecam_weight * lecam
    nets.opt_D.zero_grad(set_to_none=True)
    regularised.backward()
    nets.opt_D.step()
    state.augment_p.observe(real_logits)

    nets.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with devices.autocast(device, amp):
        fake_out = state.D_for_G(seen_by_D(fake), labels, classes=class_term)
        # A paired loss scores each fake against a real image, as judged by the D of this step.
        real_now = state.D_for_G(seen_by_D(real.detach()), labels).float() if t.loss in PAIRED else None
        loss_G = g_loss((fake_out[0] if class_term else fake_out).float(), real_now)
        if class_term:  # ... and G to make images D puts in their class
            loss_G = loss_G + class_weight * F.cross_entropy(fake_out[1].float(), labels)
    nets.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    nets.opt_G.step()
    for parameter in nets.d_trainable:
        parameter.requires_grad_(True)

    update_ema(nets.G_ema, nets.G, ema_decay_at(step, t.ema_decay) if t.ema_decay else 0.0)
    return {"Loss/D": loss_D.detach(), "Loss/G": loss_G.detach(),
            "D/real": torch.sigmoid(real_logits.detach()).mean(), "D/fake": torch.sigmoid(fake_logits.detach()).mean(),
            "Loss/R1": state.r1, "Loss/R2": state.r2, "Loss/LeCam": lecam.detach(), "Loss/class": class_loss.detach(),
            "Augment/p": state.augment_p.p, "Augment/rt": state.augment_p.rt}


def stacked(window: list[dict[str, torch.Tensor]]) -> tuple[list[str], torch.Tensor]:
    """The statistics of several steps as their names and one (steps, statistics) float tensor, still on the device."""
    names = list(window[0])
    return names, torch.stack([torch.stack([stats[name].float() for name in names]) for stats in window])
