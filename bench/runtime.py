"""Why OpenVINO runs the model: the same `Predictor` on the same photos, in one process, with the ONNX model run by
OpenVINO (what bear_app uses) and by onnxruntime (what it used before, with its settings then: no memory arena, no
spinning threads). Prints p50/p95 per photo (decode included) and the forward pass alone.

    .venv/bin/pip install onnxruntime==1.31.1     # not a dependency of bear_app; only this comparison needs it
    .venv/bin/python bench/runtime.py
"""
import os, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bear_app.images import image_files
from bear_app.predict import Predictor

class OnnxRuntime:
    "The model run by onnxruntime, with the interface of `bear_app.predict.CpuModel`."
    def __init__(self, path):
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.enable_cpu_mem_arena = os.cpu_count(), False
        o.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(str(path), o, providers=['CPUExecutionProvider'])
        self.outputs = {x.name for x in self.session.get_outputs()}
    def run(self, names, feeds): return self.session.run(names, feeds)

def main():
    try: import onnxruntime  # noqa: F401
    except ImportError: sys.exit("onnxruntime is not installed: .venv/bin/pip install onnxruntime==1.31.1")
    files = image_files(Path(os.environ.get('BEAR_DATA', ROOT.parent/'shared'/'data'/'bears')))
    if not files: sys.exit("no photos: set BEAR_DATA")
    pred = Predictor()
    runtimes = {'openvino': pred.session, 'onnxruntime': OnnxRuntime(pred.model)}
    per_photo = {k: [] for k in runtimes}
    for s in runtimes.values(): pred.session = s; pred.predict(files[0])   # warm up
    for b in range(0, len(files), 10):                                      # blocks of 10 photos in turn
        for name, s in runtimes.items():
            pred.session = s
            for f in files[b:b+10]:
                t = time.perf_counter(); pred.predict(f); per_photo[name].append(time.perf_counter() - t)
    x = np.random.default_rng(0).random((1, 3, *pred.pre['size']), dtype=np.float32)
    print(f"{len(files)} photos, {os.cpu_count()} CPU cores")
    for name, s in runtimes.items():
        fwd = []
        for _ in range(100):
            t = time.perf_counter(); s.run(['logits', 'features'], {'image': x}); fwd.append(time.perf_counter() - t)
        ts = per_photo[name]
        print(f"{name:12s} Predictor.predict p50 {np.median(ts)*1000:5.1f} ms  p95 {np.percentile(ts, 95)*1000:5.1f} ms   "
              f"forward pass alone p50 {np.median(fwd)*1000:5.1f} ms")

if __name__ == '__main__': main()
