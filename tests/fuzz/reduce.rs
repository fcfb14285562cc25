//! Delta debugging over a script's statement tree: remove statements (ddmin over every node,
//! a block taking its body with it) and flatten blocks into their bodies, keeping a change only
//! when the divergence persists, until nothing more can go.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::generator::{Script, Stmt};

/// Pre-order ids of the nodes the reducer may delete (every node but `keep` lines).
fn deletable(script: &Script) -> Vec<usize> {
    fn walk(list: &[Stmt], n: &mut usize, out: &mut Vec<usize>) {
        for st in list {
            let id = *n;
            *n += 1;
            match st {
                Stmt::Line { keep, .. } => {
                    if !keep {
                        out.push(id);
                    }
                }
                Stmt::Block { parts, .. } => {
                    out.push(id);
                    for (_, body) in parts {
                        walk(body, n, out);
                    }
                }
            }
        }
    }
    let mut out = vec![];
    walk(&script.stmts, &mut 0, &mut out);
    out
}

/// Pre-order ids of the blocks.
fn blocks(script: &Script) -> Vec<usize> {
    fn walk(list: &[Stmt], n: &mut usize, out: &mut Vec<usize>) {
        for st in list {
            let id = *n;
            *n += 1;
            if let Stmt::Block { parts, .. } = st {
                out.push(id);
                for (_, body) in parts {
                    walk(body, n, out);
                }
            }
        }
    }
    let mut out = vec![];
    walk(&script.stmts, &mut 0, &mut out);
    out
}

/// `script` without the nodes in `del` (and everything inside deleted blocks); with
/// `flatten = Some(id)`, the block `id` replaced by its bodies, one after the other.
fn edit(script: &Script, del: &BTreeSet<usize>, flatten: Option<usize>) -> Script {
    fn walk(
        list: &[Stmt],
        n: &mut usize,
        del: &BTreeSet<usize>,
        flatten: Option<usize>,
    ) -> Vec<Stmt> {
        let mut out = vec![];
        for st in list {
            let id = *n;
            *n += 1;
            match st {
                Stmt::Line { .. } => {
                    if !del.contains(&id) {
                        out.push(st.clone());
                    }
                }
                Stmt::Block { parts, tail } => {
                    let parts: Vec<(String, Vec<Stmt>)> = parts
                        .iter()
                        .map(|(h, b)| (h.clone(), walk(b, n, del, flatten)))
                        .collect();
                    if del.contains(&id) {
                        continue;
                    }
                    if flatten == Some(id) {
                        for (_, body) in parts {
                            out.extend(body);
                        }
                    } else {
                        out.push(Stmt::Block {
                            parts,
                            tail: tail.clone(),
                        });
                    }
                }
            }
        }
        out
    }
    Script {
        stmts: walk(&script.stmts, &mut 0, del, flatten),
    }
}

/// What a reduction did.
pub struct Reduced {
    pub script: Script,
    pub tests: usize,
    pub out_of_time: bool,
}

/// Reduces `script` while `fails` (which re-runs a candidate) says the divergence persists.
pub fn reduce(
    script: &Script,
    mut fails: impl FnMut(&Script) -> bool,
    budget: Duration,
) -> Reduced {
    let start = Instant::now();
    let mut tests = 0;
    let mut cur = script.clone();
    let mut try_it = |cand: &Script, tests: &mut usize| -> bool {
        *tests += 1;
        fails(cand)
    };
    let out_of_time = |start: Instant| start.elapsed() > budget;
    loop {
        let before = cur.clone();
        // ddmin over the deletable nodes: remove chunks, halving the chunk size when none can go.
        let mut n = 2usize;
        while !out_of_time(start) {
            let cands = deletable(&cur);
            if cands.is_empty() {
                break;
            }
            let parts = n.min(cands.len());
            let size = cands.len().div_ceil(parts);
            let mut reduced = false;
            for chunk in cands.chunks(size) {
                let del: BTreeSet<usize> = chunk.iter().copied().collect();
                let cand = edit(&cur, &del, None);
                if cand != cur && try_it(&cand, &mut tests) {
                    cur = cand;
                    n = parts.saturating_sub(1).max(2);
                    reduced = true;
                    break;
                }
                if out_of_time(start) {
                    break;
                }
            }
            if !reduced {
                if parts >= cands.len() {
                    break;
                }
                n = (parts * 2).min(cands.len());
            }
        }
        // Flatten blocks into their bodies.
        let mut i = 0;
        while !out_of_time(start) {
            let bs = blocks(&cur);
            if i >= bs.len() {
                break;
            }
            let cand = edit(&cur, &BTreeSet::new(), Some(bs[i]));
            if try_it(&cand, &mut tests) {
                cur = cand;
            } else {
                i += 1;
            }
        }
        if cur == before || out_of_time(start) {
            break;
        }
    }
    Reduced {
        script: cur,
        tests,
        out_of_time: out_of_time(start),
    }
}
