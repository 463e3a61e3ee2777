"""DP-SGD refuses what it cannot prove: batch layout, layer kinds, stray gradients, NaNs.

Each refusal is checked for its message (what went wrong, where, and what to do) and for
releasing nothing: no gradient written, no noise drawn, no step accounted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from tutela.dp.sgd import DPOptimizer, PrivateTraining, UnsupportedModuleError, make_private
from tutela.errors import DataError, PrivacyError
from tutela.hazmat.rng import SecureRandom

torch.set_num_threads(1)


def _private(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> PrivateTraining:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch)
    return make_private(
        model, opt, loader, noise_multiplier=1.0, max_grad_norm=1.0, rng=SecureRandom(3)
    )


def _step(private: PrivateTraining, x: torch.Tensor, y: torch.Tensor) -> None:
    model, opt, _ = private
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _nothing_released(model: nn.Module, opt: DPOptimizer) -> bool:
    return opt.steps_taken == 0 and all(p.grad is None for p in model.parameters())


class SeqFirst(nn.Module):
    """Runs its Linear on (sequence, batch, feature), as batch_first=False code does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, seq, feature)
        return self.lin(x.transpose(0, 1)).mean(0)  # per example after the mean


class BatchFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).mean(1)


def test_a_sequence_first_linear_is_refused_naming_the_layer_and_shape() -> None:
    x, y = torch.randn(6, 4, 3), torch.randint(0, 2, (6,))
    private = _private(SeqFirst(), x, y, batch=6)  # q = 1: every batch has 6 examples
    xb, yb = next(iter(private.data_loader))
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, xb, yb)
    msg = str(err.value)
    assert "lin (Linear)" in msg
    assert "(4, 6, 3)" in msg
    assert "6 examples" in msg
    assert "batch_first=True" in msg
    assert "Nothing was released" in msg
    assert _nothing_released(private.module, private.optimizer)


def test_a_sequence_as_long_as_the_batch_is_refused_until_the_layout_is_proven() -> None:
    # 4 records, sequences of 4: dimension 0 and 1 of the layer input both have size 4
    x, y = torch.randn(4, 4, 3), torch.randint(0, 2, (4,))
    private = _private(SeqFirst(), x, y, batch=4)
    xb, yb = next(iter(private.data_loader))
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, xb, yb)
    msg = str(err.value)
    assert "lin (Linear)" in msg
    assert "(4, 4, 3)" in msg
    assert "dimensions 0 and 1" in msg
    assert "cannot prove" in msg
    assert _nothing_released(private.module, private.optimizer)


def test_a_batch_first_layer_once_proven_accepts_batches_as_long_as_its_sequence() -> None:
    # 8 records, q = 0.5, sequences of 4: Poisson batches of 4 examples do occur
    x, y = torch.randn(8, 4, 3), torch.randint(0, 2, (8,))
    private = _private(BatchFirst(), x, y, batch=4)
    _, opt, loader = private
    loader.steps = 60
    proven = ambiguous_after_proof = 0
    refused: list[tuple[str, int]] = []
    for xb, yb in loader:
        if len(xb) < 2:
            continue
        try:
            _step(private, xb, yb)
        except UnsupportedModuleError as err:  # the documented recovery: drop the batch
            refused.append((str(err), proven))
            opt.zero_grad()
            continue
        if len(xb) == 4:
            ambiguous_after_proof += proven > 0
        else:
            proven += 1
    assert all("cannot prove" in msg and before == 0 for msg, before in refused)
    assert proven > 0
    assert ambiguous_after_proof > 0


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: nn.LSTM(3, 4, batch_first=True), "nn.LSTM"),
        (lambda: nn.GRU(3, 4), "nn.GRU"),
        (lambda: nn.RNN(3, 4), "nn.RNN"),
        (lambda: nn.LSTMCell(3, 4), "nn.LSTMCell"),
    ],
)
def test_recurrent_layers_are_refused_up_front_with_what_to_do(
    make: Callable[[], nn.Module], kind: str
) -> None:
    model = nn.Sequential(make(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModuleError) as err:
        _private(model, torch.randn(8, 5, 3), torch.randint(0, 2, (8,)), batch=4)
    msg = str(err.value)
    assert f"0 is {kind}" in msg
    assert "no per-example gradient rule" in msg
    assert "nn.Linear" in msg
    assert "requires_grad_(False)" in msg
    assert "forward" not in vars(model[1])  # nothing was hooked


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.MultiheadAttention(4, 2),
        lambda: nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, batch_first=True),
    ],
)
def test_multihead_attention_is_refused_up_front(make: Callable[[], nn.Module]) -> None:
    with pytest.raises(UnsupportedModuleError) as err:
        _private(make(), torch.randn(8, 5, 4), torch.randint(0, 2, (8,)), batch=4)
    msg = str(err.value)
    assert "nn.MultiheadAttention" in msg
    assert "scaled_dot_product_attention" in msg


def test_a_frozen_lstm_is_allowed_and_only_the_head_is_clipped() -> None:
    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True).requires_grad_(False)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0][:, -1])

    x, y = torch.randn(8, 5, 3), torch.randint(0, 2, (8,))
    private = _private(Frozen(), x, y, batch=8)
    assert [p.name for p in private.plan] == ["head"]
    _step(private, *next(iter(private.data_loader)))
    assert private.optimizer.steps_taken == 1


