#!/usr/bin/python3
"""Write the whole-network reference fixtures of tests/test_reference.c.

Usage: /usr/bin/python3 tests/reference/make_reference.py [OUT_DIR]
       (OUT_DIR defaults to this script's directory)

For each reconstruction loss kind (bernoulli, gaussian, poisson) it builds
the tiny 3D-CVAE of TINY below with PyTorch's default initialisation under
torch.manual_seed(seed), draws the input (uniform in [0, 1)) and the
reparameterisation noise eps (standard normal) from the same generator,
and writes cvae_tiny_<kind>.bin: the input, eps, the initial parameters,
the logits, mulv, the three loss terms, sigmoid(logits) and the loss terms
with z = mu (eps = 0), every gradient, and a 5-step run (clip_grad_norm_
(max_norm), then torch.optim.Adam with lr 1e-3 and eps 1e-4, with the same
input and eps every step): each step's loss terms and gradient norm before
the step, and the parameters after the last step. The format is in README.md and in
write_fixture()/read_fixture() below.

The results stored are PyTorch's in float64 (from the float32 input,
eps and weights, which float64 represents exactly), rounded to float32 for
the tensors: the best answer torch can give, so a C float32 result is
compared with the truth, not with another float32 rounding of it. The
script also runs the float32 network and fails unless that lands within a
tenth of the C test's tolerances of the float64 answer, and checks the case is well-conditioned at the C
test's tolerances (see check_case()); a seed that fails is skipped and the
next one tried, so the seed search is part of the deterministic output.
"""
import copy
import os
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cvae_reference import (CVAE, LOSS_NAMES, Arch, ConvSpec, layout_of, loss_terms,  # noqa: E402
                            relu_inputs)

MAGIC = b"EVAEREF1"
VERSION = 1
DTYPE_F32, DTYPE_F64 = 0, 1

# The paper's layer pattern, shrunk: spectral-only first conv, a 3x3 spatial
# one still striding in E only, then a cubic stride-2 conv. Every decoder
# stage needs an output padding of 1 along E (and along y, x for the last).
TINY = dict(tile=4, energy=16,
            convs=[ConvSpec(2, (1, 1, 3), (1, 1, 2), (0, 0, 1)),
                   ConvSpec(3, (3, 3, 3), (1, 1, 2), (1, 1, 1)),
                   ConvSpec(4, (3, 3, 3), (2, 2, 2), (1, 1, 1))],
            hidden=6, latent=3, beta=1.2)
BATCH = 2
STEPS = 5
LR, BETA1, BETA2, ADAM_EPS = 1e-3, 0.9, 0.999, 1e-4
FIRST_SEED = 20240601

# Tolerances the C test applies (keep in step with tests/test_reference.c):
# |c - ref| <= TOL * max|ref| over each tensor; scalars |c - ref| <= TOL * |ref|.
TOL_TENSOR = 1e-4   # logits, mulv, every gradient
TOL_LOSS = 1e-5     # loss, reconstruction, kl (step 0)
TOL_STEP = 1e-4     # each step's loss terms and gradient norm
TOL_FINAL = 1e-4    # parameters after the 5 steps
# Conditioning demanded of a case (see check_case()):
RELU_MARGIN = 3e-5  # |pre-activation| / max over its tensor, at every step
CLIP_MARGIN = 2e-3  # |norm - max_norm| / max_norm at every step
NOISE = 1e-6        # gradient noise (of each tensor's max) the 5-step run must tolerate
ZERO_NOISE = 1e-7   # the same at conv weight gradients that are exactly 0
SAFETY = 4.0        # tolerance / deviation under that noise, at least


def param_names(model):
    return list(model.state_dict().keys())


