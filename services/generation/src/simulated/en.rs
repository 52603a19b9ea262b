//! The simulated model's English.

use mangaassist_proto::v1 as pb;

use super::{
    Found, Picks, SmallTalk, Voice, Writer,
    reading::{best_sentence, first_sentence, second_sentence, sentences, words},
};
use crate::PromptStyle;

pub(super) struct English;

pub(super) fn yen(price: u32) -> String {
    format!("{} yen", thousands(price))
}

/// `1210` as `1,210`.
pub(super) fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

pub(super) fn stock_phrase(stock: u32) -> String {
    match stock {
        0 => "out of stock".into(),
        1..=4 => format!("only {stock} left"),
        _ => "in stock".into(),
    }
}

pub(super) fn genre_text(g: &str) -> String {
    match g {
        "sci_fi" => "sci-fi".into(),
        other => other.replace('_', " "),
    }
}

pub(super) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn genres(p: &pb::Product) -> Vec<String> {
    p.genres.iter().map(|g| genre_text(g)).collect()
}

fn lower_first(s: &str) -> String {
    if s.starts_with("I'") || s.starts_with("I ") {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn describe(p: &pb::Product) -> String {
    format!(
        "{} by {} ({}, {})",
        p.title,
        p.author,
        yen(p.price_yen),
        stock_phrase(p.stock)
    )
}

fn order_items(o: &pb::Order) -> String {
    let titles: Vec<String> = o.items.iter().map(|i| i.title.clone()).collect();
    if titles.len() > 3 {
        format!("{}, {} and {} more", titles[0], titles[1], titles.len() - 2)
    } else {
        join_and(&titles)
    }
}

/// Detailed style: the synopsis beyond its first sentence (one more sentence).
fn more_synopsis(w: &mut Writer<'_>, p: &pb::Product) {
    let second = second_sentence(&p.synopsis);
    if !second.is_empty() {
        w.line(second);
    }
}

impl Voice for English {
    fn greeting_opener(w: &mut Writer<'_>, name: Option<&str>, returning: bool) {
        let opener = match (name, returning) {
            (Some(n), false) => w
                .pick(
                    1,
                    &[
                        "Hello {n}, welcome to MangaAssist!",
                        "Hi {n}! Great to see you.",
                        "Welcome, {n}!",
                    ],
                )
                .replace("{n}", n),
            (Some(n), true) => format!("Welcome back, {n}!"),
            (None, _) => w
                .pick(
                    1,
                    &[
                        "Hello, welcome to MangaAssist!",
                        "Hi there, welcome!",
                        "Hello!",
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
                "I can help you find a title, suggest what to read next, check on an order, or answer questions about shipping and returns.",
                "Ask me about any series, for a recommendation, about an order, or about shipping, payment and returns.",
            ],
        ));
    }

    fn greeting_mood(w: &mut Writer<'_>, genres: &[String]) {
        let g = join_and(&genres.iter().map(|g| genre_text(g)).collect::<Vec<_>>());
        w.line(&format!(
            "If you're in the mood for some {g}, just say the word."
        ));
    }

    const GREETING_CLOSINGS: &'static [&'static str] =
        &["What can I do for you today?", "What are you looking for?"];

    fn small_talk(w: &mut Writer<'_>, talk: SmallTalk) {
        match talk {
            SmallTalk::Thanks => {
                w.line(w.pick(1, &["You're very welcome!", "Happy to help!", "Anytime!"]));
                w.closing(
                    2,
                    &["If anything else comes up, about manga or your orders, just ask."],
                );
            }
            SmallTalk::Bye => w.line(w.pick(
                1,
                &[
                    "Goodbye, and happy reading!",
                    "See you soon, enjoy your manga!",
                ],
            )),
            SmallTalk::Who => {
                w.line("I'm MangaAssist, the store's AI shopping assistant.");
                w.line("I can find titles, suggest what to read next, check orders and explain store policies.");
            }
            SmallTalk::Joke => {
                w.line(w.pick(
                    1,
                    &[
                        "Why did the manga go to the doctor? It had too many cliffhangers and not enough resolution.",
                        "I'd tell you a joke about an unfinished manga series, but it's still on hiatus.",
                    ],
                ));
                w.closing(2, &["Now, can I help you find something to read?"]);
            }
            SmallTalk::Other => {
                w.line(w.pick(
                    1,
                    &[
                        "That's a fun question!",
                        "I enjoy a good chat.",
                        "Ha, I hear you.",
                    ],
                ));
                w.line("I'm best at manga, though: finding titles, recommendations, orders and store questions. What can I help with?");
            }
        }
    }

    fn quote_policy(w: &mut Writer<'_>, salt: u64, d: &pb::Document) {
        let sentence = best_sentence(&w.req.query, &d.body);
        let intro = w.pick(
            salt,
            &[
                "According to our \"{t}\" page:",
                "Our \"{t}\" policy says:",
                "From \"{t}\":",
            ],
        );
        w.line(&format!(
            "{} \"{sentence}\"",
            intro.replace("{t}", &d.title)
        ));
    }

    fn policy_opening(w: &mut Writer<'_>, d: &pb::Document) {
        let extra = first_sentence(&d.body).to_string();
        let quoted = best_sentence(&w.req.query, &d.body);
        if !extra.is_empty() && extra != quoted {
            w.line(&extra);
        }
    }

    fn more_policy(w: &mut Writer<'_>, docs: &[&pb::Document]) {
        let Some(d) = docs.first() else {
            return;
        };
        let quoted = best_sentence(&w.req.query, &d.body);
        let q = words(&w.req.query);
        let extra: Vec<&str> = sentences(&d.body)
            .into_iter()
            .filter(|s| *s != quoted && *s != first_sentence(&d.body))
            .filter(|s| !words(s).is_disjoint(&q))
            .take(2)
            .collect();
        for s in extra {
            w.line(s);
        }
        if let Some(d2) = docs.get(1) {
            let s = best_sentence(&w.req.query, &d2.body);
            w.line(&format!("Also see \"{}\": \"{s}\"", d2.title));
        }
    }

    const FAQ_CLOSINGS: &'static [&'static str] = &[
        "Let me know if you need anything else.",
        "Is there anything else I can help with?",
        "Happy to explain anything else about the store.",
    ];

    fn no_policy(w: &mut Writer<'_>) {
        if w.degraded {
            w.line("I can't reach our help articles right now, so I don't want to guess at the exact policy.");
        } else {
            w.line("I couldn't find a store policy that answers that exactly, and I don't want to guess.");
        }
        w.line("Customer support can confirm the details from the Help page, or try asking me in a different way.");
    }

    fn no_order(w: &mut Writer<'_>) {
        if w.degraded {
            w.line("I can't reach order records right now.");
        } else {
            w.line(w.pick(
                1,
                &[
                    "I'd be glad to check on that.",
                    "Let me look that up for you.",
                ],
            ));
        }
        w.line("Could you tell me your order number? It starts with MA- followed by six digits and is in your confirmation email.");
    }

    fn order_status(w: &mut Writer<'_>, o: &pb::Order) {
        let items = order_items(o);
        let id = &o.order_id;
        let s = match o.status.as_str() {
            "shipped" => format!(
                "Your order {id} ({items}) has shipped with {}. The tracking number is {}, and it should arrive by {}.",
                o.carrier, o.tracking, o.eta
            ),
            "out_for_delivery" => format!(
                "Good news: your order {id} ({items}) is out for delivery with {} and should arrive today ({}). Tracking number: {}.",
                o.carrier, o.eta, o.tracking
            ),
            "processing" => format!(
                "Your order {id} ({items}) is still processing and has not shipped yet; the current estimate is {}.",
                o.eta
            ),
            "delivered" => format!(
                "Your order {id} ({items}) was delivered on {}{}.",
                o.eta,
                if o.carrier.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", o.carrier)
                }
            ),
            "returned" => format!(
                "Your order {id} ({items}) has been returned; it reached us on {}.",
                o.eta
            ),
            "cancelled" => {
                format!("Your order {id} ({items}) was cancelled, so nothing will ship.")
            }
            other => format!(
                "Your order {id} ({items}) is currently {}.",
                other.replace('_', " ")
            ),
        };
        w.line(&s);
    }

    fn order_details(w: &mut Writer<'_>, o: &pb::Order) {
        let items: Vec<String> = o
            .items
            .iter()
            .map(|i| format!("{} x{} ({})", i.title, i.quantity, yen(i.price_yen)))
            .collect();
        if !items.is_empty() {
            w.line(&format!(
                "It was placed on {} and contains {}.",
                o.placed_at,
                join_and(&items)
            ));
        }
    }

    fn orders_on_the_way(w: &mut Writer<'_>, others: &[&pb::Order]) {
        let others: Vec<String> = others
            .iter()
            .map(|x| format!("{} ({})", x.order_id, x.status.replace('_', " ")))
            .collect();
        w.line(&format!("You also have {} on the way.", join_and(&others)));
    }

    const ORDER_CLOSINGS: &'static [&'static str] = &[
        "Anything else I can check for you?",
        "Let me know if you need help with anything else.",
    ];

    fn no_catalog(w: &mut Writer<'_>, genres: &[String]) {
        if w.degraded {
            w.line("I can't look up the catalog right now, so I can't confirm titles, prices or stock.");
        } else {
            w.line("I couldn't find a match for that in this store's catalog.");
        }
        if genres.is_empty() {
            w.line("Tell me a series, an author or a genre you like and I'll search again; the store's New Releases page is also a good place to browse.");
        } else {
            let g = join_and(
                &genres
                    .iter()
                    .take(2)
                    .map(|g| genre_text(g))
                    .collect::<Vec<_>>(),
            );
            w.line(&format!(
                "Since you enjoy {g}, browsing those genres on the store page is a good start, and I can check stock for anything you find."
            ));
        }
    }

    fn found(w: &mut Writer<'_>, f: &Found<'_>) {
        let best = f.best;
        if let Some(v) = f.missing_volume {
            w.line(&format!(
                "I couldn't find volume {v} among this store's results."
            ));
        }
        let intro = if f.missing_volume.is_some() {
            "Here's the closest match: "
        } else {
            w.pick(1, &["", "Yes, we carry it: ", "Here's what I found: "])
        };
        let mut s = format!(
            "{intro}{} by {} is {} and {}.",
            best.title,
            best.author,
            yen(best.price_yen),
            if best.stock == 0 {
                "currently out of stock".to_string()
            } else {
                stock_phrase(best.stock)
            }
        );
        if let Some(c) = s.get(..1) {
            let upper = c.to_uppercase();
            s.replace_range(..1, &upper);
        }
        w.line(&s);
        w.line(&format!(
            "It's a {} series ({}).",
            best.demographic,
            join_and(&genres(best))
        ));
        if best.volume == 1 {
            w.line(first_sentence(&best.synopsis));
        }
        if w.detailed() {
            if best.volume == 1 {
                more_synopsis(w, best);
            } else {
                w.line(first_sentence(&best.synopsis));
            }
            w.line(&format!("It was released on {}.", best.release_date));
        }
        if !f.others.is_empty() {
            let described: Vec<String> = f.others.iter().map(|p| describe(p)).collect();
            w.line(&format!("I also found {}.", join_and(&described)));
        }
        if best.stock == 0 {
            w.line("Would you like an in-stock alternative?");
        }
    }

    fn recommend(w: &mut Writer<'_>, p: &Picks<'_>) {
        let mut intro = w
            .pick(
                1,
                &[
                    "Here are a few picks{for}:",
                    "I'd suggest these{for}:",
                    "These could be a good fit{for}:",
                ],
            )
            .replace(
                "{for}",
                &p.name.map(|n| format!(" for you, {n}")).unwrap_or_default(),
            );
        if let Some(prev) = p.previous {
            let short: String = prev.chars().take(60).collect();
            let ell = if prev.chars().count() > 60 { "..." } else { "" };
            intro = format!(
                "Following on from your earlier question (\"{short}{ell}\"), {}",
                lower_first(&intro)
            );
        }
        w.line(&intro);
        w.newline();
        for pick in &p.picks {
            let genres: Vec<String> = pick.genres.iter().take(3).map(|g| genre_text(g)).collect();
            let liked: Vec<String> = pick
                .genres
                .iter()
                .filter(|g| p.favourites.contains(g))
                .map(|g| genre_text(g))
                .collect();
            let why = if liked.is_empty() {
                format!("a {} {} story", pick.demographic, join_and(&genres))
            } else {
                format!(
                    "{} you enjoy, in a {} series",
                    join_and(&liked),
                    pick.demographic
                )
            };
            let mut synopsis = if pick.volume == 1 && w.style != PromptStyle::Concise {
                format!(" {}", first_sentence(&pick.synopsis))
            } else {
                String::new()
            };
            if w.detailed() {
                let second = second_sentence(&pick.synopsis);
                if pick.volume != 1 {
                    synopsis = format!(" {}", first_sentence(&pick.synopsis));
                } else if !second.is_empty() {
                    synopsis = format!("{synopsis} {second}");
                }
                synopsis = format!("{synopsis} Released {}.", pick.release_date);
            }
            w.out.push_str(&format!(
                "- {} by {}: {why}.{synopsis} {}, {}.\n",
                pick.title,
                pick.author,
                yen(pick.price_yen),
                stock_phrase(pick.stock)
            ));
        }
        if p.all_out {
            w.line("All of these are out of stock at the moment, sorry about that.");
        } else if w.detailed() {
            let ready: Vec<String> = p
                .picks
                .iter()
                .filter(|p| p.stock > 0)
                .map(|p| p.series.clone())
                .collect();
            w.line(&format!("{} can ship right away.", join_and(&ready)));
        }
    }

    const RECOMMENDATION_CLOSINGS: &'static [&'static str] = &[
        "Want more details on any of these?",
        "Shall I check the next volumes for you?",
        "Let me know if you'd like something different.",
    ];

    fn compare_one(w: &mut Writer<'_>, a: &pb::Product) {
        w.line(&format!(
            "I found {}, a {} series: {}",
            describe(a),
            a.demographic,
            first_sentence(&a.synopsis)
        ));
        if w.detailed() {
            more_synopsis(w, a);
        }
        w.line("I couldn't find the other title in this store. Which one would you like to compare it with?");
    }

    fn compare_two(w: &mut Writer<'_>, a: &pb::Product, b: &pb::Product) {
        let (ga, gb) = (genres(a), genres(b));
        w.line(&format!(
            "{} is a {} series by {} ({}), while {} is a {} series by {} ({}).",
            a.series,
            a.demographic,
            a.author,
            join_and(&ga),
            b.series,
            b.demographic,
            b.author,
            join_and(&gb)
        ));
        if w.detailed() {
            for p in [a, b] {
                w.line(&format!(
                    "{} (released {}): {}",
                    p.title,
                    p.release_date,
                    first_sentence(&p.synopsis)
                ));
            }
        }
        let shared: Vec<String> = ga.iter().filter(|g| gb.contains(g)).cloned().collect();
        if shared.is_empty() {
            w.line("They have little in common in genre, so it comes down to taste.");
        } else {
            w.line(&format!("Both offer {}.", join_and(&shared)));
        }
        w.line(&format!(
            "Here, {} is {} ({}) and {} is {} ({}).",
            a.title,
            yen(a.price_yen),
            stock_phrase(a.stock),
            b.title,
            yen(b.price_yen),
            stock_phrase(b.stock)
        ));
        // A product without genres (possible in a peer's data) has nothing to steer by.
        let only_a = ga.iter().find(|g| !gb.contains(g)).or(ga.first());
        let only_b = gb.iter().find(|g| !ga.contains(g)).or(gb.first());
        if let (Some(only_a), Some(only_b)) = (only_a, only_b) {
            w.line(&format!(
                "If you want more {only_a}, start with {}; for more {only_b}, go with {}.",
                a.series, b.series
            ));
        }
    }

    fn apology(w: &mut Writer<'_>) {
        w.line(w.pick(
            1,
            &[
                "I'm really sorry about this; that's not the experience we want you to have.",
                "I'm sorry, that must be frustrating.",
                "Thank you for telling us, and I'm sorry this happened.",
            ],
        ));
    }

    fn order_in_complaint(w: &mut Writer<'_>, o: &pb::Order) {
        w.line(&format!(
            "I can see your order {} ({}), currently {}.",
            o.order_id,
            order_items(o),
            o.status.replace('_', " ")
        ));
    }

    fn remedies(w: &mut Writer<'_>) {
        w.line(w.pick(
            3,
            &[
                "If you'd like, I can start a replacement or refund request, or connect you with our support team.",
                "I can raise this with our support team right away, or help you request a replacement or refund.",
            ],
        ));
    }

    fn order_to_return(w: &mut Writer<'_>, o: &pb::Order) {
        w.line(&format!(
            "Your order {} ({}) is {}.",
            o.order_id,
            order_items(o),
            o.status.replace('_', " ")
        ));
    }

    fn return_window(w: &mut Writer<'_>) {
        w.line("If it is within the return window, I can start the request for you; the refund goes back to your original payment method.");
    }

    fn ask_which_order(w: &mut Writer<'_>) {
        w.line("Which order is it? Please share the order number (MA- followed by six digits) and I'll check whether it can be returned.");
    }
}
