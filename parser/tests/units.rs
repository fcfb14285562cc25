//! Units are cut out byte-exact, and instrumentation keeps the script's meaning and lines.

use std::process::Command;

fn units(src: &str) -> Vec<String> {
    let s = parser::parse(src.as_bytes()).expect("parses");
    s.units
        .iter()
        .map(|u| {
            assert_eq!(&src.as_bytes()[u.span.start..u.span.end], &u.text[..]);
            String::from_utf8(u.text.clone()).unwrap()
        })
        .collect()
}

fn instrumented(src: &str) -> String {
    let s = parser::parse(src.as_bytes()).expect("parses");
    String::from_utf8(parser::instrument(src.as_bytes(), &s)).unwrap()
}

#[test]
fn simple_commands_and_pipelines() {
    assert_eq!(
        units("ls -l\necho hi\ncat a | sort -u > b\n"),
        ["ls -l", "cat a | sort -u > b"]
    );
}

#[test]
fn and_or_lists_and_negation() {
    assert_eq!(
        units("test -f x && grep a x || ! wc -l x; true"),
        ["grep a x", "wc -l x"]
    );
    assert_eq!(
        instrumented("grep a x && ! wc -l x\n"),
        "if __hs_gate 0 \"$_\"; then grep a x; else __hs_replay; fi && ! if __hs_gate 1 \"$_\"; then wc -l x; else __hs_replay; fi\n"
    );
}

#[test]
fn redirections_before_the_command_and_fd_numbers() {
    assert_eq!(units(">out 2>&1 ls x 3>f\n"), [">out 2>&1 ls x 3>f"]);
    assert_eq!(units("x=1 2>e sort f\n"), ["x=1 2>e sort f"]);
}

#[test]
fn here_documents_stay_after_the_line() {
    let src = "cat <<EOF | grep -c l # comment\nhello\nEOF\ncat <<-'E2'\n\tx $y\n\tE2\n";
    assert_eq!(units(src), ["cat <<EOF | grep -c l", "cat <<-'E2'"]);
    assert_eq!(
        instrumented(src),
        "if __hs_gate 0 \"$_\"; then cat <<EOF | grep -c l; else __hs_replay; fi # comment\nhello\nEOF\n\
         if __hs_gate 1 \"$_\"; then cat <<-'E2'; else __hs_replay; fi\n\tx $y\n\tE2\n"
    );
    let s = parser::parse(src.as_bytes()).unwrap();
    assert!(s.units[1].vars.names.contains("y"));
}

#[test]
fn compound_commands_are_walked_not_units() {
    let src = "if grep -q a f; then sort f; elif cmp a b; then :; else uniq f; fi\n\
               while read l; do wc -c $l; done < list\n\
               case $x in a) tr a b < f;; *) cut -c1 f ;; esac\n\
               f() { sed 1d \"$@\"; }\nfunction g { head -1; }\n( cd d && make )\n{ ls; }\n";
    assert_eq!(
        units(src),
        [
            "grep -q a f",
            "sort f",
            "cmp a b",
            "uniq f",
            "wc -c $l",
            "tr a b < f",
            "cut -c1 f",
            "sed 1d \"$@\"",
            "head -1",
            "make",
            "ls"
        ]
    );
}

#[test]
fn builtins_functions_and_assignments_are_not_units() {
    let src =
        "x=$(ls); cd /; export A=1; f() { :; }; f a; echo hi | read v; command -v ls; exec 3>f\n";
    assert!(units(src).is_empty());
    assert_eq!(
        units("command ls; $cmd a b; \"$@\"\n"),
        ["command ls", "$cmd a b", "\"$@\""]
    );
}

#[test]
fn pipelines_with_compound_parts_are_one_unit() {
    assert_eq!(
        units("cat f | while read l; do echo \"$l\"; done | sort\n"),
        ["cat f | while read l; do echo \"$l\"; done | sort"]
    );
}

#[test]
fn background_units_get_a_note_before_them() {
    assert_eq!(
        instrumented("sleep 1 & wait\n"),
        "__hs_note 0 \"$_\"; sleep 1 & wait\n"
    );
}

#[test]
fn units_that_expand_status_are_not_gated() {
    let src = b"false; grep $? f; ls ${PIPESTATUS[0]}\n";
    let s = parser::parse(src).unwrap();
    assert!(s.units.iter().all(|u| u.gate == parser::Gate::None));
    assert_eq!(parser::instrument(src, &s), src);
    // `$_` is kept by the gate itself.
    assert_eq!(
        parser::parse(b"ls $_\n").unwrap().units[0].gate,
        parser::Gate::Wrap
    );
}

