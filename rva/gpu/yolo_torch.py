"""YOLOv8 / YOLO11 networks in plain torch, loaded from Ultralytics ``.pt`` checkpoints without ultralytics.

An Ultralytics checkpoint is a pickle of the model *objects*: each layer's class name, its attributes
(``cv1``, ``m``, ``f``, ``i``, ...) and its tensors. Here a restricted unpickler maps each Ultralytics
class name to a small re-implementation below that keeps those attribute names and supplies the
``forward``; every other global is refused unless it is on an allow-list (tensor rebuilders, a few
``torch.nn`` layers, ``OrderedDict``...). So a checkpoint loads with torch alone, runs no code from
the file, and an unknown layer fails with its name instead of silently computing something else.

The forwards follow the published architecture (Conv-BN-SiLU blocks, C2f / C3k2 / SPPF / C2PSA,
the anchor-free DFL head): the output is the Ultralytics export layout that
:class:`rva.detect.yolo.YoloHead` decodes, ``(b, 4 + nc [+ k*d], anchors)`` with ``cx, cy, w, h`` in
input pixels and sigmoid class scores. ``tests/gpu/test_yolo_torch.py`` checks it against
ultralytics itself where that is installed.
"""

from __future__ import annotations

import builtins
import collections
import pickle
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rva.detect.yolo import ModelInfo
from rva.errors import ModelError

# --- the layers ---------------------------------------------------------------------------------


class Conv(nn.Module):
    """Conv2d -> BatchNorm2d -> activation (``conv``, ``bn``, ``act``); ``bn`` is gone once fused."""

    conv: nn.Conv2d
    act: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        y = self.conv(x)
        bn = self._modules.get("bn")
        return self.act(y if bn is None else bn(y))  # type: ignore[no-any-return]


class DWConv(Conv):
    """Depth-wise :class:`Conv` (only the ``groups`` of its Conv2d differ)."""


class Concat(nn.Module):
    """Concatenate a list of tensors along dimension ``d``."""

    d: int

    def forward(self, xs: list[Tensor]) -> Tensor:
        """Concatenate."""
        return torch.cat(xs, self.d)


class Bottleneck(nn.Module):
    """Two convolutions with an optional residual (``cv1``, ``cv2``, ``add``)."""

    cv1: nn.Module
    cv2: nn.Module
    add: bool

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Split in two, run ``m`` blocks on one half keeping every intermediate, concatenate, fuse."""

    cv1: nn.Module
    cv2: nn.Module
    m: nn.ModuleList

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        ys = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class C3k2(C2f):
    """YOLO11's C2f whose inner blocks are :class:`C3k` or :class:`Bottleneck`."""


class C3(nn.Module):
    """CSP block: ``cv3(cat(m(cv1(x)), cv2(x)))``."""

    cv1: nn.Module
    cv2: nn.Module
    cv3: nn.Module
    m: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    """:class:`C3` with a configurable kernel in its bottlenecks (the weights say which)."""


