//! Path prediction: walk the control-flow tree from where the shell is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::program::{Connector, Flat, LoopId, Program};
use crate::state::{Instance, LoopKey};

/// Variable values by name (`None`: unset).
pub(crate) type Vars = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One predicted instance on the path ahead.
#[derive(Debug, Clone)]
pub(crate) struct Pred {
    pub(crate) instance: Instance,
    /// The values of the variables it expands, or `None` if one is unknown.
    pub(crate) vars: Option<Vars>,
    /// The instance whose exit status last decided a branch on the way here.
    pub(crate) control: Option<Instance>,
    /// The context, when it is not the shell's current one (inside a subshell).
    pub(crate) context: Option<Arc<[u8]>>,
}

type Bound = BTreeMap<Vec<u8>, Option<Option<Vec<u8>>>>;

/// What is left after a node ran.
struct Frames {
    stack: Vec<Work>,
    bound: Bound,
    calls: u32,
    context: Option<Arc<[u8]>>,
}

#[derive(Debug, Clone)]
enum Work {
    Exec(usize),
    SeqNext {
        node: usize,
        next: usize,
    },
    /// Condition `arm` of an `if` was just evaluated.
    IfNext {
        node: usize,
        arm: usize,
    },
    /// Decide whether item `next` of an and-or list runs.
    AndOrNext {
        node: usize,
        next: usize,
    },
    ForNext {
        node: usize,
        iter: u32,
        depth: usize,
        words: Arc<Vec<Vec<u8>>>,
    },
    WhileCond {
        node: usize,
        iter: u32,
        depth: usize,
    },
    WhileAfter {
        node: usize,
        iter: u32,
        depth: usize,
    },
    /// Leaving a function body.
    Return,
    /// Leaving `! ..`: invert the status.
    Flip,
    /// Leaving a subshell: its assignments and context changes are forgotten.
    Restore(Bound, bool, Option<Arc<[u8]>>),
    Stop,
}

/// A position in the program: what is left to run.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    stack: Vec<Work>,
    iters: Vec<u32>,
    /// Values set on the predicted path; `None`: set to something unknown.
    bound: BTreeMap<Vec<u8>, Option<Option<Vec<u8>>>>,
    status: Option<bool>,
    decider: Option<Instance>,
    control: Option<Instance>,
    /// A context change was passed: nothing more can be predicted.
    context_changed: bool,
    /// Function calls entered on the predicted path.
    calls: u32,
    /// Context override inside a subshell the shell is in.
    context: Option<Arc<[u8]>>,
}

/// What the walk knows besides the program.
pub(crate) struct Walker<'a> {
    pub(crate) program: &'a Program,
    pub(crate) loops: &'a HashMap<LoopKey, Arc<Vec<Vec<u8>>>>,
    /// Each loop's latest reported words: the guess for its next run (e.g. an inner loop
    /// in the next outer iteration).
    pub(crate) latest: &'a HashMap<LoopId, Arc<Vec<Vec<u8>>>>,
    pub(crate) known: &'a Vars,
    /// Decision node → arm the shell took last time.
    pub(crate) memory: &'a HashMap<usize, usize>,
    /// The innermost subshell the shell was last in, with the state it reported there.
    pub(crate) inner: Option<&'a (usize, crate::state::State)>,
    /// Predicted success of an instance, if anything is known.
    pub(crate) status: &'a dyn Fn(&Instance) -> Option<bool>,
}

/// Whether `node` sits inside a `&` job.
pub(crate) fn in_background(program: &Program, node: usize) -> bool {
    program
        .ancestry(node)
        .iter()
        .any(|&n| matches!(program.nodes[n], Flat::Background(_)))
}

/// The innermost `( .. )` around `node`.
pub(crate) fn innermost_subshell(program: &Program, node: usize) -> Option<usize> {
    program
        .ancestry(node)
        .into_iter()
        .rev()
        .find(|&n| matches!(program.nodes[n], Flat::Subshell(_)))
}

/// The arms the shell must have taken to reach `node`: (decision node, arm).
pub(crate) fn taken_arms(program: &Program, node: usize) -> Vec<(usize, usize)> {
    let chain = program.ancestry(node);
    let mut out = Vec::new();
    for w in chain.windows(2) {
        let (p, c) = (w[0], w[1]);
        match &program.nodes[p] {
            Flat::If {
                conds,
                bodies,
                otherwise,
            } => {
                if let Some(k) = bodies.iter().position(|&b| b == c) {
                    out.push((p, k));
                } else if *otherwise == Some(c) {
                    out.push((p, conds.len()));
                }
            }
            Flat::Case(arms) => {
                if let Some(k) = arms.iter().position(|&a| a == c) {
                    out.push((p, k));
                }
            }
            _ => {}
        }
    }
    out
}