#[test]
fn for_loops_report_their_words() {
    assert_eq!(
        instrumented("for f in a \"b c\" *.txt; do wc $f; done\n"),
        "__hs_u=$_; __hs_w0=(a \"b c\" *.txt) || builtin :; __hs_loop 0 \"${__hs_w0[@]}\" \"$__hs_u\"; for f in \"${__hs_w0[@]}\"; do __hs_it 0 \"$?\" \"$_\" && builtin : \"$_\"; if __hs_gate \"0:${__hs_i[0]-}\" \"$_\"; then wc $f; else __hs_replay; fi; done\n"
    );
    assert_eq!(
        instrumented("for a; do ls $a; done\n"),
        "__hs_loop 0 \"$@\" \"$_\"; for a; do __hs_it 0 \"$?\" \"$_\" && builtin : \"$_\"; if __hs_gate \"0:${__hs_i[0]-}\" \"$_\"; then ls $a; else __hs_replay; fi; done\n"
    );
    assert_eq!(
        instrumented("f() { sort \"$1\"; }\n"),
        "f() { if __hs_gate 0 \"$@\" \"$_\"; then sort \"$1\"; else __hs_replay; fi; }\n"
    );
    // Without reports, the loop stays as written.
    let src = "for f in a b; do wc $f; done\n";
    let s = parser::parse(src.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(parser::instrument_gates(src.as_bytes(), &s)).unwrap(),
        "for f in a b; do if __hs_gate \"0:${__hs_i[0]-}\" \"$_\"; then wc $f; else __hs_replay; fi; done\n"
    );
    // A failing substitution in the words must not trip `set -e` or an ERR trap.
    let script =
        "set -e\ntrap 'echo trapped' ERR\nfor x in $(false) a; do echo $x; done\necho end\n";
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "__hs_it() {{ return \"$2\"; }}; {}",
            instrumented(script).replace("__hs_loop", ":")
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nend\n");
    // Words an array assignment would read differently are left alone.
    assert!(instrumented("for i in $((1+1)) x; do ls; done").starts_with("for i in $((1+1))"));
}

/// `$_` after a gate is what it was before it: a pipeline unit does not set it, the loop
/// prefix restores it.
#[test]
fn underscore_survives_gates_and_loop_prefixes() {
    let script = "true prev\nls / | cat >/dev/null\necho \"[$_]\"\ntrue again\n\
                  for x in a b; do echo \"<$_>\"; done\ntrue bg\nsleep 0 & wait\n";
    let prelude = "__hs_gate() { return 0; }; __hs_note() { return 0; }; __hs_loop() { return 0; }; \
                   __hs_it() { return \"$2\"; }; ";
    let run = |s: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(s)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(
        run(&format!("{prelude}{}", instrumented(script))),
        run(script)
    );
}

#[test]
fn non_utf8_bytes_keep_offsets() {
    let src = b"touch caf\xe9\ncat \xff\xfe | wc -c\n";
    let s = parser::parse(src).unwrap();
    assert_eq!(s.units[0].text, b"touch caf\xe9");
    assert_eq!(s.units[1].text, b"cat \xff\xfe | wc -c");
}

#[test]
fn unsupported_constructs_are_reported() {
    for src in [
        "f() { ls; }\ntype -t f; type -P ls; command -v f\n",
        "type ls\n",
        "set -- -x -v\n",
    ] {
        assert!(
            parser::parse(src.as_bytes()).unwrap().unsupported.is_none(),
            "{src}"
        );
    }
    for src in [
        "set -x\nls\n",
        "set -euxo pipefail\nls",
        "declare -f\n",
        "trap 'echo' DEBUG\n",
        "set\n",
        "f() { ls; }\ntype f\n",
        "function f { ls; }\ncommand -V f\n",
        "trap 'echo \"$BASH_COMMAND\"' ERR\n",
    ] {
        assert!(
            parser::parse(src.as_bytes()).unwrap().unsupported.is_some(),
            "{src}"
        );
    }
    assert!(
        parser::parse(b"set -euo pipefail\nls\n")
            .unwrap()
            .unsupported
            .is_none()
    );
}

#[test]
fn syntax_errors_are_errors() {
    assert!(parser::parse(b"if then fi (\n").is_err());
    assert!(parser::parse(b"echo 'unterminated\n").is_err());
}

