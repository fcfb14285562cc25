//! Assigned values that hs can compute ahead of the shell: literals, variables, and the
//! command substitutions `$(basename …)` / `$(dirname …)` of them (the scheduler computes
//! them).

use serde::Serialize;

/// Part of an assigned value ([`crate::Node::Assign`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Piece {
    /// Literal bytes.
    Lit(Vec<u8>),
    /// A variable's value, empty when unset (positional parameters by number, `"2"`).
    Var(String),
    /// An unquoted variable inside a command substitution: one word only if its value is a
    /// non-empty word without blanks or glob characters (else the value cannot be computed).
    Split(String),
    /// `$(basename ARG [SUFFIX])`: what GNU basename prints, trailing newlines removed.
    Basename {
        /// The name.
        arg: Vec<Piece>,
        /// The suffix to remove.
        suffix: Option<Vec<Piece>>,
    },
    /// `$(dirname ARG)`: what GNU dirname prints, trailing newlines removed.
    Dirname {
        /// The name.
        arg: Vec<Piece>,
    },
}

/// The pieces of an assignment's value (the bytes after `=`), if every part of it is one hs
/// can compute; `None` for anything else (other expansions, `~`, arithmetic, quoting it does
/// not follow).
pub(crate) fn parse(v: &[u8]) -> Option<Vec<Piece>> {
    let mut p = Parser { s: v, i: 0 };
    let mut out = Vec::new();
    while p.i < v.len() {
        match v[p.i] {
            b'\'' => {
                let end = p.i + 1 + v[p.i + 1..].iter().position(|&b| b == b'\'')?;
                lit(&mut out, &v[p.i + 1..end]);
                p.i = end + 1;
            }
            b'"' => {
                p.i += 1;
                p.double_quoted(&mut out)?;
            }
            b'\\' => {
                let c = *v.get(p.i + 1)?;
                if c != b'\n' {
                    lit(&mut out, &[c]);
                }
                p.i += 2;
            }
            b'$' => out.push(p.dollar()?),
            b'`' | b'~' => return None,
            c => {
                lit(&mut out, &[c]);
                p.i += 1;
            }
        }
    }
    Some(out)
}

fn lit(out: &mut Vec<Piece>, b: &[u8]) {
    if let Some(Piece::Lit(l)) = out.last_mut() {
        l.extend_from_slice(b);
    } else {
        out.push(Piece::Lit(b.to_vec()));
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// After an opening `"`: up to and including the closing one.
    fn double_quoted(&mut self, out: &mut Vec<Piece>) -> Option<()> {
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let c = *self.s.get(self.i + 1)?;
                    match c {
                        b'$' | b'`' | b'"' | b'\\' => lit(out, &[c]),
                        b'\n' => {}
                        _ => lit(out, &[b'\\', c]),
                    }
                    self.i += 2;
                }
                b'$' => out.push(self.dollar()?),
                b'`' => return None,
                c => {
                    lit(out, &[c]);
                    self.i += 1;
                }
            }
        }
    }

    /// A name or positional number after `$` (or inside `${}`).
    fn name(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek()? {
            c if c.is_ascii_digit() => {
                self.i += 1;
                (c != b'0').then(|| (c as char).to_string())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
            _ => None,
        }
    }

    /// At `$`: a variable or a supported command substitution.
    fn dollar(&mut self) -> Option<Piece> {
        self.i += 1;
        match self.peek()? {
            b'{' => {
                self.i += 1;
                let start = self.i;
                while self.peek()?.is_ascii_alphanumeric() || self.peek()? == b'_' {
                    self.i += 1;
                }
                let n = &self.s[start..self.i];
                if self.peek()? != b'}' || n.is_empty() {
                    return None;
                }
                self.i += 1;
                let digits = n.iter().all(u8::is_ascii_digit);
                let name_ok = n[0].is_ascii_alphabetic() || n[0] == b'_';
                if !(digits && n != b"0" && n[0] != b'0' || name_ok) {
                    return None;
                }
                Some(Piece::Var(String::from_utf8_lossy(n).into_owned()))
            }
            b'(' => {
                self.i += 1;
                if self.peek()? == b'(' {
                    return None;
                }
                self.substitution()
            }
            _ => self.name().map(Piece::Var),
        }
    }

    /// After `$(`: `basename ARG [SUFFIX]` or `dirname ARG`, then `)`.
    fn substitution(&mut self) -> Option<Piece> {
        self.blanks();
        let start = self.i;
        while self.peek()?.is_ascii_lowercase() {
            self.i += 1;
        }
        let cmd = self.s[start..self.i].to_vec();
        let mut args = Vec::new();
        loop {
            let had_blank = self.blanks();
            match self.peek()? {
                b')' => {
                    self.i += 1;
                    break;
                }
                _ if !had_blank => return None,
                _ => args.push(self.arg()?),
            }
        }
        let mut args = args.into_iter();
        match (cmd.as_slice(), args.len()) {
            (b"basename", 1 | 2) => Some(Piece::Basename {
                arg: args.next()?,
                suffix: args.next(),
            }),
            (b"dirname", 1) => Some(Piece::Dirname { arg: args.next()? }),
            _ => None,
        }
    }

    fn blanks(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    /// One argument word inside a substitution.
    fn arg(&mut self) -> Option<Vec<Piece>> {
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b' ' | b'\t' | b')' => return Some(out),
                b'"' => {
                    self.i += 1;
                    self.double_quoted(&mut out)?;
                }
                b'\'' => {
                    let end = self.i + 1 + self.s[self.i + 1..].iter().position(|&b| b == b'\'')?;
                    lit(&mut out, &self.s[self.i + 1..end]);
                    self.i = end + 1;
                }
                b'$' => match self.dollar()? {
                    Piece::Var(v) => out.push(Piece::Split(v)),
                    _ => return None,
                },
                c if c.is_ascii_alphanumeric() || b"./_-+,:=@%^".contains(&c) || c >= 0x80 => {
                    lit(&mut out, &[c]);
                    self.i += 1;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Lit(s.as_bytes().to_vec())
    }
    fn var(s: &str) -> Piece {
        Piece::Var(s.into())
    }

    #[test]
    fn values() {
        assert_eq!(parse(b"abc"), Some(vec![lit("abc")]));
        assert_eq!(parse(b"'a b'\"c\"d"), Some(vec![lit("a bcd")]));
        assert_eq!(
            parse(b"$x/${y}.z"),
            Some(vec![var("x"), lit("/"), var("y"), lit(".z")])
        );
        assert_eq!(parse(b"\"$2/x\""), Some(vec![var("2"), lit("/x")]));
        assert_eq!(
            parse(b"\"$2/$(basename $item).zip\""),
            Some(vec![
                var("2"),
                lit("/"),
                Piece::Basename {
                    arg: vec![Piece::Split("item".into())],
                    suffix: None
                },
                lit(".zip")
            ])
        );
        assert_eq!(
            parse(b"$(dirname \"$f\")"),
            Some(vec![Piece::Dirname {
                arg: vec![var("f")]
            }])
        );
        assert_eq!(
            parse(b"$( basename \"$f\" .txt )"),
            Some(vec![Piece::Basename {
                arg: vec![var("f")],
                suffix: Some(vec![lit(".txt")])
            }])
        );
        for bad in [
            &b"$(mktemp)"[..],
            b"$(basename $f | tr a b)",
            b"$((1+2))",
            b"~/x",
            b"`basename $f`",
            b"$?",
            b"$$",
            b"${x%.txt}",
            b"$0",
            b"${x}$@",
            b"$(basename *.c)",
            b"'unterminated",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
