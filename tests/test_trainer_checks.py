"""fit(epochs=N) trains N more epochs (Keras' fit), checks everything on every call, and the
Trainer, optimizers and schedules refuse bad arguments when they are built."""
import warnings

import numpy as np
import pytest

from minicnn import (SGD, Adam, CosineAnnealingLR, Dense, EarlyStopping, Flatten, MSELoss,
                     OneCycleLR, ReLU, Sequential, SoftmaxCrossEntropy, StepLR, Trainer)


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Dense(16, 8, rng=rng), ReLU(), Dense(8, 3, rng=rng))


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, n)


def trainer(model=None, lr=0.05, schedule=None):
    model = model or small_model()
    opt = SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, SoftmaxCrossEntropy(), opt, schedule(opt) if schedule else None)


# --- fit(epochs=N): N more ------------------------------------------------------------------
def test_second_fit_trains_more_epochs():
    x, y = data()
    t = trainer()
    t.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    before = t.model.state_dict()
    h = t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert t.epoch == 3 and len(h["loss"]) == 3
    assert any(not np.array_equal(before[k], v) for k, v in t.model.state_dict().items())


def test_two_fits_equal_one_longer_fit():
    x, y = data()
    split, whole = trainer(schedule=lambda o: StepLR(o, 1, 0.5)), trainer(schedule=lambda o: StepLR(o, 1, 0.5))
    split.fit(x, y, epochs=1, batch_size=8, seed=4, verbose=0)
    split.fit(x, y, epochs=2, batch_size=8, verbose=0)
    whole.fit(x, y, epochs=3, batch_size=8, seed=4, verbose=0)
    for k, v in whole.model.state_dict().items():
        np.testing.assert_array_equal(v, split.model.state_dict()[k])
    assert split.history["lr"] == whole.history["lr"]


def test_initial_epoch_on_fresh_trainer_catches_the_schedule_up():
    """Weights loaded elsewhere: fit(epochs=3, initial_epoch=2) runs epoch 3 with epoch 3's lr."""
    x, y = data()
    t = trainer(lr=0.1, schedule=lambda o: StepLR(o, 1, 0.5))
    h = t.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    assert t.epoch == 3 and h["lr"] == [pytest.approx(0.025)]


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), r"epochs must be an int >= 1, got 0"),
    (dict(epochs=-1), r"epochs must be an int >= 1, got -1"),
    (dict(epochs=2.5), r"epochs must be an int >= 1, got 2.5"),
    (dict(epochs=True), r"epochs must be an int >= 1, got True"),
    (dict(epochs=2, initial_epoch=2), r"initial_epoch=2 and epochs=2 would train nothing"),
    (dict(epochs=3, initial_epoch=-1), r"initial_epoch must be an int >= 0"),
    (dict(epochs=1, batch_size=0), r"batch_size must be an int >= 1, got 0"),
    (dict(epochs=1, seed=-3), r"seed must be an int >= 0"),
    (dict(epochs=1, callbacks=[EarlyStopping]), r"callbacks\[0\] must be an instance"),
    (dict(epochs=1, callbacks=[object()]), r"callbacks\[0\] must be a Callback"),
    (dict(epochs=1, transform="normalize"), r"transform must be a function"),
    (dict(epochs=1, validation_data=([1, 2],)), r"validation_data must be a pair"),
])
def test_fit_refuses_calls_that_cannot_train(kwargs, match):
    x, y = data()
    t = trainer()
    with pytest.raises((ValueError, TypeError), match=match):
        t.fit(x, y, verbose=0, **kwargs)
    assert t.epoch == 0


def test_initial_epoch_must_match_a_trained_trainer():
    x, y = data()
    t = trainer()
    t.fit(x, y, epochs=2, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch=1, but this trainer has completed 2 epochs"):
        t.fit(x, y, epochs=4, initial_epoch=1, verbose=0)
    t.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert t.epoch == 4


# --- labels, checked on every call --------------------------------------------------------------
@pytest.mark.parametrize("labels,error,match", [
    (lambda y: np.eye(3)[y], ValueError, r"look one-hot; pass y.argmax\(axis=1\)"),
    (lambda y: y.astype(np.float32), TypeError, r"integer class indices, got float32 labels; whole numbers"),
    (lambda y: y + 0.5, TypeError, r"integer class indices, got float64 labels$"),
    (lambda y: y - 1, ValueError, r"class indices >= 0, got -1"),
    (lambda y: y[:, None, None], ValueError, r"labels of shape \(N,\)"),
    (lambda y: y.astype(str), TypeError, r"integer class indices, got <U"),
])
def test_bad_labels_refused_on_every_fit(labels, error, match):
    x, y = data()
    t = trainer()
    t.fit(x, y, epochs=1, verbose=0)  # a good first call does not excuse the next one
    weights = t.model.state_dict()
    with pytest.raises(error, match=match):
        t.fit(x, labels(y), epochs=1, verbose=0)
    with pytest.raises(error, match=match):
        t.fit(x, y, epochs=1, verbose=0, validation_data=(x, labels(y)))
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])