def run_case(model, x, eps, max_norm, grad_noise=0.0, noise_gen=None, record_relu=False):
    """Forward + backward once, then STEPS clipped Adam steps.
    grad_noise > 0 adds Gaussian noise of that size relative to each
    gradient tensor's max to the gradients before clipping (a stand-in for
    the C side's rounding, to measure how much the trajectory amplifies it)."""
    model = copy.deepcopy(model)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS)
    out = {"steps": [], "relu_margin": float("inf")}
    for step in range(STEPS):
        opt.zero_grad()
        logits, mulv = model(x, eps)
        loss, rec, kl = loss_terms(model.arch, logits, x, mulv)
        loss.backward()
        if record_relu:
            with torch.no_grad():
                pre = relu_inputs(model, x, eps) + (relu_inputs(model, x, 0 * eps) if step == 0 else [])
                for a in pre:
                    scale = a.abs().max().item()
                    out["relu_margin"] = min(out["relu_margin"], a.abs().min().item() / scale)
        if step == 0:
            out["logits"] = logits.detach().clone()
            out["mulv"] = mulv.detach().clone()
            out["loss"] = (loss.item(), rec.item(), kl.item())
            out["grads"] = [p.grad.detach().clone() for p in params]
            with torch.no_grad():  # the deterministic pass, z = mu
                logits_mean, _ = model(x, 0 * eps)
                out["recon_mean"] = torch.sigmoid(logits_mean)
                out["mean_loss"] = tuple(t.item() for t in loss_terms(model.arch, logits_mean, x, mulv))
        if grad_noise > 0:
            with torch.no_grad():
                for p in params:
                    # Rounding error of the size grad_noise·max|g| where g ≠ 0;
                    # where g is exactly 0, a dead unit gives 0 in C too, but an
                    # FFT convolution's weight gradient leaves ~2e-8·max|g| of
                    # cancellation residue (measured on lib/nn/conv3d.c's FFT
                    # engine against its direct one): ZERO_NOISE·max|g| for them.
                    scale = p.grad.abs().max()
                    zero_scale = ZERO_NOISE * scale if p.grad.dim() == 5 else 0.0
                    noise = torch.randn(p.grad.shape, generator=noise_gen, dtype=p.grad.dtype)
                    p.grad += torch.where(p.grad != 0, grad_noise * scale, zero_scale) * noise
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        out["steps"].append((loss.item(), rec.item(), kl.item(), norm))
        opt.step()
    out["final"] = [p.detach().clone() for p in params]
    return out


def max_rel(a, ref):
    """max |a - ref| / max |ref| (the C test's tensor measure)."""
    scale = ref.abs().max().item()
    return (a.double() - ref.double()).abs().max().item() / (scale if scale > 0 else 1.0)


def deviations(res, ref):
    """The C test's measures of res against ref, per group."""
    dev = {"logits": max_rel(res["logits"], ref["logits"]), "mulv": max_rel(res["mulv"], ref["mulv"]),
           "loss": max(abs(a - b) / abs(b) for a, b in zip(res["loss"], ref["loss"])),
           "grads": max(max_rel(a, b) for a, b in zip(res["grads"], ref["grads"])),
           "steps": max(abs(a - b) / abs(b) for sa, sb in zip(res["steps"], ref["steps"])
                        for a, b in zip(sa, sb)),
           "final": max(max_rel(a, b) for a, b in zip(res["final"], ref["final"]))}
    return dev


def choose_max_norm(model64, x, eps):
    """A clipping threshold between the gradient norms of the unclipped run,
    in the widest gap, so that some steps clip and some do not."""
    norms = sorted(s[3] for s in run_case(model64, x, eps, float("inf"))["steps"])
    gaps = [(norms[i + 1] / norms[i], i) for i in range(len(norms) - 1)]
    ratio, i = max(gaps)
    return float(np.float32((norms[i] * norms[i + 1]) ** 0.5)), ratio


