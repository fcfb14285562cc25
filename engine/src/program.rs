//! The parser's view of a script, translated into the scheduler's control-flow tree.

use parser::{Node as P, Script};
use scheduler::{Connector, LoopId, Node as S, Program, UnitId, UnitSpec};

/// Builtins after which every unit sees a different context (cwd, exported environment, umask
/// or expansion options).
const CONTEXT: &[&str] = &[
    "cd", "pushd", "popd", "export", "umask", "set", "shopt", "unset", "declare", "typeset",
    "readonly", "enable", "alias", "unalias", "hash",
];

/// Builtins prediction cannot see past (they leave the current flow, or run unknown code).
const OPAQUE: &[&str] = &[
    "exit",
    "return",
    "break",
    "continue",
    "exec",
    "eval",
    "source",
    ".",
    "wait",
    "trap",
    "builtin",
    "command",
    "read",
    "mapfile",
    "readarray",
    "coproc",
];

/// The scheduler's program for `script`.
#[cfg(test)]
pub fn program(script: &Script) -> Program {
    program_with(script, &|u| {
        u.vars.names.iter().map(|v| v.as_bytes().to_vec()).collect()
    })
}

/// [`program`], with each unit's variables given by `vars` (the engine adds, for units that
/// may call script functions, every variable of the script and the functions themselves).
pub fn program_with(script: &Script, vars: &dyn Fn(&parser::Unit) -> Vec<Vec<u8>>) -> Program {
    Program::new(node(script, &script.body, vars))
}

/// Whether gates inside loop `id` report its iteration (else nothing inside is predicted).
fn counted(script: &Script, id: parser::LoopId) -> bool {
    script.loops.get(id.0 as usize).is_some_and(|l| l.counted)
}

fn node(script: &Script, n: &P, unit_vars: &dyn Fn(&parser::Unit) -> Vec<Vec<u8>>) -> S {
    let go = |n: &P| node(script, n, unit_vars);
    match n {
        P::Seq { items } => S::Seq(items.iter().map(go).collect()),
        P::Unit { id } => {
            let u = &script.units[id.0 as usize];
            if u.gate != parser::Gate::Wrap {
                // Not answered by the engine: the shell always runs it.
                return S::Unknown;
            }
            let mut vars: Vec<Vec<u8>> = unit_vars(u);
            if u.vars.positional {
                vars.push(b"@".to_vec());
            }
            if u.vars.all {
                return S::Unknown;
            }
            S::Unit(UnitSpec {
                id: UnitId(id.0),
                vars,
                paths: u
                    .paths
                    .iter()
                    .map(|p| scheduler::PathGuess {
                        how: match p.how {
                            parser::PathUse::Read => scheduler::PathUse::Read,
                            parser::PathUse::Write => scheduler::PathUse::Write,
                            parser::PathUse::Append => scheduler::PathUse::Append,
                        },
                        word: pieces(&p.word),
                    })
                    .collect(),
            })
        }
        P::Pipeline { .. } | P::Opaque { .. } => S::Unknown,
        P::Call { name, .. } => S::Call {
            name: name.as_bytes().to_vec(),
        },
        P::AndOr { first, rest } => S::AndOr {
            first: Box::new(go(first)),
            rest: rest
                .iter()
                .map(|(op, n)| {
                    let c = match op {
                        parser::Op::And => Connector::And,
                        parser::Op::Or => Connector::Or,
                    };
                    (c, go(n))
                })
                .collect(),
        },
        P::Not { body } => S::Not(Box::new(go(body))),
        P::If {
            branches,
            otherwise,
        } => {
            let mut bs = branches.iter().map(|(c, b)| (go(c), go(b)));
            let (cond, then) = bs.next().unwrap_or((S::Seq(vec![]), S::Seq(vec![])));
            S::If {
                cond: Box::new(cond),
                then: Box::new(then),
                elifs: bs.collect(),
                otherwise: otherwise.as_ref().map(|o| Box::new(go(o))),
            }
        }
        P::Case { arms } => {
            if arms.iter().any(|a| a.fallthrough) {
                return S::Unknown;
            }
            S::Case {
                arms: arms.iter().map(|a| go(&a.body)).collect(),
            }
        }
        P::For { id, .. } | P::While { id, .. } if !counted(script, *id) => S::Unknown,
        P::For { id, var, body } => S::For {
            id: LoopId(id.0),
            var: var.as_bytes().to_vec(),
            words: None,
            body: Box::new(go(body)),
        },
        P::While {
            id,
            until,
            cond,
            body,
        } => S::While {
            id: LoopId(id.0),
            until: *until,
            cond: Box::new(go(cond)),
            body: Box::new(go(body)),
        },
        P::Function { name, body } => S::Function {
            name: name.as_bytes().to_vec(),
            body: Box::new(go(body)),
        },
        P::Group { body } => S::Group(Box::new(go(body))),
        P::Subshell { body } => S::Subshell(Box::new(go(body))),
        P::Background { body } => S::Background(Box::new(go(body))),
        P::Assign {
            assigns, values, ..
        } => assign_values(assigns, values),
        P::Builtin { name, assigns, .. } => {
            if OPAQUE.contains(&name.as_str()) || assigns.iter().any(|a| a == "*") {
                S::Unknown
            } else if CONTEXT.contains(&name.as_str()) {
                S::ContextChange
            } else if assigns.is_empty() {
                S::Builtin
            } else {
                assign(assigns)
            }
        }
    }
}