def test_mse_targets_may_be_floats():
    x = np.random.default_rng(0).standard_normal((8, 1, 4, 4)).astype(np.float32)
    model = small_model()
    t = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.01))
    t.fit(x, np.zeros((8, 3), np.float32), epochs=1, verbose=0)
    assert t.epoch == 1


# --- unnormalised inputs ----------------------------------------------------------------------------
def test_unnormalised_inputs_warn_once_per_fit():
    x, y = data()
    with pytest.warns(UserWarning, match=r"training inputs reach 255 .*minicnn.data.normalize") as record:
        trainer().fit(np.clip(np.abs(x) * 255, 0, 255), y, epochs=2, batch_size=8, verbose=0)
    assert len([w for w in record if "training inputs" in str(w.message)]) == 1


def test_unnormalised_check_sees_the_transformed_batch():
    x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer().fit(x * 255, y, epochs=1, verbose=0, transform=lambda b: b / 255)
    with pytest.warns(UserWarning, match="training inputs reach"):
        trainer().fit(x, y, epochs=1, verbose=0, transform=lambda b: b * 100)


# --- construction ---------------------------------------------------------------------------------
@pytest.mark.parametrize("build,error,match", [
    (lambda m: Trainer(m, SoftmaxCrossEntropy(), Adam), TypeError,
     r"optimizer must be an instance, e.g. Adam\(model.parameters\(\), lr=1e-3\), got the class Adam"),
    (lambda m: Trainer(m, SoftmaxCrossEntropy, SGD(m.parameters(), lr=0.1)), TypeError,
     r"loss must be an instance, e.g. SoftmaxCrossEntropy\(\), got the class SoftmaxCrossEntropy"),
    (lambda m: Trainer(m, "mse", SGD(m.parameters(), lr=0.1)), TypeError, "loss must be a loss"),
    (lambda m: Trainer(m, SoftmaxCrossEntropy(), "sgd"), TypeError, "optimizer must be an optimizer"),
    (lambda m: Trainer(Sequential, SoftmaxCrossEntropy(), SGD(m.parameters(), lr=0.1)), TypeError,
     "model must be an instance"),
    (lambda m: Trainer(m, SoftmaxCrossEntropy(), SGD(small_model(1).parameters(), lr=0.1)), ValueError,
     "the optimizer updates parameters that are not the model's"),
    (lambda m: Trainer(m, SoftmaxCrossEntropy(), SGD(m.parameters(), lr=0.1), StepLR), TypeError,
     "scheduler must be an instance"),
    (lambda m: Trainer(m, SoftmaxCrossEntropy(), SGD(m.parameters(), lr=0.1),
                       StepLR(SGD(m.parameters(), lr=0.1), 2)), ValueError, "built for another optimizer"),
    (lambda m: SGD(m, lr=0.1), TypeError, r"SGD\(model.parameters\(\), ...\), not the Sequential"),
    (lambda m: SGD(m.parameters(), lr=-0.1), ValueError, "SGD: lr must be >= 0.0, got -0.1"),
    (lambda m: SGD(m.parameters(), lr="0.1"), ValueError, "lr must be a finite number"),
    (lambda m: SGD(m.parameters(), lr=float("inf")), ValueError, "lr must be a finite number"),
    (lambda m: SGD(m.parameters(), lr=0.1, momentum=1.5), ValueError, r"momentum must be in \[0.0, 1.0\)"),
    (lambda m: SGD(m.parameters(), lr=0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0.0"),
    (lambda m: Adam(m.parameters(), betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in"),
    (lambda m: Adam(m.parameters(), eps=0), ValueError, "eps must be > 0.0, got 0"),
    (lambda m: Adam(m.parameters(), eps=-1e-8), ValueError, "eps must be > 0.0"),
    (lambda m: StepLR(SGD, 2), TypeError, "optimizer must be an optimizer instance"),
    (lambda m: StepLR(SGD(m.parameters(), lr=0.1), 2, gamma=-1), ValueError, "gamma must be a finite number > 0"),
    (lambda m: CosineAnnealingLR(SGD(m.parameters(), lr=0.1), 5, eta_min=float("nan")), ValueError,
     "eta_min must be a finite number >= 0"),
    (lambda m: OneCycleLR(SGD(m.parameters(), lr=0.1), max_lr=0, total_steps=5), ValueError,
     "max_lr must be a finite number > 0"),
])
def test_construction_refuses_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build(small_model())
