"""Inference vs training cost of a run's network (ResCom, arXiv 2203.11506, Tables 5 and 8).

ResCom's contrastive parts (projection head, queue, two views, a momentum encoder for MoCo-style
variants) exist only at training time: evaluation runs encoder + classifier. This measures both for
one batch at the dataset's image size:

  inference  ``model.inference_model()`` (encoder + classifier), eval mode, no autograd, B images;
  training   the training forward: encoder + classifier + projection head over both views (2B
             images through the shared encoder) or, for momentum-encoder runs, B images through the
             model plus B through the momentum encoder (no autograd there, as in training). Train
             mode, autograd on (the graph is built; no backward).

Time: median over ``repeat`` timed calls after ``warmup`` untimed ones, host-synchronised per call
on CUDA, in milliseconds per batch; the hardware is named in every output.
"""

from __future__ import annotations

import copy
import csv
import json
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from rescom.engine.hardware import device_description, select_device
from rescom.errors import UsageError

# The paper's RIDE-vs-ResCom numbers (Tables 5 and 8) are read from rescom/report/paper/: ratios only.
PAPER_NOTE = ("Paper rows: Tables 5 and 8 of arXiv 2203.11506, ms per batch of 64 on a GeForce 2080Ti "
              "(the authors' measurement, not this machine's)")


