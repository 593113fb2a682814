#!/usr/bin/env python3
"""Write testdata/distca/recipe_ref.json: reference numbers computed by
DistCA's own batch-recipe functions, which disagg/sim's Recipe must reproduce.

Usage (needs numpy; DistCA's code is read from a checkout, not vendored):

    python3 scripts/distca_recipe_ref.py /path/to/DistCA > testdata/distca/recipe_ref.json

It calls, from DistCA's distca/simulator/optimizers/samples.py,
sample_wlbllm_docs_upsample, sample_prolong_docs and batch_documents with the
arguments that distca/utils/global_batch_provider.py's setup_global_batch and
tests/test_e2e_combined.py's defaults pass (size 10000, filter_threshold 64K,
filter_ratio 0.90, upsample 2, elongate = max(1, context // 65536)), and
numpy's Generator directly for the random-number path (SeedSequence, PCG64,
random, choice without replacement).
"""
import contextlib
import io
import json
import os
import sys

import numpy as np


def main():
    root = sys.argv[1]
    sys.path.insert(0, os.path.join(root, "distca", "simulator", "optimizers"))
    import samples  # DistCA's module

    out = {
        "provenance": {
            "distca_functions": "distca/simulator/optimizers/samples.py: sample_wlbllm_docs_upsample, "
            "sample_prolong_docs, batch_documents",
            "arguments": "size=10000, filter_threshold=65536, filter_ratio=0.9, upsample_long_factor=2, "
            "elongate_factor=max(1, context//65536), seed 42 (their default); batch_documents(max_ctx_length=context)",
            "numpy": np.__version__,
            "script": "scripts/distca_recipe_ref.py",
        },
        "seed_sequence_42_uint64x4": [str(x) for x in np.random.SeedSequence(42).generate_state(4, np.uint64)],
        "pcg64_42_raw": [str(x) for x in np.random.default_rng(42).bit_generator.random_raw(6)],
        "random_42": list(np.random.default_rng(42).random(6)),
    }
    choices = []
    for pop, k in [(100000, 10000), (5000, 100), (20000, 100), (12000, 11000), (7, 7)]:
        idx = np.random.default_rng(42).choice(pop, size=k, replace=False)
        choices.append({"pop": pop, "k": k, "first": [int(x) for x in idx[:40]],
                        "last": [int(x) for x in idx[-40:]], "sum": int(idx.sum()),
                        "weighted": int(sum(int(x) * (i % 7 + 1) for i, x in enumerate(idx)))})
    out["choice_42"] = choices

    recipes = []
    for dist, context, ratio in [("pretrain", 131072, 0.0), ("prolong", 131072, 0.3),
                                 ("pretrain", 524288, 0.0), ("prolong", 65536, 0.3),
                                 ("pretrain", 65536, 0.0)]:
        elongate = max(1, context // 65536)
        fn = samples.sample_wlbllm_docs_upsample if dist == "pretrain" else samples.sample_prolong_docs
        with contextlib.redirect_stdout(io.StringIO()):  # sample_prolong_docs prints
            docs = fn(size=10000, filter_threshold=64 * 1024, filter_ratio=0.90,
                      upsample_long_factor=2, elongate_factor=elongate, change_long_doc_ratio=ratio)
        batches = list(samples.batch_documents(docs, max_ctx_length=context))
        recipes.append({
            "dist": dist, "context": context, "change_long_doc_ratio": ratio,
            "num_docs": len(docs), "docs_first": [int(x) for x in docs[:30]],
            "docs_sum": int(sum(docs)), "num_batches": len(batches),
            "batches_first": [[int(x) for x in b] for b in batches[:6]],
            "last_batch": [int(x) for x in batches[-1]],
            "batch_doc_counts": [len(b) for b in batches],
        })
    out["recipes"] = recipes
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
