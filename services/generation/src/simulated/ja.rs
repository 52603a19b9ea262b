//! The simulated model's Japanese: polite です/ます, prices as `1,210円`, stock as 在庫あり /
//! 残りわずか（あとN冊） / 在庫切れ, product and series names as the Japanese storefront prints
//! them (`title_ja`, `series_ja`; the English name when there is none), documents quoted from
//! their Japanese text. The context has no Japanese synopsis, so where the English answer
//! quotes one this one says less rather than quote English.

use mangaassist_proto::v1 as pb;

use super::{
    Found, Picks, SmallTalk, Voice, Writer,
    en::thousands,
    reading::{best_sentence_ja, content_pairs, first_sentence_ja, sentences_ja},
};

pub(super) struct Japanese;

pub(super) fn yen(price: u32) -> String {
    format!("{}円", thousands(price))
}

/// Same thresholds as the English `stock_phrase`: 0 sold out, 1–4 few left, 5+ in stock.
pub(super) fn stock_phrase(stock: u32) -> String {
    match stock {
        0 => "在庫切れ".into(),
        1..=4 => format!("残りわずか（あと{stock}冊）"),
        _ => "在庫あり".into(),
    }
}

fn genre(g: &str) -> String {
    match g {
        "action" => "アクション",
        "adventure" => "冒険",
        "comedy" => "コメディ",
        "cooking" => "料理",
        "drama" => "ドラマ",
        "fantasy" => "ファンタジー",
        "historical" => "歴史",
        "horror" => "ホラー",
        "isekai" => "異世界",
        "martial_arts" => "格闘技",
        "mecha" => "ロボット",
        "music" => "音楽",
        "mystery" => "ミステリー",
        "psychological" => "心理",
        "romance" => "恋愛",
        "school" => "学園",
        "sci_fi" => "SF",
        "slice_of_life" => "日常",
        "sports" => "スポーツ",
        "supernatural" => "怪異",
        "thriller" => "サスペンス",
        "workplace" => "お仕事",
        other => return other.replace('_', " "),
    }
    .into()
}

/// The readership, as the magazines' own words.
fn audience(demographic: &str) -> String {
    match demographic {
        "shonen" => "少年",
        "seinen" => "青年",
        "shojo" => "少女",
        "josei" => "女性",
        "kodomo" => "子ども",
        other => return other.to_string(),
    }
    .into()
}

fn genres(tags: &[String], n: usize) -> String {
    tags.iter()
        .take(n)
        .map(|g| genre(g))
        .collect::<Vec<_>>()
        .join("・")
}

/// `a、b、c` (Japanese lists need no "and").
fn list(items: &[String]) -> String {
    items.join("、")
}

fn status(s: &str) -> String {
    match s {
        "processing" => "準備中",
        "shipped" => "発送済み",
        "out_for_delivery" => "配達中",
        "delivered" => "配達完了",
        "cancelled" => "キャンセル済み",
        "returned" => "返品済み",
        other => return other.replace('_', " "),
    }
    .into()
}

fn carrier(c: &str) -> String {
    match c {
        "Yamato Transport" => "ヤマト運輸",
        "Japan Post" => "日本郵便",
        "Sagawa Express" => "佐川急便",
        other => other,
    }
    .into()
}

/// `2026-11-25` as `2026年11月25日`; anything else as it is.
fn date(iso: &str) -> String {
    let mut parts = iso.splitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d))
            if y.len() == 4
                && [y, m, d]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            let n = |p: &str| p.trim_start_matches('0').to_string();
            format!("{y}年{}月{}日", n(m), n(d))
        }
        _ => iso.to_string(),
    }
}

fn title(p: &pb::Product) -> &str {
    if p.title_ja.is_empty() {
        &p.title
    } else {
        &p.title_ja
    }
}

fn series(p: &pb::Product) -> &str {
    if p.series_ja.is_empty() {
        &p.series
    } else {
        &p.series_ja
    }
}

