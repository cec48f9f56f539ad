"""The lip network: causal Conv1D over normalised log-mel + GRU + linear head -> PCA coefficients.

Streaming by construction: `forward(mel (B, n, M), *state) -> (coeffs (B, n, K), *new_state)`.
The convolutions are causal (their left context is carried in the state), the GRU carries its
hidden state, so feeding a file in one call or frame by frame gives the same numbers.
Output row j stands for the mel frame `lookahead` behind input frame j: the look-ahead is
only a shift of the training targets, never a peek into the future.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LipNetConfig:
    n_mels: int = 80
    n_out: int = 5
    conv_channels: int = 96
    conv_kernels: tuple[int, ...] = (3, 3)
    hidden: int = 128
    gru_layers: int = 1
    lookahead: int = 5  # mel frames (10 ms each); training sets it from TrainConfig.lookahead_ms
    dropout: float = 0.1  # training only (GRU input and head input)
    smooth: float = 0.0  # >0: a fixed causal exponential smoothing of the output (pole `smooth`), trained through
    smooth_taps: int = 8  # ...as a FIR of this many taps (its past inputs are one more state tensor)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["conv_kernels"] = list(self.conv_kernels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LipNetConfig":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "conv_kernels" in kw:
            kw["conv_kernels"] = tuple(kw["conv_kernels"])
        return cls(**kw)


class LipNet(nn.Module):
    def __init__(self, cfg: LipNetConfig, out_scale: torch.Tensor | None = None, out_bias: torch.Tensor | None = None):
        super().__init__()
        if any(k < 2 for k in cfg.conv_kernels):
            raise ValueError("conv kernels must be >= 2 (their left context is the streaming state)")
        self.cfg = cfg
        chans = [cfg.n_mels] + [cfg.conv_channels] * len(cfg.conv_kernels)
        self.convs = nn.ModuleList(nn.Conv1d(chans[i], chans[i + 1], k) for i, k in enumerate(cfg.conv_kernels))
        self.gru = nn.GRU(chans[-1], cfg.hidden, num_layers=cfg.gru_layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden, cfg.n_out)
        self.drop = nn.Dropout(cfg.dropout)
        # the head predicts standardised coefficients; these buffers map back to PCA units
        self.register_buffer("out_scale", torch.ones(cfg.n_out) if out_scale is None else out_scale.float().clone())
        self.register_buffer("out_bias", torch.zeros(cfg.n_out) if out_bias is None else out_bias.float().clone())
        if cfg.smooth > 0:
            w = cfg.smooth ** torch.arange(cfg.smooth_taps, dtype=torch.float32)
            w = (w / w.sum()).flip(0)  # conv1d correlates: the last tap weighs the newest frame
            self.register_buffer("smooth_kernel", w.repeat(cfg.n_out, 1, 1))

    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        chans = [self.cfg.n_mels] + [self.cfg.conv_channels] * len(self.cfg.conv_kernels)
        shapes = [(batch, chans[i], k - 1) for i, k in enumerate(self.cfg.conv_kernels)]
        shapes.append((self.cfg.gru_layers, batch, self.cfg.hidden))
        if self.cfg.smooth > 0:
            shapes.append((batch, self.cfg.n_out, self.cfg.smooth_taps - 1))
        return shapes

    def state_names(self) -> list[str]:
        return ([f"conv{i}_state" for i in range(len(self.cfg.conv_kernels))] + ["gru_state"]
                + (["smooth_state"] if self.cfg.smooth > 0 else []))

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(s) for s in self.state_shapes(batch)]

    def forward(self, mel: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """mel (B, n, n_mels) normalised; state as from `initial_state` -> (coeffs (B, n, K), *new_state)."""
        x = mel.transpose(1, 2)  # (B, C, n)
        new_state = []
        nc = len(self.convs)
        for conv, st in zip(self.convs, state[:nc]):
            k = conv.kernel_size[0]
            x = torch.cat([st, x], dim=2)
            new_state.append(x[:, :, -(k - 1):])
            x = torch.relu(conv(x))
        y, h = self.gru(self.drop(x.transpose(1, 2)), state[nc])
        new_state.append(h)
        out = self.head(self.drop(y)) * self.out_scale + self.out_bias
        if self.cfg.smooth > 0:  # causal FIR over time, per component (unit DC gain: calibration commutes)
            z = torch.cat([state[nc + 1], out.transpose(1, 2)], dim=2)
            new_state.append(z[:, :, -(self.cfg.smooth_taps - 1):])
            out = torch.nn.functional.conv1d(z, self.smooth_kernel, groups=self.cfg.n_out).transpose(1, 2)
        return (out, *new_state)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class LipEnsemble(nn.Module):
    """Average of several LipNets (different initialisations), trained each on its own loss.

    Same streaming interface as LipNet; the state is the members' states one after the other.
    """

    def __init__(self, members: list[LipNet]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self._n = [len(m.state_shapes()) for m in members]

    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        return [s for m in self.members for s in m.state_shapes(batch)]

    def state_names(self) -> list[str]:
        return [f"m{i}_{n}" for i, m in enumerate(self.members) for n in m.state_names()]

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(s) for s in self.state_shapes(batch)]

    def member_outputs(self, mel: torch.Tensor, *state: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outs, new_state, i = [], [], 0
        for m, n in zip(self.members, self._n):
            o, *st = m(mel, *state[i:i + n])
            outs.append(o)
            new_state.extend(st)
            i += n
        return outs, new_state

    def forward(self, mel: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs, new_state = self.member_outputs(mel, *state)
        return (torch.stack(outs).mean(0), *new_state)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
