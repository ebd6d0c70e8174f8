"""The siamese branch: a compact CNN → 128-d L2-normalized embedding.

Four conv stages (3×3 conv, BatchNorm, ReLU; max-pool between stages), then the feature map is
average-pooled to a small fixed grid — keeping coarse layout, which matters for signatures —
flattened, and projected to the embedding. L2 normalization is part of the graph, so the
exported ONNX output is already normalized (manifest `l2_normalized = true`) and cosine is the
native metric.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _stage(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Branch(nn.Module):
    """`stem`: "s2" (signature-v1: one 5×5 conv at stride 2 on the input) or "gentle" (a 3×3 conv
    at full resolution with half the first width, then a 3×3 conv at stride 2: the 2-px strokes
    of a 96-px-high signature are seen before anything is downsampled).
    `pool`: "grid" (average over a `grid` of cells; (1, 1) is global average pooling) or
    "hybrid" (global average *and* the `grid` cells, concatenated: stroke texture, which
    generalises across writers, beside coarse layout, which tells writers apart)."""

    def __init__(self, channels: int = 1, widths=(32, 64, 96, 128), grid=(2, 6), dim: int = 128, dropout: float = 0.2,
                 stem: str = "s2", pool: str = "grid"):
        super().__init__()
        if stem == "s2":
            self.stem = nn.Sequential(
                nn.Conv2d(channels, widths[0], 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
            )
        elif stem == "gentle":
            half = max(8, widths[0] // 2)
            self.stem = nn.Sequential(
                nn.Conv2d(channels, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
                nn.Conv2d(half, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
            )
        else:
            raise ValueError(f"unknown stem {stem!r}; use s2 or gentle")
        if pool not in ("grid", "hybrid"):
            raise ValueError(f"unknown pool {pool!r}; use grid or hybrid")
        self.pool = pool
        self.stages = nn.ModuleList(
            [_stage(widths[0], widths[1], 1), _stage(widths[1], widths[2], 2), _stage(widths[2], widths[3], 2)]
        )
        self.grid = tuple(grid)
        self.dropout = nn.Dropout(dropout)
        features = widths[3] * grid[0] * grid[1] + (widths[3] if pool == "hybrid" else 0)
        self.fc = nn.Linear(features, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(F.max_pool2d(x, 2))
        pooled = torch.flatten(adaptive_avg_pool(x, self.grid), 1)
        if self.pool == "hybrid":
            pooled = torch.cat([x.mean((2, 3)), pooled], 1)
        x = self.fc(self.dropout(pooled))
        return F.normalize(x, p=2.0, dim=1, eps=1e-12)


def adaptive_avg_pool(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """`F.adaptive_avg_pool2d` written as slices and means (same bins: start = floor(i·H/g),
    end = ceil((i+1)·H/g)), because ONNX has no adaptive pooling for sizes the grid does not
    divide; the input's H and W are fixed by the manifest, so the slices are constants."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    gh, gw = grid
    rows = []
    for i in range(gh):
        h0, h1 = (i * h) // gh, -(-((i + 1) * h) // gh)
        cols = [x[:, :, h0:h1, (j * w) // gw : -(-((j + 1) * w) // gw)].mean((2, 3)) for j in range(gw)]
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


class Conv4(nn.Module):
    """The few-shot standard (Vinyals et al. 2016, Snell et al. 2017) for small square inputs:
    `blocks` × [3×3 conv (width), BatchNorm, ReLU, 2×2 max-pool], flattened, then a linear
    projection to `dim` and L2 normalization (so the output follows the same contract as
    `Branch`). 28×28 → 1×1×width after four blocks."""

    def __init__(self, channels: int = 1, width: int = 64, blocks: int = 4, dim: int = 128, dropout: float = 0.0, side: int = 28):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            side //= 2
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width * side * side, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        x = self.fc(self.dropout(x))
        return F.normalize(x, p=2.0, dim=1, eps=1e-12)


def build(config: dict) -> nn.Module:
    if config.get("arch", "branch") == "conv4":
        return Conv4(
            channels=config.get("channels", 1),
            width=config.get("widths", (64,))[0],
            blocks=config.get("blocks", 4),
            dim=config.get("dim", 128),
            dropout=config.get("dropout", 0.0),
            side=config.get("side", 28),
        )
    return Branch(
        channels=config.get("channels", 1),
        widths=tuple(config.get("widths", (32, 64, 96, 128))),
        grid=tuple(config.get("grid", (2, 6))),
        dim=config.get("dim", 128),
        dropout=config.get("dropout", 0.2),
        stem=config.get("stem", "s2"),
        pool=config.get("pool", "grid"),
    )
