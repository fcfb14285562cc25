//! The shell state a gate reports, as bash prints it, as the scheduler compares it, and as a
//! speculative run re-creates it.
//!
//! With speculation on, a main-shell gate for unit N writes, after its `g` line:
//!
//! ```text
//! declare -p VARS…        the variables unit N expands (__hs_sN)
//! \x1f@ WORDS…\n          %q-quoted positional parameters, when unit N expands them
//! \x1f declare -px        the exported environment
//! \x1f $- SHELLOPTS BASHOPTS\n
//! \x1e TOKEN\n            end of message (TOKEN is random per run)
//! ```
//!
//! A variable's value, for the scheduler, is its raw bytes when it is a plain (or exported)
//! scalar, so that prediction (loop words) speaks the same language; anything else (arrays,
//! integers, read-only, …) is its whole `declare` line behind a NUL byte, which no shell value
//! contains.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// End of one field.
pub const FIELD: u8 = 0x1f;

/// What a gate reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GateState {
    /// Each expanded variable's value ([`value_of`]); `None` when unset. The positional
    /// parameters are `@`, as their `%q`-quoted words.
    pub vars: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `declare -px` output: the environment the unit's commands get.
    pub env: Vec<u8>,
    /// `$-`, `$SHELLOPTS` and `$BASHOPTS`, space-separated.
    pub options: Vec<u8>,
}

/// The per-unit state function `__hs_sN`, which prints what unit `id` expands. `names` are
/// its variables; with `positional`, it also prints the gate's positional arguments (the gate
/// passes them between the unit id and `$_`).
pub fn unit_function(id: u32, names: &[String], positional: bool, functions: &[String]) -> String {
    let mut body = String::new();
    if !names.is_empty() {
        body.push_str(&format!("builtin declare -p {}; ", names.join(" ")));
    }
    if positional {
        body.push_str(
            "builtin printf '\\037@'; (($# > 2)) && builtin printf ' %q' \"${@:2:$#-2}\"; \
             builtin printf '\\n'; ",
        );
    }
    if !functions.is_empty() {
        // The definitions the unit may call (as bash prints them, gates included) and
        // which of them are exported.
        let f = functions.join(" ");
        body.push_str(&format!(
            "builtin printf '\\037F'; builtin declare -f {f}; \
             builtin printf '\\037X'; builtin declare -Fp {f}; "
        ));
    }
    if body.is_empty() {
        body.push_str("builtin :; ");
    }
    format!("__hs_s{id}() {{ {body}}}; ")
}

/// The tail every gate message ends with (`__hs_ctx`): environment, options, end mark.
pub fn context_function(token: &str) -> String {
    format!(
        "__hs_ctx() {{ builtin printf '\\037'; builtin declare -px; \
         builtin printf '\\037 %s %s %s\\n\\036{token}\\n' \"$-\" \"$SHELLOPTS\" \"$BASHOPTS\"; }}; "
    )
}

/// Parses a gate message body (between the `g` line and the end mark). `names` are the
/// variables the unit expands (those `declare -p` did not print are unset); `positional`
/// whether it expands the positional parameters.
pub fn parse(text: &[u8], names: &[String], positional: bool) -> GateState {
    let mut fields = text.split(|&b| b == FIELD);
    let declared = fields.next().unwrap_or_default();
    let mut vars: BTreeMap<Vec<u8>, Option<Vec<u8>>> = names
        .iter()
        .map(|n| (n.as_bytes().to_vec(), None))
        .collect();
    for decl in declarations(declared, names) {
        if let Some(name) = declared_name(decl) {
            vars.insert(name.to_vec(), Some(value_of(decl)));
        }
    }
    // Then `@` positional words, `F` function definitions, `X` their attributes (each
    // optional), the environment and the options, always last.
    let rest: Vec<&[u8]> = fields.collect();
    let (env, options) = match rest.len() {
        0 => (&b""[..], &b""[..]),
        1 => (rest[0], &b""[..]),
        n => (rest[n - 2], rest[n - 1]),
    };
    let mut functions: Option<(Vec<u8>, Vec<u8>)> = None;
    for f in rest.iter().take(rest.len().saturating_sub(2)) {
        match f.first() {
            Some(b'@') if positional => {
                let words = f[1..].strip_suffix(b"\n").unwrap_or(&f[1..]);
                vars.insert(b"@".to_vec(), Some(words.to_vec()));
            }
            Some(b'F') => functions.get_or_insert_with(Default::default).0 = f[1..].to_vec(),
            Some(b'X') => functions.get_or_insert_with(Default::default).1 = f[1..].to_vec(),
            _ => {}
        }
    }
    if positional {
        vars.entry(b"@".to_vec()).or_insert(Some(Vec::new()));
    }
    if let Some((defs, attrs)) = functions {
        vars.insert(FUNCTIONS.to_vec(), Some(functions_value(&defs, &attrs)));
    }
    GateState {
        vars,
        env: env.to_vec(),
        options: trim(options).to_vec(),
    }
}

