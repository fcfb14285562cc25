//! Random bash scripts over a tiny universe of files and directories.
//!
//! A script is a tree of statements ([`Stmt`]): single lines (simple commands, pipelines,
//! here-documents, `while read` loops) and blocks (`if`, `for`, `case`, functions, subshells,
//! `cd X && { …; }`, a background job with its `wait`). The reducer deletes and flattens nodes
//! of this tree, so every node renders to text that stays valid bash whatever is removed around
//! it.
//!
//! Every script must be deterministic under bash, or the fuzzer reports noise:
//! - `ls` and `find | sort` run with `LC_ALL=C` (set by the runner); no `ls -l`, no times, pids
//!   or sizes of directories in the output;
//! - a pipeline that reads the file system writes only to stdout (a redirection target could be
//!   created or truncated while an earlier stage reads it), and only its first stage may fail
//!   (two stages writing stderr at once would interleave);
//! - a background job writes only to its own log under `$TMPDIR` (outside the compared tree,
//!   never listed by the foreground) and reads nothing the foreground writes; its log is
//!   printed after `wait`;
//! - names never contain `..` and are relative (or `$top`, the start directory), and `cd` is
//!   always `cd X && { …; cd "$top"; }` or inside a subshell, so no script leaves its tree.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::rng::Rng;

/// Stands for the byte 0xff (a non-UTF-8 file name written raw in the script) in statement
/// text; [`Script::render`] turns it into the byte.
pub const RAW_FF: char = '\u{1}';

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// One or more lines rendered as they are. `keep` lines are never removed by the reducer.
    Line { text: String, keep: bool },
    /// `head₁ NL body₁ … headₙ NL bodyₙ tail`; an empty body renders as `:`.
    Block {
        parts: Vec<(String, Vec<Stmt>)>,
        tail: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub stmts: Vec<Stmt>,
}

