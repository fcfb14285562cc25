//! Which shell variables a piece of script text expands.
//!
//! A deliberate over-approximation: every `$name`, `${name…}`, and every identifier inside
//! `${…}`, `$((…))`, `$[…]` and array subscripts counts, quoted or not. Reporting a variable the
//! unit does not really expand only costs a needless state comparison; missing one would let a
//! speculation with a stale value commit.

use std::collections::BTreeSet;

use serde::Serialize;

/// The shell state a unit's words can observe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VarRefs {
    /// Named variables (`$x`, `${x[1]}`, identifiers in arithmetic).
    pub names: BTreeSet<String>,
    /// `$1…`, `$@`, `$*`, `$#`.
    pub positional: bool,
    /// Indirect expansion (`${!x}`, `${!prefix*}`) or `eval`-like use: depends on everything.
    pub all: bool,
    /// Special parameters whose value the gate itself changes (`$?`, `$_`), or that only the
    /// running shell knows (`$!`, `$$`, `$BASHPID`, `PIPESTATUS`…).
    pub specials: BTreeSet<String>,
}

impl VarRefs {
    /// Adds the references found in `text`.
    pub fn scan(&mut self, text: &[u8]) {
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'$' {
                i = self.dollar(text, i + 1);
            } else if text[i] == b'`' {
                // Backquoted substitution: its text is scanned like any other.
                i += 1;
            } else {
                i += 1;
            }
        }
    }

    /// Handles the text after a `$`; returns the index to continue from.
    fn dollar(&mut self, t: &[u8], i: usize) -> usize {
        let Some(&c) = t.get(i) else { return i };
        match c {
            b'{' => {
                let end = matching(t, i, b'{', b'}');
                let inner = &t[i + 1..end.min(t.len())];
                if inner.first() == Some(&b'!') && inner.len() > 1 {
                    self.all = true;
                }
                let inner = inner.strip_prefix(b"#").unwrap_or(inner);
                let inner = inner.strip_prefix(b"!").unwrap_or(inner);
                match inner.first() {
                    Some(d) if d.is_ascii_digit() || matches!(d, b'@' | b'*' | b'#') => {
                        self.positional = true
                    }
                    Some(b'?' | b'_' | b'!' | b'$' | b'-') if !is_name_char(inner.get(1)) => {
                        self.specials.insert((inner[0] as char).to_string());
                    }
                    _ => {}
                }
                self.identifiers(inner);
                // Nested expansions inside the braces.
                self.scan(inner);
                end + 1
            }
            b'(' => {
                if t.get(i + 1) == Some(&b'(') {
                    let end = matching(t, i, b'(', b')');
                    self.identifiers(&t[i + 1..end.min(t.len())]);
                    self.scan(&t[i + 1..end.min(t.len())]);
                    end + 1
                } else {
                    // Command substitution: scanned as text, the loop continues inside it.
                    i + 1
                }
            }
            b'[' => {
                let end = matching(t, i, b'[', b']');
                self.identifiers(&t[i + 1..end.min(t.len())]);
                end + 1
            }
            b'\'' => {
                // $'...' ANSI-C quoting: no expansion inside.
                let mut j = i + 1;
                while j < t.len() && t[j] != b'\'' {
                    j += if t[j] == b'\\' { 2 } else { 1 };
                }
                j + 1
            }
            b'0'..=b'9' | b'@' | b'*' | b'#' => {
                self.positional = true;
                i + 1
            }
            b'?' | b'_' | b'!' | b'$' | b'-' if c != b'_' || !is_name_char(t.get(i + 1)) => {
                self.specials.insert((c as char).to_string());
                i + 1
            }
            c if is_name_start(c) => {
                let mut j = i;
                while j < t.len() && is_name_char(Some(&t[j])) {
                    j += 1;
                }
                self.add_name(&t[i..j]);
                j
            }
            _ => i,
        }
    }

    /// Every identifier in `text` (arithmetic and subscripts name variables bare).
    fn identifiers(&mut self, text: &[u8]) {
        let mut i = 0;
        while i < text.len() {
            if is_name_start(text[i]) && (i == 0 || !is_name_char(Some(&text[i - 1]))) {
                let mut j = i;
                while j < text.len() && is_name_char(Some(&text[j])) {
                    j += 1;
                }
                self.add_name(&text[i..j]);
                i = j;
            } else {
                i += 1;
            }
        }
    }

    fn add_name(&mut self, name: &[u8]) {
        let name = String::from_utf8_lossy(name).into_owned();
        match name.as_str() {
            "PIPESTATUS" | "BASHPID" | "BASH_COMMAND" | "RANDOM" | "SRANDOM" | "SECONDS"
            | "EPOCHREALTIME" | "EPOCHSECONDS" | "LINENO" | "BASH_LINENO" | "FUNCNAME" => {
                self.specials.insert(name);
            }
            _ => {
                self.names.insert(name);
            }
        }
    }

    /// Whether the unit observes something the gate changes (`$?`, `PIPESTATUS`), so it must
    /// run without a gate in front of it. (`$_` is kept: the gate's last argument is `"$_"`.)
    pub fn sees_gate(&self) -> bool {
        ["?", "PIPESTATUS", "BASH_COMMAND"]
            .iter()
            .any(|s| self.specials.contains(*s))
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: Option<&u8>) -> bool {
    matches!(c, Some(c) if c.is_ascii_alphanumeric() || *c == b'_')
}

/// Index of the bracket closing the one at `open_at` (or `t.len()` if unbalanced).
fn matching(t: &[u8], open_at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    let mut i = open_at;
    while i < t.len() {
        match t[i] {
            b'\\' => i += 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    t.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(s: &str) -> VarRefs {
        let mut v = VarRefs::default();
        v.scan(s.as_bytes());
        v
    }

    fn names(s: &str) -> Vec<String> {
        refs(s).names.into_iter().collect()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(names("grep $pat \"${file}\" >$out"), ["file", "out", "pat"]);
        assert_eq!(names("echo ${v//a/$b} ${#arr[@]}"), ["a", "arr", "b", "v"]);
    }

    #[test]
    fn arithmetic_and_subscripts() {
        assert_eq!(names("seq $((n + i*2)) ${a[j]}"), ["a", "i", "j", "n"]);
    }

    #[test]
    fn positional_indirect_and_specials() {
        let r = refs("cmd \"$@\" $1");
        assert!(r.positional && !r.all);
        assert!(refs("cmd ${!name}").all);
        assert!(refs("cmd $#").positional);
        assert!(refs("cmd $?").sees_gate());
        assert!(!refs("cmd $_").sees_gate());
        assert!(!refs("cmd $_x").sees_gate());
        assert!(refs("cmd ${PIPESTATUS[0]}").sees_gate());
    }

    #[test]
    fn command_substitution_is_scanned() {
        assert_eq!(names("cat $(ls $dir) `echo $x`"), ["dir", "x"]);
    }
}
