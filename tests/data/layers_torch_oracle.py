#!/usr/bin/python3
"""PyTorch's answer for tests/test_optim.c (torch_oracle_training_steps).

Usage: layers_torch_oracle.py DIR BATCH D H L STEPS LR BETA MAX_NORM

A miniature of the CVAE's dense part, trained for STEPS steps:
  encoder  Linear(D, H) · ReLU · Linear(H, 2L) → mu, logvar = chunk(2, dim=1)
  latent   z = mu + exp(logvar / 2) · eps[step]
  decoder  Linear(L, H) · ReLU · Linear(H, D) → logits
  loss     (BCEWithLogits(logits, x, reduction='sum') + BETA · KL) / BATCH,
           KL = −½ Σ (1 + logvar − mu² − exp(logvar))
  step     clip_grad_norm_(MAX_NORM), then torch.optim.Adam(lr=LR) with its
           defaults (betas 0.9, 0.999, eps 1e-8, no weight decay)

Reads, all raw little-endian float32:
  DIR/params0.f32  the initial parameters, flat, layer by layer, weight
                   ([out][in], nn.Linear's layout) then bias
  DIR/x.f32        [BATCH][D] inputs, also the BCE targets
  DIR/eps.f32      [STEPS][BATCH][L] the reparameterisation noise
Writes DIR/torch_out.f32: per step, bce, kl, total gradient norm (before
the update) and then the flat parameters after the update.
"""
import sys

import numpy as np
import torch


def load_flat(params, flat):
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(torch.from_numpy(flat[offset:offset + n].reshape(p.shape)))
            offset += n
    if offset != flat.size:
        raise SystemExit(f"params0.f32 holds {flat.size} values, the model {offset}")


def main():
    d = sys.argv[1]
    batch, dim, hidden, latent, steps = (int(a) for a in sys.argv[2:7])
    lr, beta, max_norm = (float(a) for a in sys.argv[7:10])
    torch.set_num_threads(1)

    x = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype="<f4").reshape(batch, dim))
    eps = torch.from_numpy(np.fromfile(f"{d}/eps.f32", dtype="<f4").reshape(steps, batch, latent))
    layers = [torch.nn.Linear(dim, hidden), torch.nn.Linear(hidden, 2 * latent),
              torch.nn.Linear(latent, hidden), torch.nn.Linear(hidden, dim)]
    params = [t for layer in layers for t in (layer.weight, layer.bias)]
    load_flat(params, np.fromfile(f"{d}/params0.f32", dtype="<f4"))
    enc1, enc2, dec1, dec2 = layers

    opt = torch.optim.Adam(params, lr=lr)
    bce_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    out = []
    for step in range(steps):
        opt.zero_grad()
        mu, logvar = enc2(torch.relu(enc1(x))).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * eps[step]
        logits = dec2(torch.relu(dec1(z)))
        bce = bce_fn(logits, x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        ((bce + beta * kl) / batch).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        opt.step()
        flat = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
        out.append(np.concatenate([[bce.item(), kl.item(), norm.item()], flat]).astype("<f4"))
    np.concatenate(out).tofile(f"{d}/torch_out.f32")


if __name__ == "__main__":
    main()