/// Assignments, with the values prediction computes where the parser found them computable.
fn assign_values(vars: &[String], values: &[Option<Vec<parser::Piece>>]) -> S {
    let mut nodes: Vec<S> = vars
        .iter()
        .enumerate()
        .map(|(i, v)| S::Assign {
            var: v.as_bytes().to_vec(),
            value: values.get(i).cloned().flatten().map(|p| pieces(&p)),
        })
        .collect();
    match nodes.len() {
        0 => S::Builtin,
        1 => nodes.pop().unwrap_or(S::Builtin),
        _ => S::Seq(nodes),
    }
}

fn pieces(p: &[parser::Piece]) -> Vec<scheduler::Piece> {
    use parser::Piece as A;
    use scheduler::Piece as B;
    p.iter()
        .map(|x| match x {
            A::Lit(b) => B::Lit(b.clone()),
            A::Var(v) => B::Var(v.as_bytes().to_vec()),
            A::Split(v) => B::Split(v.as_bytes().to_vec()),
            A::Basename { arg, suffix } => B::Basename {
                arg: pieces(arg),
                suffix: suffix.as_deref().map(pieces),
            },
            A::Dirname { arg } => B::Dirname(pieces(arg)),
        })
        .collect()
}

/// Assignments whose values prediction does not compute: units expanding them wait for the
/// shell to report the new value.
fn assign(vars: &[String]) -> S {
    let mut nodes: Vec<S> = vars
        .iter()
        .map(|v| S::Assign {
            var: v.as_bytes().to_vec(),
            value: None,
        })
        .collect();
    match nodes.len() {
        0 => S::Builtin,
        1 => nodes.pop().unwrap_or(S::Builtin),
        _ => S::Seq(nodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_line_script() {
        let s = parser::parse(b"x=1\ngrep $x f > o\ncd d\nsort o | uniq\nexit 0\n").unwrap();
        let p = program(&s);
        let S::Seq(items) = node(&s, &s.body, &|u| {
            u.vars.names.iter().map(|v| v.as_bytes().to_vec()).collect()
        }) else {
            panic!("not a sequence")
        };
        assert!(matches!(&items[0], S::Assign { var, value: Some(v) }
            if var == b"x" && v == &[scheduler::Piece::Lit(b"1".to_vec())]));
        assert!(matches!(&items[1], S::Unit(u) if u.id == UnitId(0) && u.vars == [b"x".to_vec()]));
        assert!(matches!(items[2], S::ContextChange));
        assert!(matches!(&items[3], S::Unit(u) if u.id == UnitId(1)));
        assert!(matches!(items[4], S::Unknown));
        assert!(p.unit(UnitId(1)).is_some());
    }

    #[test]
    fn loops_get_distinct_ids() {
        let s =
            parser::parse(b"for f in a b; do wc $f; done\nwhile read l; do ls; done\n").unwrap();
        let S::Seq(items) = node(&s, &s.body, &|u| {
            u.vars.names.iter().map(|v| v.as_bytes().to_vec()).collect()
        }) else {
            panic!("not a sequence")
        };
        assert!(matches!(&items[0], S::For { id: LoopId(0), .. }));
        assert!(matches!(&items[1], S::While { id: LoopId(1), .. }));
    }
}
