"""Supervised cross-lingual alignment of the static model's Japanese pieces with a bilingual
dictionary (JMdict, through the PyPI package `jamdict-data`).

Single-piece teacher vectors of Japanese words are only loosely aligned with their English
equivalents, so a Japanese question about a plot rarely lands near the English synopsis. Here
every kept Japanese piece that is exactly a JMdict headword (kanji form, or a kana form of a word
written in kana) is paired with its dictionary gloss, the English side being the static
embedding of the gloss text built from the same (English) piece vectors and the same unigram
segmentation the runtime uses. An orthogonal map W (Procrustes: W = U Vᵀ from the SVD of XᵀY)
from Japanese piece directions to gloss directions is learnt on those pairs and applied to every
Japanese piece (kana/kanji), half-way (alpha); each dictionary piece also gets its gloss's
embedding added (beta). Latin pieces are left unchanged. Rows stay unit directions, so the SIF
weights are untouched. Done after the PCA, in the space where the runtime sums pieces: the gloss
side is then exactly the runtime embedding of the gloss text (a check with the map learnt in the
teacher's 384 dims before PCA scored lower on the held-out pairs).

Hyper-parameters were chosen on held-out dictionary pairs (see `tune`), never on the retrieval
evaluation set: `python dictalign.py tune VOCAB_DIR VECTORS_DIR DICT` reruns the selection.

JMdict is © the Electronic Dictionary Research and Development Group (EDRDG), used under the
Creative Commons Attribution-ShareAlike licence (https://www.edrdg.org/edrdg/licence.html;
the jamdict-data 1.5 copy states CC BY-SA 3.0, EDRDG's current terms are CC BY-SA 4.0). The
aligned vectors are derived from it: attribute EDRDG/JMdict wherever the model is distributed.
"""
import lzma
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time

import numpy as np

