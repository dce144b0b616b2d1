"""The inference service: frames from decode -> detector (Triton or onnxruntime) -> JetStream."""
