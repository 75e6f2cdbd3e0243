"""Conversion scripts. They run in a throwaway environment (TensorFlow, tf2onnx), never at
run time, and import nothing of ours: `gpu_workers.weights` runs them as files."""
