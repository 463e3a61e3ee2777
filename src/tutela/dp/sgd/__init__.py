"""DP-SGD for any PyTorch module: one entry point, drop-in objects, fast per-example clipping.

:func:`make_private` returns a module, optimiser and data loader that work in an unchanged
training loop::

    private = make_private(model, optimizer, loader, noise_multiplier=1.1, max_grad_norm=1.0)
    model, optimizer, loader = private
    for x, y in loader:                     # Poisson-sampled batches (maybe empty)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()     # mean-reduced loss, as usual
        optimizer.step()                    # clip per example, add noise, account, update
    private.epsilon(1e-5)

Every layer with trainable parameters runs, while training, with its parameters detached
from autograd and its output passed through a tap that records dLoss/dOutput: autograd
computes only input gradients, and the per-example gradients are formed from each layer's
input and output gradient. Norms are "ghost" norms where a layer allows it (Linear via
||a|| ||g|| for 2-D inputs or Gram matrices for sequences, Conv via unfold, Embedding via a
token-equality Gram matrix, LayerNorm directly from its small per-example gradients); the
clipped sum sum_i c_i grad_i is then formed from the same stored tensors, without
materialising B copies of the gradient. Any other layer uses exact ``torch.func`` (vmap +
grad) per-example gradients, and so does a Parameter shared by several layers (tied
weights), whose per-example gradients are summed over the layers before clipping.
:func:`validate` says which path each layer takes and refuses, before anything runs, what
has no per-example rule (BatchNorm, RNN/LSTM/GRU, MultiheadAttention, parametrisations).

Privacy: each optimiser step is the sampled Gaussian mechanism: every record is in the
batch independently with probability q (Poisson sampling), each example's gradient is
clipped to L2 norm ``max_grad_norm`` = C, and Gaussian noise of standard deviation z C
(from the CSPRNG by default) is added to the sum. One step is
``PoissonSampledEvent(q, GaussianEvent(z_eff))`` under add/remove-one-record neighbours,
where z_eff = z C / (C + g sqrt(d)) accounts for rounding the sum to the noise grid g
(d = number of trainable parameters); z_eff = z with a ``torch.Generator`` (which is
reproducible but not secure). The secure noise is
:func:`~tutela.hazmat.noise.sample_rounded_gaussian32`: the Gaussian rounded to g, with
its tail cut at 8.65 sigma (about 5e-18 of mass per coordinate, not added to delta), drawn
value for value as that function would through
:class:`~tutela.hazmat.noise_buffer.RoundedGaussian32Buffer` under a fresh CSPRNG key per
parameter and step (never from torch's generator, whose state is predictable).

The bound C holds only if example i's gradient is what is read at index i of dimension 0
of every layer's input and output gradient, so a step is refused, before anything is
released, when: a layer sees a leading dimension other than the number of examples the
loader gave (a (sequence, batch, feature) tensor), or a second dimension of that same size
it has not yet been seen to tell apart; a parameter receives a gradient from outside its
layer's forward; a layer returns something other than a tensor; or a per-example gradient
is not finite. Layers must not mix examples (BatchNorm is refused; an operation across the
batch written in a ``forward`` is not detected).
"""

from tutela.dp.sgd.data import PoissonDataLoader
from tutela.dp.sgd.optimizer import DPOptimizer
from tutela.dp.sgd.plan import Clipping, LayerPlan, UnsupportedModuleError, validate
from tutela.dp.sgd.private import PrivateTraining, make_private

__all__ = [
    "Clipping",
    "DPOptimizer",
    "LayerPlan",
    "PoissonDataLoader",
    "PrivateTraining",
    "UnsupportedModuleError",
    "make_private",
    "validate",
]
