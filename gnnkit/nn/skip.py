"""Skip connections: a residual wrapper around any conv and Jumping Knowledge."""
from typing import Any, List, Optional

import torch
from torch import Tensor
from torch.nn import LSTM, Linear

_MODES = ("cat", "max", "sum", "mean", "last", "lstm")


class Residual(torch.nn.Module):
    r"""``h' = conv(h, ...) + h`` (a linear projection of ``h`` when the widths differ).

    .. math::
        \mathbf{h}^{(l)} = \mathrm{GC}\big(\mathbf{h}^{(l-1)}\big) + \mathbf{W}\mathbf{h}^{(l-1)}

    with :math:`\mathbf{W} = \mathbf{I}` when ``in_channels == out_channels`` (He et al. 2016;
    the lecture's "skip connection, option 1").  Extra forward arguments go to the conv.

    Args:
        conv: the wrapped layer; called as ``conv(x, *args, **kwargs)``.
        in_channels, out_channels: widths; a projection is learned only if they differ.
    """

    def __init__(self, conv: torch.nn.Module, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = conv
        self.in_channels, self.out_channels = in_channels, out_channels
        self.proj = Linear(in_channels, out_channels, bias=False) if in_channels != out_channels else None

    def reset_parameters(self) -> None:
        if hasattr(self.conv, "reset_parameters"):
            self.conv.reset_parameters()
        if self.proj is not None:
            self.proj.reset_parameters()

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = self.conv(x, *args, **kwargs)
        if out.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"Residual needs the conv to keep one row per node: input {list(x.shape)}, "
                             f"output {list(out.shape)}")
        if out.size(-1) != self.out_channels or x.size(-1) != self.in_channels:
            raise ValueError(f"Residual(in_channels={self.in_channels}, out_channels={self.out_channels}) got input "
                             f"width {x.size(-1)} and conv output width {out.size(-1)}; fix: declare the widths the "
                             "conv takes and returns")
        return out + (x if self.proj is None else self.proj(x))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.conv})"


class JumpingKnowledge(torch.nn.Module):
    r"""Jumping Knowledge (`Xu et al. 2018 <https://arxiv.org/abs/1806.03536>`_): combine every
    layer's node representation.

    .. math::
        \mathbf{x}_v = f\big(\mathbf{x}_v^{(1)}, \ldots, \mathbf{x}_v^{(L)}\big), \quad
        f \in \{\Vert, \max, \textstyle\sum, \mathrm{mean}, \text{last}, \text{LSTM-attention}\}

    ``cat``, ``max`` and ``lstm`` are drop-ins for :class:`torch_geometric.nn.JumpingKnowledge`
    (same arguments, same ``state_dict`` keys for ``lstm``).

    Args:
        mode: ``"cat"``, ``"max"``, ``"sum"``, ``"mean"``, ``"last"`` or ``"lstm"``.
        channels: layer width (``lstm`` only).
        num_layers: number of layers (``lstm`` only).
    """

    def __init__(self, mode: str, channels: Optional[int] = None, num_layers: Optional[int] = None):
        super().__init__()
        if not isinstance(mode, str) or mode.lower() not in _MODES:
            raise ValueError(f"JumpingKnowledge: mode={mode!r} is not supported; use one of {_MODES}")
        mode = mode.lower()
        self.mode = mode
        self.channels = channels
        self.num_layers = num_layers
        if mode == "lstm":
            if channels is None or num_layers is None:
                raise ValueError("JumpingKnowledge(mode='lstm') needs channels and num_layers")
            hidden = (num_layers * channels) // 2
            self.lstm = LSTM(channels, hidden, bidirectional=True, batch_first=True)
            self.att = Linear(2 * hidden, 1)
        else:
            self.lstm = None
            self.att = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.lstm is not None:
            self.lstm.reset_parameters()
            self.att.reset_parameters()

    def forward(self, xs: List[Tensor]) -> Tensor:
        if len(xs) == 0:
            raise ValueError("JumpingKnowledge needs a non-empty list of layer outputs")
        if self.mode == "cat":
            return torch.cat(xs, dim=-1)
        if self.mode == "last":
            return xs[-1]
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"JumpingKnowledge(mode={self.mode!r}) needs equally shaped layer outputs, got "
                             f"{[list(x.shape) for x in xs]}; use mode='cat' for different widths")
        x = torch.stack(xs, dim=-1) if self.mode != "lstm" else torch.stack(xs, dim=1)
        if self.mode == "max":
            return x.max(dim=-1)[0]
        if self.mode == "sum":
            return x.sum(dim=-1)
        if self.mode == "mean":
            return x.mean(dim=-1)
        alpha, _ = self.lstm(x)                # [N, L, 2 * hidden]
        alpha = self.att(alpha).squeeze(-1)    # [N, L]
        alpha = torch.softmax(alpha, dim=-1)
        return (x * alpha.unsqueeze(-1)).sum(dim=1)

    def __repr__(self) -> str:
        if self.mode == "lstm":
            return f"{self.__class__.__name__}({self.mode}, channels={self.channels}, layers={self.num_layers})"
        return f"{self.__class__.__name__}({self.mode})"
