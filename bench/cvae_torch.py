#!/usr/bin/python3
"""PyTorch's side of cvae-bench: the same 3D-CVAE (tests/reference/cvae_reference.py,
the module whose state_dict order is lib/nn/cvae.h's parameter block), the same
tiles, the same optimiser settings, timed on the CPU with the same thread count.

Run by bench/cvae_bench.c, which writes a JSON description (--config) of the
architectures, the raw float32 files it exported and the settings. Phases,
one per process (so that no phase inherits another's freed memory):

  fast-train  one training epoch of the FAST preset: the exported training
              tiles, shuffled, in batches of the preset's size; per batch
              forward, loss (cvae_reference.loss_terms), backward,
              clip_grad_norm_, Adam step. The weights start from ours (the
              exported initial block).
  fast-infer  whole-SI inference with OUR trained weights: cut the prepared
              cube into the tiles of eelsvae_cube_to_tiles, run them in
              batches under torch.no_grad() with z = mu, sigmoid, and put the
              cube back together averaging overlaps, as
              eelsvae_model_reconstruct does; the result is compared with ours.
  paper       one training step (batch 4) of the PAPER preset on the exported
              tiles, from PyTorch's default initialisation (--paper-steps
              steps are timed; the first is the one reported).

Each run prints one line "RESULT {json}" (and appends it to --result):
seconds, peak resident memory (VmHWM, reset through /proc/self/clear_refs at
the start of the phase, after malloc_trim) and the resident memory at the
start, in MiB. Exit status 3: NumPy or PyTorch is not installed.
"""
import argparse
import ctypes
import gc
import importlib.util
import json
import os
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:  # the peer is optional: cvae-bench reports it skipped
    print(f"skipped: PyTorch peer ({e.name} not installed)")
    sys.exit(3)

clock = time.perf_counter  # or time.process_time with --cpu-clock
HERE = os.path.dirname(os.path.abspath(__file__))