def check_case(model32, x, eps, max_norm, ref):
    """Reasons this case is ill-conditioned for the C test, or []."""
    why = []
    if ref["relu_margin"] < RELU_MARGIN:
        why.append(f"a ReLU input sits at {ref['relu_margin']:.2g} of its tensor's max")
    norms = [s[3] for s in ref["steps"]]
    clipped = [n > max_norm for n in norms]
    if all(clipped) or not any(clipped):
        why.append(f"clipping is all-or-nothing: norms {norms}, max_norm {max_norm}")
    if min(abs(n - max_norm) / max_norm for n in norms) < CLIP_MARGIN:
        why.append(f"a norm is within {CLIP_MARGIN} of max_norm {max_norm}: {norms}")
    for name, g in zip(param_names(model32), ref["grads"]):
        if g.abs().max().item() == 0:
            why.append(f"gradient of {name} is zero")
    for name, a, b in zip(param_names(model32), ref["final"], model32.state_dict().values()):
        moved = (a - b.double()).abs().max().item() / b.abs().max().item()
        if moved < 30 * TOL_FINAL:
            why.append(f"{name} moved only {moved:.2g} of its max in {STEPS} steps")
    # The trajectory under gradient noise of NOISE must stay within the
    # tolerances with room to spare.
    gen = torch.Generator().manual_seed(7)
    worst = {}
    for _ in range(4):
        dev = deviations(run_case(ref["model64"], x.double(), eps.double(), max_norm, NOISE, gen), ref)
        for k in ("steps", "final"):
            worst[k] = max(worst.get(k, 0.0), dev[k])
    if worst["steps"] * SAFETY > TOL_STEP or worst["final"] * SAFETY > TOL_FINAL:
        why.append(f"gradient noise {NOISE} moves steps by {worst['steps']:.2g}, final by {worst['final']:.2g}")
    ref["noise_dev"] = worst
    return why


# ---- the file format ----------------------------------------------------------

class Writer:
    def __init__(self):
        self.parts = []

    def u32(self, v):
        self.parts.append(struct.pack("<I", v))

    def u64(self, v):
        self.parts.append(struct.pack("<Q", v))

    def f64(self, v):
        self.parts.append(struct.pack("<d", v))

    def record(self, name, array, dtype):
        # (not ascontiguousarray: it turns a 0-d scalar into shape [1]; tobytes() is C order anyway)
        a = np.asarray(array, dtype="<f4" if dtype == DTYPE_F32 else "<f8")
        raw = name.encode("ascii")
        self.u32(len(raw))
        self.parts.append(raw)
        self.u32(dtype)
        self.u32(a.ndim)
        for d in a.shape:
            self.u32(d)
        self.parts.append(a.tobytes())

    def bytes(self):
        return b"".join(self.parts)


def write_fixture(path, arch, batch, seed, max_norm, names, x, eps, params, ref):
    lay = layout_of(arch)
    w = Writer()
    w.parts.append(MAGIC)
    w.u32(VERSION)
    w.u32(arch.tile)
    w.u32(arch.energy)
    w.u32(len(arch.convs))
    for c, op in zip(arch.convs, lay.output_padding):
        for v in (c.channels, *c.kernel, *c.stride, *c.padding, *op):
            w.u32(v)
    w.u32(arch.hidden)
    w.u32(arch.latent)
    w.f64(arch.beta)
    w.u32(arch.loss)
    w.u32(batch)
    w.u64(seed)
    for v in (LR, BETA1, BETA2, ADAM_EPS, max_norm):
        w.f64(v)
    w.u32(STEPS)
    w.u32(len(names))
    records = [("input", x.numpy(), DTYPE_F32), ("eps", eps.numpy(), DTYPE_F32)]
    records += [(n, p.numpy(), DTYPE_F32) for n, p in zip(names, params)]
    records += [("logits", ref["logits"].numpy(), DTYPE_F32), ("mulv", ref["mulv"].numpy(), DTYPE_F32)]
    terms = ("loss", "reconstruction", "kl")
    records += [(n, np.array(v), DTYPE_F64) for n, v in zip(terms, ref["loss"])]
    records.append(("recon_mean", ref["recon_mean"].numpy(), DTYPE_F32))
    records += [("mean." + n, np.array(v), DTYPE_F64) for n, v in zip(terms, ref["mean_loss"])]
    records += [("grad." + n, g.numpy(), DTYPE_F32) for n, g in zip(names, ref["grads"])]
    steps = np.array(ref["steps"])
    for k, n in enumerate(("loss", "reconstruction", "kl", "grad_norm")):
        records.append(("step." + n, steps[:, k], DTYPE_F64))
    records += [("final." + n, p.numpy(), DTYPE_F32) for n, p in zip(names, ref["final"])]
    w.u32(len(records))
    for name, a, dtype in records:
        w.record(name, a, dtype)
    data = w.bytes()
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def read_fixture(path):
    """The reader of the format (also a check of the writer)."""
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    if data[:8] != MAGIC:
        raise ValueError("not a reference fixture")
    off = 8
    h = {"version": take("I")}
    if h["version"] != VERSION:
        raise ValueError(f"version {h['version']}")
    h["tile"], h["energy"], n_conv = take("3I")
    h["convs"] = [take("13I") for _ in range(n_conv)]
    h["hidden"], h["latent"] = take("2I")
    h["beta"] = take("d")
    h["loss"], h["batch"] = take("2I")
    h["seed"] = take("Q")
    h["lr"], h["beta1"], h["beta2"], h["adam_eps"], h["max_norm"] = take("5d")
    h["steps"], h["n_params"], n_records = take("3I")
    recs = {}
    order = []
    for _ in range(n_records):
        n = take("I")
        name = data[off:off + n].decode("ascii")
        off += n
        dtype, ndim = take("2I")
        dims = [take("I") for _ in range(ndim)]
        dt = np.dtype("<f4" if dtype == DTYPE_F32 else "<f8")
        count = int(np.prod(dims)) if dims else 1
        recs[name] = np.frombuffer(data, dt, count, off).reshape(dims)
        off += count * dt.itemsize
        order.append(name)
    if off != len(data):
        raise ValueError(f"{len(data) - off} trailing bytes")
    return h, order, recs


