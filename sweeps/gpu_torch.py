"""A PyTorch trial for GPU workers (synthetic data: no download). Resumes from its checkpoint."""

from __future__ import annotations

from typing import Any


def train(hex: Any) -> dict[str, float]:
    import torch
    from torch import nn

    device = "cuda" if torch.cuda.is_available() else "cpu"  # CUDA_VISIBLE_DEVICES is our slot
    lr = hex.log_uniform_values("lr", 1e-5, 1e-1)
    hidden = hex.categorical("hidden", [128, 256, 512])
    dropout = hex.uniform("dropout", 0.0, 0.5)
    batch = int(hex.hyper_param("batch_size", 128))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 64, generator=gen)
    y = (x[:, :8].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
                          nn.Linear(hidden, 2)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ckpt = hex.checkpoint_dir / "state.pt"
    start = 0
    if ckpt.exists():  # a re-run attempt resumes where the lost one stopped
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"] + 1
    best = 0.0
    for epoch in range(start, 20):
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(x.to(device)).argmax(1) == y.to(device)).float().mean())
        best = max(best, acc)
        hex.log(step=epoch, valid_acc=acc)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch}, ckpt)
    return {"valid_acc": best}