META = "\u2581"
PAREN = re.compile(r"\([^()]*\)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Segmenter:
    """The runtime's segmentation (static_model.rs `pieces()`): normalisation map, lower-case,
    spaces -> ▁ word boundaries, unigram Viterbi over the kept pieces. No kept piece holds ▁
    except as its first character, so segmenting word by word (memoised) is exact."""

    def __init__(self, pieces, scores, unk_score, normalize):
        self.index = {p: i for i, p in enumerate(pieces)}
        self.scores = scores
        self.unk = unk_score
        self.norm = {chr(cp): "".join(map(chr, out)) for cp, out in normalize}
        self.maxlen = max(len(p) for p in pieces)
        self.memo = {}

    def word(self, w):
        hit = self.memo.get(w)
        if hit is not None:
            return hit
        n = len(w)
        best = [-np.inf] * (n + 1)
        back = [(0, -1)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -np.inf:
                continue
            for e in range(i + 1, min(n, i + self.maxlen) + 1):
                j = self.index.get(w[i:e])
                if j is not None:
                    s = best[i] + self.scores[j]
                    if s > best[e]:
                        best[e], back[e] = s, (i, j)
            s = best[i] + self.unk
            if s > best[i + 1]:
                best[i + 1], back[i + 1] = s, (i, -1)
        out, i = [], n
        while i > 0:
            i, j = back[i]
            if j >= 0:
                out.append(j)
        out.reverse()
        self.memo[w] = out
        return out

    def __call__(self, text):
        t = "".join(self.norm.get(c, c) for c in text).lower()
        out = []
        for w in t.split():
            out += self.word(META + w)
        return out


def embed(seg, vectors, text):
    ids = seg(text)
    if not ids:
        return None
    v = vectors[ids].sum(axis=0)
    n = np.linalg.norm(v)
    return v / n if n > 0 else None


def open_dict(path):
    """A connection to JMdict: `path` is jamdict-data's jamdict.db.xz (decompressed to a temporary
    file, ~5 s) or an already decompressed jamdict.db."""
    if path.endswith(".xz"):
        tmp = tempfile.NamedTemporaryFile(suffix=".db", delete=False)
        with lzma.open(path) as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.close()
        con = sqlite3.connect(tmp.name)
        os.unlink(tmp.name)  # stays readable while open
        return con
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def load_entries(con):
    """{headword form: [(common, idseq)]} for kanji forms and for kana forms of words without
    kanji or usually written in kana (a kana reading of a kanji word is too ambiguous: かみ is
    paper, god and hair), and {idseq: [sense glosses]} (each sense a list of glosses, in order)."""
    uk = {
        r[0]
        for r in con.execute(
            "select distinct s.idseq from misc m join Sense s on s.ID = m.sid "
            "where m.text = 'word usually written using kana alone'"
        )
    }
    has_kanji = {r[0] for r in con.execute("select distinct idseq from Kanji")}
    pri_k = {r[0] for r in con.execute("select distinct kid from KJP")}
    pri_r = {r[0] for r in con.execute("select distinct kid from KNP")}
    forms = {}
    for kid, idseq, text in con.execute("select ID, idseq, text from Kanji"):
        forms.setdefault(text, []).append((kid in pri_k, idseq))
    for kid, idseq, text in con.execute("select ID, idseq, text from Kana"):
        if idseq not in has_kanji or idseq in uk:
            forms.setdefault(text, []).append((kid in pri_r, idseq))
    senses = {}
    cur = None
    for idseq, sid, gloss in con.execute(
        "select s.idseq, s.ID, g.text from Sense s join SenseGloss g on g.sid = s.ID "
        "where g.lang = 'eng' order by s.idseq, s.ID, g.rowid"
    ):
        lst = senses.setdefault(idseq, [])
        if sid != cur:
            lst.append([])
            cur = sid
        lst[-1].append(gloss)
    return forms, senses


def clean(gloss):
    g = PAREN.sub(" ", gloss)
    g = re.sub(r"\s+", " ", g).strip()
    return g


def gloss_text(senses, how):
    """The English side of a pair: 'first' = the first gloss of the first sense, 'sense' = every
    gloss of the first sense, 'two' = the first two senses; parenthesised notes removed."""
    if how == "first":
        gl = senses[0][:1]
    elif how == "sense":
        gl = senses[0]
    else:
        gl = [g for s in senses[:2] for g in s]
    return "; ".join(c for c in (clean(g) for g in gl) if c)


def pick_entry(cands, senses):
    """The entry a headword stands for: a common one (JMdict priority tag) first, then the
    lowest sequence number (JMdict numbers older, core entries lower)."""
    cands = [c for c in cands if c[1] in senses]
    if not cands:
        return None
    return sorted(cands, key=lambda c: (not c[0], c[1]))[0]


def procrustes(x, y):
    u, _, vt = np.linalg.svd(x.T @ y)
    return u @ vt


def unit(a):
    return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)


class Pairs:
    """Dictionary pairs over the kept vocabulary: word pairs (a Japanese piece that is a
    headword) and compound pairs (a common headword that is no piece but segments into 2-4
    Japanese pieces: a held-out check of how sums of aligned pieces behave, like a question)."""

    def __init__(self, pieces, japanese, forms, senses, seg):
        self.word = []  # (piece index, headword, common, idseq)
        for i, p in enumerate(pieces):
            if not japanese[i]:
                continue
            h = p.lstrip(META)
            if not h or h not in forms:
                continue
            e = pick_entry(forms[h], senses)
            if e is not None:
                self.word.append((i, h, e[0], e[1]))
        piece_forms = {p.lstrip(META) for p, j in zip(pieces, japanese) if j}
        self.compound = []  # (headword, idseq)
        seen = set()
        for h, cands in forms.items():
            if h in piece_forms or not (2 <= len(h) <= 8):
                continue
            e = pick_entry(cands, senses)
            if e is None or not e[0] or e[1] in seen:
                continue
            ids = seg(h)
            if 2 <= len(ids) <= 4 and all(japanese[j] for j in ids):
                seen.add(e[1])
                self.compound.append((h, e[1]))


def final_vectors(unit_vecs, weight):
    return unit_vecs * weight[:, None]


def precision(q, targets, gold, ks=(1, 5)):
    """Share of rows of q (unit) whose gold target row is among the k most similar targets."""
    out = {k: 0 for k in ks}
    for s in range(0, len(q), 1024):
        sim = q[s : s + 1024] @ targets.T
        g = gold[s : s + 1024]
        gs = sim[np.arange(len(g)), g]
        rank = (sim > gs[:, None]).sum(axis=1)
        for k in ks:
            out[k] += int((rank < k).sum())
    return {k: v / max(len(q), 1) for k, v in out.items()}


def build_targets(texts, seg, vectors):
    """Unit gloss vectors for distinct texts: (matrix, {text: row}); texts that segment into
    nothing known are left out."""
    rows, index = [], {}
    for t in texts:
        if t in index:
            continue
        v = embed(seg, vectors, t)
        if v is not None:
            index[t] = len(rows)
            rows.append(v)
    return np.array(rows), index


def fit(unit_vecs, weight, japanese, pairs, senses, seg, how, common_only, train_heads=None):
    """W learnt from the word pairs (restricted to train_heads if given)."""
    vecs = final_vectors(unit_vecs, weight)
    xs, ys = [], []
    for i, h, common, idseq in pairs.word:
        if common_only and not common:
            continue
        if train_heads is not None and h not in train_heads:
            continue
        y = embed(seg, vecs, gloss_text(senses[idseq], how))
        if y is None:
            continue
        xs.append(unit_vecs[i])
        ys.append(y)
    return procrustes(np.array(xs), np.array(ys)), len(xs)


def apply(unit_vecs, japanese, w, alpha=1.0):
    """Japanese rows rotated by W (alpha < 1: a blend of the original and rotated direction,
    renormalised); Latin rows unchanged."""
    out = unit_vecs.copy()
    jp = unit_vecs[japanese]
    rot = jp @ w
    out[japanese] = unit(alpha * rot + (1 - alpha) * jp) if alpha < 1 else rot
    return out


def blend(unit_vecs, weight, pairs, senses, seg, beta, heads=None):
    """Each dictionary word's piece direction plus beta times its gloss's (unit) embedding,
    renormalised: the word then also says what the dictionary says it means. Glosses are built
    from the English pieces, which the blend never changes."""
    vecs = final_vectors(unit_vecs, weight)
    out = unit_vecs.copy()
    n = 0
    for i, h, common, idseq in pairs.word:
        if heads is not None and h not in heads:
            continue
        g = embed(seg, vecs, gloss_text(senses[idseq], "sense"))
        if g is not None:
            v = unit_vecs[i] + beta * g
            out[i] = v / np.linalg.norm(v)
            n += 1
    return out


def evaluate(unit_vecs, weight, japanese, pairs, senses, seg, test_heads, blend_beta=0.0, blend_heads=()):
    """Held-out precision@1/@5: test word pieces -> their first-sense gloss among all word
    glosses, and compounds -> their gloss among all compound glosses. Targets are built from the
    (unchanged) English pieces. blend_beta > 0 adds the gloss vector to the pieces of
    blend_heads (never the test words)."""
    if blend_beta > 0:
        unit_vecs = blend(unit_vecs, weight, pairs, senses, seg, blend_beta, blend_heads)
    vecs = final_vectors(unit_vecs, weight)
    wt = [gloss_text(senses[p[3]], "sense") for p in pairs.word]
    targets, index = build_targets(wt, seg, vecs)
    q, gold = [], []
    for (i, h, common, idseq), t in zip(pairs.word, wt):
        if h in test_heads and t in index:
            q.append(unit(vecs[i : i + 1])[0])
            gold.append(index[t])
    word = precision(np.array(q), targets, np.array(gold))
    ct = [gloss_text(senses[idseq], "sense") for _, idseq in pairs.compound]
    targets, index = build_targets(ct, seg, vecs)
    q, gold = [], []
    for (h, idseq), t in zip(pairs.compound, ct):
        v = embed(seg, vecs, h)
        if v is not None and t in index:
            q.append(v)
            gold.append(index[t])
    comp = precision(np.array(q), targets, np.array(gold))
    return word, comp, len(gold)


# Chosen by tune_align.py on held-out JMdict pairs (80/20 split by headword, seed 0; 7,259 word
# pairs, 24,891 compounds). p@1 word / compound, among all glosses:
#   no alignment 0.107 / 0.047;  W only (alpha 1) 0.110 / 0.047;  alpha 0.5 0.116 / 0.055;
#   alpha 0.5 + gloss blend beta 1 0.116 / 0.081 (chosen);  alpha 0.25 + beta 1 0.113 / 0.083;
#   Procrustes before PCA (384 d) 0.104 / 0.049.
# how: the gloss text of a pair ("sense" = all glosses of the first sense); common_only: learn W
# on JMdict-common words only (4,875 pairs); alpha: how far the Japanese pieces turn towards
# W (a half-turn generalised better than the full rotation); beta: weight of a dictionary
# word's own gloss embedding added to its piece (all 7,259 dictionary pieces).
CHOSEN = {"how": "sense", "common_only": True, "alpha": 0.5, "beta": 1.0}


def align(pieces, scores, unk_score, normalize, japanese, unit_vecs, weight, dict_path, cfg=None):
    """The Japanese rows of unit_vecs rotated onto the English gloss space (rows stay unit)."""
    cfg = cfg or CHOSEN
    t0 = time.time()
    con = open_dict(dict_path)
    forms, senses = load_entries(con)
    con.close()
    seg = Segmenter(pieces, scores, unk_score, normalize)
    pairs = Pairs(pieces, japanese, forms, senses, seg)
    w, n = fit(unit_vecs, weight, japanese, pairs, senses, seg, cfg["how"], cfg["common_only"])
    out = apply(unit_vecs, japanese, w, cfg["alpha"])
    if cfg["beta"] > 0:
        out = blend(out, weight, pairs, senses, seg, cfg["beta"])
    log(
        f"  aligned {int(japanese.sum())} Japanese pieces with W from {n} JMdict pairs, "
        f"{len(pairs.word) if cfg['beta'] > 0 else 0} dictionary pieces blended with their "
        f"glosses ({cfg}) in {time.time() - t0:.0f} s"
    )
    return out
