"""The hand-written fits against independent references on the same synthetic logits.

* Vector scaling vs a direct ``torch.optim.LBFGS`` fit (torch's default tolerances and history, restarted until
  the loss stops moving) and vs scipy's L-BFGS-B on a numpy objective with an analytic gradient: the NLL agrees
  to 1e-8 with the former (its default tolerance stops ~2e-9 above the minimum), to 1e-9 with the latter, is
  never above either by more than 1e-12, and the probabilities agree with scipy's to 1e-5.
* Dirichlet calibration with ``reg_lambda = reg_mu = 0`` is multinomial logistic regression on log-probabilities:
  scikit-learn's ``LogisticRegression`` (no penalty, lbfgs, tol 1e-10) gives the same held-out probabilities to
  1e-5. With ODIR (lambda = mu = 1), scipy's L-BFGS-B on a numpy transcription of Kull et al.'s objective (the
  authors' ``reg_norm`` scaling) gives the same weights to 1e-5 and objective to 1e-10. (netcal 1.4's matrix
  scaling, ``netcal.scaling.LogisticCalibration``, cannot be imported here: it needs pyro-ppl and tensorboard.)
* Top-label histogram binning, equal-width, vs netcal's ``HistogramBinning(equal_intervals=True)`` fitted on the
  binary problem (top-label confidence, correct): identical calibrated confidences (1e-12), empty bins included
  (both map them to the bin midpoint). netcal's equal-mass transform is not implemented ("TODO" in 1.4), so the
  equal-mass bins are checked against ``np.array_split`` of the sorted confidences, xcal's documented definition.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from calib_data import planted

from xcal.calibration import DirichletCalibration, HistogramBinning, VectorScaling
from xcal.metrics import negative_log_likelihood

optimize = pytest.importorskip("scipy.optimize")


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def _affine_nll_and_grad(features: np.ndarray, y: np.ndarray, out: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL of softmax(out) and d NLL / d out."""
    n = len(y)
    p = _softmax(out)
    nll = -_log_softmax(out)[np.arange(n), y].mean()
    d = p.copy()
    d[np.arange(n), y] -= 1.0
    return float(nll), d / n


@pytest.mark.parametrize(("kind", "seed"), [("vector", 0), ("overconfident", 1), ("matrix", 2)])
def test_vector_scaling_matches_direct_lbfgs_and_scipy(kind: str, seed: int) -> None:
    z, y = planted(kind, 2000, seed)
    cal = VectorScaling().fit(z, y)
    ours = float(negative_log_likelihood(cal.apply(z), y))

    # direct torch.optim.LBFGS: torch's default tolerances and history, restarted until the loss stops moving
    w = torch.ones(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z * w + b, y)
        loss.backward()
        return loss

    previous = float("inf")
    for _ in range(20):
        loss = float(opt.step(closure).detach())
        if previous - loss < 1e-15:
            break
        previous = loss
    direct = float(torch.nn.functional.cross_entropy(z * w + b, y).detach())

    zn, yn = z.numpy(), y.numpy()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        scale, bias = theta[:5], theta[5:]
        nll, d = _affine_nll_and_grad(zn, yn, zn * scale + bias)
        return nll, np.concatenate([(d * zn).sum(0), d.sum(0)])

    res = optimize.minimize(
        objective, np.r_[np.ones(5), np.zeros(5)], jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12}
    )
    assert ours == pytest.approx(direct, abs=1e-8)  # torch's default tolerance stops up to ~2e-9 above
    assert ours == pytest.approx(float(res.fun), abs=1e-9)
    assert ours <= min(direct, float(res.fun)) + 1e-12
    ref_probs = _softmax(zn * res.x[:5] + res.x[5:])
    assert np.abs(cal.apply(z).numpy() - ref_probs).max() < 1e-5


