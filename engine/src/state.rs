//! The shell state a gate reports, as bash prints it and as the scheduler compares it.
//!
//! With speculation on, a main-shell gate sends, after its `g N` line:
//!
//! ```text
//! declare -p VARS…       the variables any unit of the script expands (exact, re-creatable)
//! \x1f
//! declare -px            the exported environment
//! \x1f $- $BASHOPTS      shell options that change expansion
//! \x1e                   end of message
//! ```
//!
//! `declare -p` output is both the comparison key and, replayed verbatim, the way a
//! speculative run gets the same variables.

use std::collections::BTreeMap;

/// What a gate reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GateState {
    /// Each expanded variable's `declare` line(s); `None` when unset.
    pub vars: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `declare -px` output: the environment the unit's commands get.
    pub env: Vec<u8>,
    /// `$-` and `$BASHOPTS`.
    pub options: Vec<u8>,
}

/// End of one field, and end of the message.
pub const FIELD: u8 = 0x1f;
/// End of the message.
pub const END: u8 = 0x1e;

/// The bash function that prints the state (`__hs_state`), for the variables `names`.
pub fn state_function(names: &[String]) -> String {
    // `declare -p` with no names would print every variable.
    let vars = if names.is_empty() {
        String::new()
    } else {
        format!("builtin declare -p {}; ", names.join(" "))
    };
    format!(
        "__hs_state() {{ {vars}builtin printf '\\037\\n'; builtin declare -px; \
         builtin printf '\\037 %s %s\\n\\036\\n' \"$-\" \"$BASHOPTS\"; }}; "
    )
}

/// Parses what `__hs_state` printed (without the final `\x1e` line). `names` are the
/// variables asked for: those `declare -p` did not print are unset.
pub fn parse(text: &[u8], names: &[String]) -> GateState {
    let mut fields = text.split(|&b| b == FIELD);
    let declared = fields.next().unwrap_or_default();
    let env = fields.next().unwrap_or_default();
    let options = fields.next().unwrap_or_default();
    let mut vars: BTreeMap<Vec<u8>, Option<Vec<u8>>> = names
        .iter()
        .map(|n| (n.as_bytes().to_vec(), None))
        .collect();
    for decl in declarations(declared) {
        if let Some(name) = declared_name(decl) {
            vars.insert(name.to_vec(), Some(decl.to_vec()));
        }
    }
    GateState {
        vars,
        env: env.strip_prefix(b"\n").unwrap_or(env).to_vec(),
        options: trim(options).to_vec(),
    }
}

/// Splits `declare -p` output into declarations: each starts a line with `declare -`; a value
/// with newlines continues on the following lines.
fn declarations(text: &[u8]) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    while at < text.len() {
        if text[at..].starts_with(b"declare -") {
            starts.push(at);
        }
        match text[at..].iter().position(|&b| b == b'\n') {
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

fn trim(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b" ").unwrap_or(b);
    b.strip_suffix(b"\n").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(setup: &str, names: &[&str]) -> GateState {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let script = format!("{}{setup}; __hs_state", state_function(&names));
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("KEEP", "1")
            .output()
            .unwrap();
        let text = out
            .stdout
            .strip_suffix(b"\x1e\n")
            .expect("ends with the end mark");
        parse(text, &names)
    }

    #[test]
    fn variables_arrays_and_unset() {
        let s = run(
            "x='a b'; y=$'multi\\nline'; arr=(1 '2 3'); declare -A m=([k]=v)",
            &["x", "y", "arr", "m", "nope"],
        );
        assert_eq!(
            s.vars[&b"x"[..]].as_deref(),
            Some(&b"declare -- x=\"a b\""[..])
        );
        assert_eq!(
            s.vars[&b"y"[..]].as_deref(),
            Some(&b"declare -- y=$'multi\\nline'"[..])
        );
        assert_eq!(
            s.vars[&b"arr"[..]].as_deref(),
            Some(&b"declare -a arr=([0]=\"1\" [1]=\"2 3\")"[..])
        );
        assert!(
            s.vars[&b"m"[..]]
                .as_deref()
                .unwrap()
                .starts_with(b"declare -A m=")
        );
        assert_eq!(s.vars[&b"nope"[..]], None);
    }

    #[test]
    fn environment_and_options() {
        let s = run("export E=1; set -f", &[]);
        assert!(s.vars.is_empty());
        let env = String::from_utf8_lossy(&s.env);
        assert!(env.contains("declare -x E=\"1\""), "{env}");
        assert!(env.contains("declare -x KEEP=\"1\""), "{env}");
        let opts = String::from_utf8_lossy(&s.options);
        assert!(opts.split(' ').next().unwrap().contains('f'), "{opts}");
        assert!(opts.contains("extquote"), "{opts}");
    }

    #[test]
    fn a_changed_value_changes_the_state() {
        assert_ne!(run("x=1", &["x"]), run("x=2", &["x"]));
        assert_eq!(run("x=1", &["x"]), run("x=1", &["x"]));
        assert_ne!(run("x=1", &["x"]), run("export x=1", &["x"]));
    }
}