def test_a_layer_returning_a_tuple_is_refused_at_its_forward() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x * self.w, x.sum(1)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.pair(x)[0])

    private = _private(Model(), torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, *next(iter(private.data_loader)))
    msg = str(err.value)
    assert "pair (Pair) returned tuple, not a tensor" in msg
    assert "no per-example gradient" in msg
    assert _nothing_released(private.module, private.optimizer)


def test_an_output_projection_reading_the_embedding_weight_is_refused() -> None:
    class Untied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(7, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return (self.emb(ids) @ self.emb.weight.T).mean(1)  # weight used outside emb

    ids, y = torch.randint(0, 7, (8, 5)), torch.randint(0, 7, (8,))
    private = _private(Untied(), ids, y, batch=8)
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, *next(iter(private.data_loader)))
    msg = str(err.value)
    assert "'emb.weight' received a gradient from outside the forward of emb" in msg
    assert "head.weight = embedding.weight" in msg
    assert _nothing_released(private.module, private.optimizer)


def test_a_penalty_on_the_parameters_is_refused_with_the_weight_decay_hint() -> None:
    model = nn.Linear(3, 2)
    private = _private(model, torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    x, y = next(iter(private.data_loader))
    private.optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y) + 1e-3 * model.weight.pow(2).sum()
    with pytest.raises(UnsupportedModuleError, match="weight_decay"):
        loss.backward()


def test_a_tensor_keyword_argument_is_refused() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(input=x)

    private = _private(Model(), torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    with pytest.raises(UnsupportedModuleError, match=r"tensor keyword arguments \['input'\]"):
        _step(private, *next(iter(private.data_loader)))


def test_an_unbatched_call_is_refused() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Linear(3, 2)  # applied to one shared 1-D vector

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :2] + self.bias(torch.ones(3))

    private = _private(Model(), torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, *next(iter(private.data_loader)))
    assert "bias (Linear) got an input of shape (3,) with no batch dimension" in str(err.value)


def test_parametrised_weights_and_batch_scaled_embeddings_are_refused() -> None:
    lin = nn.utils.parametrizations.weight_norm(nn.Linear(3, 2))
    with pytest.raises(UnsupportedModuleError, match="remove_parametrizations"):
        _private(lin, torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    emb = nn.Sequential(nn.Embedding(5, 2, scale_grad_by_freq=True), nn.Flatten())
    with pytest.raises(UnsupportedModuleError, match="scale_grad_by_freq=False"):
        _private(emb, torch.randint(0, 5, (8, 1)), torch.randint(0, 2, (8,)), batch=8)


def test_the_optimiser_may_update_only_the_module_parameters() -> None:
    model = nn.Linear(3, 2)
    temperature = nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([*model.parameters(), temperature], lr=0.1)
    loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,))), batch_size=4)
    with pytest.raises(ValueError, match=r"not parameters of the module \(shapes \[\(1,\)\]\)"):
        make_private(model, opt, loader, noise_multiplier=1.0, max_grad_norm=1.0)


def test_a_parameter_unfrozen_after_make_private_is_refused_at_step() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    private = _private(model, torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    model[0].requires_grad_(True)
    with pytest.raises(UnsupportedModuleError) as err:
        _step(private, *next(iter(private.data_loader)))
    assert "0.weight has a gradient but no per-example rule" in str(err.value)
    assert private.optimizer.steps_taken == 0


def test_a_second_make_private_takes_the_module_over() -> None:
    model = nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    first = _private(model, x, y, batch=8)
    second = _private(model, x, y, batch=8)
    _step(second, *next(iter(second.data_loader)))
    assert second.optimizer.steps_taken == 1
    with pytest.raises(PrivacyError, match="detached"):
        first.optimizer.privatise_gradients()
    second.detach()
    assert "forward" not in vars(model)


def test_a_nan_record_is_named_by_the_loader() -> None:
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    x[5, 1] = math.nan
    private = _private(nn.Linear(3, 2), x, y, batch=8)  # q = 1: record 5 is in every batch
    with pytest.raises(DataError) as err:
        next(iter(private.data_loader))
    msg = str(err.value)
    assert "records [5] of the dataset hold NaN or inf in batch[0]" in msg
    assert "Repair or drop those records" in msg


def test_a_nan_label_is_named_by_the_loader() -> None:
    x, y = torch.randn(8, 3), torch.rand(8)
    y[2] = math.inf
    private = _private(nn.Linear(3, 1), x, y, batch=8)
    with pytest.raises(
        DataError, match=r"records \[2\] of the dataset hold NaN or inf in batch\[1\]"
    ):
        next(iter(private.data_loader))


def test_a_batch_with_one_nan_row_raises_instead_of_poisoning_the_update() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    private = _private(model, torch.randn(8, 3), torch.randint(0, 2, (8,)), batch=8)
    _, opt, _ = private
    epsilon_before = private.epsilon(1e-5)
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))  # not from the loader: no loader check
    x[3] = math.nan
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(DataError) as err:
        opt.step()
    msg = str(err.value)
    assert "1 of the 6 examples in this batch (positions [3])" in msg
    assert "non-finite gradient" in msg
    assert "Nothing was released" in msg
    assert _nothing_released(model, opt)
    assert private.epsilon(1e-5) == epsilon_before
    opt.zero_grad()  # drop the batch; training goes on
    _step(private, torch.randn(6, 3), torch.randint(0, 2, (6,)))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())  # type: ignore[arg-type]