def _count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def _time_ms(fn, device: torch.device, repeat: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls of fn(), after ``warmup`` untimed calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def _image_shape(config, data) -> tuple[int, ...]:
    """(C, H, W) of the first test image under the evaluation transform."""
    from rescom.data.augmentation.pil.transforms import eval_transform
    from rescom.data.loading.datasets import SingleViewDataset
    from rescom.data.preparation.run_data import recipe_for

    transform = eval_transform(recipe_for(config.data), data.channels)
    return tuple(SingleViewDataset(data.test, transform, data.channels)[0][0].shape)


@dataclass
class Networks:
    """What is timed: the run's config, its model, its momentum encoder (None without one), the
    (C, H, W) of one image and the run's MLflow id (None when untracked or from a config)."""

    config: object
    model: torch.nn.Module
    key_encoder: torch.nn.Module | None
    shape: tuple[int, ...]
    run_id: str | None = None


def _networks_from_checkpoint(path, device) -> Networks:
    from rescom.analysis.checkpoint_analyses import load_run_state, mlflow_run_id

    config, data, model, state = load_run_state(path, device)
    key_encoder = None
    if config.method.key_encoder == "momentum":
        key_encoder = copy.deepcopy(model).requires_grad_(False)
        key_encoder.load_state_dict(state["components"]["key_encoder"])
    return Networks(config, model, key_encoder, _image_shape(config, data), mlflow_run_id(path, state))


def _networks_from_config(config, device) -> Networks:
    """Freshly initialised from a config (weights do not change the time); the shape comes from the
    source's registry entry, or from the data for a source without a fixed shape (an image folder)."""
    from rescom.data.preparation import run_data
    from rescom.data.sources.registry import source
    from rescom.models import build_model

    shape = source(run_data.parse_dataset(config.data.dataset)[0]).shape
    if shape is not None:
        classes, channels, size = shape
        shape = (channels, size, size)
    else:
        data = run_data.get_data(config.data, persist=False)  # only the shapes are needed; write nothing
        classes, channels, shape = len(data.class_counts), data.channels, _image_shape(config, data)
    torch.manual_seed(config.run.seed)
    m = config.model
    model = build_model(m.backbone, classes, channels, m.width, m.proj_hidden, m.proj_dim,
                        config.method.contrastive != "none").to(device)
    if config.run.channels_last:
        model.to(memory_format=torch.channels_last)
    key_encoder = copy.deepcopy(model).requires_grad_(False) if config.method.key_encoder == "momentum" else None
    return Networks(config, model, key_encoder, shape)


def inference_cost(checkpoint_or_config, device: str = "cpu", batch: int = 64, repeat: int = 20,
                   warmup: int = 3, out_dir=None) -> dict:
    """Time the evaluation model against the training forward for one batch (Tables 5 and 8).

    Args:
        checkpoint_or_config: a run's checkpoint.pt (path) or a TrainConfig (untrained weights).
        device: where to time ("cpu", "cuda", "cuda:0", or "auto": cuda when available).
        batch: B images per batch (the paper's 64).
        repeat, warmup: timed and untimed calls.
        out_dir: where inference_cost.csv, inference_cost.md and measured.json go (default:
            ``analysis`` beside the checkpoint; required for a config).

    Returns {"rows" (one dict per measured model), "paths", "device", "image_shape", "mlflow",
    "paper_note"}.
    """
    if batch < 1 or repeat < 1 or warmup < 0:
        raise UsageError(f"need batch >= 1, repeat >= 1, warmup >= 0; got {batch}, {repeat}, {warmup}")
    is_path = isinstance(checkpoint_or_config, (str, Path))
    if not is_path and out_dir is None:
        raise ValueError("inference_cost of a config needs out_dir")
    device = select_device(str(device))
    networks = (_networks_from_checkpoint if is_path else _networks_from_config)(checkpoint_or_config, device)
    rows = measure(networks, device, batch, repeat, warmup)
    out = Path(out_dir) if out_dir is not None else Path(checkpoint_or_config).parent / "analysis"
    description = device_description(device)
    paths = write_outputs(out, rows, networks, description, repeat, warmup)
    logged = "skipped: no checkpoint (timed from a config)"
    if is_path:
        from rescom.analysis.checkpoint_analyses import log_analysis_artifacts

        logged = log_analysis_artifacts(networks.run_id, paths)
    return {"rows": rows, "paths": paths, "device": description, "image_shape": networks.shape, "mlflow": logged,
            "paper_note": PAPER_NOTE}


def run_stage(profile, settings: dict, out_dir: Path) -> dict:
    """The pipeline's stage: the params file's `analysis.inference_cost` (run, batch, repeat), on the CPU."""
    return inference_cost(profile.checkpoint(settings["run"]), device="cpu", batch=settings["batch"],
                          repeat=settings["repeat"], out_dir=out_dir)


def _timed_calls(networks: Networks, device: torch.device, batch: int) -> list[tuple[str, str, object, int]]:
    """(model, what runs, the call, parameters) of the inference model and of the training forward,
    on two random batches of B images."""
    from rescom.methods import uses_two_views

    config, model, key_encoder = networks.config, networks.model.to(device), networks.key_encoder
    if key_encoder is not None:
        key_encoder.to(device)
    memory_format = torch.channels_last if config.run.channels_last else torch.contiguous_format
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.run.bf16 else nullcontext
    generator = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(batch, *networks.shape, generator=generator).to(device).contiguous(memory_format=memory_format)
              for _ in range(2))
    evaluation = model.inference_model().eval()

    def run_inference():
        with torch.no_grad(), autocast():
            evaluation(x1)

    trainer = copy.deepcopy(model).train()  # a copy: train-mode BN updates running stats
    two_views = uses_two_views(config) and key_encoder is None
    both = torch.cat([x1, x2]).contiguous(memory_format=memory_format) if two_views else x1

    def run_training_forward():
        with autocast():
            trainer(both)
            if key_encoder is not None:
                with torch.no_grad():
                    key_encoder(x2)

    parts = ["encoder", "classifier"] + (["projection head"] if model.projection is not None else [])
    training_what = " + ".join(parts) + (f", both views ({2 * batch} images)" if two_views else f" ({batch} images)")
    if key_encoder is not None:
        training_what += f" + momentum encoder ({batch} images)"
    return [("inference", f"encoder + classifier ({batch} images)", run_inference, _count(evaluation)),
            ("training forward", training_what, run_training_forward, _count(model) + _count(key_encoder))]


