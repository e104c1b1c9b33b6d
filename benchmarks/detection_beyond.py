"""A digit detector beyond its test split: false boxes on real photographs without digits that
were never used in training or model choice, and mAP on digits from sources its training never
saw, both through the exported artifact and the runtime (what users get).

    bash benchmarks/heldout_photos.sh /tmp/heldout        # the 33 photos (see that script)
    python benchmarks/detection_beyond.py yolo-nano --photos /tmp/heldout [--json OUT] [--save DIR]

Prints per-photo false boxes (every box on a digit-free photo is false) at the model's default
confidence (its own, chosen on its dev split, else 0.25), their mean there and at 0.25, and
``zoo val`` on the held-out-source digits (digits-held-out-source) and on the v2, v3 and v4
test splits. ``--save`` writes each photo with its boxes drawn, to look at."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import zoo
from zoo.runtime.tasks.detection import DEFAULT_CONF, model_conf


def false_boxes(model, photos: Path, save: Path | None, conf: float | None = None) -> dict:
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    per_photo = {}
    for file, result in zip(files, model.run(files, conf=conf)):
        boxes = result.boxes
        per_photo[file.name] = [{"label": label, "score": float(score)}
                                for label, score in zip(boxes.labels, boxes.scores)]
        if save:
            save.mkdir(parents=True, exist_ok=True)
            result.plot().save(save / f"{file.stem}.png")
    counts = [len(v) for v in per_photo.values()]
    return {"photos": len(files), "false_boxes": sum(counts), "per_photo_mean": sum(counts) / max(len(files), 1),
            "photos_with_a_box": sum(c > 0 for c in counts), "boxes": per_photo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--photos", type=Path, required=True, help="a folder of digit-free photos")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--save", type=Path, help="write the photos with their boxes here")
    args = parser.parse_args()
    model = zoo.load(args.model)
    own = model_conf(model.meta, args.model)
    report = {"model": args.model, "weights": model.meta.get("weights_tag"), "default_conf": own,
              "digit_free_photos": false_boxes(model, args.photos, args.save),
              f"digit_free_photos_at_{DEFAULT_CONF:g}": false_boxes(model, args.photos, None, DEFAULT_CONF)}
    photos = report["digit_free_photos"]
    for name, count in photos["boxes"].items():
        shown = ", ".join(f"{b['label']} {b['score']:.2f}" for b in count)
        print(f"{name:28s} {len(count)} {shown}")
    for key, conf in (("digit_free_photos", own), (f"digit_free_photos_at_{DEFAULT_CONF:g}", DEFAULT_CONF)):
        photos = report[key]
        print(f"false boxes per digit-free photo at conf {conf:g}: {photos['per_photo_mean']:.3f} ({photos['false_boxes']} "
              f"on {photos['photos']} photos, {photos['photos_with_a_box']} photos with any)")
    for dataset in ("digits-held-out-source", "digits-on-photos-v2", "digits-on-photos-v3", "digits-on-photos-v4"):
        scores = zoo.val(args.model, dataset=dataset, split="all" if dataset == "digits-held-out-source" else "test")
        report[dataset] = {k: v for k, v in scores["metrics"].items() if isinstance(v, float)}
        print(f"{dataset}: " + ", ".join(f"{k} {v:.4f}" for k, v in report[dataset].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
