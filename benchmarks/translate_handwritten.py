"""A translation artifact on inputs written by hand: each line of a UTF-8 file, ``source`` or
``source<TAB>expected``, run the way ``zoo run`` runs it (the task's normalisation and output
checks), printed as a table with what the model gave exactly as it came out; with expected
outputs, the exact match. Lines starting with ``#`` are comments. Torch-free.

    python benchmarks/translate_handwritten.py seq2seq-dates tests/data/dates_handwritten.tsv --beam 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.api import load
from zoo.errors import ZooError
from zoo.registry import registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a name, NAME@TAG or an artifact path")
    parser.add_argument("file")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)

    rows = []
    for line in Path(args.file).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            source, _, expected = line.partition("\t")
            rows.append((source, expected or None))
    model = load(args.model, "cpu")
    options = model.options(beam=args.beam)
    task = registry().task(model.task).load()
    try:  # one input's failure is its own result; the task refuses only when no input gives an answer
        results = task.run(model.artifact, [source for source, _ in rows], dict(options))
    except ZooError as exc:
        results = [{"input": source, "output": None, "error": str(exc)} for source, _ in rows]
    for result, (_, expected) in zip(results, rows):
        result["expected"] = expected
    scored = [r for r in results if r["expected"] is not None]
    right = sum(r["output"] == r["expected"] for r in scored)
    if args.markdown:
        print("| input | read as | output | expected | |\n|---|---|---|---|---|")
    for r in results:
        shown = r["output"] if r["output"] is not None else f"({r.get('error')}" + (
            f": decoded {r['decoded']!r})" if "decoded" in r else ")")
        mark = "" if r["expected"] is None else ("ok" if r["output"] == r["expected"] else "WRONG")
        if args.markdown:
            print(f"| `{r['input']}` | {('`' + r['read_as'] + '`') if 'read_as' in r else ''} | {shown} | "
                  f"{r['expected'] or ''} | {mark} |")
        else:
            print(f"{r['input']!r:45} -> {shown:28} {r['expected'] or '':12} {mark}")
    if scored:
        print(f"{model.name} on {args.file}: exact match {right / len(scored):.4f} ({right}/{len(scored)}), beam "
              f"{args.beam}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"model": model.name, "file": args.file, "beam": args.beam,
                                                   "exact_match": right / len(scored) if scored else None,
                                                   "results": results}, indent=1, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