def measure(networks: Networks, device: torch.device, batch: int, repeat: int, warmup: int) -> list[dict]:
    """One row per model: its median, min and max milliseconds per batch, parameters, and its time
    as a multiple of the inference model's."""
    rows = []
    for name, what, call, params in _timed_calls(networks, device, batch):
        times = _time_ms(call, device, repeat, warmup)
        rows.append({"method": networks.config.method_name, "model": name, "what": what, "batch": batch,
                     "ms_median": round(statistics.median(times), 4), "ms_min": round(min(times), 4),
                     "ms_max": round(max(times), 4), "params": params})
    for row in rows:
        row["x_inference"] = round(row["ms_median"] / rows[0]["ms_median"], 3)
    return rows


def write_outputs(out: Path, rows: list[dict], networks: Networks, description: str, repeat: int,
                  warmup: int) -> list[Path]:
    """inference_cost.csv and .md (the times, beside the paper's) and measured.json: what was timed
    (models, parameters, batch, image shape), the same file whenever the same run is timed again
    (the pipeline's stage output hashes only it; .dvcignore)."""
    config, shape = networks.config, networks.shape
    out.mkdir(parents=True, exist_ok=True)
    measured = {"method": config.method_name, "dataset": config.data.dataset, "backbone": config.model.backbone,
                "width": config.model.width, "bf16": config.run.bf16, "batch": rows[0]["batch"],
                "image_shape": list(shape), "repeat": repeat, "warmup": warmup,
                "models": [{k: row[k] for k in ("model", "what", "params")} for row in rows]}
    (out / "measured.json").write_text(json.dumps(measured, indent=2) + "\n")
    return [_write_csv(out / "inference_cost.csv", rows, description, shape),
            _write_markdown(out / "inference_cost.md", rows, config, description, shape, repeat, warmup),
            out / "measured.json"]


def _paper_rows() -> list[dict]:
    """The paper's Tables 5 and 8 as rows: model, ms (batch 64, 2080Ti), all (top-1 %), source."""
    from rescom.report.paper_values import paper_inference_times

    return [{"model": f"{r.method} ({r.backbone}, {r.dataset})", "ms": r.infer_ms_batch64, "all": r.all,
             "source": f"Table {r.table}, GeForce 2080Ti, batch 64"}
            for r in paper_inference_times().itertuples()]


def _write_csv(path: Path, rows: list[dict], description: str, shape) -> Path:
    fields = ["source", "method", "model", "what", "batch", "image_shape", "ms_median", "ms_min", "ms_max",
              "params", "x_inference", "device", "paper_ms", "paper_top1_all", "paper_source"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "source": "measured", "image_shape": "x".join(map(str, shape)),
                             "device": description})
        for paper in _paper_rows():
            writer.writerow({"source": "paper (arXiv 2203.11506)", "model": paper["model"],
                             "paper_ms": paper["ms"], "paper_top1_all": paper["all"], "paper_source": paper["source"]})
    return path


def _write_markdown(path: Path, rows: list[dict], config, description: str, shape, repeat: int, warmup: int) -> Path:
    dtype = "bf16 autocast" if config.run.bf16 else "fp32"
    lines = [
        f"# Inference vs training cost: {config.method_name} on {config.data.dataset}", "",
        f"Measured on {description}; batch {rows[0]['batch']}, images {'x'.join(map(str, shape))}, {dtype}, "
        f"backbone {config.model.backbone} (width {config.model.width}); median of {repeat} timed calls after "
        f"{warmup} warm-up calls.", "",
        "| model | what runs | ms / batch (median) | min | max | parameters | x inference |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['what']} | {r['ms_median']:.3f} | {r['ms_min']:.3f} | {r['ms_max']:.3f} "
                     f"| {r['params']:,} | {r['x_inference']:.2f} |")
    lines += ["", "## The paper's numbers (Tables 5 and 8, as reported by the paper, not measured here)", "",
              PAPER_NOTE + "; compare ratios (ResCom runs one network, RIDE several experts), not milliseconds.", "",
              "| model | ms / batch of 64 | top-1 All | source |", "|---|---:|---:|---|"]
    lines += [f"| {p['model']} | {p['ms']:.1f} | {p['all']:.1f} | {p['source']} |" for p in _paper_rows()]
    path.write_text("\n".join(lines) + "\n")
    return path