/// `495円・在庫あり`: the stock phrase has parentheses of its own, so it is not put in more.
fn price_and_stock(p: &pb::Product) -> String {
    format!("{}・{}", yen(p.price_yen), stock_phrase(p.stock))
}

/// 『title』（author）price・stock
fn describe(p: &pb::Product) -> String {
    format!("『{}』（{}）{}", title(p), p.author, price_and_stock(p))
}

/// An order line's title as the Japanese store prints it, when the product is in context.
fn item_title<'r>(w: &Writer<'r>, i: &'r pb::OrderItem) -> &'r str {
    w.req
        .products
        .iter()
        .filter_map(|h| h.product.as_ref())
        .find(|p| p.id == i.product_id && !p.title_ja.is_empty())
        .map_or(&i.title, |p| &p.title_ja)
}

fn order_items(w: &Writer<'_>, o: &pb::Order) -> String {
    let titles: Vec<String> = o
        .items
        .iter()
        .map(|i| format!("『{}』", item_title(w, i)))
        .collect();
    if titles.len() > 3 {
        format!("{}、{}ほか{}点", titles[0], titles[1], titles.len() - 2)
    } else {
        list(&titles)
    }
}

/// A sentence as a quote: without its final 。 and with its own 「」 turned into 『』, as
/// Japanese quotes are written.
fn quoted(s: &str) -> String {
    s.strip_suffix('。')
        .unwrap_or(s)
        .replace('「', "『")
        .replace('」', "』")
}

fn japanese_title(d: &pb::Document) -> &str {
    if d.title_ja.is_empty() {
        "ヘルプ"
    } else {
        &d.title_ja
    }
}

impl Voice for Japanese {
    fn greeting_opener(w: &mut Writer<'_>, name: Option<&str>, returning: bool) {
        let opener = match (name, returning) {
            (Some(n), false) => w
                .pick(1, &["{n}さん、こんにちは！", "{n}さん、ようこそ！"])
                .replace("{n}", n),
            (Some(n), true) => format!("{n}さん、おかえりなさい！"),
            (None, _) => w
                .pick(
                    1,
                    &[
                        "こんにちは、MangaAssistです！",
                        "いらっしゃいませ！",
                        "こんにちは！",
                    ],
                )
                .to_string(),
        };
        w.line(&opener);
    }

    fn greeting_offer(w: &mut Writer<'_>) {
        w.line(w.pick(
            2,
            &[
                "作品探しもご注文確認もお任せください。",
                "作品やご注文のことなら何でもどうぞ。",
            ],
        ));
    }

    fn greeting_mood(w: &mut Writer<'_>, tags: &[String]) {
        let g = tags.iter().map(|g| genre(g)).collect::<Vec<_>>().join("や");
        w.line(&format!("{g}もご紹介します。"));
    }