class SPPF(nn.Module):
    """Spatial pyramid pooling: one max-pool applied three times in a row, all four concatenated."""

    cv1: nn.Module
    cv2: nn.Module
    m: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(self.m(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, plus a depth-wise positional conv."""

    num_heads: int
    key_dim: int
    head_dim: int
    scale: float
    qkv: nn.Module
    proj: nn.Module
    pe: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, self.key_dim * 2 + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(y)  # type: ignore[no-any-return]


class PSABlock(nn.Module):
    """Attention then a feed-forward conv pair, each with an optional residual."""

    attn: nn.Module
    ffn: nn.Module
    add: bool

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)  # type: ignore[no-any-return]


class C2PSA(nn.Module):
    """Split in two, run :class:`PSABlock` s on one half, concatenate, fuse."""

    c: int
    cv1: nn.Module
    cv2: nn.Module
    m: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))  # type: ignore[no-any-return]


class DFL(nn.Module):
    """Distribution focal loss integral: the expected value of each side's distance distribution."""

    conv: nn.Conv2d
    c1: int


class Detect(nn.Module):
    """Anchor-free head: per level a box branch (``cv2``, 4 x ``reg_max`` bins) and a class branch (``cv3``).

    Returns ``(b, 4 + nc, anchors)`` in float32: ``cx, cy, w, h`` in input pixels, sigmoid scores.
    The decode runs in float32 whatever the network's dtype: it is a small share of the work and
    keeps box corners exact to well under a pixel at 640.
    """

    nc: int
    nl: int
    no: int
    reg_max: int
    stride: Tensor
    cv2: nn.ModuleList
    cv3: nn.ModuleList
    dfl: DFL
    _anchor_cache: ClassVar[dict[tuple[Any, ...], tuple[Tensor, Tensor]]] = {}

    def forward(self, xs: list[Tensor]) -> Tensor:
        """Run the branches on the ``nl`` feature maps and decode boxes."""
        feats = [torch.cat((self.cv2[i](xs[i]), self.cv3[i](xs[i])), 1) for i in range(self.nl)]
        return self._decode(feats)

    def _decode(self, feats: list[Tensor]) -> Tensor:
        b = feats[0].shape[0]
        x = torch.cat([f.view(b, self.no, -1) for f in feats], 2).float()
        box, cls = x.split((self.reg_max * 4, self.nc), 1)
        anchors, strides = self._anchors(feats)
        proj = self.dfl.conv.weight.detach().reshape(-1).float()
        dist = (box.view(b, 4, self.reg_max, -1).softmax(2) * proj.view(1, 1, -1, 1)).sum(2)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = anchors - lt, anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)

    def _anchors(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Cell centres ``(1, 2, A)`` in grid units and strides ``(1, 1, A)``, cached per input shape."""
        key = (id(self), feats[0].device, *(tuple(f.shape[2:]) for f in feats))
        cached = self._anchor_cache.get(key)
        if cached is not None:
            return cached
        points, strides = [], []
        for f, s in zip(feats, self.stride.tolist(), strict=True):
            h, w = f.shape[2:]
            sy, sx = torch.meshgrid(
                torch.arange(h, device=f.device, dtype=torch.float32) + 0.5,
                torch.arange(w, device=f.device, dtype=torch.float32) + 0.5,
                indexing="ij",
            )
            points.append(torch.stack((sx, sy)).view(2, -1))
            strides.append(torch.full((1, h * w), float(s), device=f.device))
        out = torch.cat(points, 1).unsqueeze(0), torch.cat(strides, 1).unsqueeze(0)
        self._anchor_cache[key] = out
        return out


class Pose(Detect):
    """:class:`Detect` plus a keypoint branch (``cv4``): ``k`` points of ``(x, y, visibility)`` per anchor."""

    cv4: nn.ModuleList
    kpt_shape: list[int]
    nk: int

    def forward(self, xs: list[Tensor]) -> Tensor:
        """Run the box, class and keypoint branches; keypoints come last, in input pixels."""
        b = xs[0].shape[0]
        kpt = torch.cat([self.cv4[i](xs[i]).view(b, self.nk, -1) for i in range(self.nl)], -1).float()
        det = Detect.forward(self, xs)
        anchors, strides = self._anchors([xs[i] for i in range(self.nl)])
        k, d = self.kpt_shape
        y = kpt.view(b, k, d, -1)
        xy = (y[:, :, :2] * 2.0 + (anchors.unsqueeze(1) - 0.5)) * strides.unsqueeze(1)
        parts = [xy, y[:, :, 2:3].sigmoid()] if d == 3 else [xy]
        return torch.cat((det, torch.cat(parts, 2).view(b, self.nk, -1)), 1)


class DetectionModel(nn.Module):
    """The layer list: each layer reads from ``f`` (-1: the previous one) and is kept if its ``i`` is in ``save``."""

    model: nn.Sequential
    save: list[int]
    names: dict[int, str]

    def forward(self, x: Tensor) -> Tensor:
        """Run the network on a ``(b, 3, h, w)`` batch in ``[0, 1]`` RGB."""
        outputs: list[Tensor | None] = []
        y: Any = x
        for layer in self.model:
            f = layer.f
            if f != -1:
                y = outputs[f] if isinstance(f, int) else [y if j == -1 else outputs[j] for j in f]
            y = layer(y)
            outputs.append(y if layer.i in self.save else None)
        return y  # type: ignore[no-any-return]


class PoseModel(DetectionModel):
    """A :class:`DetectionModel` whose last layer is a :class:`Pose` head."""


# --- loading --------------------------------------------------------------------------------------

_LAYERS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (Conv, DWConv, Concat, Bottleneck, C2f, C3k2, C3, C3k, SPPF, Attention, PSABlock, C2PSA, DFL,
                Detect, Pose, DetectionModel, PoseModel)
}
_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch.nn.modules.conv", "Conv2d"): nn.Conv2d,
    ("torch.nn.modules.batchnorm", "BatchNorm2d"): nn.BatchNorm2d,
    ("torch.nn.modules.activation", "SiLU"): nn.SiLU,
    ("torch.nn.modules.container", "Sequential"): nn.Sequential,
    ("torch.nn.modules.container", "ModuleList"): nn.ModuleList,
    ("torch.nn.modules.pooling", "MaxPool2d"): nn.MaxPool2d,
    ("torch.nn.modules.upsampling", "Upsample"): nn.Upsample,
    ("torch.nn.modules.linear", "Identity"): nn.Identity,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "getattr"): builtins.getattr,
    ("builtins", "getattr"): builtins.getattr,
}


class _Unpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; Ultralytics layers become the classes above."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("ultralytics."):
            layer = _LAYERS.get(name)
            if layer is None:
                raise ModelError(f"unsupported Ultralytics layer {module}.{name}: not in rva.gpu.yolo_torch")
            return layer
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        found = _TORCH_GLOBALS.get((module, name))
        if found is None:
            raise ModelError(f"refusing to load {module}.{name} from a model checkpoint (not on the allow-list)")
        return found


class _RestrictedPickle:
    """The ``pickle_module`` handed to :func:`torch.load`."""

    Unpickler = _Unpickler
    __name__ = "rva_restricted_pickle"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _Unpickler(file, **kwargs).load()


def load_checkpoint(path: str | Path) -> tuple[DetectionModel, ModelInfo]:
    """Load an Ultralytics detect/pose ``.pt`` (its ``model`` entry) as a float32 eval-mode network.

    Args:
        path: The checkpoint file.

    Returns:
        The network (float32, CPU, eval mode, not fused) and its class names / keypoint layout.

    Raises:
        ModelError: missing or unreadable file, an unsupported layer, or not a detect/pose model.

    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickle)
    except ModelError:
        raise
    except Exception as err:  # zip/pickle errors share no base class
        raise ModelError(f"cannot read model checkpoint {path}: {err}") from err
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, DetectionModel) or not isinstance(model.model[-1], Detect):
        raise ModelError(f"{path} holds no Ultralytics detect or pose model")
    model = model.float().eval()
    head = model.model[-1]
    kpt = tuple(head.kpt_shape) if isinstance(head, Pose) else None
    info = ModelInfo(
        names={int(k): str(v) for k, v in dict(model.names).items()},
        kpt_shape=(int(kpt[0]), int(kpt[1])) if kpt else None,
    )
    return model, info


def fuse(model: nn.Module) -> nn.Module:
    """Fold every :class:`Conv`'s batch norm into its convolution (inference only), in place."""
    for module in model.modules():
        bn = module._modules.get("bn") if isinstance(module, Conv) else None
        if bn is None:
            continue
        conv: nn.Conv2d = module.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
            conv.dilation, conv.groups, bias=True,
        ).to(conv.weight.device)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)  # type: ignore[union-attr]
        module.conv = fused
        del module._modules["bn"]
    return model