def load_reference():
    """tests/reference/cvae_reference.py, imported by path."""
    path = os.path.join(HERE, "..", "tests", "reference", "cvae_reference.py")
    spec = importlib.util.spec_from_file_location("cvae_reference", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cvae_reference"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


ref = load_reference()


# ---- memory ------------------------------------------------------------------

def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


try:
    LIBC = ctypes.CDLL("libc.so.6")
except OSError:
    LIBC = None


def reset_peak():
    """Give freed heap memory back (so that the resident set is what is live),
    reset VmHWM to the current RSS; returns the RSS (MiB)."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_mib("VmRSS")


# ---- model -------------------------------------------------------------------

def make_arch(d):
    convs = [ref.ConvSpec(c["channels"], tuple(c["kernel"]), tuple(c["stride"]), tuple(c["padding"]))
             for c in d["convs"]]
    return ref.Arch(tile=d["tile"], energy=d["energy"], convs=convs, hidden=d["hidden"], latent=d["latent"],
                    beta=d["beta"], loss=d["loss"])


def load_params(model, path):
    """Copy a flat float32 block in state_dict order (cvae.h's layout) into the model."""
    block = np.fromfile(path, dtype="<f4")
    state = model.state_dict()
    need = sum(t.numel() for t in state.values())
    if block.size != need:
        raise SystemExit(f"{path}: {block.size} floats, the module has {need} parameters")
    at = 0
    with torch.no_grad():
        for t in state.values():
            t.copy_(torch.from_numpy(block[at:at + t.numel()]).view_as(t))
            at += t.numel()


def load_tiles(path, n, arch):
    x = np.fromfile(path, dtype="<f4")
    shape = (n, arch.tile, arch.tile, arch.energy)
    if x.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {x.size} floats, expected {shape}")
    return torch.from_numpy(x.reshape(shape))


# ---- training ------------------------------------------------------------------

def train_step(model, opt, arch, x, clip):
    eps = torch.randn(x.shape[0], arch.latent)
    logits, mulv = model(x, eps)
    loss, rec, kl = ref.loss_terms(arch, logits, x, mulv)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss)


def phase_fast_train(cfg, f):
    arch = make_arch(f["arch"])
    model = ref.CVAE(arch)
    load_params(model, f["init_params"])
    tiles = load_tiles(f["train_tiles"], f["n_train"], arch)
    opt = torch.optim.Adam(model.parameters(), lr=f["lr"])
    batch = f["batch"]
    torch.manual_seed(f.get("seed", 1))
    rss0 = reset_peak()
    t0 = clock()
    order = torch.randperm(tiles.shape[0])
    total, steps = 0.0, 0
    for i in range(0, tiles.shape[0], batch):
        idx = order[i:i + batch]
        x = tiles.index_select(0, idx)  # gathered per batch, as the trainer does
        total += train_step(model, opt, arch, x, f["clip"]) * x.shape[0]
        steps += 1
    seconds = clock() - t0
    return {"phase": "fast-train", "seconds": seconds, "peak_mib": status_mib("VmHWM"), "start_mib": rss0,
            "tiles": int(tiles.shape[0]), "steps": steps, "mean_loss": total / tiles.shape[0]}


# ---- inference -------------------------------------------------------------------

def tile_origins(n, tile):
    """eelsvae_cube_to_tiles's origins: i·T, the last one pulled back to fit."""
    return [min(i * tile, n - tile) for i in range((n + tile - 1) // tile)]


def reconstruct_batch(model, arch, x):
    """sigmoid of the decoder at z = mu (the model's forward, without the sampling)."""
    L = arch.latent
    h = model.enc(x.unsqueeze(1)).flatten(1)
    mu = model.fc_mulv(torch.relu(model.fc_enc(h)))[:, :L]
    d = torch.relu(model.fc_unflat(torch.relu(model.fc_dec(mu))))
    d = d.reshape(x.shape[0], model.layout.stage_channels[-1], *model.layout.stage_dims[-1])
    return torch.sigmoid(model.dec(d).squeeze(1))


def whole_si(model, arch, cube, batch):
    """Cut, run in batches, put back averaging overlaps: eelsvae_model_reconstruct's work."""
    T = arch.tile
    ny, nx = cube.shape[0], cube.shape[1]
    ys, xs = tile_origins(ny, T), tile_origins(nx, T)
    origins = [(y, x) for y in ys for x in xs]
    tiles = torch.stack([cube[y:y + T, x:x + T] for y, x in origins])
    out = torch.zeros_like(cube)
    count = torch.zeros(ny, nx, 1)
    with torch.no_grad():
        for i in range(0, len(origins), batch):
            rec = reconstruct_batch(model, arch, tiles[i:i + batch])
            for k, (y, x) in enumerate(origins[i:i + batch]):
                out[y:y + T, x:x + T] += rec[k]
                count[y:y + T, x:x + T] += 1
    return out / count, tiles


def phase_fast_infer(cfg, f):
    arch = make_arch(f["arch"])
    model = ref.CVAE(arch)
    load_params(model, f["trained_params"])
    model.eval()
    ny, nx, ne = f["prepared_shape"]
    cube = torch.from_numpy(np.fromfile(f["prepared"], dtype="<f4").reshape(ny, nx, ne))
    rss0 = reset_peak()
    t0 = clock()
    recon, tiles = whole_si(model, arch, cube, f["infer_batch"])
    seconds = clock() - t0
    peak = status_mib("VmHWM")
    ours_tiles = load_tiles(f["infer_tiles"], f["n_infer"], arch)
    same_tiles = tiles.shape == ours_tiles.shape and bool(torch.equal(tiles, ours_tiles))
    del ours_tiles
    ours = torch.from_numpy(np.fromfile(f["ours_recon"], dtype="<f4").reshape(ny, nx, ne))
    diff = float((recon - ours).abs().max())
    return {"phase": "fast-infer", "seconds": seconds, "peak_mib": peak, "start_mib": rss0,
            "tiles": int(tiles.shape[0]), "same_tiles": same_tiles, "max_abs_diff": diff}


# ---- the paper preset ----------------------------------------------------------------

def phase_paper(cfg, p):
    arch = make_arch(p["arch"])
    tiles = load_tiles(p["tiles"], p["n_tiles"], arch)
    rss0 = reset_peak()
    torch.manual_seed(1)
    t0 = clock()
    model = ref.CVAE(arch)  # PyTorch's default initialisation
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    create = clock() - t0
    times, losses = [], []
    for _ in range(p.get("steps", 1)):
        t0 = clock()
        losses.append(train_step(model, opt, arch, tiles, p["clip"]))
        times.append(clock() - t0)
    return {"phase": "paper-step", "seconds": times[0], "step_seconds": times, "create_seconds": create,
            "peak_mib": status_mib("VmHWM"), "start_mib": rss0, "tiles": int(tiles.shape[0]),
            "parameters": sum(t.numel() for t in model.parameters()), "loss": losses[0]}


# One phase per process, so that no phase inherits another's freed memory.
PHASES = {"fast-train": (phase_fast_train, "fast"), "fast-infer": (phase_fast_infer, "fast"),
          "paper": (phase_paper, "paper")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="JSON written by cvae-bench")
    ap.add_argument("--phase", required=True, choices=list(PHASES))
    ap.add_argument("--result", help="append the RESULT line here")
    ap.add_argument("--cpu-clock", action="store_true", help="time with the process's CPU time (all threads)")
    a = ap.parse_args()
    global clock
    if a.cpu_clock:
        clock = time.process_time
    with open(a.config) as fh:
        cfg = json.load(fh)
    torch.set_num_threads(cfg["threads"])
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, mkldnn "
          f"{'on' if torch.backends.mkldnn.is_available() else 'off'}", flush=True)
    fn, section = PHASES[a.phase]
    line = json.dumps(fn(cfg, cfg[section]))
    print("RESULT " + line, flush=True)
    if a.result:
        with open(a.result, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