impl Walker<'_> {
    /// The cursor at the start of the program.
    pub(crate) fn start(&self) -> Cursor {
        Cursor {
            stack: vec![Work::Exec(0)],
            iters: Vec::new(),
            bound: BTreeMap::new(),
            status: None,
            decider: None,
            control: None,
            context_changed: false,
            calls: 0,
            context: None,
        }
    }

    /// The cursor just after `x` ran, or `None` if `x` cannot be placed.
    pub(crate) fn after(&self, x: &Instance) -> Option<Cursor> {
        let unit_node = *self.program.units.get(&x.unit)?;
        let f = self.frames(unit_node, &x.iters, 0)?;
        Some(Cursor {
            stack: f.stack,
            iters: x.iters.clone(),
            bound: f.bound,
            status: (self.status)(x),
            decider: Some(x.clone()),
            control: None,
            context_changed: false,
            calls: f.calls,
            context: f.context,
        })
    }

    /// The work left after `target` ran in iteration `iters`, the loop variables bound, and
    /// the function calls it sits in.
    fn frames(&self, target: usize, iters: &[u32], depth: u32) -> Option<Frames> {
        let p = self.program;
        let x_iters = iters;
        let chain = p.ancestry(target);
        let mut stack = Vec::new();
        let mut bound = BTreeMap::new();
        let mut calls = 0;
        let mut context = None;
        let mut d = 0usize;
        for (at, w) in chain.windows(2).enumerate() {
            let (n, c) = (w[0], w[1]);
            match &p.nodes[n] {
                Flat::Seq(children) => {
                    let i = children.iter().position(|&k| k == c)?;
                    stack.push(Work::SeqNext {
                        node: n,
                        next: i + 1,
                    });
                }
                Flat::If { conds, .. } => {
                    if let Some(k) = conds.iter().position(|&k| k == c) {
                        stack.push(Work::IfNext { node: n, arm: k });
                    }
                }
                Flat::AndOr { items, .. } => {
                    let i = items.iter().position(|&k| k == c)?;
                    stack.push(Work::AndOrNext {
                        node: n,
                        next: i + 1,
                    });
                }
                Flat::For { id, var, words, .. } => {
                    let iter = *x_iters.get(d)?;
                    let key = (*id, x_iters[..d].to_vec());
                    let words = self
                        .loops
                        .get(&key)
                        .cloned()
                        .or_else(|| words.clone().map(Arc::new));
                    match words {
                        Some(words) => {
                            if let Some(w) = words.get(iter as usize) {
                                bound.insert(var.clone(), Some(Some(w.clone())));
                            }
                            stack.push(Work::ForNext {
                                node: n,
                                iter: iter + 1,
                                depth: d,
                                words,
                            });
                        }
                        None => stack.push(Work::Stop),
                    }
                    d += 1;
                }
                Flat::While { cond, .. } => {
                    let iter = *x_iters.get(d)?;
                    if *cond == c {
                        stack.push(Work::WhileAfter {
                            node: n,
                            iter,
                            depth: d,
                        });
                    } else {
                        stack.push(Work::WhileCond {
                            node: n,
                            iter: iter + 1,
                            depth: d,
                        });
                    }
                    d += 1;
                }
                Flat::Function { name, .. } => {
                    // The loops of the callers own the leading iteration indices. With one
                    // call site, go on after it when the body ends; otherwise stop there.
                    let inner = chain[at + 1..]
                        .iter()
                        .filter(|&&k| matches!(p.nodes[k], Flat::For { .. } | Flat::While { .. }))
                        .count();
                    d = x_iters.len().checked_sub(inner)?;
                    let caller = match p.calls.get(name).map(Vec::as_slice) {
                        Some(&[site]) if depth < 8 => self.frames(site, &x_iters[..d], depth + 1),
                        _ => None,
                    };
                    match caller {
                        Some(f) => {
                            stack = f.stack;
                            bound = f.bound;
                            calls = f.calls + 1;
                            context = f.context;
                            stack.push(Work::Return);
                        }
                        None => {
                            stack.clear();
                            bound.clear();
                            calls = 0;
                            context = None;
                            stack.push(Work::Stop);
                        }
                    }
                }
                Flat::Background(_) => return None,
                Flat::Not(_) => stack.push(Work::Flip),
                Flat::Subshell(_) => {
                    // Leaving it restores the outside; inside, what the shell reported there.
                    stack.push(Work::Restore(bound.clone(), false, context.clone()));
                    if let Some((node, state)) = self.inner
                        && *node == n
                    {
                        for (k, v) in &state.vars {
                            bound.insert(k.clone(), Some(v.clone()));
                        }
                        context = Some(state.context.clone());
                    }
                }
                _ => {}
            }
        }
        if d != x_iters.len() {
            return None;
        }
        Some(Frames {
            stack,
            bound,
            calls,
            context,
        })
    }

    /// Up to `limit` instances the shell is predicted to reach next, in order.
    pub(crate) fn walk(&self, mut c: Cursor, limit: usize) -> Vec<Pred> {
        let p = self.program;
        let mut out = Vec::new();
        let mut budget = limit * 64 + 1024;
        while let Some(work) = c.stack.pop() {
            if out.len() >= limit || budget == 0 {
                break;
            }
            budget -= 1;
            match work {
                Work::Exec(n) => match &p.nodes[n] {
                    Flat::Seq(children) => {
                        c.stack.push(Work::SeqNext { node: n, next: 0 });
                        if children.is_empty() {
                            c.status = Some(true);
                        }
                    }
                    Flat::Unit(spec) => {
                        let instance = Instance {
                            unit: spec.id,
                            iters: c.iters.clone(),
                        };
                        let vars = (!c.context_changed).then_some(()).and_then(|()| {
                            spec.vars
                                .iter()
                                .map(|v| {
                                    let value = match c.bound.get(v) {
                                        Some(b) => b.clone()?,
                                        None => self.known.get(v)?.clone(),
                                    };
                                    Some((v.clone(), value))
                                })
                                .collect::<Option<Vars>>()
                        });
                        c.status = (self.status)(&instance);
                        c.decider = Some(instance.clone());
                        out.push(Pred {
                            instance,
                            vars,
                            control: c.control.clone(),
                            context: c.context.clone(),
                        });
                    }
                    Flat::Builtin => {
                        c.status = None;
                        c.decider = None;
                    }
                    Flat::ContextChange => {
                        c.status = None;
                        c.decider = None;
                        c.context_changed = true;
                    }
                    Flat::Assign { var, value } => {
                        let lookup = |v: &[u8]| match c.bound.get(v) {
                            Some(b) => b.clone(),
                            None => self.known.get(v).cloned(),
                        };
                        let computed = value
                            .as_ref()
                            .and_then(|pieces| crate::program::eval(pieces, &lookup));
                        c.status = computed.as_ref().map(|_| true);
                        c.decider = None;
                        c.bound.insert(var.clone(), computed.map(Some));
                    }
                    Flat::If { conds, .. } => {
                        c.stack.push(Work::IfNext { node: n, arm: 0 });
                        c.stack.push(Work::Exec(conds[0]));
                    }
                    Flat::AndOr { items, .. } => {
                        c.stack.push(Work::AndOrNext { node: n, next: 1 });
                        c.stack.push(Work::Exec(items[0]));
                    }
                    Flat::Case(arms) => {
                        let arm = self.memory.get(&n).copied().unwrap_or(0);
                        match arms.get(arm) {
                            Some(&a) => c.stack.push(Work::Exec(a)),
                            None => c.status = Some(true),
                        }
                    }
                    Flat::For { id, words, .. } => {
                        let key = (*id, c.iters.clone());
                        let words = self
                            .loops
                            .get(&key)
                            .cloned()
                            .or_else(|| words.clone().map(Arc::new))
                            .or_else(|| self.latest.get(id).cloned());
                        match words {
                            Some(words) => c.stack.push(Work::ForNext {
                                node: n,
                                iter: 0,
                                depth: c.iters.len(),
                                words,
                            }),
                            None => c.stack.clear(),
                        }
                    }
                    Flat::While { .. } => c.stack.push(Work::WhileCond {
                        node: n,
                        iter: 0,
                        depth: c.iters.len(),
                    }),
                    Flat::Function { .. } => c.status = Some(true),
                    Flat::Call(name) => match p.functions.get(name) {
                        Some(&body) if c.calls < 8 => {
                            c.calls += 1;
                            c.stack.push(Work::Return);
                            c.stack.push(Work::Exec(body));
                        }
                        _ => c.stack.clear(),
                    },
                    Flat::Group(k) => c.stack.push(Work::Exec(*k)),
                    Flat::Not(k) => {
                        c.stack.push(Work::Flip);
                        c.stack.push(Work::Exec(*k));
                    }
                    Flat::Subshell(k) => {
                        c.stack.push(Work::Restore(
                            c.bound.clone(),
                            c.context_changed,
                            c.context.clone(),
                        ));
                        c.stack.push(Work::Exec(*k));
                    }
                    Flat::Background(_) | Flat::Unknown => c.stack.clear(),
                },
                Work::SeqNext { node, next } => {
                    if let Flat::Seq(children) = &p.nodes[node]
                        && let Some(&k) = children.get(next)
                    {
                        c.stack.push(Work::SeqNext {
                            node,
                            next: next + 1,
                        });
                        c.stack.push(Work::Exec(k));
                    }
                }
                Work::IfNext { node, arm } => {
                    let Flat::If {
                        conds,
                        bodies,
                        otherwise,
                    } = &p.nodes[node]
                    else {
                        continue;
                    };
                    let taken = match c.status {
                        Some(s) => s,
                        None => self.memory.get(&node).is_none_or(|&m| m == arm),
                    };
                    c.control = c.decider.clone();
                    if taken {
                        c.stack.push(Work::Exec(bodies[arm]));
                    } else if arm + 1 < conds.len() {
                        c.stack.push(Work::IfNext { node, arm: arm + 1 });
                        c.stack.push(Work::Exec(conds[arm + 1]));
                    } else if let Some(o) = otherwise {
                        c.stack.push(Work::Exec(*o));
                    } else {
                        c.status = Some(true);
                        c.decider = None;
                    }
                }
                Work::AndOrNext { node, next } => {
                    let Flat::AndOr { items, ops } = &p.nodes[node] else {
                        continue;
                    };
                    if next >= items.len() {
                        continue;
                    }
                    let ok = c.status.unwrap_or(true);
                    let runs = match ops[next - 1] {
                        Connector::And => ok,
                        Connector::Or => !ok,
                    };
                    c.control = c.decider.clone();
                    c.stack.push(Work::AndOrNext {
                        node,
                        next: next + 1,
                    });
                    if runs {
                        c.stack.push(Work::Exec(items[next]));
                    }
                }
                Work::ForNext {
                    node,
                    iter,
                    depth,
                    words,
                } => {
                    let Flat::For { var, body, .. } = &p.nodes[node] else {
                        continue;
                    };
                    c.iters.truncate(depth);
                    if let Some(w) = words.get(iter as usize) {
                        c.iters.push(iter);
                        c.bound.insert(var.clone(), Some(Some(w.clone())));
                        c.stack.push(Work::ForNext {
                            node,
                            iter: iter + 1,
                            depth,
                            words: words.clone(),
                        });
                        c.stack.push(Work::Exec(*body));
                    } else if words.is_empty() {
                        c.status = Some(true);
                    }
                }
                Work::WhileCond { node, iter, depth } => {
                    let Flat::While { cond, .. } = &p.nodes[node] else {
                        continue;
                    };
                    c.iters.truncate(depth);
                    c.iters.push(iter);
                    c.stack.push(Work::WhileAfter { node, iter, depth });
                    c.stack.push(Work::Exec(*cond));
                }
                Work::WhileAfter { node, iter, depth } => {
                    let Flat::While { until, body, .. } = &p.nodes[node] else {
                        continue;
                    };
                    let go = c.status.is_none_or(|s| s != *until);
                    c.control = c.decider.clone();
                    if go {
                        c.stack.push(Work::WhileCond {
                            node,
                            iter: iter + 1,
                            depth,
                        });
                        c.stack.push(Work::Exec(*body));
                    } else {
                        c.iters.truncate(depth);
                        c.status = Some(true);
                    }
                }
                Work::Return => c.calls = c.calls.saturating_sub(1),
                Work::Flip => c.status = c.status.map(|s| !s),
                Work::Restore(bound, changed, context) => {
                    c.bound = bound;
                    c.context_changed = changed;
                    c.context = context;
                }
                Work::Stop => c.stack.clear(),
            }
        }
        out
    }
}
