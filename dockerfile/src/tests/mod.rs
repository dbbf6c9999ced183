//! Tests of the public API on realistic Dockerfiles.

mod expand;
mod instructions;
mod parse;

use crate::{Dockerfile, Error, Instr, Kind};

pub(super) fn ok(text: &str) -> Dockerfile {
    match crate::parse(text) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n{text}"),
    }
}

pub(super) fn err(text: &str) -> Error {
    match crate::parse(text) {
        Ok(df) => panic!("parse succeeded: {df:?}"),
        Err(e) => e,
    }
}

/// The instructions of the only (or last) stage.
pub(super) fn last_stage(text: &str) -> Vec<Instr> {
    let df = ok(text);
    df.stages
        .last()
        .map(|s| s.instructions.clone())
        .unwrap_or_default()
}

/// The kind of the first instruction after FROM.
pub(super) fn first_kind(body: &str) -> Kind {
    let instrs = last_stage(&format!("FROM alpine\n{body}"));
    instrs
        .into_iter()
        .next()
        .map(|i| i.kind)
        .expect("an instruction")
}

/// The error of a one-instruction body after FROM (line 2).
pub(super) fn body_err(body: &str) -> String {
    let e = err(&format!("FROM alpine\n{body}"));
    assert_eq!(e.line, 2, "{e}");
    e.message
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn no_vars(_: &str) -> Option<String> {
    None
}
