"""ResNet-50 on an NVIDIA GPU: torch eager against onnxruntime's CUDA provider, one run.

    python benchmarks/gpu_bench.py RESULT.json            # on a CUDA machine (about 2-3 minutes)
    python benchmarks/gpu_bench.py RESULT.json --dry-run  # every code path on the CPU, tiny sizes
    python benchmarks/gpu_bench.py RESULT.json --model resnet18   # another zoo ResNet

Needs torch (CUDA build), onnx, onnxscript, onnxruntime-gpu, numpy and pluggy; torchvision is not
used. zoo's own ``resnet50`` is built from this source tree (installed or not) and exported twice
by zoo's exporter, exactly as ``zoo export resnet50 --fp16`` writes it: float32, and float16 with
float32 input and output. Measured at batch 1, 32 and 256 on random weights:

- torch eager, float32, and float16 in channels_last memory format;
- onnxruntime CUDA EP on both artifacts, with IO binding to preallocated device buffers,
  ``prefer_nhwc=1`` and CUDA graphs (the shapes are fixed per session). Should a CUDA graph fail
  to capture, the session is rebuilt without it and the row says so.

Each figure is the median latency of timed runs after warm-up; the JSON file holds every row,
the ratios printed at the end (torch time / onnxruntime time: above 1 means onnxruntime is
faster), the device name and library versions. ``--dry-run`` runs the same code on the CPU
provider (no CUDA graphs), at 64x64 and batch 1 and 2 with two iterations, so the script can be
tested on a machine without a GPU; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


def import_zoo() -> None:
    """Make ``zoo`` and its mapped sub-packages (plugins/, runtime/, exporters/) importable
    from the source tree when the project is not pip-installed."""
    sys.path.insert(0, str(ROOT))
    import zoo

    for sub in ("runtime", "exporters", "plugins"):
        name = f"zoo.{sub}"
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        spec = importlib.util.spec_from_file_location(name, ROOT / sub / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / sub)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        setattr(zoo, sub, module)


def median_ms(fn: Callable[[], Any], sync: Callable[[], None], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def iterations(batch: int, dry_run: bool) -> tuple[int, int]:
    """(timed, warm-up) runs: enough for a stable median, few enough for about 2 minutes."""
    if dry_run:
        return 2, 1
    return (100, 20) if batch == 1 else (40, 10) if batch <= 32 else (15, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the JSON result")
    parser.add_argument("--dry-run", action="store_true", help="CPU provider, tiny sizes: exercise the code only")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1, 32, 256)")
    parser.add_argument("--model", default="resnet50", choices=[f"resnet{d}" for d in (18, 34, 50, 101, 152)],
                        help="which zoo ResNet (default resnet50)")
    args = parser.parse_args()

    missing = [name for name in ("numpy", "torch", "onnx", "onnxscript", "onnxruntime", "pluggy")
               if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"gpu_bench: missing Python packages: {', '.join(missing)} (pip install them; for onnxruntime "
                 "install onnxruntime-gpu alone)")
    import numpy as np
    import torch  # before onnxruntime: its CUDA/cuDNN libraries are then found by the CUDA provider

    import onnxruntime as ort

    import_zoo()
    from zoo.exporters.fp16 import export_half
    from zoo.exporters.onnx import DEFAULT_OPSET, export
    from zoo.plugins import resnet

    dry = args.dry_run
    if not dry:
        if not torch.cuda.is_available():
            sys.exit("gpu_bench: torch sees no CUDA device (use --dry-run to test the script on a CPU)")
        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit(f"gpu_bench: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                     f"({ort.get_available_providers()}); install onnxruntime-gpu alone")
    device = torch.device("cpu" if dry else "cuda")
    size = 64 if dry else 224
    batches = args.batch or ([1, 2] if dry else [1, 32, 256])
    spec = next(s for s in resnet.zoo_models() if s.name == args.model)
    config = spec.config({"image_size": size})
    meta = {"task": spec.task, "model": spec.name, "family": spec.family, "labels": list(spec.labels),
            "preprocessing": spec.preprocessing_for(config), "config": config, "weights_sha256": "random"}

    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / f"{spec.name}.onnx"
        started = time.perf_counter()
        network = spec.build(config)
        weights = {k: v.clone() for k, v in network.state_dict().items()}
        report = export(spec, network, fp32_path, meta=meta)
        half = export_half(spec, network, fp32_path, meta=meta, samples=None, opset=DEFAULT_OPSET,
                           sample_source="random inputs")  # converts network to float16 in place
        print(f"exported {fp32_path.name} and {half.path.name} in {time.perf_counter() - started:.1f} s; "
              f"parity {'ok' if all(p.ok for p in report.parity) else 'FAILED'}; fp16 top-1 agreement "
              f"{half.agree}/{half.total}", flush=True)

        # torch eager
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        model = spec.build(config)
        model.load_state_dict(weights)
        model = model.eval().to(device)
        model_half = spec.build(config)
        model_half.load_state_dict(weights)
        model_half = model_half.eval().to(device).half().to(memory_format=torch.channels_last)
        for batch in batches:
            iters, warmup = iterations(batch, dry)
            x = torch.randn(batch, 3, size, size, device=device)
            x_half = x.half().contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                for path, net, inp in (("torch_fp32", model, x), ("torch_fp16_channels_last", model_half, x_half)):
                    ms = median_ms(lambda: net(inp), sync, iters, warmup)
                    rows.append({"path": path, "batch": batch, "ms": ms, "img_per_s": batch / ms * 1e3,
                                 "provider": f"torch {device.type}", "options": {}})
                    print(f"{path:28s} batch {batch:4d}: {ms:9.3f} ms  {batch / ms * 1e3:10,.0f} img/s", flush=True)
        del model, model_half
        if device.type == "cuda":
            torch.cuda.empty_cache()

        # onnxruntime with IO binding, one session per batch size (CUDA graphs fix the shapes)
        ort.set_default_logger_severity(3)
        for path, artifact in (("ort_fp32", fp32_path), ("ort_fp16", half.path)):
            for batch in batches:
                iters, warmup = iterations(batch, dry)
                options = {} if dry else {"prefer_nhwc": "1", "enable_cuda_graph": "1"}
                row = run_ort(ort, np, artifact, batch, size, options, iters, warmup, dry)
                if row is None:  # CUDA graph capture failed: the same without it
                    options = {"prefer_nhwc": "1"}
                    row = run_ort(ort, np, artifact, batch, size, options, iters, warmup, dry)
                    row["note"] = "CUDA graph capture failed; measured without it"
                row.update(path=path, batch=batch)
                rows.append(row)
                print(f"{path:28s} batch {batch:4d}: {row['ms']:9.3f} ms  {row['img_per_s']:10,.0f} img/s  "
                      f"({row['provider']}, {row['options']})", flush=True)

    by = {(r["path"], r["batch"]): r["ms"] for r in rows}
    ratios = []
    print("\nratios (torch ms / onnxruntime ms; above 1: onnxruntime faster)")
    for batch in batches:
        best_torch = min(by[("torch_fp32", batch)], by[("torch_fp16_channels_last", batch)])
        best_ort = min(by[("ort_fp32", batch)], by[("ort_fp16", batch)])
        ratio = {"batch": batch,
                 "fp32": by[("torch_fp32", batch)] / by[("ort_fp32", batch)],
                 "fp16": by[("torch_fp16_channels_last", batch)] / by[("ort_fp16", batch)],
                 "best_vs_best": best_torch / best_ort}
        ratios.append(ratio)
        print(f"batch {batch:4d}: fp32 x{ratio['fp32']:.2f}  fp16 x{ratio['fp16']:.2f}  "
              f"best torch vs best ort x{ratio['best_vs_best']:.2f}")
    result = {
        "model": f"{spec.name} (zoo, random weights)", "input": [3, size, size], "dry_run": dry,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or '?'})",
        "torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
        "fp16_top1_agreement": [half.agree, half.total], "results": rows, "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def run_ort(ort, np, artifact: Path, batch: int, size: int, options: dict[str, str], iters: int, warmup: int,
            dry: bool) -> dict[str, Any] | None:
    """Median latency of one session with IO binding; None if a CUDA graph could not be captured."""
    where = "cpu" if dry else "cuda"
    provider = ("CPUExecutionProvider", options) if dry else ("CUDAExecutionProvider", options)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(artifact), so, providers=[provider])
    except Exception:
        if "enable_cuda_graph" in options:
            return None
        raise
    used = session.get_providers()
    if not dry and used[0] != "CUDAExecutionProvider":
        sys.exit(f"gpu_bench: the session fell back to {used}; import torch or call onnxruntime.preload_dlls() "
                 "so that the CUDA and cuDNN libraries are found")
    x = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, where, 0)
    y_dev = ort.OrtValue.ortvalue_from_shape_and_type([batch, 1000], np.float32, where, 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input("input", x_dev)
    binding.bind_ortvalue_output("logits", y_dev)
    try:
        ms = median_ms(lambda: session.run_with_iobinding(binding), binding.synchronize_outputs, iters, warmup)
    except Exception:
        if "enable_cuda_graph" in options:
            return None
        raise
    if not np.isfinite(y_dev.numpy()).all():
        sys.exit(f"gpu_bench: {artifact.name} gave non-finite logits at batch {batch}")
    return {"ms": ms, "img_per_s": batch / ms * 1e3, "provider": used[0], "options": options}


if __name__ == "__main__":
    main()