/// The words of `printf ' %q'` output (the positional parameters a gate reports), if each is
/// quoted with backslashes only (`$'…'` forms are not decoded).
pub fn unquote_words(q: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut it = q.iter().copied().peekable();
    loop {
        while it.peek() == Some(&b' ') {
            it.next();
        }
        let Some(&first) = it.peek() else {
            return Some(words);
        };
        let mut w = Vec::new();
        if first == b'\'' {
            // Only the empty word is quoted this way.
            if it.next() != Some(b'\'') || it.next() != Some(b'\'') {
                return None;
            }
            if it.peek().is_some_and(|&c| c != b' ') {
                return None;
            }
            words.push(w);
            continue;
        }
        if first == b'$' {
            let mut probe = it.clone();
            probe.next();
            if probe.peek() == Some(&b'\'') {
                return None;
            }
        }
        while let Some(c) = it.next_if(|&c| c != b' ') {
            if c == b'\\' {
                w.push(it.next()?);
            } else if c == b'\'' {
                return None;
            } else {
                w.push(c);
            }
        }
        words.push(w);
    }
}

/// The pseudo-variable holding the function definitions a unit may call (a unit calling a
/// script function has it among its variables).
pub const FUNCTIONS: &[u8] = b"__hs_functions";

/// `FUNCTIONS`'s value: \x01 definitions \x02 attributes (no raw value starts with \x01).
fn functions_value(defs: &[u8], attrs: &[u8]) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(defs);
    v.push(2);
    v.extend_from_slice(attrs);
    v
}

/// Splits `declare -p` output into declarations: each starts a line with `declare -FLAGS
/// NAME` for one of `names` (values with newlines continue on the following lines).
fn declarations<'a>(text: &'a [u8], names: &[String]) -> Vec<&'a [u8]> {
    split_declarations(text, |n| names.iter().any(|x| x.as_bytes() == n))
}

/// Splits `declare` output at lines `declare -FLAGS NAME…` whose NAME `starts_here` accepts.
pub fn split_declarations(text: &[u8], starts_here: impl Fn(&[u8]) -> bool) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let line = &text[at..];
        if line.starts_with(b"declare -") && declared_name(line).is_some_and(&starts_here) {
            starts.push(at);
        }
        match line.iter().position(|&b| b == b'\n') {
            Some(nl) => at += nl + 1,
            None => break,
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let e = starts.get(i + 1).copied().unwrap_or(text.len());
            let d = &text[s..e];
            d.strip_suffix(b"\n").unwrap_or(d)
        })
        .collect()
}