def make_case(kind, out_dir):
    arch = Arch(loss=kind, **TINY)
    seed = FIRST_SEED + 100 * kind
    while True:
        torch.manual_seed(seed)
        model32 = CVAE(arch)
        x = torch.rand(BATCH, arch.tile, arch.tile, arch.energy)
        eps = torch.randn(BATCH, arch.latent)
        model64 = copy.deepcopy(model32).double()
        max_norm, gap = choose_max_norm(model64, x.double(), eps.double())
        ref = run_case(model64, x.double(), eps.double(), max_norm, record_relu=True)
        ref["model64"] = model64
        why = check_case(model32, x, eps, max_norm, ref)
        if not why:
            break
        print(f"{LOSS_NAMES[kind]}: seed {seed} skipped: {'; '.join(why)}")
        seed += 1
    names = param_names(model32)
    params = [p.detach().clone() for p in model32.state_dict().values()]
    path = os.path.join(out_dir, f"cvae_tiny_{LOSS_NAMES[kind]}.bin")
    size = write_fixture(path, arch, BATCH, seed, max_norm, names, x, eps, params, ref)

    # Round trip, and float32 PyTorch against the float64 answer stored.
    h, order, recs = read_fixture(path)
    assert order[2:2 + h["n_params"]] == names
    assert np.array_equal(recs["logits"], ref["logits"].float().numpy())
    dev32 = deviations(run_case(model32, x, eps, max_norm), ref)
    limits = {"logits": TOL_TENSOR, "mulv": TOL_TENSOR, "grads": TOL_TENSOR, "loss": TOL_LOSS,
              "steps": TOL_STEP, "final": TOL_FINAL}
    for k, v in dev32.items():  # torch's own float32 run must pass the C test with room to spare
        if v * 10 > limits[k]:
            raise SystemExit(f"{path}: float32 torch misses the stored answer by {v:.2g} in {k}")
    norms = [s[3] for s in ref["steps"]]
    print(f"{path}: {size} bytes, seed {seed}, {sum(p.numel() for p in params)} parameters")
    print(f"  loss {ref['loss'][0]:.6f} (rec {ref['loss'][1]:.6f}, kl {ref['loss'][2]:.6f}); "
          f"step losses {[round(s[0], 5) for s in ref['steps']]}")
    print(f"  grad norms {[round(n, 4) for n in norms]}, max_norm {max_norm:.6g} "
          f"(clips steps {[i for i, n in enumerate(norms) if n > max_norm]})")
    print(f"  min ReLU margin {ref['relu_margin']:.2g}; under gradient noise {NOISE}: "
          f"steps {ref['noise_dev']['steps']:.2g}, final {ref['noise_dev']['final']:.2g}")
    print("  float32 torch vs stored float64: " + ", ".join(f"{k} {v:.2g}" for k, v in dev32.items()))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    torch.set_num_threads(1)
    for kind in sorted(LOSS_NAMES):
        make_case(kind, out_dir)


if __name__ == "__main__":
    main()
