"""AdamGnT (Dohare et al. 2024, lop/utils/AdamGnT.py): Adam with a step count per element, which continual backprop
resets for the weights of the units it replaces."""

from __future__ import annotations

import torch

from clrelu.errors import ConfigError

BIAS_CORRECTIONS = ("gnt", "adam")


class AdamGnT(torch.optim.Optimizer):
    """Adam whose step count t is a tensor of the parameter's shape, so that zeroing some entries of it (with their
    moments) restarts Adam for those entries alone.

    Per element, with g the gradient (plus `weight_decay` * theta, as torch's Adam adds it):
    m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2, t <- t + 1, and the step

    - `gnt` (their code as it runs): theta <- theta - lr (1 - beta2^t) m / (sqrt(v) + eps). Their line meant to form
      sqrt(1 - beta2^t) / (1 - beta1^t) (`bias_correction.sqrt().div_(bias_correction1)`) works on a copy and is
      discarded, so the step is scaled by 1 - beta2^t: about 0.001 t for a fresh entry, 0.63 after 1,000 steps, 1
      after about 5,000. The arithmetic follows theirs operation by operation (denominator divided by m, then
      `addcdiv`);
    - `adam`: theta <- theta - lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + eps), the step their comment
      gives (PyTorch 0.4's Adam), with t per element.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 bias_correction: str = "gnt"):
        if bias_correction not in BIAS_CORRECTIONS:
            raise ConfigError(f"AdamGnT bias_correction={bias_correction}: valid choices are "
                              f"{', '.join(BIAS_CORRECTIONS)}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @classmethod
    def like(cls, adam: torch.optim.Adam, bias_correction: str) -> AdamGnT:
        """An AdamGnT over the parameter groups of a fresh torch Adam, with their hyperparameters."""
        groups = []
        for group in adam.param_groups:
            if group.get("amsgrad") or group.get("maximize") or group.get("decoupled_weight_decay"):
                raise ConfigError("strategy=cbp: trains Adam as AdamGnT, which has no amsgrad, maximize or decoupled "
                                  "weight decay; turn them off or set strategy.adam_variant=torch")
            groups.append({"params": group["params"], "lr": group["lr"], "betas": tuple(group["betas"]),
                           "eps": group["eps"], "weight_decay": group["weight_decay"]})
        return cls(groups, bias_correction=bias_correction)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros_like(p)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                t += 1
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = v.sqrt().add_(group["eps"])
                if group["bias_correction"] == "gnt":
                    scale = 1 - beta2 ** t
                    denom.div_(m)
                    p.addcdiv_(scale, denom, value=-group["lr"])
                else:
                    scale = (1 - beta2 ** t).sqrt_().div_(1 - beta1 ** t)
                    p.addcdiv_(m * scale, denom, value=-group["lr"])
        return loss