/// `x` in `declare -a x=(…)` or `declare -- x`.
fn declared_name(decl: &[u8]) -> Option<&[u8]> {
    let rest = decl.strip_prefix(b"declare -")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let rest = &rest[space + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b'=' || b == b'\n')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The scheduler's value of one declaration: raw bytes for a plain or exported scalar,
/// otherwise NUL + the declaration.
pub fn value_of(decl: &[u8]) -> Vec<u8> {
    let plain = decl.starts_with(b"declare -- ") || decl.starts_with(b"declare -x ");
    if plain
        && let Some(eq) = decl.iter().position(|&b| b == b'=')
        && let Some(v) = unquote(&decl[eq + 1..])
    {
        return v;
    }
    let mut v = vec![0];
    v.extend_from_slice(decl);
    v
}

/// Undoes bash's quoting of a scalar in `declare -p`: `"…"` (with `\"`, `\\`, `\$`, `` \` ``)
/// or `$'…'`.
fn unquote(q: &[u8]) -> Option<Vec<u8>> {
    if let Some(inner) = q.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) {
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' && matches!(inner.get(i + 1), Some(b'"' | b'\\' | b'$' | b'`')) {
                out.push(inner[i + 1]);
                i += 2;
            } else {
                out.push(inner[i]);
                i += 1;
            }
        }
        return Some(out);
    }
    if q.starts_with(b"$'") && q.ends_with(b"'") {
        let words = crate::gate::unquote_words(q);
        return match words.len() {
            1 => words.into_iter().next(),
            _ => None,
        };
    }
    None
}