impl Script {
    pub fn render(&self) -> Vec<u8> {
        let mut s = String::new();
        render_list(&self.stmts, &mut s);
        let mut out = Vec::with_capacity(s.len());
        for c in s.chars() {
            if c == RAW_FF {
                out.push(0xff);
            } else {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        out
    }
}

fn render_list(list: &[Stmt], out: &mut String) {
    for st in list {
        match st {
            Stmt::Line { text, .. } => {
                out.push_str(text);
                out.push('\n');
            }
            Stmt::Block { parts, tail } => {
                for (head, body) in parts {
                    out.push_str(head);
                    out.push('\n');
                    if body.is_empty() {
                        out.push_str(":\n");
                    } else {
                        render_list(body, out);
                    }
                }
                out.push_str(tail);
                out.push('\n');
            }
        }
    }
}

fn line(text: impl Into<String>) -> Stmt {
    Stmt::Line {
        text: text.into(),
        keep: false,
    }
}

/// Frequent names: the universe's core.
const CORE: &[&str] = &["a", "b", "d", "d/c", "e", "l"];
/// The rest of the universe, including the same names spelled other ways.
const MORE: &[&str] = &[
    "e/f",
    "e/a",
    "'sp ace'",
    "\"sp ace\"",
    "sp\\ ace",
    "d/'sp ace'",
    "$'n\\xff'",
    "'n\u{1}'",
    "new",
    "d/new",
];

/// Creates the universe the names above refer to in `dir` (which must exist and be empty).
pub fn populate(dir: &Path) {
    let w = |rel: &[u8], content: &str, mode: u32| {
        let p = dir.join(OsStr::from_bytes(rel));
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir(dir.join("d")).unwrap();
    fs::create_dir(dir.join("e")).unwrap();
    w(b"a", "alpha\nbeta\n", 0o644);
    w(b"b", "3\n1\n2\n", 0o644);
    w(b"d/c", "in d\n", 0o600);
    w(b"sp ace", "x y\n", 0o644);
    w(b"n\xff", "raw\n", 0o755);
    std::os::unix::fs::symlink("a", dir.join("l")).unwrap();
}

/// Symlink targets (relative to the link's directory).
const TARGETS: &[&str] = &["a", "b", "c", "d", "d/c", "'sp ace'", "l", "new", "e"];

/// `$_` after a statement: see `regression_underscore_after_pipeline` in tests/fuzz.rs.
const UNDERSCORE: &str = "echo \"last=$_\"";

/// Constructs named in `HS_FUZZ_SKIP` (comma-separated) are rendered as a harmless `echo`,
/// without changing the random stream, so the other statements of every seed stay the same.
/// Meant for fuzzing past a known divergence until it is fixed. Names: `underscore` (`$_`
/// after a statement), `type` (`type f1`, `command -V f1`), `errtrap` (an ERR trap printing
/// `$BASH_COMMAND`).
fn skipped(what: &str) -> bool {
    std::env::var("HS_FUZZ_SKIP").is_ok_and(|v| v.split(',').any(|w| w.trim() == what))
}

/// `words`, or a constant when they contain a command substitution.
fn no_subst(words: String) -> String {
    if words.contains("$(") {
        "'%s\\n' const".into()
    } else {
        words
    }
}

struct Gen {
    rng: Rng,
    /// Variables assigned so far (usable in words).
    vars: Vec<String>,
    next_var: usize,
    funcs: Vec<String>,
    loop_vars: Vec<&'static str>,
    /// Enclosing loops, innermost last: `true` for `for` (where `continue` is safe).
    loops: Vec<bool>,
    in_subshell: bool,
    in_func: bool,
    bg: usize,
    sleeps: usize,
    labels: usize,
}

/// The script for `seed`.
pub fn generate(seed: u64) -> Script {
    let mut g = Gen {
        rng: Rng::new(seed),
        vars: vec![],
        next_var: 1,
        funcs: vec![],
        loop_vars: vec![],
        loops: vec![],
        in_subshell: false,
        in_func: false,
        bg: 0,
        sleeps: 4,
        labels: 0,
    };
    let mut stmts = vec![Stmt::Line {
        text: "top=$PWD".into(),
        keep: true,
    }];
    if g.rng.chance(15) {
        stmts.push(line("set -e"));
    }
    if g.rng.chance(10) {
        stmts.push(line("set -o pipefail"));
    }
    if g.rng.chance(5) {
        stmts.push(line("set -u"));
    }
    if g.rng.chance(8) {
        stmts.push(line("trap 'echo \"exit trap rc=$?\"' EXIT"));
    }
    if g.rng.chance(6) {
        // See `regression_err_trap_bash_command_in_subshell` in tests/fuzz.rs.
        stmts.push(line(if skipped("errtrap") {
            "echo \"ERR trap (skipped)\""
        } else {
            "trap 'echo \"ERR line $LINENO: $BASH_COMMAND rc=$?\"' ERR"
        }));
    }
    let n = g.rng.range(6, 22);
    for _ in 0..n {
        let st = g.stmt(0);
        stmts.push(st);
    }
    if g.rng.chance(15) {
        let code = g.rng.below(4);
        stmts.push(line(format!("exit {code}")));
    }
    Script { stmts }
}

impl Gen {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels
    }

    fn name(&mut self) -> String {
        if !self.loop_vars.is_empty() && self.rng.chance(15) {
            let v = *self.rng.pick(&self.loop_vars);
            return format!("\"${v}\"");
        }
        if self.in_func && self.rng.chance(25) {
            return "\"$1\"".into();
        }
        if self.rng.chance(60) {
            self.rng.pick(CORE).to_string()
        } else {
            self.rng.pick(MORE).to_string()
        }
    }

    /// A name of the universe (never a loop variable or `$1`).
    fn fixed_name(&mut self) -> String {
        if self.rng.chance(60) {
            self.rng.pick(CORE).to_string()
        } else {
            self.rng.pick(MORE).to_string()
        }
    }

    fn var(&mut self) -> Option<String> {
        if self.vars.is_empty() {
            None
        } else {
            Some(self.rng.pick(&self.vars).clone())
        }
    }

    fn text(&mut self) -> String {
        let v = self.var();
        match self.rng.below(9) {
            0 => "hello".into(),
            1 => "\"two  words\"".into(),
            2 => "'x*'".into(),
            3 => "-n tail".into(),
            4 => "alpha".into(),
            5 => match v {
                Some(v) => format!("\"[${v}]\""),
                None => "3".into(),
            },
            6 => match self.loop_vars.last() {
                Some(x) => format!("\"it ${x}\""),
                None => "zeta".into(),
            },
            7 => "\"st=$?\"".into(),
            _ => "\"$(cat b 2>/dev/null | wc -l) lines\"".into(),
        }
    }

    fn printf_args(&mut self) -> String {
        let v = self.var().unwrap_or_else(|| "nothing".into());
        match self.rng.below(5) {
            0 => "'%s\\n' a b c".into(),
            1 => format!("'%s:%s\\n' x \"${v}\""),
            2 => "'%d\\n' 3 1 2".into(),
            3 => "'no newline'".into(),
            _ => "'%s\\n' \"two words\" \"$(ls | wc -l)\"".into(),
        }
    }

    fn pattern(&mut self) -> &'static str {
        const PATTERNS: &[&str] = &["a", "x", "'^[0-9]'", "-e b", "''", "'p a'"];
        PATTERNS[self.rng.below(PATTERNS.len())]
    }

    /// A simple command (no pipeline), possibly failing.
    fn simple(&mut self) -> String {
        let w = self.name();
        let w2 = self.name();
        match self.rng.below(34) {
            0 | 1 => format!("echo {} > {w}", self.text()),
            2 | 3 => format!("echo {} >> {w}", self.text()),
            4 => format!("printf {} > {w}", self.printf_args()),
            5 => format!("printf {} >> {w}", self.printf_args()),
            6 | 7 => format!("cat {w}"),
            8 => format!("cat {w} {w2} 2>&1"),
            9 => format!("cp {w} {w2}"),
            // Fixed names only: a copy into itself (`cp -r d d/x`, or through a symlink)
            // depends on readdir order while the copy grows the source.
            10 => {
                let k = self.label();
                format!("cp -r {} cp{k}", self.fixed_name())
            }
            11 => format!("mv {w} {w2}"),
            12 => format!("mv -f {w} {w2}"),
            13 => format!("rm {w}"),
            14 => format!("rm -f {w}"),
            15 => format!("rm -r {w}"),
            16 => format!("rm -rf {w}"),
            17 => format!("mkdir -p {w}"),
            18 => format!("mkdir {w}"),
            19 => format!("rmdir {w}"),
            20 => format!("touch {w}"),
            21 => format!("ln -s {} {}", self.rng.pick(TARGETS), self.fixed_name()),
            22 => format!("ln -sf {} {}", self.rng.pick(TARGETS), self.fixed_name()),
            23 => self
                .rng
                .pick(&["ls", "ls -a", "ls -R", "ls -1F", "ls *"])
                .to_string(),
            24 => format!("ls {w}"),
            25 => format!("ls -d {w} {w2}"),
            26 => self
                .rng
                .pick(&[
                    "find . | sort",
                    "find . -type f | sort",
                    "find . -type d | sort",
                    "find . -name 'c*' | sort",
                ])
                .to_string(),
            27 => format!("find {w} | sort"),
            28 => format!("grep -c {} {w}", self.pattern()),
            29 => format!("sort {w}"),
            30 => format!("sort -r {w} 2>&1"),
            31 => format!("wc -l {w}"),
            32 => format!("wc -l < {w}"),
            _ => format!("chmod {} {w}", self.rng.pick(&["+x", "go-w", "u-x,g+w"])),
        }
    }

    fn test_expr(&mut self) -> String {
        let w = self.name();
        let op = self.rng.pick(&["-e", "-f", "-d", "-L", "-s"]);
        if self.rng.chance(50) {
            format!("test {op} {w}")
        } else {
            format!("[ {op} {w} ]")
        }
    }

    fn pipeline(&mut self) -> String {
        let w = self.name();
        let choice = self.rng.below(9);
        let writes = choice == 6 || choice == 7;
        let p = match choice {
            0 => format!("cat {w} | sort | wc -l"),
            1 => format!("ls | grep -c {}", self.pattern()),
            2 => "find . | sort | grep -c c".into(),
            3 => format!("cat {w} 2>/dev/null | sort -r"),
            4 => format!("sort {w} | uniq -c"),
            5 => format!("ls {w} | wc -l"),
            // Pipelines that read no file may write anywhere.
            // A command substitution in the first stage (`$(ls | wc -l)`) would race with
            // the last stage's redirection creating its file: replaced by a constant.
            6 => format!("printf {} | sort > {w}", no_subst(self.printf_args())),
            7 => format!("echo {} | tr a-z A-Z >> {w}", no_subst(self.text())),
            _ => format!("printf '%s\\n' 3 1 2 | sort -n | tee {w}"),
        };
        // A pipeline whose last stage can fail before reading (its redirection fails) gives
        // its writer SIGPIPE or not, by timing: no PIPESTATUS after those.
        if writes {
            return p;
        }
        match self.rng.below(4) {
            0 => format!("{p}; echo \"ps=${{PIPESTATUS[*]}}\""),
            1 => format!("{p}\necho \"ps=${{PIPESTATUS[0]}} ${{PIPESTATUS[1]}}\""),
            2 => format!("{p}; echo \"rc=$?\""),
            _ => p,
        }
    }

    fn assign(&mut self) -> String {
        let v = if self.vars.len() < 3 || self.rng.chance(30) {
            let v = format!("v{}", self.next_var);
            self.next_var += 1;
            v
        } else {
            self.var().unwrap()
        };
        let w = self.name();
        let rhs = match self.rng.below(7) {
            0 | 1 => format!("{v}=$(cat {w} 2>/dev/null)"),
            2 => format!("{v}=$(ls | wc -l)"),
            3 => format!("{v}=$(grep -c a {w} 2>&1)"),
            4 => format!("{v}=$({} && echo y || echo n)", self.test_expr()),
            5 => format!("{v}=\"$(cat {w} 2>&1; echo \"rc=$?\")\""),
            _ => format!("read -r {v} < {w}"),
        };
        if !self.vars.contains(&v) {
            self.vars.push(v);
        }
        rhs
    }

    fn heredoc(&mut self) -> String {
        let w = self.name();
        let v = self.var().unwrap_or_else(|| "nothing".into());
        match self.rng.below(5) {
            0 => format!("cat > {w} <<EOF\nline one [${v}]\n$(echo sub)\nEOF"),
            1 => "cat <<'EOF' | sort\nzeta $x\nalpha\nEOF".into(),
            2 => "grep -c a <<EOF\na\nb\na\nEOF".into(),
            3 => "while read -r l; do echo \"got $l\"; done <<EOF\n1\n2 3\nEOF".into(),
            _ => format!("sort >> {w} <<-EOF\n\tb\n\ta\n\tEOF"),
        }
    }

    /// A one-line (or here-document) statement.
    fn leaf(&mut self) -> Stmt {
        let text = match self.rng.below(32) {
            // What the script can see of itself and its process: functions (their text, the
            // list), shell flags, the environment, open descriptors, the call stack.
            30 | 31 => {
                let f = self.funcs.last().cloned();
                let mut probes = vec![
                    "echo \"flags=$-\"",
                    "env | sort",
                    "ls /proc/self/fd | wc -l",
                    "ls \"/proc/$BASHPID/fd\" | wc -l",
                    "declare -F | wc -l",
                    "compgen -A function | sort",
                    "set -o | grep -E 'errexit|pipefail|nounset'",
                    "echo \"src=${BASH_SOURCE[*]##*/} fn=${FUNCNAME[*]} line=${BASH_LINENO[*]}\"",
                    "alias; echo \"aliases=$?\"",
                ];
                let mut owned = vec![];
                if let Some(f) = f {
                    owned.push(format!("declare -f {f}"));
                    owned.push(format!("type {f}"));
                    owned.push(format!("command -v {f}"));
                }
                if self.in_func {
                    probes.push("caller 0 | sed 's,.*/,,'");
                }
                let n = probes.len() + owned.len();
                let i = self.rng.below(n);
                if i < probes.len() {
                    probes[i].to_string()
                } else if i == probes.len() + 1 && skipped("type") {
                    // See `regression_type_shows_instrumented_function` in tests/fuzz.rs.
                    "echo \"type (skipped)\"".into()
                } else {
                    owned[i - probes.len()].clone()
                }
            }
            0..=11 => self.simple(),
            12 => format!("{}; echo \"rc=$?\"", self.simple()),
            13 | 14 => self.pipeline(),
            15 | 16 => self.assign(),
            17 => {
                let k = self.label();
                format!(
                    "{} && echo \"{k} yes\" || echo \"{k} no\"",
                    self.test_expr()
                )
            }
            18 => match self.var() {
                Some(v) => format!("echo \"{v}=[${v}]\""),
                None => "echo none".into(),
            },
            19 => match self.var() {
                Some(v) => format!("[ \"${v}\" = alpha ] && echo eq || echo ne"),
                None => "true".into(),
            },
            20 if self.sleeps > 0 => {
                self.sleeps -= 1;
                format!("sleep 0.0{}", self.rng.below(6))
            }
            21 => self.heredoc(),
            22 => {
                let w = self.name();
                format!("while read -r l; do echo \"<$l>\"; done < {w}")
            }
            23 => {
                let text = self
                    .rng
                    .pick(&[
                        "false",
                        "true",
                        "(exit 3); echo \"rc=$?\"",
                        "false | true; echo \"${PIPESTATUS[@]}\"",
                        "! true; echo \"neg=$?\"",
                        UNDERSCORE,
                        "echo \"line=$LINENO\"",
                    ])
                    .to_string();
                if text == UNDERSCORE && skipped("underscore") {
                    "echo \"last=(skipped)\"".into()
                } else {
                    text
                }
            }
            24 if !self.funcs.is_empty() => {
                let f = self.rng.pick(&self.funcs).clone();
                let w = self.name();
                if self.rng.chance(50) {
                    format!("{f} {w}; echo \"{f} rc=$?\"")
                } else {
                    format!("{f} {w}")
                }
            }
            25 if self.in_func => "[ -e \"$1\" ] || return 3".into(),
            26 => {
                let w = self.name();
                format!("{{ echo g1; cat {w}; }} 2>&1 | sort")
            }
            27 => {
                let w = self.name();
                match self.rng.below(6) {
                    0 => format!("{}; echo \"rc=$?\"", self.assign()),
                    1 => format!("ls {w} 2>&1 | while read -r f; do echo \"[$f]\"; done"),
                    2 => match self.var() {
                        Some(v) => format!("grep -c a <<< \"${v}\""),
                        None => "grep -c a <<< alpha".into(),
                    },
                    3 => format!("! grep -q a {w}; echo \"neg=$?\""),
                    4 => format!("test -e {w} && cat {w} || echo \"no such\""),
                    _ => "eval 'cat a b'; echo \"eval rc=$?\"".to_string(),
                }
            }
            28 => {
                let ms = self.rng.below(4);
                match self.rng.below(3) {
                    0 => format!("sleep 0.0{ms} &\nwait $!; echo \"w=$?\""),
                    1 => "printf '%s\\n' bgline > \"$TMPDIR/bgs.log\" &\nwait $!; cat \"$TMPDIR/bgs.log\"".into(),
                    _ => format!("(sleep 0.0{ms}; exit 5) &\nwait $!; echo \"w=$?\""),
                }
            }
            29 if self.loops.last() == Some(&true) => {
                let t = self.test_expr();
                if self.rng.chance(50) {
                    format!("{t} && break")
                } else {
                    format!("{t} || continue")
                }
            }
            29 if self.in_subshell => format!("{} || exit 4", self.test_expr()),
            _ => self.simple(),
        };
        line(text)
    }

    fn body(&mut self, depth: usize) -> Vec<Stmt> {
        let n = self.rng.range(1, 4);
        (0..n).map(|_| self.stmt(depth + 1)).collect()
    }

    fn stmt(&mut self, depth: usize) -> Stmt {
        if depth >= 2 || !self.rng.chance(28) {
            return self.leaf();
        }
        match self.rng.below(12) {
            0 | 1 => {
                let t = self.test_expr();
                let cond = match self.rng.below(if self.funcs.is_empty() { 4 } else { 5 }) {
                    3 => {
                        let w = self.name();
                        format!("cat {w} >/dev/null 2>&1")
                    }
                    4 => {
                        let f = self.rng.pick(&self.funcs).clone();
                        let w = self.name();
                        format!("{f} {w}")
                    }
                    0 => {
                        let w = self.name();
                        format!("grep -q a {w} 2>/dev/null")
                    }
                    1 => format!("! {t}"),
                    _ => t,
                };
                let mut parts = vec![(format!("if {cond}; then"), self.body(depth))];
                if self.rng.chance(50) {
                    parts.push(("else".into(), self.body(depth)));
                }
                Stmt::Block {
                    parts,
                    tail: "fi".into(),
                }
            }
            2 | 3 => {
                let var = ["x", "y"][self.loop_vars.len().min(1)];
                let head = match self.rng.below(4) {
                    3 => {
                        let w = self.name();
                        format!("for {var} in $(ls {w} 2>/dev/null); do")
                    }
                    0 => {
                        let ws: Vec<String> =
                            (0..self.rng.range(1, 3)).map(|_| self.name()).collect();
                        format!("for {var} in {}; do", ws.join(" "))
                    }
                    1 => format!("for {var} in *; do"),
                    _ => format!("for {var} in 1 2 3; do"),
                };
                self.loop_vars.push(var);
                self.loops.push(true);
                let body = self.body(depth);
                self.loops.pop();
                self.loop_vars.pop();
                Stmt::Block {
                    parts: vec![(head, body)],
                    tail: "done".into(),
                }
            }
            4 => {
                let subject = match self.var() {
                    Some(v) => format!("\"${v}\""),
                    None => "\"$(ls | wc -l)\"".into(),
                };
                let b1 = self.body(depth);
                let b2 = self.body(depth);
                let b3 = self.body(depth);
                Stmt::Block {
                    parts: vec![
                        (format!("case {subject} in\n*a*)"), b1),
                        (";;\n[0-9]*)".into(), b2),
                        (";;\n*)".into(), b3),
                    ],
                    tail: ";;\nesac".into(),
                }
            }
            5 if depth == 0 && !self.in_func => {
                let f = format!("f{}", self.funcs.len() + 1);
                self.in_func = true;
                let body = self.body(depth);
                self.in_func = false;
                self.funcs.push(f.clone());
                Stmt::Block {
                    parts: vec![(format!("{f}() {{"), body)],
                    tail: "}".into(),
                }
            }
            6 => {
                let w = self.name();
                let head = if self.rng.chance(50) {
                    "(".to_string()
                } else {
                    format!("( cd {w} || exit 7")
                };
                let outer = std::mem::replace(&mut self.in_subshell, true);
                let body = self.body(depth);
                self.in_subshell = outer;
                Stmt::Block {
                    parts: vec![(head, body)],
                    tail: ")\necho \"sub rc=$?\"".into(),
                }
            }
            7 => {
                let w = self.name();
                Stmt::Block {
                    parts: vec![(format!("cd {w} && {{"), self.body(depth))],
                    tail: "cd \"$top\"\n}".into(),
                }
            }
            10 | 11 => {
                let c = format!("c{depth}");
                self.loops.push(false);
                let body = self.body(depth);
                self.loops.pop();
                Stmt::Block {
                    parts: vec![(format!("{c}=0\nwhile [ \"${c}\" -lt 2 ]; do"), body)],
                    tail: format!("{c}=$(({c} + 1))\ndone"),
                }
            }
            8 if depth == 0 && self.bg < 2 => {
                self.bg += 1;
                let k = self.bg;
                let ms = self.rng.below(6);
                let code = self.rng.below(3);
                let head = format!(
                    "{{ sleep 0.0{ms}; printf '%s\\n' bg{k} 'two words'; exit {code}; }} > \"$TMPDIR/bg{k}.log\" 2>&1 &\nbg{k}=$!"
                );
                let wait = if self.rng.chance(70) {
                    format!("wait \"$bg{k}\"; echo \"bg{k} rc=$?\"")
                } else {
                    "wait; echo \"wait rc=$?\"".into()
                };
                Stmt::Block {
                    parts: vec![(head, self.body(depth))],
                    tail: format!("{wait}\ncat \"$TMPDIR/bg{k}.log\""),
                }
            }
            // The group's output goes outside the tree: a body reading the target file
            // (`while read … < a` inside `{ …; } > a`) would loop for ever.
            _ => {
                let k = self.label();
                Stmt::Block {
                    parts: vec![("{".into(), self.body(depth))],
                    tail: format!("}} > \"$TMPDIR/g{k}.out\" 2>&1\ncat \"$TMPDIR/g{k}.out\""),
                }
            }
        }
    }
}