    const GREETING_CLOSINGS: &'static [&'static str] = &["何をお探しですか？", "ご用件をどうぞ。"];

    fn small_talk(w: &mut Writer<'_>, talk: SmallTalk) {
        match talk {
            SmallTalk::Thanks => {
                w.line(w.pick(
                    1,
                    &[
                        "どういたしまして！",
                        "お役に立ててうれしいです！",
                        "いつでもどうぞ！",
                    ],
                ));
                w.closing(2, &["漫画やご注文のことで何かあれば、またお気軽にどうぞ。"]);
            }
            SmallTalk::Bye => w.line(w.pick(
                1,
                &[
                    "ありがとうございました。楽しい読書を！",
                    "またお待ちしております。漫画をお楽しみください！",
                ],
            )),
            SmallTalk::Who => {
                w.line("私はMangaAssist、このストアのAIショッピングアシスタントです。");
                w.line("作品探し、おすすめ、ご注文の確認、ストアの規定のご案内をお手伝いします。");
            }
            SmallTalk::Joke => {
                w.line(w.pick(
                    1,
                    &[
                        "漫画がお医者さんに行った理由は？引きばかりで、決着がつかないからです。",
                        "未完の連載のジョークをお話ししたいのですが、あいにく休載中です。",
                    ],
                ));
                w.closing(2, &["さて、読みたい作品を一緒に探しましょうか？"]);
            }
            SmallTalk::Other => {
                w.line(w.pick(
                    1,
                    &[
                        "楽しいご質問ですね！",
                        "おしゃべりは大好きです。",
                        "なるほど、そうですね。",
                    ],
                ));
                w.line("ただ、いちばん得意なのは漫画のことです。作品探し、おすすめ、ご注文やストアのご質問など、何をお手伝いしましょうか？");
            }
        }
    }

    fn quote_policy(w: &mut Writer<'_>, salt: u64, d: &pb::Document) {
        // No Japanese text: point to the page rather than quote English to a Japanese reader.
        if d.body_ja.trim().is_empty() {
            w.line("詳しい内容はヘルプページでご案内しております。恐れ入りますが、そちらをご覧ください。");
            return;
        }
        let sentence = quoted(best_sentence_ja(&w.req.query, &d.body_ja));
        let intro = w.pick(
            salt,
            &[
                "「{t}」のページによると、「{s}」とのことです。",
                "当店の「{t}」には、「{s}」とあります。",
                "「{t}」のご案内です：「{s}」。",
            ],
        );
        w.line(
            &intro
                .replace("{t}", japanese_title(d))
                .replace("{s}", &sentence),
        );
    }

    fn policy_opening(w: &mut Writer<'_>, d: &pb::Document) {
        let first = first_sentence_ja(&d.body_ja);
        if !first.is_empty() && first != best_sentence_ja(&w.req.query, &d.body_ja) {
            w.line(first);
        }
    }

    fn more_policy(w: &mut Writer<'_>, docs: &[&pb::Document]) {
        let Some(d) = docs.first() else {
            return;
        };
        let best = best_sentence_ja(&w.req.query, &d.body_ja);
        let first = first_sentence_ja(&d.body_ja);
        let pairs = content_pairs(&w.req.query);
        let extra: Vec<&str> = sentences_ja(&d.body_ja)
            .into_iter()
            .filter(|s| *s != best && *s != first)
            .filter(|s| pairs.iter().any(|p| s.contains(p.as_str())))
            .take(2)
            .collect();
        for s in extra {
            w.line(s);
        }
        if let Some(d2) = docs.get(1)
            && !d2.body_ja.trim().is_empty()
        {
            let s = quoted(best_sentence_ja(&w.req.query, &d2.body_ja));
            w.line(&format!(
                "「{}」もあわせてご覧ください：「{s}」。",
                japanese_title(d2)
            ));
        }
    }

    const FAQ_CLOSINGS: &'static [&'static str] = &[
        "ほかにご不明な点があれば、お知らせください。",
        "ほかにお手伝いできることはございますか？",
        "ストアについて、ほかにも何でもお尋ねください。",
    ];

    fn no_policy(w: &mut Writer<'_>) {
        if w.degraded {
            w.line("ただいまヘルプ記事を参照できないため、規定を推測でお答えするのは控えます。");
        } else {
            w.line("お尋ねの件に直接お答えできる規定が見つからず、推測でお答えするのは控えたいと思います。");
        }
        w.line("詳しくはヘルプページからカスタマーサポートにご確認いただくか、別の言い方でもう一度お尋ねください。");
    }

    fn no_order(w: &mut Writer<'_>) {
        if w.degraded {
            w.line("ただいま注文履歴を確認できません。");
        } else {
            w.line(w.pick(1, &["確認いたしますね。", "お調べしますね。"]));
        }
        w.line("ご注文番号を教えていただけますか？MA-に続く6桁の番号で、確認メールに記載されています。");
    }

    fn order_status(w: &mut Writer<'_>, o: &pb::Order) {
        let items = order_items(w, o);
        let id = &o.order_id;
        let (by, eta, tracking) = (carrier(&o.carrier), date(&o.eta), &o.tracking);
        let s = match o.status.as_str() {
            "shipped" => format!(
                "ご注文{id}（{items}）は{by}で発送済みです。お問い合わせ番号は{tracking}で、{eta}までにお届けの予定です。"
            ),
            "out_for_delivery" => format!(
                "うれしいお知らせです。ご注文{id}（{items}）は本日（{eta}）、{by}がお届けにうかがいます。お問い合わせ番号：{tracking}。"
            ),
            "processing" => format!(
                "ご注文{id}（{items}）は現在準備中で、まだ発送されていません。お届け予定は{eta}です。"
            ),
            "delivered" if o.carrier.is_empty() => {
                format!("ご注文{id}（{items}）は{eta}にお届け済みです。")
            }
            "delivered" => format!("ご注文{id}（{items}）は{eta}に{by}でお届け済みです。"),
            "returned" => {
                format!("ご注文{id}（{items}）は返品済みで、{eta}に当店に届いています。")
            }
            "cancelled" => {
                format!("ご注文{id}（{items}）はキャンセルされたため、発送はありません。")
            }
            other => format!("ご注文{id}（{items}）の状況は「{}」です。", status(other)),
        };
        w.line(&s);
    }

    fn order_details(w: &mut Writer<'_>, o: &pb::Order) {
        let items: Vec<String> = o
            .items
            .iter()
            .map(|i| {
                format!(
                    "『{}』×{}（{}）",
                    item_title(w, i),
                    i.quantity,
                    yen(i.price_yen)
                )
            })
            .collect();
        if !items.is_empty() {
            w.line(&format!(
                "ご注文日は{}、内容は{}です。",
                date(&o.placed_at),
                list(&items)
            ));
        }
    }

    fn orders_on_the_way(w: &mut Writer<'_>, others: &[&pb::Order]) {
        let others: Vec<String> = others
            .iter()
            .map(|x| format!("{}（{}）", x.order_id, status(&x.status)))
            .collect();
        w.line(&format!(
            "ほかにもご注文{}がお届け待ちです。",
            list(&others)
        ));
    }

    const ORDER_CLOSINGS: &'static [&'static str] = &[
        "ほかに確認したいことはございますか？",
        "ほかにもお手伝いできることがあれば、お知らせください。",
    ];

    fn no_catalog(w: &mut Writer<'_>, tags: &[String]) {
        if w.degraded {
            w.line("ただいまカタログを検索できないため、タイトル・価格・在庫を確認できません。");
        } else {
            w.line("このストアのカタログでは、該当する作品が見つかりませんでした。");
        }
        if tags.is_empty() {
            w.line("好きなシリーズ、作者、ジャンルを教えていただければ、もう一度お探しします。新刊ページもおすすめです。");
        } else {
            w.line(&format!(
                "{}がお好きでしたら、ストアのジャンル別ページもご覧ください。気になる作品があれば在庫をお調べします。",
                genres(tags, 2)
            ));
        }
    }

    fn found(w: &mut Writer<'_>, f: &Found<'_>) {
        let best = f.best;
        if let Some(v) = f.missing_volume {
            w.line(&format!(
                "このストアの検索結果には{v}巻がありませんでした。"
            ));
        }
        let intro = if f.missing_volume.is_some() {
            "いちばん近いのはこちらです。"
        } else {
            w.pick(1, &["", "はい、お取り扱いがあります。", "見つかりました。"])
        };
        let price = if best.stock == 0 {
            format!("{}ですが、現在在庫切れです", yen(best.price_yen))
        } else {
            format!("{}、{}です", yen(best.price_yen), stock_phrase(best.stock))
        };
        w.line(&format!(
            "{intro}『{}』（{}）は{price}。",
            title(best),
            best.author
        ));
        w.line(&format!(
            "{}向けのシリーズです（{}）。",
            audience(&best.demographic),
            genres(&best.genres, 5)
        ));
        if w.detailed() {
            w.line(&format!("発売日は{}です。", date(&best.release_date)));
        }
        if !f.others.is_empty() {
            let described: Vec<String> = f.others.iter().map(|p| describe(p)).collect();
            w.line(&format!("ほかにも見つかりました：{}。", list(&described)));
        }
        if best.stock == 0 {
            w.line("在庫のある作品をお探ししましょうか？");
        }
    }

    fn recommend(w: &mut Writer<'_>, p: &Picks<'_>) {
        let mut intro = w
            .pick(
                1,
                &[
                    "おすすめをいくつかご紹介します。",
                    "こちらはいかがでしょうか。",
                    "こちらの作品がぴったりかもしれません。",
                ],
            )
            .to_string();
        if let Some(n) = p.name {
            intro = format!("{n}さん、{intro}");
        }
        if let Some(prev) = p.previous {
            let short: String = prev.chars().take(40).collect();
            let ell = if prev.chars().count() > 40 { "…" } else { "" };
            intro = format!("先ほどの「{short}{ell}」というご質問もふまえて、{intro}");
        }
        w.line(&intro);
        w.newline();
        for pick in &p.picks {
            let liked: Vec<String> = pick
                .genres
                .iter()
                .filter(|g| p.favourites.contains(g))
                .cloned()
                .collect();
            let why = if liked.is_empty() {
                format!(
                    "{}向けの{}作品",
                    audience(&pick.demographic),
                    genres(&pick.genres, 3)
                )
            } else {
                format!(
                    "お好きな{}が楽しめる{}向けの作品",
                    genres(&liked, 3),
                    audience(&pick.demographic)
                )
            };
            let released = if w.detailed() {
                format!("{}発売。", date(&pick.release_date))
            } else {
                String::new()
            };
            w.out.push_str(&format!(
                "- 『{}』（{}）：{why}。{released}{}、{}。\n",
                title(pick),
                pick.author,
                yen(pick.price_yen),
                stock_phrase(pick.stock)
            ));
        }
        if p.all_out {
            w.line("あいにく、いずれも現在在庫切れです。申し訳ございません。");
        } else if w.detailed() {
            let ready: Vec<String> = p
                .picks
                .iter()
                .filter(|p| p.stock > 0)
                .map(|p| format!("『{}』", series(p)))
                .collect();
            w.line(&format!("{}はすぐに発送できます。", list(&ready)));
        }
    }

    const RECOMMENDATION_CLOSINGS: &'static [&'static str] = &[
        "気になる作品があれば、詳しくご案内します。",
        "続きの巻もお調べしましょうか？",
        "別のタイプがよろしければ、お知らせください。",
    ];

    fn compare_one(w: &mut Writer<'_>, a: &pb::Product) {
        w.line(&format!(
            "『{}』（{}）が見つかりました。{}で、{}向けのシリーズです。",
            title(a),
            a.author,
            price_and_stock(a),
            audience(&a.demographic)
        ));
        if w.detailed() {
            w.line(&format!("発売日は{}です。", date(&a.release_date)));
        }
        w.line("もう一方の作品はこのストアで見つかりませんでした。どの作品と比べましょうか？");
    }

    fn compare_two(w: &mut Writer<'_>, a: &pb::Product, b: &pb::Product) {
        w.line(&format!(
            "『{}』は{}による{}向けのシリーズ（{}）、『{}』は{}による{}向けのシリーズ（{}）です。",
            series(a),
            a.author,
            audience(&a.demographic),
            genres(&a.genres, 5),
            series(b),
            b.author,
            audience(&b.demographic),
            genres(&b.genres, 5)
        ));
        if w.detailed() {
            for p in [a, b] {
                w.line(&format!(
                    "『{}』は{}発売です。",
                    title(p),
                    date(&p.release_date)
                ));
            }
        }
        let shared: Vec<String> = a
            .genres
            .iter()
            .filter(|g| b.genres.contains(g))
            .cloned()
            .collect();
        if shared.is_empty() {
            w.line("ジャンルの共通点は少ないので、お好みで選ぶのがよさそうです。");
        } else {
            w.line(&format!("どちらも{}が楽しめます。", genres(&shared, 5)));
        }
        w.line(&format!(
            "当店では『{}』が{}、『{}』が{}です。",
            title(a),
            price_and_stock(a),
            title(b),
            price_and_stock(b)
        ));
        let only_a = a
            .genres
            .iter()
            .find(|g| !b.genres.contains(g))
            .or(a.genres.first());
        let only_b = b
            .genres
            .iter()
            .find(|g| !a.genres.contains(g))
            .or(b.genres.first());
        if let (Some(only_a), Some(only_b)) = (only_a, only_b) {
            w.line(&format!(
                "{}をもっと楽しみたいなら『{}』、{}なら『{}』がおすすめです。",
                genre(only_a),
                series(a),
                genre(only_b),
                series(b)
            ));
        }
    }

    fn apology(w: &mut Writer<'_>) {
        w.line(w.pick(
            1,
            &[
                "ご不便をおかけして、誠に申し訳ございません。",
                "ご迷惑をおかけし、申し訳ございません。",
                "ご連絡ありがとうございます。大変申し訳ございません。",
            ],
        ));
    }

    fn order_in_complaint(w: &mut Writer<'_>, o: &pb::Order) {
        let items = order_items(w, o);
        w.line(&format!(
            "ご注文{}（{items}）を確認しました。現在の状況は「{}」です。",
            o.order_id,
            status(&o.status)
        ));
    }

    fn remedies(w: &mut Writer<'_>) {
        w.line(w.pick(
            3,
            &[
                "よろしければ、交換・返金のお手続きを始めるか、サポートチームにおつなぎします。",
                "すぐにサポートチームへお伝えするか、交換・返金のご依頼をお手伝いします。",
            ],
        ));
    }

    fn order_to_return(w: &mut Writer<'_>, o: &pb::Order) {
        let items = order_items(w, o);
        w.line(&format!(
            "ご注文{}（{items}）の状況は「{}」です。",
            o.order_id,
            status(&o.status)
        ));
    }

    fn return_window(w: &mut Writer<'_>) {
        w.line("返品期間内であれば、こちらでお手続きを始められます。返金は最初のお支払い方法に戻ります。");
    }

    fn ask_which_order(w: &mut Writer<'_>) {
        w.line("どのご注文でしょうか？ご注文番号（MA-に続く6桁）を教えていただければ、返品できるかお調べします。");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_stock_dates_and_labels_read_as_japanese() {
        assert_eq!(yen(495), "495円");
        assert_eq!(yen(1_210), "1,210円");
        assert_eq!(stock_phrase(0), "在庫切れ");
        assert_eq!(stock_phrase(1), "残りわずか（あと1冊）");
        assert_eq!(stock_phrase(4), "残りわずか（あと4冊）");
        assert_eq!(stock_phrase(5), "在庫あり");
        assert_eq!(date("2026-11-05"), "2026年11月5日");
        assert_eq!(date("soon"), "soon");
        assert_eq!(carrier("Yamato Transport"), "ヤマト運輸");
        assert_eq!(carrier("UPS"), "UPS");
        assert_eq!(status("out_for_delivery"), "配達中");
        assert_eq!(
            genres(&["sci_fi".into(), "slice_of_life".into()], 5),
            "SF・日常"
        );
        assert_eq!(quoted("送料は550円です。"), "送料は550円です");
    }
}