/// Bash single-quoting of arbitrary bytes.
pub fn quote(v: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in v {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

fn trim(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b" ").unwrap_or(b);
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// What every unit observes besides its variables: cwd, umask, options and exported
/// environment, as one byte string (the scheduler's `State::context`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The shell's working directory.
    pub cwd: PathBuf,
    /// Its umask.
    pub umask: u32,
    /// `$-`, `$SHELLOPTS`, `$BASHOPTS`.
    pub options: Vec<u8>,
    /// `declare -px` output.
    pub env: Vec<u8>,
}

impl Context {
    /// The encoding the scheduler compares.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.cwd.as_os_str().as_encoded_bytes());
        out.push(0);
        out.extend_from_slice(format!("{:o}", self.umask).as_bytes());
        out.push(0);
        out.extend_from_slice(&self.options);
        out.push(0);
        out.extend_from_slice(&self.env);
        out
    }

    /// Inverse of [`Context::encode`].
    pub fn decode(b: &[u8]) -> Option<Context> {
        let mut parts = b.splitn(4, |&c| c == 0);
        let cwd = PathBuf::from(OsString::from_vec(parts.next()?.to_vec()));
        let umask = u32::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 8).ok()?;
        let options = parts.next()?.to_vec();
        let env = parts.next()?.to_vec();
        Some(Context {
            cwd,
            umask,
            options,
            env,
        })
    }

    /// `$-`.
    pub fn flags(&self) -> &[u8] {
        self.options
            .split(|&b| b == b' ')
            .next()
            .unwrap_or_default()
    }

    /// The `set -o` and `shopt` names turned on.
    fn names(&self, field: usize) -> Vec<&[u8]> {
        self.options
            .split(|&b| b == b' ')
            .nth(field)
            .unwrap_or_default()
            .split(|&b| b == b':')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// `set -o` options a speculative shell takes over (interactive-only ones left out).
const SET_OPTIONS: &[&str] = &[
    "allexport",
    "braceexpand",
    "errexit",
    "errtrace",
    "hashall",
    "keyword",
    "noclobber",
    "noglob",
    "nounset",
    "physical",
    "pipefail",
    "posix",
];

/// `shopt` options a speculative shell takes over: those that change how a command line
/// expands or runs.
const SHOPT_OPTIONS: &[&str] = &[
    "cdable_vars",
    "dotglob",
    "execfail",
    "expand_aliases",
    "extglob",
    "extquote",
    "failglob",
    "globasciiranges",
    "globskipdots",
    "globstar",
    "inherit_errexit",
    "lastpipe",
    "nocaseglob",
    "nocasematch",
    "noexpand_translation",
    "nullglob",
    "patsub_replacement",
    "sourcepath",
    "varredir_close",
    "xpg_echo",
];

/// The script a speculative shell sources before the unit: the exported environment, the
/// unit's variables (`vars`, as [`value_of`] encodes them), positional parameters and
/// options. Its errors (read-only variables bash sets itself) go to /dev/null.
pub fn restore_script(vars: &BTreeMap<Vec<u8>, Option<Vec<u8>>>, ctx: &Context) -> Vec<u8> {
    let mut s: Vec<u8> = b"{\n".to_vec();
    s.extend_from_slice(&ctx.env);
    if !ctx.env.ends_with(b"\n") {
        s.push(b'\n');
    }
    for (name, value) in vars {
        if name == FUNCTIONS {
            if let Some(v) = value.as_ref().and_then(|v| v.strip_prefix(&[1u8][..])) {
                let (defs, attrs) = match v.iter().position(|&b| b == 2) {
                    Some(i) => (&v[..i], &v[i + 1..]),
                    None => (v, &b""[..]),
                };
                // Gates inside the bodies run their units in place here.
                s.extend_from_slice(
                    b"__hs_gate() { return 0; }; __hs_note() { return 0; }; \
                      __hs_loop() { return 0; }; __hs_replay() { return 0; }; \
                      __hs_it() { return \"$2\"; }\n",
                );
                s.extend_from_slice(defs);
                s.push(b'\n');
                for line in attrs.split(|&b| b == b'\n') {
                    if let Some(name) = line.strip_prefix(b"declare -fx ") {
                        s.extend_from_slice(b"builtin export -f ");
                        s.extend_from_slice(name);
                        s.push(b'\n');
                    }
                }
            }
            continue;
        }
        if name == b"@" {
            s.extend_from_slice(b"builtin set --");
            if let Some(words) = value {
                s.extend_from_slice(words);
            }
            s.push(b'\n');
            continue;
        }
        match value {
            None => {
                s.extend_from_slice(b"builtin unset -v ");
                s.extend_from_slice(name);
            }
            Some(v) if v.first() == Some(&0) => {
                // Not `builtin declare`: bash parses `(…)` values only after a plain `declare`.
                let decl = &v[1..];
                match decl.strip_prefix(b"declare ") {
                    Some(rest) => {
                        s.extend_from_slice(b"declare -g ");
                        s.extend_from_slice(rest);
                    }
                    None => s.extend_from_slice(decl),
                }
            }
            Some(v) => {
                s.extend_from_slice(name);
                s.push(b'=');
                s.extend_from_slice(&quote(v));
            }
        }
        s.push(b'\n');
    }
    let on = ctx.names(1);
    for o in SET_OPTIONS {
        let sign = if on.contains(&o.as_bytes()) { "-" } else { "+" };
        s.extend_from_slice(format!("builtin set {sign}o {o}\n").as_bytes());
    }
    let on = ctx.names(2);
    let (set, unset): (Vec<&str>, Vec<&str>) = SHOPT_OPTIONS
        .iter()
        .partition(|o| on.contains(&o.as_bytes()));
    if !set.is_empty() {
        s.extend_from_slice(format!("builtin shopt -s {}\n", set.join(" ")).as_bytes());
    }
    if !unset.is_empty() {
        s.extend_from_slice(format!("builtin shopt -u {}\n", unset.join(" ")).as_bytes());
    }
    s.extend_from_slice(b"} 2>/dev/null\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(setup: &str, names: &[&str], positional: bool) -> GateState {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let script = format!(
            "{}{}{setup}; {{ __hs_s0 0 \"$@\" x; __hs_ctx; }}",
            unit_function(0, &names, positional, &[]),
            context_function("TOK"),
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("name")
            .arg("p 1")
            .arg("")
            .env_clear()
            .env("KEEP", "1")
            .output()
            .unwrap();
        let text = out
            .stdout
            .strip_suffix(b"\x1eTOK\n")
            .expect("ends with the end mark");
        parse(text, &names, positional)
    }

    #[test]
    fn variables_arrays_and_unset() {
        let s = run(
            "x='a b'; y=$'multi\\nline'; z='q\"$`\\'; arr=(1 '2 3'); declare -A m=([k]=v); \
             export e=1",
            &["x", "y", "z", "arr", "m", "e", "nope"],
            false,
        );
        assert_eq!(s.vars[&b"x"[..]].as_deref(), Some(&b"a b"[..]));
        assert_eq!(s.vars[&b"y"[..]].as_deref(), Some(&b"multi\nline"[..]));
        assert_eq!(s.vars[&b"z"[..]].as_deref(), Some(&b"q\"$`\\"[..]));
        assert_eq!(s.vars[&b"e"[..]].as_deref(), Some(&b"1"[..]));
        assert_eq!(
            s.vars[&b"arr"[..]].as_deref(),
            Some(&b"\0declare -a arr=([0]=\"1\" [1]=\"2 3\")"[..])
        );
        assert!(
            s.vars[&b"m"[..]]
                .as_deref()
                .unwrap()
                .starts_with(b"\0declare -A m=")
        );
        assert_eq!(s.vars[&b"nope"[..]], None);
    }

    #[test]
    fn positional_words_unquoted() {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("printf ' %q' 'a b' '' \"x'y\" é -n '$x' 'c\\d'")
            .output()
            .unwrap()
            .stdout;
        let words = unquote_words(&out).unwrap();
        let want: Vec<&[u8]> = vec![b"a b", b"", b"x'y", "é".as_bytes(), b"-n", b"$x", b"c\\d"];
        assert_eq!(words, want);
        assert_eq!(unquote_words(b" $'a\\tb'"), None);
        assert_eq!(unquote_words(b""), Some(vec![]));
    }

    #[test]
    fn positional_parameters() {
        let s = run("true", &["x"], true);
        assert_eq!(s.vars[&b"@"[..]].as_deref(), Some(&b" p\\ 1 ''"[..]));
        assert_eq!(s.vars[&b"x"[..]], None);
    }

    #[test]
    fn environment_and_options() {
        let s = run(
            "export E=1; set -f -o pipefail; shopt -s nullglob",
            &[],
            false,
        );
        assert!(s.vars.is_empty());
        let env = String::from_utf8_lossy(&s.env);
        assert!(env.contains("declare -x E=\"1\""), "{env}");
        assert!(env.contains("declare -x KEEP=\"1\""), "{env}");
        let opts = String::from_utf8_lossy(&s.options);
        assert!(opts.split(' ').next().unwrap().contains('f'), "{opts}");
        assert!(opts.contains("pipefail"), "{opts}");
        assert!(opts.contains("nullglob"), "{opts}");
    }

    #[test]
    fn a_changed_value_changes_the_state() {
        assert_ne!(run("x=1", &["x"], false), run("x=2", &["x"], false));
        assert_eq!(run("x=1", &["x"], false), run("x=1", &["x"], false));
        assert_ne!(run("x=1", &["x"], false), run("export x=1", &["x"], false));
    }

    /// What a gate reports, restored in a new shell, reads back the same.
    #[test]
    fn restore_round_trip() {
        let setup = "x=$'a\\'b\\nc'; arr=(1 '2 3'); declare -i n=4; unset u; export E=e; \
                     set -f -o pipefail; shopt -s nullglob; umask 027";
        let names = ["x", "arr", "n", "u"];
        let s = run(setup, &names, true);
        let ctx = Context {
            cwd: "/".into(),
            umask: 0o27,
            options: s.options.clone(),
            env: s.env.clone(),
        };
        assert_eq!(Context::decode(&ctx.encode()), Some(ctx.clone()));
        let pre = restore_script(&s.vars, &ctx);
        let dir = std::env::temp_dir().join(format!("hs-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pre_path = dir.join("pre");
        std::fs::write(&pre_path, &pre).unwrap();
        let names_s: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let script = format!(
            ". {}; {}{}{{ __hs_s0 0 \"$@\" x; __hs_ctx; }}",
            pre_path.display(),
            unit_function(0, &names_s, true, &[]),
            context_function("TOK"),
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("other")
            .env_clear()
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = out
            .stdout
            .strip_suffix(b"\x1eTOK\n")
            .unwrap_or_else(|| panic!("{}\n{out:?}", String::from_utf8_lossy(&pre)));
        let back = parse(text, &names_s, true);
        assert_eq!(back.vars, s.vars, "{}", String::from_utf8_lossy(&pre));
        assert_eq!(back.options, s.options);
        let env = String::from_utf8_lossy(&back.env);
        assert!(env.contains("declare -x E=\"e\""), "{env}");
    }
}
