//! From brush's AST and token stream to units, loops, structure and text edits.

use std::collections::HashSet;

use brush_parser::ast::{self, SourceLocation};
use brush_parser::{ParserOptions, Token};

use crate::source::Source;
use crate::vars::VarRefs;
use crate::{
    Edit, Gate, Loop, LoopId, LoopKind, Node, Op, PathUse, PathWord, Redirect, Span, Unit, UnitId,
};

/// Builtins and keywords: a simple command named like this never runs an external program.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    "[[",
    "]]",
    "!",
    "{",
    "}",
    "case",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "time",
    "until",
    "while",
    "coproc",
];

/// Operators that can end a pipeline.
const BOUNDARIES: &[&str] = &[";", "&", "&&", "||", "\n", ";;", ";&", ";;&", ")"];

const REDIRECT_OPS: &[&str] = &[
    "<", ">", ">>", "<>", ">|", "<&", ">&", "&>", "&>>", "<<<", "<<", "<<-",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum HereRole {
    None,
    Body,
    End,
}

struct Tok {
    op: bool,
    text: String,
    start: usize,
    end: usize,
    here: HereRole,
}

/// What a simple command runs.
enum Kind {
    /// Only assignments and redirections.
    Nothing,
    Builtin(String),
    Function(String),
    External,
    /// The command name is computed at run time (`$cmd args`, `"$@"`).
    Dynamic,
}

pub(crate) struct Walker<'s, 'b> {
    src: &'s Source<'b>,
    toks: Vec<Tok>,
    raw: Vec<Token>,
    /// Indices of tokens in text order (here-document bodies left out).
    ordered: Vec<usize>,
    functions: HashSet<String>,
    /// Functions the script exports (`export -f f`, `declare -fx f`).
    pub(crate) exported: HashSet<String>,
    options: ParserOptions,
    pub(crate) units: Vec<Unit>,
    pub(crate) loops: Vec<Loop>,
    pub(crate) edits: Vec<Edit>,
    /// Counted loops around the current position, outermost first.
    counting: Vec<LoopId>,
    /// For each counted loop being walked: the counted `while` loops inside it, whose
    /// counters restart at each of its iterations.
    inner_whiles: Vec<Vec<LoopId>>,
}

impl<'s, 'b> Walker<'s, 'b> {
    pub(crate) fn new(src: &'s Source<'b>, raw: Vec<Token>, options: ParserOptions) -> Self {
        let mut toks: Vec<Tok> = raw
            .iter()
            .map(|t| {
                let (op, text) = match t {
                    Token::Operator(s, _) => (true, s.clone()),
                    Token::Word(s, _) => (false, s.clone()),
                };
                let loc = t.location();
                Tok {
                    op,
                    text,
                    start: loc.start.index,
                    end: loc.end.index,
                    here: HereRole::None,
                }
            })
            .collect();
        // A here-document operator is followed by its tag, the body, and the end tag.
        let mut i = 0;
        while i < toks.len() {
            if toks[i].op && (toks[i].text == "<<" || toks[i].text == "<<-") && i + 3 < toks.len() {
                toks[i + 2].here = HereRole::Body;
                toks[i + 3].here = HereRole::End;
                i += 4;
            } else {
                i += 1;
            }
        }
        let ordered = (0..toks.len())
            .filter(|&i| toks[i].here == HereRole::None)
            .collect();
        let exported = exported_functions(&raw);
        Walker {
            src,
            toks,
            raw,
            ordered,
            exported,
            functions: HashSet::new(),
            options,
            units: Vec::new(),
            loops: Vec::new(),
            edits: Vec::new(),
            counting: Vec::new(),
            inner_whiles: Vec::new(),
        }
    }

    pub(crate) fn program(&mut self, program: &ast::Program) -> Node {
        for cc in &program.complete_commands {
            collect_functions(cc, &mut self.functions);
        }
        let items = program
            .complete_commands
            .iter()
            .flat_map(|cc| match self.list(cc, true) {
                Node::Seq { items } => items,
                other => vec![other],
            })
            .collect();
        Node::Seq { items }
    }

    fn list(&mut self, list: &ast::CompoundList, gates: bool) -> Node {
        let items = list
            .0
            .iter()
            .map(|item| {
                let background = matches!(item.1, ast::SeparatorOperator::Async);
                let node = self.and_or(&item.0, background, gates);
                if background {
                    Node::Background {
                        body: Box::new(node),
                    }
                } else {
                    node
                }
            })
            .collect();
        Node::Seq { items }
    }

    fn and_or(&mut self, list: &ast::AndOrList, background: bool, gates: bool) -> Node {
        let first = self.pipeline(&list.first, true, background, gates);
        if list.additional.is_empty() {
            return first;
        }
        let mut rest = Vec::new();
        for item in &list.additional {
            let (op, p) = match item {
                ast::AndOr::And(p) => (Op::And, p),
                ast::AndOr::Or(p) => (Op::Or, p),
            };
            rest.push((op, self.pipeline(p, false, background, gates)));
        }
        Node::AndOr {
            first: Box::new(first),
            rest,
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, first: bool, background: bool, gates: bool) -> Node {
        let unit = if p.seq.len() == 1 {
            matches!(&p.seq[0], ast::Command::Simple(s) if matches!(self.kind(s), Kind::External | Kind::Dynamic))
        } else {
            p.seq.iter().any(|c| self.runs_external(c))
        };
        let node = if unit {
            match self.unit(p, first, background, gates) {
                Some(id) => Node::Unit { id },
                None => Node::Opaque {
                    line: self.line_of_pipeline(p),
                },
            }
        } else if p.seq.len() == 1 {
            self.command(
                &p.seq[0],
                first && !p.bang && p.timed.is_none(),
                background,
                gates,
            )
        } else {
            Node::Pipeline {
                commands: p
                    .seq
                    .iter()
                    .map(|c| self.command(c, false, true, false))
                    .collect(),
            }
        };
        if p.bang {
            Node::Not {
                body: Box::new(node),
            }
        } else {
            node
        }
    }

    fn line_of_pipeline(&self, p: &ast::Pipeline) -> usize {
        p.location().map_or(0, |l| l.start.line)
    }

    fn command(
        &mut self,
        c: &ast::Command,
        statement: bool,
        background: bool,
        gates: bool,
    ) -> Node {
        match c {
            ast::Command::Simple(s) => {
                let line = s.location().map_or(0, |l| l.start.line);
                match self.kind(s) {
                    Kind::Nothing => Node::Assign {
                        line,
                        assigns: prefix_assignments(s),
                        values: self.assigned_values(s),
                    },
                    Kind::Builtin(name) => Node::Builtin {
                        assigns: builtin_assignments(&name, s),
                        name,
                        line,
                    },
                    Kind::Function(name) => Node::Call { name, line },
                    // A single external command is always a unit; reached only for pipelines.
                    Kind::External | Kind::Dynamic => Node::Opaque { line },
                }
            }
            ast::Command::Compound(cc, _) => self.compound(cc, statement, background, gates),
            ast::Command::Function(f) => {
                // An exported function also runs in child shells, which have no gate
                // functions: its body stays as written.
                let gates = gates && !self.exported.contains(&f.fname.value);
                let body = self.compound(&f.body.0, false, false, gates);
                Node::Function {
                    name: f.fname.value.clone(),
                    body: Box::new(body),
                }
            }
            ast::Command::ExtendedTest(..) => Node::Builtin {
                assigns: vec![],
                name: "[[".into(),
                line: c.location().map_or(0, |l| l.start.line),
            },
        }
    }

    fn compound(
        &mut self,
        cc: &ast::CompoundCommand,
        statement: bool,
        background: bool,
        gates: bool,
    ) -> Node {
        use ast::CompoundCommand as C;
        match cc {
            C::Arithmetic(a) => Node::Builtin {
                assigns: arithmetic_assignments(&a.expr.value),
                name: "((".into(),
                line: a.loc.start.line,
            },
            C::ArithmeticForClause(f) => {
                let id = self.new_loop(LoopKind::While, String::new(), f.loc.start.line);
                // Iterations start at `do`: the arithmetic condition runs no unit.
                let hook = gates
                    .then(|| self.token_after(f.body.loc.start.index, "do"))
                    .flatten();
                let body = self.counted_loop(id, hook, |w| w.list(&f.body.list, gates));
                Node::While {
                    id,
                    until: false,
                    cond: Box::new(Node::Builtin {
                        assigns: [&f.initializer, &f.condition, &f.updater]
                            .into_iter()
                            .flatten()
                            .flat_map(|e| arithmetic_assignments(&e.value))
                            .collect(),
                        name: "((".into(),
                        line: f.loc.start.line,
                    }),
                    body: Box::new(body),
                }
            }
            C::BraceGroup(g) => Node::Group {
                body: Box::new(self.list(&g.list, gates)),
            },
            C::Subshell(s) => Node::Subshell {
                body: Box::new(self.list(&s.list, gates)),
            },
            C::ForClause(f) => {
                let id = self.new_loop(LoopKind::For, f.variable_name.clone(), f.loc.start.line);
                if gates && statement && !background {
                    self.instrument_for(f, id);
                }
                // Counted only when `__hs_loop` (which restarts the count) reports the words.
                let hook = self.loops[id.0 as usize]
                    .reported
                    .then(|| self.token_after(f.body.loc.start.index, "do"))
                    .flatten();
                let body = self.counted_loop(id, hook, |w| w.list(&f.body.list, gates));
                Node::For {
                    id,
                    var: f.variable_name.clone(),
                    body: Box::new(body),
                }
            }
            C::CaseClause(c) => Node::Case {
                arms: c
                    .cases
                    .iter()
                    .map(|arm| crate::Arm {
                        patterns: arm.patterns.iter().map(|w| w.value.clone()).collect(),
                        body: arm
                            .cmd
                            .as_ref()
                            .map_or(Node::Seq { items: vec![] }, |l| self.list(l, gates)),
                        fallthrough: !matches!(arm.post_action, ast::CaseItemPostAction::ExitCase),
                    })
                    .collect(),
            },
            C::IfClause(i) => {
                let mut branches =
                    vec![(self.list(&i.condition, gates), self.list(&i.then, gates))];
                let mut otherwise = None;
                for e in i.elses.iter().flatten() {
                    match &e.condition {
                        Some(cond) => {
                            branches.push((self.list(cond, gates), self.list(&e.body, gates)))
                        }
                        None => otherwise = Some(Box::new(self.list(&e.body, gates))),
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                }
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                let until = matches!(cc, C::UntilClause(_));
                let id = self.new_loop(LoopKind::While, String::new(), w.2.start.line);
                // Iterations start where the condition does, right after the keyword.
                let keyword = if until { "until" } else { "while" };
                let hook = gates
                    .then(|| self.token_after(w.2.start.index, keyword))
                    .flatten();
                let (cond, body) = self.counted_loop(id, hook, |me| {
                    (me.list(&w.0, gates), me.list(&w.1.list, gates))
                });
                Node::While {
                    id,
                    until,
                    cond: Box::new(cond),
                    body: Box::new(body),
                }
            }
            // A coprocess runs asynchronously with pipes to the shell: never gated inside.
            C::Coprocess(c) => Node::Opaque {
                line: c.loc.start.line,
            },
        }
    }

    fn new_loop(&mut self, kind: LoopKind, var: String, line: usize) -> LoopId {
        let id = LoopId(self.loops.len() as u32);
        self.loops.push(Loop {
            id,
            kind,
            var,
            line,
            reported: false,
            counted: false,
        });
        id
    }

    /// Byte offset just past the first token `word` that ends after char index `from`.
    fn token_after(&self, from: usize, word: &str) -> Option<usize> {
        let i = self
            .ordered
            .iter()
            .copied()
            .find(|&i| self.toks[i].end > from)?;
        (!self.toks[i].op && self.toks[i].text == word).then(|| self.src.byte(self.toks[i].end))
    }

    /// Walks a loop's parts; with `hook` (where each iteration starts), counts its iterations
    /// there: `__hs_it ID[:INNER,…] "$?" "$_"` keeps `$?` and `$_`, and restarts the counters
    /// of the `while` loops inside.
    fn counted_loop<T>(
        &mut self,
        id: LoopId,
        hook: Option<usize>,
        walk: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let Some(at) = hook else {
            return walk(self);
        };
        self.loops[id.0 as usize].counted = true;
        if self.loops[id.0 as usize].kind == LoopKind::While
            && let Some(outer) = self.inner_whiles.last_mut()
        {
            outer.push(id);
        }
        self.counting.push(id);
        self.inner_whiles.push(Vec::new());
        let out = walk(self);
        self.counting.pop();
        let inner = self.inner_whiles.pop().unwrap_or_default();
        let mut arg = id.0.to_string();
        if !inner.is_empty() {
            let ids: Vec<String> = inner.iter().map(|l| l.0.to_string()).collect();
            arg = format!("{arg}:{}", ids.join(","));
        }
        self.edits.push(Edit {
            loop_report: true,
            ..Edit::insert(
                at,
                format!(" __hs_it {arg} \"$?\" \"$_\" && builtin : \"$_\";"),
            )
        });
        out
    }

    /// The first argument of `__hs_loop`: like [`Walker::gate_arg`], with the iterations of
    /// the counted loops around the loop.
    fn loop_arg(&self, id: LoopId) -> String {
        self.gate_arg(UnitId(id.0))
    }

    /// The first argument of a unit's gate: `N`, or `"N:${__hs_i[A]-},…"` inside counted loops
    /// (`-`: without a server nothing counts, and `set -u` must not mind).
    fn gate_arg(&self, id: UnitId) -> String {
        if self.counting.is_empty() {
            return id.0.to_string();
        }
        let iters: Vec<String> = self
            .counting
            .iter()
            .map(|l| format!("${{__hs_i[{}]-}}", l.0))
            .collect();
        format!("\"{}:{}\"", id.0, iters.join(","))
    }

    fn kind(&self, s: &ast::SimpleCommand) -> Kind {
        let Some(name) = &s.word_or_name else {
            return Kind::Nothing;
        };
        let words: Vec<&ast::Word> = std::iter::once(name)
            .chain(
                s.suffix
                    .iter()
                    .flat_map(|x| x.0.iter())
                    .filter_map(|i| match i {
                        ast::CommandPrefixOrSuffixItem::Word(w) => Some(w),
                        _ => None,
                    }),
            )
            .collect();
        self.kind_of(&words)
    }

    fn kind_of(&self, words: &[&ast::Word]) -> Kind {
        let Some((name, rest)) = words.split_first() else {
            return Kind::Nothing;
        };
        let v = &name.value;
        if v.contains('$') || v.contains('`') {
            return Kind::Dynamic;
        }
        let name: String = v
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | '\\'))
            .collect();
        if name == "command" {
            // `command -v x` is a query; `command x` runs x without functions.
            let mut rest = rest;
            while let Some((w, more)) = rest.split_first() {
                if !w.value.starts_with('-') {
                    break;
                }
                if w.value.contains('v') || w.value.contains('V') {
                    return Kind::Builtin(name);
                }
                rest = more;
            }
            return match self.kind_of(rest) {
                Kind::Function(_) => Kind::External,
                Kind::Nothing => Kind::Builtin(name),
                k => k,
            };
        }
        if BUILTINS.contains(&name.as_str()) {
            Kind::Builtin(name)
        } else if self.functions.contains(&name) {
            Kind::Function(name)
        } else {
            Kind::External
        }
    }

    fn runs_external(&self, c: &ast::Command) -> bool {
        match c {
            ast::Command::Simple(s) => matches!(self.kind(s), Kind::External | Kind::Dynamic),
            ast::Command::Compound(cc, _) => compound_lists(cc)
                .into_iter()
                .any(|l| l.0.iter().any(|i| self.and_or_runs_external(&i.0))),
            ast::Command::Function(_) | ast::Command::ExtendedTest(..) => false,
        }
    }

    fn and_or_runs_external(&self, l: &ast::AndOrList) -> bool {
        std::iter::once(&l.first)
            .chain(l.additional.iter().map(|a| match a {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => p,
            }))
            .any(|p| p.seq.iter().any(|c| self.runs_external(c)))
    }

    /// Records a unit for pipeline `p` and its gate edits; `None` if its text cannot be cut out
    /// exactly.
    fn unit(
        &mut self,
        p: &ast::Pipeline,
        first: bool,
        background: bool,
        gates: bool,
    ) -> Option<UnitId> {
        let start_tok = self.first_token(p.seq.first()?)?;
        let end_tok = self.end_token(start_tok, p)?;
        let start = self
            .src
            .skip_blanks(self.src.byte(self.toks[start_tok].start));
        let end = (start_tok..end_tok)
            .filter(|&i| self.toks[i].here == HereRole::None)
            .map(|i| self.src.byte(self.toks[i].end))
            .max()?;
        if end <= start {
            return None;
        }
        let span = Span { start, end };
        let mut vars = VarRefs::default();
        vars.scan(&self.src.bytes[start..end]);
        let mut heredocs = Vec::new();
        for i in start_tok..end_tok {
            if self.toks[i].here == HereRole::Body {
                let (a, b) = (
                    self.src.byte(self.toks[i].start),
                    self.src.byte(self.toks[i].end),
                );
                vars.scan(&self.src.bytes[a..b]);
                heredocs.push(Span { start: a, end: b });
            }
        }
        let mut commands = Vec::new();
        let mut redirects = Vec::new();
        let mut paths = Vec::new();
        for c in &p.seq {
            collect_simple(c, &mut |s: &ast::SimpleCommand| {
                if let Some(w) = &s.word_or_name {
                    commands.push(w.value.clone());
                }
                for item in s
                    .prefix
                    .iter()
                    .flat_map(|x| x.0.iter())
                    .chain(s.suffix.iter().flat_map(|x| x.0.iter()))
                {
                    match item {
                        ast::CommandPrefixOrSuffixItem::IoRedirect(r) => {
                            if let Some(r) = static_redirect(r) {
                                redirects.push(r);
                            }
                            paths.extend(redirect_path(r));
                        }
                        ast::CommandPrefixOrSuffixItem::Word(w) => {
                            paths.extend(path_word(&w.value, PathUse::Read));
                        }
                        _ => {}
                    }
                }
            });
        }
        paths.truncate(MAX_PATH_WORDS);
        let id = UnitId(self.units.len() as u32);
        let (gate, why) = if !gates {
            (Gate::None, Some("inside a coprocess".to_string()))
        } else if vars.sees_gate() {
            (
                Gate::None,
                Some("expands $?, $_ or PIPESTATUS, which a gate would change".into()),
            )
        } else if background && first {
            if p.bang || p.timed.is_some() {
                (
                    Gate::None,
                    Some("background pipeline with ! or time".into()),
                )
            } else {
                (Gate::Prefix, None)
            }
        } else {
            (Gate::Wrap, None)
        };
        // A function cannot see its caller's positional parameters: pass them along.
        let args = if vars.positional { " \"$@\"" } else { "" };
        match gate {
            Gate::Wrap => {
                self.edits.push(Edit::insert(
                    start,
                    format!("if __hs_gate {}{} \"$_\"; then ", self.gate_arg(id), args),
                ));
                self.edits
                    .push(Edit::insert(end, "; else __hs_replay; fi".to_string()));
            }
            Gate::Prefix => {
                let arg = self.gate_arg(id);
                self.edits
                    .push(Edit::insert(start, format!("__hs_note {arg} \"$_\"; ")))
            }
            Gate::None => {}
        }
        self.units.push(Unit {
            id,
            span,
            line: self.src.line_of(start),
            text: self.src.bytes[start..end].to_vec(),
            heredocs,
            commands,
            vars,
            redirects,
            paths,
            background,
            gate,
            why_no_gate: why,
        });
        Some(id)
    }

    /// Index of the first token of a command, redirections before its name included.
    fn first_token(&self, c: &ast::Command) -> Option<usize> {
        let mut idx = match c {
            ast::Command::Simple(s) => {
                let mut min: Option<usize> = None;
                let mut see = |loc: Option<brush_parser::SourceSpan>| {
                    if let Some(l) = loc
                        && let Some(t) = self.token_ending_at(l.end.index)
                    {
                        min = Some(min.map_or(t, |m| m.min(t)));
                    }
                };
                for item in s.prefix.iter().flat_map(|x| x.0.iter()) {
                    see(item_location(item));
                }
                see(s.word_or_name.as_ref().and_then(|w| w.loc.clone()));
                for item in s.suffix.iter().flat_map(|x| x.0.iter()) {
                    see(item_location(item));
                }
                min?
            }
            other => {
                let start = other.location()?.start.index;
                *self.ordered.iter().find(|&&i| self.toks[i].end > start)?
            }
        };
        // Walk back over redirections written before the first located word.
        while let Ok(pos) = self.ordered.binary_search(&idx) {
            if pos == 0 {
                break;
            }
            let prev = self.ordered[pos - 1];
            let t = &self.toks[prev];
            let prev2 = pos.checked_sub(2).map(|p| &self.toks[self.ordered[p]]);
            let redirect = t.op && REDIRECT_OPS.contains(&t.text.as_str());
            let target =
                !t.op && prev2.is_some_and(|p| p.op && REDIRECT_OPS.contains(&p.text.as_str()));
            if redirect || target || (!t.op && self.is_fd_prefix(prev, idx)) {
                idx = prev;
            } else {
                break;
            }
        }
        Some(idx)
    }

    /// `2` in `2>file` or `{fd}` in `{fd}>file`: a word glued to the redirection after it.
    fn is_fd_prefix(&self, word: usize, next: usize) -> bool {
        let (w, n) = (&self.toks[word], &self.toks[next]);
        n.op && REDIRECT_OPS.contains(&n.text.as_str())
            && self
                .src
                .bytes
                .get(self.src.byte(w.end))
                .is_some_and(|b| *b == b'<' || *b == b'>')
            && (w.text.bytes().all(|b| b.is_ascii_digit())
                || (w.text.starts_with('{') && w.text.ends_with('}')))
    }

    fn token_ending_at(&self, end: usize) -> Option<usize> {
        let pos = self.ordered.partition_point(|&i| self.toks[i].end < end);
        self.ordered.get(pos).copied()
    }

    /// The token index just past pipeline `p` starting at `start`: the first boundary at which
    /// the tokens so far parse as exactly one pipeline of the same length.
    fn end_token(&self, start: usize, p: &ast::Pipeline) -> Option<usize> {
        let want = p.seq.len();
        let ok = |end: usize| {
            brush_parser::parse_tokens(&self.raw[start..end], &self.options).is_ok_and(|prog| {
                prog.complete_commands.len() == 1
                    && prog.complete_commands[0].0.len() == 1
                    && prog.complete_commands[0].0[0].0.additional.is_empty()
                    && prog.complete_commands[0].0[0].0.first.seq.len() == want
                    && !prog.complete_commands[0].0[0].0.first.bang
            })
        };
        // No boundary before the end of the last command as brush locates it can end the
        // pipeline (its spans may stop short, never run long), so trials start there.
        let known_end = p
            .seq
            .iter()
            .filter_map(|c| c.location())
            .map(|l| l.end.index)
            .max()
            .unwrap_or(0);
        let from = self.token_ending_at(known_end).unwrap_or(start).max(start);
        for k in from + 1..self.toks.len() {
            let t = &self.toks[k];
            if t.op && t.here == HereRole::None && BOUNDARIES.contains(&t.text.as_str()) && ok(k) {
                return Some(k);
            }
        }
        ok(self.toks.len()).then_some(self.toks.len())
    }

    fn instrument_for(&mut self, f: &ast::ForClauseCommand, id: LoopId) {
        let Some(for_tok) = self
            .ordered
            .iter()
            .copied()
            .find(|&i| self.toks[i].end > f.loc.start.index)
        else {
            return;
        };
        if self.toks[for_tok].text != "for" {
            return;
        }
        let for_at = self
            .src
            .skip_blanks(self.src.byte(self.toks[for_tok].start));
        // The body must not look at $? first thing: our prefix resets it.
        let body_end = self
            .src
            .byte(f.body.loc.end.index)
            .min(self.src.bytes.len());
        let body_start = self.src.byte(f.body.loc.start.index).min(body_end);
        let mut body_vars = VarRefs::default();
        body_vars.scan(&self.src.bytes[body_start..body_end]);
        if body_vars.sees_gate() {
            return;
        }
        let prefix = match &f.values {
            None => format!("__hs_loop {} \"$@\" \"$_\"; ", self.loop_arg(id)),
            Some(words) if words.is_empty() => return,
            Some(words) => {
                let (Some(a), Some(b)) = (
                    words.first().and_then(|w| w.loc.clone()),
                    words.last().and_then(|w| w.loc.clone()),
                ) else {
                    return;
                };
                let start = self.src.skip_blanks(self.src.byte(a.start.index));
                let end = self.src.byte(b.end.index);
                if end <= start {
                    return;
                }
                let Ok(text) = std::str::from_utf8(&self.src.bytes[start..end]) else {
                    return;
                };
                // Words an array assignment would read differently, or that span lines.
                if text.contains('\n')
                    || text.contains("$((")
                    || text.contains("$[")
                    || words
                        .iter()
                        .any(|w| w.value.starts_with('[') || w.value.contains('='))
                {
                    return;
                }
                let var = format!("__hs_w{}", id.0);
                self.edits.push(Edit {
                    at: start,
                    delete_to: end,
                    text: format!("\"${{{var}[@]}}\""),
                    loop_report: true,
                });
                format!(
                    "__hs_u=$_; {var}=({text}) || builtin :; __hs_loop {} \"${{{var}[@]}}\" \"$__hs_u\"; ",
                    self.loop_arg(id)
                )
            }
        };
        self.edits.push(Edit {
            loop_report: true,
            ..Edit::insert(for_at, prefix)
        });
        self.loops[id.0 as usize].reported = true;
    }
}

fn item_location(item: &ast::CommandPrefixOrSuffixItem) -> Option<brush_parser::SourceSpan> {
    use ast::CommandPrefixOrSuffixItem as I;
    match item {
        I::Word(w) => w.loc.clone(),
        I::AssignmentWord(a, _) => Some(a.loc.clone()),
        I::ProcessSubstitution(_, s) => Some(s.loc.clone()),
        I::IoRedirect(r) => match r {
            ast::IoRedirect::File(_, _, t) => match t {
                ast::IoFileRedirectTarget::Filename(w)
                | ast::IoFileRedirectTarget::Duplicate(w) => w.loc.clone(),
                ast::IoFileRedirectTarget::ProcessSubstitution(_, s) => Some(s.loc.clone()),
                ast::IoFileRedirectTarget::Fd(_) => None,
            },
            ast::IoRedirect::HereString(_, w) | ast::IoRedirect::OutputAndError(w, _) => {
                w.loc.clone()
            }
            ast::IoRedirect::HereDocument(..) => None,
        },
    }
}

/// At most this many [`PathWord`]s per unit.
const MAX_PATH_WORDS: usize = 32;

/// A word as a [`PathWord`], if it may name a path: not an option, no glob, brace or tilde
/// expansion, and made only of pieces the scheduler can evaluate.
fn path_word(text: &str, how: PathUse) -> Option<PathWord> {
    if text.is_empty() || text.starts_with('-') || text.contains(['*', '?', '[', '{', '~', '`']) {
        return None;
    }
    let word = crate::value::parse(text.as_bytes())?;
    Some(PathWord { how, word })
}

/// A file redirection's target as a [`PathWord`].
fn redirect_path(r: &ast::IoRedirect) -> Option<PathWord> {
    let (how, w) = match r {
        ast::IoRedirect::File(_, kind, ast::IoFileRedirectTarget::Filename(w)) => {
            let how = match kind {
                ast::IoFileRedirectKind::Read => PathUse::Read,
                ast::IoFileRedirectKind::Write | ast::IoFileRedirectKind::Clobber => PathUse::Write,
                ast::IoFileRedirectKind::Append | ast::IoFileRedirectKind::ReadAndWrite => {
                    PathUse::Append
                }
                _ => return None,
            };
            (how, w)
        }
        ast::IoRedirect::OutputAndError(w, append) => (
            if *append {
                PathUse::Append
            } else {
                PathUse::Write
            },
            w,
        ),
        _ => return None,
    };
    path_word(&w.value, how)
}

fn static_redirect(r: &ast::IoRedirect) -> Option<Redirect> {
    let (fd, kind, w) = match r {
        ast::IoRedirect::File(fd, kind, ast::IoFileRedirectTarget::Filename(w)) => {
            let k = match kind {
                ast::IoFileRedirectKind::Read => "<",
                ast::IoFileRedirectKind::Write => ">",
                ast::IoFileRedirectKind::Append => ">>",
                ast::IoFileRedirectKind::ReadAndWrite => "<>",
                ast::IoFileRedirectKind::Clobber => ">|",
                _ => return None,
            };
            (*fd, k, w)
        }
        ast::IoRedirect::OutputAndError(w, append) => (None, if *append { "&>>" } else { "&>" }, w),
        _ => return None,
    };
    let v = &w.value;
    if v.chars().any(|c| {
        matches!(
            c,
            '$' | '`' | '*' | '?' | '[' | '~' | '{' | '"' | '\'' | '\\'
        )
    }) {
        return None;
    }
    Some(Redirect {
        fd,
        op: kind.to_string(),
        target: v.clone().into_bytes(),
    })
}

fn collect_simple(c: &ast::Command, f: &mut dyn FnMut(&ast::SimpleCommand)) {
    match c {
        ast::Command::Simple(s) => f(s),
        ast::Command::Compound(cc, _) => {
            for l in compound_lists(cc) {
                for item in &l.0 {
                    let ao = &item.0;
                    for p in
                        std::iter::once(&ao.first).chain(ao.additional.iter().map(|a| match a {
                            ast::AndOr::And(p) | ast::AndOr::Or(p) => p,
                        }))
                    {
                        for c in &p.seq {
                            collect_simple(c, f);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn compound_lists(cc: &ast::CompoundCommand) -> Vec<&ast::CompoundList> {
    use ast::CompoundCommand as C;
    match cc {
        C::Arithmetic(_) => vec![],
        C::ArithmeticForClause(f) => vec![&f.body.list],
        C::BraceGroup(g) => vec![&g.list],
        C::Subshell(s) => vec![&s.list],
        C::ForClause(f) => vec![&f.body.list],
        C::CaseClause(c) => c.cases.iter().filter_map(|a| a.cmd.as_ref()).collect(),
        C::IfClause(i) => {
            let mut v = vec![&i.condition, &i.then];
            for e in i.elses.iter().flatten() {
                v.extend(e.condition.as_ref());
                v.push(&e.body);
            }
            v
        }
        C::WhileClause(w) | C::UntilClause(w) => vec![&w.0, &w.1.list],
        C::Coprocess(_) => vec![],
    }
}

/// Names after `export -f` / `declare -fx` / `typeset -fx` (up to the next operator).
fn exported_functions(tokens: &[Token]) -> HashSet<String> {
    let mut out = HashSet::new();
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w, _)) => Some(w.as_str()),
        _ => None,
    };
    for i in 0..tokens.len() {
        let Some(cmd) = word(i) else { continue };
        let mut j = i + 1;
        let mut function_flag = false;
        let mut export_flag = cmd == "export";
        if !matches!(cmd, "export" | "declare" | "typeset") {
            continue;
        }
        while let Some(w) = word(j) {
            if let Some(flags) = w.strip_prefix('-') {
                function_flag |= flags.contains('f');
                export_flag |= flags.contains('x');
            } else if function_flag && export_flag {
                out.insert(w.to_string());
            }
            j += 1;
        }
    }
    out
}

fn collect_functions(list: &ast::CompoundList, out: &mut HashSet<String>) {
    for item in &list.0 {
        let ao = &item.0;
        for p in std::iter::once(&ao.first).chain(ao.additional.iter().map(|a| match a {
            ast::AndOr::And(p) | ast::AndOr::Or(p) => p,
        })) {
            for c in &p.seq {
                match c {
                    ast::Command::Function(f) => {
                        out.insert(f.fname.value.clone());
                        for l in compound_lists(&f.body.0) {
                            collect_functions(l, out);
                        }
                    }
                    ast::Command::Compound(cc, _) => {
                        for l in compound_lists(cc) {
                            collect_functions(l, out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Walker<'_, '_> {
    /// For each assignment word of a statement, its value as pieces hs can compute, if it is
    /// a plain `name=value` (no array, no `+=`) of such pieces.
    fn assigned_values(&self, s: &ast::SimpleCommand) -> Vec<Option<Vec<crate::Piece>>> {
        s.prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .filter_map(|i| match i {
                ast::CommandPrefixOrSuffixItem::AssignmentWord(a, _) => Some(a),
                _ => None,
            })
            .map(|a| {
                let plain = !a.append
                    && matches!(a.name, ast::AssignmentName::VariableName(_))
                    && matches!(a.value, ast::AssignmentValue::Scalar(_));
                if !plain {
                    return None;
                }
                let text = &self.src.bytes
                    [self.src.byte(a.loc.start.index)..self.src.byte(a.loc.end.index)];
                let eq = text.iter().position(|&b| b == b'=')?;
                crate::value::parse(&text[eq + 1..])
            })
            .collect()
    }
}

/// Names assigned by `x=1 y[2]=3` words (a command's prefix, or a whole assignment statement).
fn prefix_assignments(s: &ast::SimpleCommand) -> Vec<String> {
    s.prefix
        .iter()
        .flat_map(|p| p.0.iter())
        .filter_map(|i| match i {
            ast::CommandPrefixOrSuffixItem::AssignmentWord(a, _) => Some(match &a.name {
                ast::AssignmentName::VariableName(n) => n.clone(),
                ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Variables a builtin may assign, from its words.
fn builtin_assignments(name: &str, s: &ast::SimpleCommand) -> Vec<String> {
    let words: Vec<&str> = s
        .suffix
        .iter()
        .flat_map(|x| x.0.iter())
        .filter_map(|i| match i {
            ast::CommandPrefixOrSuffixItem::Word(w) => Some(w.value.as_str()),
            ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => Some(w.value.as_str()),
            _ => None,
        })
        .collect();
    let var = |w: &str| -> String {
        let n: String = w
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if n.is_empty() || w.starts_with(|c: char| c.is_ascii_digit()) || w.contains('$') {
            "*".to_string()
        } else {
            n
        }
    };
    let operands = || words.iter().filter(|w| !w.starts_with('-')).copied();
    let mut out: Vec<String> = match name {
        "read" => {
            // `-a name`, `-u fd`, `-d delim`, … take an argument; names are the rest.
            let mut v = Vec::new();
            let mut i = 0;
            while i < words.len() {
                let w = words[i];
                if let Some(opts) = w.strip_prefix('-') {
                    if opts.ends_with('a') {
                        if let Some(n) = words.get(i + 1) {
                            v.push(var(n));
                        }
                        i += 1;
                    } else if opts.chars().last().is_some_and(|c| "dinNptu".contains(c)) {
                        i += 1;
                    }
                } else {
                    v.push(var(w));
                }
                i += 1;
            }
            if v.is_empty() {
                v.push("REPLY".into());
            }
            v
        }
        "mapfile" | "readarray" => vec![operands().last().map_or("MAPFILE".to_string(), var)],
        "local" | "declare" | "typeset" | "export" | "readonly" | "unset" => {
            operands().map(var).collect()
        }
        "let" => words
            .iter()
            .flat_map(|w| arithmetic_assignments(w))
            .collect(),
        "getopts" => operands()
            .nth(1)
            .map(var)
            .into_iter()
            .chain(["OPTIND".into(), "OPTARG".into()])
            .collect(),
        "printf" => words
            .iter()
            .position(|w| *w == "-v")
            .and_then(|i| words.get(i + 1))
            .map(|n| var(n))
            .into_iter()
            .collect(),
        "shift" | "set" => vec!["@".into()],
        "cd" | "pushd" | "popd" => vec!["PWD".into(), "OLDPWD".into()],
        "eval" | "source" | "." | "exec" | "builtin" | "command" | "enable" => vec!["*".into()],
        _ => vec![],
    };
    out.sort();
    out.dedup();
    out
}

/// Variables an arithmetic expression assigns (`x=1`, `x+=2`, `x++`, `--x`).
fn arithmetic_assignments(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &expr[start..i];
            let mut j = i;
            if j < b.len() && b[j] == b'[' {
                j = expr[j..].find(']').map_or(b.len(), |k| j + k + 1);
            }
            let rest = expr[j..].trim_start();
            let before = expr[..start].trim_end();
            let assigned = rest.starts_with("++")
                || rest.starts_with("--")
                || before.ends_with("++")
                || before.ends_with("--")
                || (rest.starts_with('=') && !rest.starts_with("=="))
                || ["+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="]
                    .iter()
                    .any(|op| rest.starts_with(op));
            if assigned {
                out.push(name.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}