/// Every corpus script (when the corpus is present): the instrumented text is valid bash, and
/// every unit's text is exactly its span.
#[test]
fn corpus_scripts_instrument_to_valid_bash() {
    let dir = std::env::var_os("HS_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        });
    let Ok(families) = std::fs::read_dir(&dir) else {
        eprintln!("corpus not found at {}; skipped", dir.display());
        return;
    };
    let mut n = 0;
    for fam in families.flatten() {
        for f in std::fs::read_dir(fam.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = f.path();
            if p.extension().is_none_or(|e| e != "sh") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let Ok(script) = parser::parse(&bytes) else {
                continue;
            };
            for u in &script.units {
                assert_eq!(
                    &bytes[u.span.start..u.span.end],
                    &u.text[..],
                    "{}",
                    p.display()
                );
            }
            let out = parser::instrument(&bytes, &script);
            let tmp =
                std::env::temp_dir().join(format!("hs-parser-test-{}.sh", std::process::id()));
            std::fs::write(&tmp, &out).unwrap();
            let ok = Command::new("bash")
                .arg("-n")
                .arg(&tmp)
                .status()
                .unwrap()
                .success();
            let _ = std::fs::remove_file(&tmp);
            assert!(ok, "instrumented {} is not valid bash", p.display());
            assert_eq!(
                bytes.iter().filter(|&&b| b == b'\n').count(),
                out.iter().filter(|&&b| b == b'\n').count(),
                "line count changed in {}",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} corpus scripts found");
}

fn assigns(src: &str) -> Vec<String> {
    fn walk(n: &parser::Node, out: &mut Vec<String>) {
        use parser::Node as N;
        match n {
            N::Builtin { assigns, .. } | N::Assign { assigns, .. } => {
                out.extend(assigns.iter().cloned())
            }
            N::Seq { items } => items.iter().for_each(|i| walk(i, out)),
            N::AndOr { first, rest } => {
                walk(first, out);
                rest.iter().for_each(|(_, n)| walk(n, out));
            }
            N::While { cond, body, .. } => {
                walk(cond, out);
                walk(body, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&parser::parse(src.as_bytes()).unwrap().body, &mut out);
    out
}

#[test]
fn assigned_variables_are_reported() {
    assert_eq!(assigns("x=1 y[2]=3\n"), ["x", "y"]);
    assert_eq!(assigns("read -r -d '' a b\n"), ["a", "b"]);
    assert_eq!(assigns("read -a arr\n"), ["arr"]);
    assert_eq!(assigns("read\n"), ["REPLY"]);
    assert_eq!(assigns("local x=1 y; export Z=2\n"), ["x", "y", "Z"]);
    assert_eq!(assigns("(( i++, j += 2, k == 1 ))\n"), ["i", "j"]);
    assert_eq!(assigns("for ((n=0; n<3; n++)); do :; done\n"), ["n", "n"]);
    assert_eq!(
        assigns("printf -v out %s x; mapfile -t lines\n"),
        ["out", "lines"]
    );
    assert_eq!(assigns("declare $name=1; eval x=1\n"), ["*", "*"]);
    assert_eq!(assigns("cd /tmp\n"), ["OLDPWD", "PWD"]);
}

/// Gates report the iteration of every counted loop around them; `__hs_it` keeps `$?` and
/// `$_`, trips neither `set -e` nor an ERR trap, and restarts inner `while` counters.
#[test]
fn loop_iterations_are_counted() {
    let script = "set -e\ntrap 'echo trapped' ERR\nfor a in x y; do\n  n=0\n  \
                  while [ $n -lt 2 ]; do n=$((n+1)); cat /dev/null; done\n  \
                  ls /dev/null >/dev/null\ndone\n\
                  false || for b in 1; do echo \"st=$? us=$_\"; done\n";
    let prelude = "__hs_gate() { echo \"gate $1\"; }; __hs_note() { return 0; }; \
                   __hs_loop() { builtin unset \"__hs_i[${1%%:*}]\"; return 0; }; \
                   __hs_it() { __hs_i[${1%%:*}]=$(( ${__hs_i[${1%%:*}]--1} + 1 )); \
                   if [[ $1 == *:* ]]; then __hs_k=${1#*:}; while [[ -n $__hs_k ]]; do \
                   builtin unset \"__hs_i[${__hs_k%%,*}]\"; \
                   if [[ $__hs_k == *,* ]]; then __hs_k=${__hs_k#*,}; else __hs_k=; fi; done; fi; \
                   return \"$2\"; }; ";
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{}", instrumented(script)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "gate 0:0,0\ngate 0:0,1\ngate 1:0\ngate 0:1,0\ngate 0:1,1\ngate 1:1\nst=1 us=false\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = Command::new("bash").arg("-c").arg(script).output().unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).ends_with("st=1 us=false\n"));
}

/// What the shell could expand: comments, operators and single-quoted text do not count.
#[test]
fn expandable_words_leave_out_quoted_text_and_comments() {
    let w = parser::expandable_words(
        b"perl -ne 'print $_' f # uses $_\necho \"it's $_\" x'$y'z\n#export -f f\n",
    );
    assert_eq!(w[0], "perl");
    assert_eq!(w[2].trim(), "");
    assert!(!w.iter().any(|x| x.contains("export")), "{w:?}");
    assert!(w.iter().any(|x| x == "\"it's $_\""), "{w:?}");
    assert!(w.iter().any(|x| x == "x    z"), "{w:?}");
}

/// An exported function runs in child shells too, which have no gates: its body stays as
/// written, other functions are gated.
#[test]
fn exported_functions_are_not_gated() {
    let src = "f() { sort a; }\ng() { sort b; }\nexport -f f\nh() { ls; }\nexport -nf x -f h\n";
    let out = instrumented(src);
    assert!(out.contains("f() { sort a; }"), "{out}");
    assert!(out.contains("h() { ls; }"), "{out}");
    assert!(out.contains("then sort b;"), "{out}");
}