@pytest.mark.parametrize(("kind", "seed"), [("matrix", 3), ("vector", 4)])
def test_unregularised_dirichlet_is_sklearn_multinomial_logistic_regression(kind: str, seed: int) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    z, y = planted(kind, 2000, seed)
    test, _ = planted(kind, 1000, seed + 100)
    cal = DirichletCalibration(reg_lambda=0.0, reg_mu=0.0).fit(z, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # C=inf "no penalty" notes
        lr = linear_model.LogisticRegression(C=np.inf, tol=1e-10, max_iter=10000)
        lr.fit(_log_softmax(z.numpy()), y.numpy())
    ref = lr.predict_proba(_log_softmax(test.numpy()))
    assert np.abs(cal.apply(test).numpy() - ref).max() < 1e-5


def test_odir_dirichlet_matches_scipy_on_kull_objective() -> None:
    z, y = planted("matrix", 1500, 5)
    lam, mu = 1.0, 1.0
    cal = DirichletCalibration(reg_lambda=lam, reg_mu=mu).fit(z, y)
    q, yn = _log_softmax(z.numpy()), y.numpy()
    k = q.shape[1]
    off = 1.0 - np.eye(k)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * k].reshape(k, k), theta[k * k :]
        nll, d = _affine_nll_and_grad(q, yn, q @ w.T + b)
        loss = nll + lam / (k * (k - 1)) * ((w * off) ** 2).sum() + mu / k * (b**2).sum()
        gw = d.T @ q + 2 * lam / (k * (k - 1)) * w * off
        gb = d.sum(0) + 2 * mu / k * b
        return float(loss), np.concatenate([gw.ravel(), gb])

    res = optimize.minimize(
        objective, np.r_[np.eye(k).ravel(), np.zeros(k)], jac=True, method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    )  # fmt: skip
    ours = np.r_[cal.weights.numpy().ravel(), cal.bias.numpy()]
    assert objective(ours)[0] == pytest.approx(float(res.fun), abs=1e-10)
    assert np.abs(ours - res.x).max() < 1e-5


@pytest.mark.parametrize(("n_bins", "seed"), [(15, 6), (10, 7), (25, 8)])
def test_uniform_histogram_binning_matches_netcal(n_bins: int, seed: int) -> None:
    binning = pytest.importorskip("netcal.binning")
    z, y = planted("overconfident", 3000, seed)
    test, _ = planted("overconfident", 2000, seed + 100)
    cal = HistogramBinning(n_bins=n_bins, binning="uniform").fit(z, y)
    conf, pred = torch.softmax(z, 1).max(1)
    ref = binning.HistogramBinning(bins=n_bins, equal_intervals=True)
    ref.fit(conf.numpy(), (pred == y).long().numpy())
    test_conf = torch.softmax(test, 1).max(1).values.numpy()
    assert np.isnan(cal.parameters()["values"]).sum() == 0
    assert np.abs(cal.confidence(test).numpy() - ref.transform(test_conf)).max() < 1e-12
    # some bins below 1/C are empty and both fill them with the midpoint
    assert (np.bincount(np.minimum((conf.numpy() * n_bins).astype(int), n_bins - 1), minlength=n_bins) == 0).any()


@pytest.mark.parametrize(("n", "n_bins"), [(1000, 15), (1003, 10), (7, 15)])
def test_equal_mass_histogram_binning_is_array_split_of_sorted_confidences(n: int, n_bins: int) -> None:
    z, y = planted("vector", n, 9)
    cal = HistogramBinning(n_bins=n_bins).fit(z, y)
    conf, pred = torch.softmax(z, 1).max(1)
    order = np.argsort(conf.numpy(), kind="stable")
    correct = (pred == y).double().numpy()[order]
    groups = np.array_split(np.arange(n), min(n_bins, n))
    assert cal.parameters()["values"] == pytest.approx([correct[g].mean() for g in groups], abs=1e-15)
    assert cal.confidence(z).numpy()[order] == pytest.approx(
        np.concatenate([np.full(len(g), correct[g].mean()) for g in groups]), abs=1e-15
    )
