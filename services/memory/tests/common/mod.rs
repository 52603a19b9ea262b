//! Turns and orders shared by the store tests.
#![allow(dead_code)]

use mangaassist_proto::v1 as pb;

pub fn turn(role: &str, text: &str, ts_ms: i64) -> pb::Turn {
    pb::Turn {
        role: role.into(),
        text: text.into(),
        ts_ms,
        ..Default::default()
    }
}

pub fn texts(turns: &[pb::Turn]) -> Vec<&str> {
    turns.iter().map(|t| t.text.as_str()).collect()
}

pub fn order(id: &str, user: &str, store: &str, placed: &str) -> pb::Order {
    pb::Order {
        order_id: id.into(),
        user_id: user.into(),
        store_id: store.into(),
        placed_at: placed.into(),
        ..Default::default()
    }
}

pub fn ids(v: Vec<pb::Order>) -> Vec<String> {
    v.into_iter().map(|o| o.order_id).collect()
}
