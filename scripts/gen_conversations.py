#!/usr/bin/env python3
"""Writes data/eval/conversations.jsonl: multi-turn shop conversations for `bench conversations`.

Every wording below was written by hand to sound like a customer (openers that name a series
the way people do, follow-ups that lean on the conversation: "is it in stock?", "いくら？");
this script only picks, per conversation, a series from the catalog and an order of turns
(fixed seed), so the set is reproducible and every label is checked against the catalog.
None of these wordings is a precompute template. Run: python3 scripts/gen_conversations.py
"""
import json, random, pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
products = [json.loads(l) for l in open(ROOT / "data/catalog/products.jsonl")]

OPEN_EN = [
    "Hi! Do you have {series} volume 1?",
    "I'm looking for the first volume of {series}",
    "What's {series} vol 1 like?",
    "My friend keeps telling me to read {series}. Do you carry the first book?",
    "I just finished the {series} anime, can I get volume 1 of the manga here?",
    "hey, got {series} volume 1?",
    "Is {series} volume 1 any good?",
    "Can you tell me about {series}, volume 1?",
]
OPEN_JA = [
    "{ja}の1巻ありますか？",
    "{ja}の1巻について教えてください",
    "アニメを見て{ja}が気になりました。1巻はありますか？",
    "{ja}の第1巻を探しています",
    "{ja} 1巻ってどんな漫画ですか？",
]
FOLLOW_EN = {
    "stock": ["is it in stock?", "Do you have it in stock right now?", "is it still available?",
              "can I buy it now?", "any copies left?"],
    "price": ["how much is it?", "How much does it cost?", "what's the price?", "how much?",
              "ok and how much is that one?"],
    "next_volume": ["When is the next volume out?", "when does the next one come out?",
                    "is there a sequel?"],
    "similar": ["anything similar?", "Can you recommend something like it?",
                "got anything else like that?"],
    "about": ["what's it about?", "tell me more", "what's the story?"],
}
FOLLOW_JA = {
    "stock": ["在庫ありますか？", "まだ買えますか？", "在庫はありますか"],
    "price": ["いくらですか？", "値段は？", "おいくらですか"],
    "next_volume": ["次の巻はいつ出ますか？", "続刊はありますか？"],
    "similar": ["似た作品はありますか？", "似たようなおすすめある？"],
    "about": ["どんな話ですか？", "あらすじを教えてください"],
}
# Turns that are not about the product: answered live (or from the shared cache), never wrong
# about a product.
OTHER_EN = ["Do you ship overseas?", "What's your return policy?", "thanks, that helps!",
            "How long does shipping take?"]
OTHER_JA = ["送料はいくらですか？", "返品はできますか？", "ありがとうございます！"]

def series_of(store):
    seen = {}
    for p in products:
        if p["store_id"] == store and p["volume"] == 1:
            seen.setdefault(p["series"], p)
    return list(seen.values())

def conversation(rng, cid, store, lang, first):
    series = first["series"]
    if lang == "ja":
        ja = first.get("series_ja") or series
        opener = rng.choice(OPEN_JA).format(ja=ja)
        follow, other = FOLLOW_JA, OTHER_JA
    else:
        opener = rng.choice(OPEN_EN).format(series=series)
        follow, other = FOLLOW_EN, OTHER_EN
    turns = [{"say": opener, "about": series}]
    asks = rng.sample(["stock", "price", "next_volume", "about"], k=rng.choice([2, 2, 3]))
    for ask in asks:
        # The next-volume answer is about the same series (another volume).
        turns.append({"say": rng.choice(follow[ask]), "about": series, "ask": ask})
    if rng.random() < 0.35:
        turns.append({"say": rng.choice(other)})
    if rng.random() < 0.5:
        # "Anything similar?" moves the conversation to another series: no label.
        turns.append({"say": rng.choice(follow["similar"]), "ask": "similar"})
        if rng.random() < 0.6:
            turns.append({"say": rng.choice(follow["price"] if rng.random() < 0.5 else follow["stock"]),
                          "ask": "followup_after_similar"})
    return {"id": cid, "store": store, "lang": lang, "turns": turns}

def main():
    rng = random.Random(15)
    out = []
    plan = [("comics_us", "en", 60), ("manga_jp", "en", 25), ("manga_jp", "ja", 40)]
    for store, lang, n in plan:
        pool = series_of(store)
        if lang == "ja":
            pool = [p for p in pool if p.get("series_ja")]
        rng.shuffle(pool)
        for i in range(n):
            first = pool[i % len(pool)]
            out.append(conversation(rng, f"{store}-{lang}-{i + 1:03}", store, lang, first))
    path = ROOT / "data/eval/conversations.jsonl"
    with open(path, "w") as f:
        for c in out:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    turns = sum(len(c["turns"]) for c in out)
    print(f"wrote {len(out)} conversations, {turns} turns to {path.relative_to(ROOT)}")

if __name__ == "__main__":
    main()
